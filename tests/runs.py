"""Running a pipeline for real in a test: Airflow's ``dag.test()`` on the local runtime."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RunResult:
    state: str
    run_id: str
    dag_id: str
    states: dict[tuple[str, int], str]  # (task_id, map_index) → state
    results: dict[tuple[str, int], Any]  # (task_id, map_index) → return_value XCom
    # task instances a worker ran (Airflow counts a try when it queues one; a task the
    # scheduler skips is never queued)
    started: frozenset[tuple[str, int]] = frozenset()

    def state_of(self, task_id: str, map_index: int = -1) -> str | None:
        return self.states.get((task_id, map_index))

    def parameter(self, task_id: str, name: str = "Output", map_index: int = -1) -> Any:
        return self.results[(task_id, map_index)]["parameters"][name]

    def artifact(self, task_id: str, name: str, map_index: int = -1) -> dict[str, Any]:
        return self.results[(task_id, map_index)]["artifacts"][name][0]

    def mapped(self, task_id: str, name: str = "Output") -> list[Any]:
        """One output of every instance of a mapped task, by map index."""
        indexes = sorted(i for (t, i) in self.results if t == task_id)
        return [self.results[(task_id, i)]["parameters"][name] for i in indexes]


def run_pipeline(
    pipeline: Path, dags_folder: Path, conf: dict[str, Any] | None = None, *, cache: bool = False, **load_kwargs: Any
) -> RunResult:
    """Load ``pipeline`` the way a DAG folder does and run it once with ``dag.test()``.

    KFP caching is off unless ``cache=True``, so each test sees its tasks really run.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from airflow_kfx import load_pipeline

    pipeline = pipeline.resolve()
    # dag.test() serialises DAGs from the DAG folder, so the pipeline must be there too.
    loader = dags_folder / f"kfx_{hashlib.sha1(str(pipeline).encode()).hexdigest()[:10]}.py"
    # (with the same options: plain data, written as Python literals)
    loader.write_text(f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(pipeline)!r}, **{load_kwargs!r})\n")
    dag = load_pipeline(pipeline, **load_kwargs)
    dag_run = dag.test(run_conf={"kfx_cache": cache, **(conf or {})})
    with create_session() as session:
        tis = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id
        )
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in tis}
        started = frozenset((ti.task_id, ti.map_index) for ti in tis if ti.try_number > 0)
        xcoms = session.query(XComModel).filter(
            XComModel.dag_id == dag.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.key == "return_value",
        )
        results = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in xcoms}
    return RunResult(str(dag_run.state), dag_run.run_id, dag.dag_id, states, results, started)
