"""The double's scheduler and kubelet: each created pod is bound to the one node and run
with :class:`airflow_kfx.runtime.podrun.PodRun`, its status, events and logs
reported through the API as a kubelet reports them."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_kfx.runtime.podrun import (
    CANNOT_RUN,
    CONFIG_ERROR,
    IMAGE_NOT_HERE,
    NEVER_STARTED,
    ContainerExit,
    PodOutcome,
    PodRun,
)
from tests.kube.store import Obj, Store, now

NODE = "kfx-double"
POD_IP = "127.0.0.1"
_event_numbers = itertools.count()


def rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    def __init__(self, store: Store, volume_root: str, scratch_root: str | None = None) -> None:
        self.store = store
        self.volume_root = volume_root
        self.scratch_root = scratch_root
        self.logs: dict[str, dict[str, list[tuple[datetime, str]]]] = {}  # pod uid → container → lines
        self.logs_changed = store.changed  # woken by every change too: a container ending ends a follow
        self.runs: dict[str, PodRun] = {}  # pod uid → its run, while it runs
        self.threads: dict[str, threading.Thread] = {}

    # -- claims -------------------------------------------------------------------
    def claim_folder(self, namespace: str, name: str) -> str:
        return os.path.join(self.volume_root, namespace, name)

    def claim_in_use(self, namespace: str, name: str) -> bool:
        with self.store.lock:
            for (resource, ns, _), pod in self.store.objects.items():
                if resource != "pods" or ns != namespace:
                    continue
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                claims = {(v.get("persistentVolumeClaim") or {}).get("claimName")
                          for v in (pod.get("spec") or {}).get("volumes") or []}
                if name in claims:
                    return True
        return False

    def sweep_claims(self) -> None:
        """Remove claims whose deletion waited for the pods using them (pvc-protection)."""
        with self.store.lock:
            waiting = [o for (r, _, _), o in self.store.objects.items()
                       if r == "persistentvolumeclaims" and o["metadata"].get("deletionTimestamp")]
            for claim in waiting:
                meta = claim["metadata"]
                if not self.claim_in_use(meta["namespace"], meta["name"]):
                    self.store.remove("persistentvolumeclaims", meta["namespace"], meta["name"])
                    shutil.rmtree(self.claim_folder(meta["namespace"], meta["name"]), ignore_errors=True)

    # -- pods ---------------------------------------------------------------------
    def start(self, pod: Obj) -> None:
        meta = pod["metadata"]
        thread = threading.Thread(
            target=self._pod_thread, args=(meta["namespace"], meta["name"], meta["uid"]),
            name=f"kubelet-{meta['name']}", daemon=True,
        )
        self.threads[meta["uid"]] = thread
        thread.start()

    def delete(self, namespace: str, name: str, grace: int | None) -> Obj | None:
        """Graceful deletion: the pod gets its deletionTimestamp, its processes are stopped,
        and the object goes when they have ended. Immediate for a pod with nothing running
        (not started, already finished) or a grace period of 0."""
        with self.store.lock:
            pod = self.store.get("pods", namespace, name)
            if pod is None:
                return None
            uid = pod["metadata"]["uid"]
            if grace is None:
                grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            run = self.runs.get(uid)
            finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if run is None or finished or grace <= 0:
                pod["metadata"].setdefault("deletionTimestamp", now())
                pod["metadata"]["deletionGracePeriodSeconds"] = 0
                self._remove(namespace, name, uid)
                result = pod
            else:
                def mark(obj: Obj) -> None:
                    meta = obj["metadata"]
                    if "deletionTimestamp" not in meta or grace < meta.get("deletionGracePeriodSeconds", grace + 1):
                        meta["deletionTimestamp"] = _in_seconds(grace)
                        meta["deletionGracePeriodSeconds"] = grace

                result = self.store.modify("pods", namespace, name, mark) or pod
                for status in _all_statuses(result):
                    if "running" in (status.get("state") or {}):
                        self._event(result, "Killing", f"Stopping container {status['name']}",
                                    field_path=_field_path(result, status["name"]))
        if run is not None:
            run.terminate(grace)
        return result

    def _remove(self, namespace: str, name: str, uid: str) -> None:
        with self.store.lock:
            current = self.store.get("pods", namespace, name)
            if current is not None and current["metadata"]["uid"] == uid:
                self.store.remove("pods", namespace, name)
            self.logs.pop(uid, None)
            self.logs_changed.notify_all()
        self.sweep_claims()

    def shutdown(self) -> None:
        with self.store.lock:
            runs = list(self.runs.values())
        for run in runs:
            run.terminate(0)
        for thread in list(self.threads.values()):
            thread.join(timeout=5)

    def _pod_thread(self, namespace: str, name: str, uid: str) -> None:
        try:
            if not self._schedule(namespace, name, uid):
                return
            with self.store.lock:
                pod = self.store.get("pods", namespace, name)
                if pod is None or pod["metadata"]["uid"] != uid:
                    return
                if pod["metadata"].get("deletionTimestamp"):
                    self._remove(namespace, name, uid)
                    return
                self.logs[uid] = {}
                observer = _Observer(self, namespace, name, uid)
                run = PodRun(pod, _Cluster(self, namespace), observer, scratch_root=self.scratch_root)
                self.runs[uid] = run
            outcome = run.run()
            observer.finish(outcome)
            with self.store.lock:
                self.runs.pop(uid, None)
                pod = self.store.get("pods", namespace, name)
                deleting = pod is not None and pod["metadata"]["uid"] == uid and pod["metadata"].get("deletionTimestamp")
            if deleting:
                self._remove(namespace, name, uid)
            else:
                self.sweep_claims()
        finally:
            self.threads.pop(uid, None)

    def _schedule(self, namespace: str, name: str, uid: str) -> bool:
        """Bind the pod to the node once every claim it mounts exists (the scheduler waits)."""
        reported = False
        while not self.store.closed:
            with self.store.lock:
                pod = self.store.get("pods", namespace, name)
                if pod is None or pod["metadata"]["uid"] != uid:
                    return False
                if pod["metadata"].get("deletionTimestamp"):
                    self._remove(namespace, name, uid)
                    return False
                missing = self._missing_claims(pod)
                if not missing:
                    self._bind(pod)
                    return True
                if not reported:
                    message = (f'0/1 nodes are available: persistentvolumeclaim "{missing[0]}" not found. '
                               "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")

                    def unschedulable(obj: Obj, message: str = message) -> None:
                        _set_conditions(obj, [_condition(obj, "PodScheduled", "False", "Unschedulable", message)])

                    self.store.modify("pods", namespace, name, unschedulable)
                    self._event(pod, "FailedScheduling", message, type="Warning", component="default-scheduler")
                    reported = True
            time.sleep(0.3)
        return False

    def _missing_claims(self, pod: Obj) -> list[str]:
        namespace = pod["metadata"]["namespace"]
        missing = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is None:
                continue
            obj = self.store.get("persistentvolumeclaims", namespace, claim)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                missing.append(claim)
        return missing

    def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]

        def bind(obj: Obj) -> None:
            spec = obj["spec"]
            spec["nodeName"] = NODE
            status = obj.setdefault("status", {})
            has_init = bool(spec.get("initContainers"))
            status.update({
                "phase": "Pending", "hostIP": POD_IP, "hostIPs": [{"ip": POD_IP}], "podIP": POD_IP,
                "podIPs": [{"ip": POD_IP}], "startTime": now(),
            })
            waiting = "PodInitializing" if has_init else "ContainerCreating"
            if spec.get("initContainers"):
                status["initContainerStatuses"] = [
                    _status(c, {"waiting": {"reason": "PodInitializing"}}) for c in spec["initContainers"]
                ]
            status["containerStatuses"] = [_status(c, {"waiting": {"reason": waiting}}) for c in spec["containers"]]
            _refresh_conditions(obj)

        bound = self.store.modify("pods", meta["namespace"], meta["name"], bind)
        if bound is not None:
            self._event(bound, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE}",
                        component="default-scheduler")

    def _event(self, pod: Obj, reason: str, message: str, *, type: str = "Normal", field_path: str | None = None,
               component: str = "kubelet") -> None:
        meta = pod["metadata"]
        involved = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                    "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion", "")}
        if field_path:
            involved["fieldPath"] = field_path
        stamp = now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns() + next(_event_numbers):x}",
                         "namespace": meta["namespace"]},
            "involvedObject": involved, "reason": reason, "message": message,
            "source": {"component": component, **({"host": NODE} if component == "kubelet" else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": type, "eventTime": None,
            "reportingComponent": component, "reportingInstance": NODE if component == "kubelet" else "",
        }
        self.store.create("events", event)


class _Cluster:
    """The double's secrets, config maps and claims, as a pod in ``namespace`` sees them."""

    def __init__(self, kubelet: Kubelet, namespace: str) -> None:
        self.kubelet = kubelet
        self.namespace = namespace

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        obj = self.kubelet.store.get("secrets", self.namespace, name)
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def config_map(self, name: str) -> Mapping[str, str] | None:
        obj = self.kubelet.store.get("configmaps", self.namespace, name)
        return None if obj is None else dict(obj.get("data") or {})

    def claim_folder(self, name: str) -> str | None:
        obj = self.kubelet.store.get("persistentvolumeclaims", self.namespace, name)
        if obj is None:
            return None
        folder = self.kubelet.claim_folder(self.namespace, name)
        os.makedirs(folder, exist_ok=True)
        return folder


