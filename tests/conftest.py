"""Test session set-up: a private Airflow home with a migrated SQLite database.

Environment variables are set at import time, before anything imports Airflow
(which reads its configuration once, on import).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_HOME = Path(os.environ.get("KFX_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="kfx-test-airflow-"))
_DAGS = _HOME / "dags"
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__KFX__RUNTIME"] = "local"
os.environ["AIRFLOW__KFX__PIPELINE_ROOT"] = str(_HOME / "artifacts")
os.environ.setdefault("KFX_CACHE_DIR", str(_HOME / "spec-cache"))
# Tracking goes to a store of the session's own (the default would be ./mlflow.db).
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_HOME}/mlflow.db"
# Lightweight components' virtualenvs are slow to build: share them across sessions.
os.environ.setdefault("KFX_VENV_DIR", str(Path(tempfile.gettempdir()) / "kfx-test-venvs"))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database in the session's Airflow home."""
    _DAGS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _HOME


@pytest.fixture(scope="session")
def dags_folder(airflow_db: Path) -> Path:
    """Airflow's DAG folder for this session; ``dag.test()`` syncs DAGs from it."""
    return _DAGS
