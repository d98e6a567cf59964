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
from typing import Any

from airflow_kfx.confine import confined
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.storage import copy_to_local
from airflow_kfx.task_io import local_path_for_uri

WORKSPACE_MARKER = "_kfp_workspace"  # KFP's artifact metadata key (driver common.WorkspaceMetadataField)


def download_to_workspace(uri: str, *, workspace_folder: str, pipeline_root: str, what: str) -> str:
    """Copy the artifact at ``uri`` (a file or a folder) into ``workspace_folder`` where
    KFP puts it; the copy's path on the worker."""
    confined(uri, pipeline_root, f"{what}: the artifact to download to the workspace,")
    target = os.path.join(workspace_folder, ".artifacts", local_path_for_uri(uri).lstrip("/"))
    if not os.path.realpath(target).startswith(os.path.realpath(workspace_folder) + os.sep):
        raise TaskRuntimeError(f"{what}: {uri!r} would land outside the run's workspace; refused")
    if not copy_to_local(uri, target):
        raise TaskRuntimeError(f"{what}: the artifact {uri!r} does not exist")
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

