"""One artifact produced once and read by three consumers: copies, bytes and memory.

    .venv/bin/python bench/artifact_fanout.py [--size-mib 1024] [--modes shared,s3]

Pipeline: bench/fanout.yaml (``produce`` writes SIZE MiB; ``consume-1..3`` read it all
and report the size, a checksum, the file they opened (device:inode), their own bytes
written and peak memory). ``kfx run --runtime local --no-cache``, MLflow tracking off.

  shared  the pipeline root is a local folder (a shared volume, as a ReadWriteMany claim
          or a CSI bucket mount would be on a cluster): consumers should open the
          producer's file itself, and the root should hold one copy.
  s3      the pipeline root is ``s3://`` on moto's S3 server (in this process): the
          launcher uploads the producer's file once and each consumer's launcher
          downloads it once, streaming (its memory should not grow with the file).

Reported per mode: the run's wall time, each task's duration (Airflow log), bytes stored
under the root, what the consumers saw, how many downloads the launchers logged, and the
peak resident memory of the launcher processes (sampled every 50 ms with psutil) and of
the consumers (their own ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
PIPELINE = REPO / "bench" / "fanout.yaml"
KFX = REPO / ".venv" / "bin" / "kfx"


class PeakMemory:
    """The largest RSS seen of any process whose command line contains ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker, self.peak, self.seen = marker, 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.05):
            for process in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                cmdline = " ".join(process.info["cmdline"] or [])
                if self.marker in cmdline and process.info["memory_info"] is not None:
                    self.seen.add(process.info["pid"])
                    self.peak = max(self.peak, process.info["memory_info"].rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(mode: str, size_mib: int, scratch: Path, s3: object | None) -> dict:
    from kubernetes_overhead import stamp

    home = scratch / f"home-{mode}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update({"KFX_HOME": str(home), "AIRFLOW__KFX__TRACKING": "false",
                "PYTHONPYCACHEPREFIX": str(scratch / "pycache")})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if mode == "s3":
        bucket = s3.new_bucket("fanout")  # type: ignore[attr-defined]
        env.update({"AIRFLOW__KFX__PIPELINE_ROOT": f"s3://{bucket}/root",
                    "AIRFLOW_CONN_AWS_DEFAULT": s3.airflow_conn})  # type: ignore[attr-defined]
    argv = [str(KFX), "run", str(PIPELINE), "-p", f"size_mib={size_mib}", "--runtime", "local", "--no-cache",
            "--json", str(scratch / f"{mode}.json")]
    with PeakMemory("airflow_kfx.launcher") as launchers:
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=scratch, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{mode}: kfx run failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    summary = json.loads((scratch / f"{mode}.json").read_text())
    log = next((home / "logs").glob("*.log")).read_text(errors="replace")
    durations, begun = {}, {}
    for line in log.splitlines():
        t = stamp(line)
        if t is None:
            continue
        if m := re.search(r"\[DAG TEST\] starting task_id=(\S+)", line):
            begun[m.group(1)] = t
        elif (m := re.search(r"\[DAG TEST\] end task task_id=(\S+)", line)) and m.group(1) in begun:
            durations[m.group(1)] = t - begun[m.group(1)]
    if mode == "s3":
        stored = sum(o["Size"] for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
                     for o in page.get("Contents", []))
    else:
        stored = disk_bytes(home / "artifacts")
    tasks = summary["tasks"]
    return {
        "wall": wall,
        "durations": {k: v for k, v in durations.items() if k.startswith(("produce", "consume"))},
        "stored_bytes": stored,
        "producer_file": tasks["produce"]["outputs"]["parameters"]["Output"],
        "consumers": {k: v["outputs"]["parameters"]["Output"] for k, v in tasks.items() if k.startswith("consume")},
        "downloads": len(re.findall(r"downloaded \S+/produce/0/data -> ", log)),
        "launcher_processes": len(launchers.seen),
        "launcher_peak_rss": launchers.peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--modes", default="shared,s3")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kfx-bench-fanout-"))
    print(f"scratch: {scratch}; {os.cpu_count()} cores; load {os.getloadavg()}; {args.size_mib} MiB", flush=True)
    results = {}
    try:
        s3 = None
        if "s3" in args.modes:
            from tests.s3_server import S3Server

            s3 = S3Server().start()
        for mode in args.modes.split(","):
            results[mode] = run(mode, args.size_mib, scratch, s3)
            print(f"  {mode}: {results[mode]['wall']:.1f} s", flush=True)
        if s3 is not None:
            s3.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    size = args.size_mib * 1024 * 1024
    print()
    print(f"## One {args.size_mib} MiB artifact, three consumers")
    print()
    print("| root | run (wall) | produce | consumers (each) | stored under the root | consumers opened the producer's file | "
          "consumer bytes written | downloads | launcher peak RSS | consumer peak RSS |")
    print("| --- |" + " --- |" * 9)
    for mode, r in results.items():
        consumers = r["consumers"].values()
        same = sum(c["file"] == r["producer_file"] for c in consumers)
        each = ", ".join(f"{v:.1f}" for k, v in sorted(r["durations"].items()) if k.startswith("consume"))
        ok = all(c["size"] == size for c in consumers) and len({c["sha256"] for c in consumers}) == 1
        print(f"| {mode} | {r['wall']:.1f} s | {r['durations'].get('produce', float('nan')):.1f} s | {each} s | "
              f"{r['stored_bytes'] / size:.3f} × the artifact | {same} of 3 | "
              f"{max(c['write_bytes'] for c in consumers):,} B | {r['downloads']} | "
              f"{r['launcher_peak_rss'] / 2**20:.0f} MiB ({r['launcher_processes']} processes) | "
              f"{max(c['max_rss_kib'] for c in consumers) / 1024:.0f} MiB |" + ("" if ok else " (WRONG BYTES)"))


if __name__ == "__main__":
    main()
