"""The kubernetes runtime under Airflow as deployed: the real scheduler with the
LocalExecutor on PostgreSQL, pods on the Kubernetes API double.

The failure a cluster user fears most: the Airflow worker running a task dies while
its pod runs. The scheduler notices (heartbeat timeout) and retries the task; the
retry must find the pod that is still running (the provider's reattach by labels)
and collect its output — not start a second pod that does the work again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_stack import airflow_stack
from tests.kube.fixtures import KubeDouble, kube_double
from tests.support import FIXTURES

pytestmark = pytest.mark.slow

SECONDS = 25  # how long the task's pod runs: time enough to kill its worker mid-way


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


def test_a_killed_worker_reattaches_to_its_still_running_pod(kube: KubeDouble, tmp_path: Path) -> None:
    import psutil

    pipeline = FIXTURES / "long_task.yaml"
    loader = (
        "from airflow_kfx import load_pipeline\n"
        f"dag = load_pipeline({str(pipeline)!r}, settings={{'on_finish_action': 'keep_pod'}})\n"
    )
    env = {
        **kube.airflow_environment(),
        "AIRFLOW__KFX__PIPELINE_ROOT": str(tmp_path / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
        # Airflow's own executor (the other stacks use airflow-kfx's preloading subclass of it)
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    }
    api = kube.api()

    def pods_of_wait() -> list[object]:
        return api.list_namespaced_pod("default", label_selector="kfx/task=wait,dag_id=long_task").items

    with airflow_stack(tmp_path / "airflow", dags={"long_task.py": loader}, env=env) as stack:
        run_id = stack.trigger("long_task", {"seconds": SECONDS})
        running = stack.wait_for(
            lambda: [p for p in pods_of_wait() if p.status.phase == "Running"], "the pod of 'wait' running"
        )
        task = stack.wait_for(
            lambda: (ti := stack.task_instances("long_task", run_id).get(("wait", -1))) and ti["pid"] and ti,
            "the 'wait' task instance's process",
        )
        # Kill the worker: the task's process and the supervisor that runs it, as a lost node would.
        victim = psutil.Process(task["pid"])
        for process in [victim, *([victim.parent()] if victim.parent() else [])]:
            os.kill(process.pid, signal.SIGKILL)

        state = stack.wait_for_run("long_task", run_id, timeout=300)
        instances = stack.task_instances("long_task", run_id)
        assert state == "success", (instances, stack.logs())
        assert instances[("wait", -1)]["try_number"] == 2, instances  # the scheduler retried it ...
        pods = pods_of_wait()
        assert [p.metadata.name for p in pods] == [running[0].metadata.name]  # ... on the same pod
        assert pods[0].status.phase == "Succeeded"
        report = stack.query(
            "select value from xcom where dag_id = 'long_task' and run_id = %s and task_id = 'report'"
            " and key = 'return_value'", run_id,
        )
        assert report[0][0]["parameters"] == {"Output": f"report: waited {SECONDS} s"}
    # MLflow: one task run for 'wait' across both tries, closed FINISHED
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("long-task")
    runs = client.search_runs([experiment.experiment_id], "tags.`kfx.task_id` = 'wait'")
    assert [r.info.status for r in runs] == ["FINISHED"]
