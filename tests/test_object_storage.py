"""Artifacts through object storage, end to end: an ``s3://`` pipeline root on a real S3 API.

moto's server (``tests/s3_server.py``) serves S3 on 127.0.0.1; ``aws_default``
(``AIRFLOW_CONN_AWS_DEFAULT``) points at it and no ``AWS_*`` variable is set in this
process, so the worker reaches the bucket only through the Airflow connection. With no
``[kfx] artifact_volume``, every task pod gets the launcher: an init container that
downloads its input artifacts to KFP's local paths (``/s3/<bucket>/...``) inside the pod
and a native sidecar that uploads its outputs when the task's container has ended.

* ``local`` runtime: the pods run here; the launcher containers get the connection's
  credentials from the runtime (``runtime/storage.launcher_env``).
* ``kubernetes`` runtime: the pods go through the KubernetesPodOperator to the Kubernetes
  API double (``tests/kube``), which runs them here too; the launcher containers get
  their credentials only from the Kubernetes secret ``[kfx] artifact_credentials_secret``
  names (created in the double), the user's container never sees them.

What a user would check: the pipeline's result, the artifacts as objects in the bucket
under ``<root>/<dag_id>/<run_id>/``, a downstream task that read its upstream's artifact,
KFP caching across runs, MLflow pointing at the bucket, ``kfx run`` with an ``s3://``
root, and no credential in a pod spec, a log or an XCom.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.pod.transport import DOWNLOAD_CONTAINER, UPLOAD_CONTAINER
from tests.kube.fixtures import KubeDouble, kube_double
from tests.runs import RunResult, run_pipeline
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, shared_server
from tests.support import REPO, kfx_run

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "dags" / "pipelines"
TRAINING = EXAMPLES / "training.yaml"
ACCURACY = 0.951048951048951  # 136 of 143 test rows (dags/pipelines/training.py)
TRAINING_TASKS = ("load-data", "split-data", "train-model", "evaluate-model")
# Every file artifact of the training example, as <task>/<map index>/<output>.
TRAINING_FILES = (
    "load-data/0/data",
    "split-data/0/train",
    "split-data/0/test",
    "train-model/0/model",
    "evaluate-model/0/report",
)
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
CREDENTIALS = (ACCESS_KEY, SECRET_KEY)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> S3Server:
    """One S3 API per test process: Airflow caches a connection's filesystem per process,
    so every module using ``aws_default`` must talk to the same endpoint."""
    return shared_server()


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    """A bucket of this module's own, named so no earlier session left files for it."""
    return s3.new_bucket(f"kfx-objects-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


@pytest.fixture(scope="module")
def credentials_secret(kube: KubeDouble, s3: S3Server) -> str:
    """The launcher's credentials as a Kubernetes secret in the double."""
    from kubernetes.client import models as k8s

    name = "kfx-artifact-store"
    kube.api().create_namespaced_secret(
        "default", k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data=dict(s3.launcher_env))
    )
    return name


@pytest.fixture
def root(request: pytest.FixtureRequest, s3: S3Server, bucket: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> str:
    """An ``s3://`` pipeline root of this test's own, ``aws_default`` at moto, no ``AWS_*``
    in the environment, and an MLflow SQLite store of this test's own."""
    prefix = f"roots/{request.node.name.replace('[', '-').rstrip(']')}-{uuid.uuid4().hex[:6]}"
    pipeline_root = f"s3://{bucket}/{prefix}"
    monkeypatch.setenv("AIRFLOW__KFX__PIPELINE_ROOT", pipeline_root)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.airflow_conn)
    monkeypatch.delenv("AIRFLOW__KFX__PIPELINE_ROOT_CONN_ID", raising=False)
    monkeypatch.delenv("AIRFLOW__KFX__ARTIFACT_VOLUME", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)  # MLflow's own files for a SQLite store go to ./mlruns
    return pipeline_root


@pytest.fixture
def on_kube(root: str, kube: KubeDouble, credentials_secret: str, monkeypatch: pytest.MonkeyPatch) -> KubeDouble:
    """``[kfx] runtime = kubernetes`` against the double, the launcher's image named and
    its credentials only in the secret."""
    monkeypatch.setenv("AIRFLOW__KFX__RUNTIME", "kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kube.kubeconfig), "namespace": "default"}}
    ))
    monkeypatch.setenv("AIRFLOW__KFX__LAUNCHER_IMAGE", "registry.example/airflow-kfx-launcher:test")
    monkeypatch.setenv("AIRFLOW__KFX__ARTIFACT_CREDENTIALS_SECRET", credentials_secret)
    return kube


