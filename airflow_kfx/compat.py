"""Differences between the Airflow and provider versions we support, in one place
(as the cncf.kubernetes provider keeps its own in ``version_compat.py``).

Supported: Airflow 3.1+ and apache-airflow-providers-cncf-kubernetes 10.25+ (the first
with ``build_pod_request_obj(dry_run=...)``, which ``kfx render`` needs without a cluster,
and the persisted pod identity behind ``durable``/``reattach_on_restart``).
"""

from __future__ import annotations

try:  # Airflow 3: the Task SDK
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # pragma: no cover - Airflow 2 layout, kept for readers of older providers
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

__all__ = ["TaskDeferred"]


def skip_task_instances(task_instances: list[tuple[str, int]]) -> None:
    """Mark task instances of the running task's DAG run skipped, through the Execution
    API, leaving the running task's own state alone.

    What ``SkipMixin.skip`` does by raising ``DownstreamTasksSkipped`` — which also ends
    the caller as SUCCESS and only covers unmapped tasks; a condition gate must end
    SKIPPED and may sit in a mapped group (its branch is then the same map index).
    Instances already running or finished are left alone by the API.
    """
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import SkipDownstreamTasks

    task_runner.SUPERVISOR_COMMS.send(SkipDownstreamTasks(tasks=list(task_instances)))
