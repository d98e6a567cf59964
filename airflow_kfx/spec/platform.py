"""Parse the kfp-kubernetes platform spec (``platforms.kubernetes``) into the model.

The input is the protobuf-JSON form of ``KubernetesExecutorConfig`` (camelCase
keys, 64-bit integers as strings) that the KFP SDK writes into the second YAML
document of a compiled pipeline, plus the pipeline-level ``pipelineConfig``.
Every key is checked: a field airflow-kfx does not translate raises
:class:`~airflow_kfx.exceptions.UnsupportedFeatureError` rather than being
dropped, because a silently missing secret, toleration or deadline changes what
a task does. Malformed values raise ``SpecError`` with the YAML path.

The model lives in :mod:`~airflow_kfx.spec.platform_model` (re-exported here),
the per-message parsers in :mod:`~airflow_kfx.spec.platform_messages`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_kfx.spec import platform_messages as msg
from airflow_kfx.spec.platform_model import (
    KubernetesExecutorConfig,
    KubernetesPlatform,
    KubernetesWorkspaceConfig,
    PipelineConfig,
    WorkspaceConfig,
)
from airflow_kfx.spec.platform_values import fields, parse_value_source, plain, quantity
from airflow_kfx.spec.source import Node

__all__ = [
    "KubernetesExecutorConfig",
    "KubernetesPlatform",
    "PipelineConfig",
    "parse_executor_config",
    "parse_kubernetes_platform",
    "parse_value_source",
]

T = TypeVar("T")


def _repeated(parse: Callable[[Node], T]) -> Callable[[Node], tuple[T, ...]]:
    def parse_all(node: Node) -> tuple[T, ...]:
        node.expect(list)
        return tuple(parse(element) for element in node.elements())

    return parse_all


# JSON key → (model attribute, parser), in the proto's field order. Field 20,
# ``podResourceClaims``, is deliberately absent: see platform_values.REFUSED.
_EXECUTOR_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {
    "secretAsVolume": ("secret_as_volume", _repeated(msg.secret_as_volume)),
    "secretAsEnv": ("secret_as_env", _repeated(msg.secret_as_env)),
    "pvcMount": ("pvc_mount", _repeated(msg.pvc_mount)),
    "nodeSelector": ("node_selector", msg.node_selector),
    "podMetadata": ("pod_metadata", msg.pod_metadata),
    "imagePullSecret": ("image_pull_secret", _repeated(msg.image_pull_secret)),
    "imagePullPolicy": ("image_pull_policy", msg.image_pull_policy),
    "configMapAsVolume": ("config_map_as_volume", _repeated(msg.config_map_as_volume)),
    "configMapAsEnv": ("config_map_as_env", _repeated(msg.config_map_as_env)),
    "activeDeadlineSeconds": ("active_deadline_seconds", msg.active_deadline_seconds),
    "fieldPathAsEnv": ("field_path_as_env", _repeated(msg.field_path_as_env)),
    "tolerations": ("tolerations", _repeated(msg.toleration)),
    "genericEphemeralVolume": ("generic_ephemeral_volume", _repeated(msg.generic_ephemeral_volume)),
    "nodeAffinity": ("node_affinity", _repeated(msg.node_affinity)),
    "podAffinity": ("pod_affinity", _repeated(msg.pod_affinity)),
    "enabledSharedMemory": ("enabled_shared_memory", msg.enabled_shared_memory),
    "emptyDirMounts": ("empty_dir_mounts", _repeated(msg.empty_dir_mount)),
    "securityContext": ("security_context", msg.security_context),
    "initContainers": ("init_containers", _repeated(msg.init_container)),
}


def parse_kubernetes_platform(node: Node) -> KubernetesPlatform:
    """Parse the ``platforms.kubernetes`` mapping of a compiled pipeline."""
    fields(node, ("deploymentSpec", "pipelineConfig"), "")
    executors: dict[str, KubernetesExecutorConfig] = {}
    deployment = node.child("deploymentSpec")
    if deployment.value is not None:
        fields(deployment, ("executors",), "deploymentSpec.")
        for label, config in deployment.child("executors").items():
            executors[label] = parse_executor_config(config)
    pipeline_config = None
    if node.get("pipelineConfig") is not None:
        pipeline_config = _pipeline_config(node.child("pipelineConfig"))
    return KubernetesPlatform(executors=executors, pipeline_config=pipeline_config)


def parse_executor_config(node: Node) -> KubernetesExecutorConfig:
    """Parse one ``KubernetesExecutorConfig`` (a value of ``deploymentSpec.executors``).

    Also used for the ``kubernetes-*`` parameters of KFP-compiled Argo workflows,
    which carry the same JSON.
    """
    fields(node, _EXECUTOR_FIELDS, "")
    kwargs: dict[str, Any] = {}
    for key, (attr, parse) in _EXECUTOR_FIELDS.items():
        if node.value.get(key) is not None:
            kwargs[attr] = parse(node.child(key))
    config = KubernetesExecutorConfig(**kwargs)
    _check_names(node, config)
    return config


def _check_names(node: Node, config: KubernetesExecutorConfig) -> None:
    """Names the spec gives must be unique: init containers mount volumes by these names."""
    volumes = [v.volume_name for v in config.empty_dir_mounts]
    volumes += [v.volume_name for v in config.generic_ephemeral_volume]
    if config.enabled_shared_memory is not None:
        volumes.append(config.enabled_shared_memory.volume_name or "dshm")
    for name in set(volumes):
        if volumes.count(name) > 1:
            node.fail(f"two volumes are named {name!r}; give each emptyDir, ephemeral or "
                      "shared-memory volume its own name")
    containers = [c.name for c in config.init_containers]
    for name in set(containers):
        if containers.count(name) > 1:
            node.child("initContainers").fail(f"two init containers are named {name!r}")


def _pipeline_config(node: Node) -> PipelineConfig:
    fields(node, ("workspace",), "pipelineConfig.")
    if node.get("workspace") is None:
        return PipelineConfig()
    workspace = node.child("workspace")
    fields(workspace, ("size", "kubernetes"), "pipelineConfig.workspace.")
    kubernetes = None
    if workspace.get("kubernetes") is not None:
        k8s = workspace.child("kubernetes")
        fields(k8s, ("pvcSpecPatch",), "pipelineConfig.workspace.kubernetes.")
        patch: Mapping[str, Any] = k8s.optional("pvcSpecPatch", Mapping, {})
        kubernetes = KubernetesWorkspaceConfig(pvc_spec_patch=plain(patch))
    size = quantity(workspace, "size", required=True)
    return PipelineConfig(workspace=WorkspaceConfig(size=size, kubernetes=kubernetes))
