"""Scale: pipelines of 10/100/1,000 tasks and a ParallelFor over 1,000 items — load time
and memory, then runs through Airflow's real scheduler (LocalExecutor, PostgreSQL) against
hand-written DAGs of the same shape and number of trivial tasks (issue 12, target 4).

    .venv/bin/python bench/scale.py [--sizes 10 100 1000] [--run-size 1000] [--parallelism 4]
                                    [--executors airflow_kfx.executors.KfxLocalExecutor LocalExecutor]

1. Compiles bench/scale_pipelines.py with the real KFP SDK (.venv-kfp): ``tree_<n>`` (n
   container tasks as a binary tree, each adding one to its parent's output) and ``loop``
   (``make-items(count)`` → ``ParallelFor(parallelism=3)`` of ``double`` → ``add-up`` over
   ``dsl.Collected``).
2. Load: for each size, a fresh process that has pre-imported what the DAG processor
   pre-imports times ``load_pipeline`` (compiled YAML → Airflow DAG) with an empty and with
   a warm translation cache, and the growth of its resident memory (psutil, sampled in the
   process itself); the same for a hand-written Airflow DAG of the same tree.
3. Run (skipped with ``--run-size 0``), once per ``--executors`` entry (default airflow-kfx's
   ``KfxLocalExecutor``; ``LocalExecutor`` is Airflow's own, whose task processes import the
   pod operator, airflow-kfx and MLflow themselves): api-server, scheduler and DAG processor
   on a new PostgreSQL database (tests/airflow_stack.py), ``[core] parallelism`` N, the ``local``
   runtime, MLflow tracking off (``--tracking`` runs an ``mlflow server`` too), caching off.
   Four runs, one after another: the hand-written tree and ``tree_<run-size>``, then the
   hand-written loop and ``loop`` with ``count=<run-size>``. For each: wall time from the
   first task's start to the last task's end (Airflow's own task-instance records), tasks
   per minute, the most iterations of the loop running at once (must not pass the limit),
   and the collected total (must be the sum of 2·i).

The hand-written DAGs use TaskFlow ``@task`` functions, the cheapest trivial task Airflow
has, so the difference per task is everything airflow-kfx adds (resolving inputs, the pod
spec, the command as a child process, outputs written to the pipeline root, the XCom).
bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KFP_PYTHON = REPO / ".venv-kfp" / "bin" / "python"
LOOP_LIMIT = 3

HAND_TREE = '''
from airflow.sdk import DAG, task

@task
def plus_one(value: int) -> int:
    return value + 1

with DAG("hand_tree_{size}", schedule=None):
    tasks = [plus_one.override(task_id="plus-one")(0)]
    for index in range(1, {size}):
        tasks.append(plus_one.override(task_id=f"plus-one-{{index + 1}}")(tasks[(index - 1) // 2]))
'''

HAND_LOOP = '''
from airflow.sdk import DAG, task

@task
def make_items(count: int) -> list[int]:
    return list(range(int(count)))

@task(max_active_tis_per_dagrun={limit})
def double(value: int) -> int:
    return value * 2

@task
def add_up(values) -> int:
    return sum(values)

with DAG("hand_loop", schedule=None, params={{"count": 10}}):
    add_up(double.expand(value=make_items("{{{{ params.count }}}}")))
'''

LOAD = '''
import json, os, sys, time
import psutil
import airflow.sdk  # noqa: F401  (pre-imported by the DAG processor)
import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401
from airflow.dag_processing.dagbag import DagBag
process = psutil.Process()
before = process.memory_info().rss
started = time.perf_counter()
if sys.argv[1].endswith(".py"):
    dags = list(DagBag(dag_folder=sys.argv[1], safe_mode=False).dags.values())
else:
    from airflow_kfx import load_pipeline
    dags = [load_pipeline(sys.argv[1])]
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rss_mib": (process.memory_info().rss - before) / 2**20,
                  "tasks": sum(len(dag.tasks) for dag in dags)}))
'''


def compile_pipelines(out: Path, sizes: list[int]) -> None:
    subprocess.run([str(KFP_PYTHON), str(REPO / "bench" / "scale_pipelines.py"), str(out), *map(str, sizes),
                    "--limit", str(LOOP_LIMIT)], check=True)


def measure_load(target: Path, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", LOAD, str(target)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"loading {target} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_table(work: Path, sizes: list[int], env: dict[str, str]) -> None:
    print("\n| tasks | load, cold cache | load, warm cache | memory growth (warm) | Airflow tasks "
          "| hand-written DAG: parse | its memory growth |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        cache = work / f"cache-{size}"
        pipeline = work / "pipelines" / f"tree_{size}.yaml"
        cold = measure_load(pipeline, {**env, "KFX_CACHE_DIR": str(cache)})
        warm = measure_load(pipeline, {**env, "KFX_CACHE_DIR": str(cache)})
        hand_file = work / "hand" / f"hand_tree_{size}.py"
        hand_file.parent.mkdir(exist_ok=True)
        hand_file.write_text(HAND_TREE.format(size=size))
        hand = measure_load(hand_file, env)
        print(f"| {size} | {cold['seconds']:.3f} s | {warm['seconds']:.3f} s | {warm['rss_mib']:.1f} MiB "
              f"| {warm['tasks']:.0f} | {hand['seconds']:.3f} s | {hand['rss_mib']:.1f} MiB |", flush=True)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda event: (event[0], event[1]))
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def run_one(stack, dag_id: str, conf: dict, loop_task: str | None) -> dict[str, object]:
    run_id = stack.trigger(dag_id, conf)
    started = time.monotonic()
    state = stack.wait_for_run(dag_id, run_id, timeout=4 * 3600)
    waited = time.monotonic() - started
    rows = stack.query("select task_id, map_index, state, start_date, end_date from task_instance "
                       "where dag_id = %s and run_id = %s", dag_id, run_id)
    ran = [row for row in rows if row[3] is not None and row[4] is not None]
    first = min(row[3] for row in ran)
    last = max(row[4] for row in ran)
    span = _seconds(first, last)
    result: dict[str, object] = {
        "dag": dag_id, "state": state, "tasks": len(rows),
        "succeeded": sum(1 for row in rows if row[2] == "success"),
        "span_s": round(span, 1), "trigger_to_done_s": round(waited, 1),
        "tasks_per_min": round(len(ran) / span * 60, 1),
        "task_s_mean": round(sum(_seconds(row[3], row[4]) for row in ran) / len(ran), 2),
    }
    if loop_task:
        loop = [(row[3], row[4]) for row in ran if row[0].split(".")[-1] == loop_task]
        result["iterations"] = len(loop)
        result["most_iterations_at_once"] = most_at_once(loop)
    return result | {"run_id": run_id}


def run_table(work: Path, size: int, parallelism: int, tracking: bool, executor: str) -> None:
    sys.path.insert(0, str(REPO))
    from tests.airflow_stack import airflow_stack

    dags = {"kfx_dags.py": (REPO / "dags" / "kfx_dags.py").read_text(),
            f"hand_tree_{size}.py": HAND_TREE.format(size=size),
            "hand_loop.py": HAND_LOOP.format(limit=LOOP_LIMIT)}
    home = work / f"airflow-{executor.rsplit('.', 1)[-1]}"
    (home / "dags" / "pipelines").mkdir(parents=True)
    for name in (f"tree_{size}.yaml", "loop.yaml"):
        shutil.copy(work / "pipelines" / name, home / "dags" / "pipelines" / name)
    env = {"AIRFLOW__CORE__EXECUTOR": executor, "AIRFLOW__CORE__PARALLELISM": str(parallelism), "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
           "AIRFLOW__KFX__RUNTIME": "local", "AIRFLOW__KFX__PIPELINE_ROOT": str(work / "artifacts"),
           "AIRFLOW__KFX__TRACKING": "true" if tracking else "false", "KFX_CACHE_DIR": str(work / "cache-run"),
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "600"}
    mlflow = None
    if tracking:
        port = 15000 + os.getpid() % 1000
        mlflow = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                                   "--port", str(port), "--backend-store-uri", f"sqlite:///{work}/mlflow.db"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    try:
        with airflow_stack(home, dags={}, env=env) as stack:
            for name, text in dags.items():
                (home / "dags" / name).write_text(text)
            runs = [run_one(stack, f"hand_tree_{size}", {}, None),
                    run_one(stack, f"tree_{size}", {"kfx_cache": False}, None),
                    run_one(stack, "hand_loop", {"count": size}, "double")]
            total = stack.query("select value from xcom where dag_id = 'hand_loop' and task_id = 'add_up' "
                                "and run_id = %s", runs[-1]["run_id"])
            print(f"\nhand-written loop total (XCom): {total[0][0] if total else None}")
            runs.append(run_one(stack, "loop", {"count": size, "kfx_cache": False}, "double"))
            kfx_total = sorted((work / "artifacts").rglob("total"), key=lambda path: path.stat().st_mtime)
            print(f"kfx loop total (pipeline root): {kfx_total[-1].read_text().strip()}; "
                  f"expected: {sum(2 * i for i in range(size))}\n")
            print(f"executor: {executor}")
            print("| DAG | state | tasks | succeeded | first start → last end | tasks/min | mean task "
                  "| most iterations at once |")
            print("|---|---|---|---|---|---|---|---|")
            for run in runs:
                print(f"| {run['dag']} | {run['state']} | {run['tasks']} | {run['succeeded']} | {run['span_s']} s "
                      f"| {run['tasks_per_min']} | {run['task_s_mean']} s | {run.get('most_iterations_at_once', '')} |")
    finally:
        if mlflow is not None:
            mlflow.terminate()
            mlflow.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--run-size", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--tracking", action="store_true", help="MLflow tracking on (an mlflow server)")
    parser.add_argument("--executors", nargs="+", default=["airflow_kfx.executors.KfxLocalExecutor"],
                        help="one stack each, all four runs on each (LocalExecutor: Airflow's own)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kfx-scale-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(work / "airflow-load"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # modules from .pyc, as deployed
    try:
        sizes = sorted(set(options.sizes) | ({options.run_size} if options.run_size else set()))
        compile_pipelines(work / "pipelines", sizes)
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; scratch {work}", flush=True)
        load_table(work, sizes, env)
        if options.run_size:
            for executor in options.executors:
                run_table(work, options.run_size, options.parallelism, options.tracking, executor)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
