"""Tracking as the operators see it: start a task's run, finish it, and the
pipeline run's opening and closing tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_kfx.tracking.runs import TASK_KIND, PipelineTracking, RunRef, log_tags
from airflow_kfx.tracking.session import TrackingSession, tracking_enabled


def dag_is_pipeline(context: Mapping[str, Any]) -> bool:
    """A hand-written DAG of components: the DAG itself is what KFP calls the pipeline
    (one experiment, one parent run per DAG run, the DAG's params), not each component."""
    return bool(getattr(context.get("task"), "kfx_dag_is_pipeline", False))


def pipeline_tracking(context: Mapping[str, Any], pipeline: Any, settings: Any,
                      *, whole_dag: bool | None = None) -> PipelineTracking | None:
    """The DAG run's tracking, or None when ``[kfx] tracking`` is off."""
    if not tracking_enabled():
        return None
    dag_run = context["dag_run"]
    conf = dict(getattr(dag_run, "conf", None) or {})
    experiment = (settings.experiment if settings else None) or conf.get("experiment")
    whole_dag = dag_is_pipeline(context) if whole_dag is None else whole_dag
    return PipelineTracking(
        TrackingSession(),
        pipeline_name=dag_run.dag_id if whole_dag else pipeline.name,
        digest="" if whole_dag else pipeline.digest,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        experiment=str(experiment) if experiment else None,
    )


def pipeline_params(context: Mapping[str, Any], pipeline: Any) -> dict[str, Any]:
    from airflow_kfx.config import CACHE_PARAM

    params = context.get("params") or {}
    if dag_is_pipeline(context):
        return {name: value for name, value in params.items() if name != CACHE_PARAM}
    return {name: params[name] for name in pipeline.root.inputs.parameters if name in params}


def close_dag_run(context: Mapping[str, Any]) -> None:
    """A DAG callback (success and failure) of hand-written DAGs of components: closes
    the DAG run's MLflow run, as ``kfx-run-end`` does for pipeline DAGs."""
    tracking = pipeline_tracking(context, None, None, whole_dag=True)
    if tracking is None:
        return
    parent = tracking.parent()
    if parent is not None:
        tracking.close_loops(parent)
        tracking.finish(str(getattr(context["dag_run"], "state", "")) == "failed")


def log_outputs(client: Any, run_id: str, outputs: Mapping[str, Any], pipeline_root: str) -> None:
    from airflow_kfx.confine import confined
    from airflow_kfx.runtime.storage import read_bytes, read_text
    from airflow_kfx.tracking.outputs import log_task_outputs

    # URIs in a task's outputs come from user code (and the cache under the root): the
    # worker, which holds credentials, reads nothing outside the pipeline root for MLflow.
    def text(uri: str) -> str:
        return read_text(confined(uri, pipeline_root, "the artifact"))

    def data(uri: str) -> bytes:
        return read_bytes(confined(uri, pipeline_root, "the artifact"))

    log_task_outputs(client, run_id, outputs, text, data)


class TaskTracker:
    """One task execution's nested MLflow run (a no-op when tracking is off or down)."""

    def __init__(self, tracking: PipelineTracking | None, ref: RunRef | None, try_number: int | None = None) -> None:
        self.tracking = tracking
        self.ref = ref
        # A retry finds the run its first try made (no duplicates); the tag says which try ended it.
        self.try_number = try_number

    @classmethod
    def start(cls, context: Mapping[str, Any], pipeline: Any, planned: Any, settings: Any,
              inputs: Mapping[str, Any], tags: Mapping[str, Any]) -> TaskTracker:
        tracking = pipeline_tracking(context, pipeline, settings)
        if tracking is None:
            return cls(None, None)
        parent = tracking.parent(pipeline_params(context, pipeline))
        if parent is None:
            return cls(tracking, None)
        if planned.loops:  # iterations nest under their (innermost) loop's run
            loop = planned.loops[-1]
            parent = tracking.loop(loop, loop.removesuffix("-iterations"), parent) or parent
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        name = planned.kfp_path + (f" [{map_index}]" if map_index >= 0 else "")
        ref = tracking.nested(
            key={"kfx.kind": TASK_KIND, "kfx.task_id": ti.task_id, "kfx.map_index": str(map_index)},
            name=name,
            parent=parent,
            tags={"kfx.task_path": planned.kfp_path, "kfx.try_number": ti.try_number, **tags},
            params=inputs,
        )
        return cls(tracking, ref, ti.try_number)

    def pod_env(self) -> dict[str, str]:
        return self.ref.pod_env() if self.ref is not None else {}

    def finish(self, *, outputs: Mapping[str, Any] | None, failed: bool, pipeline_root: str = "",
               tags: Mapping[str, Any] | None = None) -> None:
        if self.tracking is None or self.ref is None:
            return
        session = self.tracking.session
        run_id = self.ref.run_id
        tags = {**(tags or {}), **({"kfx.try_number": self.try_number} if self.try_number else {})}
        if tags:
            session.call("tag the task run", log_tags, session.client, run_id, tags)
        if outputs:
            session.call("log the task's outputs", log_outputs, session.client, run_id, outputs, pipeline_root)
        session.call("close the task run", session.client.set_terminated, run_id, "FAILED" if failed else "FINISHED")