# -- helpers -----------------------------------------------------------------------------


def key_of(uri: str, bucket: str) -> str:
    prefix = f"s3://{bucket}/"
    assert uri.startswith(prefix), f"{uri} is not in the bucket {bucket}"
    return uri[len(prefix):]


def run_uri(root: str, dag_id: str, run_id: str) -> str:
    """``<root>/<dag_id>/<run_id>``, the run's folder (a character a path should not hold,
    such as the ``:`` of Airflow's run ids, becomes ``_``)."""
    return f"{root}/{dag_id}/{re.sub(r'[^A-Za-z0-9._+=@-]', '_', run_id)}"


def tracking_client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def mlflow_runs(result: RunResult, experiment: str) -> list[Any]:
    """Every MLflow run of one DAG run: the pipeline run and its task runs."""
    client = tracking_client()
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([found.experiment_id], filter_string=f"tags.`kfx.run_id` = '{result.run_id}'",
                              max_results=1000)


def task_runs(runs: list[Any]) -> dict[str, Any]:
    """The task runs among ``runs``, by task id."""
    return {r.data.tags["kfx.task_id"]: r for r in runs if r.data.tags.get("kfx.kind") == "task"}


def assert_no_host_files(bucket: str) -> None:
    """The pods' ``/s3/<bucket>`` lived in their own mounts: nothing reached the host's."""
    host = Path("/s3") / bucket
    leaked = sorted(str(p) for p in host.rglob("*")) if host.exists() else []
    assert leaked == [], f"files written on the host under {host}: {leaked[:10]}"


def assert_no_credentials(text: str, where: str) -> None:
    for value in CREDENTIALS:
        assert value not in text, f"a credential is in {where}"


def check_training(result: RunResult, s3: S3Server, bucket: str, root: str) -> None:
    """What a user checks after the training example ran on an ``s3://`` root."""
    assert result.state == "success", result.states
    assert result.parameter("evaluate-model") == ACCURACY
    # split-data's row counts come from load-data's CSV: it read the upstream artifact.
    assert result.parameter("split-data", "n_train") == 426
    assert result.parameter("split-data", "n_test") == 143
    run_root = run_uri(root, result.dag_id, result.run_id)
    prefix = key_of(run_root, bucket) + "/"
    keys = s3.keys(prefix, bucket)
    for name in TRAINING_FILES:
        assert prefix + name in keys, f"{prefix + name} is not in the bucket: {keys}"
    # The artifacts the tasks report are where their objects are.
    for task_id, name in (("load-data", "data"), ("split-data", "train"), ("split-data", "test"),
                          ("train-model", "model"), ("evaluate-model", "report"), ("evaluate-model", "metrics"),
                          ("evaluate-model", "confusion")):
        assert result.artifact(task_id, name)["uri"] == f"{run_root}/{task_id}/0/{name}"
    csv = s3.get(prefix + "load-data/0/data", bucket).decode()
    assert csv.startswith("mean_radius,") and len(csv.splitlines()) == 1 + 569
    assert len(s3.get(prefix + "split-data/0/train", bucket).decode().splitlines()) == 1 + 426
    assert len(s3.get(prefix + "split-data/0/test", bucket).decode().splitlines()) == 1 + 143
    assert s3.get(prefix + "train-model/0/model", bucket).startswith(b"\x80")  # a pickle
    assert s3.get(prefix + "evaluate-model/0/report", bucket).decode().startswith("# Breast-cancer classifier")
    # Metrics are metadata (KFP writes no file for them): they are in the bucket in the
    # evaluation's executor output, and in its XCom.
    executor_output = json.loads(s3.get(prefix + "evaluate-model/0/executor_output.json", bucket))
    assert executor_output["artifacts"]["metrics"]["artifacts"][0]["metadata"]["accuracy"] == 0.951
    assert result.artifact("evaluate-model", "metrics")["metadata"]["accuracy"] == 0.951
    assert result.artifact("evaluate-model", "confusion")["metadata"]["confusionMatrix"]["rows"][0]["row"] == [51, 2]
    assert_no_credentials(json.dumps(list(result.results.values()), default=str), "a task's XCom")
    assert_no_host_files(bucket)


