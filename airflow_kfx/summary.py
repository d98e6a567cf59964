"""The result of one pipeline run, in KFP terms (``kfx run --json``, PRODUCT.md §6).

Built from the Airflow metadata database after a run: task-instance states and the
outputs each task returned as XCom. Task keys are KFP task paths; the operators
airflow-kfx adds (condition gates, loop iterations, run status, workspace) are
Airflow plumbing and left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_kfx.plan import EXECUTOR, Plan
from airflow_kfx.runtime.resolve import pipeline_outputs

# Airflow task-instance state → the summary's state.
_STATES = {"success": "success", "failed": "failed", "skipped": "skipped", "upstream_failed": "upstream_failed"}


@dataclass
class RecordedFetcher:
    """A resolver fetcher over results already read from the database."""

    results: Mapping[tuple[str, int], Any]
    params: Mapping[str, Any]

    def task_result(self, task_id: str, map_index: int) -> Any:
        return self.results.get((task_id, map_index))

    def task_results(self, task_id: str, map_indexes: Sequence[int]) -> list[Any]:
        return [self.results.get((task_id, i)) for i in map_indexes]

    def xcom(self, task_id: str, key: str) -> Any:
        return None

    def run_param(self, name: str) -> Any:
        return self.params[name]

    def task_states(self, task_ids: Sequence[str]) -> Mapping[str, str]:
        return {}

    def run_info(self) -> Mapping[str, str]:
        return {}


def summarize(
    plan: Plan,
    *,
    dag_id: str,
    run_id: str,
    state: str,
    params: Mapping[str, Any],
    states: Mapping[tuple[str, int], str],
    results: Mapping[tuple[str, int], Any],
    cache_hits: Mapping[tuple[str, int], bool] | None = None,
    mlflow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    cache_hits = cache_hits or {}
    tasks: dict[str, Any] = {}
    for planned in plan.tasks.values():
        if planned.kind != EXECUTOR:
            continue
        instances = sorted(i for (t, i) in states if t == planned.task_id)
        if not planned.loops:
            tasks[planned.kfp_path] = _instance(planned.task_id, -1, states, results, cache_hits)
            continue
        iterations = [_instance(planned.task_id, i, states, results, cache_hits) for i in instances if i >= 0]
        entry: dict[str, Any] = {"state": _group_state([it["state"] for it in iterations], states.get((planned.task_id, -1))), "iterations": iterations}
        tasks[planned.kfp_path] = entry
    outputs = pipeline_outputs(plan, RecordedFetcher(results, params))
    outputs["artifacts"] = {name: _artifact_summary(value) for name, value in outputs["artifacts"].items()}
    return {
        "pipeline": plan.pipeline.name,
        "dag_id": dag_id,
        "run_id": run_id,
        "state": "success" if state == "success" else "failed",
        "mlflow": dict(mlflow) if mlflow else {"tracking_uri": None, "experiment_id": None, "run_id": None},
        "outputs": outputs,
        "tasks": tasks,
    }


def _instance(
    task_id: str,
    map_index: int,
    states: Mapping[tuple[str, int], str],
    results: Mapping[tuple[str, int], Any],
    cache_hits: Mapping[tuple[str, int], bool],
) -> dict[str, Any]:
    raw = states.get((task_id, map_index))
    summary: dict[str, Any] = {"state": _STATES.get(str(raw), "skipped" if raw in (None, "removed") else "failed")}
    result = results.get((task_id, map_index))
    if isinstance(result, Mapping):
        summary["outputs"] = {
            "parameters": dict(result.get("parameters") or {}),
            "artifacts": {name: _artifact_summary(refs) for name, refs in (result.get("artifacts") or {}).items()},
        }
    if raw == "success":
        summary["cache_hit"] = cache_hits.get((task_id, map_index), False)
    return summary


def _artifact_summary(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], Mapping):
            return _artifact_summary(value[0])
        return [_artifact_summary(v) for v in value]
    if isinstance(value, Mapping):
        return {"uri": value.get("uri"), "metadata": dict(value.get("metadata") or {})}
    return value


def _group_state(states: list[str], unmapped: str | None) -> str:
    if not states:
        # A loop that never expanded: zero iterations (skipped) or never reached.
        return _STATES.get(str(unmapped), "skipped")
    for state in ("failed", "upstream_failed"):
        if state in states:
            return state
    if all(s == "skipped" for s in states):
        return "skipped"
    return "success"
