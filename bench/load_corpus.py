"""How long loading KFP files into Airflow DAGs takes (DAG-parse time is a product feature).

    .venv/bin/python bench/load_corpus.py [--repeat N]

Measures, over every v2 pipeline/component in ../shared/kfp-corpus:
  - import: `import airflow_kfx` and the operator modules (paid once per parse process);
  - cold: parse + validate + plan + build the DAG, with the content-hash cache empty;
  - warm: the same with the cache filled (what every later parse of an unchanged file costs).
Prints a table; bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("KFX_KFP_CORPUS", REPO.parent / "shared" / "kfp-corpus"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["KFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="kfx-bench-cache-")
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kfx-bench-airflow-"))

    started = time.perf_counter()
    import airflow.sdk  # noqa: F401  (Airflow itself: already imported in a DAG processor)

    airflow_import = time.perf_counter() - started
    started = time.perf_counter()
    import airflow_kfx.operators.container  # noqa: F401
    import airflow_kfx.operators.control  # noqa: F401
    from airflow_kfx.exceptions import KfxError
    from airflow_kfx.loading import load_pipeline

    kfx_import = time.perf_counter() - started

    manifest = json.loads((CORPUS / "corpus-manifest.json").read_text())["files"]
    files = [CORPUS / f["path"] for f in manifest if f["kind"] in ("v2 pipeline IR", "v2 component")]
    sizes = sum(p.stat().st_size for p in files)

    def load_all() -> tuple[float, list[float], int]:
        per_file = []
        tasks = 0
        begin = time.perf_counter()
        for path in files:
            t = time.perf_counter()
            try:
                tasks += len(load_pipeline(path).tasks)
            except KfxError:
                pass
            per_file.append(time.perf_counter() - t)
        return time.perf_counter() - begin, per_file, tasks

    cold_total, cold_files, tasks = load_all()
    warm_runs = [load_all() for _ in range(args.repeat)]
    warm_total = statistics.median(r[0] for r in warm_runs)
    warm_files = warm_runs[-1][1]
    print(f"files: {len(files)} ({sizes / 1e6:.2f} MB), Airflow tasks built: {tasks}")
    print(f"import airflow.sdk: {airflow_import:.2f} s; import airflow_kfx operators (+ cncf.kubernetes): {kfx_import:.2f} s")
    print(f"cold (empty cache): total {cold_total:.2f} s, median {statistics.median(cold_files) * 1e3:.1f} ms/file, max {max(cold_files) * 1e3:.0f} ms")
    print(f"warm (cached, median of {args.repeat}): total {warm_total:.2f} s, median {statistics.median(warm_files) * 1e3:.1f} ms/file, max {max(warm_files) * 1e3:.0f} ms")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
