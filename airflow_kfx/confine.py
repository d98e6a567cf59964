"""Keep what a task hands back inside its place.

A task's outputs (KFP's executor-output file, v1 ``mlpipeline-ui-metadata``) are
written by user code, and the Airflow worker that reads them back holds credentials:
an output artifact claiming the URI ``/etc/shadow`` or another bucket's key would have
the worker read that and upload it to MLflow. So every URI taken from a task is
checked against the folder it must lie in — the run's root for outputs, the pipeline
root for anything the worker reads — before anything is opened. Local paths are
resolved (``..`` and symbolic links) before the check; object-storage URIs must not
contain ``.``/``..`` segments. Pure (stdlib only): the launcher uses it too.
"""

from __future__ import annotations

import os

from airflow_kfx.exceptions import TaskRuntimeError

# URIs that name something no worker ever opens as a file (KFP's modelcar: a model pushed
# as an OCI image); a task may output them, and nothing reads them.
REFERENCE_SCHEMES = ("oci://",)


def is_reference(uri: str) -> bool:
    return isinstance(uri, str) and uri.startswith(REFERENCE_SCHEMES)


class EscapeError(TaskRuntimeError):
    """A URI from a task lies outside the folder it must stay in."""


def _split(uri: str) -> tuple[str, str]:
    """(scheme, path) — scheme '' for a local path (``file://`` is one too)."""
    if uri.startswith("file://"):
        return "", uri[len("file://"):]
    scheme, sep, rest = uri.partition("://")
    return (scheme, rest) if sep else ("", uri)


def is_within(uri: str, root: str) -> bool:
    """``uri`` is ``root`` or below it, by whole path segments.

    Local paths are compared after resolving symbolic links (a link planted inside
    the root that points outside it is outside); object-storage URIs must use the
    root's scheme and have no ``.``/``..`` segment at all.
    """
    scheme, path = _split(uri)
    root_scheme, root_path = _split(root)
    if scheme != root_scheme:
        return False
    if scheme == "":
        if not os.path.isabs(path) or not os.path.isabs(root_path):
            return False
        real, real_root = os.path.realpath(path), os.path.realpath(root_path)
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        return False
    inner = [p for p in parts if p]
    outer = [p for p in root_path.split("/") if p]
    return inner[: len(outer)] == outer


def confined(uri: str, root: str, what: str) -> str:
    """``uri`` when it lies under ``root``; else an :class:`EscapeError` naming ``what``."""
    if not isinstance(uri, str) or not uri or not is_within(uri, root):
        raise EscapeError(
            f"{what} {uri!r} is outside {root}: a task's outputs must stay under its run's folder "
            "of the pipeline root; the worker reads nothing else"
        )
    return uri


def safe_segment(name: str) -> str:
    """A path segment that cannot climb out of its folder: characters outside
    ``[A-Za-z0-9._+=@-]`` become ``_``, and ``""``, ``.``, ``..`` get a leading ``_``."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._+=@-]", "_", name)
    return "_" + cleaned if cleaned in ("", ".", "..") else cleaned


__all__ = ["EscapeError", "confined", "is_reference", "is_within", "safe_segment"]
