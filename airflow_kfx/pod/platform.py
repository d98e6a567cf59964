"""Apply a kfp-kubernetes ``KubernetesExecutorConfig`` to a ``V1Pod``.

Mirrors what KFP's v2 driver does to a task pod (``extendPodSpecPatch`` in
``backend/src/v2/driver/k8s.go``): volumes and env go on the main container,
scheduling settings on the pod. Where KFP's behaviour is a choice, it is kept:

* a parameterised name or JSON that resolves to None (an optional pipeline input
  that was not given) skips that one setting, as KFP's ``ErrResolvedParameterNull``;
* node affinity *replaces* any node affinity on the base pod, because required
  terms are ORed and adding ours to the base pod's would loosen its constraint;
* the security context does not override a runAsUser/runAsGroup the base pod
  already sets, and always drops all capabilities.

Unlike KFP, tolerations, node selectors, labels and image pull secrets are merged
into what the base pod already has (KFP starts from an empty pod), and env vars
replace a same-named one rather than being appended twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import (
        V1Container,
        V1EnvVar,
        V1Pod,
        V1PodSpec,
    )

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.pod.platform_scheduling import apply_scheduling
from airflow_kfx.pod.pvc import create_pvc_manifest, ephemeral_volume_source
from airflow_kfx.pod.values import resolve_name
from airflow_kfx.pod.volumes import PodVolumes, mount
from airflow_kfx.spec.model import ValueSource
from airflow_kfx.spec.platform_model import InitContainer, KubernetesExecutorConfig, SecurityContext

__all__ = ["apply_executor_config", "create_pvc_manifest"]

Resolver = Callable[[ValueSource], Any]


def apply_executor_config(
    pod: V1Pod,
    config: KubernetesExecutorConfig,
    resolve: Resolver,
    *,
    container_name: str = "base",
) -> V1Pod:
    """Return a copy of ``pod`` with ``config`` applied; ``pod`` is not modified.

    ``resolve`` turns each :data:`ValueSource` of the config (constants too) into
    its value for this task run. ``container_name`` is the main container, which
    gets the env vars, volume mounts, pull policy and security context.
    """
    from kubernetes.client import V1ObjectMeta
    pod = copy.deepcopy(pod)
    pod.metadata = pod.metadata or V1ObjectMeta()
    spec: V1PodSpec = pod.spec
    container = _container(spec, container_name)
    volumes = PodVolumes(spec)

    _add_volumes(config, resolve, container, volumes)
    _add_env(config, resolve, container)
    apply_scheduling(config, resolve, spec)
    if config.pod_metadata is not None:
        meta, wanted = pod.metadata, config.pod_metadata
        meta.labels = {**(meta.labels or {}), **wanted.labels} or None
        meta.annotations = {**(meta.annotations or {}), **wanted.annotations} or None
    _add_image_settings(config, resolve, spec, container)
    if config.active_deadline_seconds:
        spec.active_deadline_seconds = config.active_deadline_seconds
    if config.security_context is not None:
        _set_security_context(config.security_context, container)
    for init in config.init_containers:
        _add_init_container(init, spec, volumes)
    if not spec.volumes:
        spec.volumes = None  # keep the serialised pod as small as the input
    return pod


def _container(spec: V1PodSpec, name: str) -> V1Container:
    for container in spec.containers or []:
        if container.name == name:
            return container
    names = [c.name for c in spec.containers or []]
    raise ValueError(f"the pod has no container named {name!r} (it has {names})")


# ---------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------


def _add_volumes(config: KubernetesExecutorConfig, resolve: Resolver, container: V1Container,
                 volumes: PodVolumes) -> None:
    # Spec-named volumes first, so an init container's reference finds them first.
    from kubernetes.client import (
        V1ConfigMapVolumeSource,
        V1EmptyDirVolumeSource,
        V1PersistentVolumeClaimVolumeSource,
        V1SecretVolumeSource,
        V1Volume,
    )
    for empty in config.empty_dir_mounts:
        source = V1EmptyDirVolumeSource(medium=empty.medium, size_limit=empty.size_limit)
        name = volumes.add(empty.volume_name, V1Volume(name="", empty_dir=source))
        mount(container, name, empty.mount_path)
    for ephemeral in config.generic_ephemeral_volume:
        volume = V1Volume(name="", ephemeral=ephemeral_volume_source(ephemeral))
        name = volumes.add(ephemeral.volume_name, volume)
        mount(container, name, ephemeral.mount_path)
    if config.enabled_shared_memory is not None:
        shm = config.enabled_shared_memory
        source = V1EmptyDirVolumeSource(medium="Memory", size_limit=shm.size or None)
        name = volumes.add(shm.volume_name or "dshm", V1Volume(name="", empty_dir=source))
        mount(container, name, "/dev/shm")
    for pvc in config.pvc_mount:
        claim = resolve_name(resolve, pvc.pvc_name, "pvcMount PVC name")
        if claim is None:  # KFP fails here too: a mount without a claim is a broken task
            raise TaskRuntimeError(f"the PVC to mount at {pvc.mount_path!r} has no name (its value is empty)")
        source = V1PersistentVolumeClaimVolumeSource(claim_name=claim)
        name = volumes.add(claim, V1Volume(name="", persistent_volume_claim=source), shareable=True)
        mount(container, name, pvc.mount_path, pvc.sub_path)
    for secret in config.secret_as_volume:
        secret_name = resolve_name(resolve, secret.secret_name, "secretAsVolume secret name")
        if secret_name is not None:
            source = V1SecretVolumeSource(secret_name=secret_name, optional=secret.optional)
            name = volumes.add(secret_name, V1Volume(name="", secret=source), shareable=True)
            mount(container, name, secret.mount_path)
    for config_map in config.config_map_as_volume:
        cm_name = resolve_name(resolve, config_map.config_map_name, "configMapAsVolume config map name")
        if cm_name is not None:
            source = V1ConfigMapVolumeSource(name=cm_name, optional=config_map.optional)
            name = volumes.add(cm_name, V1Volume(name="", config_map=source), shareable=True)
            mount(container, name, config_map.mount_path)


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


def _add_env(config: KubernetesExecutorConfig, resolve: Resolver, container: V1Container) -> None:
    from kubernetes.client import (
        V1ConfigMapKeySelector,
        V1EnvVar,
        V1EnvVarSource,
        V1ObjectFieldSelector,
        V1SecretKeySelector,
    )
    for secret in config.secret_as_env:
        secret_name = resolve_name(resolve, secret.secret_name, "secretAsEnv secret name")
        if secret_name is None:
            continue
        for entry in secret.key_to_env:
            ref = V1SecretKeySelector(name=secret_name, key=entry.key, optional=secret.optional)
            source = V1EnvVarSource(secret_key_ref=ref)
            _set_env(container, V1EnvVar(name=entry.env_var, value_from=source))
    for config_map in config.config_map_as_env:
        cm_name = resolve_name(resolve, config_map.config_map_name, "configMapAsEnv config map name")
        if cm_name is None:
            continue
        for entry in config_map.key_to_env:
            ref = V1ConfigMapKeySelector(name=cm_name, key=entry.key, optional=config_map.optional)
            source = V1EnvVarSource(config_map_key_ref=ref)
            _set_env(container, V1EnvVar(name=entry.env_var, value_from=source))
    for field in config.field_path_as_env:
        source = V1EnvVarSource(field_ref=V1ObjectFieldSelector(field_path=field.field_path))
        _set_env(container, V1EnvVar(name=field.name, value_from=source))


def _set_env(container: V1Container, var: V1EnvVar) -> None:
    """Add ``var``, replacing a same-named one (two would leave the winner to the runtime)."""
    env = [e for e in container.env or [] if e.name != var.name]
    env.append(var)
    container.env = env


# ---------------------------------------------------------------------------
# Images, security, init containers
# ---------------------------------------------------------------------------


def _add_image_settings(config: KubernetesExecutorConfig, resolve: Resolver, spec: V1PodSpec,
                        container: V1Container) -> None:
    from kubernetes.client import V1LocalObjectReference
    if config.image_pull_policy:
        container.image_pull_policy = config.image_pull_policy
    secrets = list(spec.image_pull_secrets or [])
    for pull_secret in config.image_pull_secret:
        name = resolve_name(resolve, pull_secret.secret_name, "imagePullSecret name")
        if name is not None and all(s.name != name for s in secrets):
            secrets.append(V1LocalObjectReference(name=name))
    spec.image_pull_secrets = secrets or None


def _set_security_context(wanted: SecurityContext, container: V1Container) -> None:
    from kubernetes.client import V1Capabilities, V1SecurityContext
    context = container.security_context = container.security_context or V1SecurityContext()
    # As KFP: an identity already set on the base pod (by an administrator) wins.
    if wanted.run_as_user is not None and context.run_as_user is None:
        context.run_as_user = wanted.run_as_user
    if wanted.run_as_group is not None and context.run_as_group is None:
        context.run_as_group = wanted.run_as_group
    if wanted.run_as_non_root is not None and context.run_as_non_root is None:
        context.run_as_non_root = wanted.run_as_non_root
    # KFP drops every capability whenever a security context is requested (PSS baseline).
    context.capabilities = V1Capabilities(drop=["ALL"])


def _add_init_container(init: InitContainer, spec: V1PodSpec, volumes: PodVolumes) -> None:
    from kubernetes.client import V1Container, V1EnvVar, V1ResourceRequirements, V1VolumeMount
    existing = [c.name for c in (spec.init_containers or []) + (spec.containers or [])]
    if init.name in existing:
        raise TaskRuntimeError(f"init container {init.name!r} clashes with a container of the pod")
    resources = None
    if init.resources is not None:
        resources = V1ResourceRequirements(requests=dict(init.resources.requests) or None,
                                           limits=dict(init.resources.limits) or None)
    mounts = [V1VolumeMount(name=volumes.pod_name_of(m.volume_name), mount_path=m.mount_path)
              for m in init.volume_mounts]
    container = V1Container(
        name=init.name,
        image=init.image,
        command=list(init.command) or None,
        args=list(init.args) or None,
        env=[V1EnvVar(name=e.name, value=e.value) for e in init.env] or None,
        volume_mounts=mounts or None,
        restart_policy=init.restart_policy,
        resources=resources,
    )
    spec.init_containers = [*(spec.init_containers or []), container]
