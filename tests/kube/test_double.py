"""The Kubernetes API double, as the cncf.kubernetes provider relies on it: through the
real clients (``kubernetes``, ``kubernetes_asyncio``) and the provider's own machinery
(``PodManager``, ``AsyncKubernetesHook``, ``KubernetesPodOperator``, its trigger)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from airflow_kfx.runtime.podrun import can_mount
from tests.kube.fixtures import KubeDouble, kube_double

PY = os.path.basename(sys.executable)  # "python": resolved on the container's PATH (this interpreter first)
needs_mounts = pytest.mark.skipif(not can_mount(), reason="pod volumes need root and unshare")


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


@pytest.fixture(scope="module")
def api(kube: KubeDouble) -> Any:
    return kube.api()


def name(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def python_pod(pod_name: str, code: str, **spec: Any) -> dict[str, Any]:
    """A pod whose one container ``base`` runs ``code`` with this machine's Python."""
    container = {"name": "base", "image": "python:3.11-slim", "command": [PY, "-u", "-c", code]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "labels": spec.pop("labels", {"app": "kfx-test"})},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def wait_for(check: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def phase(api: Any, pod_name: str, namespace: str = "default") -> str:
    return api.read_namespaced_pod(pod_name, namespace).status.phase


def finished(api: Any, pod_name: str, namespace: str = "default") -> Any:
    return wait_for(lambda: phase(api, pod_name, namespace) in ("Succeeded", "Failed") and
                    api.read_namespaced_pod(pod_name, namespace), what=f"pod {pod_name} to finish")


def log_text(api: Any, pod_name: str, namespace: str = "default", **options: Any) -> str:
    """A pod's log as text. (With ``_preload_content`` the client turns text/plain into
    ``str(bytes)`` — or a number when the log happens to be JSON — whatever the server.)"""
    return api.read_namespaced_pod_log(pod_name, namespace, _preload_content=False, **options).data.decode()


def pod_gone(api: Any, pod_name: str, namespace: str = "default") -> bool:
    """True once reading the pod is a 404 (a pod being deleted is still readable)."""
    from kubernetes.client.exceptions import ApiException

    try:
        api.read_namespaced_pod(pod_name, namespace)
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


def api_error(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


# ---------------------------------------------------------------------------
# The sync client: CRUD, selectors, errors
# ---------------------------------------------------------------------------


def test_discovery_and_version(kube: KubeDouble, api: Any) -> None:
    from kubernetes import client

    version = client.VersionApi(api.api_client).get_code()
    assert (version.major, version.minor) == ("1", "33")
    resources = {r.name for r in api.get_api_resources().resources}
    assert {"pods", "pods/log", "events", "secrets", "configmaps", "persistentvolumeclaims"} <= resources
    assert api.read_namespace("anything-goes").status.phase == "Active"


def test_pod_lifecycle_create_get_list_patch_delete(api: Any) -> None:
    pod_name = name()
    created = api.create_namespaced_pod("default", python_pod(pod_name, "print('hi')", labels={"app": "a", "tier": "x"}))
    meta = created.metadata
    assert (meta.namespace, created.status.phase) == ("default", "Pending")
    assert meta.uid and meta.creation_timestamp and int(meta.resource_version) > 0
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"  # API defaults
    pod = finished(api, pod_name)
    assert pod.status.phase == "Succeeded" and pod.spec.node_name == "kfx-double"
    assert pod.status.pod_ip == "127.0.0.1" and pod.status.start_time is not None
    status = pod.status.container_statuses[0]
    assert (status.state.terminated.exit_code, status.state.terminated.reason, status.ready) == (0, "Completed", False)
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"

    def names(**selectors: str) -> set[str]:
        return {p.metadata.name for p in api.list_namespaced_pod("default", **selectors).items} & {pod_name}

    for selector in ("app=a", "app==a", "app!=b", "app in (a,b)", "tier notin (y)", "tier", "!other", "app=a,tier=x"):
        assert names(label_selector=selector) == {pod_name}, selector
    for selector in ("app=b", "app notin (a)", "!tier", "other"):
        assert names(label_selector=selector) == set(), selector
    assert names(field_selector=f"metadata.name={pod_name}") == {pod_name}
    assert names(field_selector="status.phase=Succeeded,spec.nodeName=kfx-double") == {pod_name}
    assert names(field_selector="status.phase!=Succeeded") == set()
    everywhere = api.list_pod_for_all_namespaces(label_selector="app=a")
    assert pod_name in {p.metadata.name for p in everywhere.items}
    assert api_error(lambda: api.list_namespaced_pod("default", field_selector="spec.image=x"))[0] == 400

    # strategic merge (a dict), JSON merge, JSON patch (a list)
    api.patch_namespaced_pod(pod_name, "default", {"metadata": {"labels": {"already_checked": "True"}}})
    api.patch_namespaced_pod(pod_name, "default", {"metadata": {"annotations": {"k": "v"}}},
                             _content_type="application/merge-patch+json")
    patched = api.patch_namespaced_pod(pod_name, "default", [{"op": "add", "path": "/metadata/labels/extra", "value": "1"}])
    assert patched.metadata.labels == {"app": "a", "tier": "x", "already_checked": "True", "extra": "1"}
    assert patched.metadata.annotations == {"k": "v"}
    assert names(label_selector="app=a,already_checked!=True") == set()
    code, body = api_error(lambda: api.patch_namespaced_pod(pod_name, "default", {"spec": {"restartPolicy": "Always"}}))
    assert (code, body["reason"]) == (422, "Invalid") and "pod updates may not change fields" in body["message"]

    api.delete_namespaced_pod(pod_name, "default")
    code, body = api_error(lambda: api.read_namespaced_pod(pod_name, "default"))
    assert (code, body["kind"], body["reason"], body["message"]) == (404, "Status", "NotFound", f'pods "{pod_name}" not found')
    assert body["details"] == {"name": pod_name, "kind": "pods"}


def test_invalid_objects_are_refused_as_the_api_server_does(api: Any) -> None:
    bad = python_pod(name(), "print(1)")
    bad["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    bad["spec"]["containers"][0]["frobnicate"] = True  # not in the 1.33 schema
    bad["spec"]["containers"][0]["args"] = "not a list"
    code, body = api_error(lambda: api.create_namespaced_pod("default", bad))
    assert (code, body["kind"], body["status"], body["reason"], body["code"]) == (422, "Status", "Failure", "Invalid", 422)
    assert body["message"].startswith(f'Pod "{bad["metadata"]["name"]}" is invalid: [')
    fields = {c["field"]: c for c in body["details"]["causes"]}
    assert 'unknown field "spec.containers[0].frobnicate"' in body["message"]
    assert fields["spec.containers[0].args"]["reason"] == "FieldValueInvalid"
    assert fields["spec.containers[0].imagePullPolicy"]["reason"] == "FieldValueNotSupported"

    no_image = python_pod(name(), "print(1)")
    del no_image["spec"]["containers"][0]["image"]
    code, body = api_error(lambda: api.create_namespaced_pod("default", no_image))
    assert code == 422 and body["message"].endswith("spec.containers[0].image: Required value")

    code, body = api_error(lambda: api.create_namespaced_pod("default", python_pod("Not_A_Name", "print(1)")))
    assert code == 422 and 'metadata.name: Invalid value: "Not_A_Name": a lowercase RFC 1123 subdomain' in body["message"]

    code, body = api_error(lambda: api.create_namespaced_pod("default", python_pod(name(), "1", labels={"a": "bad value!"})))
    assert code == 422 and "metadata.labels: Invalid value" in body["message"]

    pod = python_pod(name(), "print(1)", container={"name": "Base", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]})
    pod["spec"]["containers"].append({"name": "Base", "image": "x", "command": ["true"]})
    code, body = api_error(lambda: api.create_namespaced_pod("default", pod))
    causes = {(c["field"], c["reason"]) for c in body["details"]["causes"]}
    assert ("spec.containers[0].name", "FieldValueInvalid") in causes  # a DNS label
    assert ("spec.containers[1].name", "FieldValueDuplicate") in causes
    assert ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound") in causes

    twice = python_pod(name(), "print(1)")
    api.create_namespaced_pod("default", twice)
    code, body = api_error(lambda: api.create_namespaced_pod("default", twice))
    assert (code, body["reason"], body["message"]) == (409, "AlreadyExists", f'pods "{twice["metadata"]["name"]}" already exists')

    generated = api.create_namespaced_pod("default", {**python_pod("", "print(1)"), "metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9


# ---------------------------------------------------------------------------
# Logs and events
# ---------------------------------------------------------------------------

SLOW_LINES = "import time\nfor i in range(4):\n    print('line', i)\n    time.sleep(0.4)\n"


def test_logs_follow_streams_while_the_container_runs(kube: KubeDouble, api: Any) -> None:
    pod_name = name()
    api.create_namespaced_pod("default", python_pod(pod_name, SLOW_LINES))
    wait_for(lambda: phase(api, pod_name) == "Running", what="Running")
    response = api.read_namespaced_pod_log(pod_name, "default", follow=True, timestamps=True, _preload_content=False)
    arrivals = []
    for chunk in response.stream(amt=None):
        arrivals.append((time.monotonic(), chunk.decode()))
    lines = "".join(text for _, text in arrivals).splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["line 0", "line 1", "line 2", "line 3"]
    assert len(arrivals) >= 3 and arrivals[-1][0] - arrivals[0][0] > 0.6  # streamed, not at the end
    stamp = lines[0].split(" ", 1)[0]
    assert stamp.endswith("Z") and datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None
    assert phase(api, pod_name) == "Succeeded"

    assert log_text(api, pod_name) == "line 0\nline 1\nline 2\nline 3\n"
    assert log_text(api, pod_name, tail_lines=2) == "line 2\nline 3\n"
    assert log_text(api, pod_name, limit_bytes=8) == "line 0\nl"
    time.sleep(1.2)
    assert log_text(api, pod_name, since_seconds=1) == ""
    assert log_text(api, pod_name, since_seconds=30).count("line") == 4
    # sinceTime (which the generated sync client does not offer)
    for since, expected in (("2020-01-01T00:00:00Z", 4), (datetime.now(timezone.utc).isoformat(), 0)):
        query = urllib.parse.urlencode({"sinceTime": since})
        request = urllib.request.Request(f"{kube.url}/api/v1/namespaces/default/pods/{pod_name}/log?{query}",
                                         headers={"Authorization": f"Bearer {kube.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read().decode().count("line") == expected


def test_log_errors_as_the_api_server_writes_them(api: Any) -> None:
    pod_name = name()
    pod = python_pod(pod_name, "print('main')")
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "command": [PY, "-c", "import time; time.sleep(1.5)"]}]
    pod["spec"]["containers"].append({"name": "second", "image": "busybox", "command": [PY, "-c", "print(2)"]})
    api.create_namespaced_pod("default", pod)
    code, body = api_error(lambda: log_text(api, pod_name))
    assert (code, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (f"a container name must be specified for pod {pod_name}, choose one of: [base second] "
                               "or one of the init containers: [init]")
    wait_for(lambda: api.read_namespaced_pod(pod_name, "default").status.init_container_statuses[0].state.running,
             what="init running")
    code, body = api_error(lambda: log_text(api, pod_name, container="base"))
    assert code == 400 and body["message"] == f'container "base" in pod "{pod_name}" is waiting to start: PodInitializing'
    assert api_error(lambda: log_text(api, pod_name, container="nope"))[0] == 400
    assert finished(api, pod_name).status.phase == "Succeeded"
    assert log_text(api, pod_name, container="second") == "2\n"


def test_events_list_and_watch(api: Any) -> None:
    from kubernetes import watch

    pod_name = name()
    api.create_namespaced_pod("default", python_pod(pod_name, "print('x')"))
    finished(api, pod_name)
    listed = api.list_namespaced_event("default", field_selector=f"involvedObject.name={pod_name}")
    reasons = [e.reason for e in listed.items]
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]
    pulled = listed.items[1]
    assert "not pulled" in pulled.message and pulled.involved_object.field_path == "spec.containers{base}"
    assert pulled.source.component == "kubelet" and pulled.type == "Normal"

    seen = [e["object"].reason for e in watch.Watch().stream(
        api.list_namespaced_event, "default", field_selector=f"involvedObject.name={pod_name}", timeout_seconds=1)]
    assert seen == reasons  # a watch from now starts with the current objects (ADDED)
    start = time.monotonic()
    later = list(watch.Watch().stream(api.list_namespaced_event, "default", timeout_seconds=1,
                                      field_selector=f"involvedObject.name={pod_name}",
                                      resource_version=listed.items[-1].metadata.resource_version))
    assert later == [] and 0.9 < time.monotonic() - start < 5  # timeoutSeconds honoured, nothing newer


def test_pod_watch_reports_changes(api: Any) -> None:
    from kubernetes import watch

    pod_name = name()
    version = api.list_namespaced_pod("default").metadata.resource_version
    api.create_namespaced_pod("default", python_pod(pod_name, "print(1)"))
    finished(api, pod_name)
    api.delete_namespaced_pod(pod_name, "default")
    events = [(e["type"], e["object"].status.phase) for e in watch.Watch().stream(
        api.list_namespaced_pod, "default", field_selector=f"metadata.name={pod_name}", resource_version=version,
        timeout_seconds=1)]
    assert events[0] == ("ADDED", "Pending") and events[-1][0] == "DELETED"
    assert ("MODIFIED", "Running") in events and ("MODIFIED", "Succeeded") in events


# ---------------------------------------------------------------------------
# What reaches the pod; what cannot be had
# ---------------------------------------------------------------------------


@needs_mounts
def test_secrets_and_config_maps_reach_the_pod_as_env_and_volumes(api: Any) -> None:
    secret, config = name("s"), name("c")
    api.create_namespaced_secret("default", {"metadata": {"name": secret}, "stringData": {"password": "hunter2"},
                                             "data": {"user": base64.b64encode(b"bob").decode()}})
    stored = api.read_namespaced_secret(secret, "default")
    assert stored.type == "Opaque" and base64.b64decode(stored.data["password"]) == b"hunter2"
    api.create_namespaced_config_map("default", {"metadata": {"name": config}, "data": {"MODE": "fast", "n": "1"}})
    code = ("import os\n"
            "print(os.environ['PASSWORD'], os.environ['CFG_MODE'], os.environ['POD'], os.environ['NODE'])\n"
            "print(sorted(os.listdir('/kfx-test-secret')), open('/kfx-test-secret/user').read())\n"
            "print('AIRFLOW_HOME' in os.environ, os.environ['HOME'] != os.environ.get('KFX_WORKER_HOME'))")
    pod_name = name()
    pod = python_pod(pod_name, code, container={
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "envFrom": [{"configMapRef": {"name": config}, "prefix": "CFG_"}],
        "volumeMounts": [{"name": "creds", "mountPath": "/kfx-test-secret"}],
    }, volumes=[{"name": "creds", "secret": {"secretName": secret}}])
    api.create_namespaced_pod("default", pod)
    assert finished(api, pod_name).status.phase == "Succeeded"
    assert log_text(api, pod_name).splitlines() == [
        f"hunter2 fast {pod_name} kfx-double", "['password', 'user'] bob", "False True",
    ]


def test_a_missing_secret_is_create_container_config_error(api: Any) -> None:
    pod_name = name()
    api.create_namespaced_pod("default", python_pod(pod_name, "print(1)", container={
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "no-such-secret", "key": "k"}}}]}))

    def waiting() -> Any:
        status = api.read_namespaced_pod(pod_name, "default").status
        return status.container_statuses and status.container_statuses[0].state.waiting

    state = wait_for(lambda: (w := waiting()) and w.reason == "CreateContainerConfigError" and w, what="config error")
    assert state.message == 'secret "no-such-secret" not found'
    time.sleep(0.3)
    assert phase(api, pod_name) == "Pending"  # as on a cluster: it waits
    events = api.list_namespaced_event("default", field_selector=f"involvedObject.name={pod_name}").items
    assert any(e.reason == "Failed" and e.type == "Warning" and "no-such-secret" in e.message for e in events)
    api.delete_namespaced_pod(pod_name, "default")

    # as a volume: the kubelet cannot mount it, the containers wait in ContainerCreating
    mounted = name()
    api.create_namespaced_pod("default", python_pod(
        mounted, "print(1)", container={"volumeMounts": [{"name": "s", "mountPath": "/kfx-test-s"}]},
        volumes=[{"name": "s", "secret": {"secretName": "no-such-secret"}}]))

    def failed_mount() -> Any:
        events = api.list_namespaced_event("default", field_selector=f"involvedObject.name={mounted},reason=FailedMount")
        return events.items

    event = wait_for(failed_mount, what="FailedMount")[0]
    assert event.message == 'MountVolume.SetUp failed for volume "s" : secret "no-such-secret" not found'
    remote = api.read_namespaced_pod(mounted, "default")
    assert remote.status.phase == "Pending"
    assert remote.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    api.delete_namespaced_pod(mounted, "default")


