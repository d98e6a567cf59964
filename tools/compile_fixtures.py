"""Compile the KFP pipeline fixtures to KFP v2 IR YAML with the real KFP SDK.

Run it with the tooling virtualenv (kfp + kfp-kubernetes, pinned in
``requirements/kfp-tools.txt``), never with the runtime env::

    .venv-kfp/bin/python tools/compile_fixtures.py                 # everything
    .venv-kfp/bin/python tools/compile_fixtures.py tests/fixtures/pipelines/loops.py
    .venv-kfp/bin/python tools/compile_fixtures.py --check         # fail if stale

For every ``*.py`` found (default: ``tests/fixtures/pipelines/`` and ``dags/``)
the module is imported and the object it names in a module-level
``PIPELINE = my_pipeline`` (or ``COMPONENT = my_component``) is compiled with
``kfp.compiler.Compiler().compile(obj, package_path=<same stem>.yaml)``, next
to the ``.py``.

Files are picked like this:

* under ``tests/fixtures/pipelines/`` every ``*.py`` must define ``PIPELINE``
  or ``COMPONENT`` (files whose name starts with ``_`` are helpers and skipped);
* anywhere else (``dags/``) only files that import kfp *and* contain
  ``@dsl.pipeline`` are considered, so Airflow loader files such as
  ``dags/kfx_dags.py`` are left alone; such a file without ``PIPELINE`` /
  ``COMPONENT`` is skipped with a note.

The output is deterministic: a YAML file is only rewritten when its content
changes, environment variables that change what the compiler emits
(``KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT``) are cleared before kfp is
imported, and dict keys in kfp's ``# Inputs:`` header comment are sorted
(kfp prints them in protobuf map order, which varies between runs). Recompiling with another kfp version does change the output (the
SDK version is embedded, and lightweight components pin ``kfp==<version>`` in
their install command), hence the version check against the pinned one.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

# Must happen before kfp is imported: kfp reads it once, at import time, and it
# flips the default ``cachingOptions`` of every task.
os.environ.pop("KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT", None)

REPO = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO / "tests" / "fixtures" / "pipelines"
DAGS_DIR = REPO / "dags"
PINS = REPO / "requirements" / "kfp-tools.txt"

_KFP_IMPORT = re.compile(r"^\s*(from\s+kfp[\s.]|import\s+kfp\b)", re.MULTILINE)
_PIPELINE_DECORATOR = re.compile(r"^\s*@dsl\.pipeline\b", re.MULTILINE)


def _pinned_kfp_version(pins: Path = PINS) -> str | None:
    """The ``kfp==`` version a requirements file pins, if any."""
    try:
        match = re.search(r"^kfp==(\S+)", pins.read_text(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def _is_pipeline_source(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return bool(_KFP_IMPORT.search(text) and _PIPELINE_DECORATOR.search(text))


def _in_fixtures(path: Path) -> bool:
    return FIXTURES_DIR == path.parent or FIXTURES_DIR in path.parents


def _collect(args: list[str]) -> list[Path]:
    """Return the .py files to compile, sorted, without duplicates."""
    roots = [Path(a) for a in args] if args else [FIXTURES_DIR, DAGS_DIR]
    found: set[Path] = set()
    for root in roots:
        root = root.resolve()
        if root.is_dir():
            candidates = sorted(root.rglob("*.py"))
        elif root.is_file() and root.suffix == ".py":
            candidates = [root]
        elif not root.exists() and root in (FIXTURES_DIR, DAGS_DIR):
            continue
        else:
            raise SystemExit(f"error: not a .py file or a directory: {root}")
        for path in candidates:
            if path.name.startswith("_") or "__pycache__" in path.parts:
                continue
            if _in_fixtures(path) or _is_pipeline_source(path):
                found.add(path)
            elif root == path:  # named explicitly but not a pipeline source
                print(f"skip     {_rel(path)} (no kfp import / @dsl.pipeline)")
    return sorted(found)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _import(path: Path):
    """Import a fixture file as a fresh module (its folder goes on sys.path)."""
    module_name = "_kfx_fixture_" + re.sub(r"\W", "_", _rel(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def _sorted_deep(value):
    if isinstance(value, dict):
        return {k: _sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_deep(v) for v in value]
    return value


def _make_header_deterministic() -> None:
    """Sort dict keys in the ``# Inputs:`` header comment kfp writes.

    The YAML body is dumped with ``sort_keys=True``, but the header prints
    parameter defaults with ``str(dict)`` in protobuf map order, which changes
    from one process to the next (e.g. ``{'k': 'v', 'n': 1.0}`` vs
    ``{'n': 1.0, 'k': 'v'}``).
    """
    from kfp.compiler import pipeline_spec_builder as builder

    original = builder.extract_comments_from_pipeline_spec
    if getattr(original, "_kfx_sorted", False):
        return

    def extract_comments_sorted(pipeline_spec: dict, pipeline_description: str) -> str:
        return original(_sorted_deep(pipeline_spec), pipeline_description)

    extract_comments_sorted._kfx_sorted = True  # type: ignore[attr-defined]
    builder.extract_comments_from_pipeline_spec = extract_comments_sorted


def _compile_one(path: Path, check: bool) -> str:
    """Compile one file; return 'compiled', 'unchanged', 'stale' or 'skipped'."""
    sys.stdout.flush()
    from kfp import compiler

    module = _import(path)
    obj = getattr(module, "PIPELINE", None) or getattr(module, "COMPONENT", None)
    if obj is None:
        if _in_fixtures(path):
            raise SystemExit(
                f"error: {_rel(path)} defines neither PIPELINE nor COMPONENT "
                "(name helper modules with a leading underscore)"
            )
        print(f"skip     {_rel(path)} (no PIPELINE / COMPONENT)")
        return "skipped"

    target = path.with_suffix(".yaml")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_yaml = Path(tmp) / target.name
        compiler.Compiler().compile(obj, package_path=str(tmp_yaml))
        new = tmp_yaml.read_bytes()

    old = target.read_bytes() if target.exists() else None
    if old == new:
        print(f"ok       {_rel(path)} -> {target.name} (unchanged)")
        return "unchanged"
    if check:
        print(f"STALE    {_rel(path)} -> {target.name} (recompile needed)")
        return "stale"
    target.write_bytes(new)
    print(f"compiled {_rel(path)} -> {target.name}")
    return "compiled"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths",
        nargs="*",
        help="fixture .py files or folders (default: tests/fixtures/pipelines and dags)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any YAML is missing or out of date",
    )
    opts = parser.parse_args(argv)

    import kfp

    _make_header_deterministic()
    pinned = _pinned_kfp_version()
    if pinned and kfp.__version__ != pinned:
        print(
            f"warning: kfp {kfp.__version__} is installed but {PINS.name} pins "
            f"{pinned}; the YAML will differ from the committed one",
            file=sys.stderr,
        )

    files = _collect(opts.paths)
    if not files:
        print("nothing to compile")
        return 0
    results = []
    for path in files:
        try:
            results.append(_compile_one(path, opts.check))
        except Exception:  # report every broken fixture, not just the first
            print(f"FAILED   {_rel(path)}", flush=True)
            traceback.print_exc()
            results.append("failed")
    kinds = ("compiled", "unchanged", "stale", "skipped", "failed")
    counts = {k: results.count(k) for k in kinds}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    print(f"kfp {kfp.__version__}: {summary}")
    return 1 if counts["stale"] or counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
