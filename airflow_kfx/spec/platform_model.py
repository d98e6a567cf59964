"""Typed model of the kfp-kubernetes platform spec (``platforms.kubernetes``).

One frozen dataclass per message of kfp-kubernetes'
``kubernetes_executor_config.proto`` that airflow-kfx translates, with Python
snake_case names. Every setting that KFP lets a pipeline parameterise is a
:data:`~airflow_kfx.spec.model.ValueSource` (resolved per task at run time);
the deprecated plain-string forms are folded into the same field when parsed.

Parsed by :mod:`airflow_kfx.spec.platform`, applied to pods by
:mod:`airflow_kfx.pod.platform`. No Airflow or Kubernetes imports here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.spec.model import ValueSource

# ---------------------------------------------------------------------------
# Secrets, config maps, field paths (environment and volumes)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyToEnv:
    """One ``keyToEnv`` entry: data key of a Secret/ConfigMap → env var name."""

    key: str
    env_var: str


@dataclass(frozen=True)
class SecretAsEnv:
    secret_name: ValueSource
    key_to_env: tuple[KeyToEnv, ...]
    # None = not set in the spec; the selector's ``optional`` is then left unset
    # (KFP's driver distinguishes the two the same way).
    optional: bool | None = None


@dataclass(frozen=True)
class SecretAsVolume:
    secret_name: ValueSource
    mount_path: str
    optional: bool | None = None


@dataclass(frozen=True)
class ConfigMapAsEnv:
    config_map_name: ValueSource
    key_to_env: tuple[KeyToEnv, ...]
    optional: bool | None = None


@dataclass(frozen=True)
class ConfigMapAsVolume:
    config_map_name: ValueSource
    mount_path: str
    optional: bool | None = None


@dataclass(frozen=True)
class FieldPathAsEnv:
    """Env var from the Downward API (``valueFrom.fieldRef.fieldPath``)."""

    name: str
    field_path: str


@dataclass(frozen=True)
class ImagePullSecret:
    secret_name: ValueSource


# ---------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PvcMount:
    """Mount an existing PVC; the claim name is often another task's output."""

    pvc_name: ValueSource
    mount_path: str
    sub_path: str = ""


@dataclass(frozen=True)
class EmptyDirMount:
    volume_name: str
    mount_path: str
    medium: str | None = None
    size_limit: str | None = None


@dataclass(frozen=True)
class PodMetadata:
    """Labels and annotations (of the pod, or of an ephemeral volume's claim)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GenericEphemeralVolume:
    volume_name: str
    mount_path: str
    access_modes: tuple[str, ...]
    size: str
    # True: omit storageClassName (cluster default). False: use storage_class_name,
    # even when empty (an empty class means "bind statically", as in Kubernetes).
    default_storage_class: bool = False
    storage_class_name: str = ""
    metadata: PodMetadata | None = None


@dataclass(frozen=True)
class EnabledSharedMemory:
    """A memory-backed emptyDir mounted at ``/dev/shm``."""

    volume_name: str = ""  # "" → "dshm", as KFP does
    size: str = ""


# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSelector:
    labels: Mapping[str, str] = field(default_factory=dict)
    # Resolves to a ``{label: value}`` mapping; takes precedence over ``labels``.
    node_selector_json: ValueSource | None = None


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = ""
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None
    # Resolves to one Kubernetes Toleration object or a list of them; takes
    # precedence over the plain fields.
    toleration_json: ValueSource | None = None


@dataclass(frozen=True)
class SelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeAffinityTerm:
    match_expressions: tuple[SelectorRequirement, ...] = ()
    match_fields: tuple[SelectorRequirement, ...] = ()
    # Set: a preferred term with this weight; None: a required term.
    weight: int | None = None
    # Resolves to a Kubernetes NodeAffinity object; takes precedence.
    node_affinity_json: ValueSource | None = None

    @property
    def is_empty(self) -> bool:
        return self.node_affinity_json is None and not self.match_expressions and not self.match_fields


@dataclass(frozen=True)
class PodAffinityTerm:
    topology_key: str
    match_pod_expressions: tuple[SelectorRequirement, ...] = ()
    match_pod_labels: Mapping[str, str] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ()
    match_namespace_expressions: tuple[SelectorRequirement, ...] = ()
    match_namespace_labels: Mapping[str, str] = field(default_factory=dict)
    weight: int | None = None  # set: preferred; None: required
    anti: bool = False  # True: podAntiAffinity


# ---------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityContext:
    """Container security context; KFP also always drops all capabilities."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None


@dataclass(frozen=True)
class InitEnvVar:
    name: str
    value: str = ""


@dataclass(frozen=True)
class InitVolumeMount:
    """Mount, in an init container, a volume defined by another field of the config."""

    volume_name: str
    mount_path: str


@dataclass(frozen=True)
class InitResources:
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InitContainer:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[InitEnvVar, ...] = ()
    volume_mounts: tuple[InitVolumeMount, ...] = ()
    restart_policy: str | None = None  # only "Always" (a native sidecar)
    resources: InitResources | None = None


# ---------------------------------------------------------------------------
# Per-executor config and the platform spec
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KubernetesExecutorConfig:
    """``KubernetesExecutorConfig``: the Kubernetes settings of one executor."""

    secret_as_volume: tuple[SecretAsVolume, ...] = ()
    secret_as_env: tuple[SecretAsEnv, ...] = ()
    pvc_mount: tuple[PvcMount, ...] = ()
    node_selector: NodeSelector | None = None
    pod_metadata: PodMetadata | None = None
    image_pull_secret: tuple[ImagePullSecret, ...] = ()
    image_pull_policy: str | None = None
    config_map_as_volume: tuple[ConfigMapAsVolume, ...] = ()
    config_map_as_env: tuple[ConfigMapAsEnv, ...] = ()
    active_deadline_seconds: int | None = None
    field_path_as_env: tuple[FieldPathAsEnv, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    generic_ephemeral_volume: tuple[GenericEphemeralVolume, ...] = ()
    node_affinity: tuple[NodeAffinityTerm, ...] = ()
    pod_affinity: tuple[PodAffinityTerm, ...] = ()
    enabled_shared_memory: EnabledSharedMemory | None = None
    empty_dir_mounts: tuple[EmptyDirMount, ...] = ()
    security_context: SecurityContext | None = None
    init_containers: tuple[InitContainer, ...] = ()
    # pod_resource_claims (field 20) is refused at parse time: see platform.py.


@dataclass(frozen=True)
class KubernetesWorkspaceConfig:
    # A patch merged onto the workspace PVC's spec (camelCase keys, as compiled).
    pvc_spec_patch: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkspaceConfig:
    """``dsl.WorkspaceConfig``: a PVC shared by every task of one run."""

    size: str
    kubernetes: KubernetesWorkspaceConfig | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """``PipelineConfig`` (pipeline-level options); only the workspace is translated."""

    workspace: WorkspaceConfig | None = None


@dataclass(frozen=True)
class KubernetesPlatform:
    """``platforms.kubernetes``: executor label → config, plus pipeline-level config."""

    executors: Mapping[str, KubernetesExecutorConfig] = field(default_factory=dict)
    pipeline_config: PipelineConfig | None = None

    def executor(self, label: str) -> KubernetesExecutorConfig | None:
        return self.executors.get(label)
