"""DAG-folder parse time: the drop-in with N pipelines against N hand-written DAGs of the
same shape, and what one task's process pays to parse its DAG file.

    .venv/bin/python bench/parse_folder.py [--pipelines 100] [--repeat 3]

Each pipeline is bench/shape12.yaml under its own name (12 container tasks, an If/Else, a
ParallelFor and an ExitHandler: 17 Airflow tasks). Each hand-written DAG has the same
shape in plain Airflow: 12 KubernetesPodOperators (3 of them mapped over a list), a branch
task, a task group and an all-done exit task.

Measured, each in a fresh process that has already imported what Airflow's DAG processor
pre-imports (airflow.sdk and the cncf.kubernetes pod operator), so only the parse counts:
  - folder, cold: DagBag of the drop-in folder, empty translation cache;
  - folder, warm: the same with the cache filled (every later parse of unchanged files);
  - hand-written: DagBag of the N hand-written DAG files;
  - task start, whole folder: parsing the drop-in as a task's process did before it knew
    its DAG (every pipeline);
  - task start, own pipeline: the same with Airflow's parsing context naming one DAG
    (what a task's process does now), for N and for 10 pipelines in the folder.
Prints a table; bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPE = REPO / "bench" / "shape12.yaml"

HAND_WRITTEN = '''
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, TaskGroup, task

def step(task_id, text, **kwargs):
    return KubernetesPodOperator(task_id=task_id, name=task_id, image="alpine:3.20", cmds=["sh", "-c"],
                                 arguments=[f'echo "{{text}}" > /tmp/out'], **kwargs)

with DAG("hand_{index:03d}", schedule=None, params={{"mode": "a"}}):
    final = step("exit", "exit", trigger_rule="all_done")
    with TaskGroup("body") as body:
        first = step("first", "{{{{ params.mode }}}}")

        @task.branch
        def which(mode):
            return "body.left" if mode == "a" else "body.right"

        branch = which(first.output)
        left = step("left", "left")
        branch >> [left, step("right", "right")]
        left >> step("after-left", "x")
        looped = KubernetesPodOperator.partial(task_id="item", name="item", image="alpine:3.20",
                                               cmds=["sh", "-c"]).expand(arguments=[["1"], ["2"], ["3"]])
        first >> looped
        chain = step("c1", "c1")
        first >> chain
        for index in range(2, 6):
            chain = chain >> step(f"chain-{{index}}", "x")
        looped >> step("after-loop", "x")
    body >> final
'''

DROP_IN = (REPO / "dags" / "kfx_dags.py").read_text()

PARSE = '''
import json, os, sys, time
import airflow.sdk  # noqa: F401  (pre-imported by the DAG processor)
import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "dags": len(bag.dags), "tasks": sum(len(d.tasks) for d in bag.dags.values()),
                  "errors": len(bag.import_errors)}))
'''


def parse(target: Path, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PARSE, str(target)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"parsing {target} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def drop_in(folder: Path, count: int) -> Path:
    (folder / "pipelines").mkdir(parents=True)
    text = SHAPE.read_text()
    for index in range(count):
        (folder / "pipelines" / f"shape_{index:03d}.yaml").write_text(
            text.replace("name: shape12", f"name: shape-{index:03d}"))
    (folder / "kfx_dags.py").write_text(DROP_IN)
    return folder / "kfx_dags.py"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipelines", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kfx-bench-parse-"))
    env = {**os.environ, "AIRFLOW_HOME": str(work / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    # As deployed: modules load from their .pyc (the first parse below writes them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    big = drop_in(work / "drop-in", args.pipelines)
    small = drop_in(work / "drop-in-10", 10)
    hand = work / "hand-written"
    hand.mkdir()
    for index in range(args.pipelines):
        (hand / f"hand_{index:03d}.py").write_text(HAND_WRITTEN.format(index=index))

    rows: dict[str, list[float]] = {}
    facts: dict[str, dict[str, float]] = {}

    def measure(label: str, target: Path, extra: dict[str, str], *, fresh_cache: bool) -> None:
        for _ in range(args.repeat):
            cache = work / "cache" / label.replace(" ", "-")
            if fresh_cache:
                shutil.rmtree(cache, ignore_errors=True)
            result = parse(target, {**env, "KFX_CACHE_DIR": str(cache), **extra})
            rows.setdefault(label, []).append(result["seconds"])
            facts[label] = result

    parse(small, {**env, "KFX_CACHE_DIR": str(work / "cache" / "bytecode")})  # writes .pyc files
    measure("drop-in, cold cache", big, {}, fresh_cache=True)
    parse(big, {**env, "KFX_CACHE_DIR": str(work / "cache" / "warm")})  # fill it
    measure("drop-in, warm cache", big, {"KFX_CACHE_DIR": str(work / "cache" / "warm")}, fresh_cache=False)
    measure("hand-written KubernetesPodOperator DAGs", hand, {}, fresh_cache=False)
    # A task's process: Airflow sets the parsing context, then parses the task's DAG file.
    middle = f"shape_{args.pipelines // 2:03d}"
    one = {"KFX_CACHE_DIR": str(work / "cache" / "warm"), "_AIRFLOW_PARSING_CONTEXT_DAG_ID": middle}
    measure("task start: its own pipeline (of the folder's N)", big, one, fresh_cache=False)
    parse(small, {**env, "KFX_CACHE_DIR": str(work / "cache" / "warm")})  # the 10-folder's index
    measure("task start: its own pipeline (of 10)", small, {**one, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "shape_004"},
            fresh_cache=False)
    stale = {"KFX_CACHE_DIR": str(work / "cache" / "warm"), "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "no_such_dag"}
    measure("task start: whole folder (no index entry)", big, stale, fresh_cache=False)

    print(f"{args.pipelines} pipelines; median of {args.repeat} fresh processes; Python {sys.version.split()[0]}")
    print(f"{'what':52} {'median s':>9} {'DAGs':>5} {'tasks':>6}")
    for label, times in rows.items():
        fact = facts[label]
        print(f"{label:52} {statistics.median(times):9.3f} {int(fact['dags']):5d} {int(fact['tasks']):6d}")
    ratio = statistics.median(rows["drop-in, warm cache"]) / statistics.median(rows["hand-written KubernetesPodOperator DAGs"])
    print(f"drop-in (warm) / hand-written: {ratio:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
