"""What the `kubernetes` runtime adds to each task beyond the pod's own run, against the
Kubernetes API double (tests/kube), sync and deferrable, next to the `local` runtime.

    .venv/bin/python bench/kubernetes_overhead.py [--repeat 3]

Pipeline: bench/chain6.yaml (six lightweight components in a row that do no work), run
with `kfx run --no-cache` and MLflow tracking off, so a task is the orchestration around
one trivial container. Modes, each on its own embedded home (one warm-up run first):

  local                  the pod's command as a subprocess of the worker
  kubernetes             KubernetesPodOperator against the double (sync: the worker watches the pod)
  kubernetes-deferrable  the provider's trigger watches the pod, the task resumes to collect

Per component task, from the run's Airflow log ("[DAG TEST] starting" → "end task") and the
double's audit log (when each API request was received and answered):

  total            the task, start to end
  build            task start → the pod's create request (inputs, pod spec)
  run              create → the log stream ends (the pod starts, runs, the container exits)
  collect          log stream end → the delete request (pod phase, outputs read back)
  delete + finish  delete request → task end (delete, XCom, state)

The pod's own run here is the same command the local runtime runs (~0.05 s: `sh` → `python3`
→ KFP's executor), so "added by the kubernetes runtime" is total minus that. Numbers are
medians over the timed runs' 6 tasks each.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PIPELINE = REPO / "bench" / "chain6.yaml"
KFX = REPO / ".venv" / "bin" / "kfx"
MODES = ("local", "kubernetes", "kubernetes-deferrable")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    return datetime.fromisoformat(match.group(1) + "+00:00").timestamp()


def tasks_from_log(log: Path) -> list[dict]:
    """Each component task of a run: start, end, its pod's name, and (local runtime) when
    the pod's command was started and wrote its outputs."""
    lines = [(t, line) for line in log.read_text(errors="replace").splitlines() if (t := stamp(line)) is not None]
    tasks, current = [], None
    for t, line in lines:
        if "[DAG TEST] starting task_id=" in line:
            task_id = line.split("task_id=", 1)[1].split()[0]
            current = {"task": task_id, "start": t}
        elif current is not None and (m := re.search(r"Building pod (\S+) with labels", line)):
            current.setdefault("pod", m.group(1))
            current.setdefault("launched", t)
        elif current is not None and "Wrote executor output file" in line:
            current["wrote"] = t
        elif current is not None and "[DAG TEST] end task" in line:
            current["end"] = t
            if current["task"].startswith("add-to"):
                tasks.append(current)
            current = None
    return tasks


def breakdown(task: dict, audit: list[dict]) -> dict[str, float]:
    total = task["end"] - task["start"]
    if "pod" not in task:
        return {"total": total}
    # Tasks run one after another: a task's requests are those received while it ran (the
    # create request names no pod: it is a POST to the collection).
    mine = [e for e in audit if task["start"] <= e["received"] <= task["end"]]
    create = min((e["received"] for e in mine if e.get("rule") == "create pods"), default=None)
    if create is None:  # the local runtime: no API requests
        return {"total": total, "component": task.get("wrote", task["end"]) - task["launched"]}
    logs_done = max((e["answered"] for e in mine if e.get("rule") == "get pods/log"), default=create)
    delete = min((e["received"] for e in mine if e.get("rule") == "delete pods"), default=task["end"])
    return {
        "total": total,
        "build": create - task["start"],
        "run": logs_done - create,
        "collect": delete - logs_done,
        "delete + finish": task["end"] - delete,
        "requests": float(len(mine)),
    }


def run_mode(mode: str, home: Path, double, repeat: int, scratch: Path) -> list[dict[str, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"KFX_HOME": str(home), "AIRFLOW__KFX__TRACKING": "false",
                "PYTHONPYCACHEPREFIX": str(scratch / "pycache")})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if mode != "local":
        env.update(double.airflow_environment())
    if mode == "kubernetes-deferrable":
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "True"
    runtime = "local" if mode == "local" else "kubernetes"
    rows: list[dict[str, float]] = []
    for i in range(repeat + 1):
        double.audit(clear=True)
        before = set((home / "logs").glob("*.log")) if (home / "logs").exists() else set()
        started = time.perf_counter()
        done = subprocess.run([str(KFX), "run", str(PIPELINE), "--runtime", runtime, "--no-cache"], env=env,
                              cwd=scratch, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{mode}: kfx run failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        (log,) = set((home / "logs").glob("*.log")) - before
        tasks = tasks_from_log(log)
        audit = double.audit()
        print(f"  {mode} {'warm-up' if i == 0 else f'run {i}'}: {wall:.1f} s, "
              f"{len(tasks)} component tasks, {len(audit)} API requests", flush=True)
        if i > 0:
            rows += [breakdown(task, audit) for task in tasks]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from tests.kube.fixtures import kube_double

    scratch = Path(tempfile.mkdtemp(prefix="kfx-bench-k8s-"))
    print(f"scratch: {scratch}; {os.cpu_count()} cores; load {os.getloadavg()}", flush=True)
    try:
        with kube_double(scratch / "kube") as double:
            results = {mode: run_mode(mode, scratch / f"home-{mode}", double, args.repeat, scratch) for mode in MODES}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    component = statistics.median(r["component"] for r in results["local"] if "component" in r)
    print()
    print(f"## Per component task, median of {args.repeat} runs × 6 tasks (seconds)")
    print()
    keys = ["total", "build", "run", "collect", "delete + finish", "requests"]
    print("| mode | " + " | ".join(keys) + " | added beyond the pod's own run |")
    print("| --- |" + " --- |" * (len(keys) + 1))
    for mode, rows in results.items():
        cells = [f"{statistics.median(r[k] for r in rows):.3f}" if all(k in r for r in rows) else "" for k in keys]
        added = statistics.median(r["total"] for r in rows) - component
        print(f"| {mode} | " + " | ".join(cells) + f" | {added:.3f} |")
    print()
    print(f"the pod's own run (local runtime: the command as a process, launch → outputs written): {component:.3f} s")


if __name__ == "__main__":
    main()
