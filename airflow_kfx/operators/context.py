"""Shared run-time plumbing for every kfx operator: the XCom-backed fetcher,
the run identity, gate checks and typed input resolution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.params import run_parameter
from airflow_kfx.plan import RUN_START_TASK, Absent, Binding, PlannedTask
from airflow_kfx.runtime.resolve import Missing, Resolver
from airflow_kfx.spec.model import Component, ParameterType, Pipeline
from airflow_kfx.values import ParameterValueError, convert, type_label

if TYPE_CHECKING:
    from airflow_kfx.runtime.invocation import RunIdentity


class AirflowFetcher:
    """Reads other tasks' results through XCom, params and task states of this run."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.ti = context["ti"]
        self.params = context.get("params") or {}
        self.dag_run = context.get("dag_run")
        # the pipeline whose parameters these are (None in hand-written DAGs)
        self.pipeline: Pipeline | None = getattr(context.get("task"), "kfx_pipeline", None)

    def task_result(self, task_id: str, map_index: int) -> Any:
        return self.ti.xcom_pull(task_ids=task_id, map_indexes=map_index)

    def task_results(self, task_id: str, map_indexes: Sequence[int]) -> list[Any]:
        return list(self.ti.xcom_pull(task_ids=task_id, map_indexes=list(map_indexes)))

    def xcom(self, task_id: str, key: str) -> Any:
        return self.ti.xcom_pull(task_ids=task_id, key=key, map_indexes=-1)

    def run_param(self, name: str) -> Any:
        """A pipeline parameter typed as ``kfx-run-start`` checked it (a value given with
        the run, e.g. list items from the trigger form, or the compiled default)."""
        if name not in self.params:
            raise KeyError(name)
        value, pipeline = self.params[name], self.pipeline
        if pipeline is None or name not in pipeline.root.inputs.parameters or value is None:
            return value  # an input artifact's URI, or a hand-written DAG's param
        conf = getattr(self.dag_run, "conf", None) or {}
        try:
            return run_parameter(pipeline, name, value, given=name in conf)
        except ParameterValueError as err:
            raise TaskRuntimeError(f"pipeline parameter '{name}': {err}") from None

    def task_states(self, task_ids: Sequence[str]) -> Mapping[str, str]:
        result = self.ti.get_task_states(
            dag_id=self.ti.dag_id, task_ids=list(task_ids), run_ids=[self.ti.run_id]
        )
        return dict(result.get(self.ti.run_id, {}))

    def run_info(self) -> Mapping[str, str]:
        return {"dag_id": self.ti.dag_id, "run_id": self.ti.run_id}


def run_identity(context: Mapping[str, Any], planned: PlannedTask) -> RunIdentity:
    from airflow_kfx.runtime.invocation import RunIdentity

    ti = context["ti"]
    dag_run = context.get("dag_run")
    created = getattr(dag_run, "start_date", None) or getattr(dag_run, "run_after", None)
    scheduled = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return RunIdentity(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        kfp_task_name=planned.name if planned.kind != "executor" or not planned.task else planned.task.name,
        kfp_path=planned.kfp_path,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number or 1,
        create_time_utc=created.isoformat() if created else "",
        schedule_time_utc=scheduled.isoformat() if scheduled else "",
    )


def resolver_for(context: Mapping[str, Any], planned: PlannedTask) -> Resolver:
    ti = context["ti"]
    map_index = ti.map_index if ti.map_index is not None else -1
    return Resolver.for_instance(AirflowFetcher(context), planned.loops, map_index)


