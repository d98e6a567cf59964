"""``kfx serve``: a warm process that runs ``kfx run`` requests for one ``$KFX_HOME``.

Each ``kfx run`` pays a fixed start-up before its first task: importing Airflow, the pod
operator and MLflow, Airflow's in-process Execution API generating routes for every API
version, opening MLflow's store (bench/RESULTS.md: over 5 s of a 7.5 s six-task run). This
process pays them once and then runs each request with ``dag.test()`` as ``kfx run`` would,
in the request's working directory and environment, printing to the requester's terminal.

Runs are served one at a time (the embedded SQLite metadata database takes one writer; a
second ``kfx run`` waits). Only the user who started it can connect (socket mode 0600 and a
peer-credential check). It serves a request only when the settings read at import time match
(:func:`airflow_kfx.serve_client.fingerprint`); otherwise ``kfx run`` runs in its own process.
It starts itself afresh (``exec``) after ``max_runs`` runs, after an interrupted or crashed
run, and when airflow-kfx's own code changed on disk, so a long-lived process never carries
a half-finished run's state or stale code. ``--parallelism N > 1`` runs are not served: their
tasks are processes of their own anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from airflow_kfx.serve_client import (
    PROTOCOL,
    SOCKET_NAME,
    differences,
    fingerprint,
    in_folder,
    receive_message,
    same_user,
    send_message,
    socket_path,
)

PACKAGE = Path(__file__).resolve().parent


def code_stamp() -> tuple[int, float]:
    """How many source files airflow-kfx has and when the newest changed: a change means the
    warm process runs stale code."""
    times = [path.stat().st_mtime for path in PACKAGE.rglob("*.py")]
    return len(times), max(times, default=0.0)


@dataclass
class Restart(Exception):
    """Start the warm process afresh after answering the current request."""

    reason: str


@dataclass
class _Watch:
    """The requester's connection while its run is going: anything it sends (Ctrl-C, a
    termination) or its going away (killed) calls ``on_interrupt`` from this thread."""

    conn: socket.socket
    on_interrupt: Callable[[], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._wait, name="kfx-serve-watch", daemon=True)
        thread.start()
        return thread

    def _wait(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.recv(64)
        with self.lock:
            if self.done:
                return
            self.on_interrupt()

    def finish(self) -> None:
        with self.lock:
            self.done = True


class WarmServer:
    def __init__(self, home: Path, max_runs: int, idle_timeout: float | None) -> None:
        self.home = home
        self.max_runs = max_runs
        self.idle_timeout = idle_timeout
        # Our own copies of stdout and stderr: during a run, fds 1 and 2 go to its Airflow log.
        self.stdout = os.dup(1)
        self.log = os.fdopen(os.dup(2), "w", buffering=1)
        # As started, before configure_environment: what a client's environment is compared
        # with, and what a fresh start gets (not a run's, nor what its tasks set).
        self.started_environment = dict(os.environ)
        self.expected = fingerprint(self.started_environment)
        self.stamp = code_stamp()
        self.runs = 0

    def say(self, text: str) -> None:
        print(f"kfx serve [{os.getpid()}] {time.strftime('%H:%M:%S')}: {text}", file=self.log, flush=True)

    def warm_up(self) -> None:
        """Pay what every run would pay before its first task."""
        import gc

        from airflow_kfx.run import GC_THRESHOLDS, configure_environment, ensure_database

        gc.set_threshold(*GC_THRESHOLDS)
        configure_environment(self.home, None)
        ensure_database(self.home)
        self.environment = dict(os.environ)
        # The modules a run imports, so the first request finds them loaded.
        import rich.table  # noqa: F401
        from airflow.sdk.execution_time.supervisor import in_process_api_server

        import airflow_kfx.dag_builder  # noqa: F401
        import airflow_kfx.operators.component  # noqa: F401
        import airflow_kfx.plan  # noqa: F401
        import airflow_kfx.runtime.local  # noqa: F401
        import airflow_kfx.summary  # noqa: F401
        from airflow_kfx.tracking.session import tracking_enabled

        _generate_execution_api_routes(in_process_api_server().app)
        if tracking_enabled():
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
            from mlflow import MlflowClient  # noqa: F401

    def serve_forever(self) -> None:
        path = socket_path(self.home)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with in_folder(self.home):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SOCKET_NAME)  # left by a warm process that did not stop cleanly
            old_umask = os.umask(0o077)  # srw-------: only this user may connect
            try:
                listener.bind(SOCKET_NAME)
            finally:
                os.umask(old_umask)
        listener.listen(16)
        # Short waits: a signal (SIGTERM, Ctrl-C) can land on one of the threads a run leaves
        # (the in-process Execution API's loop) and would not break a blocked accept().
        listener.settimeout(0.5)
        self.say(f"serving kfx run for {self.home} on {path}")
        restart: str | None = None
        idle_since = time.monotonic()
        try:
            while restart is None:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    if self.idle_timeout and time.monotonic() - idle_since > self.idle_timeout:
                        self.say(f"no request for {self.idle_timeout:.0f} s; stopping")
                        return
                    continue
                conn.settimeout(None)
                with conn:
                    try:
                        self.handle(conn)
                    except Restart as why:
                        restart = why.reason
                idle_since = time.monotonic()
                if restart is None and self.runs >= self.max_runs:
                    restart = f"{self.runs} runs served"
        finally:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.restart(restart)

    def handle(self, conn: socket.socket) -> None:
        if not same_user(conn):
            self.say("refused a connection from another user")
            return
        try:
            message, fds = receive_message(conn, max_fds=2)
        except (OSError, ValueError) as err:
            self.say(f"ignored a malformed request: {err}")
            return
        if message is None or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return
        out = os.fdopen(fds[0], "w", buffering=1, errors="replace")
        err = os.fdopen(fds[1], "w", buffering=1, errors="replace")
        with out, err:
            stale = self.stamp != code_stamp()
            reason = self._decline_reason(message, stale)
            if reason:
                send_message(conn, {"event": "declined", "reason": reason, "pid": os.getpid()})
                if stale:
                    raise Restart("airflow-kfx's code changed")
                return
            send_message(conn, {"event": "accepted", "pid": os.getpid()})
            code, restart = self._run(message, conn, out, err)
            out.flush()
            err.flush()
            with contextlib.suppress(OSError):
                send_message(conn, {"event": "exit", "code": code})
        if restart:
            raise Restart(restart)

    def _decline_reason(self, message: dict[str, Any], stale: bool) -> str | None:
        if message.get("protocol") != PROTOCOL:
            return "another kfx version"
        if stale:
            return "airflow-kfx's code changed since it started (it starts afresh for the next run)"
        request = message.get("request") or {}
        if int(request.get("parallelism") or 1) > 1:
            return "--parallelism runs each task in a process of its own"
        found = differences(self.expected, message.get("fingerprint") or {})
        if found:
            return "it was started with " + "; ".join(found)
        return None

    def _run(self, message: dict[str, Any], conn: socket.socket, out: TextIO, err: TextIO) -> tuple[int, str | None]:
        """Run the request as ``kfx run`` would, in its folder and environment: its exit code,
        and why to start afresh afterwards (None: stay)."""
        from airflow_kfx.run import RunRequest, run

        request = RunRequest(**message["request"])

        def interrupted() -> None:
            self._abandon(request, conn, err)

        watch = _Watch(conn, interrupted)
        watcher = watch.start()
        began = time.perf_counter()
        self.runs += 1
        print(f"kfx: run by the warm process (kfx serve, pid {os.getpid()})", file=out)
        try:
            with _applied(message["environment"], message["cwd"]):
                code = run(request, out, stop_on_ctrl_c=False)
            watch.finish()
            restart = None
        except (KeyboardInterrupt, SystemExit):  # kfx serve itself stopped (Ctrl-C, SIGTERM)
            watch.finish()
            with contextlib.suppress(OSError, ValueError):
                print("kfx: the warm process was stopped during the run", file=err)
            raise
        except Exception as error:  # noqa: BLE001 - a crash ends this run, not the server
            watch.finish()
            print(f"kfx: the run failed in the warm process: {type(error).__name__}: {error}", file=err)
            traceback.print_exc(file=self.log)
            code, restart = 1, "a run crashed"
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RD)  # wakes the watcher, which sees the run is done
        watcher.join(timeout=5)
        # Airflow's task runner sets its own SIGTERM handler while a task runs in-process.
        _install_signal_handlers()
        self.say(f"served {request.path} (exit {code}) in {time.perf_counter() - began:.1f} s")
        return code, restart

    def _abandon(self, request: Any, conn: socket.socket, err: TextIO) -> None:
        """Ctrl-C in ``kfx run``, or ``kfx run`` gone: stop the run now, as ending the
        ``kfx run`` process would (its pods' processes are stopped; the Airflow and MLflow
        runs stay as they were), and start afresh: whatever the run was doing is left behind
        with the old process image. Runs on the watcher thread while the run holds the main one."""
        from airflow_kfx.run import kill_running_containers

        stopped = kill_running_containers()
        with contextlib.suppress(OSError, ValueError):
            print(f"kfx: interrupted; the warm process stopped the run ({stopped} container(s) killed)", file=err)
            err.flush()
        with contextlib.suppress(OSError):
            send_message(conn, {"event": "exit", "code": 130})
        self.say(f"interrupted {request.path}; {stopped} container(s) killed")
        self.restart("a run was interrupted")

    def restart(self, reason: str) -> None:
        self.say(f"starting afresh ({reason})")
        self.log.flush()
        with contextlib.suppress(FileNotFoundError):
            socket_path(self.home).unlink()
        # A run sends fds 1 and 2 to its Airflow log while it lasts: the new image gets ours.
        os.dup2(self.log.fileno(), 2)
        os.dup2(self.stdout, 1)
        os.execve(sys.executable, sys.orig_argv, self.started_environment)


def _someone_listens(home: Path) -> bool:
    """A warm process already serves ``home`` (a socket nobody listens on is left over)."""
    if not socket_path(home).is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe, in_folder(home):
        try:
            probe.connect(SOCKET_NAME)
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _applied(environment: dict[str, str], cwd: str):  # type: ignore[no-untyped-def]
    """The requester's environment and working folder for the length of its run."""
    saved_environment, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(environment)
    try:
        os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environment)


