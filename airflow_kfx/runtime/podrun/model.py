"""What a pod run is told and tells: the cluster's objects, the observer, how containers
and the pod end; and the vocabulary the other modules share (problems, secrets and
config maps, the pod's containers)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Problem:
    """Something a pod needs that cannot be provided here, said for each audience."""

    need: str  # a human sentence (a noun phrase): "the Kubernetes secret 'x' (volume at /p)"
    reason: str  # kubelet style: FailedMount / FailedScheduling / a ContainerExit reason
    message: str  # kubelet style: 'secret "x" not found'


@dataclass(frozen=True)
class ObjectKind:
    """A secret or a config map: the fields a pod spec names it with, and the words the
    kubelet and our messages name it with."""

    volume_key: str  # a volume (or projected source) of this kind: {"secret": {...}}
    volume_name_field: str  # the object's name in it: secretName / name
    env_from_key: str  # envFrom: secretRef / configMapRef
    env_key: str  # env[].valueFrom: secretKeyRef / configMapKeyRef
    label: str  # in a need: "the Kubernetes secret 'x'"
    kind: str  # in the kubelet's messages: 'secret "x" not found'
    title: str  # in the kubelet's missing-key message: "couldn't find key k in Secret ns/x"

    def text(self, cluster: ClusterObjects, name: str) -> Mapping[str, str] | None:
        """The object's values as an env gets them; None if it does not exist."""
        if self is not SECRET:
            return cluster.config_map(name)
        values = cluster.secret(name)
        if values is None:
            return None
        # surrogateescape: bytes that are not UTF-8 reach the process unchanged
        return {k: v.decode("utf-8", "surrogateescape") for k, v in values.items()}

    def data(self, cluster: ClusterObjects, name: str) -> Mapping[str, bytes] | None:
        """The object's values as a volume's files hold them; None if it does not exist."""
        if self is SECRET:
            return cluster.secret(name)
        text = cluster.config_map(name)
        return None if text is None else {k: v.encode() for k, v in text.items()}


SECRET = ObjectKind(
    "secret", "secretName", "secretRef", "secretKeyRef", "Kubernetes secret", "secret", "Secret"
)
CONFIG_MAP = ObjectKind(
    "configMap", "name", "configMapRef", "configMapKeyRef", "Kubernetes config map", "configmap", "ConfigMap"
)


def keyed_source(source: Mapping[str, Any]) -> tuple[ObjectKind, Mapping[str, Any], str]:
    """A secret or configMap volume (or projected source): its kind, its reference, the object's name."""
    kind = SECRET if SECRET.volume_key in source else CONFIG_MAP
    ref = source[kind.volume_key]
    return kind, ref, ref.get(kind.volume_name_field, "")


def all_containers(pod: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """Every container of the pod, init containers first, each with whether it is one."""
    spec = pod.get("spec") or {}
    for container in spec.get("initContainers") or []:
        yield container, True
    for container in spec.get("containers") or []:
        yield container, False


def container_named(pod: Mapping[str, Any], name: Any) -> Mapping[str, Any] | None:
    return next((c for c, _ in all_containers(pod) if c.get("name") == name), None)


def pod_namespace(pod: Mapping[str, Any]) -> str:
    return (pod.get("metadata") or {}).get("namespace") or "default"
