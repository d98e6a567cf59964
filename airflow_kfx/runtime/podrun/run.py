"""PodRun: a pod's life cycle, the way a kubelet drives it.

Volumes first; init containers one after the other (a native sidecar is started and left
running); the main containers concurrently; then the sidecars stopped in reverse order.
``terminate()`` (pod deletion) and ``activeDeadlineSeconds`` stop it within the grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_kfx.runtime.podrun.container import Container, launch_plan, read_lines
from airflow_kfx.runtime.podrun.model import (
    CANNOT_RUN,
    COMPLETED,
    DEFAULT_GRACE_SECONDS,
    ERROR,
    NEVER_STARTED,
    ClusterObjects,
    ContainerExit,
    PodObserver,
    PodOutcome,
    Problem,
)
from airflow_kfx.runtime.podrun.mounts import Mount, release_mount_points
from airflow_kfx.runtime.podrun.needs import volume_problems
from airflow_kfx.runtime.podrun.volumes import prepare_volumes

# Every container this process has started and not yet reaped, for stop_all_containers().
# Re-entrant: Ctrl-C's handler (kfx run) calls it on the main thread, which may be inside
# the lock, starting an init container.
_STARTING = threading.RLock()
_RUNNING: set[subprocess.Popen[bytes]] = set()
_ALL_STOPPED = threading.Event()


def stop_all_containers() -> int:
    """Kill every container this process runs, now, and start no more (``kfx serve``
    abandoning an interrupted run, from another thread than the run's). How many it killed."""
    with _STARTING:
        _ALL_STOPPED.set()
        running = list(_RUNNING)
    for process in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # its session: whatever it started, too
    return len(running)


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
        self._containers: dict[str, Container] = {}
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
            release_mount_points(self._holder)
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
        mounts: dict[str, list[Mount]] = {}
        try:
            problem = next(iter(volume_problems(self._pod, self._cluster)), None)
            if problem is None:
                mounts = prepare_volumes(self._pod, self._cluster, self._scratch)
        except OSError as err:  # a volume's folder or files could not be made
            problem = Problem("", "FailedMount", f"MountVolume.SetUp failed: {err}")
        if problem is not None:
            return PodOutcome("Pending", reason=problem.reason, message=problem.message)
        init_ok = True
        pending = False
        for spec in self._spec.get("initContainers") or []:
            if self._stopping():
                init_ok = False
                break
            container = Container(spec, init=True)
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
        mains: list[Container] = []
        if init_ok and not self._stopping():
            mains = [Container(spec, init=False) for spec in self._spec.get("containers") or []]
            threads = [threading.Thread(target=self._start, args=(c, mounts), daemon=True) for c in mains]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for container in mains:
                container.done.wait()
        self._stop_sidecars()
        return self._outcome(mains, init_ok, pending)

    def _outcome(self, mains: list[Container], init_ok: bool, pending: bool) -> PodOutcome:
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

    def _signal(self, container: Container, sig: int) -> None:
        # Under the lock and only before the leader is reaped: a reaped group id may
        # already belong to an unrelated process.
        with self._lock:
            if container.process is None or container.reaped:
                return
            try:
                os.killpg(container.process.pid, sig)  # its own session: the whole container
            except (ProcessLookupError, PermissionError):
                pass

    # -- one container ------------------------------------------------------------
    def _start(self, container: Container, mounts: Mapping[str, list[Mount]]) -> None:
        """Start the container's process (or record why it cannot start). Its end is
        recorded by a waiter thread; ``container.done`` is set then."""
        with self._lock:
            self._containers[container.name] = container
        try:
            launch = launch_plan(
                self._pod, self._cluster, container, mounts.get(container.name, []),
                scratch=self._scratch, extra_env=self._extra_env.get(container.name) or {},
                holder=self._holder, log=lambda line: self._log(container, line),
            )
        except Exception as err:  # e.g. the lightweight component's requirements failed to install
            launch = Problem(str(err), CANNOT_RUN, str(err))
        if isinstance(launch, Problem):
            self._ended(container, ContainerExit(container.name, 128, launch.reason, launch.message))
            return
        argv, env, cwd = launch
        failure = ""
        with self._lock, _STARTING:
            process = None
            if self._stop_at is not None:  # terminated meanwhile: never start
                failure = "the pod was terminated before the container started"
            elif _ALL_STOPPED.is_set():
                failure = "the process running pods is stopping"
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
                    _RUNNING.add(process)
        if process is None:
            self._ended(container, ContainerExit(container.name, 128, CANNOT_RUN, failure))
            return
        self._observer.container_started(container.name, init=container.init)
        assert process.stdout is not None
        output, log = process.stdout.fileno(), lambda line: self._log(container, line)
        pump = threading.Thread(target=read_lines, args=(output, log), daemon=True)
        pump.start()
        threading.Thread(target=self._wait, args=(container, pump), daemon=True).start()

    def _log(self, container: Container, line: str) -> None:
        container.tail.append(line)
        try:
            self._observer.log(container.name, line)
        except Exception:  # an observer's failure must not stop the container's output
            pass

    def _wait(self, container: Container, pump: threading.Thread) -> None:
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
        with self._lock, _STARTING:
            container.reaped = True
            _RUNNING.discard(process)
        code = process.wait()
        pump.join(timeout=5)  # a process that left the session may still hold the pipe
        if process.stdout is not None and not pump.is_alive():
            process.stdout.close()
        code = 128 - code if code < 0 else code
        self._ended(container, ContainerExit(
            container.name, code, COMPLETED if code == 0 else ERROR, container.termination_message(code),
            container.started_at, _now(),
        ))

    def _ended(self, container: Container, exit: ContainerExit) -> None:
        container.exit = exit
        try:
            self._observer.container_ended(exit, init=container.init)
        finally:
            container.done.set()


def _now() -> datetime:
    return datetime.now(timezone.utc)
