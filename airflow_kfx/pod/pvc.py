"""PersistentVolumeClaims: kfp-kubernetes' ``CreatePVC`` and generic ephemeral volumes.

``kubernetes.CreatePVC`` compiles to a stub executor (image ``argostub/createpvc``)
that KFP's driver handles itself (``createPVC`` in ``backend/src/v2/driver/k8s.go``);
:func:`create_pvc_manifest` builds the same claim from the task's resolved inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import (
        V1EphemeralVolumeSource,
        V1PersistentVolumeClaim,
    )

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.pod.k8s_json import to_k8s_model
from airflow_kfx.spec.platform_messages import ACCESS_MODES
from airflow_kfx.spec.platform_model import GenericEphemeralVolume
from airflow_kfx.spec.platform_values import is_quantity

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def create_pvc_manifest(
    *,
    access_modes: Sequence[str],
    size: str,
    name_prefix: str,
    pvc_name: str | None = None,
    pvc_name_suffix: str | None = None,
    storage_class_name: str | None = None,
    volume_name: str | None = None,
    annotations: Mapping[str, str] | None = None,
    data_source: Mapping[str, Any] | None = None,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> V1PersistentVolumeClaim:
    """The claim a ``CreatePVC`` task creates; keyword names are the component's inputs.

    Naming follows KFP's driver: ``pvc_name`` as given; else ``name_prefix +
    pvc_name_suffix`` (suffixes are written like ``"-my-pvc"``); else
    ``name_prefix`` alone. KFP uses a fresh UUID as the prefix; pass something
    unique per run *and stable across retries* of the task (e.g. derived from the
    run id and task id), so a retried task finds its claim instead of making another.

    ``storage_class_name``: None omits the field (the cluster's default class);
    ``""`` is kept, which in Kubernetes means "bind to a pre-created PV without a
    class" — the compiled component's default, and what KFP sends for it.
    ``namespace`` and ``labels`` are not CreatePVC inputs; they let the caller
    place and tag the claim (e.g. for clean-up).
    """
    from kubernetes.client import (
        V1ObjectMeta,
        V1PersistentVolumeClaim,
        V1PersistentVolumeClaimSpec,
        V1VolumeResourceRequirements,
    )
    if pvc_name and pvc_name_suffix:
        raise TaskRuntimeError("CreatePVC: give at most one of pvc_name and pvc_name_suffix")
    name = pvc_name or f"{name_prefix}{pvc_name_suffix or ''}"
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise TaskRuntimeError(
            f"CreatePVC: {name!r} is not a valid PVC name (lower-case letters, digits, '-' and '.', "
            "at most 253 characters, starting and ending with a letter or digit)"
        )
    return V1PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=V1ObjectMeta(
            name=name,
            namespace=namespace,
            annotations=_string_map(annotations, "annotations"),
            labels=_string_map(labels, "labels"),
        ),
        spec=V1PersistentVolumeClaimSpec(
            access_modes=_access_modes(access_modes),
            resources=V1VolumeResourceRequirements(requests={"storage": _size(size)}),
            storage_class_name=storage_class_name,
            volume_name=volume_name or None,
            data_source=None if not data_source else to_k8s_model(
                dict(data_source), "V1TypedLocalObjectReference", "CreatePVC data_source"),
        ),
    )


def ephemeral_volume_source(volume: GenericEphemeralVolume) -> V1EphemeralVolumeSource:
    """The ``ephemeral`` source of a ``genericEphemeralVolume`` entry (a per-pod claim)."""
    from kubernetes.client import (
        V1EphemeralVolumeSource,
        V1ObjectMeta,
        V1PersistentVolumeClaimSpec,
        V1PersistentVolumeClaimTemplate,
        V1VolumeResourceRequirements,
    )
    metadata = None
    if volume.metadata is not None and (volume.metadata.labels or volume.metadata.annotations):
        metadata = V1ObjectMeta(labels=dict(volume.metadata.labels) or None,
                                annotations=dict(volume.metadata.annotations) or None)
    spec = V1PersistentVolumeClaimSpec(
        access_modes=list(volume.access_modes),
        resources=V1VolumeResourceRequirements(requests={"storage": volume.size}),
        # default_storage_class omits the field; otherwise the name is used even if "".
        storage_class_name=None if volume.default_storage_class else volume.storage_class_name,
    )
    template = V1PersistentVolumeClaimTemplate(metadata=metadata, spec=spec)
    return V1EphemeralVolumeSource(volume_claim_template=template)


def _access_modes(modes: Sequence[str]) -> list[str]:
    if isinstance(modes, str) or not modes:
        raise TaskRuntimeError(f"CreatePVC: access_modes must be a non-empty list, got {modes!r}")
    for mode in modes:
        if mode not in ACCESS_MODES:
            raise TaskRuntimeError(
                f"CreatePVC: unknown access mode {mode!r}; use one of {', '.join(ACCESS_MODES)}")
    return list(modes)


def _size(size: str) -> str:
    if not isinstance(size, str) or not is_quantity(size):
        raise TaskRuntimeError(f"CreatePVC: size must be a Kubernetes quantity such as '5Gi', got {size!r}")
    return size


def _string_map(values: Mapping[str, Any] | None, what: str) -> dict[str, str] | None:
    if not values:
        return None
    if not isinstance(values, Mapping) or not all(isinstance(v, str) for v in values.values()):
        raise TaskRuntimeError(f"CreatePVC: {what} must map names to strings, got {values!r}")
    return {str(k): v for k, v in values.items()}
