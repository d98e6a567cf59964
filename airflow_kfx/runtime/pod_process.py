"""Run a Kubernetes Pod as local processes, the way a kubelet runs its containers.

The pod is the JSON dict the API serialises (camelCase); a ``V1Pod`` becomes one with
``kubernetes.client.ApiClient().sanitize_for_serialization(pod)``. Images are never
pulled: each container's ``command`` + ``args`` runs as a process on this machine,
with only the pod's environment (never the caller's: no Airflow settings or cloud
credentials leak into a container). What a kubelet does, this does too:

* init containers run one after the other and must each exit 0; a native sidecar (an
  init container with ``restartPolicy: Always``) is started and left running;
* the main containers run concurrently; when they have all ended, the sidecars get
  SIGTERM in reverse order, then SIGKILL when the pod's grace period is over;
* the pod's volumes are folders (emptyDir: a fresh one per pod; a claim: the folder
  the cluster gives; secrets and config maps: written from the objects), bind-mounted
  at each container's mount paths in a private mount namespace of its own;
* env from values, ``$(VAR)`` references, the downward API, secrets and config maps.

Containers are not restarted (whatever the restart policy), probes, resource limits,
security contexts, ports and users are not applied, and images' own entrypoints and
environments cannot be known: a container needs a command.

Two users: the ``local`` runtime (``runtime/local.py``) and the Kubernetes API double
of the tests (``tests/kube/``). Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------

# ContainerExit.reason values, as the kubelet reports them.
COMPLETED = "Completed"
ERROR = "Error"
CANNOT_RUN = "ContainerCannotRun"  # could not be started here; terminated, as a runtime reports it
IMAGE_NOT_HERE = "ErrImagePull"  # its executable is not on this machine (the "image" cannot be had)
CONFIG_ERROR = "CreateContainerConfigError"  # a secret / config map / key its env needs is missing
# On a cluster a container in one of these states waits (and is retried) for ever.
NEVER_STARTED = frozenset({IMAGE_NOT_HERE, CONFIG_ERROR})

DEFAULT_GRACE_SECONDS = 30  # the API's default terminationGracePeriodSeconds


class ClusterObjects(Protocol):
    """What a cluster provides a pod, looked up in the pod's namespace."""

    def secret(self, name: str) -> Mapping[str, bytes] | None: ...

    def config_map(self, name: str) -> Mapping[str, str] | None: ...

    def claim_folder(self, name: str) -> str | None:
        """The local folder standing in for the PersistentVolumeClaim, None if there is none."""
        ...


@dataclass(frozen=True)
class ContainerExit:
    """How a container ended, or why it never started (``started_at`` None)."""

    name: str
    exit_code: int  # 128 + signal for a process killed by a signal; 128 when it could not run
    reason: str  # Completed, Error, or one of CANNOT_RUN / IMAGE_NOT_HERE / CONFIG_ERROR
    message: str = ""  # the termination message, or why it could not start
    started_at: datetime | None = None
    finished_at: datetime | None = None


class PodObserver(Protocol):
    """Told what happens while a pod runs. Called from several threads at once."""

    def container_started(self, name: str, *, init: bool) -> None: ...

    def log(self, container: str, line: str) -> None: ...

    def container_ended(self, exit: ContainerExit, *, init: bool) -> None: ...


@dataclass(frozen=True)
class PodOutcome:
    """The end of a pod run.

    ``phase``: Succeeded (every main container exited 0), Failed, or Pending: something
    could not be started (a volume, or a container in NEVER_STARTED), which a cluster
    would keep waiting for; ``reason``/``message`` say what for a pod-level cause
    (FailedMount, FailedScheduling, DeadlineExceeded, Terminated).
    """

    phase: str
    init_containers: tuple[ContainerExit, ...] = ()
    containers: tuple[ContainerExit, ...] = ()
    reason: str = ""
    message: str = ""

    def exit_of(self, name: str) -> ContainerExit | None:
        return next((e for e in (*self.init_containers, *self.containers) if e.name == name), None)


# ---------------------------------------------------------------------------
# What a pod needs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    need: str  # a human sentence (a noun phrase): "the Kubernetes secret 'x' (volume at /p)"
    reason: str  # kubelet style: FailedMount / FailedScheduling / a ContainerExit reason
    message: str  # kubelet style: 'secret "x" not found'


def pod_needs(pod: Mapping[str, Any], cluster: ClusterObjects) -> list[str]:
    """Everything the pod needs that cannot be provided here, as sentences (empty: it can run)."""
    problems = list(_volume_problems(pod, cluster))
    for container, _ in _all_containers(pod):
        problems += _container_problems(pod, container, cluster)
        env = {v["name"]: str(v.get("value", "")) for v in container.get("env") or [] if "valueFrom" not in v}
        problems += _executable_problems(pod, container, env.get("PATH") or default_path())
    if any(c.get("volumeMounts") for c, _ in _all_containers(pod)) and not can_mount():
        targets = sorted({m["mountPath"] for c, _ in _all_containers(pod) for m in c.get("volumeMounts") or []})
        problems.append(_Problem(
            f"a private mount namespace for the volumes at {', '.join(targets)} "
            "(needs root and util-linux's 'unshare')", CANNOT_RUN, _MOUNT_MESSAGE,
        ))
    needs: list[str] = []
    for problem in problems:
        if problem.need not in needs:
            needs.append(problem.need)
    return needs


