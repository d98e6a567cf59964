"""Light operators that run on the worker, not in a pod: condition gates, loop
iterations, importers, PVC create/delete, and the run-status watcher."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_kfx.config import KfxSettings
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.operators.context import (
    coerce_parameter,
    component_of,
    gates_open,
    open_resolver,
    resolve_inputs,
    run_identity,
)
from airflow_kfx.plan import GATE_OUTPUT, PlannedTask
from airflow_kfx.runtime.base import runtime_for
from airflow_kfx.runtime.resolve import Missing, Resolver
from airflow_kfx.spec.model import Pipeline
from airflow_kfx.values import ParameterValueError, convert


class KfxWorkerOperator(BaseOperator):
    """A planned task that runs on the worker itself (no pod).

    Holds the plan; the model is shared, never deep-copied per task.
    """

    shallow_copy_attrs = ("kfx_pipeline", "kfx_task")
    template_fields: tuple[str, ...] = ()

    def __init__(self, *, kfx_pipeline: Pipeline, kfx_task: PlannedTask, kfx_settings: KfxSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kfx_pipeline, self.kfx_task, self.kfx_settings = kfx_pipeline, kfx_task, kfx_settings

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # KFP values are data, never Jinja: a '{{ ds }}' in a parameter stays literal.
        return None


class KfxConditionOperator(KfxWorkerOperator):
    """Evaluates a ``dsl.If``/``dsl.Condition`` (KFP CEL) for the tasks of its group.

    When false, it marks its branch skipped before ending SKIPPED itself, as a
    ``BranchPythonOperator`` does with its unfollowed branch: the scheduler never
    starts those tasks.
    """

    ui_color = "#fff3c4"

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_kfx.expressions import evaluate_condition

        resolver = open_resolver(context, self.kfx_task)
        declared = component_of(self.kfx_pipeline, self.kfx_task).inputs.parameters
        values = {}
        for name, binding in self.kfx_task.inputs.items():
            try:
                value = resolver.resolve(binding)
            except Missing:
                continue
            spec = declared.get(name)
            values[name] = coerce_parameter(value, spec.type, name) if spec else value
        condition = self.kfx_task.condition or "true"
        if not evaluate_condition(condition, values):
            self.log.info("Condition %s is false for %s; skipping the group", condition, values)
            if self.kfx_task.branch:
                from airflow_kfx.compat import skip_task_instances

                map_index = context["ti"].map_index
                skip_task_instances([(task_id, map_index if map_index is not None else -1) for task_id in self.kfx_task.branch])
            raise AirflowSkipException(f"condition is false: {condition}")
        self.log.info("Condition %s holds", condition)
        return {"parameters": {GATE_OUTPUT: True}}


class KfxIterationsOperator(KfxWorkerOperator):
    """Computes a ``ParallelFor``'s iterations: ``[{"path": [...], "item": ...}]``.

    For a loop nested in other loops, it covers every outer iteration, so the
    loop's (flattened) mapped task group expands once over all of them.
    """

    ui_color = "#e0f0ff"

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from airflow_kfx.operators.context import AirflowFetcher

        planned = self.kfx_task
        resolver = Resolver(AirflowFetcher(context), planned.loops)
        outer_paths: list[tuple[int, ...]] = [()]
        if planned.loops:
            outer_paths = [tuple(r["path"]) for r in resolver.iterations(planned.loops[-1])]
        records: list[dict[str, Any]] = []
        for outer in outer_paths:
            resolver.path = outer
            if gates_open(resolver, planned):
                continue
            try:
                items = resolver.resolve(planned.items)  # type: ignore[arg-type]
            except Missing as missing:
                raise TaskRuntimeError(f"loop '{planned.kfp_path}': its items have no value ({missing})") from None
            try:  # a LIST, or its JSON text
                items = convert(items, "LIST")
            except ParameterValueError as err:
                raise TaskRuntimeError(f"loop '{planned.kfp_path}': its items must be a list: {err}") from None
            if items is None:
                raise TaskRuntimeError(f"loop '{planned.kfp_path}': its items are null")
            records.extend({"path": [*outer, index], "item": item} for index, item in enumerate(items))
        self.log.info("%d iteration(s)", len(records))
        return records


class KfxImporterOperator(KfxWorkerOperator):
    """``dsl.importer``: publishes an existing URI as an artifact; runs nothing."""

    ui_color = "#e8f5e9"

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_kfx.spec.model import ComponentInput, Constant
        from airflow_kfx.task_io import ExecutorContext, resolve_command_line

        planned = self.kfx_task
        resolver = open_resolver(context, planned)
        component = component_of(self.kfx_pipeline, planned)
        importer = self.kfx_pipeline.executors[planned.executor].importer  # type: ignore[index]
        assert importer is not None
        parameters, _ = resolve_inputs(resolver, planned, component, upstream_may_fail=planned.all_done)
        if isinstance(importer.artifact_uri, ComponentInput):
            uri = parameters.get(importer.artifact_uri.name)
        else:
            assert isinstance(importer.artifact_uri, Constant)
            uri = importer.artifact_uri.value
        if not uri:
            raise TaskRuntimeError(f"importer '{planned.kfp_path}': the artifact URI is empty")
        # Metadata values may be placeholders of the importer's inputs (dynamic metadata).
        placeholder_context = ExecutorContext(
            input_parameters=parameters,
            input_parameter_types={n: s.type.value for n, s in component.inputs.parameters.items()},
            input_artifacts={}, output_parameters={}, output_artifacts={}, output_file="", pipeline={},
        )
        metadata = _resolve_metadata(importer.metadata, placeholder_context, resolve_command_line)
        # KFP downloads only when the pipeline has a workspace (launcher: workspace != nil).
        if importer.download_to_workspace and self.kfx_pipeline.workspace is not None:
            metadata = {**(metadata or {}), **self._download_to_workspace(str(uri), context, planned)}
        descriptor = {
            "name": "artifact",
            "uri": str(uri),
            "schemaTitle": importer.schema_title,
            "schemaVersion": importer.schema_version,
            "metadata": metadata,
        }
        return {"parameters": {}, "artifacts": {"artifact": [descriptor]}}

    def _download_to_workspace(self, uri: str, context: Any, planned: Any) -> dict[str, Any]:
        """Copy the artifact into the run's workspace; the metadata that points consumers there."""
        from airflow_kfx.operators.container import default_pipeline_root
        from airflow_kfx.runtime.pvc import workspace_claim_name
        from airflow_kfx.runtime.workspace_import import (
            WORKSPACE_MARKER,
            download_to_workspace,
            workspace_folder_on_worker,
        )

        what = f"importer '{planned.kfp_path}'"
        runtime = runtime_for(self.kfx_settings)
        folder = workspace_folder_on_worker(runtime, workspace_claim_name(workspace_identity(context)), what)
        copy = download_to_workspace(uri, workspace_folder=folder, what=what,
                                     pipeline_root=default_pipeline_root(self.kfx_pipeline, self.kfx_settings))
        self.log.info("%s: %s downloaded to the workspace at %s", what, uri, copy)
        return {WORKSPACE_MARKER: True}