class _Observer:
    """Turns what the pod run reports into status, events and logs."""

    def __init__(self, kubelet: Kubelet, namespace: str, name: str, uid: str) -> None:
        self.kubelet = kubelet
        self.store = kubelet.store
        self.namespace = namespace
        self.name = name
        self.uid = uid

    def _update(self, change: Any) -> Obj | None:
        def guarded(obj: Obj) -> None:
            if obj["metadata"]["uid"] == self.uid:
                change(obj)
                _refresh_conditions(obj)

        return self.store.modify("pods", self.namespace, self.name, guarded)

    def _pod(self) -> Obj | None:
        pod = self.store.get("pods", self.namespace, self.name)
        return pod if pod is not None and pod["metadata"]["uid"] == self.uid else None

    def container_started(self, name: str, *, init: bool) -> None:
        pod = self._pod()
        if pod is None:
            return
        spec = _container_spec(pod, name)
        path = _field_path(pod, name)
        self.kubelet._event(pod, "Pulled", f'Container image "{spec.get("image", "")}" is not pulled: the kfx '
                            "Kubernetes double runs the container's command on this machine", field_path=path)
        self.kubelet._event(pod, "Created", f"Created container: {name}", field_path=path)
        started = now()

        def running(obj: Obj) -> None:
            status = _find_status(obj, name)
            status.update({"state": {"running": {"startedAt": started}}, "started": True,
                           "ready": not init or _is_sidecar(spec), "containerID": f"kfx://{self.uid}/{name}",
                           "imageID": ""})
            if not init:
                obj["status"]["phase"] = "Running"

        pod = self._update(running)
        if pod is not None:
            self.kubelet._event(pod, "Started", f"Started container {name}", field_path=path)

    def log(self, container: str, line: str) -> None:
        with self.kubelet.logs_changed:
            lines = self.kubelet.logs.get(self.uid)
            if lines is not None:
                lines.setdefault(container, []).append((datetime.now(timezone.utc), line))
                self.kubelet.logs_changed.notify_all()

    def container_ended(self, exit: ContainerExit, *, init: bool) -> None:
        pod = self._pod()
        if pod is None:
            return
        path = _field_path(pod, exit.name)
        spec = _container_spec(pod, exit.name)
        if exit.reason == IMAGE_NOT_HERE:
            self.kubelet._event(pod, "Failed", f'Failed to pull image "{spec.get("image", "")}": {exit.message}',
                                type="Warning", field_path=path)
            self.kubelet._event(pod, "Failed", f"Error: {exit.reason}", type="Warning", field_path=path)
        elif exit.reason in (CONFIG_ERROR, CANNOT_RUN):
            self.kubelet._event(pod, "Pulled", f'Container image "{spec.get("image", "")}" is not pulled: the kfx '
                                "Kubernetes double runs the container's command on this machine", field_path=path)
            self.kubelet._event(pod, "Failed", f"Error: {exit.message}", type="Warning", field_path=path)

        def ended(obj: Obj) -> None:
            status = _find_status(obj, exit.name)
            if exit.reason in NEVER_STARTED:
                status.update({"state": {"waiting": {"reason": exit.reason, "message": exit.message}},
                               "ready": False, "started": False})
                return
            terminated = {"exitCode": exit.exit_code, "reason": exit.reason,
                          "startedAt": rfc3339(exit.started_at or exit.finished_at) or now(),
                          "finishedAt": rfc3339(exit.finished_at) or now(),
                          "containerID": status.get("containerID") or f"kfx://{self.uid}/{exit.name}"}
            if exit.message:
                terminated["message"] = exit.message
            status.update({"state": {"terminated": terminated}, "ready": False, "started": False})
            phase = _terminal_phase(obj)
            if phase is not None:  # reported with the last container's end, as the kubelet does
                obj["status"]["phase"] = phase

        pod = self._update(ended)
        if pod is None or init:
            return
        # The main containers have all ended: the kubelet stops the sidecars now.
        mains = (pod.get("status") or {}).get("containerStatuses") or []
        if all("running" not in (s.get("state") or {}) for s in mains):
            for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
                if "running" in (status.get("state") or {}):
                    self.kubelet._event(pod, "Killing", f"Stopping container {status['name']}",
                                        field_path=_field_path(pod, status["name"]))

    def finish(self, outcome: PodOutcome) -> None:
        pod = self._pod()
        if pod is None:
            return
        if outcome.reason in ("FailedMount", "FailedScheduling"):
            self.kubelet._event(pod, outcome.reason, outcome.message, type="Warning")
            return  # stays Pending, as on a cluster
        if outcome.reason == "DeadlineExceeded":
            self.kubelet._event(pod, "DeadlineExceeded", outcome.message, type="Warning")

        def final(obj: Obj) -> None:
            status = obj["status"]
            if outcome.phase == "Pending":  # something could not start: a cluster would keep waiting
                started = any("waiting" not in (s.get("state") or {}) for s in status.get("containerStatuses") or [])
                status["phase"] = "Running" if started else "Pending"
                return
            status["phase"] = outcome.phase
            if outcome.reason == "DeadlineExceeded":
                status["reason"], status["message"] = outcome.reason, outcome.message

        self._update(final)


