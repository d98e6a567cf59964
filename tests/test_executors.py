"""KfxLocalExecutor holds a loop's task to its ``ParallelFor(parallelism=n)`` under
``dag.test(use_executor=True)`` (``kfx run --parallelism``), which, unlike the scheduler,
queues every ready instance at once."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.models.taskinstancekey import TaskInstanceKey

from airflow_kfx import executors
from airflow_kfx.executors import KfxLocalExecutor, hold_to_task_limits


@pytest.fixture
def limits() -> Iterator[None]:
    yield
    executors._TASK_LIMITS.clear()


def _queue(executor: KfxLocalExecutor, task_id: str, count: int, run_id: str = "r1") -> list[TaskInstanceKey]:
    keys = [TaskInstanceKey("sleepy", task_id, run_id, 1, index) for index in range(count)]
    for key in keys:
        executor.queued_tasks[key] = SimpleNamespace(ti=SimpleNamespace(priority_weight=1), key=key)
    return keys


def _dispatch(executor: KfxLocalExecutor, open_slots: int) -> list[Any]:
    chosen = [key for key, _ in executor._get_workloads_to_schedule(open_slots)]
    for key in chosen:  # what LocalExecutor._process_workloads does with them
        executor.queued_tasks.pop(key)
    return chosen


def test_a_limited_task_starts_no_more_instances_than_its_limit_until_one_finishes(limits: None) -> None:
    dag = SimpleNamespace(dag_id="sleepy", tasks=[
        SimpleNamespace(task_id="for-loop-2.nap-2", max_active_tis_per_dagrun=2),
        SimpleNamespace(task_id="for-loop-1.nap", max_active_tis_per_dagrun=None),
    ])
    hold_to_task_limits(dag)
    executor = KfxLocalExecutor(parallelism=8)
    limited = _queue(executor, "for-loop-2.nap-2", 4)
    free = _queue(executor, "for-loop-1.nap", 4)
    other_run = _queue(executor, "for-loop-2.nap-2", 1, run_id="r2")

    first = _dispatch(executor, 8)
    assert sorted(first) == sorted(limited[:2] + free + other_run)  # the limit is per task and run
    assert _dispatch(executor, 8) == []  # the two others wait, though slots are open
    executor.running_state(limited[0])  # the RUNNING report frees nothing
    assert _dispatch(executor, 8) == []
    executor.success(limited[0])
    assert _dispatch(executor, 8) == [limited[2]]
    executor.fail(limited[1])
    assert _dispatch(executor, 8) == [limited[3]]


def test_open_slots_still_bound_what_starts(limits: None) -> None:
    hold_to_task_limits(SimpleNamespace(dag_id="sleepy", tasks=[SimpleNamespace(task_id="a", max_active_tis_per_dagrun=3)]))
    executor = KfxLocalExecutor(parallelism=2)
    keys = _queue(executor, "a", 3)
    assert _dispatch(executor, 2) == keys[:2]
    assert _dispatch(executor, 1) == keys[2:]


def test_without_registered_limits_the_executor_is_the_local_executors(limits: None) -> None:
    """Under the scheduler (nothing registered) every queued instance goes, as LocalExecutor sends them."""
    executor = KfxLocalExecutor(parallelism=8)
    keys = _queue(executor, "for-loop-2.nap-2", 4)
    assert sorted(_dispatch(executor, 8)) == sorted(keys)