def _generate_execution_api_routes(app: Any) -> None:
    """Make Cadwyn generate the Execution API's routes for every API version now (it does on
    the first request, ~3 s) with one request nobody answers, on an event loop that is closed
    again: no thread is left behind."""
    import asyncio

    async def request() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": "/kfx-warm-up", "raw_path": b"/kfx-warm-up", "root_path": "", "query_string": b"",
            "headers": [], "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 0),
        }
        await app(scope, receive, send)

    asyncio.run(request())


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM stops the warm process as Ctrl-C does: the socket is removed on the way out."""
    raise SystemExit(0)


def _install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background


def serve(home: Path, max_runs: int = 50, idle_timeout: float | None = None) -> int:
    if not hasattr(socket, "SO_PEERCRED"):
        print("kfx serve: needs Linux (it checks who connects with SO_PEERCRED)", file=sys.stderr)
        return 2
    home.mkdir(parents=True, exist_ok=True)
    if _someone_listens(home):
        print(f"kfx serve: another warm process already serves {home} ({socket_path(home)})", file=sys.stderr)
        return 1
    server = WarmServer(home, max_runs, idle_timeout)
    _install_signal_handlers()
    began = time.perf_counter()
    server.warm_up()
    server.say(f"warm in {time.perf_counter() - began:.1f} s")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.say("stopped")
    return 0
