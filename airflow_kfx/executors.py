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
LocalExecutor's own. One addition serves ``kfx run --parallelism`` only: Airflow's
``dag.test(use_executor=True)`` hands every ready task instance straight to the
executor, without the scheduler's check of a task's ``max_active_tis_per_dagrun`` (a
KFP ``ParallelFor(parallelism=n)``); ``kfx run`` registers its DAG's limits with
:func:`hold_to_task_limits` and the executor starts no more instances of such a task
than its limit, keeping the rest queued. Under the scheduler nothing is registered and
the scheduler's own check applies. Deployments on Celery or Kubernetes executors do not need it (their
workers are long-lived or their pods pay the import once per task anyway).
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from typing import Any

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


# (dag_id, task_id) → at most that many running instances per DAG run; see the module doc.
_TASK_LIMITS: dict[tuple[str, str], int] = {}


def hold_to_task_limits(dag: Any) -> None:
    """Have this process's KfxLocalExecutor honour ``dag``'s per-run task limits."""
    for task in dag.tasks:
        limit = getattr(task, "max_active_tis_per_dagrun", None)
        if limit:
            _TASK_LIMITS[(dag.dag_id, task.task_id)] = limit


class KfxLocalExecutor(LocalExecutor):
    """LocalExecutor with airflow-kfx's task modules imported before its workers fork."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started_limited: set[Any] = set()

    def start(self) -> None:
        preload_task_modules()
        super().start()

    def _get_workloads_to_schedule(self, open_slots: int) -> list[tuple[Any, Any]]:
        if not _TASK_LIMITS:
            return super()._get_workloads_to_schedule(open_slots)
        # Every queued workload in Airflow's own priority order, then the first ones
        # that fit the open slots and their task's limit. (The base executor's
        # ``running`` set is not filled on dispatch, so the started ones are kept here.)
        candidates = super()._get_workloads_to_schedule(len(self.queued_callbacks) + len(self.queued_tasks))
        started = Counter(_limited(key) for key in self._started_limited)
        chosen = []
        for key, workload in candidates:
            if len(chosen) >= open_slots:
                break
            group = _limited(key)
            if group is not None:
                if started[group] >= _TASK_LIMITS[group[:2]]:
                    continue
                started[group] += 1
                self._started_limited.add(key)
            chosen.append((key, workload))
        return chosen

    def change_state(self, key: Any, state: Any, info: Any = None, remove_running: bool = True) -> None:
        if remove_running:  # finished (success, failure, ...), not the RUNNING report
            self._started_limited.discard(key)
        super().change_state(key, state, info, remove_running=remove_running)


def _limited(key: Any) -> tuple[str, str, str] | None:
    """(dag_id, task_id, run_id) of a task instance key whose task has a registered limit."""
    dag_id, task_id = getattr(key, "dag_id", None), getattr(key, "task_id", None)
    if (dag_id, task_id) not in _TASK_LIMITS:
        return None
    return dag_id, task_id, key.run_id
