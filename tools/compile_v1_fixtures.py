"""Compile the KFP v1 pipeline fixtures to Argo workflows with the real KFP v1 SDK.

Run it with the KFP v1 tooling virtualenv (``kfp==1.8.22``, pinned in
``requirements/kfp1-tools.txt``; ``make compile-v1-fixtures`` creates it), never with
the runtime env::

    .venv-kfp1/bin/python tools/compile_v1_fixtures.py            # everything
    .venv-kfp1/bin/python tools/compile_v1_fixtures.py tests/fixtures/v1/v1_loops.py
    .venv-kfp1/bin/python tools/compile_v1_fixtures.py --check    # fail if stale

Every ``*.py`` under ``tests/fixtures/v1/`` (files starting with ``_`` are helpers)
names its pipeline function in a module-level ``PIPELINE = my_pipeline``; it is compiled
twice with ``kfp.compiler.Compiler().compile``: to ``<stem>.yaml`` (the workflow) and to
``<stem>.tar.gz`` (the package the KFP v1 UI uploads: ``pipeline.yaml`` in a gzipped tar).

The v1 compiler stamps each workflow with its compilation time (the
``pipelines.kubeflow.org/pipeline_compilation_time`` annotation), and a tarball also
records file times, so two compilations never give the same bytes. A file is therefore
only rewritten when the workflow differs in something else; ``--check`` compares the
same way.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tarfile
import tempfile
import traceback
from pathlib import Path

# The same helpers as the v2 fixtures' compiler (stdlib only there: safe under kfp 1.8).
from compile_fixtures import _import, _pinned_kfp_version, _rel

REPO = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO / "tests" / "fixtures" / "v1"
PINS = REPO / "requirements" / "kfp1-tools.txt"
_STAMP = re.compile(r"pipelines\.kubeflow\.org/pipeline_compilation_time: '[^']*'")



def _collect(args: list[str]) -> list[Path]:
    roots = [Path(a).resolve() for a in args] if args else [FIXTURES_DIR]
    found: set[Path] = set()
    for root in roots:
        if root.is_dir():
            candidates = sorted(root.glob("*.py"))
        elif root.is_file() and root.suffix == ".py":
            candidates = [root]
        else:
            raise SystemExit(f"error: not a .py file or a directory: {root}")
        found.update(p for p in candidates if not p.name.startswith("_"))
    return sorted(found)



def _workflow_text(path: Path) -> str | None:
    """The workflow YAML of a ``.yaml`` or ``.tar.gz`` file, or None if there is none."""
    if not path.exists():
        return None
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            if len(members) != 1:
                return None
            handle = archive.extractfile(members[0])
            return None if handle is None else io.TextIOWrapper(handle, encoding="utf-8").read()
    return path.read_text(encoding="utf-8")


def _unstamped(text: str | None) -> str | None:
    return None if text is None else _STAMP.sub("pipelines.kubeflow.org/pipeline_compilation_time: ''", text)


def _compile_one(path: Path, check: bool) -> list[str]:
    from kfp import compiler

    module = _import(path)
    pipeline = getattr(module, "PIPELINE", None)
    if pipeline is None:
        raise SystemExit(f"error: {_rel(path)} defines no PIPELINE (name helper modules with a leading underscore)")
    results = []
    for suffix in (".yaml", ".tar.gz"):
        target = path.with_name(path.stem + suffix)
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / target.name
            compiler.Compiler().compile(pipeline, str(fresh))
            new_text, new_bytes = _workflow_text(fresh), fresh.read_bytes()
        if _unstamped(new_text) == _unstamped(_workflow_text(target)):
            print(f"ok       {_rel(path)} -> {target.name} (unchanged)")
            results.append("unchanged")
        elif check:
            print(f"STALE    {_rel(path)} -> {target.name} (recompile needed)")
            results.append("stale")
        else:
            target.write_bytes(new_bytes)
            print(f"compiled {_rel(path)} -> {target.name}")
            results.append("compiled")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="fixture .py files or folders (default: tests/fixtures/v1)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is missing or stale")
    opts = parser.parse_args(argv)

    import kfp

    if not kfp.__version__.startswith("1."):
        print(f"error: kfp {kfp.__version__} is not the KFP v1 SDK; use .venv-kfp1 (make compile-v1-fixtures)",
              file=sys.stderr)
        return 2
    pinned = _pinned_kfp_version(PINS)
    if pinned and kfp.__version__ != pinned:
        print(f"warning: kfp {kfp.__version__} is installed but {PINS.name} pins {pinned}; "
              "the workflows will differ from the committed ones", file=sys.stderr)
    files = _collect(opts.paths)
    if not files:
        print("nothing to compile")
        return 0
    results: list[str] = []
    for path in files:
        try:
            results += _compile_one(path, opts.check)
        except Exception:  # report every broken fixture, not just the first
            print(f"FAILED   {_rel(path)}", flush=True)
            traceback.print_exc()
            results.append("failed")
    kinds = ("compiled", "unchanged", "stale", "failed")
    counts = {k: results.count(k) for k in kinds}
    print(f"kfp {kfp.__version__}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return 1 if counts["stale"] or counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
