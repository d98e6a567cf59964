"""A Kubernetes API double: enough of the core/v1 REST API for the cncf.kubernetes
provider (sync and async clients, the deferrable trigger) to run pods against it.

    python tests/kube/server.py --port 0 --kubeconfig /tmp/kubeconfig [--volume-root DIR]

writes a kubeconfig (a token user, the current context set; ``--port 0`` picks a free
port, the kubeconfig tells which) and serves until SIGTERM/SIGINT, which kills every
pod's processes. Pods run on this machine: each container's command is a local process
(images are never pulled), see ``tests/kube/README.md``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import os
import random
import secrets as token_source
import signal
import string
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

if __package__ in (None, ""):  # run as a script: make ``tests.kube`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.kube import validation as v  # noqa: E402
from tests.kube.kubelet import Kubelet  # noqa: E402
from tests.kube.patch import json_patch, merge_patch, strategic_merge_patch  # noqa: E402
from tests.kube.store import Obj, Store, field_matcher, label_matcher, now  # noqa: E402

WATCH_DEFAULT_SECONDS = 1800  # the API server's --min-request-timeout


@dataclass(frozen=True)
class Kind:
    kind: str
    namespaced: bool = True
    name_rule: str = "subdomain"  # how metadata.name is validated
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


RESOURCES: dict[str, Kind] = {
    "pods": Kind("Pod", short_names=("po",)),
    "events": Kind("Event", short_names=("ev",)),
    "secrets": Kind("Secret"),
    "configmaps": Kind("ConfigMap", short_names=("cm",)),
    "persistentvolumeclaims": Kind("PersistentVolumeClaim", short_names=("pvc",)),
    "namespaces": Kind("Namespace", namespaced=False, name_rule="label", short_names=("ns",),
                       verbs=("create", "get", "list", "watch")),
}
POD_SUBRESOURCES = {"log", "status", "exec", "attach", "portforward", "eviction", "binding", "ephemeralcontainers"}
# Connecting subresources are authorized as "create" (Kubernetes ≥ 1.30, also for websocket GETs).
CONNECT = {"exec", "attach", "portforward"}
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


# ---------------------------------------------------------------------------
# The API: resource semantics, independent of HTTP
# ---------------------------------------------------------------------------


class Api:
    def __init__(self, volume_root: str) -> None:
        self.store = Store()
        self.volume_root = volume_root
        self.kubelet = Kubelet(self.store, volume_root)
        self.namespaces: dict[str, Obj] = {}
        for name in BUILTIN_NAMESPACES:
            self._namespace(name)
        self.audit: list[dict[str, Any]] = []
        self.audit_lock = threading.Lock()

    def shutdown(self) -> None:
        self.store.close()
        self.kubelet.shutdown()

    # -- namespaces: plain names, any valid one exists --------------------------------
    def _namespace(self, name: str) -> Obj:
        with self.store.lock:
            if name not in self.namespaces:
                self.namespaces[name] = {
                    "kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now(),
                                 "resourceVersion": str(self.store.version),
                                 "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
                }
            return copy.deepcopy(self.namespaces[name])

    def check_namespace(self, name: str) -> None:
        if v.dns_label_causes("metadata.name", name):
            raise v.not_found("namespaces", name)
        self._namespace(name)

    # -- create -----------------------------------------------------------------------
    def create(self, resource: str, namespace: str | None, body: Any, query: Mapping[str, str]) -> Obj:
        kind = RESOURCES[resource]
        obj = self._decode(kind, body, namespace)
        if resource == "namespaces":
            return self._create_namespace(obj)
        assert namespace is not None
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        for field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "managedFields", "selfLink"):
            meta.pop(field, None)
        if resource == "secrets":
            obj = _secret_data(obj)
            meta = obj["metadata"]
        v.validate(kind.kind, obj, name_rule=kind.name_rule)
        meta["namespace"] = namespace
        if resource == "pods":
            _default_pod(obj)
        elif resource == "persistentvolumeclaims":
            _bind_claim(obj)
        elif resource == "secrets":
            obj.setdefault("type", "Opaque")
        if query.get("dryRun"):
            with self.store.lock:
                if self.store.get(resource, namespace, meta["name"]) is not None:
                    raise v.already_exists(resource, meta["name"])
            return obj
        created = self.store.create(resource, obj)
        if resource == "pods":
            self.kubelet.start(created)
        elif resource == "persistentvolumeclaims":
            os.makedirs(self.kubelet.claim_folder(namespace, meta["name"]), exist_ok=True)
        return created

    def _create_namespace(self, obj: Obj) -> Obj:
        v.validate("Namespace", obj, name_rule="label")
        name = obj["metadata"]["name"]
        with self.store.lock:
            if name in self.namespaces:
                raise v.already_exists("namespaces", name)
            return self._namespace(name)

    def _decode(self, kind: Kind, body: Any, namespace: str | None) -> Obj:
        """The API server's decoding: a JSON object of this kind (kind/apiVersion inferred
        from the URL when missing), in the URL's namespace."""
        if not isinstance(body, dict):
            raise v.bad_request(f"{kind.kind} in version \"v1\" cannot be handled as a {kind.kind}: "
                                "the body is not a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("apiVersion") not in (None, "", "v1"):
            raise v.bad_request(f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                                "API version (v1)")
        if obj.get("kind") not in (None, "", kind.kind):
            raise v.bad_request(f"the kind in the data ({obj['kind']}) does not match the expected kind "
                                f"({kind.kind})")
        obj["apiVersion"], obj["kind"] = "v1", kind.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise v.bad_request(f"{kind.kind} in version \"v1\" cannot be handled as a {kind.kind}: metadata "
                                "must be an object")
        if kind.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise v.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                "request")
        return obj

    # -- read -------------------------------------------------------------------------
    def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        if resource == "namespaces":
            if v.dns_label_causes("metadata.name", name):
                raise v.not_found("namespaces", name)
            return self._namespace(name)
        obj = self.store.get(resource, namespace or "", name)
        if obj is None:
            raise v.not_found(resource, name)
        return obj

    def matcher(self, resource: str, query: Mapping[str, str]) -> Callable[[Obj], bool]:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(resource, query.get("fieldSelector"))
        return lambda obj: labels(obj) and fields(obj)

    def list(self, resource: str, namespace: str | None, query: Mapping[str, str]) -> Obj:
        match = self.matcher(resource, query)
        if resource == "namespaces":
            with self.store.lock:
                items = [copy.deepcopy(o) for _, o in sorted(self.namespaces.items()) if match(o)]
                version = str(self.store.version)
        else:
            items, version = self.store.list(resource, namespace, match)
        for item in items:  # list items carry no kind / apiVersion, as the API writes them
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": f"{RESOURCES[resource].kind}List", "apiVersion": "v1",
                "metadata": {"resourceVersion": version}, "items": items}

    def watch(self, resource: str, namespace: str | None, query: Mapping[str, str],
              stop: Callable[[], bool]) -> Iterator[tuple[str, Obj]]:
        match = self.matcher(resource, query)
        timeout = float(query.get("timeoutSeconds") or WATCH_DEFAULT_SECONDS)
        if resource == "namespaces":  # namespaces do not change here: the current ones, then quiet
            for obj in self.list(resource, None, query)["items"]:
                yield "ADDED", {"kind": "Namespace", "apiVersion": "v1", **obj}
            return
        kind = RESOURCES[resource].kind
        for kind_of_change, obj in self.store.watch(resource, namespace, match, query.get("resourceVersion"),
                                                    timeout, stop):
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", "v1")
            yield kind_of_change, obj

    # -- update, patch ----------------------------------------------------------------
    def replace(self, resource: str, namespace: str, name: str, body: Any, query: Mapping[str, str]) -> Obj:
        kind = RESOURCES[resource]
        if resource == "namespaces":
            raise v.ApiError(405, "MethodNotAllowed", "the kfx double does not update namespaces")
        obj = self._decode(kind, body, namespace)
        if obj["metadata"].get("name") not in (None, name):
            raise v.bad_request(f"the name of the object ({obj['metadata']['name']}) does not match the name on "
                                f"the URL ({name})")
        with self.store.lock:
            current = self.get(resource, namespace, name)
            wanted = obj["metadata"].get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise v.conflict(resource, name, "the object has been modified; please apply your changes to the "
                                 "latest version and try again")
            return self._save(resource, kind, current, obj, query)

    def patch(self, resource: str, namespace: str, name: str, body: Any, content_type: str,
              query: Mapping[str, str]) -> Obj:
        kind = RESOURCES[resource]
        if resource == "namespaces":
            raise v.ApiError(405, "MethodNotAllowed", "the kfx double does not patch namespaces")
        media = content_type.split(";")[0].strip().lower()
        with self.store.lock:
            current = self.get(resource, namespace, name)
            if media == "application/merge-patch+json":
                result = merge_patch(current, body)
            elif media == "application/strategic-merge-patch+json":
                if not isinstance(body, dict):
                    raise v.bad_request("strategic merge patch must be a JSON object")
                result = strategic_merge_patch(current, body)
            elif media == "application/json-patch+json":
                result = json_patch(current, body)
            elif media.startswith("application/apply-patch"):
                raise v.ApiError(415, "UnsupportedMediaType",
                                 "the kfx double does not support server-side apply (application/apply-patch)")
            else:
                raise v.ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                 "accepted media types include: application/json-patch+json, "
                                 "application/merge-patch+json, application/strategic-merge-patch+json")
            if not isinstance(result, dict):
                raise v.bad_request("the patch did not produce an object")
            obj = self._decode(kind, result, namespace)
            return self._save(resource, kind, current, obj, query)

    def _save(self, resource: str, kind: Kind, current: Obj, obj: Obj, query: Mapping[str, str]) -> Obj:
        """An update of the main resource: validated as a whole, immutable parts checked,
        status kept (the main resource never changes it)."""
        meta, old = obj["metadata"], current["metadata"]
        causes: list[v.Cause] = []
        for field in ("name", "namespace", "uid"):  # a changed creationTimestamp is ignored, as by the server
            if meta.get(field) not in (None, old.get(field)):
                causes.append(v.invalid(f"metadata.{field}", meta.get(field), "field is immutable"))
        for field in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                      "deletionGracePeriodSeconds"):
            if field in old:
                meta[field] = old[field]
        meta.pop("resourceVersion", None)
        if resource == "secrets":
            obj = _secret_data(obj)
            meta = obj["metadata"]
        if "status" in current or "status" in obj:
            obj["status"] = copy.deepcopy(current.get("status"))
            if obj["status"] is None:
                obj.pop("status")
        causes += _immutable_causes(resource, current, obj)
        try:
            v.validate(kind.kind, obj, name_rule=kind.name_rule)
        except v.ApiError as err:
            if not causes:
                raise
            causes += [v.Cause(c["reason"], c["field"], c["message"]) for c in err.details.get("causes", [])]
        if causes:
            raise v.invalid_error(kind.kind, old["name"], causes)
        if query.get("dryRun"):
            return obj
        return self.store.update(resource, obj)

    # -- delete -----------------------------------------------------------------------
    def delete(self, resource: str, namespace: str, name: str, body: Any, query: Mapping[str, str]) -> Obj:
        if resource == "namespaces":
            raise v.ApiError(405, "MethodNotAllowed", "the kfx double does not delete namespaces")
        options = body if isinstance(body, dict) else {}
        with self.store.lock:
            current = self.get(resource, namespace, name)
            preconditions = options.get("preconditions") or {}
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = preconditions.get(field)
                if wanted and wanted != current["metadata"].get(field):
                    raise v.conflict(resource, name, f"Precondition failed: {label} in precondition: {wanted}, "
                                     f"{label} in object meta: {current['metadata'].get(field)}")
            if query.get("dryRun") or options.get("dryRun"):
                return current
            if resource == "pods":
                grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
                deleted = self.kubelet.delete(namespace, name, None if grace is None else int(grace))
                if deleted is None:
                    raise v.not_found(resource, name)
                return deleted
            if resource == "persistentvolumeclaims" and self.kubelet.claim_in_use(namespace, name):
                # pvc-protection: the claim goes when no pod uses it any more
                return self.store.modify(resource, namespace, name, lambda o: o["metadata"].setdefault(
                    "deletionTimestamp", now())) or current
            gone = self.store.remove(resource, namespace, name)
            if resource == "persistentvolumeclaims":
                import shutil

                shutil.rmtree(self.kubelet.claim_folder(namespace, name), ignore_errors=True)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "kind": resource, "uid": (gone or current)["metadata"]["uid"]}}

    def delete_collection(self, resource: str, namespace: str, body: Any, query: Mapping[str, str]) -> Obj:
        listed = self.list(resource, namespace, query)
        for item in listed["items"]:
            try:
                self.delete(resource, namespace, item["metadata"]["name"], body, query)
            except v.ApiError as err:
                if err.code != 404:
                    raise
        return listed

    # -- audit --------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        with self.audit_lock:
            self.audit.append(entry)


