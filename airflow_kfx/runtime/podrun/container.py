"""One container of a pod run: its record, the process that stands in for it (argv, env
and working directory), its output as log lines, and its termination message."""

from __future__ import annotations

import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from airflow_kfx.runtime.podrun.env import container_env, expand, pod_env
from airflow_kfx.runtime.podrun.model import (
    CANNOT_RUN,
    CONFIG_ERROR,
    IMAGE_NOT_HERE,
    ClusterObjects,
    ContainerExit,
    Problem,
)
from airflow_kfx.runtime.podrun.mounts import MOUNT_MESSAGE, Mount, can_mount, claim_mount_points, mount_argv
from airflow_kfx.runtime.podrun.needs import container_problems, find_executable, is_executable_file
from airflow_kfx.runtime.podrun.volumes import mounted_host_path

_TAIL_LINES, _TAIL_BYTES = 80, 2048  # FallbackToLogsOnError, as the kubelet
_MESSAGE_BYTES = 4096  # a termination-message file is read up to this, as the kubelet
_LONG_LINE = 16 * 1024  # the kubelet splits longer lines too

Launch = tuple[list[str], dict[str, str], str]  # argv, env, working directory of the process


class Container:
    """One container of the run: its process, its log tail, how it ended."""

    def __init__(self, spec: Mapping[str, Any], *, init: bool) -> None:
        self.spec = spec
        self.name: str = spec.get("name", "")
        self.init = init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.process: subprocess.Popen[bytes] | None = None
        self.mounts: list[Mount] = []
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.started_at: datetime | None = None
        self.exit: ContainerExit | None = None
        self.reaped = False  # its first process has been waited for: never signal its group again
        self.done = threading.Event()

    def termination_message(self, code: int) -> str:
        """The file at ``terminationMessagePath`` when it is in a volume, else (with
        ``FallbackToLogsOnError``, after a failure) the end of the log."""
        spec = self.spec
        path = spec.get("terminationMessagePath") or "/dev/termination-log"
        message = ""
        host = mounted_host_path(self.mounts, path)
        if host is not None:
            try:
                with open(host, "rb") as handle:
                    message = handle.read(_MESSAGE_BYTES).decode("utf-8", "replace")
            except OSError:
                pass
        if not message and code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            text = "\n".join(self.tail)
            encoded = text.encode()
            message = encoded[-_TAIL_BYTES:].decode("utf-8", "replace") if len(encoded) > _TAIL_BYTES else text
        return message


def launch_plan(
    pod: Mapping[str, Any],
    cluster: ClusterObjects,
    container: Container,
    mounts: list[Mount],
    *,
    scratch: str,
    extra_env: Mapping[str, str],
    holder: str,
    log: Callable[[str], None],
) -> Launch | Problem:
    """argv, env and cwd of the container's process, or why it cannot start.

    Records ``mounts`` on the container, and registers ``holder`` on their mount points
    (released when the pod run ends). ``extra_env`` is added last; ``log`` gets the
    output of installing a lightweight component's requirements.
    """
    spec = container.spec
    problems = container_problems(pod, spec, cluster)
    if problems:
        # the kubelet's order: config errors before anything else
        return next((p for p in problems if p.reason == CONFIG_ERROR), problems[0])
    env_of_pod, _ = pod_env(pod, spec, cluster)
    argv = [expand(a, env_of_pod) for a in (*(spec.get("command") or []), *(spec.get("args") or []))]
    container.mounts = mounts
    env = container_env(pod, scratch, env_of_pod)
    # Imported where used: at module level this package imports only the standard library.
    from airflow_kfx.runtime.python_env import environment_for, parse_lightweight

    lightweight = parse_lightweight(argv)
    if lightweight is not None:
        # Requirements are installed once into a cached venv; run the program directly.
        extra = environment_for(lightweight, log)
        bin_dir = extra["PATH"].split(os.pathsep)[0]
        env["PATH"] = bin_dir + os.pathsep + env["PATH"]
        if "VIRTUAL_ENV" in extra:
            env["VIRTUAL_ENV"] = extra["VIRTUAL_ENV"]
        argv = list(lightweight.run_argv)
    on_machine = find_executable(argv[0], env["PATH"], spec, pod) is not None
    # or in one of the pod's own volumes (an emptyDir an init container filled)
    if not on_machine and not is_executable_file(mounted_host_path(mounts, argv[0])):
        return Problem("", IMAGE_NOT_HERE, _not_here_message(argv[0], spec.get("image", "")))
    workdir = spec.get("workingDir") or os.path.join(scratch, "work", container.name)
    if not spec.get("workingDir"):
        os.makedirs(workdir, exist_ok=True)
    env.update(extra_env)
    if not mounts:
        return argv, env, workdir
    if not can_mount():
        targets = ", ".join(m.target for m in mounts)
        return Problem("", CANNOT_RUN, f"this pod mounts volumes at {targets}; {MOUNT_MESSAGE}")
    claim_mount_points(mounts, holder)
    return mount_argv(mounts, workdir, argv, keep_oldpwd="OLDPWD" in env), env, scratch


def _not_here_message(executable: str, image: str) -> str:
    # Deliberately free of the words the cncf provider treats as transient pull errors.
    return (
        f'image "{image}" is never pulled here: pods run as commands on this machine, '
        f"and '{executable}' (from image '{image}') is not on this machine"
    )


def read_lines(fd: int, emit: Callable[[str], None]) -> None:
    """A process's output, until it ends, line by line to ``emit`` (long lines in pieces)."""
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
            emit(line.decode("utf-8", "replace"))
        while len(pending) > _LONG_LINE:
            emit(pending[:_LONG_LINE].decode("utf-8", "replace"))
            pending = pending[_LONG_LINE:]
    if pending:
        emit(pending.decode("utf-8", "replace"))
