"""`kfx run` against KFP's own local runner on the same six-task pipeline.

    .venv/bin/python bench/run_vs_kfp_local.py [--repeat 3] [--kfp-venv DIR] [--as-is-env] [--no-tracking] [--only kfx|kfp-local] [--serve]

Both sides run bench/chain6.py (six lightweight components in a row, each adding a
constant: the components do no work, so this measures orchestration overhead):

  (a) kfx: ``.venv/bin/kfx run bench/chain6.yaml --no-cache`` in a subprocess, on a
      fresh embedded home (``$KFX_HOME`` = a temp dir). One warm-up run creates the
      SQLite database (``airflow db migrate``) and the cached virtualenv holding
      ``kfp==<version>`` that the six tasks share; then ``--repeat`` timed runs (with
      ``--serve``: through ``kfx serve``, the warm process, started after the warm-up).
  (b) kfp.local: this same script, started with the Python of a throwaway venv
      that has ``kfp==2.16.1`` and pip (``--kfp-venv``, created if missing), calls
      ``kfp.local.init(runner=SubprocessRunner(use_venv=True))`` and then the
      pipeline function ``chain6()`` itself. One warm-up (fills pip's cache), then
      ``--repeat`` timed runs.

The figure for each side is the wall time of the whole command (interpreter start
to exit), median of the timed runs; CPU seconds (user + sys of the process tree)
are shown too, since the machine is shared (2 cores) and wall time is noisy.
For kfx, each run's Airflow log (``$KFX_HOME/logs``) is split into phases, and an
``-X importtime`` run shows what the imports cost; for kfp.local the worker times
each task's venv set-up and its command.

Byte-code: this workplace sets PYTHONDONTWRITEBYTECODE=1 and ``.venv`` (installed
by uv) holds no ``.pyc`` files, so every process would compile its ~3,000 imported
modules from source (about 9 s per ``kfx run``), which no normal install does. By
default both sides therefore run with PYTHONDONTWRITEBYTECODE unset and
PYTHONPYCACHEPREFIX pointing at a temp dir (nothing is written into ``.venv``);
``--as-is-env`` keeps the environment as it is.

kfx runs with the scratch dir as its working directory, so that MLflow tracking's
embedded default store (``./mlflow.db``, ``./mlruns``) lands there and not in the repo;
``--no-tracking`` turns tracking off (``AIRFLOW__KFX__TRACKING=false``). Everything the
script creates lives in one temp dir, removed at the end, except the kfp venv.
bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE_PY = REPO / "bench" / "chain6.py"
PIPELINE_YAML = REPO / "bench" / "chain6.yaml"
KFX = REPO / ".venv" / "bin" / "kfx"
KFX_PYTHON = REPO / ".venv" / "bin" / "python"
KFP_VERSION = "2.16.1"
RUNNERS = {"default": "SubprocessRunner()", "venv": "SubprocessRunner(use_venv=True)"}
EXPECTED = 21


# --------------------------------------------------------------------------- helpers


def timed(argv: list[str], env: dict[str, str], **kwargs) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run argv; return (result, wall seconds, CPU seconds of the process tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def child_env(args: argparse.Namespace, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KFX_VENV_DIR", None)
    if not args.as_is_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    return env


# --------------------------------------------------------------------------- kfx side

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def _ts(line: str) -> float | None:
    m = _STAMP.match(line)
    if not m:
        return None
    return datetime.fromisoformat(m.group(1) + "+00:00").timestamp()


def kfx_phases(log: Path, started_at: float, ended_at: float) -> dict[str, float]:
    """Split one `kfx run` into phases from its Airflow log's timestamps."""
    lines = log.read_text(errors="replace").splitlines()
    stamped = [(t, line) for line in lines if (t := _ts(line)) is not None]
    first = stamped[0][0]

    def at(pattern: str, after: float = 0.0) -> float:
        return next(t for t, line in stamped if t >= after and pattern in line)

    run_created = at("Created dag run.")
    first_start = at("[DAG TEST] starting task_id=")
    api_start = at("Task started", first_start) - first_start
    components: list[dict[str, float]] = []
    plumbing = 0.0  # tasks airflow-kfx adds (e.g. kfx-run-start / kfx-run-end: the MLflow run)
    cursor = first_start
    while True:
        try:
            begin = at("[DAG TEST] starting task_id=", cursor)
        except StopIteration:
            break
        end = at("[DAG TEST] end task", begin)
        cursor = end + 1e-6
        total = end - begin - (api_start if begin == first_start else 0.0)
        try:
            launch = at("Building pod", begin)  # the local runtime then runs the pod's command
            wrote = at("Wrote executor output file", launch)
        except StopIteration:
            launch = wrote = end + 1
        if wrote > end:  # no component subprocess in this task
            plumbing += total
            continue
        venv_build = 0.0
        try:  # only in a run that had to build the component's virtualenv
            building = at("creating a virtual environment", begin)
            if building < launch:
                venv_build = launch - building
        except StopIteration:
            pass
        components.append({"total": total - venv_build, "component": wrote - launch, "venv": venv_build})
    last_end = max(t for t, line in stamped if "[DAG TEST] end task" in line)
    return {
        "virtualenv build (first run only)": sum(c["venv"] for c in components),
        "startup (imports, load + build DAG, DB check)": first - started_at,
        "DAG serialisation + bundle sync + dag run": run_created - first,
        "Execution API start (in the first task)": api_start,
        "kfx-run-start/-end tasks (MLflow run), if any": plumbing,
        "per component task: Airflow + operator overhead": median(
            [c["total"] - c["component"] for c in components]
        ),
        "per component task: component subprocess": median([c["component"] for c in components]),
        "all six component tasks": sum(c["total"] for c in components),
        "after last task (summary, interpreter exit)": ended_at - last_end,
    }