def test_a_missing_executable_is_err_image_pull_and_the_provider_fails_fast(api: Any) -> None:
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import PodLaunchFailedException
    from airflow.providers.cncf.kubernetes.utils.pod_manager import (
        PodManager,
        detect_pod_terminate_early_issues,
    )

    pod_name = name()
    pod = python_pod(pod_name, "", container={"image": "ghcr.io/acme/tool:1", "command": ["kfx-no-such-tool"]})
    api.create_namespaced_pod("default", pod)
    remote = wait_for(lambda: (p := api.read_namespaced_pod(pod_name, "default")).status.container_statuses and
                      p.status.container_statuses[0].state.waiting and
                      p.status.container_statuses[0].state.waiting.reason == "ErrImagePull" and p, what="ErrImagePull")
    message = remote.status.container_statuses[0].state.waiting.message
    assert "kfx-no-such-tool" in message and "this machine" in message and "ghcr.io/acme/tool:1" in message
    assert remote.status.phase == "Pending"
    assert detect_pod_terminate_early_issues(remote).startswith("Image cannot be pulled, unable to start: ErrImagePull")
    with pytest.raises(PodLaunchFailedException, match="ErrImagePull"):
        asyncio.run(PodManager(api).await_pod_start(remote, startup_timeout=10, check_interval=0.2))
    api.delete_namespaced_pod(pod_name, "default")


