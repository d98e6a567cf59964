"""Run a Kubernetes Pod as local processes, the way a kubelet runs its containers.

The pod is the JSON dict the API serialises (camelCase); a ``V1Pod`` becomes one with
``kubernetes.client.ApiClient().sanitize_for_serialization(pod)``. Images are never
pulled: each container's ``command`` + ``args`` runs as a process on this machine,
with only the pod's environment (never the caller's: no Airflow settings or cloud
credentials leak into a container). What a kubelet does, this does too:

* init containers run one after the other and must each exit 0; a native sidecar (an
  init container with ``restartPolicy: Always``) is started and left running;
* the main containers run concurrently; when they have all ended, the sidecars get
  SIGTERM in reverse order, then SIGKILL when the pod's grace period is over;
* the pod's volumes are folders (emptyDir: a fresh one per pod; a claim: the folder
  the cluster gives; secrets and config maps: written from the objects), bind-mounted
  at each container's mount paths in a private mount namespace of its own;
* env from values, ``$(VAR)`` references, the downward API, secrets and config maps.

Containers are not restarted (whatever the restart policy), probes, resource limits,
security contexts, ports and users are not applied, and images' own entrypoints and
environments cannot be known: a container needs a command.

Two users: the ``local`` runtime (``runtime/local.py``) and the Kubernetes API double
of the tests (``tests/kube/``). Only the standard library is imported at module level.

The modules, each importing only those above it:

* ``model``: the interface (ClusterObjects, PodObserver, ContainerExit, PodOutcome, the
  exit reasons) and the vocabulary the others share;
* ``env``: a container's environment, ``$(VAR)`` expansion, the downward API's values;
* ``mounts``: bind mounts in a private mount namespace, the machine's mount-point registry;
* ``volumes``: the volumes' folders and files, where a container's path is on this machine;
* ``needs``: what makes a pod unrunnable here (:func:`pod_needs`);
* ``container``: one container's process, output and termination message;
* ``run``: :class:`PodRun`, the pod's life cycle.
"""

from __future__ import annotations

from airflow_kfx.runtime.podrun.env import default_path, expand, field_value
from airflow_kfx.runtime.podrun.model import (
    CANNOT_RUN,
    COMPLETED,
    CONFIG_ERROR,
    DEFAULT_GRACE_SECONDS,
    ERROR,
    IMAGE_NOT_HERE,
    NEVER_STARTED,
    ClusterObjects,
    ContainerExit,
    PodObserver,
    PodOutcome,
)
from airflow_kfx.runtime.podrun.mounts import can_mount
from airflow_kfx.runtime.podrun.needs import pod_needs
from airflow_kfx.runtime.podrun.run import PodRun

__all__ = [
    "CANNOT_RUN",
    "COMPLETED",
    "CONFIG_ERROR",
    "DEFAULT_GRACE_SECONDS",
    "ERROR",
    "IMAGE_NOT_HERE",
    "NEVER_STARTED",
    "ClusterObjects",
    "ContainerExit",
    "PodObserver",
    "PodOutcome",
    "PodRun",
    "can_mount",
    "default_path",
    "expand",
    "field_value",
    "pod_needs",
]
