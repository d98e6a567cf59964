"""The "MLflow run" button on every kfx task in the Airflow UI."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


class MlflowRunLink(BaseOperatorLink):
    """Links a task instance to its MLflow run.

    Airflow 3 calls ``get_link`` on the worker once the task has run and keeps the
    result as an XCom (``_link_MlflowRunLink``), which the UI shows.
    """

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        ref = getattr(operator, "kfx_mlflow_run", None)
        return ref.ui_url() if ref is not None else ""
