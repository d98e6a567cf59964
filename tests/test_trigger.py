"""Airflow as deployed (api-server, scheduler, LocalExecutor, PostgreSQL) meeting bad
trigger values and a locked metadata database.

The REST API (what the trigger form calls) and the ``airflow`` CLI refuse a wrong-typed or
missing value when the run is triggered; an unknown parameter (which a JSON schema of the
params cannot refuse) fails the run in ``kfx-run-start`` before any task starts. A
metadata database locked for a while in the middle of a task stalls the run, and it then
finishes with its outputs: nothing is lost or run twice. A false condition's branch is
skipped by the scheduler: no worker starts for it. The trigger form, in a real browser,
refuses a list item of the wrong type and runs the typed values it accepts. The stack runs
airflow-kfx's ``KfxLocalExecutor``: a task's process starts with airflow-kfx and the pod
operator already imported (forked from the scheduler), not importing them itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.airflow_stack import AirflowStack, airflow_stack
from tests.support import FIXTURES, REPO, launch_chromium

pytestmark = pytest.mark.slow

DAG_ID = "typed_params"
PARALLEL = REPO / "dags" / "pipelines" / "parallel_execution.yaml"
OUTPUT = REPO / "test-output"  # screenshots (README: "Triggering a run")


# A KFP v1 workflow with a 5 s deadline (PipelineConf.set_timeout) whose one step sleeps 120 s.
DEADLINE = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: v1-deadline-}
spec:
  activeDeadlineSeconds: 5
  entrypoint: v1-deadline
  templates:
  - name: v1-deadline
    dag:
      tasks:
      - {name: nap, template: nap}
  - name: nap
    container: {image: alpine, command: [sleep, '120']}
"""

