"""``kfx run``'s side of the warm process (``kfx serve``): hand the run to it, show its output.

A run through Airflow pays seconds of start-up before its first task (imports, the
Execution API's routes, MLflow's store) that a process kept alive pays once. ``kfx serve``
is that process, one per ``$KFX_HOME``, listening on a Unix socket in it. ``kfx run`` sends
the request, its working directory, its environment and its terminal (stdout and stderr,
passed as file descriptors), so the run prints straight to the user's terminal, and waits
for the exit code. With no warm process, or one that declines (another environment, see
:func:`fingerprint`), ``kfx run`` runs in its own process as before.

Stdlib only: this is imported on every ``kfx run``, before anything heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

SOCKET_NAME = "serve.sock"
PROTOCOL = 1

# What a process reads once, at import time, and so must be the same in the client and the
# warm process: Airflow's configuration (AIRFLOW_HOME, AIRFLOW__*, AIRFLOW_CONN_*), MLflow's
# and KFX's own settings, and where Python finds its modules. Everything else in the
# environment (PATH, credentials read per call, ...) is the client's, applied for its run.
_FIXED_PREFIXES = ("AIRFLOW", "MLFLOW_", "KFX_")
_FIXED_NAMES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
# Chosen per run by ``kfx run`` itself (``--runtime``), or set by Airflow for a task's context.
_PER_RUN_NAMES = ("AIRFLOW__KFX__RUNTIME",)
_PER_TASK_PREFIX = "AIRFLOW_CTX_"


def fingerprint(environ: Mapping[str, str]) -> dict[str, Any]:
    """What must match between ``kfx run`` and the warm process for it to serve the run."""
    fixed = {
        name: value for name, value in environ.items()
        if (name.startswith(_FIXED_PREFIXES) or name in _FIXED_NAMES)
        and name not in _PER_RUN_NAMES and not name.startswith(_PER_TASK_PREFIX)
    }
    return {"python": sys.executable, "environment": fixed}


def differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, named for a person (variable names, not values:
    values may be secrets)."""
    found = []
    if ours.get("python") != theirs.get("python"):
        found.append("another Python")
    mine, yours = ours.get("environment", {}), theirs.get("environment", {})
    changed = sorted(name for name in set(mine) | set(yours) if mine.get(name) != yours.get(name))
    if changed:
        found.append("environment variable(s) " + ", ".join(changed[:5]) + (" …" if len(changed) > 5 else ""))
    return found


def socket_path(home: Path) -> Path:
    return home / SOCKET_NAME


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    """Work in ``folder`` for a moment: Unix socket paths are limited to 107 bytes, so the
    socket is bound and reached by its name relative to the home, whatever the home's length."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


# Messages: a 4-byte length, then UTF-8 JSON. The first message from ``kfx run`` carries its
# stdout and stderr as file descriptors (SCM_RIGHTS).
def send_message(sock: socket.socket, message: Mapping[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(message).encode()
    data = struct.pack("!I", len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        sock.sendall(data[sent:])
    else:
        sock.sendall(data)


def receive_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the descriptors that came with it; (None, []) at end of stream."""
    fds: list[int] = []
    if max_fds:
        head, fds, _, _ = socket.recv_fds(sock, 4, max_fds)
    else:
        head = sock.recv(4)
    head += _receive_exactly(sock, 4 - len(head)) if head else b""
    if len(head) < 4:
        return None, fds
    (length,) = struct.unpack("!I", head)
    if length > 16 * 1024 * 1024:
        raise ValueError(f"a message of {length} bytes: not a kfx client")
    body = _receive_exactly(sock, length)
    if len(body) < length:
        return None, fds
    return json.loads(body), fds


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = sock.recv(min(count, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def same_user(sock: socket.socket) -> bool:
    """The process at the other end runs as this process's user (Linux peer credentials)."""
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return bool(uid == os.getuid())


def run_through_server(request: Any, home: Path, err: TextIO | None = None) -> int | None:
    """Run ``request`` (a :class:`airflow_kfx.run.RunRequest`) in the warm process serving
    ``home``: its exit code, or None when there is none to serve it (the caller runs it here)."""
    err = err or sys.stderr
    path = socket_path(home)
    if not path.is_socket() or not hasattr(socket, "SO_PEERCRED"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with in_folder(home):
            sock.connect(SOCKET_NAME)
    except OSError:  # a socket left behind by a warm process that is gone
        sock.close()
        return None
    with sock:
        # The request carries this environment (credentials too): only to a process of ours.
        if not same_user(sock):
            print(f"kfx: {path} is served by another user's process; not using it", file=err)
            return None
        try:
            send_message(sock, {
                "protocol": PROTOCOL, "request": asdict(request), "cwd": os.getcwd(),
                "environment": dict(os.environ), "fingerprint": fingerprint(os.environ),
            }, [sys.stdout.fileno(), sys.stderr.fileno()])
            reply = _first_reply(sock, err)
        except OSError:
            return None
        if reply is None:
            return None
        if reply.get("event") == "declined":
            print(f"kfx: the warm process (kfx serve, pid {reply.get('pid')}) does not serve this run: "
                  f"{reply.get('reason')}; running it here", file=err)
            return None
        return _follow(sock, reply, err)


def _first_reply(sock: socket.socket, err: TextIO) -> dict[str, Any] | None:
    """The warm process's answer; a note if it is busy with another run first (runs are
    served one at a time: the embedded SQLite database takes one writer)."""
    ready, _, _ = select.select([sock], [], [], 1.0)
    if not ready:
        print("kfx: the warm process is busy with another run; waiting for it", file=err)
    reply, _ = receive_message(sock)
    return reply


def _follow(sock: socket.socket, accepted: Mapping[str, Any], err: TextIO) -> int:
    """Wait for the run's end; Ctrl-C or a termination here interrupts the run there."""
    def interrupt(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(b"interrupt\n")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                message, _ = receive_message(sock)
            except InterruptedError:
                continue
            if message is None:
                print(f"kfx: the warm process (pid {accepted.get('pid')}) stopped during the run", file=err)
                return 1
            if message.get("event") == "exit":
                return int(message.get("code", 1))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