def run_kfx(args: argparse.Namespace, scratch: Path) -> dict:
    home = scratch / "kfx-home"
    env = child_env(args, scratch)
    env["KFX_HOME"] = str(home)
    if args.no_tracking:
        env["AIRFLOW__KFX__TRACKING"] = "false"
    argv = [str(KFX), "run", str(PIPELINE_YAML), "--no-cache", "--json", str(scratch / "kfx.json")]
    runs = []
    server = None
    for i in range(args.repeat + 1):
        if args.serve and i == 1:  # after the warm-up run made the database: the warm process
            server = start_server(env, home, scratch)
        la = load()
        wall_started = time.time()
        # cwd: the scratch dir, where MLflow's embedded default store (./mlflow.db, ./mlruns) lands.
        result, wall, cpu = timed(argv, env, cwd=scratch)
        wall_ended = time.time()
        if result.returncode != 0:
            raise SystemExit(f"kfx run failed:\n{result.stdout}\n{result.stderr}")
        summary = json.loads((scratch / "kfx.json").read_text())
        output = summary["outputs"]["parameters"].get("Output")
        assert output == EXPECTED, f"kfx: pipeline output {output!r}, expected {EXPECTED}"
        dag_test = float(re.search(r"success in ([\d.]+)s", result.stdout).group(1))
        log = max((home / "logs").glob("chain6-*.log"), key=lambda p: p.stat().st_mtime)
        served = "run by the warm process" in result.stdout
        if server is not None and not served:
            raise SystemExit(f"kfx serve did not serve the run:\n{result.stdout}\n{result.stderr}")
        phases = {} if served else kfx_phases(log, wall_started, wall_ended)
        kind = "warm-up" if i == 0 else f"run {i}" + (" (kfx serve)" if served else "")
        print(
            f"  kfx {kind}: {wall:.1f} s wall, {cpu:.1f} s CPU, dag.test {dag_test:.1f} s (load {la})",
            flush=True,
        )
        runs.append({"wall": wall, "cpu": cpu, "dag_test": dag_test, "phases": phases, "load": la})
    if server is not None:
        server.terminate()
        server.wait(timeout=60)
    return {"warmup": runs[0], "runs": runs[1:]}


def start_server(env: dict[str, str], home: Path, scratch: Path) -> subprocess.Popen:
    """``kfx serve`` for the kfx home, ready: the timed runs go through it (its CPU is not in
    the runs' CPU figure, which counts only the kfx run processes)."""
    log = scratch / "serve.log"
    server = subprocess.Popen([str(KFX), "serve"], env=env, cwd=scratch, stdout=subprocess.DEVNULL,
                              stderr=log.open("wb"))
    started = time.perf_counter()
    while "serving kfx run" not in log.read_text():
        if server.poll() is not None or time.perf_counter() - started > 300:
            raise SystemExit(f"kfx serve did not start:\n{log.read_text()}")
        time.sleep(0.2)
    print(f"  kfx serve: warm in {time.perf_counter() - started:.1f} s", flush=True)
    return server


