"""``kfx render``: the Pod manifest every container task would submit.

Uses the very operators the DAG runs, with a resolver that shows values known
only at run time (upstream outputs, loop items, run ids) as explicit
``<...>`` placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_kfx.plan import (
    Absent,
    Binding,
    FinalStatus,
    Literal,
    LoopItem,
    OneOf,
    Output,
    Plan,
    PlannedTask,
    RunParam,
    Selected,
)
from airflow_kfx.runtime.resolve import Missing
from airflow_kfx.spec.model import Pipeline


class SymbolicMetadata(dict):
    """Metadata of an artifact produced at run time: every key is a stand-in."""

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"<metadata '{key}' of {self.owner}>"


class SymbolicResolver:
    """Resolves what is known before a run; names everything else."""

    def __init__(self, plan: Plan, params: Mapping[str, Any], pipeline_root: str, dag_id: str) -> None:
        self.plan = plan
        self.params = params
        self.pipeline_root = pipeline_root
        self.dag_id = dag_id

    def resolve(self, binding: Binding) -> Any:
        if isinstance(binding, Literal):
            return binding.value
        if isinstance(binding, RunParam):
            if binding.name in self.plan.pipeline.root.inputs.artifacts:
                uri = self.params.get(binding.name) or f"<URI of pipeline input artifact '{binding.name}'>"
                owner = f"pipeline input artifact '{binding.name}'"
                return {"name": binding.name, "uri": uri, "metadata": SymbolicMetadata(owner)}
            if binding.name in self.params:
                return self.params[binding.name]
            spec = self.plan.pipeline.root.inputs.parameters.get(binding.name)
            if spec is not None and spec.has_default:
                return spec.default
            if spec is not None and spec.optional:
                raise Missing(f"optional pipeline parameter '{binding.name}' not given")
            return f"<pipeline parameter '{binding.name}'>"
        if isinstance(binding, Output):
            producer = self.plan.tasks[binding.task_id]
            executor = self.plan.pipeline.executors.get(producer.executor or "")
            if binding.is_artifact and executor is not None and executor.importer is not None:
                return self._imported(producer, executor.importer)
            if binding.is_artifact:
                from airflow_kfx.runtime.invocation import RunIdentity, task_root

                identity = RunIdentity(
                    dag_id=self.dag_id, run_id="<run_id>", task_id=producer.task_id, kfp_task_name=producer.name,
                    kfp_path=producer.kfp_path, map_index=0 if producer.loops else -1, symbolic=True,
                )
                uri = f"{task_root(self.pipeline_root, identity)}/{binding.key}"
                owner = f"artifact '{binding.key}' of task '{producer.kfp_path}'"
                spec = self.plan.pipeline.components[producer.component].outputs.artifacts[binding.key]  # type: ignore[index]
                return {
                    "name": binding.key, "uri": uri, "schemaTitle": spec.schema_title,
                    "schemaVersion": spec.schema_version, "metadata": SymbolicMetadata(owner),
                }
            return f"<output '{binding.key}' of task '{producer.kfp_path}'>"
        if isinstance(binding, LoopItem):
            return f"<item of loop '{self.plan.tasks[binding.loop].kfp_path}'>"
        if isinstance(binding, OneOf):
            # Which branch runs is known only at run time: name them all.
            options = [self.resolve(option) for option in binding.options]
            if all(isinstance(o, dict) for o in options):
                uris = " | ".join(str(o.get("uri")) for o in options)
                return {**options[0], "uri": f"<one of: {uris}>", "metadata": SymbolicMetadata("the dsl.OneOf branch that runs")}
            return "<one of: " + " | ".join(str(o) for o in options) + ">"
        if isinstance(binding, Selected):
            inner = self.resolve(binding.inner)
            if isinstance(inner, str) and inner.startswith("<"):
                return f"<{binding.selector} of {inner}>"
            from airflow_kfx.expressions import apply_selector

            return apply_selector(binding.selector, inner)
        if isinstance(binding, FinalStatus):
            return {"state": f"<final state of '{binding.task_name}'>", "pipelineTaskName": binding.task_name}
        if isinstance(binding, Absent):
            raise Missing("absent")
        raise TypeError(binding)


    def _imported(self, producer: PlannedTask, importer: Any) -> dict[str, Any]:
        """An importer's output is the URI it imports (a constant or one of its inputs)."""
        from airflow_kfx.spec.model import ComponentInput

        if isinstance(importer.artifact_uri, ComponentInput):
            binding = producer.inputs.get(importer.artifact_uri.name)
            uri = self.resolve(binding) if binding is not None else f"<input '{importer.artifact_uri.name}'>"
        else:
            uri = importer.artifact_uri.value
        return {
            "name": "artifact", "uri": str(uri), "schemaTitle": importer.schema_title,
            "schemaVersion": importer.schema_version, "metadata": dict(importer.metadata),
        }


