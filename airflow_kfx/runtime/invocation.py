"""What one container task runs: the command line, env and output locations.

Computed from the plan and the resolved inputs, the same way for every runtime
and for ``kfx render`` (which passes symbolic values): the runtime decides only
where the resulting pod runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.confine import safe_segment
from airflow_kfx.spec.model import Component, Container, Pipeline, Resources
from airflow_kfx.task_io import (
    WORKSPACE_MOUNT_PATH,
    ArtifactRef,
    ExecutorContext,
    local_path_for_uri,
    parameter_values,
    resolve_command_line,
)


@dataclass(frozen=True)
class RunIdentity:
    """Who is running: the Airflow run and task instance."""

    dag_id: str
    run_id: str
    task_id: str
    kfp_task_name: str
    kfp_path: str
    map_index: int = -1
    try_number: int = 1
    create_time_utc: str = ""
    schedule_time_utc: str = ""
    # kfx render: show run-specific path segments as <placeholders>
    symbolic: bool = False

    @property
    def job_uuid(self) -> str:
        if self.symbolic:
            return "<pipeline_job_uuid>"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kfx:{self.dag_id}/{self.run_id}"))

    @property
    def task_uuid(self) -> str:
        if self.symbolic:
            return "<pipeline_task_uuid>"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kfx:{self.dag_id}/{self.run_id}/{self.task_id}/{self.map_index}"))


def job_resource_name(pipeline_name: str, dag_id: str, run_id: str) -> str:
    """KFP names a run's job ``<pipeline name>-<suffix>`` (its Argo workflow's name);
    the suffix here is stable for the Airflow run."""
    digest = uuid.uuid5(uuid.NAMESPACE_URL, f"kfx:{dag_id}/{run_id}").hex[:8]
    return f"{pipeline_name}-{digest}"


def run_root(pipeline_root: str, identity: RunIdentity) -> str:
    """``<pipeline_root>/<dag_id>/<run_id>``: everything one DAG run writes lies below it."""
    run = "<run_id>" if identity.symbolic else safe_segment(identity.run_id)
    return "/".join([pipeline_root.rstrip("/"), safe_segment(identity.dag_id), run])


def task_root(pipeline_root: str, identity: RunIdentity) -> str:
    """``<run root>/<kfp task path>/<map index>`` (0 when unmapped)."""
    index = "<map_index>" if identity.symbolic and identity.map_index >= 0 else str(max(identity.map_index, 0))
    parts = [*(safe_segment(p) for p in identity.kfp_path.split("/")), index]
    return "/".join([run_root(pipeline_root, identity), *parts])


@dataclass(frozen=True)
class ContainerInvocation:
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    resources: Resources
    context: ExecutorContext
    task_root: str  # URI of the task's output folder
    run_root: str  # URI of the DAG run's folder: the task's outputs must stay below it
    output_parameter_files: Mapping[str, str] = field(default_factory=dict)  # name → pod path
    output_artifacts: Mapping[str, Sequence[ArtifactRef]] = field(default_factory=dict)


def artifact_ref(descriptor: Mapping[str, Any], name: str | None = None) -> ArtifactRef:
    """An artifact as it travels in XCom → the executor's view of it."""
    uri = str(descriptor.get("uri", ""))
    metadata = descriptor.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):  # keep dict subclasses (kfx render's stand-ins)
        metadata = dict(metadata)
    return ArtifactRef(
        name=name or str(descriptor.get("name", "")),
        uri=uri,
        path=local_path_for_uri(uri, metadata),
        schema_title=str(descriptor.get("schemaTitle", "system.Artifact")),
        schema_version=str(descriptor.get("schemaVersion", "0.0.1")),
        metadata=metadata,
    )


def artifact_descriptor(ref: ArtifactRef) -> dict[str, Any]:
    """The XCom form of an artifact: JSON-serialisable, path-free."""
    return {
        "name": ref.name,
        "uri": ref.uri,
        "schemaTitle": ref.schema_title,
        "schemaVersion": ref.schema_version,
        "metadata": dict(ref.metadata),
    }


