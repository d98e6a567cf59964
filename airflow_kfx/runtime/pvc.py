"""kfp-kubernetes CreatePVC/DeletePVC for both runtimes."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

from airflow_kfx.config import KfxSettings, config_value
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.local import local_volume_root


def pvc_name(parameters: Mapping[str, Any], run_uuid: str) -> str:
    """``pvc_name`` if given, else ``<run uuid>-<pvc_name_suffix>`` as the KFP backend names it."""
    name = parameters.get("pvc_name")
    if name:
        return str(name)
    suffix = parameters.get("pvc_name_suffix") or ""
    name = f"{run_uuid}{suffix}".lower()
    return re.sub(r"[^a-z0-9.-]", "-", name)[:253]


def create_pvc(parameters: Mapping[str, Any], identity: Any, *, runtime: str, settings: KfxSettings, log: Any) -> str:
    name = pvc_name(parameters, identity.job_uuid)
    if runtime == "local":
        path = os.path.join(local_volume_root(), name)
        os.makedirs(path, exist_ok=True)
        log.info("local runtime: volume %s is the folder %s", name, path)
        return name
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from airflow_kfx.pod.platform import create_pvc_manifest

    namespace = config_value("namespace", settings.namespace)
    manifest = create_pvc_manifest(dict(parameters), name=name)
    hook = KubernetesHook(conn_id=config_value("kubernetes_conn_id", settings.kubernetes_conn_id))
    hook.core_v1_client.create_namespaced_persistent_volume_claim(namespace=namespace, body=manifest)
    log.info("created PersistentVolumeClaim %s/%s", namespace, name)
    return name


def delete_pvc(parameters: Mapping[str, Any], *, runtime: str, settings: KfxSettings, log: Any) -> None:
    name = parameters.get("pvc_name")
    if not name:
        raise TaskRuntimeError("DeletePVC needs 'pvc_name'")
    if runtime == "local":
        path = os.path.join(local_volume_root(), str(name))
        shutil.rmtree(path, ignore_errors=True)
        log.info("local runtime: removed volume folder %s", path)
        return
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    namespace = config_value("namespace", settings.namespace)
    hook = KubernetesHook(conn_id=config_value("kubernetes_conn_id", settings.kubernetes_conn_id))
    hook.core_v1_client.delete_namespaced_persistent_volume_claim(name=str(name), namespace=namespace)
    log.info("deleted PersistentVolumeClaim %s/%s", namespace, name)
