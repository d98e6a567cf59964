"""What a pod needs that cannot be provided here, found before it runs.

:func:`pod_needs` says it all at once, as sentences, so a task can fail with every need
named; :func:`volume_problems` and :func:`container_problems` say it the kubelet's way
too (reason and message), for the pod run that meets them.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from airflow_kfx.runtime.podrun.env import default_path, pod_env
from airflow_kfx.runtime.podrun.model import (
    CANNOT_RUN,
    ClusterObjects,
    Problem,
    all_containers,
    keyed_source,
)
from airflow_kfx.runtime.podrun.mounts import can_mount
from airflow_kfx.runtime.podrun.volumes import host_path, under_mount


def pod_needs(pod: Mapping[str, Any], cluster: ClusterObjects) -> list[str]:
    """Everything the pod needs that cannot be provided here, as sentences (empty: it can run)."""
    needs = [problem.need for problem in volume_problems(pod, cluster)]
    for container, _ in all_containers(pod):
        needs += [problem.need for problem in container_problems(pod, container, cluster)]
        env = {v["name"]: str(v.get("value", "")) for v in container.get("env") or [] if "valueFrom" not in v}
        missing = _missing_executable(pod, container, env.get("PATH") or default_path())
        if missing:
            needs.append(missing)
    if any(c.get("volumeMounts") for c, _ in all_containers(pod)) and not can_mount():
        targets = sorted({m["mountPath"] for c, _ in all_containers(pod) for m in c.get("volumeMounts") or []})
        needs.append(
            f"a private mount namespace for the volumes at {', '.join(targets)} "
            "(needs root and util-linux's 'unshare')"
        )
    return list(dict.fromkeys(needs))  # each once, in order


def volume_problems(pod: Mapping[str, Any], cluster: ClusterObjects) -> Iterator[Problem]:
    """What stops the pod's volumes from being set up, volume by volume (a run stops at the first)."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        paths = _mount_paths(pod, name)
        where = f"volume at {', '.join(paths)}" if paths else f"volume '{name}'"
        yield from _source_problems(volume, name, where, cluster)


def _mount_paths(pod: Mapping[str, Any], volume: str) -> list[str]:
    return [
        m["mountPath"]
        for c, _ in all_containers(pod)
        for m in c.get("volumeMounts") or []
        if m.get("name") == volume
    ]


def _source_problems(
    volume: Mapping[str, Any], name: str, where: str, cluster: ClusterObjects
) -> Iterator[Problem]:
    def mount_failed(need: str, message: str) -> Problem:
        return Problem(need, "FailedMount", f'MountVolume.SetUp failed for volume "{name}" : {message}')

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
            yield Problem(
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
    source: Mapping[str, Any], where: str, cluster: ClusterObjects, failed: Callable[[str, str], Problem]
) -> Iterator[Problem]:
    kind, ref, object_name = keyed_source(source)
    values = kind.text(cluster, object_name)
    if values is None:
        if not ref.get("optional"):
            yield failed(f"the {kind.label} '{object_name}' ({where})",
                         f'{kind.kind} "{object_name}" not found')
        return
    for item in ref.get("items") or []:
        if item.get("key") not in values and not ref.get("optional"):
            yield failed(
                f"the key '{item.get('key')}' of the {kind.label} '{object_name}' ({where})",
                f"{kind.kind} references non-existent config key: {item.get('key')}",
            )


def _downward_problems(
    source: Mapping[str, Any], where: str, failed: Callable[[str, str], Problem]
) -> Iterator[Problem]:
    for item in source.get("items") or []:
        if "fieldRef" not in item and "resourceFieldRef" not in item:
            yield failed(f"the downward API file '{item.get('path')}' ({where})",
                         "unsupported downward API item")


def _is_socket(path: str) -> bool:
    return os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode)


def container_problems(
    pod: Mapping[str, Any], container: Mapping[str, Any], cluster: ClusterObjects
) -> list[Problem]:
    """What stops this container from being created: its env's secrets and config maps,
    a command, its volumes, its working directory."""
    problems: list[Problem] = []
    _, env_problems = pod_env(pod, container, cluster)
    problems += env_problems
    image = container.get("image", "")
    if not container.get("command"):
        problems.append(Problem(
            f"the entrypoint of image '{image}' (container '{container.get('name')}' has no command; "
            "an image's own entrypoint cannot be known here)",
            CANNOT_RUN,
            f"image '{image}' runs its own entrypoint, which cannot be known here: give the container a command",
        ))
    volumes = {v.get("name") for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            problems.append(Problem(
                f"the volume '{mount.get('name')}' mounted at {mount.get('mountPath')} "
                "(the pod has no such volume)",
                CANNOT_RUN, f"volume mount {mount.get('name')!r} names no volume of the pod",
            ))
    workdir = container.get("workingDir")
    if workdir and not os.path.isdir(workdir) and not under_mount(container, workdir):
        problems.append(Problem(
            f"the working directory '{workdir}' of container '{container.get('name')}', "
            "which is not on this machine",
            CANNOT_RUN, f"working directory {workdir} is not on this machine",
        ))
    return problems


def _missing_executable(pod: Mapping[str, Any], container: Mapping[str, Any], path: str) -> str | None:
    """The need for the container's executable when it is not on this machine (with ``path``
    its PATH), or None. One in a volume the pod fills itself is known only when it runs."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv:
        return None
    # Imported where used: at module level this package imports only the standard library.
    from airflow_kfx.runtime.python_env import parse_lightweight

    lightweight = parse_lightweight(argv)
    executable = lightweight.run_argv[0] if lightweight is not None else argv[0]
    if find_executable(executable, path, container, pod) is not None:
        return None
    absolute = os.path.join(container.get("workingDir") or "/", executable)
    if "/" in executable and under_mount(container, absolute) and host_path(absolute, container, pod) is None:
        return None  # inside a volume the pod fills itself (an init container's emptyDir): known only then
    return f"'{executable}' (from image '{container.get('image', '')}'), which is not on this machine"


def find_executable(
    executable: str, path: str, container: Mapping[str, Any], pod: Mapping[str, Any]
) -> str | None:
    """Where the container's ``executable`` is on this machine (searched on ``path``
    without a slash); None if it is not there or not executable."""
    if "/" not in executable:
        return shutil.which(executable, path=path)
    candidate = executable
    if not os.path.isabs(candidate):
        candidate = os.path.join(container.get("workingDir") or "/", candidate)
    host = host_path(candidate, container, pod) or candidate
    return host if is_executable_file(host) else None


def is_executable_file(path: str | None) -> bool:
    return path is not None and os.path.isfile(path) and os.access(path, os.X_OK)
