"""``kfx run`` as a user runs it: the embedded default, progress, the --json summary
(PRODUCT.md §6), exit codes, typed -p values, and KFP caching across runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import FIXTURES, REPO, kfx_environment, kfx_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kfx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kfx-home")


def test_summary_has_the_documented_shape_and_values(kfx_home: Path) -> None:
    code, output, summary = kfx_run(kfx_home, str(FIXTURES / "nested_loops.yaml"))
    assert code == 0, output
    assert summary is not None
    assert set(summary) == {"pipeline", "dag_id", "run_id", "state", "mlflow", "outputs", "tasks"}
    assert summary["pipeline"] == "nested-loops" and summary["dag_id"] == "nested_loops"
    assert summary["state"] == "success"
    assert set(summary["mlflow"]) == {"tracking_uri", "experiment_id", "run_id"}
    assert summary["mlflow"]["tracking_uri"] == f"sqlite:///{kfx_home}/mlflow.db"
    assert summary["mlflow"]["run_id"]
    # task keys are KFP task paths; loop tasks list their iterations
    assert summary["tasks"]["total"] == {"state": "success", "cache_hit": False,
                                         "outputs": {"parameters": {"Output": 7}, "artifacts": {}}}
    inner = summary["tasks"]["for-loop-2/for-loop-3/multiply"]
    assert inner["state"] == "success"
    assert sorted(i["outputs"]["parameters"]["Output"] for i in inner["iterations"]) == [1, 2, 4]
    even = summary["tasks"]["for-loop-5/condition-6/report-even"]
    assert [i["state"] for i in even["iterations"]] == ["skipped", "success", "skipped", "success"]
    # live progress and the summary table reach the terminal, Airflow's noise does not
    assert "✓ total" in output and "nested-loops — run" in output
    assert "[DAG TEST]" not in output


def test_pipeline_outputs_and_typed_params(kfx_home: Path) -> None:
    code, output, summary = kfx_run(
        kfx_home, str(FIXTURES / "typed_params.yaml"),
        "-p", "name=kfx", "-p", "count=41", "-p", "ratio=0.5", "-p", "flag=true",
        "-p", "items=[5, 6]", "-p", 'config={"k": "w"}',
    )
    assert code == 0, output
    tasks = summary["tasks"]
    assert tasks["next-int"]["outputs"]["parameters"]["Output"] == 42
    assert tasks["extend-list"]["outputs"]["parameters"]["Output"] == [5, 6, 3]  # appends len + 1
    code, output, _ = kfx_run(kfx_home, str(FIXTURES / "typed_params.yaml"), "-p", "name=x", "-p", "count=many")
    assert code == 1 and "'many' is not a valid NUMBER_INTEGER" in output


def test_constants_pipeline_outputs(kfx_home: Path) -> None:
    code, output, summary = kfx_run(kfx_home, str(FIXTURES / "constants_and_outputs.yaml"))
    assert code == 0, output
    assert summary["outputs"]["parameters"] == {"summary": "result: half=5 square=100 parity=even", "doubled": 10}


def test_a_failed_run_exits_1_and_shows_the_failure(kfx_home: Path) -> None:
    code, output, summary = kfx_run(kfx_home, str(FIXTURES / "exit_handler_failing.yaml"))
    assert code == 1
    assert summary["state"] == "failed"
    assert summary["tasks"]["exit-handler-1/fail"]["state"] == "failed"
    assert summary["tasks"]["exit-handler-1/after-fail"]["state"] == "upstream_failed"
    assert summary["tasks"]["report-status"]["outputs"]["parameters"]["Output"] == "cleanup: FAILED"
    assert "✗ failed exit-handler-1/fail" in output
    assert "exited with code 1" in output  # the end of the task's output, shown on failure


def test_caching_hits_misses_and_no_cache(tmp_path: Path) -> None:
    # A home of its own: KFP's cache key does not include the pipeline, so the same
    # component with the same inputs in another pipeline would already be a hit.
    kfx_home = tmp_path
    pipeline = str(FIXTURES / "retry_caching.yaml")
    code, _, first = kfx_run(kfx_home, pipeline)
    assert code == 0
    code, _, second = kfx_run(kfx_home, pipeline)
    assert code == 0
    code, _, third = kfx_run(kfx_home, pipeline, "--no-cache")
    assert code == 0

    def hits(summary: dict[str, Any]) -> dict[str, bool]:
        return {name: task["cache_hit"] for name, task in summary["tasks"].items()}

    # 'double' has caching off (set_caching_options(False)): it always runs
    assert hits(first) == {"add": False, "double": False, "increment": False, "double-2": False}
    assert hits(second) == {"add": True, "double": False, "increment": True, "double-2": True}
    assert hits(third) == {"add": False, "double": False, "increment": False, "double-2": False}
    # a hit returns the earlier execution's outputs
    assert second["tasks"]["double-2"]["outputs"] == first["tasks"]["double-2"]["outputs"]
    # the fingerprint follows the inputs: only tasks whose inputs changed run again
    typed = str(FIXTURES / "typed_params.yaml")
    kfx_run(kfx_home, typed, "-p", "name=a", "-p", "count=7")
    code, _, other = kfx_run(kfx_home, typed, "-p", "name=b", "-p", "count=7")
    assert code == 0
    assert other["tasks"]["next-int"]["cache_hit"] is True  # count unchanged
    assert other["tasks"]["describe"]["cache_hit"] is False  # 'name' changed


def test_the_readme_main_job_runs_the_training_example(kfx_home: Path) -> None:
    code, output, summary = kfx_run(kfx_home, str(REPO / "dags" / "pipelines" / "training.yaml"))
    assert code == 0, output
    evaluate = summary["tasks"]["evaluate-model"]["outputs"]
    assert evaluate["parameters"]["Output"] == pytest.approx(136 / 143)
    metrics = [a for a in evaluate["artifacts"].values() if "accuracy" in a["metadata"]]
    assert metrics and metrics[0]["metadata"]["test_rows"] == 143
    # the table shows artifacts below the root it names, whole (not cut in the middle)
    root = kfx_home / "artifacts"
    assert f"artifacts under {root}" in " ".join(output.split())
    model_uri = summary["tasks"]["train-model"]["outputs"]["artifacts"]["model"]["uri"]
    assert model_uri.startswith(f"{root}/")
    assert f"model={model_uri.removeprefix(f'{root}/')}" in output.replace("\n", "").replace(" ", "").replace("│", "")


NO_TRACKING = {"AIRFLOW__KFX__TRACKING": "false"}  # what is measured here is the scheduling


def _most_at_once(iterations: list[dict[str, Any]]) -> int:
    """The largest number of iterations whose [start, end] intervals overlap."""
    events = []
    for iteration in iterations:
        start, end = map(float, iteration["outputs"]["parameters"]["Output"].split())
        events += [(start, 1), (end, -1)]
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        running += step
        most = max(most, running)
    return most


def test_parallelism_runs_loop_iterations_at_once_within_the_loops_limit(kfx_home: Path) -> None:
    """``--parallelism 4`` hands the tasks to Airflow's LocalExecutor: the three naps of
    the unlimited loop overlap; the loop with ``parallelism=2`` never runs three at once.
    The naps are long (10 s) because each task process takes seconds of CPU to start on
    this 2-core machine: with 2 s naps, a loaded CI run once saw every nap end before the
    next process was ready (a fresh clone at a69c8b8)."""
    code, output, summary = kfx_run(kfx_home, str(FIXTURES / "sleepy_loops.yaml"), "--parallelism", "4", "-p", "seconds=10",
                                    env=NO_TRACKING)
    assert code == 0, output
    assert "up to 4 tasks at once" in output
    unlimited, limited = summary["tasks"]["for-loop-1/nap"], summary["tasks"]["for-loop-2/nap-2"]
    assert [i["state"] for i in unlimited["iterations"] + limited["iterations"]] == ["success"] * 6
    assert _most_at_once(unlimited["iterations"]) >= 2, unlimited
    assert _most_at_once(limited["iterations"]) <= 2, limited


def test_a_long_loop_is_one_summary_row_and_its_later_iterations_run_quietly() -> None:
    """More than five iterations: one row (counts, failures, the slowest); the progress
    shows the first five and failures only (the --json summary keeps every iteration)."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from airflow_kfx.run import SHOWN_ITERATIONS, _print_summary, _Progress

    states = ["success"] * 6 + ["failed"]
    summary = {
        "pipeline": "p", "run_id": "r", "state": "failed", "outputs": {"parameters": {}},
        "tasks": {"loop/nap": {"state": "failed", "iterations": [
            {"state": state, "outputs": {"parameters": {"Output": i}}} for i, state in enumerate(states)
        ]}, "after": {"state": "success", "outputs": {"parameters": {"Output": 1}}}},
    }
    out = io.StringIO()
    _print_summary(Console(file=out, width=200), summary, 1.0, "/root",
                   {("loop/nap", i): 0.5 + (i == 3) for i in range(7)})
    table = out.getvalue()
    row = next(line for line in table.splitlines() if "loop/nap ×7" in line)
    assert "6 success" in row and "1 failed" in row and "failed: [6]" in row and "slowest: [3] 1.5s" in row, table
    assert "loop/nap [0]" not in table and "after" in table

    out = io.StringIO()
    progress = _Progress(Console(file=out, width=200), SimpleNamespace(tasks={"t": SimpleNamespace(
        task_id="loop.nap", kfp_path="loop/nap", kind="executor")}))
    for index in range(7):
        ti = SimpleNamespace(task_id="loop.nap", map_index=index)
        progress.on_task_instance_running(None, ti)
        if index == 6:
            progress.on_task_instance_failed(None, ti, RuntimeError("boom"))
        else:
            progress.on_task_instance_success(None, ti)
    shown = out.getvalue()
    assert f"✓ loop/nap [{SHOWN_ITERATIONS - 1}]" in shown and f"loop/nap [{SHOWN_ITERATIONS}…]: further iterations run quietly" in shown
    assert f"✓ loop/nap [{SHOWN_ITERATIONS}]" not in shown
    assert "✗ failed loop/nap [6]" in shown and "boom" in shown


def test_ctrl_c_stops_the_run_and_its_containers_at_once(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.test_serve import _processes_running, _wait_for

    client = subprocess.Popen(
        [sys.executable, "-m", "airflow_kfx.cli", "run", str(FIXTURES / "long_task.yaml"), "-p", "seconds=301"],
        env=kfx_environment(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    _wait_for(lambda: _processes_running("sleep 301"), "the task's container", 600)
    interrupted_at = time.monotonic()
    client.send_signal(signal.SIGINT)
    output, _ = client.communicate(timeout=120)
    # Not the task failing and the run going on to its retry (wait has one) and report.
    assert client.returncode == 130, output
    assert "interrupted; 1 running container(s) killed" in output
    assert time.monotonic() - interrupted_at < 60
    assert not _processes_running("sleep 301")
