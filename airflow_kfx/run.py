"""``kfx run``: one pipeline run through Airflow's own machinery, on an embedded default.

The embedded default needs no set-up: an Airflow home (SQLite metadata database,
created and migrated on first use) under ``$KFX_HOME`` (default ``./.kfx``),
artifacts under ``$KFX_HOME/artifacts``. The run is ``dag.test()`` — real task
instances, real XCom, real trigger rules and retries — with Airflow's own console
output captured to a log file while ``kfx`` shows per-task progress.

``--parallelism N`` (N > 1) hands the tasks to Airflow's LocalExecutor instead
(``dag.test(use_executor=True)``): up to N task processes at once, each talking to
an Execution API served on 127.0.0.1 for the length of the run, as the api-server
serves it to a deployed Airflow's workers. Each task process then parses the DAG
file itself, so short tasks run faster one at a time, in-process (bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class RunRequest:
    path: str
    params: list[str] = field(default_factory=list)
    runtime: str | None = None
    experiment: str | None = None
    no_cache: bool = False
    json_file: str | None = None
    parallelism: int = 1


def kfx_home() -> Path:
    return Path(os.environ.get("KFX_HOME") or ".kfx").resolve()


def configure_environment(home: Path, runtime: str | None, parallelism: int = 1) -> None:
    """Point Airflow at the embedded home. Must run before Airflow is imported."""
    airflow_home = home / "airflow"
    (airflow_home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(airflow_home / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__KFX__PIPELINE_ROOT", str(home / "artifacts"))
    os.environ["AIRFLOW__KFX__RUNTIME"] = runtime or os.environ.get("AIRFLOW__KFX__RUNTIME") or "local"
    if parallelism > 1:
        import secrets

        # Workers forked with airflow-kfx, the pod operator and MLflow already imported.
        os.environ["AIRFLOW__CORE__EXECUTOR"] = "airflow_kfx.executors.KfxLocalExecutor"
        os.environ["AIRFLOW__CORE__PARALLELISM"] = str(parallelism)
        # The task processes reach this run's own Execution API; tokens signed for this run only.
        os.environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{_free_port()}/execution/"
        os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_hex(32)


def ensure_database(home: Path) -> None:
    """Create and migrate the metadata database on first use (about 10 s)."""
    marker = home / "airflow" / ".kfx-migrated"
    if marker.exists():
        return
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    if result.returncode != 0:
        raise SystemExit(f"kfx: could not create the Airflow database in {home}:\n{result.stderr[-2000:]}")
    marker.write_text("ok\n")


# Python's cyclic garbage collector, as ``kfx run`` tunes it: a young-generation collection
# after 50,000 net allocations instead of 700, and older ones after 20 of those instead of
# 10. The run is one process that builds a great deal and keeps nearly all of it (Airflow's
# modules, the Execution API's routes for every API version, the DAG, MLflow): with the
# defaults the collector walks that growing heap thousands of times and frees almost nothing.
# Measured on a six-task chain: 2 s (22 %) less CPU for 8 MB more memory (bench/RESULTS.md).
# Cycles are still collected, so a long run (a 1,000-item loop) does not grow without bound;
# executor workers forked by ``--parallelism`` inherit the setting.
GC_THRESHOLDS = (50_000, 20, 20)


def run(request: RunRequest, out: TextIO | None = None, *, stop_on_ctrl_c: bool = True) -> int:
    """Run the request; its exit code. ``stop_on_ctrl_c``: Ctrl-C ends this process (see
    :func:`_stop_on_ctrl_c`); ``kfx serve`` stops a run its own way."""
    gc.set_threshold(*GC_THRESHOLDS)
    home = kfx_home()
    configure_environment(home, request.runtime, request.parallelism)
    from rich.console import Console

    # The terminal, kept apart from fds 1/2, which carry Airflow's own output to a log file.
    out = out or os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    console = Console(file=out, highlight=False)
    from airflow_kfx.exceptions import KfxError
    from airflow_kfx.params import parse_params
    from airflow_kfx.spec.loader import load_pipeline_file

    try:
        pipeline = load_pipeline_file(request.path)
        params = parse_params(pipeline, request.params)
    except KfxError as err:
        console.print(str(err), style="red", markup=False, soft_wrap=True)
        return 1
    ensure_database(home)
    pipeline_path = Path(request.path).resolve()
    dags = home / "airflow" / "dags"
    for old in dags.glob("kfx_run_*.py"):
        old.unlink()
    # dag.test() serialises DAGs from the DAG folder: the pipeline must be loadable from there.
    dag_file = dags / "kfx_run_pipeline.py"
    dag_file.write_text(f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(pipeline_path)!r})\n")
    from airflow_kfx.dag_builder import build_dag
    from airflow_kfx.plan import build_plan

    dag = build_dag(pipeline)
    dag.fileloc = str(dag_file)  # where an executor's task process finds the DAG
    plan = build_plan(pipeline)
    conf = dict(params)
    if request.no_cache:
        from airflow_kfx.config import CACHE_PARAM

        conf[CACHE_PARAM] = False
    if request.experiment:
        conf["experiment"] = request.experiment
    log_path = home / "logs" / f"{dag.dag_id}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parallel = f", up to {request.parallelism} tasks at once" if request.parallelism > 1 else ""
    console.print(f"[bold]{pipeline.display_name or pipeline.name}[/bold] → DAG {dag.dag_id} "
                  f"(runtime {os.environ['AIRFLOW__KFX__RUNTIME']}{parallel}); Airflow log: {log_path}", soft_wrap=True)
    progress = _progress_listener(console, plan)
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager().add_listener(progress)
    started = time.perf_counter()
    if stop_on_ctrl_c and request.parallelism == 1:
        _stop_on_ctrl_c(console)
    try:
        with _captured_output(log_path):
            if request.parallelism > 1:
                from airflow_kfx.executors import hold_to_task_limits

                hold_to_task_limits(dag)  # dag.test() does not check them; the executor does
                with _execution_api():
                    dag_run = dag.test(run_conf=conf or None, use_executor=True)
            else:
                dag_run = dag.test(run_conf=conf or None)
    except Exception as err:  # noqa: BLE001 - Airflow refusing the run: one line, no traceback
        console.print(f"[red]kfx: the run could not start: {type(err).__name__}: {err}[/red] (log: {log_path})")
        return 1
    finally:
        # A warm process (kfx serve) runs again: this run's progress lines must not follow.
        get_listener_manager().pm.unregister(progress)
    summary = collect_summary(plan, dag.dag_id, dag_run.run_id, str(dag_run.state), conf)
    from airflow_kfx.config import KfxSettings
    from airflow_kfx.operators.container import default_pipeline_root

    _print_summary(console, summary, time.perf_counter() - started, default_pipeline_root(pipeline, KfxSettings()),
                   task_durations(plan, dag.dag_id, dag_run.run_id))
    if request.json_file:
        target = Path(request.json_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0 if summary["state"] == "success" else 1


def _stop_on_ctrl_c(console: Any) -> None:
    """Ctrl-C stops the run: its containers are killed and ``kfx run`` exits 130 at once.
    Left to Airflow, the KeyboardInterrupt would only fail the task it lands in, and the run
    would go on to the next tasks and retries. The Airflow and MLflow runs stay as they were."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        console.print(f"[red]kfx: interrupted[/red]; {kill_running_containers()} running container(s) killed")
        os._exit(130)

    signal.signal(signal.SIGINT, stop)