def render_pipeline(pipeline: Pipeline, params: Mapping[str, Any], output: Path) -> list[Path]:
    """Write ``<output>/<dag_id>/<task_id>.yaml`` per container task; returns the paths."""
    import yaml
    from kubernetes.client import ApiClient

    from airflow_kfx.dag_builder import build_dag
    from airflow_kfx.operators.container import KfxContainerOperator

    dag = build_dag(pipeline)
    written: list[Path] = []
    folder = output / dag.dag_id
    folder.mkdir(parents=True, exist_ok=True)
    client = ApiClient()
    for task in dag.tasks:
        if not isinstance(task, KfxContainerOperator):
            continue
        pod = render_pod(task, params)
        manifest = client.sanitize_for_serialization(pod)
        path = folder / f"{task.task_id}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=1000))
        written.append(path)
    return written


def render_pod(task: Any, params: Mapping[str, Any]) -> Any:
    """The V1Pod ``task`` (a KfxContainerOperator) would submit, with symbolic run-time values."""
    from airflow_kfx.operators.context import coerce_parameter, component_of, flatten_artifacts
    from airflow_kfx.plan import build_plan
    from airflow_kfx.runtime.invocation import RunIdentity

    planned: PlannedTask = task.kfx_task
    pipeline = task.kfx_pipeline
    plan = _plan_cache.get(pipeline.digest) or build_plan(pipeline)
    _plan_cache[pipeline.digest] = plan
    resolver = SymbolicResolver(plan, params, task.pipeline_root(), task.dag_id)
    component = component_of(pipeline, planned)
    parameters: dict[str, Any] = {}
    artifacts: dict[str, list[dict[str, Any]]] = {}
    symbolic: set[str] = set()
    for name, binding in planned.inputs.items():
        try:
            value = resolver.resolve(binding)
        except Missing:
            continue
        spec = component.inputs.parameters.get(name)
        if name in component.inputs.artifacts:
            artifacts[name] = flatten_artifacts(value)
        elif spec is None or (isinstance(value, str) and value.startswith("<")):
            parameters[name] = value  # symbolic: shown as is
            symbolic.add(name)
        else:
            parameters[name] = coerce_parameter(value, spec.type, name)
    task._platform_values = []
    for source, binding in planned.platform_inputs:
        try:
            task._platform_values.append((source, resolver.resolve(binding)))
        except Missing:  # an optional input not given: the setting is left out
            task._platform_values.append((source, None))
    identity = RunIdentity(
        dag_id=task.dag_id,
        run_id="<run_id>",
        task_id=task.task_id,
        kfp_task_name=planned.name,
        kfp_path=planned.kfp_path,
        map_index=0 if planned.loops else -1,
        create_time_utc="<run create time>",
        schedule_time_utc="<run schedule time>",
        symbolic=True,
    )
    task.prepare(parameters, artifacts, identity, frozenset(symbolic))
    return task.build_pod_request_obj(None, dry_run=True)


_plan_cache: dict[str, Plan] = {}
