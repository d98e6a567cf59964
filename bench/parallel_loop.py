"""``kfx run --parallelism``: does a loop of sleeping tasks grow by its slowest iteration
or by the sum of them? (issue 12, target 2)

    .venv/bin/python bench/parallel_loop.py [--seconds 5] [--parallelism 8] [--as-is-env]

Runs tests/fixtures/pipelines/sleepy_loops.yaml (two ParallelFor loops over ``items``,
each iteration sleeping ``seconds``; the second loop has ``parallelism=2``) with 2 and
with 8 items, one at a time (the default, in-process ``dag.test()``) and with
``--parallelism N`` (Airflow's LocalExecutor), MLflow tracking on, on a fresh embedded
home each (after one warm-up run that creates the database and the component
virtualenv). Prints the wall time of each run and, per mode, what going from 2 to 8
items added. Target: with ``--parallelism 8`` the growth is at most 15 s for 5 s naps
(one at a time it is 2 loops × 6 × 5 s = 60 s of sleep).

Byte-code as in bench/run_vs_kfp_local.py: PYTHONDONTWRITEBYTECODE unset and
PYTHONPYCACHEPREFIX in a temp dir, so processes do not recompile every module
(``--as-is-env`` keeps the environment). bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "tests" / "fixtures" / "pipelines" / "sleepy_loops.yaml"
KFX = Path(sys.executable).parent / "kfx"


def run(home: Path, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(KFX), "run", str(PIPELINE), *args], env={**env, "KFX_HOME": str(home)},
                          cwd=home, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"kfx run {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--as-is-env", action="store_true")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kfx-parallel-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    if not options.as_is_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    try:
        home = scratch / "home"
        home.mkdir()
        print(f"{os.cpu_count()} CPUs; naps of {options.seconds:g} s; warm-up …", flush=True)
        run(home, env, "-p", "items=[1]", "-p", "seconds=0")
        results: dict[str, dict[int, float]] = {}
        for mode, extra in (("one at a time", []), (f"--parallelism {options.parallelism}",
                                                    ["--parallelism", str(options.parallelism)])):
            for count in (2, 8):
                items = "[" + ", ".join(str(i) for i in range(count)) + "]"
                took = run(home, env, "--no-cache", "-p", f"items={items}", "-p", f"seconds={options.seconds:g}", *extra)
                results.setdefault(mode, {})[count] = took
                print(f"  {mode:>16}: {count} items → {took:6.1f} s", flush=True)
        print()
        for mode, times in results.items():
            print(f"{mode:>16}: 2 → 8 items adds {times[8] - times[2]:5.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
