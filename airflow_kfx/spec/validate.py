"""Up-front checks of a loaded pipeline: references, cycles, types, required inputs.

Run once at load time so a broken file fails when Airflow parses it, with the
file, YAML path and line, instead of halfway through a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

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
from airflow_kfx.spec.source import join_path


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
                "executorLabel",
            )
    _check_nesting(pipeline)
    for executor in pipeline.executors.values():
        _check_placeholders(executor)


def _fail(location: Location, message: str, *keys: str | int) -> NoReturn:
    """A SpecError at ``keys`` below ``location`` (the loader then finds that line)."""
    path = join_path(location.yaml_path, *keys)
    raise SpecError(message, file=location.file, yaml_path=path, line=location.line)


def _check_dag(pipeline: Pipeline, dag_component: Component) -> None:
    assert dag_component.dag is not None
    tasks = dag_component.dag.tasks
    for task in tasks.values():  # first every reference to a component: the checks below follow them
        if task.component not in pipeline.components:
            _fail(task.location, f"task '{task.name}' uses component '{task.component}', which is not defined in 'components'", "componentRef", "name")
    for task in tasks.values():
        for index, dependency in enumerate(task.dependent_tasks):
            if dependency not in tasks:
                _fail(task.location, f"task '{task.name}' depends on '{dependency}', which is not a task of the same DAG", "dependentTasks", index)
        _check_task_inputs(pipeline, dag_component, task, pipeline.components[task.component])
        _check_iterator(dag_component, task)
        if task.condition:
            from airflow_kfx.expressions import check_expression

            problem = check_expression(task.condition)
            if problem:
                _fail(task.location, f"condition of task '{task.name}' is not valid CEL: {problem}", "triggerPolicy", "condition")
    for output in dag_component.dag.outputs.values():
        where = ("dag", "outputs", "artifacts" if output.is_artifact else "parameters", output.name)
        for selector in output.selectors:
            producer = tasks.get(selector.producer_task)
            if producer is None:
                _fail(dag_component.location, f"output '{output.name}' comes from task '{selector.producer_task}', which is not in this DAG", *where)
            produced = pipeline.components[producer.component].outputs
            names = produced.artifacts if output.is_artifact else produced.parameters
            if selector.output_key not in names:
                _fail(dag_component.location, f"output '{output.name}' reads '{selector.output_key}' from task '{selector.producer_task}', which has no such {'artifact' if output.is_artifact else 'parameter'} output", *where)
    _check_cycles(dag_component)


def _check_task_inputs(pipeline: Pipeline, dag_component: Component, task: Task, component: Component) -> None:
    declared = component.inputs
    tasks = dag_component.dag.tasks  # type: ignore[union-attr]
    for name, task_input in task.inputs.items():
        kind = "artifact" if task_input.is_artifact else "parameter"
        where = ("inputs", f"{kind}s", name)
        if task_input.is_artifact and name not in declared.artifacts:
            _fail(task.location, f"task '{task.name}' passes artifact '{name}', which component '{component.name}' does not declare", *where)
        # Parameters a component does not declare are allowed: the SDK passes
        # 'pipelinechannel--*' values and resource-setting parameters that only
        # placeholders (e.g. resourceCpuLimit) read, and KFP accepts them.
        source = task_input.source
        if isinstance(source, ComponentInput):
            inputs = dag_component.inputs
            available = inputs.artifacts if task_input.is_artifact else inputs.parameters
            if source.name not in available and source.name not in inputs.names():
                _fail(task.location, f"task '{task.name}' reads '{source.name}' from the enclosing DAG '{dag_component.name}', which has no such input", *where, f"componentInput{kind.title()}")
        elif isinstance(source, (TaskOutput, TaskFinalStatus)):
            reference = (*where, f"taskOutput{kind.title()}" if isinstance(source, TaskOutput) else "taskFinalStatus")
            producer = tasks.get(source.producer_task)
            if producer is None:
                _fail(task.location, f"task '{task.name}' reads from task '{source.producer_task}', which is not in the same DAG", *reference, "producerTask")
            if isinstance(source, TaskOutput):
                outputs = pipeline.components[producer.component].outputs
                names = outputs.artifacts if task_input.is_artifact else outputs.parameters
                if source.output_key not in names:
                    _fail(task.location, f"task '{task.name}' reads {kind} '{source.output_key}' of task '{source.producer_task}', which has no such output", *reference, f"output{kind.title()}Key")
        elif isinstance(source, Constant) and name in declared.parameters:
            spec = declared.parameters[name]
            problem = _type_problem(source.value, spec.type)
            if problem:
                _fail(task.location, f"constant for '{name}' of task '{task.name}': {problem}", *where, "runtimeValue")
    if component.dag is None or component.kind == "pipeline":
        iterated = {task.iterator.item_input} if task.iterator else set()
        for name, spec in declared.parameters.items():
            if name not in task.inputs and not spec.optional and name not in iterated and spec.type is not ParameterType.TASK_FINAL_STATUS:
                _fail(task.location, f"task '{task.name}' does not pass required parameter '{name}' of component '{component.name}'", "inputs", "parameters")
        for name, artifact in declared.artifacts.items():
            if name not in task.inputs and not artifact.optional and name not in iterated:
                _fail(task.location, f"task '{task.name}' does not pass required artifact '{name}' of component '{component.name}'", "inputs", "artifacts")


def _check_iterator(dag_component: Component, task: Task) -> None:
    iterator = task.iterator
    if isinstance(iterator, ParameterIterator) and iterator.input_parameter:
        if iterator.input_parameter not in task.inputs:
            _fail(task.location, f"loop '{task.name}' iterates over '{iterator.input_parameter}', which is not one of its inputs", "parameterIterator", "items")
    if isinstance(iterator, ArtifactIterator) and iterator.input_artifact not in task.inputs:
        _fail(task.location, f"loop '{task.name}' iterates over artifact '{iterator.input_artifact}', which is not one of its inputs", "artifactIterator", "items")


def _check_cycles(dag_component: Component) -> None:
    """Depth-first along upstream edges, with an explicit stack: a chain of thousands
    of tasks is a valid DAG, and must not exhaust Python's recursion limit."""
    tasks = dag_component.dag.tasks  # type: ignore[union-attr]
    graph = {name: sorted(u for u in upstream_tasks(task) if u in tasks) for name, task in tasks.items()}
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        trail, pending = [start], [iter(graph[start])]
        while trail:
            upstream = next(pending[-1], None)
            if upstream is None:
                done.add(trail.pop())
                pending.pop()
            elif upstream in trail:
                cycle = " → ".join([*trail[trail.index(upstream):], upstream])
                _fail(tasks[upstream].location, f"tasks depend on each other in a cycle: {cycle}", "dependentTasks")
            elif upstream not in done:
                trail.append(upstream)
                pending.append(iter(graph[upstream]))


