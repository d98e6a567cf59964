"""The ``kubernetes`` runtime, proven against the Kubernetes API double (tests/kube).

The real KubernetesPodOperator machinery creates, watches, logs, patches and deletes
the pods; the double validates every object against the Kubernetes 1.33 schema and runs
the pods' commands here. What a cluster user relies on: labels to find a run's pods,
fresh uniquely named pods for retries and mapped tasks, the container's last lines when
it fails, ``on_finish_action``, deferrable mode, and the RBAC the operator needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fixtures import KubeDouble, kube_double
from tests.runs import RunResult, run_pipeline
from tests.support import FIXTURES, REPO, kfx_run

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "dags" / "pipelines"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


@pytest.fixture
def on_kube(kube: KubeDouble, monkeypatch: pytest.MonkeyPatch) -> KubeDouble:
    """``[kfx] runtime = kubernetes`` with ``kubernetes_default`` pointing at the double."""
    for name, value in kube.airflow_environment().items():
        monkeypatch.setenv(name, value)
    return kube


def pods_of(kube: KubeDouble, result: RunResult) -> list[Any]:
    """The run's pods, found the way a user finds them: by the ``kfx/run-id`` label."""
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    selector = f"kfx/run-id={make_safe_label_value(result.run_id)}"
    return kube.api().list_namespaced_pod("default", label_selector=selector).items


def test_pods_carry_labels_to_find_a_run_and_are_kept_or_deleted(on_kube: KubeDouble, dags_folder: Path) -> None:
    kept = run_pipeline(EXAMPLES / "sequential.yaml", dags_folder, settings={"on_finish_action": "keep_pod"})
    assert kept.state == "success"
    pods = pods_of(on_kube, kept)
    assert sorted(p.metadata.labels["kfx/task"] for p in pods) == ["announce", "consume", "produce"]
    for pod in pods:
        assert pod.metadata.labels["kfx/pipeline"] == "sequential"
        assert pod.status.phase == "Succeeded"
        assert DNS_LABEL.fullmatch(pod.metadata.name), pod.metadata.name
    deleted = run_pipeline(EXAMPLES / "sequential.yaml", dags_folder)
    assert deleted.state == "success"
    assert pods_of(on_kube, deleted) == []  # on_finish_action=delete_pod, the default


def test_a_failing_container_fails_its_task_with_its_last_lines(
    on_kube: KubeDouble, dags_folder: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_pipeline(EXAMPLES / "exit_handler.yaml", dags_folder, conf={"fail": True},
                          settings={"on_finish_action": "delete_succeeded_pod"})
    assert result.state == "failed"
    task = "exit-handler-1.check-message"
    assert result.state_of(task) == "failed"
    assert result.state_of("exit-op") == "success"
    # dag.test() prints task logs: the provider followed the container's output into it,
    # and the task's error carries the container's termination message (its last lines).
    log = capfd.readouterr().out
    assert "[base] Traceback (most recent call last):" in log or "[base] logs: Traceback" in log, log[-3000:]
    assert re.search(r"returned a failure.\n(.*\n)*ValueError: asked to fail", log), log[-3000:]
    failed = [p for p in pods_of(on_kube, result) if p.metadata.labels["kfx/task"] == "check-message"]
    assert [p.status.phase for p in failed] == ["Failed"]  # kept: only succeeded pods are deleted


def test_retries_start_fresh_pods_with_unique_valid_names(on_kube: KubeDouble, dags_folder: Path) -> None:
    result = run_pipeline(FIXTURES / "retry_once.yaml", dags_folder, settings={"on_finish_action": "keep_pod"})
    assert result.state == "success"
    assert result.parameter("flaky") == "succeeded on attempt 2"
    flaky = [p for p in pods_of(on_kube, result) if p.metadata.labels["kfx/task"] == "flaky"]
    assert sorted(p.metadata.labels["try_number"] for p in flaky) == ["1", "2"]
    assert sorted(p.status.phase for p in flaky) == ["Failed", "Succeeded"]
    names = {p.metadata.name for p in flaky}
    assert len(names) == 2 and all(DNS_LABEL.fullmatch(n) for n in names), names


def test_mapped_tasks_get_unique_pod_names(on_kube: KubeDouble, dags_folder: Path) -> None:
    result = run_pipeline(EXAMPLES / "parallel_execution.yaml", dags_folder, settings={"on_finish_action": "keep_pod"})
    assert result.state == "success"
    squares = [p for p in pods_of(on_kube, result) if p.metadata.labels["kfx/task"] == "square"]
    assert sorted(int(p.metadata.labels["map_index"]) for p in squares) == [0, 1, 2, 3, 4]
    assert len({p.metadata.name for p in squares}) == 5


def test_deferrable_kfx_run(kube: KubeDouble, tmp_path: Path) -> None:
    """``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=True kfx run --runtime kubernetes``: the
    provider's trigger watches each pod, the task resumes to collect its outputs, and
    every MLflow task run ends FINISHED."""
    home = tmp_path / "home"
    env = {**kube.airflow_environment(), "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    code, output, summary = kfx_run(home, str(EXAMPLES / "sequential.yaml"), "--runtime", "kubernetes", env=env)
    assert code == 0, output
    assert summary is not None and summary["outputs"]["parameters"]["Output"] == "3 lines, 27 chars, last: 3: hello"
    log = next((home / "logs").glob("*.log")).read_text(errors="replace")
    assert log.count("running trigger in line") >= 3, "every task should have deferred to the trigger"
    # ... and the trigger itself watched the pod (the provider falls back to one more read of
    # the pod when its trigger fails, which would hide a trigger that cannot reach the cluster).
    assert "trigger emitted an error event" not in log and "Unexpected error while waiting for pod" not in log
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home}/mlflow.db")
    runs = client.search_runs([summary["mlflow"]["experiment_id"]])
    states = {r.data.tags.get("kfx.task_path", "<pipeline>"): r.info.status for r in runs}
    assert states == {"produce": "FINISHED", "consume": "FINISHED", "announce": "FINISHED", "<pipeline>": "FINISHED"}


def documented_role() -> set[str]:
    """The Role of the README's "Running on a cluster", as ``verb resource`` rules."""
    import yaml

    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- rbac-role -->\s*```yaml\n(.*?)```\s*<!-- /rbac-role -->", text, re.S)
    assert block, "the README lost its RBAC Role"
    role = yaml.safe_load("\n".join(line[2:] for line in block.group(1).splitlines()))
    return {f"{verb} {resource}" for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_documented_role_is_what_the_operator_uses(
    on_kube: KubeDouble, dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request the operator makes — sync and deferrable, a failing pod, claims and a
    workspace — is allowed by the README's Role, and the Role grants nothing unused."""
    from tests.support import VALID

    on_kube.audit(clear=True)
    assert run_pipeline(FIXTURES / "local_volumes.yaml", dags_folder).state == "success"  # CreatePVC, DeletePVC
    assert run_pipeline(VALID / "critical" / "pipeline_with_workspace.yaml", dags_folder).state == "success"
    failing = run_pipeline(EXAMPLES / "exit_handler.yaml", dags_folder, conf={"fail": True},
                           settings={"deferrable": True})
    assert failing.state == "failed" and failing.state_of("exit-op") == "success"
    used = on_kube.rules()
    assert used == documented_role()
