"""What the outputs view reads from Airflow's metadata database: a run's task
instances, their XComs (outputs, MLflow links) and the run's pipeline root.

Files are read through :func:`confined_reader`: only below the pipeline root the run
wrote to, the same rule the worker follows for MLflow (``airflow_kfx.confine``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_kfx.config import fallback_pipeline_root
from airflow_kfx.plan import PIPELINE_ROOT_XCOM as PIPELINE_ROOT_KEY
from airflow_kfx.plan import RUN_START_TASK
from airflow_kfx.ui.outputs import TaskView, task_view

MLFLOW_LINK_KEY = "_link_MlflowRunLink"
_KEYS = ("return_value", MLFLOW_LINK_KEY, PIPELINE_ROOT_KEY)


@dataclass(frozen=True)
class RunData:
    dag_id: str
    run_id: str
    state: str
    pipeline_root: str
    root_recorded: bool  # False: an older run; the configured root is assumed
    tasks: tuple[TaskView, ...]
    mlflow_url: str = ""


def load_run(session: Any, dag_id: str, run_id: str, *, task_id: str | None = None,
             map_index: int | None = None) -> RunData | None:
    """The run's outputs (optionally one task instance's), or None if there is no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if run is None:
        return None
    instances = select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state, TaskInstance.start_date).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    xcoms = select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                                    XComModel.key.in_(_KEYS))
    if task_id is not None:
        instances = instances.where(TaskInstance.task_id == task_id)
        xcoms = xcoms.where(XComModel.task_id.in_([task_id, RUN_START_TASK]))
        if map_index is not None:
            instances = instances.where(TaskInstance.map_index == map_index)
    values: dict[tuple[str, int, str], Any] = {}
    for row in session.scalars(xcoms):
        values[(row.task_id, row.map_index, row.key)] = XComModel.deserialize_value(row)
    recorded = values.get((RUN_START_TASK, -1, PIPELINE_ROOT_KEY))
    root = recorded if isinstance(recorded, str) and recorded else fallback_pipeline_root()
    read_text, readable = confined_reader(root)
    tasks = []
    # In the order they ran (as a run's graph reads), tasks that never started last.
    rows = sorted(session.execute(instances), key=lambda r: (r[3] is None, r[3] or 0, r[0], r[1]))
    for ti_task, ti_index, state, _ in rows:
        if ti_task in (RUN_START_TASK,) and task_id is None:
            continue
        if map_index is not None and ti_index != map_index:
            continue
        tasks.append(task_view(
            ti_task, ti_index, str(state or "none"), values.get((ti_task, ti_index, "return_value")),
            read_text=read_text, readable=readable, mlflow_url=str(values.get((ti_task, ti_index, MLFLOW_LINK_KEY)) or ""),
        ))
    return RunData(dag_id, run_id, str(run.state or ""), root, isinstance(recorded, str) and bool(recorded),
                   tuple(tasks), mlflow_url=_parent_url(values.get((RUN_START_TASK, -1, "return_value"))))


def confined_reader(root: str) -> tuple[Callable[[str], str], Callable[[str], bool]]:
    """``read_text`` that opens nothing outside ``root`` (and nothing too large to inline),
    and ``readable`` saying whether a URI may be served."""
    from airflow_kfx.confine import confined, is_reference, is_within
    from airflow_kfx.runtime.storage import read_bytes
    from airflow_kfx.ui.outputs import MAX_INLINE_BYTES

    def readable(uri: str) -> bool:
        return not is_reference(uri) and is_within(uri, root)

    def read_text(uri: str) -> str:
        data = read_bytes(confined(uri, root, "the artifact"))
        if len(data) > MAX_INLINE_BYTES:
            raise ValueError(f"{uri} is {len(data):,} bytes: too large to show here (follow its link)")
        return data.decode("utf-8", errors="replace")

    return read_text, readable


def read_artifact(root: str, uri: str, limit: int) -> bytes:
    """An artifact file's bytes, for the artifact route: confined, a file, at most ``limit``."""
    from airflow_kfx.confine import confined
    from airflow_kfx.runtime.storage import is_remote, read_bytes

    confined(uri, root, "the artifact")
    if not is_remote(uri):
        import os

        path = uri.removeprefix("file://")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{uri} is not a file")
        if os.path.getsize(path) > limit:
            raise ValueError(f"{uri} is larger than {limit:,} bytes: read it from the pipeline root directly")
    data = read_bytes(uri)
    if len(data) > limit:
        raise ValueError(f"{uri} is larger than {limit:,} bytes: read it from the pipeline root directly")
    return data


def _parent_url(value: Any) -> str:
    if not isinstance(value, dict) or not {"tracking_uri", "experiment_id", "run_id"} <= set(value):
        return ""
    from airflow_kfx.tracking.runs import RunRef

    return RunRef(str(value["tracking_uri"]), str(value["experiment_id"]), str(value["run_id"])).ui_url()