# ---------------------------------------------------------------------------
# Status helpers
# ---------------------------------------------------------------------------


def _is_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def _status(container: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": container.get("name"), "state": dict(state), "lastState": {}, "ready": False,
            "restartCount": 0, "image": container.get("image", ""), "imageID": "", "started": False}


def _all_statuses(pod: Obj) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _find_status(pod: Obj, name: str) -> dict[str, Any]:
    return next(s for s in _all_statuses(pod) if s.get("name") == name)


def _container_spec(pod: Obj, name: str) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    return next((c for c in [*(spec.get("initContainers") or []), *spec.get("containers", [])]
                 if c.get("name") == name), {})


def _field_path(pod: Obj, name: str) -> str:
    init = any(c.get("name") == name for c in (pod.get("spec") or {}).get("initContainers") or [])
    return f"spec.initContainers{{{name}}}" if init else f"spec.containers{{{name}}}"


def _terminal_phase(pod: Obj) -> str | None:
    """Succeeded / Failed once nothing runs any more and the pod cannot go on (restart
    policy aside: containers are never restarted here); None while it goes on."""
    status = pod.get("status") or {}
    if any("running" in (s.get("state") or {}) for s in _all_statuses(pod)):
        return None
    for container in (pod.get("spec") or {}).get("initContainers") or []:
        state = (_find_status(pod, container["name"]).get("state") or {})
        exit_code = (state.get("terminated") or {}).get("exitCode")
        if not _is_sidecar(container) and exit_code not in (None, 0):
            return "Failed"
    mains = [(s.get("state") or {}).get("terminated") for s in status.get("containerStatuses") or []]
    if not mains or any(t is None for t in mains):
        return None
    return "Succeeded" if all(t.get("exitCode") == 0 for t in mains) else "Failed"


