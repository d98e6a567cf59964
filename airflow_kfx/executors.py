"""``KfxLocalExecutor``: Airflow's LocalExecutor whose workers already hold airflow-kfx.

    [core]
    executor = airflow_kfx.executors.KfxLocalExecutor

Airflow's LocalExecutor forks its worker processes from the scheduler, and each worker
forks one process per task, which parses the task's DAG file. For a KFP pipeline that
parse imports the cncf.kubernetes pod operator (the kubernetes client), airflow-kfx and,
with tracking on, MLflow — about 1.5–3 s of CPU per task on the project machine, against
0.1 s for a hand-written DAG of ``@task`` functions (bench/scale.py). This executor
imports those modules once, in the scheduler, before it forks its workers: every task
process inherits them (copy-on-write), and its parse drops to the DAG itself.

Nothing else changes: scheduling, queues, parallelism and task isolation are the
LocalExecutor's own. Deployments on Celery or Kubernetes executors do not need it (their
workers are long-lived or their pods pay the import once per task anyway).
"""

from __future__ import annotations

import importlib
import logging

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# What a task process of a KFP pipeline imports before and while it runs (the DAG
# file's parse, the operator's execute, the local runtime, the launcher helpers).
TASK_MODULES = (
    "airflow.providers.cncf.kubernetes.operators.pod",
    "airflow.providers.cncf.kubernetes.pod_generator",
    "kubernetes.client",
    "airflow_kfx.loading",
    "airflow_kfx.dag_builder",
    "airflow_kfx.operators.container",
    "airflow_kfx.operators.control",
    "airflow_kfx.runtime.local",
    "airflow_kfx.runtime.invocation",
    "airflow_kfx.runtime.outputs",
    "airflow_kfx.runtime.cache",
    "airflow_kfx.pod.builder",
    "airflow_kfx.pod.transport",
    "airflow_kfx.tracking.task",
)
TRACKING_MODULES = ("mlflow", "mlflow.tracking")


def preload_task_modules() -> list[str]:
    """Import what a KFP task process needs; the modules that could not be imported
    (logged: a task will import them itself, or fail with the same error)."""
    from airflow_kfx.config import config_value

    wanted = list(TASK_MODULES)
    if config_value("tracking").strip().lower() == "true":
        wanted += TRACKING_MODULES
    missing = []
    for name in wanted:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - an optional extra: the task reports it if it needs it
            log.warning("airflow-kfx: cannot pre-import %s for task processes: %s", name, err)
            missing.append(name)
    return missing


class KfxLocalExecutor(LocalExecutor):
    """LocalExecutor with airflow-kfx's task modules imported before its workers fork."""

    def start(self) -> None:
        preload_task_modules()
        super().start()