def can_mount() -> bool:
    """Whether volumes can be bind-mounted in private mount namespaces here."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def default_path() -> str:
    """PATH of a container that sets none: this interpreter's folder first (so ``python``
    and ``python3`` are the one running here, with its packages), then this machine's."""
    machine = os.environ.get("PATH") or os.defpath
    return os.pathsep.join([os.path.dirname(sys.executable), machine])


_MOUNT_MESSAGE = (
    "its volumes are mapped to local folders with a private mount namespace, "
    "which needs root and util-linux's 'unshare'"
)


def _all_containers(pod: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    spec = pod.get("spec") or {}
    for container in spec.get("initContainers") or []:
        yield container, True
    for container in spec.get("containers") or []:
        yield container, False


def _namespace(pod: Mapping[str, Any]) -> str:
    return (pod.get("metadata") or {}).get("namespace") or "default"


def _mount_paths(pod: Mapping[str, Any], volume: str) -> list[str]:
    return [
        m["mountPath"]
        for c, _ in _all_containers(pod)
        for m in c.get("volumeMounts") or []
        if m.get("name") == volume
    ]


def _volume_problems(pod: Mapping[str, Any], cluster: ClusterObjects) -> Iterator[_Problem]:
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        paths = _mount_paths(pod, name)
        where = f"volume at {', '.join(paths)}" if paths else f"volume '{name}'"
        yield from _source_problems(volume, name, where, cluster, _namespace(pod))


def _source_problems(
    volume: Mapping[str, Any], name: str, where: str, cluster: ClusterObjects, namespace: str
) -> Iterator[_Problem]:
    def mount_failed(need: str, message: str) -> _Problem:
        return _Problem(need, "FailedMount", f'MountVolume.SetUp failed for volume "{name}" : {message}')

    if "secret" in volume or "configMap" in volume:
        yield from _keyed_volume_problems(volume, where, cluster, mount_failed)
    elif "projected" in volume:
        for source in volume["projected"].get("sources") or []:
            if "secret" in source or "configMap" in source:
                yield from _keyed_volume_problems(source, where, cluster, mount_failed)
            elif "downwardAPI" in source:
                yield from _downward_problems(source["downwardAPI"], where, mount_failed)
            else:
                kind = next(iter(source), "?")
                yield mount_failed(
                    f"the projected {kind} of the volume '{name}' ({where}; not available outside a cluster)",
                    f"projected {kind} is not supported here",
                )
    elif "downwardAPI" in volume:
        yield from _downward_problems(volume["downwardAPI"], where, mount_failed)
    elif "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"].get("claimName", "")
        if cluster.claim_folder(claim) is None:
            yield _Problem(
                f"the PersistentVolumeClaim '{claim}' ({where})", "FailedScheduling",
                f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.',
            )
    elif "hostPath" in volume:
        path = volume["hostPath"].get("path", "")
        kind = volume["hostPath"].get("type") or ""
        checks = {"Directory": os.path.isdir, "File": os.path.isfile, "Socket": _is_socket,
                  "CharDevice": os.path.exists, "BlockDevice": os.path.exists}
        if kind in checks and not checks[kind](path):
            yield mount_failed(
                f"the host path '{path}' ({where}; type {kind}: it must exist on this machine)",
                f"hostPath type check failed: {path} is not a {kind.lower()}",
            )
    elif not any(k in volume for k in ("emptyDir", "ephemeral")):
        kind = next((k for k in volume if k != "name"), "?")
        yield mount_failed(f"the volume '{name}' ({where}; {kind} volumes cannot be provided here)",
                           f"{kind} volumes are not supported here")


def _keyed_volume_problems(
    source: Mapping[str, Any], where: str, cluster: ClusterObjects, failed: Callable[[str, str], _Problem]
) -> Iterator[_Problem]:
    is_secret = "secret" in source
    ref = source["secret"] if is_secret else source["configMap"]
    object_name = ref.get("secretName" if is_secret else "name", "")
    label = "Kubernetes secret" if is_secret else "Kubernetes config map"
    values = cluster.secret(object_name) if is_secret else cluster.config_map(object_name)
    if values is None:
        if not ref.get("optional"):
            kind = "secret" if is_secret else "configmap"
            yield failed(f"the {label} '{object_name}' ({where})", f'{kind} "{object_name}" not found')
        return
    for item in ref.get("items") or []:
        if item.get("key") not in values and not ref.get("optional"):
            kind = "secret" if is_secret else "configmap"
            yield failed(
                f"the key '{item.get('key')}' of the {label} '{object_name}' ({where})",
                f"{kind} references non-existent config key: {item.get('key')}",
            )


def _downward_problems(
    source: Mapping[str, Any], where: str, failed: Callable[[str, str], _Problem]
) -> Iterator[_Problem]:
    for item in source.get("items") or []:
        if "fieldRef" not in item and "resourceFieldRef" not in item:
            yield failed(f"the downward API file '{item.get('path')}' ({where})",
                         "unsupported downward API item")


def _is_socket(path: str) -> bool:
    import stat

    return os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode)


