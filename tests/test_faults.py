"""Faults: a pod killed by a signal, a pipeline root that cannot be written or is full,
MLflow down (tests/test_tracking.py), two runs and a 20-way loop at once on the real
scheduler — a clear error or graceful degradation, and nothing mixed or lost."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_stack import airflow_stack
from tests.kube.fixtures import KubeDouble, kube_double
from tests.runs import run_pipeline
from tests.support import FIXTURES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


@pytest.mark.parametrize("runtime", ["local", "kubernetes"])
def test_a_pod_killed_mid_write_is_retried_from_a_clean_folder(
    runtime: str, kube: KubeDouble, dags_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt writes a partial output and is SIGKILLed; the retry starts from
    an empty task folder, its own output is the one taken, one MLflow run records the
    task, and the cache holds the retry's outputs only."""
    from mlflow.tracking import MlflowClient

    from airflow_kfx.runtime import cache

    if runtime == "kubernetes":
        for name, value in kube.airflow_environment().items():
            monkeypatch.setenv(name, value)
    root = tmp_path / "root"
    monkeypatch.setenv("AIRFLOW__KFX__PIPELINE_ROOT", str(root))
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    result = run_pipeline(FIXTURES / "killed_task.yaml", dags_folder, conf={"marker_dir": str(tmp_path)}, cache=True)
    assert result.state == "success"
    assert result.parameter("write-then-die", "text") == "complete"
    assert result.parameter("read-it") == "read: complete"
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("killed-task")
    runs = client.search_runs([experiment.experiment_id], "tags.`kfx.task_id` = 'write-then-die'")
    assert [(r.info.status, r.data.tags["kfx.try_number"]) for r in runs] == [("FINISHED", "2")]
    entries = [json.loads(p.read_text()) for p in (root / cache.CACHE_FOLDER).glob("*.json")]
    texts = [e["parameters"].get("text") for e in entries if "text" in e["parameters"]]
    assert texts == ["complete"]


def test_an_unwritable_pipeline_root_is_a_clear_task_error(
    dags_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AIRFLOW__KFX__PIPELINE_ROOT", str(blocker / "root"))
    result = run_pipeline(FIXTURES / "constants_and_outputs.yaml", dags_folder)
    assert result.state == "failed"
    log = capfd.readouterr().out
    assert f"the pipeline root {blocker / 'root'} cannot be written" in log, log[-3000:]


@pytest.fixture
def tiny_root(tmp_path: Path) -> Iterator[Path]:
    """A pipeline root on a 256 KiB tmpfs: a disk that fills up (needs root, as CI has)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_pipeline_root_fails_the_task_that_fills_it_and_nothing_else_is_lost(
    dags_folder: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """``write-item`` of fan_out writes a small file per iteration; ``items`` of 64 KiB-sized
    tags fill the disk: the iterations that cannot write fail with the component's own
    'No space left on device', the others' outputs are intact."""
    monkeypatch.setenv("AIRFLOW__KFX__PIPELINE_ROOT", str(tiny_root))
    result = run_pipeline(FIXTURES / "fan_out.yaml", dags_folder, conf={"tag": "x" * 60_000, "items": list(range(8))})
    states = [result.state_of("for-loop-1.write-item", i) for i in range(8)]
    assert "failed" in states and "success" in states, states
    assert "No space left on device" in capfd.readouterr().out
    for index, state in enumerate(states):
        if state == "success":
            uri = result.artifact("for-loop-1.write-item", "data", index)["uri"]
            assert Path(uri).read_text() == "x" * 60_000 + f":{index}"


def test_two_runs_and_twenty_iterations_at_once_never_mix(kube: KubeDouble, tmp_path: Path) -> None:
    """The real scheduler (LocalExecutor, parallelism 8, PostgreSQL) runs two runs of
    fan_out at the same time, each a 20-way loop writing datasets and cache entries; each
    run's fan-in finds only its own outputs, and a third run reuses the cache correctly."""
    pipeline = FIXTURES / "fan_out.yaml"
    loader = f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(pipeline)!r})\n"
    env = {
        "AIRFLOW__KFX__RUNTIME": "local",
        "AIRFLOW__KFX__PIPELINE_ROOT": str(tmp_path / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
    }
    with airflow_stack(tmp_path / "airflow", dags={"fan_out.py": loader}, env=env) as stack:
        first = stack.trigger("fan_out", {"tag": "a", "offset": 0})
        second = stack.trigger("fan_out", {"tag": "b", "offset": 1000})
        assert stack.wait_for_run("fan_out", first, timeout=600) == "success", stack.logs()
        assert stack.wait_for_run("fan_out", second, timeout=600) == "success", stack.logs()
        # Four of run b's iterations again: each must be a hit on run b's own entry.
        again = stack.trigger("fan_out", {"tag": "b", "offset": 1000, "items": [3, 7, 11, 15]})
        assert stack.wait_for_run("fan_out", again, timeout=600) == "success", stack.logs()

        def output(run_id: str) -> int:
            rows = stack.query(
                "select value from xcom where dag_id = 'fan_out' and run_id = %s and task_id = 'check-all'"
                " and key = 'return_value'", run_id,
            )
            return rows[0][0]["parameters"]["Output"]

        def cache_hits(run_id: str) -> list[bool]:
            rows = stack.query(
                "select value from xcom where dag_id = 'fan_out' and run_id = %s and task_id = 'for-loop-1.write-item'"
                " and key = 'return_value'", run_id,
            )
            return [row[0].get("cache_hit") for row in rows]

        assert (output(first), output(second), output(again)) == (190, 20190, 1003 + 1007 + 1011 + 1015)
        assert cache_hits(first) == [False] * 20 and cache_hits(again) == [True] * 4
        overlapping = stack.query(
            "select count(*) from task_instance a join task_instance b on a.dag_id = b.dag_id and a.run_id < b.run_id"
            " where a.task_id = 'for-loop-1.write-item' and b.task_id = 'for-loop-1.write-item'"
            " and a.start_date < b.end_date and b.start_date < a.end_date"
        )
        assert overlapping[0][0] > 0, "the two runs' iterations should have run at the same time"
    assert os.environ.get("AIRFLOW__CORE__EXECUTOR") != "LocalExecutor"  # the stack's settings stayed its own
