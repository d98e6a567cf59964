"""The execution plan: a pipeline flattened into the tasks Airflow will run.

Pure (no Airflow imports): the DAG builder turns each :class:`PlannedTask` into an
operator, and the operators resolve their :data:`Binding` values at run time.

Decisions made here, once, for every runtime:
- every KFP executor task becomes one Airflow task; DAG components (nested
  pipelines, conditions, exit handlers, loops) become task groups;
- a condition becomes a *gate* task at the top of its group; tasks inside read
  the gate's verdict and skip themselves, so skips never leak outside the group;
- a ``ParallelFor`` becomes an *iterations* task (computing the items) followed
  by a mapped task group expanded over them. Airflow cannot nest mapped groups,
  so an inner loop's group is placed beside its outer loop's group and iterates
  over the flattened (outer × inner) product; every task instance knows its
  iteration *path* (one index per enclosing loop), which is how values cross
  loop boundaries, including ``dsl.Collected`` fan-in;
- references through DAG components are resolved to the executor task that
  really produces a value, so a task reads its inputs with no knowledge of groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_kfx.spec.model import (
    ArtifactIterator,
    Component,
    ComponentInput,
    Constant,
    ParameterIterator,
    Pipeline,
    Task,
    TaskFinalStatus,
    TaskOutput,
    TriggerStrategy,
)
from airflow_kfx.spec.validate import upstream_tasks

# ---------------------------------------------------------------------------
# Bindings: how a task finds a value at run time
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class RunParam:
    """A pipeline parameter, from the DAG run's params."""

    name: str


@dataclass(frozen=True)
class Output:
    """An output of an Airflow task; ``loops`` are the producer's enclosing loops.

    When the consumer is outside some of those loops, the value is the list of
    every iteration's value (``dsl.Collected``), nested one level per loop.
    """

    task_id: str
    key: str
    is_artifact: bool
    loops: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoopItem:
    """The current item of an enclosing loop (identified by its iterations task)."""

    loop: str


@dataclass(frozen=True)
class OneOf:
    """``dsl.OneOf``: the first option whose producer ran."""

    options: tuple[Binding, ...]


@dataclass(frozen=True)
class FinalStatus:
    """``PipelineTaskFinalStatus`` of a KFP task (all Airflow tasks of its subtree)."""

    task_name: str
    task_ids: tuple[str, ...]
    pipeline_name: str = ""


@dataclass(frozen=True)
class Absent:
    """No value given and no default: the input is left out (optional inputs)."""


@dataclass(frozen=True)
class Selected:
    """``parameterExpressionSelector``: a CEL expression applied to a value."""

    inner: Binding
    selector: str


@dataclass(frozen=True)
class XComValue:
    """A plain Airflow XCom (an ``XComArg`` passed to a component in a hand-written DAG)."""

    task_id: str
    key: str = "return_value"


@dataclass(frozen=True)
class AsText:
    """A value passed as text the way a KFP v1 component receives it (``v1_type`` rules)."""

    inner: Binding
    v1_type: str


@dataclass(frozen=True)
class ArtifactText:
    """An artifact consumed as a value (v1 ``inputValue`` of a file output): its content."""

    inner: Binding


@dataclass(frozen=True)
class AsFile:
    """A value consumed as a file (v1 ``inputPath`` of a value): written to the task's folder."""

    inner: Binding


Binding = (
    Literal | RunParam | Output | LoopItem | OneOf | FinalStatus | Absent | Selected | XComValue | AsText
    | ArtifactText | AsFile
)


# ---------------------------------------------------------------------------
# Planned tasks
# ---------------------------------------------------------------------------

EXECUTOR = "executor"
CONDITION = "condition"
ITERATIONS = "iterations"

GATE_TASK_NAME = "kfx-condition"
GATE_OUTPUT = "satisfied"
ITERATIONS_SUFFIX = "-iterations"
RUN_START_TASK = "kfx-run-start"  # first task of every pipeline DAG: checks the run's parameters
# The XCom key under which kfx-run-start records the run's pipeline root (read by the UI).
PIPELINE_ROOT_XCOM = "kfx_pipeline_root"