def _container_problems(
    pod: Mapping[str, Any], container: Mapping[str, Any], cluster: ClusterObjects
) -> list[_Problem]:
    """What stops this container from being created: its env's secrets and config maps,
    a command, its volumes, its working directory."""
    problems: list[_Problem] = []
    _, env_problems = _pod_env(pod, container, cluster)
    problems += env_problems
    image = container.get("image", "")
    if not container.get("command"):
        problems.append(_Problem(
            f"the entrypoint of image '{image}' (container '{container.get('name')}' has no command; "
            "an image's own entrypoint cannot be known here)",
            CANNOT_RUN,
            f"image '{image}' runs its own entrypoint, which cannot be known here: give the container a command",
        ))
    volumes = {v.get("name") for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            problems.append(_Problem(
                f"the volume '{mount.get('name')}' mounted at {mount.get('mountPath')} "
                "(the pod has no such volume)",
                CANNOT_RUN, f"volume mount {mount.get('name')!r} names no volume of the pod",
            ))
    workdir = container.get("workingDir")
    if workdir and not os.path.isdir(workdir) and not _under_mount(container, workdir):
        problems.append(_Problem(
            f"the working directory '{workdir}' of container '{container.get('name')}', "
            "which is not on this machine",
            CANNOT_RUN, f"working directory {workdir} is not on this machine",
        ))
    return problems


def _executable_problems(
    pod: Mapping[str, Any], container: Mapping[str, Any], path: str
) -> list[_Problem]:
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv:
        return []
    from airflow_kfx.runtime.python_env import parse_lightweight

    lightweight = parse_lightweight(argv)
    executable = lightweight.run_argv[0] if lightweight is not None else argv[0]
    if _find_executable(executable, path, container, pod) is not None:
        return []
    absolute = os.path.join(container.get("workingDir") or "/", executable)
    if "/" in executable and _under_mount(container, absolute) and _host_path(absolute, container, pod) is None:
        return []  # inside a volume the pod fills itself (an init container's emptyDir): known only then
    image = container.get("image", "")
    return [_Problem(
        f"'{executable}' (from image '{image}'), which is not on this machine",
        IMAGE_NOT_HERE, _not_here_message(executable, image),
    )]


def _not_here_message(executable: str, image: str) -> str:
    # Deliberately free of the words the cncf provider treats as transient pull errors.
    return (
        f'image "{image}" is never pulled here: pods run as commands on this machine, '
        f"and '{executable}' (from image '{image}') is not on this machine"
    )


def _find_executable(
    executable: str, path: str, container: Mapping[str, Any], pod: Mapping[str, Any]
) -> str | None:
    if "/" not in executable:
        return shutil.which(executable, path=path)
    candidate = executable
    if not os.path.isabs(candidate):
        candidate = os.path.join(container.get("workingDir") or "/", candidate)
    host = _host_path(candidate, container, pod) or candidate
    return host if os.path.isfile(host) and os.access(host, os.X_OK) else None


def _under_mount(container: Mapping[str, Any], path: str) -> bool:
    return any(_is_within(path, m.get("mountPath", "")) for m in container.get("volumeMounts") or [])


def _is_within(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def _host_path(path: str, container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """Where ``path`` (as the container sees it) is on this machine, for the volumes whose
    folders are known before the pod runs (claims and host paths); None otherwise."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in sorted(container.get("volumeMounts") or [], key=lambda m: -len(m.get("mountPath", ""))):
        target = mount.get("mountPath", "")
        if not _is_within(path, target):
            continue
        volume = volumes.get(mount.get("name")) or {}
        if "hostPath" in volume:
            folder = volume["hostPath"].get("path", "")
        else:
            return None
        rest = path[len(target.rstrip("/")):].lstrip("/")
        return os.path.join(folder, mount.get("subPath") or "", rest)
    return None


# ---------------------------------------------------------------------------
# Env
# ---------------------------------------------------------------------------

_VAR_NAME_BAD = re.compile(r"[=\x00]")


def _pod_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], cluster: ClusterObjects
) -> tuple[dict[str, str], list[_Problem]]:
    """The container's env as the kubelet makes it: ``envFrom`` in order, then ``env`` in
    order (which wins), each value's ``$(VAR)`` references expanded against what came
    before. Nothing else: the caller adds what a container runtime adds."""
    env: dict[str, str] = {}
    problems: list[_Problem] = []
    namespace = _namespace(pod)
    several = sum(1 for _ in _all_containers(pod)) > 1
    of = f" of container '{container.get('name')}'" if several else ""
    for source in container.get("envFrom") or []:
        is_secret = "secretRef" in source
        ref = source.get("secretRef") if is_secret else source.get("configMapRef")
        if ref is None:
            continue
        name = ref.get("name", "")
        values = _decoded(cluster.secret(name)) if is_secret else cluster.config_map(name)
        if values is None:
            if not ref.get("optional"):
                label, kind = (
                    ("Kubernetes secret", "secret") if is_secret else ("Kubernetes config map", "configmap")
                )
                problems.append(_Problem(f"the {label} '{name}' (all keys as env vars{of})", CONFIG_ERROR,
                                         f'{kind} "{name}" not found'))
            continue
        prefix = source.get("prefix") or ""
        for key, value in values.items():
            if not _VAR_NAME_BAD.search(prefix + key):  # the kubelet skips invalid names
                env[prefix + key] = value
    for variable in container.get("env") or []:
        name = variable.get("name", "")
        source = variable.get("valueFrom")
        if source is None:
            env[name] = expand(str(variable.get("value") or ""), env)
            continue
        value, problem = _value_from(pod, container, source, name, cluster, namespace, of)
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            env[name] = value
    return env, problems


def _value_from(
    pod: Mapping[str, Any], container: Mapping[str, Any], source: Mapping[str, Any], variable: str,
    cluster: ClusterObjects, namespace: str, of: str,
) -> tuple[str | None, _Problem | None]:
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"].get("fieldPath", "")), None
    if "resourceFieldRef" in source:
        return _resource_value(pod, container, source["resourceFieldRef"]), None
    for key, label, kind, title in (
        ("secretKeyRef", "Kubernetes secret", "secret", "Secret"),
        ("configMapKeyRef", "Kubernetes config map", "configmap", "ConfigMap"),
    ):
        if key not in source:
            continue
        ref = source[key]
        name, item = ref.get("name", ""), ref.get("key", "")
        values = _decoded(cluster.secret(name)) if kind == "secret" else cluster.config_map(name)
        if values is None:
            if ref.get("optional"):
                return None, None
            return None, _Problem(f"the {label} '{name}' (key '{item}' as env var {variable}{of})",
                                  CONFIG_ERROR, f'{kind} "{name}" not found')
        if item not in values:
            if ref.get("optional"):
                return None, None
            return None, _Problem(f"the key '{item}' of the {label} '{name}' (as env var {variable}{of})",
                                  CONFIG_ERROR, f"couldn't find key {item} in {title} {namespace}/{name}")
        return values[item], None
    return None, None


def _decoded(values: Mapping[str, bytes] | None) -> dict[str, str] | None:
    # surrogateescape: bytes that are not UTF-8 reach the process unchanged
    return None if values is None else {k: v.decode("utf-8", "surrogateescape") for k, v in values.items()}


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The downward API (``fieldRef``) as Kubernetes fills it, for the pod that runs here;
    a label or annotation the pod does not have is ``""``, as in Kubernetes."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if keyed:
        return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    simple = {
        "metadata.name": metadata.get("name") or "",
        "metadata.namespace": metadata.get("namespace") or "",
        "metadata.uid": metadata.get("uid") or "",
        "spec.nodeName": spec.get("nodeName") or os.uname().nodename,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    return simple.get(path, "")


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")
_FACTORS = {
    None: 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6,
    "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "Pi": 2**50, "Ei": 2**60,
}


def _quantity(text: Any) -> Decimal | None:
    match = _QUANTITY.fullmatch(str(text).strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _FACTORS[match.group(2)]
    except InvalidOperation:
        return None


def _resource_value(pod: Mapping[str, Any], container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """``resourceFieldRef``: the container's limit or request; an unset limit is what this
    machine has (a node's allocatable), an unset request the limit or 0, as in Kubernetes."""
    target = container
    if ref.get("containerName"):
        target = next((c for c, _ in _all_containers(pod) if c.get("name") == ref["containerName"]), container)
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    resources = target.get("resources") or {}
    value = _quantity((resources.get(kind) or {}).get(resource, "")) if kind in ("limits", "requests") else None
    if value is None and kind == "requests":
        value = _quantity((resources.get("limits") or {}).get(resource, "")) or Decimal(0)
    if value is None:
        value = Decimal(_machine_capacity(resource))
    divisor = _quantity(ref.get("divisor") or "1") or Decimal(1)
    return str(math.ceil(value / divisor))


def _machine_capacity(resource: str) -> int:
    if resource == "cpu":
        return os.cpu_count() or 1
    if resource == "memory":
        try:
            with open("/proc/meminfo", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0
    if resource == "ephemeral-storage":
        return shutil.disk_usage("/").total
    return 0


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (env values, command, args): a defined variable is
    replaced, ``$$`` is a literal ``$``, anything else is left as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:end]
                out.append(env[name] if name in env else f"$({name})")
                i = end + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


# ---------------------------------------------------------------------------
# Running a pod
# ---------------------------------------------------------------------------

_TAIL_LINES, _TAIL_BYTES = 80, 2048  # FallbackToLogsOnError, as the kubelet
_MESSAGE_BYTES = 4096  # a termination-message file is read up to this, as the kubelet
_LONG_LINE = 16 * 1024  # the kubelet splits longer lines too


@dataclass(frozen=True)
class _Mount:
    source: str  # on this machine
    target: str  # in the container
    read_only: bool


class _Container:
    """One container of the run: its process, its log tail, how it ended."""

    def __init__(self, spec: Mapping[str, Any], *, init: bool) -> None:
        self.spec = spec
        self.name: str = spec.get("name", "")
        self.init = init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.process: subprocess.Popen[bytes] | None = None
        self.mounts: list[_Mount] = []
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.started_at: datetime | None = None
        self.exit: ContainerExit | None = None
        self.reaped = False  # its first process has been waited for: never signal its group again
        self.done = threading.Event()


class PodRun:
    """One run of a pod. ``run()`` blocks until the pod has ended; ``terminate()`` may be
    called from any other thread (pod deletion)."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        cluster: ClusterObjects,
        observer: PodObserver,
        *,
        extra_env: Mapping[str, Mapping[str, str]] = {},  # noqa: B006 - read only
        scratch_root: str | None = None,
    ) -> None:
        self._pod = pod
        self._spec: Mapping[str, Any] = pod.get("spec") or {}
        self._cluster = cluster
        self._observer = observer
        self._extra_env = extra_env
        self._scratch_root = scratch_root
        self._scratch = ""
        self._lock = threading.Lock()
        self._containers: dict[str, _Container] = {}
        self._stop_at: float | None = None  # monotonic deadline of a terminate(), if any
        self._pod_reason = ""
        self._killer: threading.Timer | None = None
        self._holder = f"{os.getpid()}:{id(self):x}:{time.monotonic_ns():x}"  # in the mount-point registry

    # -- public -------------------------------------------------------------------
    def run(self) -> PodOutcome:
        self._scratch = tempfile.mkdtemp(prefix="kfx-pod-", dir=self._scratch_root)
        deadline = self._active_deadline_timer()
        try:
            return self._run()
        finally:
            if deadline is not None:
                deadline.cancel()
            self._kill_all(signal.SIGKILL)
            for container in list(self._containers.values()):
                if container.process is not None:
                    container.done.wait()
            if self._killer is not None:
                self._killer.cancel()
            _release_mount_points(self._holder)
            shutil.rmtree(self._scratch, ignore_errors=True)

    def terminate(self, grace_seconds: float | None = None) -> None:
        """Stop the pod: SIGTERM to the main (and running init) containers now, sidecars
        once those have ended, SIGKILL to whatever is left when the grace period is over.
        No container starts after this."""
        grace = self._grace() if grace_seconds is None else max(0.0, float(grace_seconds))
        with self._lock:
            stop_at = time.monotonic() + grace
            if self._stop_at is not None and self._stop_at <= stop_at:
                return  # already stopping, at least as soon
            self._stop_at = stop_at
            self._pod_reason = self._pod_reason or "Terminated"
            victims = [c for c in self._containers.values() if not c.sidecar and not c.done.is_set()]
            if self._killer is not None:
                self._killer.cancel()
            self._killer = threading.Timer(grace, self._kill_all, args=(signal.SIGKILL,))
            self._killer.daemon = True
            self._killer.start()
        for container in victims:
            self._signal(container, signal.SIGTERM if grace > 0 else signal.SIGKILL)

    # -- the pod ------------------------------------------------------------------
    def _run(self) -> PodOutcome:
        mounts: dict[str, list[_Mount]] = {}
        try:
            mounts, problem = self._prepare_volumes()
        except OSError as err:  # a volume's folder or files could not be made
            problem = _Problem("", "FailedMount", f"MountVolume.SetUp failed: {err}")
        if problem is not None:
            return PodOutcome("Pending", reason=problem.reason, message=problem.message)
        init_ok = True
        pending = False
        for spec in self._spec.get("initContainers") or []:
            if self._stopping():
                init_ok = False
                break
            container = _Container(spec, init=True)
            self._start(container, mounts)
            if container.sidecar and container.exit is None:
                continue  # left running; the next container starts now
            container.done.wait()
            assert container.exit is not None
            if container.exit.reason in NEVER_STARTED:
                init_ok, pending = False, True
                break
            # An init container must succeed; a sidecar must at least start (one that ends
            # by itself later would be restarted on a cluster: the pod goes on).
            if (container.exit.exit_code != 0 and not container.sidecar) or container.exit.started_at is None:
                init_ok = False
                break
        mains: list[_Container] = []
        if init_ok and not self._stopping():
            mains = [_Container(spec, init=False) for spec in self._spec.get("containers") or []]
            threads = [threading.Thread(target=self._start, args=(c, mounts), daemon=True) for c in mains]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for container in mains:
                container.done.wait()
        self._stop_sidecars()
        return self._outcome(mains, init_ok, pending)

    def _outcome(self, mains: list[_Container], init_ok: bool, pending: bool) -> PodOutcome:
        inits = tuple(
            c.exit for s in self._spec.get("initContainers") or []
            if (c := self._containers.get(s.get("name", ""))) is not None and c.exit is not None and c.init
        )
        exits = tuple(c.exit for c in mains if c.exit is not None)
        pending = pending or any(e.reason in NEVER_STARTED for e in exits)
        reason = self._pod_reason
        message = ""
        if reason == "DeadlineExceeded":
            message = "Pod was active on the node longer than the specified deadline"
        if reason:
            phase = "Failed"
        elif pending:
            phase = "Pending"
        elif init_ok and exits and all(e.exit_code == 0 for e in exits):
            phase = "Succeeded"
        else:
            phase = "Failed"
        return PodOutcome(phase, inits, exits, reason, message)

    def _stopping(self) -> bool:
        with self._lock:
            return self._stop_at is not None

    def _grace(self) -> float:
        value = self._spec.get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE_SECONDS if value is None else max(0, value))

    def _active_deadline_timer(self) -> threading.Timer | None:
        seconds = self._spec.get("activeDeadlineSeconds")
        if not seconds:
            return None

        def exceeded() -> None:
            with self._lock:
                self._pod_reason = "DeadlineExceeded"
            self.terminate()

        timer = threading.Timer(float(seconds), exceeded)
        timer.daemon = True
        timer.start()
        return timer

    def _stop_sidecars(self) -> None:
        """Sidecars end after the main containers, in reverse order, within the grace period."""
        sidecars = [c for c in self._containers.values() if c.sidecar and c.process is not None]
        if not sidecars:
            return
        with self._lock:
            stop_at = self._stop_at if self._stop_at is not None else time.monotonic() + self._grace()
        for container in reversed(sidecars):
            left = stop_at - time.monotonic()
            self._signal(container, signal.SIGTERM if left > 0 else signal.SIGKILL)
            if not container.done.wait(timeout=max(0.0, left)):
                self._signal(container, signal.SIGKILL)
                container.done.wait()

    def _kill_all(self, sig: int) -> None:
        with self._lock:
            containers = list(self._containers.values())
        for container in containers:
            self._signal(container, sig)

    def _signal(self, container: _Container, sig: int) -> None:
        # Under the lock and only before the leader is reaped: a reaped group id may
        # already belong to an unrelated process.
        with self._lock:
            if container.process is None or container.reaped:
                return
            try:
                os.killpg(container.process.pid, sig)  # its own session: the whole container
            except (ProcessLookupError, PermissionError):
                pass

    # -- volumes ------------------------------------------------------------------
    def _prepare_volumes(self) -> tuple[dict[str, list[_Mount]], _Problem | None]:
        """The folder of every volume, then each container's mounts (by container name)."""
        problem = next(iter(_volume_problems(self._pod, self._cluster)), None)
        if problem is not None:
            return {}, problem
        folders: dict[str, tuple[str, bool]] = {}
        for volume in self._spec.get("volumes") or []:
            folders[volume.get("name", "")] = self._volume_folder(volume)
        mounts: dict[str, list[_Mount]] = {}
        for container, _ in _all_containers(self._pod):
            env, _problems = _pod_env(self._pod, container, self._cluster)
            planned = []
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") not in folders:
                    continue  # reported when the container starts
                folder, read_only = folders[mount["name"]]
                sub = mount.get("subPath") or expand(mount.get("subPathExpr") or "", env)
                source = os.path.join(folder, sub) if sub else folder
                if sub and not os.path.exists(source):
                    os.makedirs(source, exist_ok=True)  # the kubelet creates a missing subPath
                planned.append(_Mount(source, mount["mountPath"], read_only or bool(mount.get("readOnly"))))
            # parents before children, so a mount inside another volume lands in it
            mounts[container.get("name", "")] = sorted(planned, key=lambda m: m.target.rstrip("/").count("/"))
        return mounts, None

    def _volume_folder(self, volume: Mapping[str, Any]) -> tuple[str, bool]:
        name = volume.get("name", "")
        own = os.path.join(self._scratch, "volumes", name)
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            folder = self._cluster.claim_folder(claim.get("claimName", ""))
            assert folder is not None  # checked by _volume_problems
            return folder, bool(claim.get("readOnly"))
        if "hostPath" in volume:
            path = volume["hostPath"].get("path", "")
            kind = volume["hostPath"].get("type") or ""
            if kind == "FileOrCreate" and not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            elif kind in ("", "DirectoryOrCreate") and not os.path.exists(path):
                os.makedirs(path, exist_ok=True)
            return path, False
        os.makedirs(own, exist_ok=True)
        if "secret" in volume or "configMap" in volume:
            self._write_keyed(own, volume)
            return own, True
        if "downwardAPI" in volume:
            self._write_downward(own, volume["downwardAPI"])
            return own, True
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode")
            for source in volume["projected"].get("sources") or []:
                if "downwardAPI" in source:
                    self._write_downward(own, source["downwardAPI"], mode)
                else:
                    self._write_keyed(own, source, mode)
            return own, True
        return own, False  # emptyDir, ephemeral: a fresh folder of this pod

    def _write_keyed(self, folder: str, source: Mapping[str, Any], mode: int | None = None) -> None:
        is_secret = "secret" in source
        ref = source["secret"] if is_secret else source["configMap"]
        if is_secret:
            values: Mapping[str, bytes] | None = self._cluster.secret(ref.get("secretName", ""))
        else:
            text = self._cluster.config_map(ref.get("name", ""))
            values = None if text is None else {k: v.encode() for k, v in text.items()}
        if values is None:
            return  # optional and missing: an empty folder
        default_mode = ref.get("defaultMode", mode if mode is not None else 0o644)
        items = ref.get("items")
        chosen = [(i["key"], i.get("path") or i["key"], i.get("mode")) for i in items] if items else [
            (key, key, None) for key in values
        ]
        for key, path, item_mode in chosen:
            if key in values:
                _write_file(folder, path, values[key], default_mode if item_mode is None else item_mode)

    def _write_downward(self, folder: str, source: Mapping[str, Any], mode: int | None = None) -> None:
        default_mode = source.get("defaultMode", mode if mode is not None else 0o644)
        for item in source.get("items") or []:
            if "fieldRef" in item:
                value = field_value(self._pod, item["fieldRef"].get("fieldPath", ""))
            else:
                container = next(
                    (c for c, _ in _all_containers(self._pod)
                     if c.get("name") == item["resourceFieldRef"].get("containerName")), {},
                )
                value = _resource_value(self._pod, container, item["resourceFieldRef"])
            mode_here = item.get("mode")
            mode_of_file = default_mode if mode_here is None else mode_here
            _write_file(folder, item.get("path", ""), value.encode(), mode_of_file)

    # -- one container ------------------------------------------------------------
    def _start(self, container: _Container, mounts: Mapping[str, list[_Mount]]) -> None:
        """Start the container's process (or record why it cannot start). Its end is
        recorded by a waiter thread; ``container.done`` is set then."""
        with self._lock:
            self._containers[container.name] = container
        try:
            launch = self._launch_plan(container, mounts.get(container.name, []))
        except Exception as err:  # e.g. the lightweight component's requirements failed to install
            launch = _Problem(str(err), CANNOT_RUN, str(err))
        if isinstance(launch, _Problem):
            self._ended(container, ContainerExit(container.name, 128, launch.reason, launch.message))
            return
        argv, env, cwd = launch
        failure = ""
        with self._lock:
            process = None
            if self._stop_at is not None:  # terminated meanwhile: never start
                failure = "the pod was terminated before the container started"
            else:
                try:
                    process = subprocess.Popen(
                        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, start_new_session=True,
                    )
                except OSError as err:  # not executable, a bad interpreter line, ...
                    failure = f"cannot run {argv[0]!r}: {err}"
                else:
                    container.process = process
                    container.started_at = _now()
        if process is None:
            self._ended(container, ContainerExit(container.name, 128, CANNOT_RUN, failure))
            return
        self._observer.container_started(container.name, init=container.init)
        pump = threading.Thread(target=self._pump, args=(container,), daemon=True)
        pump.start()
        threading.Thread(target=self._wait, args=(container, pump), daemon=True).start()

    def _launch_plan(
        self, container: _Container, mounts: list[_Mount]
    ) -> tuple[list[str], dict[str, str], str] | _Problem:
        """argv, env and cwd of the container's process, or why it cannot start."""
        spec = container.spec
        problems = _container_problems(self._pod, spec, self._cluster)
        if problems:
            # the kubelet's order: config errors before anything else
            return next((p for p in problems if p.reason == CONFIG_ERROR), problems[0])
        pod_env, _ = _pod_env(self._pod, spec, self._cluster)
        argv = [expand(a, pod_env) for a in (*(spec.get("command") or []), *(spec.get("args") or []))]
        container.mounts = mounts
        env = self._container_env(container, pod_env)
        from airflow_kfx.runtime.python_env import environment_for, parse_lightweight

        lightweight = parse_lightweight(argv)
        if lightweight is not None:
            # Requirements are installed once into a cached venv; run the program directly.
            extra = environment_for(lightweight, lambda line: self._log(container, line))
            bin_dir = extra["PATH"].split(os.pathsep)[0]
            env["PATH"] = bin_dir + os.pathsep + env["PATH"]
            if "VIRTUAL_ENV" in extra:
                env["VIRTUAL_ENV"] = extra["VIRTUAL_ENV"]
            argv = list(lightweight.run_argv)
        found = _find_executable(argv[0], env["PATH"], spec, self._pod) or self._in_own_volume(argv[0], mounts)
        if not found:
            return _Problem("", IMAGE_NOT_HERE, _not_here_message(argv[0], spec.get("image", "")))
        workdir = spec.get("workingDir") or os.path.join(self._scratch, "work", container.name)
        if not spec.get("workingDir"):
            os.makedirs(workdir, exist_ok=True)
        env.update(self._extra_env.get(container.name) or {})
        if not mounts:
            return argv, env, workdir
        if not can_mount():
            targets = ", ".join(m.target for m in mounts)
            return _Problem("", CANNOT_RUN, f"this pod mounts volumes at {targets}; {_MOUNT_MESSAGE}")
        _claim_mount_points(mounts, self._holder)
        return _mount_argv(mounts, workdir, argv, keep_oldpwd="OLDPWD" in env), env, self._scratch

    def _in_own_volume(self, executable: str, mounts: list[_Mount]) -> bool:
        """An executable inside one of the pod's own volumes (an emptyDir an init container filled)."""
        for mount in sorted(mounts, key=lambda m: -len(m.target)):
            if _is_within(executable, mount.target):
                host = os.path.join(mount.source, executable[len(mount.target.rstrip("/")):].lstrip("/"))
                return os.path.isfile(host) and os.access(host, os.X_OK)
        return False

    def _container_env(self, container: _Container, pod_env: Mapping[str, str]) -> dict[str, str]:
        """The pod's env plus what a container runtime adds, and nothing of this process's."""
        home = os.path.join(self._scratch, "home")
        tmp = os.path.join(self._scratch, "tmp")
        os.makedirs(home, exist_ok=True)
        os.makedirs(tmp, exist_ok=True)
        env = {
            "PATH": default_path(),
            "HOSTNAME": (self._pod.get("metadata") or {}).get("name") or "pod",
            "HOME": home,
            "TMPDIR": tmp,
            "LANG": "C.UTF-8",
        }
        env.update(pod_env)
        return env

    def _pump(self, container: _Container) -> None:
        """The container's output, line by line, to its log."""
        assert container.process is not None and container.process.stdout is not None
        fd = container.process.stdout.fileno()
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._log(container, line.decode("utf-8", "replace"))
            while len(pending) > _LONG_LINE:
                self._log(container, pending[:_LONG_LINE].decode("utf-8", "replace"))
                pending = pending[_LONG_LINE:]
        if pending:
            self._log(container, pending.decode("utf-8", "replace"))

    def _log(self, container: _Container, line: str) -> None:
        container.tail.append(line)
        try:
            self._observer.log(container.name, line)
        except Exception:  # an observer's failure must not stop the container's output
            pass

    def _wait(self, container: _Container, pump: threading.Thread) -> None:
        process = container.process
        assert process is not None
        try:
            # Wait without reaping: while the leader is a zombie its process group id
            # cannot be reused, so the SIGKILL below reaches only this container.
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        # As when a container's first process exits: whatever it left behind is killed.
        self._signal(container, signal.SIGKILL)
        with self._lock:
            container.reaped = True
        code = process.wait()
        pump.join(timeout=5)  # a process that left the session may still hold the pipe
        if process.stdout is not None and not pump.is_alive():
            process.stdout.close()
        code = 128 - code if code < 0 else code
        self._ended(container, ContainerExit(
            container.name, code, COMPLETED if code == 0 else ERROR, self._termination_message(container, code),
            container.started_at, _now(),
        ))

    def _termination_message(self, container: _Container, code: int) -> str:
        spec = container.spec
        path = spec.get("terminationMessagePath") or "/dev/termination-log"
        message = ""
        for mount in sorted(container.mounts, key=lambda m: -len(m.target)):
            if _is_within(path, mount.target):
                host = os.path.join(mount.source, path[len(mount.target.rstrip("/")):].lstrip("/"))
                try:
                    with open(host, "rb") as handle:
                        message = handle.read(_MESSAGE_BYTES).decode("utf-8", "replace")
                except OSError:
                    pass
                break
        if not message and code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            text = "\n".join(container.tail)
            encoded = text.encode()
            message = encoded[-_TAIL_BYTES:].decode("utf-8", "replace") if len(encoded) > _TAIL_BYTES else text
        return message

    def _ended(self, container: _Container, exit: ContainerExit) -> None:
        container.exit = exit
        try:
            self._observer.container_ended(exit, init=container.init)
        finally:
            container.done.set()


def _mount_argv(mounts: Sequence[_Mount], workdir: str, argv: Sequence[str], *, keep_oldpwd: bool) -> list[str]:
    """argv running ``argv`` in ``workdir`` with ``mounts`` in a private mount namespace.

    The mount points on this machine exist already (:func:`_claim_mount_points`); a
    mount point inside another volume is made in the namespace, after that volume is
    mounted, so it lands in the volume. Only absolute tool paths are used, so the pod's
    own PATH cannot change what sets it up, and no shell variable is assigned, so the
    pod's env reaches the command unchanged.
    """
    tools = {tool: shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") or tool
             for tool in ("unshare", "mount", "mkdir", "dirname", "sh")}
    q = {tool: shlex.quote(path) for tool, path in tools.items()}
    script = (
        "set -e\n"
        'while [ "$1" != -- ]; do\n'
        f'  if [ -d "$1" ]; then {q["mkdir"]} -p "$2"; '
        f'elif [ ! -e "$2" ]; then {q["mkdir"]} -p "$({q["dirname"]} "$2")"; : > "$2"; fi\n'
        f'  {q["mount"]} --bind "$1" "$2"\n'
        f'  if [ "$3" = ro ]; then {q["mount"]} -o remount,bind,ro "$2"; fi\n'
        "  shift 3\n"
        "done\n"
        "shift\n"
        f'{q["mkdir"]} -p "$1"; cd "$1"; shift\n'
        + ("" if keep_oldpwd else "unset OLDPWD\n")  # cd's own; PWD is what a shell in the container sets too
        + 'exec "$@"\n'
    )
    prefix = [
        tools["unshare"], "--mount", "--propagation", "private", "--", tools["sh"], "-c", script, "kfx-mounts",
    ]
    for mount in mounts:
        prefix += [mount.source, mount.target, "ro" if mount.read_only else "rw"]
    return [*prefix, "--", workdir, *argv]


# Mount points this machine did not have are created for the pods that need them, and
# removed when no pod uses them any more. Several pods may use one at once (two tasks
# both mounting /s3/bucket), in this process or another (Airflow workers, the API double
# of the tests), so they are reference-counted in one registry per machine, under an
# exclusive file lock. Removing a mount point while another pod's namespace has a mount
# on it would silently detach that pod's volume (Linux lazily unmounts the mounts of
# other namespaces whose mount point is removed), and a pod between its mkdir and its
# mount would fail: a pod registers a mount point before creating or using it, and it is
# removed only by the last holder (holders whose process died do not count).
_MOUNT_POINTS = "/tmp/kfx-mount-points.json"  # fixed: every process must find the same one


@contextlib.contextmanager
def _mount_point_registry() -> Iterator[dict[str, Any]]:
    import fcntl
    import json

    with open(_MOUNT_POINTS + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            with open(_MOUNT_POINTS, encoding="utf-8") as handle:
                registry = json.load(handle)
        except (OSError, ValueError):
            registry = {}
        yield registry
        with open(_MOUNT_POINTS + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(registry, handle)
        os.replace(_MOUNT_POINTS + ".tmp", _MOUNT_POINTS)


def _claim_mount_points(mounts: Sequence[_Mount], holder: str) -> None:
    """Register ``holder`` on the mount points of ``mounts`` on this machine (not those
    inside another of the mounts: they are made inside that volume), creating missing ones."""
    outer = [m for m in mounts if not any(o is not m and _is_within(m.target, o.target) for o in mounts)]
    with _mount_point_registry() as registry:
        for mount in outer:
            entry = registry.setdefault(mount.target, {"created": "", "holders": []})
            if not os.path.lexists(mount.target):
                top = mount.target
                while not os.path.lexists(os.path.dirname(top)):
                    top = os.path.dirname(top)
                # inside a folder made for another mount point: that folder goes with the last of them
                made = [e["created"] for e in registry.values()
                        if e["created"] and _is_within(top, e["created"])]
                entry["created"] = entry["created"] or min(made + [top], key=len)
                if os.path.isdir(mount.source):
                    os.makedirs(mount.target)
                else:  # a file mounted alone (a subPath): its mount point is a file
                    os.makedirs(os.path.dirname(mount.target), exist_ok=True)
                    open(mount.target, "a").close()
            if holder not in entry["holders"]:
                entry["holders"].append(holder)


def _release_mount_points(holder: str) -> None:
    """Unregister ``holder``; remove the mount points nobody holds that a pod created."""
    if not os.path.exists(_MOUNT_POINTS):
        return
    with _mount_point_registry() as registry:
        for target, entry in list(registry.items()):
            entry["holders"] = [h for h in entry["holders"] if h != holder and _holder_alive(h)]
            if entry["holders"]:
                continue
            del registry[target]
            path, top = target, entry.get("created") or ""
            while top and _is_within(path, top):
                if path != target and path in registry:
                    break  # another pod's mount point: never removed under it
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.rmdir(path)  # only ever an empty folder
                    elif os.path.getsize(path) == 0:
                        os.remove(path)
                    else:
                        break
                except OSError:
                    break
                path = os.path.dirname(path)


def _holder_alive(holder: str) -> bool:
    try:
        os.kill(int(holder.split(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _write_file(folder: str, relative: str, data: bytes, mode: int) -> None:
    path = os.path.normpath(os.path.join(folder, relative))
    if not _is_within(path, folder):  # the API refuses '..' paths; never write outside
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode & 0o777)


def _now() -> datetime:
    return datetime.now(timezone.utc)
