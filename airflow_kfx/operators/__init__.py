"""Airflow operators for KFP tasks. Import the submodules directly; they pull in
the cncf.kubernetes provider, which DAG-parse-time code should only pay for once."""