@dataclass(frozen=True)
class PlannedGroup:
    """A task group: one KFP DAG task (or several nested loops flattened into one)."""

    group_id: str  # full dotted id, as Airflow will compute it
    name: str  # the group's own id inside its parent
    parent: str | None
    kfp_path: str  # KFP task names joined with '/'
    tooltip: str = ""
    iterations_task: str | None = None  # for loops: the task whose output is expanded
    parallelism_limit: int | None = None


@dataclass(frozen=True)
class PlannedTask:
    task_id: str  # full dotted Airflow task id
    name: str  # id inside its group
    group: str | None  # group_id, or None at the top level
    kind: str  # EXECUTOR, CONDITION or ITERATIONS
    kfp_path: str  # "exit-handler-1/for-loop-2/train" (summary keys)
    loops: tuple[str, ...]  # iterations task ids of enclosing loops, outermost first
    gates: tuple[Output, ...]  # enclosing conditions' verdicts; all must hold
    upstream: frozenset[str] = frozenset()
    all_done: bool = False  # ALL_UPSTREAM_TASKS_COMPLETED (exit tasks, ignore_upstream_failure)
    inputs: Mapping[str, Binding] = field(default_factory=dict)
    # executor tasks
    component: str | None = None
    executor: str | None = None
    task: Task | None = None
    # condition gates
    condition: str | None = None
    # the tasks a false condition skips through the scheduler (its branch in the same
    # loop context: one gate instance per map index); see :func:`_with_branches`
    branch: tuple[str, ...] = ()
    # iterations tasks: the items binding (a list, or a JSON list literal)
    items: Binding | None = None
    # kfp-kubernetes settings given as parameters (secret names, PVC names, …)
    # (source, binding) pairs: a source can hold a dict constant, so no mapping
    platform_inputs: tuple[tuple[Any, Binding], ...] = ()


@dataclass(frozen=True)
class Plan:
    pipeline: Pipeline
    groups: Mapping[str, PlannedGroup]
    tasks: Mapping[str, PlannedTask]  # by task_id, in a stable topological-ish order
    outputs: Mapping[str, Binding]  # pipeline outputs

    def executor_tasks(self) -> Iterable[PlannedTask]:
        return (t for t in self.tasks.values() if t.kind == EXECUTOR)


# ---------------------------------------------------------------------------
# Building the plan
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """Where we are while walking DAG components."""

    component: Component
    parent: _Scope | None = None
    dag_task: Task | None = None  # the task that invoked this DAG component
    airflow_groups: tuple[str, ...] = ()  # group names from the top
    mapped_at: int | None = None  # index in airflow_groups of the innermost mapped group
    kfp_path: tuple[str, ...] = ()
    loops: tuple[str, ...] = ()
    gates: tuple[Output, ...] = ()
    loop_id: str | None = None  # iterations task id if this scope is a loop body


