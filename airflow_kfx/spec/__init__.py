"""The spec layer: KFP files → one typed model.

Imports nothing from Airflow, Kubernetes or MLflow, so it is cheap at DAG-parse
time and testable on its own.
"""
