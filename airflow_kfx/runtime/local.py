"""The ``local`` runtime: run a pod's main container command as a subprocess.

It receives the very V1Pod the ``kubernetes`` runtime would submit and runs its
main container's command + args with the container's env. Volumes map to local
folders (a PVC to ``<AIRFLOW_HOME>/kfx/volumes/<claim>``, an emptyDir or ephemeral
volume to a fresh folder), bind-mounted at the pod's mount paths inside a private
mount namespace, so component code that writes ``/data/x`` writes the volume.
What only a cluster provides (secrets, config maps, a PVC that no task created,
an image's own entrypoint) makes the task fail with a message naming every such
need — never run silently without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError

# Bind-mount each (source, target) pair, then run the command (in `unshare --mount`).
_MOUNT_SCRIPT = """set -e
count=$1; shift
while [ "$count" -gt 0 ]; do mount --bind "$1" "$2"; shift 2; count=$((count - 1)); done
exec "$@"
"""


def local_volume_root() -> str:
    """Where PVCs and empty dirs live for the local runtime."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "kfx", "volumes")


@dataclass(frozen=True)
class _Mount:
    source: str  # a local folder
    target: str  # the pod's mount path


def _plan_volumes(pod: Any, container: Any, scratch: str) -> tuple[list[_Mount], list[str]]:
    """Local folders for the container's volume mounts, and what cannot be provided."""
    from airflow_kfx.pod.builder import ARTIFACT_VOLUME_NAME

    mounts: list[_Mount] = []
    needs: list[str] = []
    for mount in container.volume_mounts or []:
        volume = next((v for v in pod.spec.volumes or [] if v.name == mount.name), None)
        if volume is None or volume.name == ARTIFACT_VOLUME_NAME:  # the pipeline root: local already
            continue
        at = f" at {mount.mount_path}"
        if volume.secret is not None:
            needs.append(f"the Kubernetes secret '{volume.secret.secret_name}' (volume{at})")
        elif volume.config_map is not None:
            needs.append(f"the Kubernetes config map '{volume.config_map.name}' (volume{at})")
        elif volume.persistent_volume_claim is not None:
            claim = volume.persistent_volume_claim.claim_name
            folder = os.path.join(local_volume_root(), claim)
            if not os.path.isdir(folder):
                needs.append(
                    f"the PersistentVolumeClaim '{claim}'{at} (no task of this run created it; "
                    f"create the folder {folder} to stand in for it)"
                )
            else:
                mounts.append(_Mount(os.path.join(folder, mount.sub_path or ""), mount.mount_path))
        elif volume.empty_dir is not None or volume.ephemeral is not None:
            folder = os.path.join(scratch, "volumes", volume.name)
            os.makedirs(folder, exist_ok=True)
            mounts.append(_Mount(folder, mount.mount_path))
        else:
            needs.append(f"the volume '{volume.name}'{at}")
    for variable in container.env or []:
        source = variable.value_from
        if source is None:
            continue
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            needs.append(f"the Kubernetes secret '{ref.name}' (key '{ref.key}' as env var {variable.name})")
        elif source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            needs.append(f"the Kubernetes config map '{ref.name}' (key '{ref.key}' as env var {variable.name})")
    return mounts, needs