def _join(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


class _Planner:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.groups: dict[str, PlannedGroup] = {}
        self.tasks: dict[str, PlannedTask] = {}
        # KFP DAG-task identity → Airflow task ids in its subtree
        self.subtree: dict[tuple[str, ...], list[str]] = {}

    # -- walking --------------------------------------------------------------
    def plan(self) -> Plan:
        root = _Scope(self.pipeline.root)
        self._walk(root, inherited=frozenset())
        outputs = {
            name: self._dag_output_binding(root, output.name)
            for name, output in (self.pipeline.root.dag.outputs.items() if self.pipeline.root.dag else ())
        }
        return Plan(self.pipeline, self.groups, _with_branches(self.tasks), outputs)

    def _walk(self, scope: _Scope, inherited: frozenset[str]) -> list[str]:
        """Plan every task of ``scope``'s DAG; returns all Airflow task ids planned."""
        dag = scope.component.dag
        assert dag is not None
        planned: list[str] = []
        # Plan in dependency order so upstream leaves are known.
        for task in _topological(dag.tasks):
            deps: set[str] = set()
            for sibling in upstream_tasks(task):
                deps |= self._leaves(scope.kfp_path + (sibling,))
            task_inherited = frozenset(deps) if deps else inherited
            all_done = task.trigger_strategy is TriggerStrategy.ALL_UPSTREAM_TASKS_COMPLETED
            component = self.pipeline.components[task.component]
            if component.dag is None:
                ids = [self._plan_executor(scope, task, component, task_inherited, all_done)]
            else:
                ids = self._plan_dag_task(scope, task, component, task_inherited, all_done)
            self.subtree[scope.kfp_path + (task.name,)] = ids
            planned.extend(ids)
        return planned

    def _leaves(self, kfp_path: tuple[str, ...]) -> set[str]:
        ids = self.subtree.get(kfp_path, [])
        inside = set(ids)
        upstream_of_others = set()
        for task_id in ids:
            upstream_of_others |= self.tasks[task_id].upstream & inside
        return inside - upstream_of_others

    def _plan_executor(
        self, scope: _Scope, task: Task, component: Component, upstream: frozenset[str], all_done: bool
    ) -> str:
        group = _join(*scope.airflow_groups) or None
        task_id = _join(group, task.name)
        inputs = {name: self._input_binding(scope, task, name) for name in _input_names(task, component)}
        platform_inputs = tuple(
            (source, self._source_binding(scope, source, False))
            for source in self._platform_sources(component.executor_label)
        )
        for source, _ in platform_inputs:
            if isinstance(source, TaskOutput):  # e.g. a PVC name from CreatePVC
                upstream = upstream | self._leaves(scope.kfp_path + (source.producer_task,))
        self.tasks[task_id] = PlannedTask(
            task_id=task_id,
            name=task.name,
            group=group,
            kind=EXECUTOR,
            kfp_path="/".join(scope.kfp_path + (task.name,)),
            loops=scope.loops,
            gates=scope.gates,
            upstream=upstream,
            all_done=all_done,
            inputs=inputs,
            component=component.name,
            executor=component.executor_label,
            task=task,
            condition=task.condition,
            platform_inputs=platform_inputs,
        )
        return task_id

    def _platform_sources(self, executor_label: str | None) -> list[Any]:
        platform = self.pipeline.platform
        config = platform.executors.get(executor_label) if platform is not None and executor_label else None
        found: list[Any] = []
        _collect_sources(config, found)
        return found

    def _plan_dag_task(
        self, scope: _Scope, task: Task, component: Component, upstream: frozenset[str], all_done: bool
    ) -> list[str]:
        groups = scope.airflow_groups
        mapped_at = scope.mapped_at
        loops = scope.loops
        loop_id = None
        planned: list[str] = []
        is_loop = task.iterator is not None
        if is_loop and mapped_at is not None:
            # Airflow cannot nest mapped groups: hoist beside the outer loop's group.
            name = "__".join((*groups[mapped_at:], task.name))
            parent_groups = groups[:mapped_at]
        else:
            name = task.name
            parent_groups = groups
        parent_group = _join(*parent_groups) or None
        group_id = _join(parent_group, name)
        if is_loop:
            loop_id = _join(parent_group, name + ITERATIONS_SUFFIX)
            self.tasks[loop_id] = PlannedTask(
                task_id=loop_id,
                name=name + ITERATIONS_SUFFIX,
                group=parent_group,
                kind=ITERATIONS,
                kfp_path="/".join(scope.kfp_path + (task.name,)),
                loops=loops,
                gates=scope.gates,
                upstream=upstream,
                all_done=all_done,
                items=self._items_binding(scope, task),
            )
            planned.append(loop_id)
            upstream = frozenset({loop_id})
            loops = loops + (loop_id,)
            mapped_at = len(parent_groups)
        self.groups[group_id] = PlannedGroup(
            group_id=group_id,
            name=name,
            parent=parent_group,
            kfp_path="/".join(scope.kfp_path + (task.name,)),
            tooltip=task.display_name or task.name,
            iterations_task=loop_id,
            parallelism_limit=task.parallelism_limit,
        )
        inner = _Scope(
            component=component,
            parent=scope,
            dag_task=task,
            airflow_groups=(*parent_groups, name),
            mapped_at=mapped_at,
            kfp_path=scope.kfp_path + (task.name,),
            loops=loops,
            gates=scope.gates,
            loop_id=loop_id,
        )
        if task.condition:
            gate_id = _join(group_id, GATE_TASK_NAME)
            parameters = {
                name: self._input_binding(scope, task, name)
                for name, task_input in task.inputs.items()
                if not task_input.is_artifact
            }
            self.tasks[gate_id] = PlannedTask(
                task_id=gate_id,
                name=GATE_TASK_NAME,
                group=group_id,
                kind=CONDITION,
                kfp_path="/".join(inner.kfp_path),
                loops=loops,
                gates=scope.gates,
                upstream=upstream,
                all_done=all_done,
                inputs=parameters,
                component=component.name,
                condition=task.condition,
            )
            planned.append(gate_id)
            upstream = frozenset({gate_id})
            inner = replace(inner, gates=scope.gates + (Output(gate_id, GATE_OUTPUT, False, loops),))
        planned.extend(self._walk(inner, upstream))
        # Tasks with ALL_UPSTREAM_TASKS_COMPLETED on a DAG task apply to its roots.
        if all_done and not task.condition and not is_loop:
            for task_id in planned:
                planned_task = self.tasks[task_id]
                if planned_task.upstream and planned_task.upstream <= upstream:
                    self.tasks[task_id] = replace(planned_task, all_done=True)
        return planned

    # -- bindings ---------------------------------------------------------------
    def _input_binding(self, scope: _Scope, task: Task, name: str) -> Binding:
        task_input = task.inputs.get(name)
        if task_input is None:
            # Not passed: the component's default applies where it runs (KFP's
            # driver fills it in without making the input "present" for IfPresent).
            return Absent()
        binding = self._source_binding(scope, task_input.source, task_input.is_artifact)
        if task_input.selector:
            binding = Selected(binding, task_input.selector)
        return binding

    def _source_binding(self, scope: _Scope, source: Any, is_artifact: bool) -> Binding:
        if isinstance(source, Constant):
            return Literal(source.value)
        if isinstance(source, ComponentInput):
            return self._component_input_binding(scope, source.name)
        if isinstance(source, TaskOutput):
            return self._task_output_binding(scope, source.producer_task, source.output_key, is_artifact)
        if isinstance(source, TaskFinalStatus):
            ids = tuple(sorted(self.subtree.get(scope.kfp_path + (source.producer_task,), ())))
            return FinalStatus(source.producer_task, ids, self.pipeline.name)
        raise AssertionError(f"unknown source {source!r}")

    def _component_input_binding(self, scope: _Scope, name: str) -> Binding:
        if scope.dag_task is None:  # root: a pipeline parameter or artifact
            return RunParam(name)
        task = scope.dag_task
        iterator = task.iterator
        if iterator is not None and name == iterator.item_input:
            return LoopItem(scope.loop_id or "")
        if name in task.inputs:
            assert scope.parent is not None
            return self._input_binding(scope.parent, task, name)
        spec = scope.component.inputs.parameters.get(name)
        if spec is not None and spec.has_default:
            return Literal(spec.default)
        return Absent()

    def _task_output_binding(self, scope: _Scope, producer: str, key: str, is_artifact: bool) -> Binding:
        dag = scope.component.dag
        assert dag is not None
        producer_task = dag.tasks[producer]
        component = self.pipeline.components[producer_task.component]
        if component.dag is None:
            task_id = _join(_join(*scope.airflow_groups) or None, producer)
            return Output(task_id, key, is_artifact, scope.loops)
        inner = self._scope_of(scope, producer_task)
        return self._dag_output_binding(inner, key)

    def _dag_output_binding(self, scope: _Scope, key: str) -> Binding:
        assert scope.component.dag is not None
        output = scope.component.dag.outputs[key]
        options = tuple(
            self._task_output_binding(scope, s.producer_task, s.output_key, output.is_artifact)
            for s in output.selectors
        )
        return OneOf(options) if output.is_oneof else options[0]

    def _scope_of(self, scope: _Scope, task: Task) -> _Scope:
        """The scope of a DAG task's body, as :meth:`_plan_dag_task` built it."""
        group_id = self._group_for(scope, task)
        group = self.groups[group_id]
        groups = tuple(group_id.split("."))
        loops = scope.loops + ((group.iterations_task,) if group.iterations_task else ())
        mapped_at = len(groups) - 1 if group.iterations_task else scope.mapped_at
        gates = scope.gates
        gate_id = _join(group_id, GATE_TASK_NAME)
        if gate_id in self.tasks:
            gates = gates + (Output(gate_id, GATE_OUTPUT, False, loops),)
        return _Scope(
            component=self.pipeline.components[task.component],
            parent=scope,
            dag_task=task,
            airflow_groups=groups,
            mapped_at=mapped_at,
            kfp_path=scope.kfp_path + (task.name,),
            loops=loops,
            gates=gates,
            loop_id=group.iterations_task,
        )

    def _group_for(self, scope: _Scope, task: Task) -> str:
        path = "/".join(scope.kfp_path + (task.name,))
        for group in self.groups.values():
            if group.kfp_path == path:
                return group.group_id
        raise AssertionError(f"no group planned for {path}")

    def _items_binding(self, scope: _Scope, task: Task) -> Binding:
        iterator = task.iterator
        if isinstance(iterator, ParameterIterator):
            if iterator.raw_items is not None:
                import json

                return Literal(json.loads(iterator.raw_items))
            return self._input_binding(scope, task, iterator.input_parameter or "")
        assert isinstance(iterator, ArtifactIterator)
        return self._input_binding(scope, task, iterator.input_artifact)


def _collect_sources(value: Any, found: list[Any]) -> None:
    """Every value source inside a (frozen dataclass) platform config, in order."""
    import dataclasses

    if isinstance(value, (ComponentInput, TaskOutput, Constant)):
        if value not in found:
            found.append(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _collect_sources(getattr(value, item.name), found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_sources(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_sources(item, found)


def _input_names(task: Task, component: Component) -> list[str]:
    """Declared inputs in declaration order, then undeclared ones the task passes
    (the SDK passes e.g. resource-setting parameters that only placeholders read)."""
    names = list(component.inputs.parameters) + list(component.inputs.artifacts)
    return names + [name for name in task.inputs if name not in names]


def _topological(tasks: Mapping[str, Task]) -> list[Task]:
    """Tasks ordered so producers come before consumers (validated acyclic)."""
    ordered: list[Task] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for upstream in sorted(upstream_tasks(tasks[name])):
            if upstream in tasks:
                visit(upstream)
        ordered.append(tasks[name])

    for name in tasks:
        visit(name)
    return ordered


def _with_branches(tasks: dict[str, PlannedTask]) -> dict[str, PlannedTask]:
    """Give each condition gate the tasks of its branch that Airflow can skip for it.

    A false gate marks them skipped (at its own map index) before they are scheduled,
    so no worker starts for them. Only tasks with the gate's own instances qualify:
    the same (or no) mapped group. Tasks of loops inside the branch (and their
    iterations tasks, when the gate is itself in a loop) still skip themselves on the
    gate's verdict.
    """
    gates = {task_id: task for task_id, task in tasks.items() if task.kind == CONDITION}
    branches: dict[str, list[str]] = {gate_id: [] for gate_id in gates}
    for task_id, task in tasks.items():
        for gate in task.gates:
            same_instances = task.loops == gates[gate.task_id].loops if gate.task_id in gates else False
            # (a nested loop's iterations task is unmapped even inside a loop)
            if same_instances and not (task.kind == ITERATIONS and task.loops):
                branches[gate.task_id].append(task_id)
    return {
        task_id: replace(task, branch=tuple(branches[task_id])) if task_id in branches else task
        for task_id, task in tasks.items()
    }


def build_plan(pipeline: Pipeline) -> Plan:
    return _Planner(pipeline).plan()