def open_resolver(context: Mapping[str, Any], planned: PlannedTask) -> Resolver:
    """A resolver for this task instance; skips the task when an enclosing condition is
    false, or when the run never started (``kfx-run-start`` failed, e.g. on a bad
    parameter: a task that runs after failures, such as an exit handler, would
    otherwise still start)."""
    from airflow.sdk.exceptions import AirflowSkipException

    resolver = resolver_for(context, planned)
    if planned.all_done:
        state = resolver.fetcher.task_states([RUN_START_TASK]).get(RUN_START_TASK)
        if state in ("failed", "upstream_failed"):
            raise AirflowSkipException(f"the run did not start: {RUN_START_TASK} {state}")
    closed = gates_open(resolver, planned)
    if closed:
        raise AirflowSkipException(closed)
    return resolver


def gates_open(resolver: Resolver, planned: PlannedTask) -> str | None:
    """None if every enclosing condition holds, else why the task is skipped."""
    for gate in planned.gates:
        try:
            if resolver.resolve(gate) is True:
                continue
        except Missing:
            pass
        group = gate.task_id.rsplit(".", 1)[0]
        return f"condition of '{group}' is not satisfied"
    return None


def resolve_inputs(
    resolver: Resolver, planned: PlannedTask, component: Component, *, upstream_may_fail: bool
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Typed parameter values and artifact descriptors; absent optional inputs are left out."""
    parameters: dict[str, Any] = {}
    artifacts: dict[str, list[dict[str, Any]]] = {}
    for name, binding in planned.inputs.items():
        spec = component.inputs.parameters.get(name)
        try:
            value = resolver.resolve(binding)
        except Missing as missing:
            fallback = _fallback(component, name, binding, upstream_may_fail)
            if fallback is _ABSENT:
                if _required(component, name):
                    raise TaskRuntimeError(
                        f"task '{planned.kfp_path}': required input '{name}' has no value ({missing})"
                    ) from None
                continue
            value = fallback
        if name in component.inputs.artifacts:
            artifacts[name] = flatten_artifacts(value)
        elif spec is not None:
            parameters[name] = coerce_parameter(value, spec.type, name)
        else:  # undeclared (read only by placeholders): passed as given
            parameters[name] = value
    return parameters, artifacts


_ABSENT = object()


def _fallback(component: Component, name: str, binding: Binding, upstream_may_fail: bool) -> Any:
    """An upstream that failed before an all-done task leaves its input to the default."""
    spec = component.inputs.parameters.get(name)
    if spec is not None and spec.has_default and upstream_may_fail and not isinstance(binding, Absent):
        return spec.default
    return _ABSENT


def _required(component: Component, name: str) -> bool:
    if name in component.inputs.parameters:
        spec = component.inputs.parameters[name]
        return not spec.optional and spec.type is not ParameterType.TASK_FINAL_STATUS
    artifact = component.inputs.artifacts.get(name)
    return artifact is not None and not artifact.optional


def coerce_parameter(value: Any, parameter_type: ParameterType, name: str) -> Any:
    """A task input in its declared type (:func:`airflow_kfx.values.convert`: the
    rules of KFP's driver, and text read as KFP reads text)."""
    try:
        return convert(value, parameter_type)
    except ParameterValueError as err:
        raise TaskRuntimeError(f"input '{name}' ({type_label(parameter_type)}): {err}") from None


def flatten_artifacts(value: Any) -> list[dict[str, Any]]:
    """A single artifact, a list (Collected), or nested lists → a flat list."""
    from airflow_kfx.runtime.resolve import InlineFile

    if isinstance(value, InlineFile):  # a value to write to a file first (v1 inputPath)
        return [value]  # type: ignore[list-item]
    if isinstance(value, Mapping):
        return [dict(value)]
    if isinstance(value, list):
        flat: list[dict[str, Any]] = []
        for item in value:
            flat.extend(flatten_artifacts(item))
        return flat
    if isinstance(value, str):  # a pipeline-level artifact given as a URI
        return [{"name": "", "uri": value, "schemaTitle": "system.Artifact", "metadata": {}}]
    raise TaskRuntimeError(f"expected an artifact, got {value!r}")


def component_of(pipeline: Pipeline, planned: PlannedTask) -> Component:
    assert planned.component is not None
    return pipeline.components[planned.component]
