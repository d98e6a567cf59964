"""Up-front checks of a loaded pipeline: references, cycles, types, required inputs.

Run once at load time so a broken file fails when Airflow parses it, with the
file, YAML path and line, instead of halfway through a run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from airflow_kfx.spec.model import (
    ArtifactIterator,
    Component,
    ComponentInput,
    Constant,
    Executor,
    Location,
    ParameterIterator,
    ParameterType,
    Pipeline,
    Task,
    TaskFinalStatus,
    TaskOutput,
)


def validate_pipeline(pipeline: Pipeline) -> None:
    """Raise :class:`SpecError` for the first problem found."""
    for component in (pipeline.root, *pipeline.components.values()):
        if component.dag is not None:
            _check_dag(pipeline, component)
        elif component.executor_label not in pipeline.executors:
            _fail(
                component.location,
                f"component '{component.name}' names executor '{component.executor_label}', "
                "which is not in deploymentSpec.executors",
            )
    _check_component_recursion(pipeline)
    for executor in pipeline.executors.values():
        _check_placeholders(executor)


def _fail(location: Location, message: str, suffix: str = "") -> None:
    path = f"{location.yaml_path}.{suffix}" if suffix else location.yaml_path
    raise SpecError(message, file=location.file, yaml_path=path, line=location.line)


def _check_dag(pipeline: Pipeline, dag_component: Component) -> None:
    assert dag_component.dag is not None
    tasks = dag_component.dag.tasks
    for task in tasks.values():
        component = pipeline.components.get(task.component)
        if component is None:
            _fail(task.location, f"task '{task.name}' uses component '{task.component}', which is not defined in 'components'", "componentRef")
        for dependency in task.dependent_tasks:
            if dependency not in tasks:
                _fail(task.location, f"task '{task.name}' depends on '{dependency}', which is not a task of the same DAG", "dependentTasks")
        _check_task_inputs(pipeline, dag_component, task, component)
        _check_iterator(dag_component, task)
        if task.condition:
            from airflow_kfx.expressions import check_expression

            problem = check_expression(task.condition)
            if problem:
                _fail(task.location, f"condition of task '{task.name}' is not valid CEL: {problem}", "triggerPolicy.condition")
    for output in dag_component.dag.outputs.values():
        for selector in output.selectors:
            producer = tasks.get(selector.producer_task)
            if producer is None:
                _fail(dag_component.location, f"output '{output.name}' comes from task '{selector.producer_task}', which is not in this DAG", "dag.outputs")
            produced = pipeline.components[producer.component].outputs
            names = produced.artifacts if output.is_artifact else produced.parameters
            if selector.output_key not in names:
                _fail(dag_component.location, f"output '{output.name}' reads '{selector.output_key}' from task '{selector.producer_task}', which has no such {'artifact' if output.is_artifact else 'parameter'} output", "dag.outputs")
    _check_cycles(dag_component)


def _check_task_inputs(pipeline: Pipeline, dag_component: Component, task: Task, component: Component) -> None:
    declared = component.inputs
    tasks = dag_component.dag.tasks  # type: ignore[union-attr]
    for name, task_input in task.inputs.items():
        where = f"inputs.{'artifacts' if task_input.is_artifact else 'parameters'}.{name}"
        if task_input.is_artifact and name not in declared.artifacts:
            _fail(task.location, f"task '{task.name}' passes artifact '{name}', which component '{component.name}' does not declare", where)
        # Parameters a component does not declare are allowed: the SDK passes
        # 'pipelinechannel--*' values and resource-setting parameters that only
        # placeholders (e.g. resourceCpuLimit) read, and KFP accepts them.
        source = task_input.source
        if isinstance(source, ComponentInput):
            inputs = dag_component.inputs
            available = inputs.artifacts if task_input.is_artifact else inputs.parameters
            if source.name not in available and source.name not in inputs.names():
                _fail(task.location, f"task '{task.name}' reads '{source.name}' from the enclosing DAG '{dag_component.name}', which has no such input", where)
        elif isinstance(source, (TaskOutput, TaskFinalStatus)):
            producer = tasks.get(source.producer_task)
            if producer is None:
                _fail(task.location, f"task '{task.name}' reads from task '{source.producer_task}', which is not in the same DAG", where)
            if isinstance(source, TaskOutput):
                outputs = pipeline.components[producer.component].outputs
                names = outputs.artifacts if task_input.is_artifact else outputs.parameters
                if source.output_key not in names:
                    kind = "artifact" if task_input.is_artifact else "parameter"
                    _fail(task.location, f"task '{task.name}' reads {kind} '{source.output_key}' of task '{source.producer_task}', which has no such output", where)
        elif isinstance(source, Constant) and name in declared.parameters:
            spec = declared.parameters[name]
            problem = _type_problem(source.value, spec.type)
            if problem:
                _fail(task.location, f"constant for '{name}' of task '{task.name}': {problem}", where)
    if component.dag is None or component.kind == "pipeline":
        iterated = {task.iterator.item_input} if task.iterator else set()
        for name, spec in declared.parameters.items():
            if name not in task.inputs and not spec.optional and name not in iterated and spec.type is not ParameterType.TASK_FINAL_STATUS:
                _fail(task.location, f"task '{task.name}' does not pass required parameter '{name}' of component '{component.name}'", "inputs.parameters")
        for name, artifact in declared.artifacts.items():
            if name not in task.inputs and not artifact.optional and name not in iterated:
                _fail(task.location, f"task '{task.name}' does not pass required artifact '{name}' of component '{component.name}'", "inputs.artifacts")


def _check_iterator(dag_component: Component, task: Task) -> None:
    iterator = task.iterator
    if isinstance(iterator, ParameterIterator) and iterator.input_parameter:
        if iterator.input_parameter not in task.inputs:
            _fail(task.location, f"loop '{task.name}' iterates over '{iterator.input_parameter}', which is not one of its inputs", "parameterIterator.items")
    if isinstance(iterator, ArtifactIterator) and iterator.input_artifact not in task.inputs:
        _fail(task.location, f"loop '{task.name}' iterates over artifact '{iterator.input_artifact}', which is not one of its inputs", "artifactIterator.items")


def _check_cycles(dag_component: Component) -> None:
    tasks = dag_component.dag.tasks  # type: ignore[union-attr]
    graph = {name: upstream_tasks(task) for name, task in tasks.items()}
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " → ".join([*trail[trail.index(name):], name])
            _fail(tasks[name].location, f"tasks depend on each other in a cycle: {cycle}", "dependentTasks")
        state[name] = 1
        for upstream in sorted(graph[name]):
            if upstream in graph:
                visit(upstream, [*trail, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])


def upstream_tasks(task: Task) -> set[str]:
    """Sibling tasks ``task`` waits for: explicit dependencies and data producers."""
    upstream = set(task.dependent_tasks)
    for task_input in task.inputs.values():
        if isinstance(task_input.source, (TaskOutput, TaskFinalStatus)):
            upstream.add(task_input.source.producer_task)
    return upstream


def _check_component_recursion(pipeline: Pipeline) -> None:
    def visit(component: Component, trail: tuple[str, ...]) -> None:
        if component.dag is None:
            return
        for task in component.dag.tasks.values():
            if task.component in trail:
                _fail(task.location, f"component '{task.component}' contains itself (recursion is not supported by KFP v2)", "componentRef")
            visit(pipeline.components[task.component], (*trail, task.component))

    visit(pipeline.root, ("root",))


def _check_placeholders(executor: Executor) -> None:
    """Placeholders only Vertex AI resolves (e.g. ``{{$.json_escape[1]}}``) are refused up front."""
    from airflow_kfx.placeholders import PlaceholderError, list_placeholders, parse_placeholder

    container = executor.container
    if container is None:
        return
    for token in sorted(list_placeholders([*container.command, *container.args])):
        try:
            parse_placeholder(token)
        except PlaceholderError:
            location = executor.location
            raise UnsupportedFeatureError(
                f"placeholder {token.split('[')[0].rstrip('}')}}}}}",
                f"executor '{executor.label}' uses the placeholder {token}, which only Vertex AI "
                "Pipelines resolves",
                file=location.file,
                yaml_path=f"{location.yaml_path}.container",
                line=location.line,
            ) from None


def _type_problem(value: Any, parameter_type: ParameterType) -> str | None:
    """KFP constants are JSON values; check them against the declared type."""
    if value is None:
        return None
    expected = {
        ParameterType.STRING: (str,),
        ParameterType.NUMBER_INTEGER: (int, float),
        ParameterType.NUMBER_DOUBLE: (int, float),
        ParameterType.BOOLEAN: (bool,),
        ParameterType.LIST: (list, str),
        ParameterType.STRUCT: (Mapping, str),
    }.get(parameter_type)
    if expected is None:
        return None
    if parameter_type in (ParameterType.NUMBER_INTEGER, ParameterType.NUMBER_DOUBLE) and isinstance(value, bool):
        return f"expected a number, got {json.dumps(value)}"
    if parameter_type is ParameterType.NUMBER_INTEGER and isinstance(value, float) and not value.is_integer():
        return f"expected an integer, got {value}"
    if not isinstance(value, expected):
        return f"expected {parameter_type.value}, got {json.dumps(value)[:60]}"
    return None
