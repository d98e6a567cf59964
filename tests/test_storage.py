"""The worker's way to the pipeline root (``runtime/storage.py``), against a real S3 API.

``aws_default`` (``AIRFLOW_CONN_AWS_DEFAULT``) points at moto's server
(``tests/s3_server.py``); no ``AWS_*`` variable is set, so everything the worker reads or
writes goes through the Airflow connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.launcher import LOCAL_ROOT_ENV
from airflow_kfx.runtime import cache, storage
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, shared_server


@pytest.fixture(scope="module")
def s3() -> S3Server:
    return shared_server()


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.airflow_conn)
    monkeypatch.delenv("AIRFLOW__KFX__PIPELINE_ROOT_CONN_ID", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return s3.new_bucket("storage")


def launch(env: dict[str, str], root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_kfx.launcher", *args],
        env={"PATH": os.environ["PATH"], "HOME": str(root), LOCAL_ROOT_ENV: str(root), **env},
        cwd=root, capture_output=True, text=True, timeout=60,
    )


def test_read_write_exists_through_aws_default(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{bucket}/root/dag/run/task/0/_kfx/inputs/notes"
    assert not storage.exists(uri)
    storage.write_text(uri, "héllo")
    assert s3.get("root/dag/run/task/0/_kfx/inputs/notes", bucket) == "héllo".encode()
    assert storage.exists(uri) and storage.read_text(uri) == "héllo"
    assert storage.exists(f"s3://{bucket}/root/dag/run")  # a prefix with objects under it
    storage.write_bytes(f"s3://{bucket}/b.bin", b"\x00\x01")
    assert storage.read_bytes(f"s3://{bucket}/b.bin") == b"\x00\x01"
    with pytest.raises(FileNotFoundError):
        storage.read_text(f"s3://{bucket}/absent")
    assert storage.download_file(uri, str(tmp_path / "d" / "notes"))
    assert (tmp_path / "d" / "notes").read_text() == "héllo"
    assert not storage.download_file(f"s3://{bucket}/absent", str(tmp_path / "absent"))
    assert not (tmp_path / "absent").exists()


def test_minio_uris_are_the_s3_api_of_the_connection(s3: S3Server, bucket: str) -> None:
    storage.write_text(f"minio://{bucket}/m/x.json", '{"a": 1}')
    assert s3.get("m/x.json", bucket) == b'{"a": 1}'
    assert storage.exists(f"minio://{bucket}/m/x.json")
    assert storage.object_path(f"minio://{bucket}/m/x.json").protocol == "s3"


def test_what_another_process_wrote_is_seen_at_once(s3: S3Server, bucket: str) -> None:
    """The filesystem caches listings; the worker must still see what a pod uploaded."""
    storage.write_text(f"s3://{bucket}/t/0/first", "1")
    path = storage.object_path(f"s3://{bucket}/t/0/first")
    path.fs.ls(f"{bucket}/t/0")  # the listing is cached now
    s3.put("t/0/executor_output.json", "{}", bucket)  # the uploader, elsewhere
    assert storage.exists(f"s3://{bucket}/t/0/executor_output.json")
    assert storage.read_text(f"s3://{bucket}/t/0/executor_output.json") == "{}"


def test_local_paths_are_plain_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.txt"
    storage.write_text(str(target), "local")
    assert target.read_text() == "local" and storage.exists(str(target))
    assert storage.read_text(f"file://{target}") == "local"
    assert storage.read_bytes(str(target)) == b"local"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]  # no temporary file left behind
    assert not storage.exists(str(tmp_path / "none"))
    assert storage.launcher_env(str(tmp_path)) == {}
    assert not storage.is_remote(f"file://{target}") and storage.is_remote("s3://b/k")


def test_launcher_env_is_the_connection(s3: S3Server, bucket: str) -> None:
    assert storage.conn_id_for("s3://b/k") == "aws_default"
    assert storage.conn_id_for("minio://b/k") == "aws_default"
    assert storage.conn_id_for("gs://b/k") == "google_cloud_default"
    expected = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": s3.endpoint,
    }
    assert storage.launcher_env(f"s3://{bucket}/root") == expected
    assert storage.launcher_env(f"minio://{bucket}/root") == expected


def test_pipeline_root_conn_id_and_service_config(s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__KFX__PIPELINE_ROOT_CONN_ID", "kfx_store")
    monkeypatch.setenv("AIRFLOW_CONN_KFX_STORE", json.dumps({
        "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
        "extra": {"region_name": "eu-west-1", "aws_session_token": "session-token",
                  "service_config": {"s3": {"endpoint_url": s3.endpoint}}},
    }))
    assert storage.conn_id_for("s3://b/k") == "kfx_store"
    assert storage.launcher_env(f"s3://{bucket}/root") == {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": "session-token",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": s3.endpoint,
    }
    storage.write_text(f"s3://{bucket}/via-kfx-store", "ok")  # the worker uses that connection too
    assert s3.get("via-kfx-store", bucket) == b"ok"


def test_the_launcher_works_with_launcher_env_and_the_worker_sees_the_marker(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    run_root = f"s3://{bucket}/root/dag/run"
    task_root = f"{run_root}/train/0"
    storage.write_text(f"{run_root}/load/0/data", "input")
    env = storage.launcher_env(run_root)
    down = launch(env, tmp_path, "download", "--artifact", f"{run_root}/load/0/data", "--task-root", task_root)
    assert down.returncode == 0, down.stderr
    local = tmp_path / "s3" / bucket / "root/dag/run"
    assert (local / "load/0/data").read_text() == "input"
    (local / "train/0/model").write_text("model")
    assert not storage.upload_complete(task_root)
    assert storage.upload_marker(task_root) is None
    up = launch(env, tmp_path, "upload", "--task-root", task_root, "--run-root", run_root, "--attempt", "3")
    assert up.returncode == 0, up.stderr
    assert storage.read_text(f"{task_root}/model") == "model"
    assert storage.upload_complete(task_root) and storage.upload_complete(task_root, attempt="3")
    assert not storage.upload_complete(task_root, attempt="2")
    assert storage.upload_marker(task_root) == {**storage.upload_marker(task_root), "files": 1, "bytes": 5}
    assert storage.upload_error(task_root) is None
    for text in (down.stdout, down.stderr, up.stdout, up.stderr):
        assert SECRET_KEY not in text


def test_a_failed_upload_says_why(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    run_root = f"s3://{bucket}/root/dag/run"
    task_root = f"{run_root}/train/0"
    local = tmp_path / "s3" / bucket / "root/dag/run/train/0"
    local.mkdir(parents=True)
    (local / "executor_output.json").write_text(json.dumps(
        {"artifacts": {"m": {"artifacts": [{"uri": f"s3://{bucket}/elsewhere/m"}]}}}
    ))
    up = launch(storage.launcher_env(run_root), tmp_path, "upload", "--task-root", task_root, "--run-root", run_root)
    assert up.returncode != 0
    assert not storage.upload_complete(task_root)
    assert "a task's output URIs must stay under its run's root" in (storage.upload_error(task_root) or "")
    started = time.monotonic()
    assert storage.wait_for_upload(task_root, timeout=30) is None  # the error ends the wait at once
    assert time.monotonic() - started < 5


def test_wait_for_upload_waits_for_the_marker(s3: S3Server, bucket: str) -> None:
    task_root = f"s3://{bucket}/root/dag/run/train/0"
    assert storage.wait_for_upload(task_root, timeout=0.2, interval=0.05) is None
    timer = threading.Timer(0.5, s3.put, args=("root/dag/run/train/0/_kfx/uploaded.json",
                                               '{"attempt": "a", "files": 0}', bucket))
    timer.start()
    try:
        assert storage.wait_for_upload(task_root, timeout=20, attempt="a", interval=0.1) == {
            "attempt": "a", "files": 0,
        }
    finally:
        timer.cancel()
    assert storage.wait_for_upload(task_root, timeout=0.2, attempt="b", interval=0.05) is None


def test_the_cache_lives_under_an_object_storage_root(s3: S3Server, bucket: str) -> None:
    root = f"s3://{bucket}/pipelines"
    artifact = f"{root}/dag/run/train/0/model"
    outputs: dict[str, Any] = {
        "parameters": {"accuracy": 0.9},
        "artifacts": {"model": [{"name": "model", "uri": artifact, "metadata": {}}]},
    }
    assert cache.lookup(root, "k1") is None
    cache.store(root, "k1", outputs)
    assert s3.keys("pipelines/.kfx-cache/", bucket) == ["pipelines/.kfx-cache/k1.json"]
    assert cache.lookup(root, "k1") is None  # its artifact is not there
    storage.write_text(artifact, "weights")
    assert cache.lookup(root, "k1") == outputs


def test_no_credential_in_logs(s3: S3Server, bucket: str, caplog: pytest.LogCaptureFixture,
                               capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level("DEBUG")
    storage.launcher_env(f"s3://{bucket}/root")
    storage.write_text(f"s3://{bucket}/x", "x")
    storage.read_text(f"s3://{bucket}/x")
    captured = capsys.readouterr()
    assert SECRET_KEY not in caplog.text + captured.out + captured.err