@needs_mounts
def test_claims_are_folders_shared_by_pods(kube: KubeDouble, api: Any) -> None:
    claim = name("data")
    api.create_namespaced_persistent_volume_claim("default", {
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert api.read_namespaced_persistent_volume_claim(claim, "default").status.phase == "Bound"
    folder = kube.volume_root / "default" / claim
    assert folder.is_dir()
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    mounts = {"volumeMounts": [{"name": "data", "mountPath": "/kfx-claim"}]}
    writer, reader = name("w"), name("r")
    api.create_namespaced_pod("default", python_pod(writer, "open('/kfx-claim/x', 'w').write('shared')",
                                                    container=mounts, volumes=volumes))
    finished(api, writer)
    api.create_namespaced_pod("default", python_pod(reader, "print(open('/kfx-claim/x').read())",
                                                    container=mounts, volumes=volumes))
    assert finished(api, reader).status.phase == "Succeeded"
    assert log_text(api, reader) == "shared\n"
    assert (folder / "x").read_text() == "shared" and not Path("/kfx-claim/x").exists()
    api.delete_namespaced_persistent_volume_claim(claim, "default")
    assert not folder.exists()
    code, body = api_error(lambda: api.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": name()}}))
    assert code == 422 and "spec.accessModes: Required value" in body["message"]


# ---------------------------------------------------------------------------
# Sidecars, deletion
# ---------------------------------------------------------------------------


def test_a_native_sidecar_starts_first_and_gets_sigterm_after_the_main_container(api: Any) -> None:
    pod_name = name()
    flag = f"/tmp/kfx-test-sidecar-{uuid.uuid4().hex}"  # the sidecar is ready: its SIGTERM handler is set
    sidecar = ("import signal, sys, time\n"
               "def stop(*_):\n    print('sidecar got SIGTERM'); sys.exit(0)\n"
               "signal.signal(signal.SIGTERM, stop)\nprint('sidecar up')\nopen(sys.argv[1], 'w').close()\n"
               "while True: time.sleep(0.05)\n")
    main = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)\nprint('main done')"
    pod = python_pod(pod_name, main, container={"args": [flag]}, terminationGracePeriodSeconds=5)
    pod["spec"]["initContainers"] = [{"name": "side", "image": "busybox", "restartPolicy": "Always",
                                      "command": [PY, "-u", "-c", sidecar], "args": [flag]}]
    api.create_namespaced_pod("default", pod)
    remote = finished(api, pod_name)
    assert remote.status.phase == "Succeeded"
    side = remote.status.init_container_statuses[0]
    main = remote.status.container_statuses[0]
    assert side.state.terminated.started_at <= main.state.terminated.started_at
    assert side.state.terminated.finished_at >= main.state.terminated.finished_at
    assert log_text(api, pod_name, container="side") == "sidecar up\nsidecar got SIGTERM\n"
    events = api.list_namespaced_event("default", field_selector=f"involvedObject.name={pod_name}").items
    assert any(e.reason == "Killing" and e.message == "Stopping container side" for e in events)


def test_deleting_a_running_pod_kills_its_process(api: Any) -> None:
    pod_name = name()
    api.create_namespaced_pod("default", python_pod(pod_name, "import os, time\nprint(os.getpid())\ntime.sleep(60)"))
    pid = int(wait_for(lambda: phase(api, pod_name) == "Running" and
                       log_text(api, pod_name).strip(), what="the pid"))
    os.kill(pid, 0)  # alive
    deleted = api.delete_namespaced_pod(pod_name, "default", grace_period_seconds=2)
    assert deleted.metadata.deletion_timestamp is not None and deleted.metadata.deletion_grace_period_seconds == 2
    wait_for(lambda: pod_gone(api, pod_name), what="the pod gone")  # after its grace period
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---------------------------------------------------------------------------
# The provider's machinery
# ---------------------------------------------------------------------------


def test_pod_manager_runs_a_pod_as_the_operator_does(api: Any) -> None:
    from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager
    from kubernetes.client import ApiClient
    from kubernetes.client import models as k8s

    pod_name = name()
    body = python_pod(pod_name, SLOW_LINES)
    pod = ApiClient()._ApiClient__deserialize(body, "V1Pod")
    pod.metadata.namespace = "default"
    assert isinstance(pod, k8s.V1Pod)
    manager = PodManager(api)
    manager.create_pod(pod)
    asyncio.run(manager.await_pod_start(pod, startup_timeout=10, check_interval=0.2))
    with capture_logs() as logged:
        status = manager.fetch_container_logs(pod, "base", follow=True)
    assert status.running is False
    # (the provider keeps the stream's final newline on the last line, whatever the server)
    assert [str(e["event"]).strip() for e in logged if "line" in str(e["event"])] == [f"[base] line {i}" for i in range(4)]
    remote = manager.await_pod_completion(pod)
    assert remote.status.phase == "Succeeded"
    manager.delete_pod(pod)


def test_async_clients_and_hook(kube: KubeDouble) -> None:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
    from kubernetes_asyncio import client as async_client
    from kubernetes_asyncio import config as async_config
    from kubernetes_asyncio import watch as async_watch

    pod_name = name()

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        configuration = async_client.Configuration()
        await async_config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=configuration)
        async with async_client.ApiClient(configuration) as connection:
            core = async_client.CoreV1Api(connection)
            await core.create_namespaced_pod("default", python_pod(pod_name, "print('async hello')"))
            while (await core.read_namespaced_pod(pod_name, "default")).status.phase not in ("Succeeded", "Failed"):
                await asyncio.sleep(0.05)
            raw = await core.read_namespaced_pod_log(pod_name, "default", timestamps=True, _preload_content=False)
            seen["raw log"] = (await raw.read()).decode()
            events = await core.list_namespaced_event("default", field_selector=f"involvedObject.name={pod_name}")
            seen["events"] = [e.reason for e in events.items]
            watched = []
            async for event in async_watch.Watch().stream(core.list_namespaced_event, "default", timeout_seconds=1,
                                                          field_selector=f"involvedObject.name={pod_name}"):
                watched.append(event["object"].reason)
            seen["watched"] = watched
        for hook in (AsyncKubernetesHook(config_dict=kube.config_dict()),
                     AsyncKubernetesHook(conn_id=None, connection_extras={"kube_config_path": str(kube.kubeconfig)})):
            remote = await hook.get_pod(pod_name, "default")
            seen.setdefault("hook phases", []).append(remote.status.phase)
            seen.setdefault("hook logs", []).append(await hook.read_logs(pod_name, "default", "base"))
            seen.setdefault("hook events", []).append(
                [e.reason async for e in hook.watch_pod_events(pod_name, "default", timeout_seconds=1)])
        hook = AsyncKubernetesHook(config_dict=kube.config_dict())
        # while a pod runs, the hook's event watch streams its events, then ends with the pod
        running = name()
        await hook.get_conn_extras()
        async with hook.get_conn() as connection:
            await async_client.CoreV1Api(connection).create_namespaced_pod(
                "default", python_pod(running, "import time; time.sleep(1.5)"))
        seen["running events"] = [e.reason async for e in hook.watch_pod_events(running, "default", timeout_seconds=1)]
        await hook.delete_pod(pod_name, "default")
        await hook.delete_pod(pod_name, "default")  # a 404 is fine for the hook
        return seen

    seen = asyncio.run(scenario())
    assert seen["raw log"].endswith("Z async hello\n") or " async hello\n" in seen["raw log"]
    assert seen["events"] == seen["watched"] == ["Scheduled", "Pulled", "Created", "Started"]
    assert seen["hook phases"] == ["Succeeded", "Succeeded"]
    assert all(len(lines) == 1 and lines[0].endswith(" async hello") for lines in seen["hook logs"])
    assert seen["hook events"] == [[], []]  # the hook stops watching once the pod is terminal
    assert seen["running events"][:4] == ["Scheduled", "Pulled", "Created", "Started"]


def _context(task_id: str) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="kfx_double", task_id=task_id, map_index=-1, try_number=1, xcom=[],
                         start_date=datetime.now(timezone.utc))
    ti.xcom_push = lambda key, value: ti.xcom.append((key, value))
    return {"ti": ti, "task_instance": ti, "run_id": f"manual__{uuid.uuid4().hex[:6]}", "dag": SimpleNamespace()}


