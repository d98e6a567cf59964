"""airflow-kfx's Airflow plugin (entry point ``airflow.plugins``).

* "KFP outputs" tabs on a DAG run and on a task instance: the run's output parameters,
  artifacts, metrics, confusion matrices, ROC curves, Markdown and HTML reports;
* "Upload pipeline" in the navigation: add or update a pipeline from the browser
  (``[kfx] upload_folder``).

Both are pages of the FastAPI app in :mod:`airflow_kfx.ui.app`, shown by Airflow's UI as
external views. Airflow loads plugins in many processes; the app (and FastAPI) is only
built where it is served, the api-server.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/kfx"


class KfxPlugin(AirflowPlugin):
    name = "airflow_kfx"
    external_views = [
        {"name": "KFP outputs", "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "kfx-run-outputs"},
        {"name": "KFP outputs", "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}",
         "destination": "task_instance", "url_route": "kfx-task-outputs"},
        {"name": "Upload pipeline", "href": URL_PREFIX + "/upload", "destination": "nav", "category": "browse",
         "url_route": "kfx-upload"},
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_kfx.ui.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-kfx"}]
