"""Persistent volume claims: kfp-kubernetes CreatePVC/DeletePVC and the KFP
workspace. What a claim *is* (a cluster object, a local folder) is the runtime's
business (:meth:`airflow_kfx.runtime.base.Runtime.create_claim`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_kfx.config import KfxSettings
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.base import Runtime

CREATE_PVC_INPUTS = (
    "access_modes", "size", "pvc_name", "pvc_name_suffix", "storage_class_name",
    "volume_name", "annotations", "data_source",
)


def claim_prefix(identity: Any) -> str:
    """Unique per run and task, stable across retries (so a retry finds its claim)."""
    return f"kfx-{identity.task_uuid[:8]}"


def create_pvc(parameters: Mapping[str, Any], identity: Any, *, runtime: Runtime, settings: KfxSettings, log: Any) -> str:
    """CreatePVC: returns the claim's name (the task's ``name`` output)."""
    from airflow_kfx.pod.platform import create_pvc_manifest

    arguments = {k: parameters[k] for k in CREATE_PVC_INPUTS if parameters.get(k) is not None}
    arguments.setdefault("access_modes", ["ReadWriteOnce"])
    if "size" not in arguments:
        raise TaskRuntimeError("CreatePVC needs 'size'")
    manifest = create_pvc_manifest(name_prefix=claim_prefix(identity), **arguments)
    runtime.create_claim(manifest, settings, log)
    return manifest.metadata.name


def delete_pvc(parameters: Mapping[str, Any], *, runtime: Runtime, settings: KfxSettings, log: Any) -> None:
    name = parameters.get("pvc_name")
    if not name:
        raise TaskRuntimeError("DeletePVC needs 'pvc_name'")
    runtime.delete_claim(str(name), settings, log)


# ---------------------------------------------------------------------------
# The KFP workspace (dsl.WorkspaceConfig): one claim per run, shared by every task
# ---------------------------------------------------------------------------


def workspace_claim_name(identity: Any) -> str:
    return f"kfx-ws-{identity.job_uuid[:13]}"


def create_workspace(workspace: Any, identity: Any, *, runtime: Runtime, settings: KfxSettings, log: Any) -> str:
    from airflow_kfx.pod.platform import create_pvc_manifest

    patch = dict(workspace.kubernetes.pvc_spec_patch) if workspace.kubernetes else {}
    manifest = create_pvc_manifest(
        name_prefix=workspace_claim_name(identity),
        access_modes=patch.pop("accessModes", ["ReadWriteOnce"]),
        size=workspace.size,
        storage_class_name=patch.pop("storageClassName", None),
    )
    if patch:
        raise TaskRuntimeError(
            f"workspace pvcSpecPatch fields {sorted(patch)} are not supported; use accessModes and storageClassName"
        )
    runtime.create_claim(manifest, settings, log)
    return manifest.metadata.name
