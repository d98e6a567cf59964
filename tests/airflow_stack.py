"""Airflow as it is deployed, for tests: api-server, scheduler (airflow-kfx's LocalExecutor) and DAG
processor as separate processes on a fresh PostgreSQL database of the machine's server.

    with airflow_stack(tmp_path, dags={"long.py": "..."}, env={...}) as stack:
        run_id = stack.trigger("long_task")
        stack.wait_for_run("long_task", run_id)

PostgreSQL runs on 127.0.0.1:5432 with trust authentication (the machine's own; CI's
too). Each stack gets its own database, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
AIRFLOW = [sys.executable, "-m", "airflow"]


@dataclass
class AirflowStack:
    home: Path
    env: dict[str, str]
    database: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def airflow(self, *args: str, timeout: float = 120) -> str:
        """An ``airflow`` CLI command against this stack; its stdout."""
        done = subprocess.run([*AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}\n{self.logs()}")
        return done.stdout

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        with contextlib.closing(psycopg2.connect(host="127.0.0.1", user="postgres", dbname=self.database)) as db:
            with db.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall()) if cursor.description else []

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the DAG processor has parsed ``dag_id`` into the database."""
        self._poll(lambda: self.query("select 1 from dag where dag_id = %s", dag_id), timeout, f"DAG {dag_id} parsed")

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        self.wait_for_dag(dag_id)
        run_id = f"manual__kfx_{secrets.token_hex(4)}"
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(dict(conf or {})))
        return run_id

    def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A request to the api-server's REST API (``/api/v2/...``); status and JSON body.
        Stacks run with ``simple_auth_manager_all_admins``: every caller is an admin."""
        import urllib.error
        import urllib.request

        url = f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}{path}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def wait_for_api(self, timeout: float = 180) -> None:
        """Until the api-server answers."""
        import urllib.error

        def answers() -> bool:
            try:
                return self.rest("GET", "/api/v2/version")[0] == 200
            except urllib.error.URLError:
                return False

        self._poll(answers, timeout, "the api-server")

    def task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        rows = self.query(
            "select task_id, map_index, state, try_number, pid, id from task_instance where dag_id = %s and run_id = %s",
            dag_id, run_id,
        )
        return {(r[0], r[1]): {"state": r[2], "try_number": r[3], "pid": r[4], "id": str(r[5])} for r in rows}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("select state from dag_run where dag_id = %s and run_id = %s", dag_id, run_id)
        return rows[0][0] if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """Until the DAG run has finished; its state."""
        self._poll(lambda: self.run_state(dag_id, run_id) in ("success", "failed"), timeout, f"run {run_id} finished")
        return str(self.run_state(dag_id, run_id))

    def wait_for(self, condition: Any, what: str, timeout: float = 180) -> Any:
        return self._poll(condition, timeout, what)

    def logs(self) -> str:
        parts = []
        for name in self.processes:
            path = self.home / f"{name}.log"
            if path.exists():
                parts.append(f"--- {name} (last lines) ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-60:]))
        return "\n".join(parts)

    def _poll(self, condition: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited ({process.returncode}) while waiting for {what}\n{self.logs()}")
            value = condition()
            if value:
                return value
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def airflow_stack(home: Path, *, dags: Mapping[str, str], env: Mapping[str, str] | None = None,
                  setup: Sequence[Sequence[str]] = ()) -> Iterator[AirflowStack]:
    """Start api-server, scheduler and dag-processor on a new database; stop and drop them
    after. ``setup``: ``airflow`` commands run once the database exists, before they start."""
    import psycopg2

    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    for name, text in dags.items():
        (home / "dags" / name).write_text(text)
    database = f"kfx_stack_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"create database {database}")
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    environment.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "airflow_kfx.executors.KfxLocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": POSTGRES.format(database=database),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        **dict(env or {}),
    })
    stack = AirflowStack(home, environment, database)
    try:
        stack.airflow("db", "migrate", timeout=300)
        for command in setup:
            stack.airflow(*command)
        for name, args in (("api-server", ["api-server", "--port", str(port)]), ("scheduler", ["scheduler"]),
                           ("dag-processor", ["dag-processor"])):
            log = open(home / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process until it ends
            stack.processes[name] = subprocess.Popen(
                [*AIRFLOW, *args], env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        yield stack
    finally:
        for process in stack.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        # 5 s in all, then SIGKILL: the database is dropped next, so nothing is lost, and a
        # scheduler stopping gracefully waits for its LocalExecutor's running tasks (a test
        # that leaves a long step running behind a failed run would wait for the step).
        deadline = time.monotonic() + 5
        for process in stack.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with admin.cursor() as cursor:
            cursor.execute(f"drop database if exists {database} with (force)")
        admin.close()