def _in_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(time.time() + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(pod: Obj, kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    old = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)
    moment = old["lastTransitionTime"] if old is not None and old.get("status") == status else now()
    condition: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": moment}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _set_conditions(pod: Obj, conditions: list[dict[str, Any]]) -> None:
    status = pod.setdefault("status", {})
    kept = [c for c in status.get("conditions") or [] if c["type"] not in {n["type"] for n in conditions}]
    status["conditions"] = kept + conditions


def _refresh_conditions(pod: Obj) -> None:
    """The pod's conditions from its container statuses, as the kubelet computes them."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    done = status.get("phase") in ("Succeeded", "Failed")
    inits = {s["name"]: s for s in status.get("initContainerStatuses") or []}
    incomplete = []
    for container in spec.get("initContainers") or []:
        state = (inits.get(container["name"]) or {}).get("state") or {}
        if _is_sidecar(container):
            if not (inits.get(container["name"]) or {}).get("started"):
                incomplete.append(container["name"])
        elif (state.get("terminated") or {}).get("exitCode") != 0:
            incomplete.append(container["name"])
    unready = [s["name"] for s in status.get("containerStatuses") or [] if not s.get("ready")]
    unready += [s["name"] for s in status.get("initContainerStatuses") or []
                if _is_sidecar(_container_spec(pod, s["name"])) and not s.get("ready")]
    conditions = [_condition(pod, "PodReadyToStartContainers", "False" if done else "True")]
    if incomplete:
        conditions.append(_condition(pod, "Initialized", "False", "ContainersNotInitialized",
                                     f"containers with incomplete status: [{' '.join(incomplete)}]"))
    else:
        conditions.append(_condition(pod, "Initialized", "True"))
    if done:
        ready = [_condition(pod, kind, "False", "PodCompleted") for kind in ("Ready", "ContainersReady")]
    elif unready:
        message = f"containers with unready status: [{' '.join(unready)}]"
        ready = [_condition(pod, kind, "False", "ContainersNotReady", message) for kind in ("Ready", "ContainersReady")]
    else:
        ready = [_condition(pod, kind, "True") for kind in ("Ready", "ContainersReady")]
    conditions += ready
    conditions.append(_condition(pod, "PodScheduled", "True"))
    if spec.get("nodeName"):
        _set_conditions(pod, conditions)