def _resolve_metadata(value: Any, context: Any, resolve: Any) -> Any:
    if isinstance(value, str) and "{{$" in value:
        resolved = resolve([value], context)
        return resolved[0] if resolved else ""
    if isinstance(value, dict):
        return {_resolve_metadata(k, context, resolve): _resolve_metadata(v, context, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_metadata(v, context, resolve) for v in value]
    return value


class KfxPvcOperator(KfxWorkerOperator):
    """kfp-kubernetes ``CreatePVC``/``DeletePVC``."""

    ui_color = "#f3e5f5"

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_kfx.runtime.pvc import create_pvc, delete_pvc
        from airflow_kfx.spec.model import PvcAction

        planned = self.kfx_task
        resolver = open_resolver(context, planned)
        component = component_of(self.kfx_pipeline, planned)
        parameters, _ = resolve_inputs(resolver, planned, component, upstream_may_fail=planned.all_done)
        action = self.kfx_pipeline.executors[planned.executor].pvc_action  # type: ignore[index]
        runtime = runtime_for(self.kfx_settings)
        identity = run_identity(context, planned)
        if action is PvcAction.CREATE:
            name = create_pvc(parameters, identity, runtime=runtime, settings=self.kfx_settings, log=self.log)
            return {"parameters": {"name": name}, "artifacts": {}}
        delete_pvc(parameters, runtime=runtime, settings=self.kfx_settings, log=self.log)
        return {"parameters": {}, "artifacts": {}}


class KfxBrokenPipelineOperator(BaseOperator):
    """The one task of the stand-in DAG shown for a pipeline file that cannot load."""

    ui_color = "#ffcdd2"
    template_fields: tuple[str, ...] = ()

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise AirflowFailException(self.message)


class KfxWorkspaceOperator(BaseOperator):
    """Creates (setup) or removes (teardown) the run's KFP workspace volume."""

    ui_color = "#ede7f6"
    template_fields: tuple[str, ...] = ()

    def __init__(self, *, kfx_pipeline: Pipeline, kfx_settings: KfxSettings, remove: bool = False, **kwargs: Any) -> None:  # noqa: D107
        super().__init__(**kwargs)
        self.kfx_pipeline, self.kfx_settings, self.remove = kfx_pipeline, kfx_settings, remove

    def execute(self, context: Any) -> None:
        from airflow_kfx.runtime.pvc import create_workspace, workspace_claim_name

        identity = workspace_identity(context)
        runtime = runtime_for(self.kfx_settings)
        if self.remove:
            runtime.delete_claim(workspace_claim_name(identity), self.kfx_settings, self.log)
            return
        workspace = self.kfx_pipeline.workspace
        create_workspace(workspace, identity, runtime=runtime, settings=self.kfx_settings, log=self.log)


def workspace_identity(context: Any) -> Any:
    """The run identity that names the run's workspace (same for every task)."""
    from airflow_kfx.runtime.invocation import RunIdentity

    ti = context["ti"]
    return RunIdentity(dag_id=ti.dag_id, run_id=ti.run_id, task_id="", kfp_task_name="", kfp_path="")


class KfxRunBoundaryOperator(BaseOperator):
    """The first and last task of a pipeline's DAG run.

    The first opens the MLflow run (before any task, so tasks never race to create
    it). The last closes it FINISHED/FAILED, records skipped tasks as such, and fails
    the DAG run when any task failed — as KFP fails a run whose exit handler succeeded.
    """

    ui_color = "#e3f2fd"
    template_fields: tuple[str, ...] = ()
    shallow_copy_attrs = ("kfx_pipeline", "kfx_plan")

    def __init__(self, *, kfx_pipeline: Pipeline, kfx_plan: Any, kfx_settings: KfxSettings, end: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kfx_pipeline, self.kfx_plan, self.kfx_settings, self.end = kfx_pipeline, kfx_plan, kfx_settings, end

    def execute(self, context: Any) -> dict[str, Any] | None:
        from airflow_kfx.tracking.task import pipeline_params, pipeline_tracking

        params = pipeline_params(context, self.kfx_pipeline) if self.end else self._check_parameters(context)
        if not self.end:
            self._record_pipeline_root(context)
        states = self._states(context) if self.end else {}
        failed = sorted(task for task, state in states.items() if state == "failed")
        tracking = pipeline_tracking(context, self.kfx_pipeline, self.kfx_settings)
        parent = tracking.parent(params) if tracking else None
        if tracking is None:
            self.log.info("MLflow tracking is off ([kfx] tracking)")
        elif parent is not None and not self.end:
            self.log.info("MLflow run %s (experiment %s) at %s", parent.run_id, parent.experiment_id, parent.ui_url())
        elif parent is not None:
            self._record_not_run(tracking, parent, states)
            self._record_outputs(context, tracking, parent)
            tracking.close_loops(parent)
            tracking.finish(bool(failed))
        if failed:
            raise AirflowFailException(f"the pipeline failed: task(s) {', '.join(failed)} failed")
        return parent.as_dict() if parent is not None else None

    def _check_parameters(self, context: Any) -> dict[str, Any]:
        """The run's pipeline parameters, typed; fails the run, before any task starts,
        naming every one that does not fit its KFP type. Airflow checked their JSON
        schema when the run was triggered; this also covers what a schema cannot say
        and runs whose conf predates the pipeline's current parameters."""
        from airflow_kfx.params import check_run_parameters

        conf = getattr(context.get("dag_run"), "conf", None) or {}
        values, problems = check_run_parameters(self.kfx_pipeline, context.get("params") or {}, conf)
        if problems:
            raise AirflowFailException(
                "the run's parameters do not fit their KFP types, so no task was started:\n  "
                + "\n  ".join(problems)
            )
        return values

    def _record_pipeline_root(self, context: Any) -> None:
        """Where this run's artifacts live, for the run-outputs view: it reads nothing
        outside this root, and the root can differ per pipeline (kfx.yaml, the file's own)."""
        from airflow_kfx.operators.container import default_pipeline_root
        from airflow_kfx.plan import PIPELINE_ROOT_XCOM

        context["ti"].xcom_push(key=PIPELINE_ROOT_XCOM, value=default_pipeline_root(self.kfx_pipeline, self.kfx_settings))

    def _states(self, context: Any) -> dict[str, str]:
        """Every other task's state in this run (mapped instances as ``task_mapindex``)."""
        ti = context["ti"]
        task_ids = [task_id for task_id in self.dag.task_ids if task_id != self.task_id]
        result = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
        return {k: str(v) for k, v in (result.get(ti.run_id) or {}).items()}

    def _record_outputs(self, context: Any, tracking: Any, parent: Any) -> None:
        """The pipeline's own outputs (what KFP's run page lists) on the parent run,
        logged as a task's are: ``output.<name>`` params, metrics, artifact URIs."""
        from airflow_kfx.operators.container import default_pipeline_root
        from airflow_kfx.operators.context import AirflowFetcher
        from airflow_kfx.runtime.resolve import pipeline_outputs
        from airflow_kfx.tracking.task import log_outputs

        outputs = pipeline_outputs(self.kfx_plan, AirflowFetcher(context))
        if outputs["parameters"] or outputs["artifacts"]:
            root = default_pipeline_root(self.kfx_pipeline, self.kfx_settings)
            tracking.session.call("log the pipeline's outputs", log_outputs, tracking.client, parent.run_id, outputs, root)

    def _record_not_run(self, tracking: Any, parent: Any, states: dict[str, str]) -> None:
        """Skipped and upstream-failed tasks never started a run: show them, KILLED."""
        from airflow_kfx.plan import EXECUTOR
        from airflow_kfx.tracking.runs import TASK_KIND

        for planned in self.kfx_plan.tasks.values():
            if planned.kind != EXECUTOR or planned.loops:
                continue
            state = states.get(planned.task_id)
            if state not in ("skipped", "upstream_failed"):
                continue
            ref = tracking.nested(
                key={"kfx.kind": TASK_KIND, "kfx.task_id": planned.task_id, "kfx.map_index": "-1"},
                name=planned.kfp_path,
                parent=parent,
                tags={"kfx.task_path": planned.kfp_path, "kfx.state": state},
            )
            if ref is not None:
                tracking.session.call("close a skipped task's run", tracking.client.set_terminated, ref.run_id, "KILLED")
