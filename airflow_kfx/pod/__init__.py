"""Building Kubernetes pods for airflow-kfx tasks (imports the kubernetes client)."""