def kfx_imports(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """Seconds per import step in a fresh interpreter (byte-code cache warm)."""
    env = child_env(args, scratch)
    env["AIRFLOW_HOME"] = str(scratch / "kfx-home" / "airflow")
    code = (
        "import time, json\n"
        "r = {}\n"
        "t = time.perf_counter(); import airflow_kfx.run, airflow_kfx.spec.loader; r['airflow_kfx CLI + spec loader'] = time.perf_counter() - t\n"
        "t = time.perf_counter(); import airflow.sdk; r['airflow + airflow.sdk'] = time.perf_counter() - t\n"
        "t = time.perf_counter(); import airflow_kfx.operators.container, airflow_kfx.operators.control; "
        "r['operators (cncf.kubernetes provider, kubernetes clients)'] = time.perf_counter() - t\n"
        "t = time.perf_counter(); import airflow.sdk.execution_time.supervisor, airflow.sdk.execution_time.task_runner; "
        "r['task runner + supervisor'] = time.perf_counter() - t\n"
        "t = time.perf_counter(); import airflow.api_fastapi.execution_api.app; r['execution API modules'] = time.perf_counter() - t\n"
        "print(json.dumps(r))\n"
    )
    result = subprocess.run(
        [str(KFX_PYTHON), "-X", "importtime", "-c", code], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    # Where import time goes: -X importtime's self time, added up per distribution
    # (top-level package; airflow.providers.* counted apart from airflow core).
    tops: dict[str, float] = {}
    for line in result.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| (.*)$", line)
        if not m:
            continue
        parts = m.group(2).strip().split(".")
        root = ".".join(parts[:3]) if parts[:2] == ["airflow", "providers"] else parts[0]
        tops[root] = tops.get(root, 0.0) + int(m.group(1)) / 1e6
    return {"steps": steps, "top_packages": dict(sorted(tops.items(), key=lambda kv: -kv[1])[:12])}


# --------------------------------------------------------------------------- kfp.local side


def ensure_kfp_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    check = f"import kfp, sys; sys.exit(kfp.__version__ != {KFP_VERSION!r})"
    if python.exists() and subprocess.run([str(python), "-c", check]).returncode == 0:
        return python
    print(f"creating {path} with kfp=={KFP_VERSION} (pip included)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"kfp=={KFP_VERSION}",
        ],
        check=True,
    )
    return python


def run_kfp_local(args: argparse.Namespace, scratch: Path) -> dict:
    python = ensure_kfp_venv(Path(args.kfp_venv))
    env = child_env(args, scratch)
    runs = []
    for i in range(args.repeat + 1):
        root = scratch / f"kfp-local-root-{i}"
        la = load()
        result, wall, cpu = timed(
            [str(python), str(Path(__file__).resolve()), "--kfp-local-worker", str(root),
             "--kfp-runner", args.kfp_runner], env
        )
        if result.returncode != 0:
            raise SystemExit(f"kfp.local run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["output"] == EXPECTED, f"kfp.local: pipeline output {report['output']!r}"
        kind = "warm-up" if i == 0 else f"run {i}"
        print(
            f"  kfp.local {kind}: {wall:.1f} s wall, {cpu:.1f} s CPU, pipeline call {report['pipeline']:.1f} s (load {la})",
            flush=True,
        )
        runs.append({"wall": wall, "cpu": cpu, "load": la, **report})
    return {"warmup": runs[0], "runs": runs[1:]}


def kfp_local_worker(root: str, use_venv: bool) -> None:
    """Runs inside the kfp venv: the pipeline function on kfp.local, timed per task."""
    import contextlib
    import importlib.util

    t0 = time.perf_counter()
    from kfp import local
    from kfp.local import subprocess_task_handler as handler

    imported = time.perf_counter() - t0
    venv_setup: list[float] = []
    commands: list[float] = []
    original_env = handler.environment
    original_run = handler.run_local_subprocess

    @contextlib.contextmanager
    def environment(*a, **k):
        started = time.perf_counter()
        with original_env(*a, **k) as python:
            venv_setup.append(time.perf_counter() - started)
            yield python

    def run_local_subprocess(full_command):
        started = time.perf_counter()
        try:
            return original_run(full_command)
        finally:
            commands.append(time.perf_counter() - started)

    handler.environment = environment
    handler.run_local_subprocess = run_local_subprocess

    spec = importlib.util.spec_from_file_location("chain6", PIPELINE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    local.init(runner=local.SubprocessRunner(use_venv=use_venv), pipeline_root=root)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # kfp.local prints task logs
        task = module.chain6()
    pipeline = time.perf_counter() - started
    output = task.output if hasattr(task, "output") else task
    print(
        json.dumps(
            {
                "output": output,
                "import_kfp": imported,
                "pipeline": pipeline,
                "venv_setup": venv_setup,
                "commands": commands,
            }
        )
    )


# --------------------------------------------------------------------------- report


def report(kfx: dict, kfp_local: dict, imports: dict, args: argparse.Namespace) -> None:
    print()
    print(
        f"## chain6: `kfx run --no-cache` vs kfp.local {RUNNERS[args.kfp_runner]}, median of {args.repeat}"
    )
    print(
        f"byte-code: {'as the environment has it' if args.as_is_env else 'cached (PYTHONPYCACHEPREFIX)'}; "
        f"kfx MLflow tracking: {'off' if args.no_tracking else 'default (on, embedded SQLite store)'}"
    )
    print()
    print("| | wall (median) | CPU (median) | runs (wall) |")
    print("| --- | --- | --- | --- |")
    kfx_name = "kfx run --no-cache" + (" (served by kfx serve)" if args.serve else "")
    for name, side in ((kfx_name, kfx), (f"kfp.local {RUNNERS[args.kfp_runner]}", kfp_local)):
        walls = [r["wall"] for r in side["runs"]]
        cpus = [r["cpu"] for r in side["runs"]]
        print(
            f"| {name} | {median(walls):.1f} s | {median(cpus):.1f} s | {', '.join(f'{w:.1f}' for w in walls)} |"
        )
    w = kfx["warmup"]
    print(f"| kfx first run (DB migration + venv build) | {w['wall']:.1f} s | {w['cpu']:.1f} s | |")
    w = kfp_local["warmup"]
    print(f"| kfp.local warm-up (fills pip cache) | {w['wall']:.1f} s | {w['cpu']:.1f} s | |")
    print()
    print("kfx phases (median over the timed runs, from the Airflow log):")
    print()
    print("| phase | seconds |")
    print("| --- | --- |")
    for key in kfx["runs"][0]["phases"]:  # none when served: the run log starts mid-process
        if key.startswith("virtualenv build"):
            continue
        print(f"| {key} | {median([r['phases'][key] for r in kfx['runs']]):.2f} |")
    w = kfx["warmup"]["phases"]
    print(
        f"| (warm-up: startup incl. `airflow db migrate`) | {w['startup (imports, load + build DAG, DB check)']:.2f} |"
    )
    print(
        f"| (warm-up: virtualenv build with kfp=={KFP_VERSION}) | {w['virtualenv build (first run only)']:.2f} |"
    )
    print()
    print("kfx imports in a fresh interpreter (seconds, in order):")
    print()
    for key, value in imports["steps"].items():
        print(f"- {key}: {value:.2f}")
    print(
        "- self time by package (-X importtime, which inflates it): "
        + ", ".join(f"{k} {v:.2f}" for k, v in imports["top_packages"].items())
    )
    print()
    runs = kfp_local["runs"]
    print("kfp.local (median over the timed runs):")
    print()
    print(
        f"- import kfp: {median([r['import_kfp'] for r in runs]):.2f} s; pipeline call: {median([r['pipeline'] for r in runs]):.1f} s"
    )
    print(
        f"- per task: fresh venv + pip upgrade pip/setuptools/wheel: {median([median(r['venv_setup']) for r in runs]):.1f} s; "
        f"command (pip install kfp + component): {median([median(r['commands']) for r in runs]):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kfp-venv", default="/tmp/kfx-bench-kfp-venv")
    parser.add_argument(
        "--as-is-env", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as the environment has it"
    )
    parser.add_argument(
        "--no-tracking", action="store_true", help="kfx: AIRFLOW__KFX__TRACKING=false (no MLflow run)"
    )
    parser.add_argument("--only", choices=["kfx", "kfp-local"])
    parser.add_argument(
        "--serve", action="store_true", help="kfx: the timed runs go through a warm process (kfx serve)"
    )
    parser.add_argument(
        "--kfp-runner", choices=sorted(RUNNERS), default="default",
        help="kfp.local's runner: its default SubprocessRunner() (tasks in the kfp venv's Python) or use_venv=True",
    )
    parser.add_argument("--kfp-local-worker", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kfp_local_worker:
        kfp_local_worker(args.kfp_local_worker, use_venv=args.kfp_runner == "venv")
        return
    scratch = Path(tempfile.mkdtemp(prefix="kfx-bench-"))
    print(
        f"scratch: {scratch}; python {sys.version.split()[0]}; {os.cpu_count()} cores; load {load()}",
        flush=True,
    )
    try:
        kfx = kfp_local = imports = None
        if args.only != "kfp-local":
            kfx = run_kfx(args, scratch)
            imports = kfx_imports(args, scratch)
        if args.only != "kfx":
            kfp_local = run_kfp_local(args, scratch)
        if kfx and kfp_local:
            report(kfx, kfp_local, imports, args)
        else:
            print(json.dumps({"kfx": kfx, "imports": imports, "kfp_local": kfp_local}, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
