"""The pod runner (``airflow_kfx.runtime.podrun``): a pod spec run as local
processes the way a kubelet runs it, and the ``local`` runtime built on it."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.runtime.podrun import ContainerExit, PodOutcome, PodRun, can_mount, pod_needs

PY = os.path.basename(sys.executable)
needs_mounts = pytest.mark.skipif(not can_mount(), reason="volumes need root and unshare")


class Cluster:
    def __init__(self, secrets: Mapping[str, Mapping[str, bytes]] = {}, config_maps: Mapping[str, Mapping[str, str]] = {},
                 claims: Mapping[str, str] = {}) -> None:
        self.secrets, self.config_maps, self.claims = secrets, config_maps, claims

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get(name)

    def config_map(self, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get(name)

    def claim_folder(self, name: str) -> str | None:
        return self.claims.get(name)


class Recorder:
    """What the run reported, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.logs: dict[str, list[str]] = {}
        self.exits: dict[str, ContainerExit] = {}
        self.lock = threading.Lock()

    def container_started(self, name: str, *, init: bool) -> None:
        with self.lock:
            self.events.append(("started", name))

    def log(self, container: str, line: str) -> None:
        with self.lock:
            self.logs.setdefault(container, []).append(line)

    def container_ended(self, exit: ContainerExit, *, init: bool) -> None:
        with self.lock:
            self.events.append(("ended", exit.name))
            self.exits[exit.name] = exit


def container(name: str, code: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3.11", "command": [PY, "-u", "-c", code], **fields}


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": f"p-{uuid.uuid4().hex[:6]}", "namespace": "ns", "uid": "u-1", "labels": {"team": "kfx"}},
        "spec": {"restartPolicy": "Never", "containers": list(containers), **spec},
    }
    if init:
        body["spec"]["initContainers"] = list(init)
    return body


def run(body: dict[str, Any], cluster: Cluster | None = None, **options: Any) -> tuple[PodOutcome, Recorder]:
    recorder = Recorder()
    outcome = PodRun(body, cluster or Cluster(), recorder, **options).run()
    return outcome, recorder


# ---------------------------------------------------------------------------
# Order, failure, sidecars
# ---------------------------------------------------------------------------


@needs_mounts
def test_init_containers_run_in_order_before_the_main_containers() -> None:
    shared = {"volumeMounts": [{"name": "work", "mountPath": "/kfx-test-work"}]}
    body = pod(
        container("main", "print(open('/kfx-test-work/order').read())", **shared),
        init=(container("first", "open('/kfx-test-work/order', 'a').write('1')", **shared),
              container("second", "open('/kfx-test-work/order', 'a').write('2')", **shared)),
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    outcome, recorder = run(body)
    assert outcome.phase == "Succeeded"
    assert recorder.events == [("started", "first"), ("ended", "first"), ("started", "second"),
                               ("ended", "second"), ("started", "main"), ("ended", "main")]
    assert recorder.logs["main"] == ["12"]
    assert [e.name for e in outcome.init_containers] == ["first", "second"]
    assert outcome.exit_of("main").reason == "Completed"


def test_a_failed_init_container_stops_the_pod() -> None:
    body = pod(container("main", "print('never')"),
               init=(container("first", "import sys; print('broken'); sys.exit(3)"), container("second", "print(2)")))
    outcome, recorder = run(body)
    assert outcome.phase == "Failed"
    assert outcome.exit_of("first").exit_code == 3 and outcome.exit_of("first").reason == "Error"
    assert outcome.containers == () and outcome.exit_of("second") is None
    assert ("started", "main") not in recorder.events and recorder.logs == {"first": ["broken"]}


def test_main_containers_run_concurrently() -> None:
    flag = f"/tmp/kfx-test-{uuid.uuid4().hex}"
    body = pod(container("waiter", f"import os, time\nwhile not os.path.exists({flag!r}): time.sleep(0.02)\nprint('saw it')"),
               container("maker", f"open({flag!r}, 'w').close()"))
    outcome, recorder = run(body)
    os.remove(flag)
    assert outcome.phase == "Succeeded" and recorder.logs["waiter"] == ["saw it"]


SIDECAR = ("import signal, sys, time\n"
           "signal.signal(signal.SIGTERM, lambda *_: (print('sidecar got SIGTERM'), sys.exit(0)))\n"
           "print('sidecar up')\n"
           "open(sys.argv[1], 'w').close()\n"  # ready: its SIGTERM handler is in place
           "while True: time.sleep(0.02)\n")
# A main container that starts its work once the sidecar is ready (a started sidecar is
# a process, not yet a program that handles SIGTERM: without this the tests would race).
AFTER_SIDECAR = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"


def with_sidecar(main_code: str, sidecar_code: str = SIDECAR, **spec: Any) -> dict[str, Any]:
    flag = f"/tmp/kfx-test-sidecar-{uuid.uuid4().hex}"
    return pod(container("main", AFTER_SIDECAR + main_code, args=[flag]),
               init=(container("side", sidecar_code, restartPolicy="Always", args=[flag]),), **spec)


def test_a_native_sidecar_runs_beside_the_main_container_and_gets_sigterm_after_it() -> None:
    outcome, recorder = run(with_sidecar("time.sleep(0.2); print('main done')"))
    assert outcome.phase == "Succeeded"
    assert recorder.events == [("started", "side"), ("started", "main"), ("ended", "main"), ("ended", "side")]
    assert recorder.logs["side"] == ["sidecar up", "sidecar got SIGTERM"]
    side, main = outcome.exit_of("side"), outcome.exit_of("main")
    assert side.started_at <= main.started_at and side.finished_at >= main.finished_at


def test_a_sidecar_that_ignores_sigterm_is_killed_after_the_grace_period_and_never_fails_the_pod() -> None:
    stubborn = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "open(sys.argv[1], 'w').close()\ntime.sleep(60)")
    body = with_sidecar("print('main')", stubborn, terminationGracePeriodSeconds=1)
    start = time.monotonic()
    outcome, _ = run(body)
    assert 1 <= time.monotonic() - start < 10
    assert outcome.phase == "Succeeded" and outcome.exit_of("side").exit_code == 137  # SIGKILL


