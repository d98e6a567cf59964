"""The launcher: moves a task's artifacts between object storage and its pod.

On a cluster without a volume that every pod shares, a task's pod cannot see the
pipeline root. As KFP's own launcher does (``backend/src/v2/component/launcher_v2.go``),
artifacts are copied in and out of the pod around the user's command — but in extra
containers of the pod, so the user's image needs nothing (no shell, no Python, no cloud
SDK). ``airflow_kfx.pod.transport.add_launcher`` adds them:

* ``python -m airflow_kfx.launcher upload --wait-for-sigterm`` (a native sidecar, started
  first) holds SIGTERM, waits until Kubernetes stops it after the main container has
  ended, uploads the task root's local mirror and the executor output's artifacts, and
  writes :data:`MARKER` last;
* ``python -m airflow_kfx.launcher download`` (an init container, after it) puts every
  input artifact at its KFP local path (``s3://b/k`` → ``/s3/b/k``, ``gs://`` → ``/gcs/``,
  ``minio://`` → ``/minio/``), makes the task's output folders and ends once the uploader
  is ready (see :mod:`airflow_kfx.launcher.cli`).

The three containers share one ``emptyDir`` mounted at ``/s3``, ``/gcs``, ``/minio``.
Credentials come from the launcher containers' environment only (``AWS_*``; see
:mod:`airflow_kfx.launcher.remote`). This package imports neither Airflow nor
kubernetes: the worker imports the constants below, the pods run the CLI.

``KFX_LAUNCHER_LOCAL_ROOT`` (default ``/``) is the folder the KFP local paths are under;
only tests set it, to use a temporary folder instead of ``/s3`` & co.
"""

from __future__ import annotations

# Relative to a task root: written by the uploader after everything else, on success only.
MARKER = "_kfx/uploaded.json"
# Relative to a task root: why the last upload failed (best effort), for the worker's error.
ERROR_MARKER = "_kfx/upload-error.json"
# Relative to a task root's local path: KFP's ExecutorOutput file (see runtime/invocation.py).
EXECUTOR_OUTPUT = "executor_output.json"
LOCAL_ROOT_ENV = "KFX_LAUNCHER_LOCAL_ROOT"

# Exit codes of ``python -m airflow_kfx.launcher``.
EXIT_OK = 0
EXIT_FAILED = 1  # a transfer failed (unreachable store, credentials, ...)
EXIT_USAGE = 2  # a bad command line (argparse's own code)
EXIT_MISSING = 3  # an input artifact does not exist
EXIT_REFUSED = 4  # an output URI outside the run root, a path leaving the mirror, a '..' URI

__all__ = [
    "ERROR_MARKER",
    "EXECUTOR_OUTPUT",
    "EXIT_FAILED",
    "EXIT_MISSING",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "LOCAL_ROOT_ENV",
    "MARKER",
]
