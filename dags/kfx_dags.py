"""Airflow DAG-folder drop-in for airflow-kfx.

Every compiled KFP pipeline (``.yaml``/``.json``/``.zip``/``.tar.gz``) under
``pipelines/`` becomes one Airflow DAG. Per-pipeline settings (dag_id, schedule,
runtime, …) go in ``pipelines/kfx.yaml``. A file that cannot be loaded shows up
as a ``kfx_error__<file>`` DAG whose description says what is wrong; the others
load regardless.
"""

from pathlib import Path

# Pre-imported once by Airflow's DAG processor (parsing_pre_import_modules) instead
# of on every parse of this file.
import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401

from airflow_kfx import load_pipelines

load_pipelines(Path(__file__).parent / "pipelines", globals())