# ---------------------------------------------------------------------------
# Env
# ---------------------------------------------------------------------------


def test_env_from_values_secrets_config_maps_and_the_downward_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "worker-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-credential")
    cluster = Cluster(secrets={"db": {"password": b"hunter2"}}, config_maps={"cfg": {"MODE": "fast", "LEVEL": "3"}})
    code = ("import os, sys\n"
            "for k in ('PASSWORD', 'CFG_MODE', 'MODE', 'LEVEL', 'POD', 'NS', 'UID', 'TEAM', 'NONE', 'GREETING', "
            "'ESCAPED', 'EXTRA', 'LANG'):\n    print(k, os.environ.get(k))\n"
            "print('leaked', sorted(k for k in os.environ if k.startswith(('AIRFLOW', 'AWS'))))\n"
            "print('python', os.path.dirname(sys.executable) == os.environ['PATH'].split(os.pathsep)[0])\n"
            "print('home', os.environ['HOME'].startswith(os.path.dirname(os.environ['TMPDIR'])))\n"
            "print('args', sys.argv[1:])\n")
    main = container("main", code, args=["$(POD)", "$$(POD)", "$(UNDEFINED)"],
                     env=[{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                          {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                          {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                          {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                          {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
                          {"name": "NONE", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
                          {"name": "GREETING", "value": "hello $(POD)"},
                          {"name": "ESCAPED", "value": "$$(POD)"},
                          {"name": "LEVEL", "value": "override"}],
                     envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"configMapRef": {"name": "cfg"}},
                              {"secretRef": {"name": "missing", "optional": True}}])
    body = pod(main)
    outcome, recorder = run(body, cluster, extra_env={"main": {"EXTRA": "given"}})
    assert outcome.phase == "Succeeded", recorder.logs
    name = body["metadata"]["name"]
    assert recorder.logs["main"] == [
        "PASSWORD hunter2", "CFG_MODE fast", "MODE fast", "LEVEL override", f"POD {name}", "NS ns", "UID u-1",
        "TEAM kfx", "NONE None", f"GREETING hello {name}", "ESCAPED $(POD)", "EXTRA given", "LANG C.UTF-8",
        "leaked []", "python True", "home True", f"args ['{name}', '$(POD)', '$(UNDEFINED)']",
    ]


def test_a_missing_secret_key_keeps_the_container_from_starting() -> None:
    body = pod(container("main", "print(1)",
                         env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope"}}}]))
    outcome, recorder = run(body, Cluster(secrets={"db": {"password": b"x"}}))
    exit = outcome.exit_of("main")
    assert (outcome.phase, exit.reason, exit.started_at) == ("Pending", "CreateContainerConfigError", None)
    assert exit.message == "couldn't find key nope in Secret ns/db"
    assert recorder.events == [("ended", "main")]


# ---------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------


@needs_mounts
def test_secret_and_config_map_volumes_are_files(tmp_path: Path) -> None:
    cluster = Cluster(secrets={"tls": {"tls.crt": b"CERT", "tls.key": b"KEY"}}, config_maps={"app": {"a.conf": "x=1"}},
                      claims={"data": str(tmp_path)})
    code = ("import os\n"
            "print(sorted(os.listdir('/kfx-test/tls')), open('/kfx-test/tls/tls.crt').read())\n"
            "print(oct(os.stat('/kfx-test/tls/tls.crt').st_mode & 0o777))\n"
            "print(os.listdir('/kfx-test/app'), open('/kfx-test/app/conf/app.conf').read())\n"
            "print(os.listdir('/kfx-test/optional'))\n"
            "try:\n    open('/kfx-test/tls/new', 'w')\nexcept OSError as err:\n    print('read-only', err.errno == 30)\n"
            "open('/kfx-test/data/out', 'w').write('kept')\n")
    mounts = [{"name": n, "mountPath": f"/kfx-test/{n}"} for n in ("tls", "app", "optional", "data")]
    body = pod(container("main", code, volumeMounts=mounts), volumes=[
        {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400}},
        {"name": "app", "configMap": {"name": "app", "items": [{"key": "a.conf", "path": "conf/app.conf"}]}},
        {"name": "optional", "secret": {"secretName": "absent", "optional": True}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ])
    outcome, recorder = run(body, cluster)
    assert outcome.phase == "Succeeded", recorder.logs
    assert recorder.logs["main"] == ["['tls.crt', 'tls.key'] CERT", "0o400", "['conf'] x=1", "[]", "read-only True"]
    assert (tmp_path / "out").read_text() == "kept"
    assert not Path("/kfx-test/data/out").exists()  # the host's own path is untouched


@needs_mounts
def test_two_pods_mounting_the_same_path_each_see_their_own_volume() -> None:
    target = f"/kfx-test-shared-{uuid.uuid4().hex[:6]}"
    code = (f"import os, sys, time\nopen('{target}/mine', 'w').write(sys.argv[1])\ntime.sleep(0.5)\n"
            f"print(open('{target}/mine').read(), os.listdir('{target}'))")
    results: dict[str, Any] = {}

    def one(label: str, delay: float) -> None:
        time.sleep(delay)
        body = pod(container("main", code, args=[label], volumeMounts=[{"name": "v", "mountPath": target}]),
                   volumes=[{"name": "v", "emptyDir": {}}])
        results[label] = run(body)

    threads = [threading.Thread(target=one, args=(label, delay)) for label, delay in (("a", 0), ("b", 0.2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # "a" ended while "b" still used the mount point: it stayed, and "b" still read its own file
    for label in ("a", "b"):
        outcome, recorder = results[label]
        assert outcome.phase == "Succeeded" and recorder.logs["main"] == [f"{label} ['mine']"]
    assert not os.path.exists(target)  # created for the pods, removed by the last one


# ---------------------------------------------------------------------------
# What cannot be had; termination messages; terminate()
# ---------------------------------------------------------------------------


def test_a_missing_executable_does_not_start() -> None:
    body = pod({"name": "main", "image": "ghcr.io/acme/tool:2", "command": ["kfx-no-such-tool", "--x"]})
    outcome, recorder = run(body)
    exit = outcome.exit_of("main")
    assert (outcome.phase, exit.reason, exit.started_at) == ("Pending", "ErrImagePull", None)
    assert "'kfx-no-such-tool' (from image 'ghcr.io/acme/tool:2') is not on this machine" in exit.message
    assert recorder.events == [("ended", "main")]


def test_needs_names_everything_that_cannot_be_provided() -> None:
    body = pod(
        container("main", "print(1)",
                  env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                       {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "missing-key"}}}],
                  volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "tls", "mountPath": "/tls"}]),
        {"name": "entrypoint", "image": "nginx:1"},
        {"name": "tool", "image": "acme:1", "command": ["kfx-no-such-tool"]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "claim-x"}},
                 {"name": "tls", "secret": {"secretName": "tls-certs"}}],
    )
    needs = pod_needs(body, Cluster(config_maps={"cfg": {"other": "1"}}))
    assert "the PersistentVolumeClaim 'claim-x' (volume at /data)" in needs
    assert "the Kubernetes secret 'tls-certs' (volume at /tls)" in needs
    assert "the Kubernetes secret 'db' (key 'password' as env var PW of container 'main')" in needs
    assert "the key 'missing-key' of the Kubernetes config map 'cfg' (as env var K of container 'main')" in needs
    assert any(n.startswith("the entrypoint of image 'nginx:1'") for n in needs)
    assert "'kfx-no-such-tool' (from image 'acme:1'), which is not on this machine" in needs
    assert pod_needs(pod(container("main", "print(1)")), Cluster()) == []


@needs_mounts
def test_termination_messages_from_a_file_or_the_end_of_the_log() -> None:
    noisy = "import sys\nfor i in range(100): print('line', i)\nsys.exit(2)"
    to_file = ("open('/kfx-test-msg/why', 'w').write('disk full')\nraise SystemExit(1)")
    body = pod(container("fallback", noisy, terminationMessagePolicy="FallbackToLogsOnError"),
               container("file", to_file, terminationMessagePath="/kfx-test-msg/why",
                         volumeMounts=[{"name": "m", "mountPath": "/kfx-test-msg"}]),
               container("quiet", noisy),  # policy File, no file: no message
               volumes=[{"name": "m", "emptyDir": {}}])
    outcome, _ = run(body)
    fallback = outcome.exit_of("fallback").message.splitlines()
    assert len(fallback) == 80 and fallback[-1] == "line 99" and fallback[0] == "line 20"
    assert outcome.exit_of("file").message == "disk full"
    assert outcome.exit_of("quiet").message == ""
    assert outcome.phase == "Failed"


def test_terminate_stops_a_running_pod_from_another_thread() -> None:
    code = ("import signal\n"
            "signal.signal(signal.SIGTERM, lambda *_: (print('got SIGTERM'), sys.exit(143)))\n"
            "print('running')\ntime.sleep(60)")
    body = with_sidecar(code)
    recorder = Recorder()
    pod_run = PodRun(body, Cluster(), recorder)
    threading.Timer(0.8, pod_run.terminate, args=(5,)).start()
    start = time.monotonic()
    outcome = pod_run.run()
    assert time.monotonic() - start < 5
    assert (outcome.phase, outcome.reason) == ("Failed", "Terminated")
    assert recorder.logs["main"] == ["running", "got SIGTERM"]
    assert recorder.logs["side"] == ["sidecar up", "sidecar got SIGTERM"]  # after the main container
    assert recorder.events[-2:] == [("ended", "main"), ("ended", "side")]


def test_active_deadline_fails_the_pod() -> None:
    outcome, _ = run(pod(container("main", "import time; time.sleep(30)"), activeDeadlineSeconds=1,
                         terminationGracePeriodSeconds=1))
    assert (outcome.phase, outcome.reason) == ("Failed", "DeadlineExceeded")
    assert outcome.exit_of("main").exit_code == 143


# ---------------------------------------------------------------------------
# The local runtime on top
# ---------------------------------------------------------------------------


def test_the_local_runtime_runs_the_whole_pod_and_prefixes_other_containers() -> None:
    from airflow_kfx.runtime.local import run_pod_locally

    lines: list[str] = []
    body = with_sidecar("print('main', os.environ.get('TOKEN'), os.environ.get('OTHER'))")
    body["spec"]["containers"][0]["name"] = "base"
    body["spec"]["initContainers"].insert(0, container("setup", "print('prepared')"))
    run_pod_locally(body, container_name="base", log=lines.append, extra_env={"TOKEN": "t"},
                    container_env={"side": {"OTHER": "not for base"}})
    assert "[setup] prepared" in lines and "[side] sidecar up" in lines and "[side] sidecar got SIGTERM" in lines
    assert "main t None" in lines


def test_the_local_runtime_reports_failures_and_needs() -> None:
    from airflow_kfx.exceptions import TaskRuntimeError
    from airflow_kfx.runtime.local import run_pod_locally

    failing = pod(container("base", "import sys\nfor i in range(30): print('out', i)\nsys.exit(4)"))
    with pytest.raises(TaskRuntimeError) as caught:
        run_pod_locally(failing, log=lambda line: None)
    message = str(caught.value)
    assert message.startswith("the task's command exited with code 4; last output:\nout 10\n")
    assert message.endswith("out 29")

    init_fails = pod(container("base", "print(1)"), init=(container("setup", "raise SystemExit(7)"),))
    with pytest.raises(TaskRuntimeError, match="the init container 'setup' exited with code 7"):
        run_pod_locally(init_fails, log=lambda line: None)

    secret = pod(container("base", "print(1)", env=[
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}}]))
    with pytest.raises(TaskRuntimeError, match="the local runtime cannot provide .* 'db-credentials'"):
        run_pod_locally(secret, log=lambda line: None)