def test_kubernetes_pod_operator_runs_against_the_double(kube: KubeDouble, api: Any) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    kube.audit(clear=True)
    operator = KubernetesPodOperator(
        task_id="kpo", name="kpo", namespace="default", image="python:3.11-slim", cmds=[PY, "-u", "-c"],
        arguments=["print('hello from the operator')"], config_file=str(kube.kubeconfig), kubernetes_conn_id=None,
        in_cluster=False, get_logs=True, on_finish_action="delete_pod", startup_check_interval_seconds=1,
    )
    with capture_logs() as logged:
        operator.execute(_context("kpo"))
    assert "[base] hello from the operator" in [str(e["event"]).strip() for e in logged], [e["event"] for e in logged]
    assert api.list_namespaced_pod("default", label_selector="task_id=kpo").items == []  # deleted
    rules = kube.rules()
    assert {"create pods", "get pods", "list pods", "get pods/log", "delete pods"} <= rules
    assert rules <= {"create pods", "get pods", "list pods", "get pods/log", "delete pods", "patch pods",
                     "list events", "watch events"}

    failing = KubernetesPodOperator(
        task_id="kpo-fails", name="kpo-fails", namespace="default", image="python:3.11-slim",
        cmds=[PY, "-c", "import sys; print('about to fail'); sys.exit(3)"], config_file=str(kube.kubeconfig),
        kubernetes_conn_id=None, in_cluster=False, on_finish_action="keep_pod", startup_check_interval_seconds=1,
    )
    with pytest.raises(Exception, match="returned a failure"):
        failing.execute(_context("kpo-fails"))
    kept = api.list_namespaced_pod("default", label_selector="task_id=kpo-fails").items
    assert len(kept) == 1 and kept[0].metadata.labels["already_checked"] == "True"
    assert kept[0].status.container_statuses[0].state.terminated.exit_code == 3
    assert "patch pods" in kube.rules()


def test_the_deferrable_trigger_sees_the_pod_end(kube: KubeDouble, api: Any) -> None:
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

    pod_name = name()
    api.create_namespaced_pod("default", python_pod(pod_name, "import time; time.sleep(0.5); print('done')"))
    trigger = KubernetesPodTrigger(
        pod_name=pod_name, pod_namespace="default", trigger_start_time=datetime.now(timezone.utc),
        base_container_name="base", kubernetes_conn_id=None, config_dict=kube.config_dict(), poll_interval=0.2,
        startup_check_interval=0.2, get_logs=True,
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
    assert event.payload["status"] == "success", event.payload


def test_the_audit_lists_what_was_called(kube: KubeDouble, api: Any) -> None:
    kube.audit(clear=True)
    api.list_namespaced_pod("default")
    api.list_namespaced_event("default")
    entries = kube.audit()
    assert [(e["verb"], e["resource"], e["namespace"], e["code"]) for e in entries] == [
        ("list", "pods", "default", 200), ("list", "events", "default", 200)]
    assert kube.rules() == {"list pods", "list events"}
