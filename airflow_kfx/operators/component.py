"""The operator behind a component factory call, and how its inputs are bound."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.xcom_arg import PlainXComArg, XComArg

from airflow_kfx.config import KfxSettings
from airflow_kfx.exceptions import SpecError
from airflow_kfx.operators.container import KfxContainerOperator
from airflow_kfx.plan import (
    EXECUTOR,
    ArtifactText,
    AsFile,
    AsText,
    Binding,
    Literal,
    Output,
    PlannedTask,
    RunParam,
    XComValue,
)
from airflow_kfx.spec.model import CachingOptions, Location, Task

if TYPE_CHECKING:
    from airflow_kfx.components import ComponentFactory

OUTPUT_XCOM_PREFIX = "kfp_output__"


class ComponentOutput(PlainXComArg):
    """``task.outputs["name"]``: wires a component output into another task.

    Given to another component, the consumer reads the output (and depends on the
    producer); given to a plain Airflow operator, it is an ordinary XComArg whose
    value is the output (an artifact's URI for artifacts).
    """

    def __init__(self, operator: KfxComponentOperator, name: str, is_artifact: bool) -> None:
        super().__init__(operator, key=OUTPUT_XCOM_PREFIX + name)
        self.output_name = name
        self.is_artifact = is_artifact


class KfxComponentOperator(KfxContainerOperator):
    """A KFP component task in a hand-written DAG."""

    kfx_dag_is_pipeline = True  # MLflow: the DAG is the pipeline (see tracking.task.dag_is_pipeline)

    @property
    def outputs(self) -> dict[str, ComponentOutput]:
        interface = self.kfx_pipeline.components[self.kfx_task.component].outputs  # type: ignore[index]
        return {
            **{name: ComponentOutput(self, name, False) for name in interface.parameters},
            **{name: ComponentOutput(self, name, True) for name in interface.artifacts},
        }

    @property
    def output(self) -> Any:  # type: ignore[override]
        """The single output (KFP style); the task's XCom when it has several."""
        outputs = self.outputs
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return super().output

    def publish(self, context: Any, result: dict[str, Any]) -> dict[str, Any]:
        # Each output also as its own XCom, for plain Airflow operators downstream.
        ti = context["ti"]
        for name, value in (result.get("parameters") or {}).items():
            ti.xcom_push(key=OUTPUT_XCOM_PREFIX + name, value=value)
        for name, refs in (result.get("artifacts") or {}).items():
            ti.xcom_push(key=OUTPUT_XCOM_PREFIX + name, value=refs[0]["uri"] if len(refs) == 1 else [r["uri"] for r in refs])
        return result


def make_component_task(factory: ComponentFactory, task_id: str, inputs: dict[str, Any]) -> KfxComponentOperator:
    component = factory.component
    declared = set(factory.input_names)
    unknown = sorted(set(inputs) - declared)
    if unknown:
        raise SpecError(
            f"component '{factory.name}' has no input(s) {', '.join(unknown)}; its inputs: {', '.join(sorted(declared)) or 'none'}",
            file=factory.source,
        )
    missing = [
        name for name, spec in component.inputs.parameters.items() if not spec.optional and name not in inputs
    ] + [name for name, spec in component.inputs.artifacts.items() if not spec.optional and name not in inputs]
    if missing:
        raise SpecError(
            f"component '{factory.name}' (task '{task_id}') needs input(s) {', '.join(missing)}",
            file=factory.source,
        )
    bindings: dict[str, Binding] = {}
    upstream: list[Any] = []
    for name, value in inputs.items():
        binding, producer = _bind(factory, name, value)
        bindings[name] = binding
        if producer is not None:
            upstream.append(producer)
    task = Task(name=task_id, component=component.name, location=Location(factory.source, "", None),
                caching=CachingOptions(enable_cache=False))
    planned = PlannedTask(
        task_id=task_id, name=task_id, group=None, kind=EXECUTOR, kfp_path=task_id, loops=(), gates=(),
        inputs=bindings, component=component.name, executor=factory.executor.label, task=task,
    )
    operator = KfxComponentOperator(
        task_id=task_id,
        kfx_pipeline=factory.pipeline,
        kfx_task=planned,
        kfx_settings=KfxSettings(),
        doc_md=_doc(factory),
        trigger_rule="all_success",
    )
    # Inside a TaskGroup Airflow prefixes the id; the plan must name the real one.
    operator.kfx_task = replace(planned, task_id=operator.task_id, kfp_path=operator.task_id)
    for producer in upstream:
        producer >> operator
    if operator.has_dag():
        _close_runs_with_the_dag(operator.dag)
    return operator


def _close_runs_with_the_dag(dag: Any) -> None:
    """The DAG run's MLflow run ends with the DAG run (DAG callbacks: no task to add)."""
    from airflow_kfx.tracking.task import close_dag_run

    for attribute in ("on_success_callback", "on_failure_callback"):
        callbacks = getattr(dag, attribute) or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if close_dag_run not in callbacks:
            setattr(dag, attribute, [*callbacks, close_dag_run])
            # Computed once when the DAG was made; the scheduler reads it to send callbacks.
            setattr(dag, f"has_{attribute}", True)


def _bind(factory: ComponentFactory, name: str, value: Any) -> tuple[Binding, Any]:
    """The binding for one input value, and the operator it depends on (if any)."""
    from airflow_kfx.params import DagParam

    wants_file = name in factory.component.inputs.artifacts
    v1_type = (factory.v1_types or {}).get(name)
    producer = None
    if isinstance(value, ComponentOutput):
        producer = value.operator
        binding: Binding = Output(producer.task_id, value.output_name, value.is_artifact)
        if value.is_artifact and not wants_file:
            binding = ArtifactText(binding)  # a file output read as a value
        elif not value.is_artifact and wants_file:
            binding = AsFile(binding)  # a value output handed over as a file
        return binding, producer
    if isinstance(value, XComArg):
        operator = value.operator
        binding = XComValue(operator.task_id, getattr(value, "key", "return_value"))
        producer = operator
    elif isinstance(value, DagParam):
        binding = RunParam(value.name)
    elif isinstance(value, KfxComponentOperator):
        raise SpecError(
            f"input '{name}' of '{factory.name}': pass task.outputs['<name>'] (or task.output), not the task itself",
            file=factory.source,
        )
    else:
        binding = Literal(value)
    if wants_file:
        return AsFile(binding), producer
    if v1_type is not None:
        binding = AsText(binding, v1_type)
    return binding, producer


def _doc(factory: ComponentFactory) -> str:
    lines = [f"**KFP component** `{factory.name}`", ""]
    if factory.description:
        lines += [factory.description.strip(), ""]
    container = factory.executor.container
    if container is not None:
        lines.append(f"image: `{container.image}`")
    lines.append(f"source: `{factory.source}`")
    return "\n".join(lines)
