"""Settings: the ``[kfx]`` Airflow config section, overridable per pipeline.

Precedence (highest first): ``load_pipeline(..., settings=...)`` / ``kfx.yaml``
entries, then ``AIRFLOW__KFX__<KEY>`` / ``airflow.cfg [kfx]``, then the defaults
below. Run-time keys (runtime, pipeline_root, …) left unset at parse time are
read when the task runs, so ``kfx run --runtime local`` works on any DAG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECTION = "kfx"
# DAG-run param that switches KFP caching off for one run (``kfx run --no-cache``).
CACHE_PARAM = "kfx_cache"

# name → (default, description); also the provider's config metadata.
OPTIONS: dict[str, tuple[str, str]] = {
    "runtime": ("kubernetes", "Where task pods run: 'kubernetes' (a cluster) or 'local' (subprocesses on the worker)."),
    "namespace": ("default", "Kubernetes namespace for task pods."),
    "kubernetes_conn_id": ("kubernetes_default", "Airflow connection to the Kubernetes cluster."),
    "pipeline_root": ("", "Where artifacts live: s3://, gs://, minio:// URI or a filesystem path. Empty: the pipeline's defaultPipelineRoot, else <AIRFLOW_HOME>/kfx/artifacts."),
    "pipeline_root_conn_id": ("", "Airflow connection the worker reads and writes an object-storage pipeline root with (ObjectStoragePath); empty: the scheme's default (aws_default for s3:// and minio://, google_cloud_default for gs://)."),
    "artifact_volume": ("", "Shared volume mode: a ReadWriteMany PersistentVolumeClaim (or CSI bucket mount) mounted in every pod at the pipeline root's local path (KFP's /s3/<bucket>, /gcs/<bucket>, /minio/<bucket> convention, or the path itself). Empty with an object-storage root: the launcher copies artifacts in and out of each pod."),
    "launcher_image": ("", "Image of the launcher containers that download a task's input artifacts and upload its outputs when the pipeline root is object storage and no artifact_volume is set: any image with Python and airflow-kfx[s3] installed (the docker-compose Airflow image works)."),
    "artifact_credentials_secret": ("", "Kubernetes secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, …) become the launcher containers' environment; never given to the user's container."),
    "mlflow_conn_id": ("mlflow_default", "Airflow connection to the MLflow tracking server (else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
    "tracking": ("true", "Track runs in MLflow ('true'/'false')."),
    "mlflow_strict": ("false", "'true': a task fails when MLflow cannot be reached; 'false': warn and go on."),
    "mlflow_timeout": ("5", "Seconds to wait for one MLflow request before giving up (no retries)."),
    "mlflow_ui_url": ("", "Base URL of the MLflow UI for the 'MLflow run' links; empty: the tracking URI when it is http(s), else http://127.0.0.1:5000."),
    "mlflow_credentials_secret": ("", "Kubernetes secret holding MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN for task pods (kubernetes runtime)."),
    "image_pull_policy": ("", "Image pull policy for task pods (Always, IfNotPresent, Never); empty: Kubernetes' default."),
    "on_finish_action": ("delete_pod", "What happens to a task's pod when it ends (KubernetesPodOperator on_finish_action): delete_pod, delete_succeeded_pod, delete_active_pod or keep_pod."),
    "upload_folder": ("", "Pipelines folder the 'Upload pipeline' page writes to (a folder a load_pipelines() drop-in of a DAG bundle reads); empty: uploads are off."),
    "upload_max_mb": ("20", "Largest pipeline file the upload page accepts, in MB."),
    "service_account": ("", "Service account for task pods; empty: the namespace default."),
}


@dataclass(frozen=True)
class KfxSettings:
    """Per-pipeline settings; ``None`` means "use the [kfx] config at run time"."""

    dag_id: str | None = None
    schedule: Any = None
    tags: tuple[str, ...] = ()
    experiment: str | None = None
    runtime: str | None = None
    namespace: str | None = None
    kubernetes_conn_id: str | None = None
    pipeline_root: str | None = None
    artifact_volume: str | None = None
    image_pull_policy: str | None = None
    service_account: str | None = None
    on_finish_action: str | None = None
    # Watch pods from Airflow's triggerer; None: the provider's default ([operators] default_deferrable).
    deferrable: bool | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "") -> KfxSettings:
        from airflow_kfx.exceptions import SpecError

        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SpecError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", file=where or None
            )
        data = dict(values)
        if "tags" in data:
            data["tags"] = tuple(data["tags"] or ())
        return cls(**data)

    def merged(self, override: KfxSettings) -> KfxSettings:
        """``override``'s set fields win."""
        changes = {
            f.name: getattr(override, f.name)
            for f in dataclasses.fields(override)
            if getattr(override, f.name) not in (None, ())
        }
        return dataclasses.replace(self, **changes)


def config_value(key: str, override: str | None = None) -> str:
    """``override`` if set, else ``[kfx] key`` from Airflow's config, else the default."""
    if override:
        return override
    default = OPTIONS[key][0]
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - the spec layer can run without Airflow
        return default
    return conf.get(SECTION, key, fallback=default) or default


def fallback_pipeline_root() -> str:
    """``[kfx] pipeline_root``, else ``<AIRFLOW_HOME>/kfx/artifacts``: where artifacts go when
    neither the pipeline's settings nor its file name a root."""
    import os

    configured = config_value("pipeline_root")
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "kfx", "artifacts")