def kill_running_containers() -> int:
    """Kill the containers this process runs (the local runtime's pods) and start no more;
    how many. Nothing to do when no pod ran here."""
    if "airflow_kfx.runtime.podrun.run" not in sys.modules:
        return 0
    from airflow_kfx.runtime.podrun.run import stop_all_containers

    return stop_all_containers()


def collect_summary(plan: Any, dag_id: str, run_id: str, state: str, params: Mapping[str, Any]) -> dict[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from airflow_kfx.summary import summarize

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in tis}
        xcoms = session.query(XComModel).filter(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value"
        )
        results = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in xcoms}
    defaults = {n: s.default for n, s in plan.pipeline.root.inputs.parameters.items() if s.has_default}
    cache_hits = {
        key: bool(value.get("cache_hit")) for key, value in results.items()
        if isinstance(value, Mapping) and "cache_hit" in value
    }
    from airflow_kfx.dag_builder import RUN_START_TASK

    mlflow = results.get((RUN_START_TASK, -1))
    return summarize(
        plan, dag_id=dag_id, run_id=run_id, state=state, params={**defaults, **params},
        states=states, results=results, cache_hits=cache_hits,
        mlflow=mlflow if isinstance(mlflow, Mapping) else None,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _execution_api() -> Iterator[None]:
    """Airflow's Execution API (what the api-server mounts at ``/execution/``) on the
    address ``configure_environment`` chose, in a thread, for the executor's task processes."""
    import threading
    from urllib.parse import urlsplit

    import uvicorn
    from airflow.api_fastapi.app import create_app

    address = urlsplit(os.environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    server = uvicorn.Server(uvicorn.Config(
        create_app(apps="execution"), host=address.hostname or "127.0.0.1", port=address.port or 80, log_level="warning",
    ))
    thread = threading.Thread(target=server.run, name="kfx-execution-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the Execution API did not start on {address.netloc}")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _Progress:
    """Airflow listener: one line per task as it starts and ends."""

    def __init__(self, console: Any, plan: Any) -> None:
        self.console = console
        self.names = {t.task_id: t.kfp_path for t in plan.tasks.values() if t.kind == "executor"}
        self.started: dict[tuple[str, int], float] = {}

    def _name(self, ti: Any) -> str | None:
        name = self.names.get(ti.task_id)
        if name is not None and ti.map_index is not None and ti.map_index >= 0:
            name += f" [{ti.map_index}]"
        return name

    def _quiet(self, ti: Any) -> bool:
        """A loop's later iterations: only their failures are shown (the summary counts them).
        Decided by map index alone: with --parallelism each task reports from its own process."""
        return ti.map_index is not None and ti.map_index >= SHOWN_ITERATIONS

    def _done(self, ti: Any, text: str) -> None:
        name = self._name(ti)
        if name is None or (self._quiet(ti) and "failed" not in text):
            return
        began = self.started.pop((ti.task_id, ti.map_index), None)
        took = f" {time.perf_counter() - began:5.1f}s" if began else ""
        self.console.print(f"  {text} {name}{took}")

    # pluggy hook implementations (airflow.listeners spec)
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        if self._name(task_instance):
            self.started[(task_instance.task_id, task_instance.map_index)] = time.perf_counter()
            if task_instance.map_index == SHOWN_ITERATIONS:
                name = self.names[task_instance.task_id]
                self.console.print(f"  [cyan]…[/cyan] {name} [{SHOWN_ITERATIONS}…]: further iterations run quietly")
            elif not self._quiet(task_instance):
                self.console.print(f"  [cyan]…[/cyan] {self._name(task_instance)}")

    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._done(task_instance, "[green]✓[/green]")

    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._done(task_instance, "[yellow]-[/yellow] skipped")

    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self._done(task_instance, "[red]✗ failed[/red]")
        if self._name(task_instance) is not None:
            lines = str(error).splitlines() if error else []
            tail = "\n".join(lines[:1] + lines[1:][-8:])  # what failed, then the end of its output
            if tail:
                self.console.print(_indent(tail), style="red", markup=False)


def _progress_listener(console: Any, plan: Any) -> _Progress:
    """A _Progress whose methods are registered as Airflow listener hooks."""
    from airflow.listeners import hookimpl  # imported here: Airflow must see KFX's env first

    for hook in ("on_task_instance_running", "on_task_instance_success", "on_task_instance_skipped", "on_task_instance_failed"):
        hookimpl(vars(_Progress)[hook])  # marks the function; pluggy finds it on the instance
    return _Progress(console, plan)


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


class _captured_output:
    """Send everything written to fds 1 and 2 (Airflow's logs, subprocesses) to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        self.file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(self.file, 1)
        os.dup2(self.file, 2)

    def __exit__(self, *exc: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in (*self.saved, self.file):
            os.close(fd)


def _shown_uri(uri: Any, root: str) -> Any:
    """An artifact URI under the pipeline root as the part below it (the table says the root)."""
    if not isinstance(uri, str):
        return uri
    prefix = root.rstrip("/") + "/"
    return uri[len(prefix):] if uri.startswith(prefix) else uri


# A loop with more iterations than this gets one summary row (counts, failures, the
# slowest) and, after its first ones, no progress lines but failures.
SHOWN_ITERATIONS = 5


def _print_summary(
    console: Any, summary: Mapping[str, Any], seconds: float, root: str,
    durations: Mapping[tuple[str, int], float] | None = None,
) -> None:
    """The run as a table; ``durations`` by (KFP task path, map index) name a loop's slowest iteration."""
    from rich.table import Table

    table = Table(title=f"{summary['pipeline']} — run {summary['run_id']}", caption=f"artifacts under {root}")
    table.add_column("task")
    table.add_column("state")
    table.add_column("cache")
    table.add_column("outputs", overflow="fold")
    for name, task in summary["tasks"].items():
        iterations = task.get("iterations")
        if iterations is not None and len(iterations) > SHOWN_ITERATIONS:
            table.add_row(*_loop_row(name, task, durations or {}))
            continue
        for index, instance in enumerate(iterations or [task]):
            label = f"{name} [{index}]" if iterations else name
            cache = "hit" if instance.get("cache_hit") else ""
            table.add_row(label, _colored(instance["state"]), cache, _outputs_text(instance, root))
    console.print(table)
    state = summary["state"]
    console.print(f"[{'green' if state == 'success' else 'red'}]{state}[/] in {seconds:.1f}s"
                  + (f"; outputs: {json.dumps(summary['outputs']['parameters'], default=str)}" if summary["outputs"]["parameters"] else ""))


_COLORS = {"success": "green", "failed": "red", "upstream_failed": "red", "skipped": "yellow"}


def _colored(state: str) -> str:
    color = _COLORS.get(state, "")
    return f"[{color}]{state}[/{color}]" if color else state


def _outputs_text(instance: Mapping[str, Any], root: str) -> str:
    outputs = instance.get("outputs", {})
    values = [f"{k}={json.dumps(v, default=str)[:60]}" for k, v in outputs.get("parameters", {}).items()]
    uris = [f"{k}={_shown_uri(v.get('uri') if isinstance(v, Mapping) else v, root)}"
            for k, v in outputs.get("artifacts", {}).items()]
    return ", ".join(values + uris)


def _loop_row(name: str, task: Mapping[str, Any], durations: Mapping[tuple[str, int], float]) -> tuple[str, ...]:
    """One row for a loop's task: how many iterations ended how, which failed, the slowest."""
    iterations = task["iterations"]
    counts: dict[str, int] = {}
    for instance in iterations:
        counts[instance["state"]] = counts.get(instance["state"], 0) + 1
    state = ", ".join(f"{count} {_colored(state)}" for state, count in sorted(counts.items()))
    hits = sum(1 for instance in iterations if instance.get("cache_hit"))
    notes = []
    failed = [index for index, instance in enumerate(iterations) if instance["state"] in ("failed", "upstream_failed")]
    if failed:
        shown = ", ".join(f"[{index}]" for index in failed[:SHOWN_ITERATIONS])
        notes.append(f"failed: {shown}{' …' if len(failed) > SHOWN_ITERATIONS else ''}")
    timed = {index: durations[(name, index)] for index in range(len(iterations)) if (name, index) in durations}
    if timed:
        slowest = max(timed, key=lambda index: timed[index])
        notes.append(f"slowest: [{slowest}] {timed[slowest]:.1f}s")
    return f"{name} ×{len(iterations)}", state, f"{hits} hits" if hits else "", "; ".join(notes)


def task_durations(plan: Any, dag_id: str, run_id: str) -> dict[tuple[str, int], float]:
    """Seconds each executor task instance ran, by (KFP task path, map index)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    paths = {t.task_id: t.kfp_path for t in plan.tasks.values() if t.kind == "executor"}
    with create_session() as session:
        rows = session.query(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.duration).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        return {(paths[t], i): float(d) for t, i, d in rows if t in paths and d is not None}
