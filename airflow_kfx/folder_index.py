"""Which file of a pipelines folder holds which DAG.

Airflow runs each task in a process that parses the task's DAG file first. For the
DAG-folder drop-in that file loads *every* pipeline of the folder: start-up paid for all
of them, and a task's log repeated the errors of unrelated broken files. The DAG
processor's full parse records here which file made which DAG; a task's process (Airflow's
parsing context names its DAG) then loads only that file. A missing, stale or foreign
index only costs a full parse.

The index lives in the translation cache's private folder (it decides which file a DAG
is read from, so nobody else may write it) and names files by their path below the
folder; a path leaving the folder is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airflow_kfx.confine import is_within


@dataclass(frozen=True)
class Entry:
    path: Path
    renamed: bool  # the DAG id came from the file name (another file had its pipeline name)


def _index_file(folder: str | os.PathLike[str]) -> Path | None:
    from airflow_kfx.spec.loader import private_cache_dir

    cache = private_cache_dir()
    if cache is None:
        return None
    key = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:32]
    return cache / f"folder-{key}.json"


def lookup(folder: str | os.PathLike[str], dag_id: str) -> Entry | None:
    """The file that made ``dag_id`` at the last full parse of ``folder``, if it still exists."""
    index = _index_file(folder)
    if index is None:
        return None
    try:
        entry = json.loads(index.read_text(encoding="utf-8"))["dags"][dag_id]
        relative, renamed = str(entry["file"]), bool(entry["renamed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    root = Path(folder).resolve()
    path = root / relative
    if not is_within(str(path.resolve()), str(root)) or not path.is_file():
        return None
    return Entry(path, renamed)


def record(folder: str | os.PathLike[str], dags: Mapping[str, tuple[Path, bool]]) -> None:
    """Write the index of a full parse (only when it changed: parses run every 30 s)."""
    index = _index_file(folder)
    if index is None:
        return
    root = Path(folder).resolve()
    entries = {}
    for dag_id, (path, renamed) in sorted(dags.items()):
        resolved = Path(path).resolve()
        if is_within(str(resolved), str(root)):
            entries[dag_id] = {"file": str(resolved.relative_to(root)), "renamed": renamed}
    text = json.dumps({"folder": str(root), "dags": entries}, indent=1, sort_keys=True)
    try:
        if index.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    try:
        with tempfile.NamedTemporaryFile("w", dir=index.parent, delete=False, suffix=".tmp", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(handle.name, index)
    except OSError:
        pass  # a read-only cache: tasks parse the whole folder, as before
