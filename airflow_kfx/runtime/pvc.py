"""Persistent volume claims: kfp-kubernetes CreatePVC/DeletePVC and the KFP
workspace, for both runtimes (the local runtime uses folders)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from airflow_kfx.config import KfxSettings, config_value
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.local import local_volume_root

CREATE_PVC_INPUTS = (
    "access_modes", "size", "pvc_name", "pvc_name_suffix", "storage_class_name",
    "volume_name", "annotations", "data_source",
)


def claim_prefix(identity: Any) -> str:
    """Unique per run and task, stable across retries (so a retry finds its claim)."""
    return f"kfx-{identity.task_uuid[:8]}"


def create_pvc(parameters: Mapping[str, Any], identity: Any, *, runtime: str, settings: KfxSettings, log: Any) -> str:
    """CreatePVC: returns the claim's name (the task's ``name`` output)."""
    from airflow_kfx.pod.platform import create_pvc_manifest

    arguments = {k: parameters[k] for k in CREATE_PVC_INPUTS if parameters.get(k) is not None}
    arguments.setdefault("access_modes", ["ReadWriteOnce"])
    if "size" not in arguments:
        raise TaskRuntimeError("CreatePVC needs 'size'")
    manifest = create_pvc_manifest(name_prefix=claim_prefix(identity), **arguments)
    name = manifest.metadata.name
    if runtime == "local":
        path = os.path.join(local_volume_root(), name)
        os.makedirs(path, exist_ok=True)
        log.info("local runtime: volume %s is the folder %s", name, path)
        return name
    _create_claim(manifest, settings, log)
    return name


def delete_pvc(parameters: Mapping[str, Any], *, runtime: str, settings: KfxSettings, log: Any) -> None:
    name = parameters.get("pvc_name")
    if not name:
        raise TaskRuntimeError("DeletePVC needs 'pvc_name'")
    delete_claim(str(name), runtime=runtime, settings=settings, log=log)


def delete_claim(name: str, *, runtime: str, settings: KfxSettings, log: Any) -> None:
    if runtime == "local":
        path = os.path.join(local_volume_root(), name)
        shutil.rmtree(path, ignore_errors=True)
        log.info("local runtime: removed volume folder %s", path)
        return
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    namespace = config_value("namespace", settings.namespace)
    hook = KubernetesHook(conn_id=config_value("kubernetes_conn_id", settings.kubernetes_conn_id))
    hook.core_v1_client.delete_namespaced_persistent_volume_claim(name=name, namespace=namespace)
    log.info("deleted PersistentVolumeClaim %s/%s", namespace, name)


def _create_claim(manifest: Any, settings: KfxSettings, log: Any) -> None:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    namespace = config_value("namespace", settings.namespace)
    hook = KubernetesHook(conn_id=config_value("kubernetes_conn_id", settings.kubernetes_conn_id))
    try:
        hook.core_v1_client.create_namespaced_persistent_volume_claim(namespace=namespace, body=manifest)
    except ApiException as err:
        if err.status != 409:  # 409: created by an earlier try of this task
            raise
    log.info("PersistentVolumeClaim %s/%s is ready", namespace, manifest.metadata.name)


# ---------------------------------------------------------------------------
# The KFP workspace (dsl.WorkspaceConfig): one claim per run, shared by every task
# ---------------------------------------------------------------------------


def workspace_claim_name(identity: Any) -> str:
    return f"kfx-ws-{identity.job_uuid[:13]}"


def local_workspace_dir(identity: Any) -> str:
    return os.path.join(local_volume_root(), workspace_claim_name(identity))


def create_workspace(workspace: Any, identity: Any, *, runtime: str, settings: KfxSettings, log: Any) -> str:
    name = workspace_claim_name(identity)
    if runtime == "local":
        os.makedirs(local_workspace_dir(identity), exist_ok=True)
        log.info("local runtime: the workspace is the folder %s", local_workspace_dir(identity))
        return name
    from airflow_kfx.pod.platform import create_pvc_manifest

    patch = dict(workspace.kubernetes.pvc_spec_patch) if workspace.kubernetes else {}
    manifest = create_pvc_manifest(
        name_prefix=name,
        access_modes=patch.pop("accessModes", ["ReadWriteOnce"]),
        size=workspace.size,
        storage_class_name=patch.pop("storageClassName", None),
    )
    if patch:
        raise TaskRuntimeError(
            f"workspace pvcSpecPatch fields {sorted(patch)} are not supported; use accessModes and storageClassName"
        )
    _create_claim(manifest, settings, log)
    return name