def upstream_tasks(task: Task) -> set[str]:
    """Sibling tasks ``task`` waits for: explicit dependencies and data producers."""
    upstream = set(task.dependent_tasks)
    for task_input in task.inputs.values():
        if isinstance(task_input.source, (TaskOutput, TaskFinalStatus)):
            upstream.add(task_input.source.producer_task)
    return upstream


# Bounds on nested pipelines: each nested task becomes Airflow tasks and task groups,
# and KFP's own pipelines nest a handful of levels with at most a few hundred tasks.
MAX_NESTING = 50
MAX_TASKS = 10_000


def _check_nesting(pipeline: Pipeline) -> None:
    """No component contains itself, and nesting and the expanded task count stay bounded.

    Depth-first with an explicit stack; each component is measured once, so a "diamond"
    (every level using the next one twice) costs its size, not 2**depth walks.
    """
    expanded: dict[str, int] = {}  # component → executor tasks once its DAG is expanded
    trail: list[tuple[str, Component, Iterator[Task]]] = [("root", pipeline.root, _tasks(pipeline.root))]
    while trail:
        name, component, pending = trail[-1]
        task = next(pending, None)
        if task is None:
            trail.pop()
            expanded[name] = _expanded_size(component, expanded)
            continue
        if any(task.component == entry[0] for entry in trail):
            _fail(task.location, f"component '{task.component}' contains itself (recursion is not supported by KFP v2)", "componentRef", "name")
        inner = pipeline.components[task.component]
        if inner.dag is None or task.component in expanded:
            continue
        if len(trail) >= MAX_NESTING:
            _fail(task.location, f"pipelines nest more than {MAX_NESTING} levels deep here; flatten them", "componentRef", "name")
        trail.append((task.component, inner, _tasks(inner)))


def _tasks(component: Component) -> Iterator[Task]:
    return iter(component.dag.tasks.values() if component.dag else ())


def _expanded_size(component: Component, expanded: dict[str, int]) -> int:
    size = sum(expanded.get(task.component, 1) for task in _tasks(component))
    if size > MAX_TASKS:
        _fail(component.location, f"the pipeline expands to more than {MAX_TASKS:,} tasks once nested pipelines are "
              f"unfolded ({size:,} in '{component.name}'); split it")
    return size


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
