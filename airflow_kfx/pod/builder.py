"""The last step of building a task's pod: kfp-kubernetes settings and the
artifact volume, applied to the pod the KubernetesPodOperator built.

Pure (a function of its inputs) so ``kfx render`` and tests see exactly what the
cluster would get.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.plan import PlannedTask
from airflow_kfx.spec.model import Constant, Pipeline

ARTIFACT_VOLUME_NAME = "kfx-pipeline-root"
WORKSPACE_VOLUME_NAME = "kfp-workspace"


def artifact_mount_path(pipeline_root: str) -> str:
    """Where pods see the pipeline root: KFP's ``/s3/<bucket>``-style local path."""
    for scheme, prefix in (("s3://", "/s3/"), ("gs://", "/gcs/"), ("minio://", "/minio/")):
        if pipeline_root.startswith(scheme):
            bucket = pipeline_root[len(scheme):].split("/", 1)[0]
            return prefix + bucket
    if pipeline_root.startswith("file://"):
        return pipeline_root[len("file://"):].rstrip("/") or "/"
    return pipeline_root.rstrip("/") or "/"


def finish_pod(
    pod: Any,
    *,
    pipeline: Pipeline,
    planned: PlannedTask,
    platform_values: Sequence[tuple[Any, Any]],
    pipeline_root: str,
    artifact_volume: str | None,
    container_name: str,
    workspace_claim: str | None = None,
) -> Any:

    platform = pipeline.platform
    config = platform.executors.get(planned.executor) if platform is not None else None
    if config is not None:
        from airflow_kfx.pod.platform import apply_executor_config

        def resolve(source: Any) -> Any:
            for known, value in platform_values:
                if known == source:
                    return value
            if isinstance(source, Constant):
                return source.value
            # Not resolved yet (kfx render): show where the value will come from.
            return f"<run-time value of {_describe(source)}>"

        try:
            pod = apply_executor_config(pod, config, resolve, container_name=container_name)
        except TaskRuntimeError:
            if not any(_is_stand_in(v) for _, v in platform_values):
                raise
            # kfx render: a stand-in cannot fill a JSON-valued setting (tolerationJson,
            # nodeSelectorJson, …); leave such settings out of the rendered pod.
            def resolve_known(source: Any) -> Any:
                value = resolve(source)
                return None if _is_stand_in(value) else value

            pod = apply_executor_config(pod, config, resolve_known, container_name=container_name)
    if workspace_claim:
        from airflow_kfx.task_io import WORKSPACE_MOUNT_PATH

        _mount_claim(pod, WORKSPACE_VOLUME_NAME, workspace_claim, WORKSPACE_MOUNT_PATH, container_name)
    if artifact_volume:
        _mount_claim(pod, ARTIFACT_VOLUME_NAME, artifact_volume, artifact_mount_path(pipeline_root), container_name)
    pod.metadata.annotations = {
        **(pod.metadata.annotations or {}),
        "kfx/pipeline": pipeline.name,
        "kfx/task-path": planned.kfp_path,
        "kfx/pipeline-digest": pipeline.digest,
    }
    return pod


def _is_stand_in(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("<")


def _mount_claim(pod: Any, volume_name: str, claim: str, mount_path: str, container_name: str) -> None:
    from kubernetes.client import models as k8s

    pod.spec.volumes = [
        *(pod.spec.volumes or []),
        k8s.V1Volume(
            name=volume_name,
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim),
        ),
    ]
    for container in pod.spec.containers:
        if container.name == container_name:
            container.volume_mounts = [
                *(container.volume_mounts or []),
                k8s.V1VolumeMount(name=volume_name, mount_path=mount_path),
            ]


def _describe(source: Any) -> str:
    name = type(source).__name__
    fields = ", ".join(f"{k}={v}" for k, v in vars(source).items()) if hasattr(source, "__dict__") else ""
    if not fields:
        import dataclasses

        if dataclasses.is_dataclass(source):
            fields = ", ".join(f"{f.name}={getattr(source, f.name)}" for f in dataclasses.fields(source))
    return f"{name}({fields})"
