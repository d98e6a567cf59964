"""The versions Airflow knows of each pipeline in the upload folder (its DAG versioning:
a new version each time an upload changes the DAG; older runs keep theirs)."""

from __future__ import annotations

from typing import Any

from airflow_kfx.ui.upload import SUFFIXES


def uploaded_versions(session: Any, folder: str) -> dict[str, list[tuple[int, str]]]:
    """``{dag id: [(version number, created at), ...]}`` for the pipeline files in
    ``folder`` (named ``<dag id><suffix>`` by the upload page), newest first."""
    from pathlib import Path

    from airflow.models.dag_version import DagVersion
    from sqlalchemy import select

    root = Path(folder)
    if not root.is_dir():
        return {}
    dag_ids = sorted({path.name[: -len(suffix)] for path in root.iterdir() if path.is_file()
                      and not path.name.startswith(".")
                      for suffix in SUFFIXES if path.name.endswith(suffix)})
    versions: dict[str, list[tuple[int, str]]] = {dag_id: [] for dag_id in dag_ids}
    rows = session.execute(select(DagVersion.dag_id, DagVersion.version_number, DagVersion.created_at)
                           .where(DagVersion.dag_id.in_(dag_ids))
                           .order_by(DagVersion.dag_id, DagVersion.version_number.desc())).all()
    for dag_id, number, created in rows:
        versions[dag_id].append((int(number), created.strftime("%Y-%m-%d %H:%M:%S UTC") if created else ""))
    return versions
