"""The Airflow UI plugin: a run-outputs view (what KFP's run page shows) and a pipeline
upload page. See :mod:`airflow_kfx.ui.plugin`."""
