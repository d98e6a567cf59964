"""The worker's one way to the pipeline root: local files, or object storage through Airflow.

An object-storage URI is an Airflow ``ObjectStoragePath`` with a standard connection:
``[kfx] pipeline_root_conn_id`` when set, else ``aws_default`` for ``s3://`` and
``minio://`` (MinIO is the S3 API at the connection's ``endpoint_url``:
``ObjectStoragePath`` does not know ``minio://``, so ``minio://b/k`` is read as
``s3://b/k``), ``google_cloud_default`` for ``gs://``. Anything else (a path,
``file://``) is a plain file. Nothing here logs a credential.

:func:`launcher_env` turns that connection into the environment the launcher containers
read (``airflow_kfx.launcher.remote``), for the ``local`` runtime; on a cluster the
``[kfx] artifact_credentials_secret`` secret does it. :func:`upload_complete` tells the
worker whether a pod's uploader finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.launcher import ERROR_MARKER, MARKER

_DEFAULT_CONN = {"s3": "aws_default", "minio": "aws_default", "gs": "google_cloud_default"}


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _local(uri: str) -> str:
    return uri.removeprefix("file://")


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0]


def conn_id_for(uri: str) -> str | None:
    """The Airflow connection for an object-storage URI (None: the library's defaults)."""
    from airflow_kfx.config import config_value

    return config_value("pipeline_root_conn_id") or _DEFAULT_CONN.get(_scheme(uri))


def object_path(uri: str) -> Any:
    """The ``ObjectStoragePath`` of a remote URI, with its connection."""
    from airflow.sdk import ObjectStoragePath

    scheme = _scheme(uri)
    target = "s3://" + uri.split("://", 1)[1] if scheme == "minio" else uri
    return ObjectStoragePath(target, conn_id=conn_id_for(uri))


def _fresh(uri: str) -> Any:
    """The path, with the filesystem's listing cache of it dropped: another process (a
    pod's uploader) may have written it since this worker last looked."""
    path = object_path(uri)
    try:
        path.fs.invalidate_cache(path.path)
    except Exception:  # a filesystem without a listing cache
        pass
    return path


def exists(uri: str) -> bool:
    """An object, a prefix with objects under it, or a local file or folder."""
    if is_remote(uri):
        return bool(_fresh(uri).exists())
    return os.path.exists(_local(uri))


def read_bytes(uri: str) -> bytes:
    if is_remote(uri):
        return _fresh(uri).read_bytes()
    with open(_local(uri), "rb") as handle:
        return handle.read()


def read_text(uri: str) -> str:
    if is_remote(uri):
        return _fresh(uri).read_text()
    with open(_local(uri), encoding="utf-8") as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file; a local one through a temporary file and a rename, so a reader
    never sees half of it (object stores are atomic per object)."""
    if is_remote(uri):
        object_path(uri).write_bytes(data)  # no mkdir: object stores have no folders
        return
    local = _local(uri)
    folder = os.path.dirname(local) or "."
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".kfx-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, local)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def download_file(uri: str, local_path: str) -> bool:
    """Copy one (small) file to ``local_path``; False when there is none at ``uri``."""
    try:
        data = read_bytes(uri)
    except (FileNotFoundError, IsADirectoryError):
        return False
    os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
    with open(local_path, "wb") as handle:
        handle.write(data)
    return True


def copy_to_local(uri: str, target: str) -> bool:
    """Copy the file, folder, object or prefix at ``uri`` to the local path ``target``
    (a folder's tree below it); False when there is nothing at ``uri``. Local links are
    copied as links, never followed; object keys that would climb out of ``target`` are
    refused. The caller confines ``uri`` first (:mod:`airflow_kfx.confine`)."""
    if not is_remote(uri):
        source = _local(uri)
        if not os.path.lexists(source):
            return False
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if os.path.isdir(source):
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return True
    path = _fresh(uri)
    if not path.exists():
        return False
    fs, key = path.fs, path.path.rstrip("/")
    if not path.is_dir():
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        fs.get(key, target)
        return True
    for name in sorted(fs.find(key)):
        segments = name[len(key):].lstrip("/").split("/")
        if any(part in ("", ".", "..") for part in segments):
            raise TaskRuntimeError(f"the object {name!r} of {uri} would land outside {target}; refused")
        local = os.path.join(target, *segments)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        fs.get(name, local)
    return True


def clear_folder(uri: str, *, keep: tuple[str, ...] = ()) -> None:
    """Remove everything below the folder ``uri`` except the entries named in ``keep``
    (first-level names). Local links are removed, never followed."""
    if is_remote(uri):
        folder = _fresh(uri)
        if not folder.exists():
            return
        for entry in folder.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir():
                entry.rmdir(recursive=True)
            else:
                entry.unlink()
        return
    import shutil

    local = _local(uri)
    if not os.path.isdir(local) or os.path.islink(local):
        return
    for name in os.listdir(local):
        if name in keep:
            continue
        path = os.path.join(local, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


# -- the launcher -------------------------------------------------------------------------


def upload_marker(task_root: str) -> dict[str, Any] | None:
    """What the pod's uploader wrote last (files, bytes, attempt), None if it did not finish."""
    try:
        value = json.loads(read_text(f"{task_root.rstrip('/')}/{MARKER}"))
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def upload_complete(task_root: str, attempt: str | None = None) -> bool:
    """The uploader of this task's pod finished (of this ``attempt``, when given)."""
    marker = upload_marker(task_root)
    return marker is not None and (attempt is None or marker.get("attempt") == attempt)


def upload_error(task_root: str, attempt: str | None = None) -> str | None:
    """Why the uploader failed (of this ``attempt``, when given), when it could say so."""
    try:
        value = json.loads(read_text(f"{task_root.rstrip('/')}/{ERROR_MARKER}"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(value, dict) or not value.get("error"):
        return None
    if attempt is not None and value.get("attempt") != attempt:
        return None
    return str(value["error"])


def wait_for_upload(
    task_root: str, *, timeout: float, attempt: str | None = None, interval: float = 2.0
) -> dict[str, Any] | None:
    """The uploader's marker, waiting up to ``timeout`` seconds for it.

    The pod may be reported finished while its uploader still runs: in deferrable mode
    (the provider's trigger fires when the *main* container has ended) or with istio.
    None when the uploader failed (:func:`upload_error` says why) or the time ran out.
    """
    import time

    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        marker = upload_marker(task_root)
        if marker is not None and (attempt is None or marker.get("attempt") == attempt):
            return marker
        if upload_error(task_root, attempt) is not None or time.monotonic() >= deadline:
            return None
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def launcher_env(pipeline_root: str) -> dict[str, str]:
    """The connection of ``pipeline_root`` as the launcher's environment (``AWS_*``; for
    ``gs://`` the key file). Empty for a local root. Values are secrets: give them only
    to the launcher containers, never log them."""
    if not is_remote(pipeline_root):
        return {}
    scheme = _scheme(pipeline_root)
    if scheme in ("s3", "minio"):
        return _aws_env(conn_id_for(pipeline_root))
    if scheme == "gs":
        return _google_env(conn_id_for(pipeline_root))
    raise ValueError(f"no launcher for the pipeline root {pipeline_root!r}: use s3://, gs:// or minio://")


def _aws_env(conn_id: str | None) -> dict[str, str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    env: dict[str, str] = {}
    session = hook.get_session()
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        env["AWS_ACCESS_KEY_ID"] = frozen.access_key
        env["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
        if frozen.token:
            env["AWS_SESSION_TOKEN"] = frozen.token
    region = hook.conn_config.region_name or session.region_name
    if region:
        env["AWS_DEFAULT_REGION"] = region
    endpoint = hook.conn_config.get_service_endpoint_url(service_name="s3")
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def _google_env(conn_id: str | None) -> dict[str, str]:
    """gcsfs reads Google's default credentials: the connection's key file, if it names one."""
    if not conn_id:
        return {}
    from airflow.sdk import BaseHook

    try:
        extra = BaseHook.get_connection(conn_id).extra_dejson
    except Exception:  # no such connection: the launcher uses the default credentials
        return {}
    env: dict[str, str] = {}
    key_path = extra.get("key_path") or extra.get("extra__google_cloud_platform__key_path")
    if key_path:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(key_path)
    project = extra.get("project") or extra.get("extra__google_cloud_platform__project")
    if project:
        env["GOOGLE_CLOUD_PROJECT"] = str(project)
    return env
