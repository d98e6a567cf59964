"""MLflow tracking: KFP experiments → MLflow experiments, pipeline runs → MLflow
runs, tasks → nested runs, KFP metrics and visualisations → MLflow metrics and
artifacts. A leaf layer: nothing else in airflow-kfx depends on it at import time."""
