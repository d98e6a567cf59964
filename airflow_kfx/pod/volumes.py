"""Adding volumes and mounts to a pod under valid, unique names.

KFP names a pod volume after its source (the Secret, ConfigMap or PVC name, or
the name given in the spec). Those names need not be DNS-1123 labels (a PVC name
may contain dots, a Secret name may be 253 characters long) and two sources may
share one, which Kubernetes rejects. So each volume gets a sanitised, de-duplicated
name here, and :class:`PodVolumes` remembers which KFP name became which pod
volume, so that init containers can mount them by the KFP name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import V1Container, V1PodSpec, V1Volume

from airflow_kfx.exceptions import TaskRuntimeError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_LABEL = 63


def volume_name(wanted: str, taken: set[str]) -> str:
    """A DNS-1123 label derived from ``wanted`` that is not in ``taken``."""
    base = re.sub(r"[^a-z0-9-]+", "-", wanted.lower()).strip("-")[:_MAX_LABEL].rstrip("-") or "volume"
    name, counter = base, 2
    while name in taken:
        suffix = f"-{counter}"
        name = base[: _MAX_LABEL - len(suffix)].rstrip("-") + suffix
        counter += 1
    return name


class PodVolumes:
    """The volumes of one pod spec being patched, indexed by their KFP names."""

    def __init__(self, spec: V1PodSpec) -> None:
        spec.volumes = list(spec.volumes or [])
        self._spec = spec
        self._by_kfp_name: dict[str, str] = {}

    def add(self, kfp_name: str, volume: V1Volume, *, shareable: bool = False) -> str:
        """Add ``volume`` (its ``name`` is ignored); return the pod volume name.

        ``shareable`` sources (a Secret, ConfigMap or PVC) reuse an identical
        existing volume, so one PVC mounted at two paths is one volume; two
        emptyDirs are two volumes even when configured alike.
        """
        if shareable:
            wanted = _source(volume)
            for existing in self._spec.volumes:
                if _source(existing) == wanted:
                    self._by_kfp_name.setdefault(kfp_name, existing.name)
                    return existing.name
        volume.name = volume_name(kfp_name, {v.name for v in self._spec.volumes})
        self._spec.volumes.append(volume)
        self._by_kfp_name.setdefault(kfp_name, volume.name)
        return volume.name

    def pod_name_of(self, kfp_name: str) -> str:
        """The pod volume an init container means by ``kfp_name``."""
        if kfp_name in self._by_kfp_name:
            return self._by_kfp_name[kfp_name]
        if any(v.name == kfp_name for v in self._spec.volumes):
            return kfp_name  # a volume of the base pod
        raise TaskRuntimeError(
            f"an init container mounts volume {kfp_name!r}, which no emptyDirMounts, pvcMount, "
            "genericEphemeralVolume, secret or config map volume of this task defines"
        )


def mount(container: V1Container, name: str, mount_path: str, sub_path: str | None = None) -> None:
    """Mount volume ``name`` at ``mount_path``; two mounts at one path are an error."""
    from kubernetes.client import V1VolumeMount
    mounts = container.volume_mounts = list(container.volume_mounts or [])
    for existing in mounts:
        if existing.mount_path == mount_path:
            raise TaskRuntimeError(
                f"two volumes are mounted at {mount_path!r} in container {container.name!r} "
                f"({existing.name!r} and {name!r}); use different mount paths"
            )
    mounts.append(V1VolumeMount(name=name, mount_path=mount_path, sub_path=sub_path or None))


def _source(volume: V1Volume) -> dict:
    source = volume.to_dict()
    source.pop("name", None)
    return source
