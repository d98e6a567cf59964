"""The ``local`` runtime: run a pod's main container command as a subprocess.

It receives the very V1Pod the ``kubernetes`` runtime would submit and runs its
main container's command + args with the container's env. It cannot run what a
cluster provides (images, secrets, config maps, PVCs): such pods fail with a
message naming the need, never silently without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError


def local_volume_root() -> str:
    """Where PVCs and empty dirs live for the local runtime."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "kfx", "volumes")


def _cluster_volume(volume: Any) -> str | None:
    """What a volume needs from a cluster, or None for what runs fine locally."""
    from airflow_kfx.pod.builder import ARTIFACT_VOLUME_NAME

    if volume is None or volume.name == ARTIFACT_VOLUME_NAME:  # the pipeline root: a local path here
        return None
    if volume.secret is not None:
        return f"the Kubernetes secret '{volume.secret.secret_name}'"
    if volume.config_map is not None:
        return f"the Kubernetes config map '{volume.config_map.name}'"
    if volume.persistent_volume_claim is not None:
        return f"the PersistentVolumeClaim '{volume.persistent_volume_claim.claim_name}'"
    if volume.ephemeral is not None:
        return "a generic ephemeral volume"
    return None  # emptyDir: the command gets the host path, as scratch space


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
    if shutil.which(executable) is None and not os.path.isfile(executable):
        raise TaskRuntimeError(
            f"'{executable}' (from image '{container.image}') is not on this machine; "
            "install it or use the kubernetes runtime"
        )
    for mount in container.volume_mounts or []:
        volume = next((v for v in pod.spec.volumes or [] if v.name == mount.name), None)
        need = _cluster_volume(volume)
        if need:
            raise TaskRuntimeError(
                f"this task mounts {need} at {mount.mount_path}, which the local runtime cannot "
                "provide (it would read and write the host's own path); use the kubernetes runtime"
            )
    env = dict(os.environ)
    for variable in container.env or []:
        if variable.value_from is not None:
            source = variable.value_from
            if source.secret_key_ref is not None or source.config_map_key_ref is not None:
                ref = source.secret_key_ref or source.config_map_key_ref
                kind = "secret" if source.secret_key_ref is not None else "config map"
                raise TaskRuntimeError(
                    f"env var {variable.name} comes from the Kubernetes {kind} '{ref.name}' (key "
                    f"'{ref.key}'), which the local runtime cannot read; use the kubernetes runtime"
                )
            continue  # fieldRef (pod name, namespace, …) has no local meaning: left unset
        env[variable.name] = variable.value or ""
    env.update(lightweight_env)
    env.update(extra_env or {})
    workdir = container.working_dir or tempfile.mkdtemp(prefix="kfx-task-")
    log(f"local runtime: running {argv[0]!r} with {len(argv) - 1} argument(s) in {workdir}")
    with subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            line = line.rstrip("\n")
            log(line)
            tail = (tail + [line])[-20:]
        code = process.wait()
    if code != 0:
        raise TaskRuntimeError(
            f"the task's command exited with code {code}; last output:\n" + "\n".join(tail)
        )