def prepare_container(
    pipeline: Pipeline,
    component: Component,
    container: Container,
    *,
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, Sequence[ArtifactRef]],
    identity: RunIdentity,
    pipeline_root: str,
    symbolic: frozenset[str] = frozenset(),
    constant_inputs: frozenset[str] | None = None,
) -> ContainerInvocation:
    """Resolve placeholders and decide where every output goes.

    ``symbolic``: inputs whose values are ``<...>`` stand-ins (``kfx render``),
    formatted as text whatever their declared type.
    """
    root = task_root(pipeline_root, identity)
    outputs_dir = local_path_for_uri(root)
    output_files = {
        name: f"{outputs_dir}/_kfx/parameters/{safe_segment(name)}" for name in component.outputs.parameters
    }
    output_artifacts = {
        name: [
            ArtifactRef(
                name=name,
                uri=f"{root}/{safe_segment(name)}",
                path=local_path_for_uri(f"{root}/{safe_segment(name)}"),
                schema_title=spec.schema_title,
                schema_version=spec.schema_version,
            )
        ]
        for name, spec in component.outputs.artifacts.items()
    }
    context = executor_context(
        pipeline, component, parameters=parameters, artifacts=artifacts, identity=identity,
        pipeline_root=pipeline_root, symbolic=symbolic, constant_inputs=constant_inputs,
        output_parameters=output_files, output_artifacts=output_artifacts,
        # In the task's own folder: KFP's dsl.get_uri() puts outputs beside this file.
        output_file=f"{outputs_dir}/executor_output.json",
    )
    where = f"{identity.kfp_path} ({pipeline.source_file})"
    return ContainerInvocation(
        image=container.image,
        command=resolve_command_line(container.command, context, where=where),
        args=resolve_command_line(container.args, context, where=where),
        env=dict(container.env),
        resources=_resolve_resources(container.resources, context, where),
        context=context,
        task_root=root,
        run_root=run_root(pipeline_root, identity),
        output_parameter_files=output_files,
        output_artifacts=output_artifacts,
    )


def executor_context(
    pipeline: Pipeline,
    component: Component,
    *,
    parameters: Mapping[str, Any],
    identity: RunIdentity,
    pipeline_root: str,
    artifacts: Mapping[str, Sequence[ArtifactRef]] | None = None,
    symbolic: frozenset[str] = frozenset(),
    constant_inputs: frozenset[str] | None = None,
    output_parameters: Mapping[str, str] | None = None,
    output_artifacts: Mapping[str, Sequence[ArtifactRef]] | None = None,
    output_file: str = "",
) -> ExecutorContext:
    """What the task's placeholders can refer to (outputs left empty when only the
    input values are wanted, as for :func:`input_values`)."""
    return ExecutorContext(
        input_parameters=dict(parameters),
        input_parameter_types={
            n: "STRING" if n in symbolic else s.type.value for n, s in component.inputs.parameters.items()
        },
        input_parameter_defaults={
            n: s.default for n, s in component.inputs.parameters.items() if s.has_default
        },
        input_artifacts=dict(artifacts or {}),
        constant_inputs=constant_inputs,
        output_parameters=dict(output_parameters or {}),
        output_artifacts=dict(output_artifacts or {}),
        output_file=output_file,
        pipeline={
            "pipeline_job_name": identity.run_id,
            "pipeline_job_resource_name": (
                "<pipeline_job_resource_name>" if identity.symbolic
                else job_resource_name(pipeline.name, identity.dag_id, identity.run_id)
            ),
            "pipeline_job_uuid": identity.job_uuid,
            "pipeline_task_name": identity.kfp_task_name,
            "pipeline_task_uuid": identity.task_uuid,
            "pipeline_job_create_time_utc": identity.create_time_utc,
            "pipeline_job_schedule_time_utc": identity.schedule_time_utc,
            "pipeline_root": pipeline_root,
            # dsl.WorkspaceConfig: the run's shared volume, mounted at /kfp-workspace
            "workspace_path": WORKSPACE_MOUNT_PATH,
        },
    )


def input_values(pipeline: Pipeline, component: Component, parameters: Mapping[str, Any], *,
                 identity: RunIdentity, pipeline_root: str, constant_inputs: frozenset[str] | None) -> dict[str, Any]:
    """The input parameter values the component receives: defaults filled, f-string and
    pipeline placeholders in constants resolved, values typed (what MLflow shows)."""
    context = executor_context(pipeline, component, parameters=parameters, identity=identity,
                               pipeline_root=pipeline_root, constant_inputs=constant_inputs)
    return parameter_values(context)


def _resolve_resources(resources: Resources, context: ExecutorContext, where: str) -> Resources:
    """Resource values may be placeholders (``set_cpu_limit(pipeline_param)``)."""

    def one(value: Any) -> Any:
        if isinstance(value, str) and "{{$" in value:
            resolved = resolve_command_line([value], context, where=where)
            return resolved[0] if resolved else None
        return value

    accelerator = resources.accelerator
    if accelerator is not None:
        from dataclasses import replace

        accelerator = replace(accelerator, type=one(accelerator.type), count=one(accelerator.count))
    return Resources(
        cpu_limit=one(resources.cpu_limit),
        memory_limit=one(resources.memory_limit),
        cpu_request=one(resources.cpu_request),
        memory_request=one(resources.memory_request),
        accelerator=accelerator,
    )

