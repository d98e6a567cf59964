"""``dsl.importer(download_to_workspace=True)`` on the worker: the artifact lands where
KFP's launcher puts it, only from under the pipeline root, and only where the worker
can reach the workspace (tests/conformance.py runs KFP's pipeline_with_importer_workspace)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_kfx.confine import EscapeError
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.workspace_import import download_to_workspace, workspace_folder_on_worker


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root" / "run" / "producer"
    (folder / "files").mkdir(parents=True)
    (folder / "data.txt").write_text("hello")
    (folder / "files" / "a.txt").write_text("a")
    return tmp_path / "root"


def test_a_file_and_a_folder_land_under_the_workspaces_artifacts_at_their_path(root: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for name in ("data.txt", "files"):
        source = root / "run" / "producer" / name
        copy = download_to_workspace(str(source), workspace_folder=str(workspace), pipeline_root=str(root), what="t")
        assert copy == str(workspace / ".artifacts" / str(source).lstrip("/"))
    assert Path(copy, "a.txt").read_text() == "a"
    assert (workspace / ".artifacts" / str(root / "run/producer/data.txt").lstrip("/")).read_text() == "hello"


@pytest.mark.parametrize("escape", ["outside", "link", "dots"])
def test_a_uri_from_outside_the_pipeline_root_is_refused(escape: str, root: Path, tmp_path: Path) -> None:
    """The URI is a parameter or another task's output: the worker copies nothing else."""
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("token")
    uri = {"outside": str(secret), "link": str(root / "run" / "link.txt"),
           "dots": str(root / "run" / ".." / ".." / "worker-secret.txt")}[escape]
    os.symlink(secret, root / "run" / "link.txt")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with pytest.raises(EscapeError, match="outside"):
        download_to_workspace(uri, workspace_folder=str(workspace), pipeline_root=str(root), what="importer 'x'")
    assert not list(workspace.rglob("*"))


def test_where_only_pods_reach_the_workspace_the_import_is_refused_by_name() -> None:
    from airflow_kfx.runtime.base import get_runtime

    with pytest.raises(TaskRuntimeError, match="download_to_workspace is not supported on the kubernetes runtime"):
        workspace_folder_on_worker(get_runtime("kubernetes"), "kfx-ws-abc", "importer 'x'")
    assert workspace_folder_on_worker(get_runtime("local"), "kfx-ws-abc", "importer 'x'").endswith("kfx-ws-abc")