# Which of a KFP task's heavy modules the process had before it parsed this file.
PRELOAD_PROBE = """
import sys
HELD = sorted(name for name in ("kubernetes.client", "airflow.providers.cncf.kubernetes.operators.pod",
                                "airflow_kfx.operators.container", "airflow_kfx.runtime.local") if name in sys.modules)
from airflow.sdk import DAG, task

@task
def held() -> list:
    return HELD

with DAG("preload_probe", schedule=None):
    held()
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("trigger")
    loaders = {
        f"{name}.py": f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(FIXTURES / f'{name}.yaml')!r})\n"
        for name in ("typed_params", "long_task", "conditions")
    }
    loaders["preload_probe.py"] = PRELOAD_PROBE
    (home / "v1_deadline.yaml").write_text(DEADLINE)
    loaders["v1_deadline.py"] = (f"from airflow_kfx import load_pipeline\n"
                                 f"dag = load_pipeline({str(home / 'v1_deadline.yaml')!r})\n")
    loaders["parallel_execution.py"] = f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(PARALLEL)!r})\n"
    env = {
        "AIRFLOW__KFX__RUNTIME": "local",
        "AIRFLOW__KFX__PIPELINE_ROOT": str(home / "artifacts"),
        "AIRFLOW__KFX__TRACKING": "false",
    }
    with airflow_stack(home / "airflow", dags=loaders, env=env) as running:
        running.wait_for_dag(DAG_ID)
        running.wait_for_api()
        yield running


def _trigger(stack: AirflowStack, conf: dict[str, object]) -> tuple[int, object]:
    return stack.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})


@pytest.mark.parametrize(("conf", "message"), [
    ({"name": "w", "count": "x"}, "'x' is not of type 'integer'"),
    ({"name": "w", "flag": "maybe"}, "'maybe' is not of type 'boolean'"),
    ({"name": "w", "items": {"a": 1}}, "is not of type 'array'"),
    ({"name": "w", "count": 1.5}, "1.5 is not of type 'integer'"),
    ({}, "name"),  # no default: it must be given
], ids=["int-text", "bool-text", "dict-for-list", "fraction-for-int", "missing"])
def test_the_rest_api_refuses_a_wrong_value_and_no_run_is_created(
    stack: AirflowStack, conf: dict[str, object], message: str
) -> None:
    before = stack.query("select count(*) from dag_run where dag_id = %s", DAG_ID)[0][0]
    status, body = _trigger(stack, conf)
    assert status == 400, body
    assert message in str(body), body
    assert stack.query("select count(*) from dag_run where dag_id = %s", DAG_ID)[0][0] == before


def test_the_cli_refuses_a_wrong_value(stack: AirflowStack) -> None:
    with pytest.raises(RuntimeError, match="'x' is not of type 'integer'"):
        stack.airflow("dags", "trigger", DAG_ID, "--conf", '{"name": "w", "count": "x"}')


def test_an_unknown_parameter_fails_the_run_before_any_task_starts(stack: AirflowStack) -> None:
    status, body = _trigger(stack, {"name": "w", "cuont": 4})
    assert status == 200, body  # Airflow takes conf keys it has no param for ...
    run_id = body["dag_run_id"]  # type: ignore[index]
    assert stack.wait_for_run(DAG_ID, run_id, timeout=300) == "failed"
    states = {task: ti["state"] for (task, _), ti in stack.task_instances(DAG_ID, run_id).items()}
    assert states.pop("kfx-run-start") == "failed"  # ... kfx-run-start does not
    assert states.pop("kfx-run-end") == "failed"  # it closes every run, and says it failed
    assert set(states.values()) <= {"upstream_failed", "skipped"}, states
    log = stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/kfx-run-start/logs/1")[1]
    assert "cuont: the pipeline has no such parameter" in str(log), log


def test_a_briefly_locked_metadata_database_stalls_the_run_and_loses_nothing(stack: AirflowStack) -> None:
    """While 'wait' runs, another session holds an exclusive lock on the task_instance
    table for 15 s (a migration, a long admin query): Airflow's heartbeats and state
    updates wait; afterwards the run succeeds, 'wait' ran once (try 1) and 'report' got
    its output."""
    import contextlib
    import time

    import psycopg2

    run_id = stack.trigger("long_task", {"seconds": 12})
    stack.wait_for(lambda: stack.task_instances("long_task", run_id).get(("wait", -1), {}).get("state") == "running",
                   "'wait' running")
    with contextlib.closing(psycopg2.connect(host="127.0.0.1", user="postgres", dbname=stack.database)) as db:
        with db.cursor() as cursor:
            cursor.execute("begin; lock table task_instance in access exclusive mode")
            time.sleep(15)
            cursor.execute("commit")
    assert stack.wait_for_run("long_task", run_id, timeout=300) == "success", stack.logs()
    instances = stack.task_instances("long_task", run_id)
    assert instances[("wait", -1)]["try_number"] == 1, instances
    report = stack.query(
        "select value from xcom where dag_id = 'long_task' and run_id = %s and task_id = 'report' and key = 'return_value'",
        run_id,
    )
    assert report[0][0]["parameters"] == {"Output": "report: waited 12 s"}


def test_a_false_condition_skips_its_branch_without_starting_it(stack: AirflowStack) -> None:
    run_id = stack.trigger("conditions", {"mode": "slow"})
    assert stack.wait_for_run("conditions", run_id, timeout=300) == "success", stack.logs()
    instances = stack.task_instances("conditions", run_id)
    # condition-2 (coin == 'tails') and the nested condition-4 (mode == 'fast') are false
    for gate, branch in (("condition-2", "condition-2.say-2"), ("condition-3.condition-4", "condition-3.condition-4.say-4")):
        assert instances[(f"{gate}.kfx-condition", -1)]["state"] == "skipped"
        assert instances[(branch, -1)]["state"] == "skipped"
        assert instances[(branch, -1)]["try_number"] == 0, instances  # never queued, never ran
    assert instances[("condition-5.say-5", -1)]["state"] == "success"
    # nothing of this run asked for a value that was never produced
    log = (stack.home / "scheduler.log").read_text(errors="replace")
    assert not [line for line in log.splitlines() if "XCom not found" in line and run_id in line]


def test_the_trigger_form_in_a_browser_refuses_a_bad_item_and_runs_typed_values(stack: AirflowStack) -> None:
    """parallel_execution's ``numbers: List[int]`` in Airflow's own trigger form (Chromium):
    ``abc`` among the numbers is refused with the parameter's name before a run exists;
    ``10``/``20`` (which the form sends as the texts "10", "20") reach the loop as integers."""
    from playwright.sync_api import sync_playwright

    dag_id = "parallel_execution"
    stack.wait_for_dag(dag_id)
    runs = "select run_id, conf from dag_run where dag_id = %s"
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{stack.env['AIRFLOW__API__PORT']}/dags/{dag_id}", wait_until="load")
        page.get_by_role("button", name="Trigger Dag").first.click()
        form = page.get_by_role("dialog")
        form.get_by_text("KFP LIST of NUMBER_INTEGER parameter").wait_for(timeout=60_000)
        numbers = form.locator("textarea").first
        numbers.fill("10\n20\nabc")
        form.get_by_role("button", name="Trigger").click()
        form.get_by_text("Invalid input for param numbers").wait_for(timeout=60_000)
        page.screenshot(path=str(OUTPUT / "airflow-trigger-refused.png"))
        assert stack.query(runs, dag_id) == []
        numbers.fill("10\n20")
        page.screenshot(path=str(OUTPUT / "airflow-trigger-form.png"))
        form.get_by_role("button", name="Trigger").click()
        form.wait_for(state="hidden", timeout=60_000)
        browser.close()
    [(run_id, conf)] = stack.query(runs, dag_id)
    assert conf["numbers"] == ["10", "20"]  # what the form sends ...
    assert stack.wait_for_run(dag_id, run_id, timeout=300) == "success", stack.logs()
    squares = stack.query(
        "select value from xcom where dag_id = %s and run_id = %s and task_id = 'for-loop-1.square' and key = 'return_value'",
        dag_id, run_id,
    )
    assert sorted(row[0]["parameters"]["Output"] for row in squares) == [100, 400]  # ... ints in the components
    total = stack.query(
        "select value from xcom where dag_id = %s and run_id = %s and task_id = 'sum-all' and key = 'return_value'",
        dag_id, run_id,
    )
    assert total[0][0]["parameters"]["Output"] == 500


def test_task_processes_start_with_airflow_kfx_already_imported(stack: AirflowStack) -> None:
    """KfxLocalExecutor imports the pod operator and airflow-kfx in the scheduler before its
    workers fork: a task's process parses its DAG file without importing them again (the
    1.5–3 s of CPU per task that bench/scale.py measured)."""
    run_id = stack.trigger("preload_probe")
    assert stack.wait_for_run("preload_probe", run_id, timeout=300) == "success", stack.logs()
    held = stack.query("select value from xcom where dag_id = 'preload_probe' and run_id = %s", run_id)
    assert held and sorted(held[0][0]) == ["airflow.providers.cncf.kubernetes.operators.pod",
                                           "airflow_kfx.operators.container", "airflow_kfx.runtime.local",
                                           "kubernetes.client"], held


def test_a_v1_workflow_deadline_fails_the_run_when_it_passes(stack: AirflowStack) -> None:
    """``spec.activeDeadlineSeconds: 5`` is the DAG's ``dagrun_timeout``: the scheduler fails
    the run while its 120 s step still sleeps, as Argo fails the workflow."""
    import time

    started = time.monotonic()
    run_id = stack.trigger("v1_deadline")
    assert stack.wait_for_run("v1_deadline", run_id, timeout=110) == "failed", stack.logs()
    assert time.monotonic() - started < 110  # long before the step could have ended
    nap = stack.task_instances("v1_deadline", run_id)[("nap", -1)]
    assert nap["state"] != "success", nap
