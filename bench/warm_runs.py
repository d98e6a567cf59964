"""What a warm ``kfx`` process would cost per run (issue 12, target 1): the six-task chain
run several times with ``dag.test()`` in one process, after the same set-up ``kfx run``
does (embedded home, GC thresholds, MLflow tracking on a SQLite store).

    .venv/bin/python bench/warm_runs.py [--runs 3] [--hand-written]

The first run pays the Execution API's start and MLflow's first run; the later ones are
what a long-lived process serving ``kfx run`` requests (``kfx serve``) pays.
``--hand-written`` runs Airflow's floor instead: a hand-written DAG of six chained
PythonOperators that do nothing, the same way — what any run of six tasks through Airflow
costs before a pod, MLflow or airflow-kfx. bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAIN = REPO / "bench" / "chain6.yaml"


HAND_WRITTEN = """
import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def nothing():
    return None


with DAG("six_no_ops", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    previous = None
    for index in range(6):
        step = PythonOperator(task_id=f"step{index}", python_callable=nothing)
        if previous is not None:
            previous >> step
        previous = step
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hand-written", action="store_true", help="six no-op PythonOperators instead")
    args = parser.parse_args()
    started = time.perf_counter()
    from airflow_kfx.run import GC_THRESHOLDS, configure_environment, ensure_database

    gc.set_threshold(*GC_THRESHOLDS)
    home = Path(tempfile.mkdtemp(prefix="kfx-warm-"))
    configure_environment(home, "local")
    ensure_database(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    from airflow_kfx.config import CACHE_PARAM
    from airflow_kfx.dag_builder import build_dag
    from airflow_kfx.spec.loader import load_pipeline_file

    dag_file = home / "airflow" / "dags" / "kfx_run_pipeline.py"
    if args.hand_written:
        dag_file.write_text(HAND_WRITTEN)
        namespace: dict = {}
        exec(compile(HAND_WRITTEN, str(dag_file), "exec"), namespace)
        dag = namespace["dag"]
    else:
        dag_file.write_text(f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(CHAIN)!r})\n")
        dag = build_dag(load_pipeline_file(CHAIN))
    dag.fileloc = str(dag_file)
    print(f"set-up (imports, database migration, DAG): {time.perf_counter() - started:.2f} s", flush=True)
    for index in range(args.runs):
        began = time.perf_counter()
        run = dag.test(run_conf=None if args.hand_written else {CACHE_PARAM: False})
        print(f"run {index + 1}: {time.perf_counter() - began:.2f} s ({run.state})", flush=True)


if __name__ == "__main__":
    main()
