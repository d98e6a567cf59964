"""Resolve a planned task's :data:`~airflow_kfx.plan.Binding` values at run time.

Pure logic over a :class:`Fetcher`, so it is tested without Airflow; the operator
supplies a fetcher backed by XCom, DAG-run params and task states.

Iteration paths: a task instance inside loops has a *path*, one index per
enclosing loop (outermost first). Loop iterations tasks return records
``{"path": [...], "item": ...}``; a mapped task's map index is the position of
its record in its innermost loop's list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.plan import (
    Absent,
    ArtifactText,
    AsFile,
    AsText,
    Binding,
    FinalStatus,
    LoopItem,
    OneOf,
    Output,
    RunParam,
    Selected,
    XComValue,
)
from airflow_kfx.plan import Literal as LiteralValue

UNMAPPED = -1


class Missing(Exception):
    """A value that was never produced (its producer was skipped or failed)."""


class Fetcher(Protocol):
    def task_result(self, task_id: str, map_index: int) -> Any:
        """The ``return_value`` XCom of one task instance (None if absent)."""

    def task_results(self, task_id: str, map_indexes: Sequence[int]) -> list[Any]:
        """The ``return_value`` XComs of several instances of a mapped task."""

    def xcom(self, task_id: str, key: str) -> Any:
        """Any XCom of an unmapped task (None if absent)."""

    def run_param(self, name: str) -> Any:
        """A pipeline parameter of this run; raises KeyError when not given."""

    def task_states(self, task_ids: Sequence[str]) -> Mapping[str, str]:
        """``{task_id or task_id_mapindex: state}`` for this run."""

    def run_info(self) -> Mapping[str, str]:
        """``{"dag_id", "run_id", ...}`` of this run, for PipelineTaskFinalStatus."""


@dataclass
class Resolver:
    """Resolves bindings for one task instance (its loops and iteration path)."""

    fetcher: Fetcher
    loops: tuple[str, ...]
    path: tuple[int, ...] = ()
    _iterations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def for_instance(cls, fetcher: Fetcher, loops: tuple[str, ...], map_index: int) -> Resolver:
        resolver = cls(fetcher, loops)
        if loops:
            records = resolver.iterations(loops[-1])
            if not 0 <= map_index < len(records):
                raise TaskRuntimeError(
                    f"map index {map_index} is outside the {len(records)} iterations of {loops[-1]}"
                )
            resolver.path = tuple(records[map_index]["path"])
        return resolver

    # -- loops ------------------------------------------------------------------
    def iterations(self, loop: str) -> list[dict[str, Any]]:
        if loop not in self._iterations:
            records = self.fetcher.task_result(loop, UNMAPPED)
            self._iterations[loop] = list(records or [])
        return self._iterations[loop]

    def _map_index_of(self, loop: str, path: tuple[int, ...]) -> int:
        for index, record in enumerate(self.iterations(loop)):
            if tuple(record["path"]) == path:
                return index
        raise Missing(f"no iteration {list(path)} in {loop}")

    # -- bindings ---------------------------------------------------------------
    def resolve(self, binding: Binding) -> Any:
        """The value, or raises :class:`Missing` when it was never produced."""
        if isinstance(binding, LiteralValue):
            return binding.value
        if isinstance(binding, RunParam):
            try:
                return self.fetcher.run_param(binding.name)
            except KeyError:
                raise Missing(f"pipeline parameter '{binding.name}' was not given") from None
        if isinstance(binding, Output):
            return self._output(binding)
        if isinstance(binding, LoopItem):
            depth = self.loops.index(binding.loop) + 1
            record = self.iterations(binding.loop)[self._map_index_of(binding.loop, self.path[:depth])]
            return record["item"]
        if isinstance(binding, OneOf):
            for option in binding.options:
                try:
                    return self.resolve(option)
                except Missing:
                    continue
            raise Missing("no branch of the dsl.OneOf produced a value")
        if isinstance(binding, Selected):
            from airflow_kfx.expressions import apply_selector

            return apply_selector(binding.selector, self.resolve(binding.inner))
        if isinstance(binding, FinalStatus):
            return self._final_status(binding)
        if isinstance(binding, XComValue):
            value = self.fetcher.xcom(binding.task_id, binding.key)
            if value is None:
                raise Missing(f"task '{binding.task_id}' pushed no XCom '{binding.key}'")
            return value
        if isinstance(binding, AsText):
            from airflow_kfx.spec.v1_component import serialize_v1

            return serialize_v1(self.resolve(binding.inner), binding.v1_type)
        if isinstance(binding, ArtifactText):
            return read_artifact_text(self.resolve(binding.inner))
        if isinstance(binding, AsFile):
            return InlineFile(self.resolve(binding.inner))
        if isinstance(binding, Absent):
            raise Missing("no value given")
        raise TypeError(f"unknown binding {binding!r}")

    def _output(self, binding: Output) -> Any:
        shared = 0
        for mine, theirs in zip(self.loops, binding.loops):
            if mine != theirs:
                break
            shared += 1
        kind = "artifacts" if binding.is_artifact else "parameters"
        if len(binding.loops) == shared:
            index = UNMAPPED if shared == 0 else self._map_index_of(binding.loops[-1], self.path[:shared])
            result = self.fetcher.task_result(binding.task_id, index)
            return _pick(result, kind, binding)
        # dsl.Collected: every iteration of the producer's extra loops, in order.
        prefix = self.path[:shared]
        records = self.iterations(binding.loops[-1])
        indexes = [i for i, r in enumerate(records) if tuple(r["path"][:shared]) == prefix]
        results = self.fetcher.task_results(binding.task_id, indexes) if indexes else []
        values: list[tuple[tuple[int, ...], Any]] = []
        for index, result in zip(indexes, results):
            try:
                values.append((tuple(records[index]["path"][shared:]), _pick(result, kind, binding)))
            except Missing:
                continue  # an iteration that was skipped contributes nothing
        return _nest(values, len(binding.loops) - shared)

    def _final_status(self, binding: FinalStatus) -> dict[str, Any]:
        states = self.fetcher.task_states(binding.task_ids)
        failed = sorted(k for k, s in states.items() if s in ("failed", "upstream_failed"))
        info = self.fetcher.run_info()
        from airflow_kfx.runtime.invocation import job_resource_name

        status: dict[str, Any] = {
            # KFP's backend reports the MLMD execution state: COMPLETE or FAILED
            # (its own backend test asserts 'COMPLETE'; the SDK docs say SUCCEEDED).
            "state": "FAILED" if failed else "COMPLETE",
            # the same value {{$.pipeline_job_resource_name}} gets
            "pipelineJobResourceName": job_resource_name(
                binding.pipeline_name, info.get("dag_id", ""), info.get("run_id", "")
            ),
            "pipelineTaskName": binding.task_name,
        }
        if failed:
            culprits = [k for k in failed if states[k] == "failed"] or failed
            status["error"] = {"code": 2, "message": f"failed tasks: {', '.join(culprits)}"}
        return status


@dataclass(frozen=True)
class InlineFile:
    """A value to hand to the component as a file (see :class:`~airflow_kfx.plan.AsFile`)."""

    value: Any


def pipeline_outputs(plan: Any, fetcher: Fetcher) -> dict[str, dict[str, Any]]:
    """The pipeline's own outputs (``{"parameters": …, "artifacts": …}``) as far as their
    producers ran: what KFP's run page lists, for ``kfx run``'s summary and MLflow."""
    resolver = Resolver(fetcher, ())
    outputs: dict[str, dict[str, Any]] = {"parameters": {}, "artifacts": {}}
    for name, binding in plan.outputs.items():
        try:
            value = resolver.resolve(binding)
        except Missing:  # its producer did not run
            continue
        is_artifact = plan.pipeline.root.dag.outputs[name].is_artifact
        outputs["artifacts" if is_artifact else "parameters"][name] = value
    return outputs


def read_artifact_text(value: Any) -> str:
    """The content of an artifact (descriptor, or a one-element list of them) as text."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, Mapping) or "uri" not in value:
        raise TaskRuntimeError(f"expected an artifact, got {value!r}")
    from airflow_kfx.runtime.storage import read_text

    return read_text(str(value["uri"]))


def _pick(result: Any, kind: str, binding: Output) -> Any:
    if not isinstance(result, Mapping) or binding.key not in result.get(kind, {}):
        raise Missing(f"task '{binding.task_id}' produced no {kind[:-1]} '{binding.key}'")
    return result[kind][binding.key]


def _nest(values: list[tuple[tuple[int, ...], Any]], depth: int) -> list[Any]:
    """Group (path suffix, value) pairs into nested lists, one level per loop."""
    if depth <= 1:
        return [value for _, value in values]
    groups: dict[int, list[tuple[tuple[int, ...], Any]]] = {}
    for path, value in values:
        groups.setdefault(path[0], []).append((path[1:], value))
    return [_nest(groups[key], depth - 1) for key in sorted(groups)]
