"""Parsers for the messages of ``KubernetesExecutorConfig``, one per field.

Each takes the Node of one message and returns its model object. Keys are
checked with :func:`~airflow_kfx.spec.platform_values.fields`, so an unknown key
is refused, never dropped.
"""

from __future__ import annotations

from airflow_kfx.spec.model import ComponentInput, Constant, ValueSource
from airflow_kfx.spec.platform_model import (
    ConfigMapAsEnv,
    ConfigMapAsVolume,
    EmptyDirMount,
    EnabledSharedMemory,
    FieldPathAsEnv,
    GenericEphemeralVolume,
    ImagePullSecret,
    InitContainer,
    InitEnvVar,
    InitResources,
    InitVolumeMount,
    KeyToEnv,
    NodeAffinityTerm,
    NodeSelector,
    PodAffinityTerm,
    PodMetadata,
    PvcMount,
    SecretAsEnv,
    SecretAsVolume,
    SecurityContext,
    SelectorRequirement,
    Toleration,
)
from airflow_kfx.spec.platform_values import (
    fields,
    name_source,
    optional_bool,
    optional_int,
    optional_source,
    optional_str,
    parse_value_source,
    quantity,
    required_str,
    str_map,
    strings,
    task_output,
    to_int,
)
from airflow_kfx.spec.source import Node

PULL_POLICIES = ("Always", "Never", "IfNotPresent")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")

# ---------------------------------------------------------------------------
# Secrets, config maps, field paths
# ---------------------------------------------------------------------------


def secret_as_env(node: Node) -> SecretAsEnv:
    fields(node, ("secretName", "secretNameParameter", "keyToEnv", "optional"), "secretAsEnv.")
    return SecretAsEnv(
        secret_name=name_source(node, "secretNameParameter", "secretName"),
        key_to_env=_key_to_env(node, "secretKey", "secretAsEnv.keyToEnv."),
        optional=optional_bool(node, "optional"),
    )


def config_map_as_env(node: Node) -> ConfigMapAsEnv:
    fields(node, ("configMapName", "configMapNameParameter", "keyToEnv", "optional"), "configMapAsEnv.")
    return ConfigMapAsEnv(
        config_map_name=name_source(node, "configMapNameParameter", "configMapName"),
        key_to_env=_key_to_env(node, "configMapKey", "configMapAsEnv.keyToEnv."),
        optional=optional_bool(node, "optional"),
    )


def _key_to_env(node: Node, key_field: str, prefix: str) -> tuple[KeyToEnv, ...]:
    # Required and non-empty: an entry that sets no variable is almost surely a mistake.
    entries = node.required("keyToEnv", list, f"a list of {{{key_field}, envVar}} mappings")
    if not entries.value:
        entries.fail(f"needs at least one {{{key_field}, envVar}} entry")
    result = []
    for entry in entries.elements():
        fields(entry, (key_field, "envVar"), prefix)
        result.append(KeyToEnv(required_str(entry, key_field), required_str(entry, "envVar")))
    return tuple(result)


def secret_as_volume(node: Node) -> SecretAsVolume:
    fields(node, ("secretName", "secretNameParameter", "mountPath", "optional"), "secretAsVolume.")
    return SecretAsVolume(
        secret_name=name_source(node, "secretNameParameter", "secretName"),
        mount_path=required_str(node, "mountPath"),
        optional=optional_bool(node, "optional"),
    )


def config_map_as_volume(node: Node) -> ConfigMapAsVolume:
    fields(node, ("configMapName", "configMapNameParameter", "mountPath", "optional"), "configMapAsVolume.")
    return ConfigMapAsVolume(
        config_map_name=name_source(node, "configMapNameParameter", "configMapName"),
        mount_path=required_str(node, "mountPath"),
        optional=optional_bool(node, "optional"),
    )


def field_path_as_env(node: Node) -> FieldPathAsEnv:
    fields(node, ("name", "fieldPath"), "fieldPathAsEnv.")
    return FieldPathAsEnv(required_str(node, "name"), required_str(node, "fieldPath"))


def image_pull_secret(node: Node) -> ImagePullSecret:
    fields(node, ("secretName", "secretNameParameter"), "imagePullSecret.")
    return ImagePullSecret(name_source(node, "secretNameParameter", "secretName"))


