"""Paths and helpers shared by the tests."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The KFP conformance corpus lives beside the repository (../shared/kfp-corpus).
CORPUS = Path(os.environ.get("KFX_KFP_CORPUS", REPO.parent / "shared" / "kfp-corpus"))
FIXTURES = REPO / "tests" / "fixtures" / "pipelines"
BROKEN = REPO / "tests" / "fixtures" / "broken"
VALID = CORPUS / "test_data" / "sdk_compiled_pipelines" / "valid"


@cache
def corpus_manifest() -> list[dict[str, Any]]:
    return json.loads((CORPUS / "corpus-manifest.json").read_text())["files"]


def corpus_files(*kinds: str) -> list[Path]:
    return [CORPUS / f["path"] for f in corpus_manifest() if f["kind"] in kinds]


def kfx_environment(home: Path) -> dict[str, str]:
    """A ``kfx`` command's environment as a user has it: theirs, minus the Airflow settings
    this test session set for itself, with the embedded default in ``home`` (KFX_HOME) and
    an MLflow store there."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    environment.update(KFX_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow.db")
    return environment


def kfx_run(
    home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> tuple[int, str, dict[str, Any] | None]:
    """``kfx run ARGS --json FILE`` as a user runs it, in a subprocess with the embedded
    default in ``home`` (KFX_HOME) and an MLflow store there (unless ``env`` names one):
    (exit code, kfx's own output, the --json summary or None).

    The user's environment, minus the Airflow settings this test session set for itself,
    plus ``env``. The summary goes to a folder that does not exist yet: ``kfx run --json``
    creates it (``make demo`` writes ``build/…``).
    """
    import subprocess
    import sys

    home.mkdir(parents=True, exist_ok=True)
    summary = home / "summaries" / f"run-{len(list(home.glob('summaries/run-*')))}" / "summary.json"
    environment = {**kfx_environment(home), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "airflow_kfx.cli", "run", *args, "--json", str(summary)],
        capture_output=True, text=True, env=environment, cwd=cwd or home, timeout=timeout,
    )
    data = json.loads(summary.read_text()) if summary.exists() else None
    return result.returncode, result.stdout + result.stderr, data


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium (``make system-deps``) headless, as the browser tests drive it."""
    import shutil

    return playwright.chromium.launch(
        executable_path=shutil.which("chromium") or "/usr/bin/chromium",
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    )
