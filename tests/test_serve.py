"""``kfx serve``: a warm process that runs ``kfx run`` requests for one KFX_HOME."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_kfx.run import RunRequest
from airflow_kfx.serve import code_stamp
from airflow_kfx.serve_client import (
    SOCKET_NAME,
    differences,
    fingerprint,
    receive_message,
    run_through_server,
    same_user,
    send_message,
)
from tests.support import FIXTURES, kfx_environment, kfx_run

WARM = re.compile(r"run by the warm process \(kfx serve, pid (\d+)\)")


def test_a_differing_setting_is_named_but_its_value_never_shown() -> None:
    ours = fingerprint({"AIRFLOW__CORE__FERNET_KEY": "s3cret", "PATH": "/bin", "KFX_HOME": "/h"})
    theirs = fingerprint({"AIRFLOW__CORE__FERNET_KEY": "other", "PATH": "/usr/bin", "KFX_HOME": "/h"})
    found = differences(ours, theirs)
    assert found == ["environment variable(s) AIRFLOW__CORE__FERNET_KEY"]  # PATH is the run's own
    assert "s3cret" not in str(found) and "other" not in str(found)
    # The runtime is chosen per run (kfx run --runtime), so it may differ.
    assert differences(fingerprint({"AIRFLOW__KFX__RUNTIME": "local"}), fingerprint({})) == []


def test_a_request_carries_the_terminal_as_descriptors() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    with left, right:
        send_message(left, {"request": {"path": "x" * 100_000}}, [write_end, write_end])
        message, fds = receive_message(right, max_fds=2)
        assert message == {"request": {"path": "x" * 100_000}}
        assert len(fds) == 2
        os.write(fds[0], b"to the terminal")
        assert os.read(read_end, 100) == b"to the terminal"
        assert same_user(right)
        for fd in (*fds, read_end, write_end):
            os.close(fd)
        left.close()
        assert receive_message(right) == (None, [])


def test_with_no_warm_process_kfx_run_runs_in_its_own(tmp_path: Path) -> None:
    request = RunRequest("pipeline.yaml")
    assert run_through_server(request, tmp_path) is None  # no socket at all
    # A socket left behind by a warm process that is gone: nobody listens on it.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
        gone.bind(str(tmp_path / SOCKET_NAME))
    assert (tmp_path / SOCKET_NAME).is_socket()
    assert run_through_server(request, tmp_path) is None


def test_a_socket_served_by_another_user_gets_no_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone else's process on the socket (a home others can write to) never sees this
    environment, which may hold credentials."""
    import io
    import threading

    import airflow_kfx.serve_client as client

    received: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor:
        impostor.bind(str(tmp_path / SOCKET_NAME))
        impostor.listen(1)

        def listen() -> None:
            conn, _ = impostor.accept()
            with conn:
                received.append(conn.recv(65536))

        thread = threading.Thread(target=listen)
        thread.start()
        monkeypatch.setattr(client.os, "getuid", lambda: 4242)  # as if we were another user
        err = io.StringIO()
        assert run_through_server(RunRequest("pipeline.yaml"), tmp_path, err) is None
        thread.join(timeout=10)
    assert received == [b""]  # connected, then closed: nothing sent
    assert "served by another user's process; not using it" in err.getvalue()


def test_the_code_stamp_sees_an_edited_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_kfx.serve as serve

    (tmp_path / "a.py").write_text("")
    monkeypatch.setattr(serve, "PACKAGE", tmp_path)
    before = code_stamp()
    os.utime(tmp_path / "a.py", (time.time() + 5, time.time() + 5))
    assert code_stamp() != before
    (tmp_path / "b.py").write_text("")
    assert code_stamp()[0] == 2


def _start_server(home: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_kfx.cli", "serve"], env=kfx_environment(home), cwd=home,
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )


def _processes_running(command: str, under: int | None = None) -> bool:
    """A process runs ``command`` (with ``under``: a descendant of that process)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().replace(b"\0", b" ").strip() != command.encode():
                continue
        except OSError:
            continue
        if under is None or under in _ancestors(int(cmdline.parent.name)):
            return True
    return False


def _ancestors(pid: int) -> list[int]:
    found = []
    while pid > 1:
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        found.append(pid)
    return found


def _wait_for(condition, what: str, seconds: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_kfx_serve_runs_requests_warm_and_starts_afresh_after_an_interrupted_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "serve.log"
    server = _start_server(home, log)
    try:
        _wait_for(lambda: "serving kfx run" in log.read_text() or server.poll() is not None, "kfx serve")
        assert server.poll() is None, log.read_text()
        assert (home / SOCKET_NAME).stat().st_mode & 0o077 == 0  # only this user may connect
        second = subprocess.run(
            [sys.executable, "-m", "airflow_kfx.cli", "serve"], capture_output=True, text=True, timeout=120,
            env=kfx_environment(home),
        )
        assert second.returncode == 1 and "another warm process already serves" in second.stderr

        # Served, in the requester's folder (a relative pipeline path), with the usual results.
        code, output, summary = kfx_run(home, "constants_and_outputs.yaml", cwd=FIXTURES)
        assert code == 0, output
        assert (served := WARM.search(output)) and int(served.group(1)) == server.pid
        assert summary["outputs"]["parameters"] == {"summary": "result: half=5 square=100 parity=even", "doubled": 10}
        assert "✓ add" in output  # live progress, printed to the requester's terminal

        # A failing run: exit 1 and its failure shown; the process keeps serving.
        code, output, summary = kfx_run(home, str(FIXTURES / "exit_handler_failing.yaml"))
        assert code == 1 and summary["state"] == "failed"
        assert "✗ failed exit-handler-1/fail" in output and WARM.search(output)

        # Another setting read at start-up: declined, named, and run in kfx run's own process.
        code, output, summary = kfx_run(
            home, str(FIXTURES / "constants_and_outputs.yaml"), env={"AIRFLOW__KFX__MLFLOW_TIMEOUT": "7"}
        )
        assert code == 0 and summary["state"] == "success"
        assert "does not serve this run: it was started with environment variable(s) AIRFLOW__KFX__MLFLOW_TIMEOUT" in output
        assert not WARM.search(output)

        # The requester killed mid-run: the task is interrupted and the process starts afresh.
        client = subprocess.Popen(
            [sys.executable, "-m", "airflow_kfx.cli", "run", str(FIXTURES / "long_task.yaml"), "-p", "seconds=313"],
            env=kfx_environment(home), cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert client.stdout is not None
        for line in client.stdout:
            if "… wait" in line:
                break
        _wait_for(lambda: _processes_running("sleep 313", under=server.pid), "the task's container", 120)
        client.kill()
        client.wait()
        _wait_for(lambda: "starting afresh (a run was interrupted)" in log.read_text(), "the interrupted run's end", 120)
        assert f"interrupted {FIXTURES / 'long_task.yaml'}; 1 container(s) killed" in log.read_text(), (
            log.read_text() + "\n".join(p.read_text()[-3000:] for p in (home / "logs").glob("long_task-*.log"))
        )
        assert not _processes_running("sleep 313")  # the pod's process went with it
        _wait_for(lambda: log.read_text().count("serving kfx run") == 2, "the fresh process")
        code, output, _ = kfx_run(home, str(FIXTURES / "constants_and_outputs.yaml"), "--no-cache")
        assert code == 0 and WARM.search(output)  # exec'd afresh: the same pid

        # --no-serve runs in kfx run's own process even so.
        code, output, _ = kfx_run(home, str(FIXTURES / "constants_and_outputs.yaml"), "--no-serve")
        assert code == 0 and not WARM.search(output)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert not (home / SOCKET_NAME).exists()  # SIGTERM stops it cleanly
