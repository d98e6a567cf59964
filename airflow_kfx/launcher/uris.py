"""Object-storage URIs as the launcher checks them (pure, stdlib only)."""

from __future__ import annotations

import os

from airflow_kfx.task_io import local_path_for_uri

# URI scheme → the folder under the local root KFP maps it to (launcher_v2.go LocalPathForURI).
LOCAL_FOLDERS = {"s3": "s3", "minio": "minio", "gs": "gcs"}


class LauncherError(Exception):
    """A failure the launcher reports in one line; ``code`` is its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def scheme_of(uri: str) -> str:
    """``s3``, ``minio`` or ``gs``; '' for anything else."""
    scheme, sep, _ = uri.partition("://")
    return scheme if sep and scheme in LOCAL_FOLDERS else ""


def check_uri(uri: str, what: str = "URI") -> str:
    """``uri`` if it is an object-storage URI with a bucket and no ``.``/``..`` segment."""
    from airflow_kfx.launcher import EXIT_REFUSED

    scheme = scheme_of(uri)
    if not scheme:
        raise LauncherError(
            f"{what} {uri!r} is not an object-storage URI (s3://, gs:// or minio://)", EXIT_REFUSED
        )
    bucket, *segments = uri[len(scheme) + 3:].split("/")
    if not bucket or bucket in (".", ".."):
        raise LauncherError(f"{what} {uri!r} has no bucket", EXIT_REFUSED)
    if any(s in (".", "..") for s in segments):
        raise LauncherError(f"{what} {uri!r} has a '.' or '..' path segment; refused", EXIT_REFUSED)
    return uri


def fs_path(uri: str) -> str:
    """The filesystem path fsspec uses: ``bucket/key`` (no trailing slash)."""
    return uri.split("://", 1)[1].rstrip("/")


def _parts(uri: str) -> tuple[str, list[str]]:
    scheme, rest = uri.split("://", 1)
    return scheme, [p for p in rest.split("/") if p]


def is_within(uri: str, root: str) -> bool:
    """``uri`` is ``root`` or below it (whole segments: ``s3://b/r1`` is not under ``s3://b/r``)."""
    scheme, parts = _parts(uri)
    root_scheme, root_parts = _parts(root)
    return scheme == root_scheme and parts[: len(root_parts)] == root_parts


def relative_key(uri: str, root: str) -> str:
    """The part of ``uri`` below ``root`` ('' for the root itself)."""
    return "/".join(_parts(uri)[1][len(_parts(root)[1]):])


def local_root() -> str:
    """The folder KFP's local paths are under: ``/`` in a pod, a temporary folder in tests."""
    from airflow_kfx.launcher import LOCAL_ROOT_ENV

    return os.path.abspath(os.environ.get(LOCAL_ROOT_ENV) or "/")


def local_path(uri: str, root: str | None = None) -> str:
    """Where the artifact at ``uri`` is in this container (``s3://b/k`` → ``<root>/s3/b/k``)."""
    return os.path.join(root if root is not None else local_root(), local_path_for_uri(uri).lstrip("/"))


def mirror_roots(root: str | None = None) -> list[str]:
    """The local folders the launcher may read from or write to (``<root>/s3`` & co.)."""
    base = root if root is not None else local_root()
    return [os.path.join(base, folder) for folder in sorted(set(LOCAL_FOLDERS.values()))]


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (both absolute and normalised)."""
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)