def _secret_data(obj: Obj) -> Obj:
    """``stringData`` merged into ``data`` (base64), as the API server stores secrets."""
    obj = copy.deepcopy(obj)
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        return obj
    for key, value in data.items():
        if not isinstance(value, str):
            continue
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise v.bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at '
                                f"key {key!r}") from None
    string_data = obj.pop("stringData", None) or {}
    if isinstance(string_data, dict):
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data
    return obj


def _default_pod(pod: Obj) -> None:
    """The API server's defaulting (and the admission plugins' ServiceAccount and
    DefaultTolerationSeconds), so a pod reads back as from a cluster."""
    spec = pod["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = container.get("image", "")
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
        container.setdefault("resources", {})
        for variable in container.get("env") or []:
            field_ref = (variable.get("valueFrom") or {}).get("fieldRef")
            if field_ref is not None:
                field_ref.setdefault("apiVersion", "v1")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
    for volume in spec.get("volumes") or []:
        for source in ("secret", "configMap", "downwardAPI", "projected"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")
    pod["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def _qos(spec: Mapping[str, Any]) -> str:
    containers = [*(spec.get("initContainers") or []), *spec.get("containers", [])]
    requests = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    limits = [(c.get("resources") or {}).get("limits") or {} for c in containers]
    if not any(r.get(k) or lim.get(k) for r, lim in zip(requests, limits) for k in ("cpu", "memory")):
        return "BestEffort"
    guaranteed = all(
        lim.get(k) and str(r.get(k, lim.get(k))) == str(lim.get(k)) for r, lim in zip(requests, limits)
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _bind_claim(claim: Obj) -> None:
    """A claim is bound at once to a volume that is a folder under the volume root."""
    spec = claim.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    claim["metadata"].setdefault("finalizers", ["kubernetes.io/pvc-protection"])
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    spec["volumeName"] = "pvc-" + "".join(random.choices(string.hexdigits.lower()[:16], k=32))
    claim["status"] = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                       "capacity": {"storage": storage}}


_POD_MUTABLE = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _immutable_causes(resource: str, current: Obj, obj: Obj) -> list[v.Cause]:
    if resource == "pods":
        def comparable(spec: Any) -> Any:
            spec = copy.deepcopy(spec) or {}
            for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
                spec.pop(key, None)
            for key in ("containers", "initContainers"):
                for container in spec.get(key) or []:
                    container.pop("image", None)
            return spec

        if comparable(current.get("spec")) != comparable(obj.get("spec")):
            return [v.forbidden("spec", _POD_MUTABLE)]
    elif resource == "persistentvolumeclaims":
        def comparable_claim(spec: Any) -> Any:
            spec = copy.deepcopy(spec) or {}
            (spec.get("resources") or {}).pop("requests", None)
            spec.pop("volumeAttributesClassName", None)
            return spec

        if comparable_claim(current.get("spec")) != comparable_claim(obj.get("spec")):
            return [v.forbidden("spec", "spec is immutable after creation except resources.requests and "
                                "volumeAttributesClassName for bound claims")]
    elif resource in ("secrets", "configmaps") and current.get("immutable"):
        causes = []
        for field in ("data", "binaryData"):
            if current.get(field) != obj.get(field):
                causes.append(v.forbidden(field, "field is immutable when `immutable` is set"))
        if not obj.get("immutable"):
            causes.append(v.forbidden("immutable", "field is immutable when `immutable` is set"))
        return causes
    return []


# ---------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------


def rfc3339_nano(moment: datetime) -> str:
    """Go's RFC3339Nano: fractional seconds without trailing zeros."""
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


@dataclass(frozen=True)
class LogRequest:
    uid: str
    container: str
    follow: bool
    timestamps: bool
    since: datetime | None
    tail: int | None
    limit: int | None


def log_request(api: Api, namespace: str, name: str, query: Mapping[str, str]) -> LogRequest:
    """Check a pods/log request as the API server does; raise its errors."""
    pod = api.get("pods", namespace, name)
    spec = pod["spec"]
    mains = [c["name"] for c in spec["containers"]]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    container = query.get("container")
    if not container:
        if len(mains) != 1:
            extra = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
            raise v.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                f"[{' '.join(mains)}]{extra}")
        container = mains[0]
    if container not in mains + inits:
        raise v.bad_request(f"container {container} is not valid for pod {name}")
    causes = []
    numbers: dict[str, int | None] = {}
    for key, low in (("sinceSeconds", 1), ("tailLines", 0), ("limitBytes", 1)):
        raw = query.get(key)
        numbers[key] = None
        if raw is None:
            continue
        try:
            numbers[key] = int(raw)
        except ValueError:
            raise v.bad_request(f"invalid {key}: {raw!r}") from None
        if numbers[key] < low:  # type: ignore[operator]
            causes.append(v.invalid(key, numbers[key], f"must be greater than {'or equal to ' if low == 0 else ''}"
                                    f"{0 if low == 0 else low - 1}"))
    since: datetime | None = None
    if query.get("sinceTime"):
        if numbers["sinceSeconds"] is not None:
            causes.append(v.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
        try:
            since = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError:
            raise v.bad_request(f"invalid sinceTime: {query['sinceTime']!r}") from None
    elif numbers["sinceSeconds"]:
        since = datetime.now(timezone.utc) - timedelta(seconds=numbers["sinceSeconds"])
    if causes:
        raise v.invalid_error("PodLogOptions", "", causes)
    if _true(query.get("previous")):
        raise v.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    statuses = [*(pod.get("status") or {}).get("initContainerStatuses", []),
                *(pod.get("status") or {}).get("containerStatuses", [])]
    status = next((s for s in statuses if s.get("name") == container), None)
    waiting = (status or {}).get("state", {}).get("waiting") if status else {"reason": "ContainerCreating"}
    if waiting is not None:
        reason = waiting.get("reason") or "ContainerCreating"
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            reason = "trying and failing to pull image"
        raise v.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    return LogRequest(pod["metadata"]["uid"], container, _true(query.get("follow")), _true(query.get("timestamps")),
                      since, numbers["tailLines"], numbers["limitBytes"])


def log_chunks(api: Api, namespace: str, name: str, request: LogRequest,
               stop: Callable[[], bool]) -> Iterator[bytes]:
    """The log's bytes: what is there (after since/tail), then, when following, each new
    line until the container has ended (or the pod is gone)."""
    kubelet = api.kubelet
    sent_bytes = 0

    def render(lines: list[tuple[datetime, str]]) -> bytes:
        return b"".join(
            ((rfc3339_nano(t) + " ") if request.timestamps else "").encode() + line.encode("utf-8", "replace") + b"\n"
            for t, line in lines
        )

    with kubelet.logs_changed:
        lines = list((kubelet.logs.get(request.uid) or {}).get(request.container, []))
    index = len(lines)
    if request.since is not None:
        lines = [(t, text) for t, text in lines if t >= request.since]
    if request.tail is not None:
        lines = lines[-request.tail:] if request.tail else []
    pending = render(lines)
    while True:
        if pending:
            if request.limit is not None:
                pending = pending[: max(0, request.limit - sent_bytes)]
            if pending:
                yield pending
                sent_bytes += len(pending)
            if request.limit is not None and sent_bytes >= request.limit:
                return
        if not request.follow or stop():
            return
        with kubelet.logs_changed:
            while True:
                logs = kubelet.logs.get(request.uid)
                if logs is None:  # the pod is gone
                    return
                current = logs.get(request.container, [])
                if len(current) > index:
                    fresh = current[index:]
                    index = len(current)
                    break
                # Its lines are all in before a container is reported ended: nothing more comes.
                if not _running(api, namespace, name, request) or stop():
                    return
                kubelet.logs_changed.wait(timeout=1.0)
        pending = render(fresh)


def _running(api: Api, namespace: str, name: str, request: LogRequest) -> bool:
    pod = api.store.get("pods", namespace, name)
    if pod is None or pod["metadata"]["uid"] != request.uid:
        return False
    status = pod.get("status") or {}
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        if entry.get("name") == request.container:
            return "terminated" not in (entry.get("state") or {})
    return False


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    resource: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    watch_path: bool = False  # the deprecated /api/v1/watch/... form


def route(path: str) -> Route | None:
    """The resource a /api/v1 path names; None for anything else."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] != ["api", "v1"] or len(parts) < 3:
        return None
    rest = parts[2:]
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in RESOURCES and rest[2] != "namespaces":
        if len(rest) > 5:
            return None
        return Route(rest[2], rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None, watch)
    if rest[0] == "namespaces":
        if len(rest) > 3:
            return None
        return Route("namespaces", None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None,
                     watch)
    if rest[0] in RESOURCES and len(rest) == 1:
        return Route(rest[0], None, None, None, watch)  # every namespace
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DoubleServer

    # -- plumbing -----------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> None:
        """Read the request's body before anything can answer: an unread body would be
        taken for the next request on this keep-alive connection."""
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length else b""

    def _body(self) -> Any:
        raw = self._raw_body
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            raise v.bad_request(f"the body of the request could not be decoded as JSON: {err}") from None

    def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", token_source.token_hex(8))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, content_type: str, chunks: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- requests -----------------------------------------------------------------
    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        url = url._replace(path=url.path.rstrip("/") or "/")  # /version/ is /version
        query = {k: values[-1] for k, values in parse_qs(url.query, keep_blank_values=True).items()}
        api = self.server.api
        target = route(url.path)
        # Wall-clock times for bench/kubernetes_overhead.py (when each request came and was answered).
        entry: dict[str, Any] = {"method": method, "path": url.path, "received": time.time()}
        if target is None:
            entry.update({"verb": method.lower(), "nonResourceURL": url.path})
        else:
            entry.update(_audit_fields(method, target, query))
        code = 500
        self._read_body()
        try:
            if not url.path.startswith("/kfx-double/") and url.path not in ("/healthz", "/readyz", "/livez",
                                                                          "/version"):
                self._authenticate()
            code = self._dispatch(method, url.path, target, query)
        except v.ApiError as err:
            code = err.code
            self._send(err.code, err.status())
        except Exception as err:  # noqa: BLE001 - answer as the API server does: 500 with a Status
            code = 500
            self._send(500, v.ApiError(500, "InternalError", f"kfx double: {type(err).__name__}: {err}").status())
            if self.server.verbose:
                import traceback

                traceback.print_exc()
        finally:
            if not url.path.startswith("/kfx-double/"):
                entry["code"] = code
                entry["answered"] = time.time()
                api.record(entry)

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization") or ""
        if header != f"Bearer {self.server.token}":
            raise v.ApiError(401, "Unauthorized", "Unauthorized")

    def _dispatch(self, method: str, path: str, target: Route | None, query: dict[str, str]) -> int:
        api = self.server.api
        if target is None:
            return self._non_resource(method, path)
        resource, namespace, name, sub = target.resource, target.namespace, target.name, target.subresource
        kind = RESOURCES[resource]
        if namespace is not None:
            api.check_namespace(namespace)
        if sub is not None:
            return self._subresource(method, target, query)
        watch = target.watch_path or _true(query.get("watch"))
        if method == "GET":
            if watch:
                if name is not None:
                    query = {**query, "fieldSelector": ",".join(filter(None, [query.get("fieldSelector"),
                                                                               f"metadata.name={name}"]))}
                if resource not in ("namespaces",) and namespace is None and kind.namespaced and name is not None:
                    raise v.not_found(resource, name)
                self._watch(resource, namespace, query)
                return 200
            if name is None:
                self._send(200, api.list(resource, namespace, query))
            else:
                if kind.namespaced and namespace is None:
                    raise v.ApiError(404, "NotFound", "the server could not find the requested resource")
                self._send(200, api.get(resource, namespace, name))
            return 200
        if kind.namespaced and namespace is None:
            raise v.ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                             "resource")
        body = self._body()
        if method == "POST" and name is None:
            self._send(201, api.create(resource, namespace, body, query))
            return 201
        if method == "PUT" and name is not None:
            self._send(200, api.replace(resource, namespace or "", name, body, query))
            return 200
        if method == "PATCH" and name is not None:
            self._send(200, api.patch(resource, namespace or "", name, body,
                                      self.headers.get("Content-Type") or "", query))
            return 200
        if method == "DELETE" and name is not None:
            self._send(200, api.delete(resource, namespace or "", name, body, query))
            return 200
        if method == "DELETE":
            self._send(200, api.delete_collection(resource, namespace or "", body, query))
            return 200
        raise v.ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _subresource(self, method: str, target: Route, query: dict[str, str]) -> int:
        api = self.server.api
        namespace, name, sub = target.namespace or "", target.name or "", target.subresource
        if target.resource != "pods" or sub not in POD_SUBRESOURCES:
            raise v.ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "log" and method == "GET":
            request = log_request(api, namespace, name, query)
            chunks = log_chunks(api, namespace, name, request, lambda: self.server.stopping.is_set())
            if request.follow:
                self._stream("text/plain", chunks)
            else:
                self._send(200, b"".join(chunks), "text/plain")
            return 200
        if sub == "status" and method == "GET":
            self._send(200, api.get("pods", namespace, name))
            return 200
        api.get("pods", namespace, name)  # 404 first, as the API server
        if sub in CONNECT:
            raise v.bad_request(f"the kfx Kubernetes double does not support pods/{sub} (no container runtime to "
                                "connect to: pods run as local processes)")
        raise v.ApiError(405, "MethodNotAllowed", f"the kfx double does not support {method} pods/{sub}")

    def _watch(self, resource: str, namespace: str | None, query: dict[str, str]) -> None:
        api = self.server.api
        stop = self.server.stopping.is_set

        def lines() -> Iterator[bytes]:
            try:
                for kind_of_change, obj in api.watch(resource, namespace, query, stop):
                    yield json.dumps({"type": kind_of_change, "object": obj}).encode() + b"\n"
            except v.ApiError as err:  # a watch reports errors in the stream (410 Gone: resourceVersion too old)
                yield json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n"

        api.matcher(resource, query)  # a bad selector is a 400 before the stream starts
        self._stream("application/json", lines())

    def _non_resource(self, method: str, path: str) -> int:
        api = self.server.api
        if path.startswith("/kfx-double/audit"):
            if method == "DELETE":
                with api.audit_lock:
                    api.audit.clear()
            with api.audit_lock:
                self._send(200, {"items": list(api.audit)})
            return 200
        if method != "GET":
            raise v.ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if path in ("/healthz", "/readyz", "/livez"):
            self._send(200, b"ok", "text/plain")
        elif path == "/version":
            self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-kfx-double",
                             "gitCommit": "kfx-double", "gitTreeState": "clean",
                             "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
                             "platform": "linux/amd64"})
        elif path.rstrip("/") == "/api":
            host, port = self.server.server_address[:2]
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}]})
        elif path.rstrip("/") == "/api/v1":
            self._send(200, _discovery())
        elif path.rstrip("/") == "/apis":
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        else:
            raise v.ApiError(404, "NotFound", "the server could not find the requested resource")
        return 200


def _audit_fields(method: str, target: Route, query: Mapping[str, str]) -> dict[str, Any]:
    watch = target.watch_path or _true(query.get("watch"))
    if method == "GET":
        verb = "watch" if watch else ("get" if target.name is not None else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if target.name is not None else "deletecollection"}[method]
    if target.subresource in CONNECT:
        verb = "create"
    if target.subresource and method == "GET" and target.subresource not in CONNECT:
        verb = "get"
    resource = target.resource + (f"/{target.subresource}" if target.subresource else "")
    if target.resource == "namespaces" and target.subresource:
        resource = f"namespaces/{target.subresource}"
    return {"verb": verb, "apiGroup": "", "resource": target.resource, "subresource": target.subresource or "",
            "namespace": target.namespace or "", "name": target.name or "", "rule": f"{verb} {resource}"}


def _discovery() -> Obj:
    resources = []
    for plural, kind in RESOURCES.items():
        resources.append({"name": plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                          "kind": kind.kind, "verbs": list(kind.verbs), "shortNames": list(kind.short_names)})
    resources += [
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    ]
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


class DoubleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, token: str, verbose: bool = False) -> None:
        super().__init__(address, Handler)
        self.api = api
        self.token = token
        self.verbose = verbose
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def kubeconfig(url: str, token: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kfx-double", "cluster": {"server": url}}],
        "users": [{"name": "kfx-double", "user": {"token": token}}],
        "contexts": [{"name": "kfx-double",
                      "context": {"cluster": "kfx-double", "user": "kfx-double", "namespace": namespace}}],
        "current-context": "kfx-double",
    }


def write_kubeconfig(path: str, url: str, token: str) -> None:
    """Written whole, then renamed into place: a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as handle:
        json.dump(kubeconfig(url, token), handle, indent=2)  # JSON is YAML: every client reads it
    os.replace(handle.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the kubeconfig tells which)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--volume-root", help="where PersistentVolumeClaims' folders live (default: a temp dir)")
    parser.add_argument("--token", help="the bearer token clients must send (default: a random one)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    volume_root = args.volume_root or tempfile.mkdtemp(prefix="kfx-double-volumes-")
    token = args.token or token_source.token_urlsafe(24)
    api = Api(volume_root)
    server = DoubleServer((args.host, args.port), api, token, verbose=args.verbose)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="kfx-double-http", daemon=True)
    thread.start()
    write_kubeconfig(args.kubeconfig, server.url, token)
    print(f"kfx Kubernetes double: {server.url} (kubeconfig {args.kubeconfig}, volumes {volume_root})", flush=True)
    while not stop.wait(0.5):
        pass
    server.stopping.set()
    api.shutdown()  # kills every pod's processes
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
