"""MLflow tracking against a real ``mlflow server`` on 127.0.0.1 and a plain SQLite store.

Pipelines run for real (``dag.test()``, local runtime); MLflow is read back with
``MlflowClient``, as a user would browse it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mlflow_server import MlflowServer
from tests.runs import RunResult, run_pipeline
from tests.support import FIXTURES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    mlflow_server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    mlflow_server.start()
    yield mlflow_server
    mlflow_server.stop()


@pytest.fixture()
def tracked(server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """Point the mlflow_default connection at the server (the hook's first choice)."""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", f'{{"conn_type": "mlflow", "host": "{server.url}"}}')
    return server


def runs_of(client: Any, experiment: str, run: RunResult) -> tuple[Any, list[Any]]:
    """The pipeline run of one DAG run and every run nested (at any depth) under it."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    everything = client.search_runs([experiment_id], filter_string=f"tags.`kfx.run_id` = '{run.run_id}'", max_results=1000)
    parents = [r for r in everything if r.data.tags.get("kfx.kind") == "pipeline-run"]
    assert len(parents) == 1, [r.data.tags for r in parents]
    return parents[0], [r for r in everything if r.info.run_id != parents[0].info.run_id]


def by_task(nested: list[Any]) -> dict[tuple[str, str], Any]:
    tasks = [r for r in nested if r.data.tags.get("kfx.kind") == "task"]
    result = {(r.data.tags["kfx.task_id"], r.data.tags["kfx.map_index"]): r for r in tasks}
    assert len(result) == len(tasks), "a task execution has two MLflow runs"
    return result


def test_pipeline_run_and_nested_task_runs(tracked: MlflowServer, dags_folder: Path) -> None:
    run = run_pipeline(FIXTURES / "constants_and_outputs.yaml", dags_folder)
    assert run.state == "success"
    parent, nested = runs_of(tracked.client(), "constants-and-outputs", run)
    assert parent.info.run_name == run.run_id
    experiment = tracked.client().get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow opens the runs table
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["kfx.dag_id"] == "constants_and_outputs" and tags["kfx.pipeline"] == "constants-and-outputs"
    assert len(tags["kfx.pipeline_digest"]) == 64
    assert tags["kfx.airflow_url"].endswith(f"/dags/constants_and_outputs/runs/{run.run_id.replace(':', '%3A').replace('+', '%2B')}")
    tasks = by_task(nested)
    executed = {task_id for (task_id, index), state in run.states.items() if state == "success" and not task_id.startswith("kfx-")}
    assert {task_id for task_id, _ in tasks} == executed
    for task_run in tasks.values():
        assert task_run.info.status == "FINISHED"
        assert task_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert task_run.data.tags["kfx.try_number"] == "1"
        assert task_run.data.tags["kfx.cache_hit"] == "false"
        assert task_run.data.tags["kfx.image"]
    add = tasks[("add", "-1")]
    assert add.data.params["a"] == "2" and add.data.params["b"] == "3"  # input parameters
    assert add.data.params["output.Output"] == "5"


def test_loop_iterations_nest_under_the_loop(tracked: MlflowServer, dags_folder: Path) -> None:
    run = run_pipeline(FIXTURES / "loops.yaml", dags_folder)
    parent, nested = runs_of(tracked.client(), "loops", run)
    loops = {r.data.tags["kfx.loop"]: r for r in nested if r.data.tags.get("kfx.kind") == "loop"}
    assert loops["for-loop-2-iterations"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {r.info.status for r in loops.values()} == {"FINISHED"}  # closed with the run, not left RUNNING
    tasks = by_task(nested)
    squares = [r for (task_id, _), r in tasks.items() if task_id == "for-loop-2.square"]
    assert len(squares) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in squares} == {loops["for-loop-2-iterations"].info.run_id}
    assert sorted(r.data.params["output.Output"] for r in squares) == ["1", "4", "9"]


def test_a_retried_task_has_one_run_with_its_try_number(tracked: MlflowServer, dags_folder: Path, tmp_path: Path) -> None:
    run = run_pipeline(FIXTURES / "retry_once.yaml", dags_folder, {"marker_dir": str(tmp_path)})
    assert run.state == "success"
    _, nested = runs_of(tracked.client(), "retry-once", run)
    flaky = [r for r in by_task(nested).values() if r.data.tags["kfx.task_id"] == "flaky"]
    assert len(flaky) == 1
    assert flaky[0].data.tags["kfx.try_number"] == "2"
    assert flaky[0].info.status == "FINISHED"


def test_a_second_run_of_the_dag_gets_a_new_parent_run(tracked: MlflowServer, dags_folder: Path) -> None:
    first = run_pipeline(FIXTURES / "mlflow_env.yaml", dags_folder)
    second = run_pipeline(FIXTURES / "mlflow_env.yaml", dags_folder)
    client = tracked.client()
    parent_1, _ = runs_of(client, "mlflow-env", first)
    parent_2, _ = runs_of(client, "mlflow-env", second)
    assert parent_1.info.run_id != parent_2.info.run_id


def test_pods_get_their_task_runs_mlflow_env(tracked: MlflowServer, dags_folder: Path) -> None:
    run = run_pipeline(FIXTURES / "mlflow_env.yaml", dags_folder)
    _, nested = runs_of(tracked.client(), "mlflow-env", run)
    task_run = by_task(nested)[("report-env", "-1")]
    reported = run.parameter("report-env", "out")
    assert reported == (
        f"uri={tracked.url} experiment={task_run.info.experiment_id} run={task_run.info.run_id}"
    )


def test_failed_and_skipped_tasks_are_visible(tracked: MlflowServer, dags_folder: Path) -> None:
    run = run_pipeline(FIXTURES / "exit_handler_failing.yaml", dags_folder)
    assert run.state == "failed"
    parent, nested = runs_of(tracked.client(), "exit-handler-failing", run)
    assert parent.info.status == "FAILED"
    tasks = by_task(nested)
    assert tasks[("exit-handler-1.fail", "-1")].info.status == "FAILED"
    assert tasks[("report-status", "-1")].info.status == "FINISHED"
    never = tasks[("exit-handler-1.after-fail", "-1")]
    assert never.info.status == "KILLED" and never.data.tags["kfx.state"] == "upstream_failed"
    skipped_run = run_pipeline(FIXTURES / "conditions.yaml", dags_folder)
    _, nested = runs_of(tracked.client(), "conditions", skipped_run)
    skipped = by_task(nested)[("condition-2.say-2", "-1")]
    assert skipped.info.status == "KILLED" and skipped.data.tags["kfx.state"] == "skipped"


def test_the_mlflow_run_link_of_a_task(tracked: MlflowServer, dags_folder: Path) -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.models.xcom import XComModel
    from airflow.serialization.definitions.operatorlink import XComOperatorLink

    run = run_pipeline(FIXTURES / "mlflow_env.yaml", dags_folder)
    _, nested = runs_of(tracked.client(), "mlflow-env", run)
    task_run = by_task(nested)[("report-env", "-1")]
    expected = f"{tracked.url}/#/experiments/{task_run.info.experiment_id}/runs/{task_run.info.run_id}"
    # what the UI does: the serialised operator's link reads the XCom the worker stored
    link = XComOperatorLink(name="MLflow run", xcom_key="_link_MlflowRunLink")
    key = TaskInstanceKey(dag_id=run.dag_id, task_id="report-env", run_id=run.run_id, try_number=1, map_index=-1)
    assert link.get_link(None, ti_key=key) == expected
    assert XComModel is not None


def test_a_down_server_never_fails_or_stalls_the_pipeline(tracked: MlflowServer, dags_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracked.stop()
    try:
        started = time.monotonic()
        run = run_pipeline(FIXTURES / "constants_and_outputs.yaml", dags_folder)
        elapsed = time.monotonic() - started
        assert run.state == "success"
        assert run.parameter("double") == 10
        # Bounded waits, no retry storm: MLflow's own defaults (7 retries with backoff,
        # 120 s timeouts) would take many minutes here; the whole run stays short.
        assert elapsed < 120, elapsed
        monkeypatch.setenv("AIRFLOW__KFX__MLFLOW_STRICT", "true")
        strict = run_pipeline(FIXTURES / "mlflow_env.yaml", dags_folder)
        assert strict.state == "failed"
        assert strict.state_of("kfx-run-start") == "failed"
    finally:
        tracked.start()


def test_the_plain_sqlite_store(dags_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/store.db")
    run = run_pipeline(FIXTURES / "mlflow_env.yaml", dags_folder)
    from mlflow import MlflowClient

    parent, nested = runs_of(MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/store.db"), "mlflow-env", run)
    assert parent.info.status == "FINISHED"
    assert run.parameter("report-env", "out").startswith(f"uri=sqlite:///{tmp_path}/store.db ")
    assert len(by_task(nested)) == 1


def test_loop_runs_end_failed_when_an_iteration_failed(tmp_path: Path) -> None:
    """Iterations find their loop's run without reopening it; the end of the DAG run
    closes each loop run: FAILED when one of its iterations' runs failed."""
    from airflow_kfx.tracking.hook import TrackingTarget
    from airflow_kfx.tracking.runs import PipelineTracking
    from airflow_kfx.tracking.session import TrackingSession

    session = TrackingSession(TrackingTarget(f"sqlite:///{tmp_path}/mlflow.db"), strict=True)
    tracking = PipelineTracking(session, pipeline_name="p", digest="d", dag_id="p", run_id="r1", experiment=None)
    parent = tracking.parent()
    client = session.client
    outcomes = {"for-loop-1": ["FINISHED", "FINISHED"], "for-loop-2": ["FINISHED", "FAILED", "FINISHED"]}
    loops = {}
    for loop_id, statuses in outcomes.items():
        for index, status in enumerate(statuses):
            loops[loop_id] = tracking.loop(loop_id, loop_id, parent)
            child = tracking.nested(key={"kfx.kind": "task", "kfx.task_id": f"{loop_id}.t", "kfx.map_index": str(index)},
                                    name=f"t [{index}]", parent=loops[loop_id], tags={})
            client.set_terminated(child.run_id, status)
    tracking.close_loops(parent)
    assert {loop_id: client.get_run(ref.run_id).info.status for loop_id, ref in loops.items()} == {
        "for-loop-1": "FINISHED", "for-loop-2": "FAILED"}
    tracking.loop("for-loop-2", "for-loop-2", parent)  # a late finder (a cleared task) does not reopen it
    assert client.get_run(loops["for-loop-2"].run_id).info.status == "FAILED"


def test_params_show_inputs_as_the_component_received_them(tracked: MlflowServer, dags_folder: Path) -> None:
    """An f-string over an upstream output (``msg=f"heads and {n} > 4"``) is logged as
    the text the component received, never as its unresolved KFP placeholder."""
    from tests.support import REPO

    run = run_pipeline(REPO / "dags" / "pipelines" / "flip_coin.yaml", dags_folder, {"seed": 1})
    assert run.state == "success"
    _, nested = runs_of(tracked.client(), "flip-coin", run)
    messages = {r.data.params["msg"]: r for r in by_task(nested).values() if "msg" in r.data.params}
    assert "heads and 6 > 4" in messages, sorted(messages)
    parent, _ = runs_of(tracked.client(), "flip-coin", run)
    assert parent.data.params["output.Output"] == "heads: 6"  # the pipeline's own output
    assert not [m for m in messages if "{{" in m], sorted(messages)
    for message, task_run in messages.items():
        assert task_run.data.params["output.Output"] == message  # print_msg returns what it got