def _mount_wrapper(mounts: list[_Mount]) -> tuple[list[str], list[str]]:
    """argv prefix running a command with ``mounts`` in a private mount namespace,
    and the mount points it had to create (removed again afterwards)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        targets = ", ".join(m.target for m in mounts)
        raise TaskRuntimeError(
            f"this task mounts volumes at {targets}; the local runtime maps them to local folders "
            "with a private mount namespace, which needs root and util-linux's 'unshare'; "
            "run as root or use the kubernetes runtime"
        )
    created: list[str] = []
    for mount in mounts:
        if not os.path.isdir(mount.target):
            parent = mount.target
            while not os.path.exists(os.path.dirname(parent)) and parent != "/":
                parent = os.path.dirname(parent)
            os.makedirs(mount.target, exist_ok=True)
            created.append(mount.target if parent == mount.target else parent)
    prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _MOUNT_SCRIPT, "kfx-mounts", str(len(mounts))]
    for mount in mounts:
        prefix += [mount.source, mount.target]
    return prefix, created


def run_pod_locally(
    pod: Any,
    *,
    container_name: str = "base",
    log: Callable[[str], None] = print,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Run the pod's main container command; raise TaskRuntimeError on failure."""
    container = next((c for c in pod.spec.containers if c.name == container_name), None)
    if container is None:
        raise TaskRuntimeError(f"the pod has no container named '{container_name}'")
    scratch = tempfile.mkdtemp(prefix="kfx-task-")
    mounts, needs = _plan_volumes(pod, container, scratch)
    if needs:
        raise TaskRuntimeError(
            "the local runtime cannot provide what this task needs from a Kubernetes cluster: "
            + "; ".join(needs) + ". Use the kubernetes runtime."
        )
    argv = [*(container.command or []), *(container.args or [])]
    lightweight_env: dict[str, str] = {}
    from airflow_kfx.runtime.python_env import environment_for, parse_lightweight

    lightweight = parse_lightweight(argv)
    if lightweight is not None:
        # Requirements are installed once into a cached venv; run the program directly.
        lightweight_env = environment_for(lightweight, log)
        argv = list(lightweight.run_argv)
    if not argv:
        raise TaskRuntimeError(
            f"image '{container.image}' runs its own entrypoint, which the local runtime cannot know; "
            "use the kubernetes runtime"
        )
    executable = argv[0]
    if shutil.which(executable, path=lightweight_env.get("PATH")) is None and not os.path.isfile(executable):
        raise TaskRuntimeError(
            f"'{executable}' (from image '{container.image}') is not on this machine; "
            "install it or use the kubernetes runtime"
        )
    env = dict(os.environ)
    for variable in container.env or []:
        if variable.value_from is None:
            env[variable.name] = variable.value or ""
        elif variable.value_from.field_ref is not None:
            env[variable.name] = _field_value(pod, variable.value_from.field_ref.field_path)
    env.update(lightweight_env)
    env.update(extra_env or {})
    created: list[str] = []
    if mounts:
        prefix, created = _mount_wrapper(mounts)
        for mount in mounts:
            log(f"local runtime: {mount.target} is the folder {mount.source}")
        argv = [*prefix, *argv]
    workdir = container.working_dir or scratch
    log(f"local runtime: running {executable!r} in {workdir}")
    try:
        code, tail = _run(argv, workdir, env, log)
    finally:
        for path in reversed(created):  # mount points this task made on the host
            _remove_empty_tree(path)
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise TaskRuntimeError(f"the task's command exited with code {code}; last output:\n" + "\n".join(tail))


def _field_value(pod: Any, path: str) -> str:
    """The downward API (``fieldRef``) as Kubernetes fills it, for the pod that runs here;
    a label or annotation the pod does not have is ``""``, as in Kubernetes."""
    import re

    metadata = pod.metadata
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if keyed:
        values = (metadata.labels if keyed.group(1) == "labels" else metadata.annotations) or {}
        return str(values.get(keyed.group(2), ""))
    simple = {
        "metadata.name": metadata.name or "",
        "metadata.namespace": metadata.namespace or "",
        "metadata.uid": "",
        "spec.nodeName": os.uname().nodename,
        "spec.serviceAccountName": pod.spec.service_account_name or "default",
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    return simple.get(path, "")


def _run(argv: list[str], workdir: str, env: Mapping[str, str], log: Callable[[str], None]) -> tuple[int, list[str]]:
    with subprocess.Popen(
        argv, cwd=workdir, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, errors="replace",
    ) as process:
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            line = line.rstrip("\n")
            log(line)
            tail = (tail + [line])[-20:]
        return process.wait(), tail


def _remove_empty_tree(path: str) -> None:
    for folder, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass
