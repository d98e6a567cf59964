"""Bad input never crashes a loader: mutations of real KFP files (``tests/fuzz.py``) all end
in a ``SpecError`` (or ``UnsupportedFeatureError``) that names the file and the line, or in
a valid load — no other exception, no hang, bounded memory.

CI runs a few hundred cases with a fixed seed. A long local run:
``KFX_FUZZ_CASES=5000 KFX_FUZZ_SEED=7 .venv/bin/python -m pytest tests/test_fuzz_loaders.py -n 2``.
Each failure prints the case (seed, index, mutations, the input's beginning) and the
command that reproduces it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import Case, make_case
from tests.fuzz_worker import CASE_SECONDS
from tests.support import REPO

SEED = int(os.environ.get("KFX_FUZZ_SEED", "20240611"))
TOTAL = int(os.environ.get("KFX_FUZZ_CASES", "400"))
# Share of the cases per family: the pipeline IR is the biggest surface.
SHARES = {"pipeline": 0.45, "component": 0.3, "archive": 0.15, "settings": 0.1}
CHUNK = 60  # cases per worker process (and per test item, so -n 2 shares them out)
MAX_MESSAGE = 1000  # a message longer than this hides the problem (e.g. a whole huge value)


def _chunks() -> list[tuple[str, int, int]]:
    chunks = []
    for family, share in SHARES.items():
        count = max(1, round(TOTAL * share))
        chunks += [(family, start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]
    return chunks


def run_cases(family: str, start: int, stop: int) -> dict[int, dict[str, Any]]:
    """Results by case index; a worker that dies is restarted after the case it died in."""
    results: dict[int, dict[str, Any]] = {}
    while start < stop:
        process = subprocess.run(
            [sys.executable, "-m", "tests.fuzz_worker", "work", family, "--seed", str(SEED),
             "--start", str(start), "--stop", str(stop)],
            capture_output=True, text=True, cwd=REPO, timeout=CASE_SECONDS * (stop - start) + 60,
        )
        running = None
        for line in process.stdout.splitlines():
            record = json.loads(line)
            if "start" in record:
                running = record["start"]
            else:
                results[record.pop("case")] = record
        if process.returncode == 0:
            break
        if running is None or running in results:
            raise AssertionError(f"the fuzz worker failed outside a case:\n{process.stderr[-3000:]}")
        results[running] = {
            "outcome": "died",
            "error": f"the worker ended with exit code {process.returncode} (over {CASE_SECONDS} s, "
                     f"or a crash in C); its stderr ends:\n{process.stderr[-1500:]}",
        }
        start = running + 1
    return results


def problem(family: str, result: dict[str, Any]) -> str | None:
    """What is wrong with how the loader met ``case``, or None."""
    if result["outcome"] == "loaded":
        return None
    if result["outcome"] != "refused":
        return f"{result['outcome']}: {result['error']} ({result.get('where', '')})"
    message = result["message"]
    if "\n" in message or len(message) > MAX_MESSAGE:
        return f"the message is not one short line ({len(message)} chars): {message[:300]!r}"
    if not result["file"] or not message.startswith(result["file"]):
        return f"the message does not start with the file: {message[:300]!r}"
    if result["line"] is None and not _lineless(family, message):
        return f"the message names no line: {message[:300]!r}"
    return None


def _lineless(family: str, message: str) -> bool:
    """Errors about a package itself (not the pipeline inside it) have no line to name."""
    return family == "archive" and "!" not in message.split(": ", 1)[0]


@pytest.mark.parametrize(("family", "start", "stop"), _chunks(), ids=lambda v: str(v))
def test_mutated_inputs_are_loaded_or_refused_clearly(family: str, start: int, stop: int) -> None:
    results = run_cases(family, start, stop)
    failures = []
    for index in range(start, stop):
        found = problem(family, results[index])
        if found:
            failures.append(f"{make_case(family, SEED, index).describe()}\n    {found}")
    assert not failures, f"{len(failures)} of {stop - start} cases failed:\n" + "\n".join(failures)


# ---------------------------------------------------------------------------
# kfx validate on a sample of the mutants
# ---------------------------------------------------------------------------

SAMPLE = 20  # mutants per family given to one `kfx validate` run
_LOCATED = re.compile(r"^(?P<path>.+?\.(?:yaml|json)):(?P<line>\d+): ")


def _text_mutants(family: str, count: int) -> list[Case]:
    """The first ``count`` small text mutants of ``family`` (validate builds each DAG too)."""
    found: list[Case] = []
    index = 0
    while len(found) < count:
        case = make_case(family, SEED, index)
        if case.suffix in (".yaml", ".json") and len(case.data) < 2**20:
            found.append(case)
        index += 1
    return found


def test_kfx_validate_names_file_and_line_for_every_mutant(tmp_path: Path) -> None:
    written = {}
    for case in _text_mutants("pipeline", SAMPLE) + _text_mutants("component", SAMPLE):
        path = tmp_path / f"{case.family}-{case.index:05d}{case.suffix}"
        path.write_bytes(case.data)
        written[str(path)] = case
    result = subprocess.run(
        [sys.executable, "-m", "airflow_kfx.cli", "validate", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    reported = []
    for text in lines:
        match = _LOCATED.match(text)
        assert match and match["path"] in written, f"not 'file:line: message': {text[:300]!r}"
        case = written[match["path"]]
        assert "internal error" not in text, f"{case.describe()}\n    {text[:500]}"
        assert 1 <= int(match["line"]) <= case.data.count(b"\n") + 1, f"{case.describe()}\n    {text[:300]}"
        assert len(text) <= MAX_MESSAGE, f"{case.describe()}\n    {text[:300]}"
        reported.append(match["path"])
    assert len(reported) == len(set(reported)), "a file was reported twice"
    assert len(reported) >= SAMPLE, "most mutants should be refused"  # the sample means something
    assert f"checked {len(written)} file(s): {len(lines)} problem(s)" in result.stdout
    assert result.returncode == 1