def check_tracking(result: RunResult, bucket: str, artifacts_run: RunResult | None = None) -> None:
    """MLflow's links lead to the bucket (to ``artifacts_run``'s folder when the tasks
    reused its outputs); the evaluation's metrics are there."""
    root = os.environ["AIRFLOW__KFX__PIPELINE_ROOT"]
    source = artifacts_run or result
    run_root = run_uri(root, source.dag_id, source.run_id) + "/"
    runs = mlflow_runs(result, "training")
    tasks = task_runs(runs)
    assert set(tasks) == set(TRAINING_TASKS)
    assert {r.info.status for r in runs} == {"FINISHED"}
    for task_id, run in tasks.items():
        tags = {k: v for k, v in run.data.tags.items() if k.startswith("kfx.artifact.")}
        outputs = result.results[(task_id, -1)]["artifacts"]
        assert set(tags) == {f"kfx.artifact.{name}" for name in outputs}, task_id
        for key, value in tags.items():
            assert value.startswith(run_root), f"{task_id}: {key} = {value}, not in s3://{bucket}"
    # Nothing MLflow records about these runs points anywhere but the bucket: no pod-local
    # /s3/... path, no other object-store URI.
    for run in runs:
        for key, value in {**run.data.tags, **run.data.params}.items():
            assert "/s3/" not in value, f"{key} = {value}"
            for uri in re.findall(r"(?:s3|gs|minio|file)://[^\s\"',\]]+", value):
                assert uri.startswith(run_root), f"{key} = {value}"
    evaluate = tasks["evaluate-model"]
    assert evaluate.data.tags["kfx.artifact.report"] == f"{run_root}evaluate-model/0/report"
    assert evaluate.data.metrics["accuracy"] == pytest.approx(0.951)
    assert evaluate.data.metrics["test_rows"] == 143
    logged = {a.path for a in tracking_client().list_artifacts(evaluate.info.run_id, "kfp/report")}
    assert logged == {"kfp/report/report.md"}  # read back from the bucket to be logged


# -- the tests ---------------------------------------------------------------------------


def test_training_on_the_local_runtime_then_from_the_cache(
    s3: S3Server, bucket: str, root: str, dags_folder: Path
) -> None:
    first = run_pipeline(TRAINING, dags_folder, cache=True)
    check_training(first, s3, bucket, root)
    assert {t: first.results[(t, -1)]["cache_hit"] for t in TRAINING_TASKS} == dict.fromkeys(TRAINING_TASKS, False)
    check_tracking(first, bucket)
    # the cache lives beside the runs, in the bucket: one entry per cacheable task
    entries = s3.keys(f"{key_of(root, bucket)}/.kfx-cache/", bucket)
    assert len(entries) == len(TRAINING_TASKS), entries

    second = run_pipeline(TRAINING, dags_folder, cache=True)
    assert second.state == "success", second.states
    assert second.run_id != first.run_id
    assert second.parameter("evaluate-model") == ACCURACY
    assert second.parameter("split-data", "n_train") == 426
    assert {t: second.results[(t, -1)]["cache_hit"] for t in TRAINING_TASKS} == dict.fromkeys(TRAINING_TASKS, True)
    for task_id in TRAINING_TASKS:  # the first run's objects are reused, nothing is copied
        assert second.results[(task_id, -1)]["artifacts"] == first.results[(task_id, -1)]["artifacts"], task_id
    second_root = key_of(run_uri(root, second.dag_id, second.run_id), bucket)
    assert s3.keys(second_root + "/", bucket) == []  # no task ran, so no pod uploaded anything
    check_tracking(second, bucket, artifacts_run=first)
    tags = {t: r.data.tags["kfx.cache_hit"] for t, r in task_runs(mlflow_runs(second, "training")).items()}
    assert tags == dict.fromkeys(TRAINING_TASKS, "true")
    assert_no_host_files(bucket)


