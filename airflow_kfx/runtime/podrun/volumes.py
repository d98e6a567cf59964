"""A pod's volumes as folders on this machine, and where a container's paths are on it.

emptyDir and ephemeral volumes are fresh folders of the pod; a claim is the folder the
cluster gives; a host path is itself; secrets, config maps and the downward API are
files written into a folder of the pod. Each container then gets its :class:`Mount`
list, bind-mounted by :mod:`.mounts` when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_kfx.runtime.podrun.env import expand, field_value, pod_env, resource_value
from airflow_kfx.runtime.podrun.model import ClusterObjects, all_containers, container_named, keyed_source
from airflow_kfx.runtime.podrun.mounts import Mount, is_within


def prepare_volumes(pod: Mapping[str, Any], cluster: ClusterObjects, scratch: str) -> dict[str, list[Mount]]:
    """The folder of every volume (under ``scratch`` when the pod owns it), then each
    container's mounts, by container name. The pod's volumes must have no problems
    (:func:`.needs.volume_problems`); OSError when a folder or file cannot be made."""
    folders: dict[str, tuple[str, bool]] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        folders[volume.get("name", "")] = _volume_folder(pod, cluster, scratch, volume)
    mounts: dict[str, list[Mount]] = {}
    for container, _ in all_containers(pod):
        env, _problems = pod_env(pod, container, cluster)
        planned = []
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in folders:
                continue  # reported when the container starts
            folder, read_only = folders[mount["name"]]
            sub = mount.get("subPath") or expand(mount.get("subPathExpr") or "", env)
            source = os.path.join(folder, sub) if sub else folder
            if sub and not os.path.exists(source):
                os.makedirs(source, exist_ok=True)  # the kubelet creates a missing subPath
            planned.append(Mount(source, mount["mountPath"], read_only or bool(mount.get("readOnly"))))
        # parents before children, so a mount inside another volume lands in it
        mounts[container.get("name", "")] = sorted(planned, key=lambda m: m.target.rstrip("/").count("/"))
    return mounts


def _volume_folder(
    pod: Mapping[str, Any], cluster: ClusterObjects, scratch: str, volume: Mapping[str, Any]
) -> tuple[str, bool]:
    """The volume's folder and whether it is mounted read-only."""
    name = volume.get("name", "")
    own = os.path.join(scratch, "volumes", name)
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]
        folder = cluster.claim_folder(claim.get("claimName", ""))
        assert folder is not None  # checked by needs.volume_problems
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
        _write_keyed(cluster, own, volume)
        return own, True
    if "downwardAPI" in volume:
        _write_downward(pod, own, volume["downwardAPI"])
        return own, True
    if "projected" in volume:
        mode = volume["projected"].get("defaultMode")
        for source in volume["projected"].get("sources") or []:
            if "downwardAPI" in source:
                _write_downward(pod, own, source["downwardAPI"], mode)
            else:
                _write_keyed(cluster, own, source, mode)
        return own, True
    return own, False  # emptyDir, ephemeral: a fresh folder of this pod


def _write_keyed(
    cluster: ClusterObjects, folder: str, source: Mapping[str, Any], projected_mode: int | None = None
) -> None:
    """A secret's or config map's keys (all, or the chosen ``items``) as files."""
    kind, ref, object_name = keyed_source(source)
    values = kind.data(cluster, object_name)
    if values is None:
        return  # optional and missing: an empty folder
    items = ref.get("items")
    chosen = [(i["key"], i.get("path") or i["key"], i.get("mode")) for i in items] if items else [
        (key, key, None) for key in values
    ]
    for key, path, item_mode in chosen:
        if key in values:
            _write_file(folder, path, values[key], _file_mode(item_mode, ref, projected_mode))


def _write_downward(
    pod: Mapping[str, Any], folder: str, source: Mapping[str, Any], projected_mode: int | None = None
) -> None:
    """The downward API's items as files."""
    for item in source.get("items") or []:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"].get("fieldPath", ""))
        else:
            ref = item["resourceFieldRef"]
            value = resource_value(pod, container_named(pod, ref.get("containerName")) or {}, ref)
        mode = _file_mode(item.get("mode"), source, projected_mode)
        _write_file(folder, item.get("path", ""), value.encode(), mode)


def _file_mode(item_mode: int | None, source: Mapping[str, Any], projected_mode: int | None) -> int:
    """An item's own mode, else its source's defaultMode, else the projected volume's, else 0644."""
    default_mode = source.get("defaultMode", projected_mode if projected_mode is not None else 0o644)
    return default_mode if item_mode is None else item_mode


def _write_file(folder: str, relative: str, data: bytes, mode: int) -> None:
    path = os.path.normpath(os.path.join(folder, relative))
    if not is_within(path, folder):  # the API refuses '..' paths; never write outside
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode & 0o777)


# ---------------------------------------------------------------------------
# Where a container's path is on this machine
# ---------------------------------------------------------------------------


def under_mount(container: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` (as the container sees it) is inside one of its volumes."""
    return any(is_within(path, m.get("mountPath", "")) for m in container.get("volumeMounts") or [])


def host_path(path: str, container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """Where ``path`` (as the container sees it) is on this machine, for the volumes whose
    folders are known before the pod runs (host paths); None otherwise."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in sorted(container.get("volumeMounts") or [], key=lambda m: -len(m.get("mountPath", ""))):
        target = mount.get("mountPath", "")
        if not is_within(path, target):
            continue
        volume = volumes.get(mount.get("name")) or {}
        if "hostPath" in volume:
            folder = volume["hostPath"].get("path", "")
        else:
            return None
        return os.path.join(folder, mount.get("subPath") or "", _below(path, target))
    return None


def mounted_host_path(mounts: Sequence[Mount], path: str) -> str | None:
    """Where ``path`` (as the container sees it) is on this machine, through the innermost
    of the container's ``mounts``; None when it is in none of them."""
    for mount in sorted(mounts, key=lambda m: -len(m.target)):
        if is_within(path, mount.target):
            return os.path.join(mount.source, _below(path, mount.target))
    return None


def _below(path: str, target: str) -> str:
    """``path`` relative to the mount point ``target`` that contains it."""
    return path[len(target.rstrip("/")):].lstrip("/")
