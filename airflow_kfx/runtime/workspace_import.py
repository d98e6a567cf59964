"""``dsl.importer(..., download_to_workspace=True)``: the imported artifact's files are
copied into the run's KFP workspace, where the tasks reading it find them.

KFP's launcher downloads the artifact to ``/kfp-workspace/.artifacts/<its local path>``
(``LocalWorkspacePathForURI``: ``s3://b/k`` → ``.artifacts/s3/b/k``, a plain path kept as
it is) and marks it ``_kfp_workspace``, so a consumer's ``.path`` points there
(:func:`airflow_kfx.task_io.local_path_for_uri`) and nothing downloads it again.

The worker does the copy, so it needs the workspace as a folder: the ``local`` runtime's
claims are folders on the worker; on the ``kubernetes`` runtime the claim is only
reachable from pods, and the import is refused by name (KFP runs a launcher pod for it).
The URI comes from a run parameter or another task's output, and the worker holds the
pipeline root's credentials: it copies only what lies under the pipeline root
(:mod:`airflow_kfx.confine`), as for every other file it reads on a task's word.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from airflow_kfx.confine import confined
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.task_io import local_path_for_uri

WORKSPACE_MARKER = "_kfp_workspace"  # KFP's artifact metadata key (driver common.WorkspaceMetadataField)


def download_to_workspace(uri: str, *, workspace_folder: str, pipeline_root: str, what: str) -> str:
    """Copy the artifact at ``uri`` (a file or a folder) into ``workspace_folder`` where
    KFP puts it; the copy's path on the worker."""
    confined(uri, pipeline_root, f"{what}: the artifact to download to the workspace,")
    target = os.path.join(workspace_folder, ".artifacts", local_path_for_uri(uri).lstrip("/"))
    if not os.path.realpath(target).startswith(os.path.realpath(workspace_folder) + os.sep):
        raise TaskRuntimeError(f"{what}: {uri!r} would land outside the run's workspace; refused")
    from airflow_kfx.runtime.storage import is_remote

    if is_remote(uri):
        _download(uri, target, what)
        return target
    source = uri.removeprefix("file://")
    if not os.path.exists(source):
        raise TaskRuntimeError(f"{what}: the artifact {uri!r} does not exist")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return target


def workspace_folder_on_worker(runtime: Any, claim: str, what: str) -> str:
    """The run's workspace as a folder the worker can write, or a refusal naming why not."""
    folder = runtime.worker_claim_folder(claim)
    if folder is None:
        raise TaskRuntimeError(
            f"{what}: download_to_workspace is not supported on the {runtime.name} runtime yet (the worker "
            "cannot reach the workspace volume; KFP copies it from a launcher pod); import without it and "
            "copy the artifact into the workspace in a component"
        )
    return folder


def _download(uri: str, target: str, what: str) -> None:
    """An object, or every object under a prefix, from the pipeline root's store (the
    worker's own connection to it, ``runtime.storage``) to ``target``."""
    from airflow_kfx.runtime.storage import object_path

    path = object_path(uri)
    fs, key = path.fs, path.path.rstrip("/")
    try:
        fs.invalidate_cache(key)
    except Exception:  # noqa: BLE001 - a filesystem without a listing cache
        pass
    if not path.exists():
        raise TaskRuntimeError(f"{what}: the artifact {uri!r} does not exist")
    if not path.is_dir():
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get(key, target)
        return
    for name in sorted(fs.find(key)):
        segments = name[len(key):].lstrip("/").split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise TaskRuntimeError(f"{what}: the object {name!r} of {uri} would land outside the workspace; refused")
        local = os.path.join(target, *segments)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        fs.get(name, local)
