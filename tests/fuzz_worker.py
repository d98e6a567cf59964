"""Runs fuzz cases (``tests/fuzz.py``) against the loaders, with bounded memory and time.

    python -m tests.fuzz_worker work FAMILY --seed S --start I --stop J   # one JSON line per case
    python -m tests.fuzz_worker run FAMILY INDEX --seed S                 # one case, traceback shown
    python -m tests.fuzz_worker show FAMILY INDEX --seed S [-o FILE]      # the case and its input

The process's address space is limited (``RLIMIT_AS``), so a memory blow-up is a
``MemoryError`` here instead of the OOM killer ending CI, and each case runs under a
``faulthandler`` watchdog that ends the process — even inside C code such as
libyaml — when the case overruns its time. ``work`` prints ``{"start": i}`` before
case ``i`` and its result after, so whoever reads the output knows which case a dead
worker was running (``tests/test_fuzz_loaders.py`` restarts it after that case).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from tests.fuzz import Case, cases, make_case

CASE_SECONDS = 10  # the time bound of one case (loads take milliseconds)
MEMORY_BYTES = 1536 * 2**20  # the address space of the whole worker (it starts at ~30 MB)


def load(case: Case, folder: Path) -> None:
    """Give the case to the loader of its family (raises what the loader raises)."""
    from airflow_kfx.components import load_component_from_file
    from airflow_kfx.loading import _folder_settings
    from airflow_kfx.spec.loader import load_pipeline_file

    path = folder / case.file_name
    path.write_bytes(case.data)
    if case.family == "settings":
        (folder / "train.yaml").touch()
        _folder_settings(folder)
    elif case.family == "component":
        load_component_from_file(path)
    else:
        load_pipeline_file(path)  # with the translation cache: storing the model is exercised too


def outcome(case: Case, folder: Path) -> dict[str, Any]:
    """What loading the case did: loaded, refused (a SpecError) or crashed (anything else)."""
    from airflow_kfx.exceptions import SpecError

    started = time.perf_counter()
    try:
        load(case, folder)
        result: dict[str, Any] = {"outcome": "loaded"}
    except SpecError as err:
        result = {"outcome": "refused", "message": str(err), "file": err.file, "line": err.line}
    except Exception as err:  # noqa: BLE001 - the very thing a fuzzer looks for
        frames = traceback.extract_tb(err.__traceback__)[-3:]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
        result = {"outcome": "crashed", "error": f"{type(err).__name__}: {err}"[:600], "where": where}
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def work(family: str, seed: int, start: int, stop: int) -> None:
    _limit_memory()
    faulthandler.enable()  # a C crash still prints where it happened
    scratch = Path(tempfile.mkdtemp(prefix="kfx-fuzz-"))
    os.environ["KFX_CACHE_DIR"] = str(scratch / "cache")  # the cache is exercised, privately
    try:
        for case in cases(family, seed, start, stop):
            print(json.dumps({"start": case.index}), flush=True)
            folder = scratch / f"case-{case.index}"
            folder.mkdir()
            faulthandler.dump_traceback_later(CASE_SECONDS, exit=True)
            result = outcome(case, folder)
            faulthandler.cancel_dump_traceback_later()
            shutil.rmtree(folder)
            print(json.dumps({"case": case.index, **result}), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_worker")
    parser.add_argument("command", choices=("work", "run", "show"))
    parser.add_argument("family")
    parser.add_argument("index", type=int, nargs="?")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=0)
    parser.add_argument("-o", "--output", help="show: write the case's input to this file")
    args = parser.parse_args(argv)
    if args.command == "work":
        work(args.family, args.seed, args.start, args.stop)
        return 0
    case = make_case(args.family, args.seed, args.index)
    print(case.describe())
    if args.command == "show":
        if args.output:
            Path(args.output).write_bytes(case.data)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="kfx-fuzz-"))
    try:
        load(case, folder)  # uncaught: the traceback is the point
    finally:
        shutil.rmtree(folder)
    print("loaded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
