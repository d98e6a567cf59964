"""Artifacts in and out of a task's pod without a shared volume: the launcher containers.

For an object-storage pipeline root and no ``[kfx] artifact_volume``, :func:`add_launcher`
adds to the pod (as the cncf provider's ``add_xcom_sidecar`` adds its sidecar: pure, on
a deep copy, kubernetes imported inside the function):

* an ``emptyDir`` (:data:`VOLUME`) mounted, one ``subPath`` per scheme, at the KFP
  local-path roots the task uses (``/s3``, ``/gcs``, ``/minio``) in all three containers,
  so ``/s3/<bucket>/<key>`` is one file for all of them; the launcher containers also
  mount a private folder of it at :data:`LAUNCHER_DIR`;
* the native sidecar :data:`UPLOAD_CONTAINER` (an init container with ``restartPolicy:
  Always``, Kubernetes ≥ 1.29): ``python -m airflow_kfx.launcher upload
  --wait-for-sigterm`` holds SIGTERM, says so in its ready file, waits until the kubelet
  stops it after the main container has ended, uploads the outputs and writes
  ``<task root>/_kfx/uploaded.json`` last. The pod's phase becomes Succeeded/Failed only
  when it has exited, which is what the KubernetesPodOperator waits for; the worker then
  checks the marker (``runtime.storage.upload_complete`` / ``wait_for_upload``), as a
  sidecar's exit code never fails a pod;
* the init container :data:`DOWNLOAD_CONTAINER`, after it: ``python -m
  airflow_kfx.launcher download`` puts every input artifact at its local path, makes the
  output folders, removes an earlier try's markers, and ends only once the uploader's
  ready file exists — so the main container never starts before the uploader can be
  stopped, however fast the task (no startup probe needed, on a cluster or on the
  ``local`` runtime). Its done file tells the uploader the task could run at all.

The user's container only gets the volume mounts. Object-store credentials reach the
launcher containers only, through ``envFrom`` of the secret ``credentials_secret`` (keys
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, …); no value is ever written into the pod. Without a secret the
launcher uses the pod's ambient credentials (IRSA, workload identity) — or, on the
``local`` runtime, the environment that runtime gives the launcher containers
(``runtime.storage.launcher_env``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from airflow_kfx.launcher.uris import LOCAL_FOLDERS, check_uri, is_within, scheme_of

DOWNLOAD_CONTAINER = "kfx-launcher-download"
UPLOAD_CONTAINER = "kfx-launcher-upload"
VOLUME = "kfx-launcher"
LAUNCHER_DIR = "/kfx-launcher"  # the launcher containers' own folder of the volume (not the user's)
LAUNCHER_SUBPATH = "launcher"
READY_FILE = f"{LAUNCHER_DIR}/upload-ready"  # written by the uploader once it holds SIGTERM
DONE_FILE = f"{LAUNCHER_DIR}/download-done"  # written by the download once everything is in place
LAUNCHER_MODULE = "airflow_kfx.launcher"
# Below a task root: the folder of its output parameter files (runtime/invocation.py), made
# before the main container runs, as KFP's launcher makes its output folders.
OUTPUT_PARAMETERS_DIR = "_kfx/parameters"
# The time the uploader has between the main container's end (or the pod's deletion) and
# its SIGKILL: the pod's terminationGracePeriodSeconds. 10 minutes moves tens of GB at
# in-cluster object-store speeds; a larger grace period already on the pod is kept. The
# cost of a long one is only that deleting a pod whose user code ignores SIGTERM takes
# that long; a pod that ends normally is never held back by it.
DEFAULT_GRACE_SECONDS = 600
# Requests only: the launcher is mostly waiting on the network. No limits, so a large
# multipart upload is never OOM-killed half-way.
RESOURCE_REQUESTS = {"cpu": "100m", "memory": "128Mi"}


@dataclass(frozen=True)
class LauncherSpec:
    """What the launcher containers of one task's pod do.

    ``image``: any image with Python and ``airflow-kfx[s3]`` (``[kfx] launcher_image``).
    ``run_root`` (``<pipeline root>/<dag>/<run>``) bounds every upload; ``task_root``
    (below it) is mirrored back. ``inputs``: input artifact URIs to download.
    ``output_dirs``: more URIs whose local folders must exist before the main container
    runs (the task root and its :data:`OUTPUT_PARAMETERS_DIR` always do). ``attempt``: this
    try's id, recorded in the marker. ``python``: the image's interpreter.
    An input given as a ``<...>`` stand-in (``kfx render``: a value known at run time)
    is passed through unchecked.
    """

    image: str
    pipeline_root: str
    run_root: str
    task_root: str
    inputs: tuple[str, ...] = ()
    credentials_secret: str | None = None
    output_dirs: tuple[str, ...] = ()
    attempt: str = ""
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    python: str = "python"

    def validate(self) -> None:
        if not self.image:
            raise ValueError(
                "the launcher needs an image with Python and airflow-kfx[s3]: set [kfx] launcher_image "
                "(or mount the pipeline root in every pod with [kfx] artifact_volume)"
            )
        for what, uri in (("pipeline root", self.pipeline_root), ("run root", self.run_root),
                          ("task root", self.task_root), *(("input artifact", u) for u in self.inputs),
                          *(("output folder", u) for u in self.output_dirs)):
            if what == "input artifact" and _is_stand_in(uri):
                continue
            try:
                check_uri(uri, what)
            except Exception as error:
                raise ValueError(str(error)) from None
        if not is_within(self.run_root, self.pipeline_root):
            raise ValueError(f"the run root {self.run_root} is not under the pipeline root {self.pipeline_root}")
        if not is_within(self.task_root, self.run_root):
            raise ValueError(f"the task root {self.task_root} is not under the run root {self.run_root}")

    def local_folders(self) -> list[str]:
        """The KFP local-path roots used (``s3``, ``gcs``, ``minio``), in a stable order."""
        uris = (self.pipeline_root, self.task_root, *self.inputs, *self.output_dirs)
        return sorted({LOCAL_FOLDERS[scheme_of(u)] for u in uris if not _is_stand_in(u)})

    def download_command(self) -> list[str]:
        argv = [self.python, "-m", LAUNCHER_MODULE, "download", "--task-root", self.task_root,
                "--uploader-ready", READY_FILE, "--done-file", DONE_FILE]
        parameters = f"{self.task_root.rstrip('/')}/{OUTPUT_PARAMETERS_DIR}"
        for uri in dict.fromkeys((parameters, *self.output_dirs)):
            argv += ["--mkdir", uri]
        for uri in dict.fromkeys(self.inputs):
            argv += ["--artifact", uri]
        return argv

    def upload_command(self) -> list[str]:
        argv = [self.python, "-m", LAUNCHER_MODULE, "upload", "--task-root", self.task_root,
                "--run-root", self.run_root, "--wait-for-sigterm", "--ready-file", READY_FILE,
                "--download-done", DONE_FILE]
        if self.attempt:
            argv += ["--attempt", self.attempt]
        return argv


def add_launcher(pod: Any, spec: LauncherSpec, *, main_container: str) -> Any:
    """A copy of ``pod`` (a ``V1Pod``) with the launcher containers and their volume."""
    from kubernetes.client import models as k8s

    spec.validate()
    pod = copy.deepcopy(pod)
    containers = pod.spec.containers or []
    main = next((c for c in containers if c.name == main_container), None)
    if main is None:
        raise ValueError(f"the pod has no container named {main_container!r}")
    taken = {c.name for c in [*containers, *(pod.spec.init_containers or [])]}
    if taken & {DOWNLOAD_CONTAINER, UPLOAD_CONTAINER}:
        raise ValueError("the pod already has launcher containers")
    if any(v.name == VOLUME for v in pod.spec.volumes or []):
        raise ValueError(f"the pod already has a volume named {VOLUME!r}")
    folders = spec.local_folders()
    shared = [k8s.V1VolumeMount(name=VOLUME, mount_path=f"/{f}", sub_path=f) for f in folders]
    used = {m.mount_path.rstrip("/") for m in main.volume_mounts or []}
    clash = sorted(used & {m.mount_path for m in shared})
    if clash:
        raise ValueError(
            f"container {main_container!r} already mounts {', '.join(clash)}: the launcher is for pipeline "
            "roots no volume provides ([kfx] artifact_volume and the launcher exclude each other)"
        )
    main.volume_mounts = [*(main.volume_mounts or []), *copy.deepcopy(shared)]

    def launcher(name: str, command: list[str], **extra: Any) -> Any:
        return k8s.V1Container(
            name=name,
            image=spec.image,
            image_pull_policy=main.image_pull_policy,
            command=command[:3],
            args=command[3:],
            env=[k8s.V1EnvVar(name="PYTHONUNBUFFERED", value="1")],
            env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=spec.credentials_secret))]
            if spec.credentials_secret else None,
            resources=k8s.V1ResourceRequirements(requests=dict(RESOURCE_REQUESTS)),
            security_context=_security_context(main.security_context),
            termination_message_policy="FallbackToLogsOnError",
            volume_mounts=[
                *copy.deepcopy(shared),
                k8s.V1VolumeMount(name=VOLUME, mount_path=LAUNCHER_DIR, sub_path=LAUNCHER_SUBPATH),
            ],
            **extra,
        )

    # After any init containers (and sidecars: a proxy the network needs) the pod has.
    # The uploader first, so the download can wait for it to be ready; sidecars stop in
    # reverse order, so it stops first too, while the others still run.
    pod.spec.init_containers = [
        *(pod.spec.init_containers or []),
        launcher(UPLOAD_CONTAINER, spec.upload_command(), restart_policy="Always"),
        launcher(DOWNLOAD_CONTAINER, spec.download_command()),
    ]
    pod.spec.volumes = [*(pod.spec.volumes or []), k8s.V1Volume(name=VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource())]
    current = pod.spec.termination_grace_period_seconds
    pod.spec.termination_grace_period_seconds = max(30 if current is None else current, spec.grace_seconds)
    return pod


def _is_stand_in(value: str) -> bool:
    """``kfx render``'s ``<...>`` for a value known only at run time (as in pod/builder.py)."""
    return value.startswith("<")


def _security_context(main: Any) -> Any:
    """The main container's user (so the uploader can read what the task wrote), its
    seccomp profile and dropped capabilities (so a namespace enforcing the "restricted"
    Pod Security Standard admits the launchers as it admits the task), never more
    privilege than that."""
    from kubernetes.client import models as k8s

    capabilities = getattr(main, "capabilities", None)
    drop = list(capabilities.drop) if capabilities is not None and capabilities.drop else None
    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        run_as_user=getattr(main, "run_as_user", None),
        run_as_group=getattr(main, "run_as_group", None),
        run_as_non_root=getattr(main, "run_as_non_root", None),
        seccomp_profile=copy.deepcopy(getattr(main, "seccomp_profile", None)),
        capabilities=k8s.V1Capabilities(drop=drop) if drop else None,
    )


__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "DONE_FILE",
    "DOWNLOAD_CONTAINER",
    "LAUNCHER_DIR",
    "OUTPUT_PARAMETERS_DIR",
    "READY_FILE",
    "UPLOAD_CONTAINER",
    "VOLUME",
    "LauncherSpec",
    "add_launcher",
]