def image_pull_policy(node: Node) -> str | None:
    value = node.expect(str)
    if value == "":
        return None  # proto3 default: not set
    if value not in PULL_POLICIES:
        node.fail(f"imagePullPolicy must be one of {', '.join(PULL_POLICIES)}, got {value!r}")
    return value


def active_deadline_seconds(node: Node) -> int | None:
    seconds = to_int(node)
    if seconds < 0:
        node.fail("activeDeadlineSeconds must not be negative")
    return seconds or None  # 0 is proto3's "not set"


def pod_metadata(node: Node, prefix: str = "podMetadata.") -> PodMetadata:
    fields(node, ("labels", "annotations"), prefix)
    return PodMetadata(labels=str_map(node, "labels"), annotations=str_map(node, "annotations"))


# ---------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------


def pvc_mount(node: Node) -> PvcMount:
    legacy = ("taskOutputParameter", "constant", "componentInputParameter")
    fields(node, (*legacy, "mountPath", "pvcNameParameter", "subPath"), "pvcMount.")
    source: ValueSource
    if node.get("pvcNameParameter") is not None:
        source = parse_value_source(node.child("pvcNameParameter"))
    else:
        # The deprecated ``pvc_reference`` oneof, the only form before kfp-kubernetes 1.2.
        present = [k for k in legacy if node.get(k) not in (None, "")]
        if len(present) != 1:
            node.fail("needs 'pvcNameParameter' (or exactly one of the deprecated "
                      "'constant', 'componentInputParameter', 'taskOutputParameter')")
        kind = present[0]
        if kind == "taskOutputParameter":
            source = task_output(node.child(kind))
        elif kind == "constant":
            source = Constant(required_str(node, kind))
        else:
            source = ComponentInput(required_str(node, kind))
    return PvcMount(source, required_str(node, "mountPath"), optional_str(node, "subPath"))


def empty_dir_mount(node: Node) -> EmptyDirMount:
    fields(node, ("volumeName", "mountPath", "medium", "sizeLimit"), "emptyDirMounts.")
    medium = optional_str(node, "medium") or None
    if medium not in (None, "Memory"):
        node.child("medium").fail(f"an emptyDir medium must be '' or 'Memory', got {medium!r}")
    return EmptyDirMount(
        volume_name=required_str(node, "volumeName"),
        mount_path=required_str(node, "mountPath"),
        medium=medium,
        size_limit=quantity(node, "sizeLimit"),
    )


def generic_ephemeral_volume(node: Node) -> GenericEphemeralVolume:
    keys = ("volumeName", "mountPath", "accessModes", "size", "defaultStorageClass", "storageClassName",
            "metadata")
    fields(node, keys, "genericEphemeralVolume.")
    metadata = node.child("metadata")
    return GenericEphemeralVolume(
        volume_name=required_str(node, "volumeName"),
        mount_path=required_str(node, "mountPath"),
        access_modes=access_modes(node, "accessModes"),
        size=quantity(node, "size", required=True),
        default_storage_class=bool(optional_bool(node, "defaultStorageClass")),
        storage_class_name=optional_str(node, "storageClassName"),
        metadata=(None if metadata.value is None
                  else pod_metadata(metadata, "genericEphemeralVolume.metadata.")),
    )


def access_modes(node: Node, key: str) -> tuple[str, ...]:
    modes = strings(node, key)
    if not modes:
        node.fail(f"'{key}' needs at least one of {', '.join(ACCESS_MODES)}")
    for mode in modes:
        if mode not in ACCESS_MODES:
            node.child(key).fail(f"unknown access mode {mode!r}; use one of {', '.join(ACCESS_MODES)}")
    return modes


def enabled_shared_memory(node: Node) -> EnabledSharedMemory:
    fields(node, ("volumeName", "size"), "enabledSharedMemory.")
    return EnabledSharedMemory(volume_name=optional_str(node, "volumeName"),
                               size=quantity(node, "size") or "")


# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------


def node_selector(node: Node) -> NodeSelector:
    fields(node, ("labels", "nodeSelectorJson"), "nodeSelector.")
    return NodeSelector(labels=str_map(node, "labels"),
                        node_selector_json=optional_source(node, "nodeSelectorJson"))


