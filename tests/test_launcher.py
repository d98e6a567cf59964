"""The launcher (``python -m airflow_kfx.launcher``) and the pod containers that run it.

Against a real S3 API (moto's server, ``tests/s3_server.py``): the launcher runs as a
subprocess with only its credentials in the environment, as in a pod, or in-process
where a test needs to watch the order of its calls. ``KFX_LAUNCHER_LOCAL_ROOT`` puts
KFP's local paths (``/s3/<bucket>/...``) under a temporary folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

from airflow_kfx.launcher import (
    EXIT_FAILED,
    EXIT_MISSING,
    EXIT_REFUSED,
    LOCAL_ROOT_ENV,
    MARKER,
    remote,
    transfer,
)
from airflow_kfx.launcher.uris import LauncherError
from airflow_kfx.pod.transport import (
    DEFAULT_GRACE_SECONDS,
    DONE_FILE,
    DOWNLOAD_CONTAINER,
    LAUNCHER_DIR,
    READY_FILE,
    UPLOAD_CONTAINER,
    VOLUME,
    LauncherSpec,
    add_launcher,
)
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, shared_server

K8S_VERSION = "1.33"


@pytest.fixture(scope="module")
def s3() -> S3Server:
    return shared_server()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.new_bucket("launcher")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The local root: KFP's ``/s3/b/k`` is ``<root>/s3/b/k`` here."""
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def in_process(s3: S3Server, root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The launcher's environment in this process, for calling its functions directly."""
    for name, value in s3.launcher_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(LOCAL_ROOT_ENV, str(root))
    remote._cache.clear()
    yield
    remote._cache.clear()


def launch(s3: S3Server, root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The launcher as a pod runs it: its own process, credentials only from its env."""
    base = {"PATH": os.environ["PATH"], "HOME": str(root.parent), LOCAL_ROOT_ENV: str(root), **s3.launcher_env}
    return subprocess.run(
        [sys.executable, "-m", "airflow_kfx.launcher", *args],
        env=base if env is None else {**base, **env}, cwd=root.parent, capture_output=True, text=True, timeout=60,
    )


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def mirror(root: Path, uri: str) -> Path:
    scheme, rest = uri.split("://", 1)
    return root / {"s3": "s3", "gs": "gcs", "minio": "minio"}[scheme] / rest


# -- download -----------------------------------------------------------------------------


def test_download_puts_a_file_and_a_prefix_at_their_kfp_local_paths(s3: S3Server, bucket: str, root: Path) -> None:
    s3.put("in/data.csv", "a,b\n1,2\n", bucket)
    s3.put("in/model/weights.bin", b"\x00" * 1000, bucket)
    s3.put("in/model/config/params.json", '{"k": 1}', bucket)
    task_root = f"s3://{bucket}/pipeline/dag/run/train/0"
    s3.put("pipeline/dag/run/train/0/_kfx/uploaded.json", "{}", bucket)  # an earlier try's
    result = launch(s3, root, "download", "--artifact", f"s3://{bucket}/in/data.csv",
                    "--artifact", f"s3://{bucket}/in/model", "--task-root", task_root,
                    "--mkdir", f"{task_root}/_kfx/parameters")
    assert result.returncode == 0, result.stderr
    assert (root / "s3" / bucket / "in/data.csv").read_text() == "a,b\n1,2\n"
    assert (root / "s3" / bucket / "in/model/weights.bin").read_bytes() == b"\x00" * 1000
    assert (root / "s3" / bucket / "in/model/config/params.json").read_text() == '{"k": 1}'
    # one line per transfer: the URI and the size
    assert f"downloaded s3://{bucket}/in/data.csv -> {root}/s3/{bucket}/in/data.csv (8 bytes)" in result.stdout
    assert f"s3://{bucket}/in/model/weights.bin" in result.stdout and "(1000 bytes)" in result.stdout
    # output folders exist, writable by any user (the user's container may run as another one)
    for folder in (mirror(root, task_root), mirror(root, task_root) / "_kfx/parameters"):
        assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o777
    assert s3.keys("pipeline/", bucket) == []  # the earlier try's marker cannot vouch for this one
    assert SECRET_KEY not in result.stdout + result.stderr


def test_a_missing_input_artifact_is_a_clear_error(s3: S3Server, bucket: str, root: Path) -> None:
    s3.put("in/present.txt", "x", bucket)
    result = launch(s3, root, "download", "--artifact", f"s3://{bucket}/in/present.txt",
                    "--artifact", f"s3://{bucket}/in/absent")
    assert result.returncode == EXIT_MISSING
    assert f"input artifact s3://{bucket}/in/absent does not exist" in result.stderr


def test_minio_uris_are_the_s3_api_at_the_endpoint(s3: S3Server, bucket: str, root: Path) -> None:
    s3.put("in/m.txt", "minio", bucket)
    result = launch(s3, root, "download", "--artifact", f"minio://{bucket}/in/m.txt")
    assert result.returncode == 0, result.stderr
    assert (root / "minio" / bucket / "in/m.txt").read_text() == "minio"

    without = launch(s3, root, "download", "--artifact", f"minio://{bucket}/in/m.txt", env={"AWS_ENDPOINT_URL": ""})
    assert without.returncode == EXIT_FAILED
    assert "set AWS_ENDPOINT_URL" in without.stderr


def test_gs_without_gcsfs_is_refused_clearly(in_process: Any) -> None:
    pytest.importorskip("s3fs")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover
        pytest.skip("gcsfs is installed")
    with pytest.raises(LauncherError, match="gs:// artifacts need gcsfs"):
        transfer.download(["gs://bucket/in/x"])


def test_bad_command_lines(s3: S3Server, root: Path) -> None:
    assert launch(s3, root, "upload", "--task-root", "s3://b/r/t").returncode == 2  # argparse: --run-root
    result = launch(s3, root, "download", "--artifact", "/local/path")
    assert result.returncode == EXIT_REFUSED and "not an object-storage URI" in result.stderr
    result = launch(s3, root, "upload", "--task-root", "s3://b/other/t", "--run-root", "s3://b/run")
    assert result.returncode == EXIT_REFUSED and "is not under the run root" in result.stderr


# -- upload -------------------------------------------------------------------------------


class Recording:
    """A filesystem that records the upload calls it passes on."""

    def __init__(self, fs: Any, calls: list[tuple[str, str]], fail_on: str = "") -> None:
        self._fs, self._calls, self._fail_on = fs, calls, fail_on

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        """Files are uploaded by streaming into ``open(path, "wb")`` (bounded memory)."""
        if "w" in mode:
            if self._fail_on and path.endswith(self._fail_on):
                raise ConnectionError("the store went away")
            self._calls.append(("put", path))
        return self._fs.open(path, mode, **kwargs)

    def pipe_file(self, path: str, data: bytes) -> None:
        self._fs.pipe_file(path, data)
        self._calls.append(("pipe", path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


def test_upload_mirrors_the_task_root_and_writes_the_marker_last(
    s3: S3Server, bucket: str, root: Path, in_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_root = f"s3://{bucket}/pipeline/dag/run"
    task_root = f"{run_root}/train/0"
    local = mirror(root, task_root)
    write(local / "model/weights.bin", b"w" * 300)
    write(local / "model/deep/er/notes.txt", "notes")
    write(local / "_kfx/parameters/accuracy", "0.9")
    write(local / "metrics", '{"a": 1}')
    (local / "empty-folder").mkdir()
    write(local / MARKER, "{}")  # a marker the task wrote itself is never uploaded
    calls: list[tuple[str, str]] = []
    real = transfer.filesystem
    monkeypatch.setattr(transfer, "filesystem", lambda scheme: Recording(real(scheme), calls))
    lines: list[str] = []
    stats = transfer.upload(task_root, run_root, attempt="try-1", out=lines.append)
    prefix = "pipeline/dag/run/train/0/"
    assert s3.keys(prefix, bucket) == [prefix + k for k in (
        "_kfx/parameters/accuracy", "_kfx/uploaded.json", "metrics", "model/deep/er/notes.txt", "model/weights.bin",
    )]
    assert s3.get(prefix + "model/weights.bin", bucket) == b"w" * 300
    assert calls[-1] == ("pipe", f"{bucket}/{prefix}_kfx/uploaded.json")
    assert all(kind == "put" for kind, _ in calls[:-1]) and len(calls) == 5
    marker = json.loads(s3.get(prefix + "_kfx/uploaded.json", bucket))
    assert marker["files"] == stats.files == 4 and marker["bytes"] == stats.bytes == 300 + 5 + 3 + 8
    assert marker["attempt"] == "try-1" and marker["task_root"] == task_root
    assert f"uploaded {local}/model/weights.bin -> {task_root}/model/weights.bin (300 bytes)" in lines


def test_an_interrupted_upload_writes_no_marker(
    s3: S3Server, bucket: str, root: Path, in_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_root = f"s3://{bucket}/run"
    task_root = f"{run_root}/t/0"
    s3.put("run/t/0/_kfx/uploaded.json", '{"attempt": "earlier"}', bucket)  # an earlier try's
    write(mirror(root, task_root) / "a.txt", "a")
    write(mirror(root, task_root) / "b.txt", "b")
    calls: list[tuple[str, str]] = []
    real = transfer.filesystem
    monkeypatch.setattr(transfer, "filesystem", lambda scheme: Recording(real(scheme), calls, fail_on="b.txt"))
    with pytest.raises(LauncherError, match="b.txt: ConnectionError: the store went away") as failed:
        transfer.upload(task_root, run_root, out=lambda line: None)
    assert failed.value.code == EXIT_FAILED
    keys = s3.keys("run/t/0/", bucket)
    assert "run/t/0/_kfx/uploaded.json" not in keys  # the earlier try's marker is gone too
    assert "the store went away" in json.loads(s3.get("run/t/0/_kfx/upload-error.json", bucket))["error"]


def test_executor_output_artifacts_inside_the_run_root_are_uploaded(s3: S3Server, bucket: str, root: Path) -> None:
    run_root = f"s3://{bucket}/pipeline/dag/run"
    task_root = f"{run_root}/train/0"
    elsewhere = f"{run_root}/shared/model"
    write(mirror(root, elsewhere) / "w.bin", b"model")
    write(mirror(root, task_root) / "custom/file.txt", "custom")
    write(mirror(root, task_root) / "executor_output.json", json.dumps({"artifacts": {
        "model": {"artifacts": [{"uri": elsewhere, "metadata": {"framework": "x"}}]},
        "report": {"artifacts": [{"uri": f"{run_root}/reports/r.txt",
                                  "customPath": str(Path("/s3") / bucket / "pipeline/dag/run/train/0/custom/file.txt")}]},
    }}))
    result = launch(s3, root, "upload", "--task-root", task_root, "--run-root", run_root)
    assert result.returncode == 0, result.stderr
    assert s3.get("pipeline/dag/run/shared/model/w.bin", bucket) == b"model"
    assert s3.get("pipeline/dag/run/reports/r.txt", bucket) == b"custom"
    assert "pipeline/dag/run/train/0/_kfx/uploaded.json" in s3.keys("pipeline/", bucket)
    assert result.stdout.strip().splitlines()[-1].endswith("_kfx/uploaded.json written")


def test_executor_output_artifacts_outside_the_run_root_are_refused(s3: S3Server, bucket: str, root: Path) -> None:
    run_root = f"s3://{bucket}/pipeline/dag/run"
    task_root = f"{run_root}/train/0"
    outside = f"s3://{bucket}/pipeline/dag/other-run/model"
    write(mirror(root, outside), "stolen")
    write(mirror(root, task_root) / "executor_output.json", json.dumps({"artifacts": {
        "model": {"artifacts": [{"uri": outside}]},
    }}))
    result = launch(s3, root, "upload", "--task-root", task_root, "--run-root", run_root)
    assert result.returncode == EXIT_REFUSED
    assert "a task's output URIs must stay under its run's root" in result.stderr and outside in result.stderr
    keys = s3.keys("pipeline/", bucket)
    assert "pipeline/dag/other-run/model" not in keys
    assert "pipeline/dag/run/train/0/_kfx/uploaded.json" not in keys
    assert "pipeline/dag/run/train/0/_kfx/upload-error.json" in keys


@pytest.mark.parametrize("uri_tail", ["train/0/../../../elsewhere", "./x"])
def test_dot_segments_in_output_uris_are_refused(s3: S3Server, bucket: str, root: Path, uri_tail: str) -> None:
    run_root = f"s3://{bucket}/run"
    write(mirror(root, f"{run_root}/train/0") / "executor_output.json", json.dumps({"artifacts": {
        "model": {"artifacts": [{"uri": f"{run_root}/{uri_tail}"}]},
    }}))
    result = launch(s3, root, "upload", "--task-root", f"{run_root}/train/0", "--run-root", run_root)
    assert result.returncode == EXIT_REFUSED
    assert "'.' or '..' path segment" in result.stderr


def test_symlinks_leaving_the_shared_folders_are_refused(s3: S3Server, bucket: str, root: Path, tmp_path: Path) -> None:
    run_root = f"s3://{bucket}/run"
    task_root = f"{run_root}/t/0"
    local = mirror(root, task_root)
    secret = write(tmp_path / "outside" / "credentials", "top secret")
    write(mirror(root, f"{run_root}/input/data.txt"), "input data")
    write(local / "real.txt", "real")
    (local / "escape").symlink_to(secret)  # e.g. /proc/self/environ of the uploader
    (local / "from-input").symlink_to(mirror(root, f"{run_root}/input/data.txt"))  # stays inside: fine
    (local / "dir-escape").symlink_to(secret.parent, target_is_directory=True)
    write(local / "executor_output.json", json.dumps({"artifacts": {
        "x": {"artifacts": [{"uri": f"{run_root}/x", "customPath": f"/s3/{bucket}/run/t/0/../../../../../{secret}"}]},
    }}))
    result = launch(s3, root, "upload", "--task-root", task_root, "--run-root", run_root)
    assert result.returncode == EXIT_REFUSED
    assert "outside the shared artifact folders" in result.stderr
    for name in ("escape", "dir-escape", "x"):
        assert f"{name}" in result.stderr
    keys = s3.keys("run/", bucket)
    assert "run/t/0/real.txt" in keys and "run/t/0/from-input" in keys  # uploaded before the refusal
    assert s3.get("run/t/0/from-input", bucket) == b"input data"
    assert not any(k.endswith(("escape", "credentials", "run/x")) for k in keys)
    assert "run/t/0/_kfx/uploaded.json" not in keys
    assert not any(b"top secret" in s3.get(k, bucket) for k in keys)


def test_sigterm_starts_the_upload_at_once(s3: S3Server, bucket: str, root: Path) -> None:
    """The native sidecar: started before the task, stopped by the kubelet after it."""
    run_root = f"s3://{bucket}/run"
    task_root = f"{run_root}/t/0"
    ready = root.parent / "launcher" / "upload-ready"
    env = {"PATH": os.environ["PATH"], "HOME": str(root.parent), LOCAL_ROOT_ENV: str(root), **s3.launcher_env}
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_kfx.launcher", "upload", "--task-root", task_root, "--run-root", run_root,
         "--wait-for-sigterm", "--ready-file", str(ready), "--attempt", "pod-1"],
        env=env, cwd=root.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the uploader never became ready"
            time.sleep(0.05)
        # the task runs now, writing its outputs while the uploader waits
        write(mirror(root, task_root) / "out/result.txt", "42")
        time.sleep(0.3)
        assert process.poll() is None
        assert s3.keys("run/", bucket) == []
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        elapsed = time.monotonic() - signalled
    finally:
        if process.poll() is None:  # pragma: no cover
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert elapsed < 10
    lines = output.strip().splitlines()
    assert lines[0].startswith("waiting for SIGTERM") and lines[1].startswith("got SIGTERM")
    assert lines[-1].endswith("_kfx/uploaded.json written")
    assert s3.get("run/t/0/out/result.txt", bucket) == b"42"
    assert json.loads(s3.get("run/t/0/_kfx/uploaded.json", bucket))["attempt"] == "pod-1"


def test_the_download_ends_only_once_the_uploader_is_ready(s3: S3Server, bucket: str, root: Path) -> None:
    ready, done = root.parent / "launcher" / "upload-ready", root.parent / "launcher" / "download-done"
    result = launch(s3, root, "download", "--task-root", f"s3://{bucket}/run/t/0", "--uploader-ready", str(ready),
                    "--wait-timeout", "0.3", "--done-file", str(done))
    assert result.returncode == EXIT_FAILED
    assert "the upload sidecar did not get ready within 0.3 s" in result.stderr
    assert not done.exists()
    write(ready, "ready")
    result = launch(s3, root, "download", "--task-root", f"s3://{bucket}/run/t/0", "--uploader-ready", str(ready),
                    "--done-file", str(done))
    assert result.returncode == 0, result.stderr
    assert done.exists()


def test_no_upload_when_the_download_did_not_finish(s3: S3Server, bucket: str, root: Path) -> None:
    write(mirror(root, f"s3://{bucket}/run/t/0") / "partial.txt", "x")
    result = launch(s3, root, "upload", "--task-root", f"s3://{bucket}/run/t/0", "--run-root", f"s3://{bucket}/run",
                    "--download-done", str(root.parent / "launcher" / "download-done"))
    assert result.returncode == EXIT_FAILED and "the task never ran: nothing uploaded" in result.stderr
    assert s3.keys("run/", bucket) == []


def test_a_whole_pod_on_the_local_runtime(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """The pod add_launcher makes, run as processes the way a kubelet runs it (the ``local``
    runtime's pod runner): download, then a task that ends at once, then the uploader's
    SIGTERM — which must never be lost, however fast the task."""
    from airflow_kfx.runtime import podrun as pod_process

    assert pod_process.can_mount(), "mapping volumes needs root and unshare (CI runs as root)"
    run_root = f"s3://{bucket}/root/dag/run"
    task_root = f"{run_root}/train/0"
    s3.put("root/dag/run/load/0/data", "input-data", bucket)
    local = f"/s3/{bucket}/root/dag/run"
    code = (f"import pathlib; data = pathlib.Path('{local}/load/0/data').read_text(); "
            f"pathlib.Path('{local}/train/0/model').write_text(data.upper()); "
            f"pathlib.Path('{local}/train/0/_kfx/parameters/n').write_text('3')")
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="train"), spec=k8s.V1PodSpec(restart_policy="Never", containers=[
        k8s.V1Container(name="base", image="python:3.11", command=["python", "-c", code])]))
    spec = LauncherSpec(image="local", pipeline_root=f"s3://{bucket}/root", run_root=run_root, task_root=task_root,
                        inputs=(f"{run_root}/load/0/data",), grace_seconds=60, attempt="1")

    class Cluster:
        def secret(self, name: str) -> None:
            return None

        def config_map(self, name: str) -> None:
            return None

        def claim_folder(self, name: str) -> None:
            return None

    lines: list[str] = []

    class Observer:
        def container_started(self, name: str, *, init: bool) -> None:
            pass

        def log(self, container: str, line: str) -> None:
            lines.append(f"[{container}] {line}")

        def container_ended(self, exit: Any, *, init: bool) -> None:
            lines.append(f"{exit.name} exited {exit.exit_code}")

    body = ApiClient().sanitize_for_serialization(add_launcher(pod, spec, main_container="base"))
    credentials = s3.launcher_env
    outcome = pod_process.PodRun(body, Cluster(), Observer(), scratch_root=str(tmp_path), extra_env={
        DOWNLOAD_CONTAINER: credentials, UPLOAD_CONTAINER: credentials,
    }).run()
    assert outcome.phase == "Succeeded", "\n".join(lines)
    assert f"{UPLOAD_CONTAINER} exited 0" in lines, "\n".join(lines)
    assert s3.get("root/dag/run/train/0/model", bucket) == b"INPUT-DATA"
    assert s3.get("root/dag/run/train/0/_kfx/parameters/n", bucket) == b"3"
    assert json.loads(s3.get("root/dag/run/train/0/_kfx/uploaded.json", bucket))["attempt"] == "1"


def test_the_launcher_imports_no_airflow_kubernetes_or_mlflow() -> None:
    code = (
        "import sys, airflow_kfx.launcher.cli, airflow_kfx.launcher.transfer, airflow_kfx.launcher.remote; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'kubernetes', 'mlflow', 'yaml'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# -- the pod ------------------------------------------------------------------------------

SPEC = LauncherSpec(
    image="registry.example/airflow-kfx:1",
    pipeline_root="s3://artifacts/pipelines",
    run_root="s3://artifacts/pipelines/dag/run-1",
    task_root="s3://artifacts/pipelines/dag/run-1/train/0",
    inputs=("s3://artifacts/pipelines/dag/run-1/load/0/data", "minio://other/imported/model"),
    credentials_secret="kfx-artifact-credentials",
    output_dirs=("s3://artifacts/pipelines/dag/run-1/train/0/extra",),
    attempt="try-1",
)


def user_pod(**spec: Any) -> k8s.V1Pod:
    main = k8s.V1Container(
        name="base", image="python:3.11", image_pull_policy="Always", command=["python", "-c", "print(1)"],
        env=[k8s.V1EnvVar(name="MODE", value="train")],
        security_context=k8s.V1SecurityContext(
            run_as_user=1000, run_as_group=1000, privileged=False, run_as_non_root=True,
            capabilities=k8s.V1Capabilities(add=["NET_ADMIN"], drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data")],
    )
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name="train", namespace="ml"),
        spec=k8s.V1PodSpec(
            containers=[main], restart_policy="Never",
            init_containers=[k8s.V1Container(name="setup", image="busybox", command=["true"])],
            volumes=[k8s.V1Volume(name="data", empty_dir=k8s.V1EmptyDirVolumeSource())],
            **spec,
        ),
    )


def manifest(pod: Any) -> dict[str, Any]:
    body = ApiClient().sanitize_for_serialization(pod)
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    return body


def by_name(containers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in containers}


def test_add_launcher_adds_two_containers_and_one_volume() -> None:
    original = user_pod()
    before = ApiClient().sanitize_for_serialization(original)
    body = manifest(add_launcher(original, SPEC, main_container="base"))
    assert ApiClient().sanitize_for_serialization(original) == before  # the input is left alone
    spec = body["spec"]
    init = spec["initContainers"]
    assert [c["name"] for c in init] == ["setup", UPLOAD_CONTAINER, DOWNLOAD_CONTAINER]
    upload, download = init[1], init[2]
    assert download["command"] + download["args"] == [
        "python", "-m", "airflow_kfx.launcher", "download", "--task-root", SPEC.task_root,
        "--uploader-ready", READY_FILE, "--done-file", DONE_FILE, "--mkdir", f"{SPEC.task_root}/_kfx/parameters", "--mkdir", SPEC.output_dirs[0],
        "--artifact", SPEC.inputs[0], "--artifact", SPEC.inputs[1],
    ]
    assert upload["command"] + upload["args"] == [
        "python", "-m", "airflow_kfx.launcher", "upload", "--task-root", SPEC.task_root, "--run-root", SPEC.run_root,
        "--wait-for-sigterm", "--ready-file", READY_FILE, "--download-done", DONE_FILE, "--attempt", "try-1",
    ]
    assert "restartPolicy" not in download and upload["restartPolicy"] == "Always"
    for container in (download, upload):
        assert container["image"] == SPEC.image
        assert container["imagePullPolicy"] == "Always"  # the main container's
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}}
        assert container["securityContext"] == {  # the user and restrictions, never added privileges
            "allowPrivilegeEscalation": False, "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert container["envFrom"] == [{"secretRef": {"name": "kfx-artifact-credentials"}}]
        assert container["volumeMounts"] == [
            {"name": VOLUME, "mountPath": "/minio", "subPath": "minio"},
            {"name": VOLUME, "mountPath": "/s3", "subPath": "s3"},
            {"name": VOLUME, "mountPath": LAUNCHER_DIR, "subPath": "launcher"},
        ]
    assert {"name": VOLUME, "emptyDir": {}} in spec["volumes"]
    assert spec["terminationGracePeriodSeconds"] == DEFAULT_GRACE_SECONDS


def test_the_users_container_gets_only_the_mounts() -> None:
    before = by_name(ApiClient().sanitize_for_serialization(user_pod())["spec"]["containers"])["base"]
    body = manifest(add_launcher(user_pod(), SPEC, main_container="base"))
    main = by_name(body["spec"]["containers"])["base"]
    assert main["volumeMounts"] == before["volumeMounts"] + [
        {"name": VOLUME, "mountPath": "/minio", "subPath": "minio"},
        {"name": VOLUME, "mountPath": "/s3", "subPath": "s3"},
    ]
    assert {k: v for k, v in main.items() if k != "volumeMounts"} == {
        k: v for k, v in before.items() if k != "volumeMounts"
    }
    assert "envFrom" not in main
    assert by_name(body["spec"]["initContainers"])["setup"].get("envFrom") is None


def test_no_credential_value_anywhere_in_the_pod(s3: S3Server) -> None:
    text = json.dumps(manifest(add_launcher(user_pod(), SPEC, main_container="base")))
    for value in (*s3.launcher_env.values(), ACCESS_KEY, SECRET_KEY):
        if value.startswith("http"):
            continue
        assert value not in text
    assert "AWS_" not in text


def test_without_a_secret_no_env_from_and_a_longer_grace_period_is_kept() -> None:
    spec = LauncherSpec(image="img", pipeline_root="s3://b/p", run_root="s3://b/p/d/r", task_root="s3://b/p/d/r/t/0")
    body = manifest(add_launcher(user_pod(termination_grace_period_seconds=3600), spec, main_container="base"))
    assert body["spec"]["terminationGracePeriodSeconds"] == 3600
    for container in body["spec"]["initContainers"][1:]:
        assert "envFrom" not in container and "--attempt" not in container["args"]
        assert [m["mountPath"] for m in container["volumeMounts"]] == ["/s3", LAUNCHER_DIR]
    short = manifest(add_launcher(user_pod(termination_grace_period_seconds=5), spec, main_container="base"))
    assert short["spec"]["terminationGracePeriodSeconds"] == DEFAULT_GRACE_SECONDS


def test_add_launcher_on_a_rendered_task_pod(tmp_path: Path) -> None:
    """A real task pod (the operator's own build_pod_request_obj, kfp-kubernetes settings)."""
    from airflow_kfx import load_pipeline
    from airflow_kfx.render import render_pod
    from tests.support import FIXTURES

    local_root = str(tmp_path / "artifacts")  # a local root: the pod as built, without a launcher
    dag = load_pipeline(FIXTURES / "artifacts.yaml", settings={"pipeline_root": local_root})
    task = dag.get_task("inspect-data")
    pod = render_pod(task, {})
    assert DOWNLOAD_CONTAINER not in {c.name for c in pod.spec.init_containers or []}
    invocation = task._invocation

    def remote(uri: str) -> str:
        return "s3://artifacts/root" + uri[len(local_root):]

    inputs = tuple(remote(ref.uri) for refs in invocation.context.input_artifacts.values() for ref in refs)
    assert len(inputs) == 2
    spec = LauncherSpec(image="launcher:1", pipeline_root="s3://artifacts/root",
                        run_root=remote(invocation.task_root).rsplit("/", 2)[0],
                        task_root=remote(invocation.task_root), inputs=inputs, credentials_secret="creds")
    body = manifest(add_launcher(pod, spec, main_container="base"))
    assert [c["name"] for c in body["spec"]["initContainers"]][-2:] == [UPLOAD_CONTAINER, DOWNLOAD_CONTAINER]
    main = by_name(body["spec"]["containers"])["base"]
    assert {"name": VOLUME, "mountPath": "/s3", "subPath": "s3"} in main["volumeMounts"]
    assert {"secretRef": {"name": "creds"}} not in (main.get("envFrom") or [])


def test_kfx_render_stand_ins_pass_through() -> None:
    stand_in = "<one of: s3://b/p/d/r/a/0/x | s3://b/p/d/r/b/0/x>"
    spec = LauncherSpec(image="<[kfx] launcher_image>", pipeline_root="s3://b/p", run_root="s3://b/p/d/<run_id>",
                        task_root="s3://b/p/d/<run_id>/t/0", inputs=(stand_in,))
    body = manifest(add_launcher(user_pod(), spec, main_container="base"))
    download = by_name(body["spec"]["initContainers"])[DOWNLOAD_CONTAINER]
    assert download["args"][-2:] == ["--artifact", stand_in]


def test_add_launcher_refusals() -> None:
    with pytest.raises(ValueError, match="no container named 'main'"):
        add_launcher(user_pod(), SPEC, main_container="main")
    with pytest.raises(ValueError, match="launcher_image"):
        add_launcher(user_pod(), LauncherSpec("", "s3://b/p", "s3://b/p/r", "s3://b/p/r/t"), main_container="base")
    with pytest.raises(ValueError, match="not under the run root"):
        add_launcher(user_pod(), LauncherSpec("i", "s3://b/p", "s3://b/p/r", "s3://b/p/r2/t"), main_container="base")
    with pytest.raises(ValueError, match="not an object-storage URI"):
        add_launcher(user_pod(), LauncherSpec("i", "/local", "/local/r", "/local/r/t"), main_container="base")
    clashing = user_pod()
    clashing.spec.containers[0].volume_mounts.append(k8s.V1VolumeMount(name="data", mount_path="/s3"))
    with pytest.raises(ValueError, match="already mounts /s3"):
        add_launcher(clashing, SPEC, main_container="base")
    twice = add_launcher(user_pod(), SPEC, main_container="base")
    with pytest.raises(ValueError, match="already has launcher containers"):
        add_launcher(twice, SPEC, main_container="base")


def test_transfer_failures_do_not_leak_credentials(in_process: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    assert transfer.describe(RuntimeError("signature for very-secret-value failed")) == (
        "RuntimeError: signature for *** failed"
    )
    with pytest.raises(LauncherError) as error:
        transfer.download(["s3://no-such-bucket-kfx/x"])
    assert error.value.code in (EXIT_MISSING, EXIT_FAILED)
    assert "very-secret-value" not in str(error.value)