def test_training_on_the_kubernetes_runtime_with_the_launcher(
    s3: S3Server, bucket: str, root: str, on_kube: KubeDouble, credentials_secret: str, dags_folder: Path
) -> None:
    result = run_pipeline(TRAINING, dags_folder, settings={"on_finish_action": "keep_pod"})
    check_training(result, s3, bucket, root)
    check_tracking(result, bucket)

    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value
    from kubernetes.client import ApiClient

    api = on_kube.api()
    selector = f"kfx/run-id={make_safe_label_value(result.run_id)}"
    pods = {p.metadata.labels["kfx/task"]: p for p in api.list_namespaced_pod("default", label_selector=selector).items}
    assert set(pods) == set(TRAINING_TASKS)
    for task, pod in pods.items():
        assert pod.status.phase == "Succeeded", task
        spec = json.dumps(ApiClient().sanitize_for_serialization(pod))
        assert_no_credentials(spec, f"the pod spec of {task}")
        assert s3.endpoint not in spec, f"{task}: the store's endpoint is in the pod spec, not only in the secret"
        base = next(c for c in pod.spec.containers if c.name == "base")
        assert not [e for e in base.env_from or [] if e.secret_ref is not None], f"{task}: base gets a secret"
        assert not [e for e in base.env or [] if e.name.startswith("AWS_")], f"{task}: base gets AWS_* variables"
        launchers = {c.name: c for c in pod.spec.init_containers or []}
        assert {DOWNLOAD_CONTAINER, UPLOAD_CONTAINER} <= set(launchers), task
        for name in (DOWNLOAD_CONTAINER, UPLOAD_CONTAINER):
            # the credentials reach the launcher only from the secret
            assert [e.secret_ref.name for e in launchers[name].env_from] == [credentials_secret], (task, name)
            assert not [e for e in launchers[name].env or [] if e.name.startswith("AWS_")], (task, name)
        for name in (DOWNLOAD_CONTAINER, UPLOAD_CONTAINER, "base"):
            log = api.read_namespaced_pod_log(pod.metadata.name, "default", container=name)
            assert_no_credentials(log, f"the log of {task}/{name}")
    # load-data's pod uploaded its CSV; split-data's pod downloaded it before it ran
    data_uri = result.artifact("load-data", "data")["uri"]
    upload_log = api.read_namespaced_pod_log(pods["load-data"].metadata.name, "default", container=UPLOAD_CONTAINER)
    assert f"-> {data_uri} (" in upload_log, upload_log
    download_log = api.read_namespaced_pod_log(pods["split-data"].metadata.name, "default",
                                               container=DOWNLOAD_CONTAINER)
    assert f"downloaded {data_uri} -> /s3/{bucket}/{key_of(data_uri, bucket)} (" in download_log, download_log


def test_kfx_run_with_an_s3_pipeline_root(s3: S3Server, bucket: str, root: str, tmp_path: Path) -> None:
    # (the fixture removed every AWS_* variable: credentials come from aws_default only)
    env = {"AIRFLOW__KFX__PIPELINE_ROOT": root, "AIRFLOW_CONN_AWS_DEFAULT": s3.airflow_conn,
           "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    code, output, summary = kfx_run(tmp_path / "home", str(EXAMPLES / "sequential.yaml"), "--runtime", "local",
                                    env=env, cwd=tmp_path)
    assert code == 0, output
    assert summary is not None and summary["state"] == "success"
    assert summary["outputs"]["parameters"]["Output"] == "3 lines, 27 chars, last: 3: hello"
    tasks = summary["tasks"]
    assert tasks["produce"]["outputs"]["parameters"]["chars"] == 27
    data_uri = tasks["produce"]["outputs"]["artifacts"]["data"]["uri"]
    assert data_uri == f"{run_uri(root, summary['dag_id'], summary['run_id'])}/produce/0/data"
    assert s3.get(key_of(data_uri, bucket), bucket) == b"1: hello\n2: hello\n3: hello\n"
    assert_no_credentials(output + json.dumps(summary), "kfx run's output")
    assert_no_host_files(bucket)


def test_an_importer_downloads_a_file_and_a_folder_from_the_s3_root_into_the_workspace(
    root: str, tmp_path: Path
) -> None:
    """``download_to_workspace`` with an ``s3://`` pipeline root: through the worker's own
    connection (``aws_default`` at moto), each object to ``.artifacts/s3/<bucket>/<key>``, as
    KFP's launcher puts it; an object outside the pipeline root is refused."""
    from airflow_kfx.confine import EscapeError
    from airflow_kfx.runtime import storage
    from airflow_kfx.runtime.workspace_import import download_to_workspace

    storage.write_text(f"{root}/run/producer/data.txt", "hello")
    storage.write_text(f"{root}/run/producer/folder/a.txt", "a")
    storage.write_text(f"{root}/run/producer/folder/sub/b.txt", "b")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for name in ("data.txt", "folder"):
        copy = download_to_workspace(f"{root}/run/producer/{name}", workspace_folder=str(workspace),
                                     pipeline_root=root, what="importer 'x'")
        assert copy == str(workspace / ".artifacts" / "s3" / root.removeprefix("s3://") / "run/producer" / name)
    base = workspace / ".artifacts" / "s3" / root.removeprefix("s3://") / "run" / "producer"
    assert (base / "data.txt").read_text() == "hello"
    assert (base / "folder" / "a.txt").read_text() == "a" and (base / "folder" / "sub" / "b.txt").read_text() == "b"
    other = root.rsplit("/", 1)[0] + "/another-root/data.txt"
    with pytest.raises(EscapeError):
        download_to_workspace(other, workspace_folder=str(workspace), pipeline_root=root, what="importer 'x'")