def toleration(node: Node) -> Toleration:
    keys = ("key", "operator", "value", "effect", "tolerationSeconds", "tolerationJson")
    fields(node, keys, "tolerations.")
    return Toleration(
        key=optional_str(node, "key"),
        operator=optional_str(node, "operator"),
        value=optional_str(node, "value"),
        effect=optional_str(node, "effect"),
        toleration_seconds=optional_int(node, "tolerationSeconds"),
        toleration_json=optional_source(node, "tolerationJson"),
    )


def node_affinity(node: Node) -> NodeAffinityTerm:
    fields(node, ("matchExpressions", "matchFields", "weight", "nodeAffinityJson"), "nodeAffinity.")
    return NodeAffinityTerm(
        match_expressions=_requirements(node, "matchExpressions", "nodeAffinity."),
        match_fields=_requirements(node, "matchFields", "nodeAffinity."),
        weight=_weight(node),
        node_affinity_json=optional_source(node, "nodeAffinityJson"),
    )


def pod_affinity(node: Node) -> PodAffinityTerm:
    keys = ("matchPodExpressions", "matchPodLabels", "topologyKey", "namespaces",
            "matchNamespaceExpressions", "matchNamespaceLabels", "weight", "anti")
    fields(node, keys, "podAffinity.")
    return PodAffinityTerm(
        topology_key=required_str(node, "topologyKey"),  # Kubernetes requires one
        match_pod_expressions=_requirements(node, "matchPodExpressions", "podAffinity."),
        match_pod_labels=str_map(node, "matchPodLabels"),
        namespaces=strings(node, "namespaces"),
        match_namespace_expressions=_requirements(node, "matchNamespaceExpressions", "podAffinity."),
        match_namespace_labels=str_map(node, "matchNamespaceLabels"),
        weight=_weight(node),
        anti=bool(optional_bool(node, "anti")),
    )


def _requirements(node: Node, key: str, prefix: str) -> tuple[SelectorRequirement, ...]:
    result = []
    for entry in node.child(key).elements():
        fields(entry, ("key", "operator", "values"), f"{prefix}{key}.")
        result.append(SelectorRequirement(required_str(entry, "key"), required_str(entry, "operator"),
                                          strings(entry, "values")))
    return tuple(result)


def _weight(node: Node) -> int | None:
    weight = optional_int(node, "weight")
    if weight is not None and not 1 <= weight <= 100:
        node.child("weight").fail(f"a scheduling weight must be between 1 and 100, got {weight}")
    return weight


# ---------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------


def security_context(node: Node) -> SecurityContext:
    fields(node, ("runAsUser", "runAsGroup", "runAsNonRoot"), "securityContext.")
    return SecurityContext(
        run_as_user=optional_int(node, "runAsUser"),
        run_as_group=optional_int(node, "runAsGroup"),
        run_as_non_root=optional_bool(node, "runAsNonRoot"),
    )


def init_container(node: Node) -> InitContainer:
    keys = ("name", "image", "command", "args", "env", "volumeMounts", "restartPolicy", "resources")
    fields(node, keys, "initContainers.")
    env = []
    for entry in node.child("env").elements():
        fields(entry, ("name", "value"), "initContainers.env.")
        env.append(InitEnvVar(required_str(entry, "name"), optional_str(entry, "value")))
    mounts = []
    for entry in node.child("volumeMounts").elements():
        fields(entry, ("volumeName", "mountPath"), "initContainers.volumeMounts.")
        mounts.append(InitVolumeMount(required_str(entry, "volumeName"), required_str(entry, "mountPath")))
    restart = optional_str(node, "restartPolicy") or None
    if restart not in (None, "Always"):
        node.child("restartPolicy").fail(
            f"an init container's restartPolicy can only be 'Always', got {restart!r}")
    resources = None
    if node.get("resources") is not None:
        res = node.child("resources")
        fields(res, ("requests", "limits"), "initContainers.resources.")
        resources = InitResources(requests=str_map(res, "requests"), limits=str_map(res, "limits"))
    return InitContainer(
        name=required_str(node, "name"),
        image=required_str(node, "image"),
        command=strings(node, "command"),
        args=strings(node, "args"),
        env=tuple(env),
        volume_mounts=tuple(mounts),
        restart_policy=restart,
        resources=resources,
    )
