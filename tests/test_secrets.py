"""Secrets never leak: the MLflow connection's password and token appear in no repr,
log line, exception, XCom, pod spec, rendered manifest or MLflow tag, and never stay in
the worker's environment; object-store and platform-spec secrets reach pods only as
secret references."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_kfx.tracking.hook import TrackingTarget
from airflow_kfx.tracking.session import TrackingSession
from tests.kube.fixtures import KubeDouble, kube_double
from tests.mlflow_server import MlflowServer
from tests.runs import run_pipeline
from tests.support import FIXTURES, REPO

PASSWORD = "pw-3c9d7e-not-for-logs"
TOKEN = "tok-81b2aa-not-for-logs"


def test_the_tracking_target_never_shows_its_secrets() -> None:
    target = TrackingTarget(f"http://kfx:{PASSWORD}@mlflow.example:5000", "kfx", PASSWORD, TOKEN, "connection")
    shown = repr(target) + str(target)
    assert PASSWORD not in shown and TOKEN not in shown
    assert target.public_uri == "http://mlflow.example:5000"


def test_a_failing_mlflow_call_reports_without_the_secrets(caplog: pytest.LogCaptureFixture) -> None:
    target = TrackingTarget(f"http://kfx:{PASSWORD}@127.0.0.1:9", "kfx", PASSWORD, TOKEN, "connection")
    session = TrackingSession(target, strict=False)

    def fail() -> None:
        raise ConnectionError(f"failed to reach http://kfx:{PASSWORD}@127.0.0.1:9/api (token {TOKEN})")

    with caplog.at_level(logging.WARNING):
        session.call("create a run", fail)
    assert "failed to create a run" in caplog.text
    assert PASSWORD not in caplog.text and TOKEN not in caplog.text


def test_credentials_are_in_the_environment_only_during_a_call() -> None:
    """MLflow's client reads credentials from the environment per request: they are set
    for the call and gone afterwards, so nothing the worker starts later inherits them."""
    session = TrackingSession(TrackingTarget("http://127.0.0.1:9", "kfx", PASSWORD, TOKEN), strict=True)
    seen = session.call("look", lambda: (os.environ.get("MLFLOW_TRACKING_PASSWORD"), os.environ.get("MLFLOW_TRACKING_TOKEN")))
    assert seen == (PASSWORD, TOKEN)
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ and "MLFLOW_TRACKING_TOKEN" not in os.environ


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


@pytest.mark.slow
def test_a_run_with_an_mlflow_password_shows_it_nowhere(
    mlflow_server: MlflowServer, kube: KubeDouble, dags_folder: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """A pipeline on the kubernetes runtime with an MLflow connection holding a password
    and a token: the tasks log to MLflow, and neither secret is in the task logs, the
    XComs, the pods the cluster received (they get the secret by reference), a rendered
    manifest or anything MLflow stored."""
    host = mlflow_server.url.removeprefix("http://")
    connection = {"conn_type": "mlflow", "host": f"http://{host}", "login": "kfx", "password": PASSWORD,
                  "extra": {"token": TOKEN}}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW__KFX__MLFLOW_CREDENTIALS_SECRET", "mlflow-credentials")
    for name, value in kube.airflow_environment().items():
        monkeypatch.setenv(name, value)
    result = run_pipeline(REPO / "dags" / "pipelines" / "sequential.yaml", dags_folder,
                          settings={"on_finish_action": "keep_pod"})
    assert result.state == "success"
    log = capfd.readouterr().out + capfd.readouterr().err
    pods = kube.api().list_namespaced_pod("default", label_selector="kfx/pipeline=sequential").items
    assert pods, "the run's pods are kept for inspection"
    specs = json.dumps([kube.api().api_client.sanitize_for_serialization(p) for p in pods])
    assert '"secretRef": {"name": "mlflow-credentials"' in specs or '"mlflow-credentials"' in specs
    from airflow_kfx.cli import main

    assert main(["render", str(FIXTURES / "loops.yaml"), "-o", str(tmp_path / "pods")]) == 0
    rendered = "".join(p.read_text() for p in (tmp_path / "pods").rglob("*.yaml"))
    client = mlflow_server.client()
    stored = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            stored.append(json.dumps([run.data.params, run.data.tags]))
    assert any("kfx.task_path" in text for text in stored), "the tasks did log to MLflow"
    for where, text in [("the task logs", log), ("the XComs", json.dumps(list(result.results.values()), default=str)),
                        ("the pod specs", specs), ("the rendered manifests", rendered), ("MLflow", "".join(stored))]:
        assert PASSWORD not in text, f"the MLflow password is in {where}"
        assert TOKEN not in text, f"the MLflow token is in {where}"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ


@pytest.mark.slow
def test_platform_spec_secrets_reach_pods_only_by_reference(
    kube: KubeDouble, dags_folder: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """kfp-kubernetes ``use_secret_as_env``/``use_secret_as_volume`` (its name a pipeline
    parameter): the container gets the value, and the value is in no pod spec (a
    ``secretKeyRef`` and a secret volume instead), XCom, log line or MLflow record."""
    import hashlib

    import mlflow
    from kubernetes import client

    value = "db-9f27c1-secret-value"
    kube.api().create_namespaced_secret("default", client.V1Secret(
        metadata=client.V1ObjectMeta(name="db-creds"), string_data={"password": value}))
    for name, setting in kube.airflow_environment().items():
        monkeypatch.setenv(name, setting)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    result = run_pipeline(FIXTURES / "secret_env.yaml", dags_folder, settings={"on_finish_action": "keep_pod"})
    assert result.state == "success"
    assert result.parameter("check-secret", "digest") == hashlib.sha256(value.encode()).hexdigest() + " True"
    log = capfd.readouterr().out + capfd.readouterr().err
    pods = kube.api().list_namespaced_pod("default", label_selector="kfx/pipeline=secret-env").items
    specs = json.dumps([kube.api().api_client.sanitize_for_serialization(p) for p in pods])
    (pod,) = [kube.api().api_client.sanitize_for_serialization(p) for p in pods]
    main = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"key": "password", "name": "db-creds",
                                                                  "optional": False}}} in main["env"]
    assert [v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v] == ["db-creds"]
    tracking = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    stored = json.dumps([[r.data.params, r.data.tags, r.data.metrics] for e in tracking.search_experiments()
                         for r in tracking.search_runs([e.experiment_id])])
    assert "kfx.task_path" in stored, "the task did log to MLflow"
    for where, text in [("the logs", log), ("the XComs", json.dumps(list(result.results.values()), default=str)),
                        ("the pod specs", specs), ("MLflow", stored)]:
        assert value not in text, f"the secret's value is in {where}"
