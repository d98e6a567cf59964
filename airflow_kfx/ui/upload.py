"""Putting an uploaded pipeline into the pipelines folder (``[kfx] upload_folder``).

The file is validated exactly as ``kfx validate`` does before anything is written to the
folder; it then lands as ``<dag id><suffix>`` (a pipeline's versions replace each other:
same pipeline name, same file) through a temporary file and a rename, so the DAG
processor never reads half a file. No Airflow imports: the app checks permissions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from airflow_kfx.spec.loader import ARCHIVE_SUFFIXES, PIPELINE_SUFFIXES

SUFFIXES = (*PIPELINE_SUFFIXES, *ARCHIVE_SUFFIXES)
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# A file name as a browser sends it: no folders, no leading dot, nothing a shell or a
# path would read specially.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,200}$")


class UploadError(Exception):
    """An upload refused; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Stored:
    dag_id: str
    path: Path
    replaced: tuple[Path, ...]  # earlier versions of this pipeline's file


def suffix_of(filename: str) -> str:
    """The pipeline suffix of an uploaded file's name; refuses names with path tricks."""
    if not _NAME.match(filename) or ".." in filename:
        raise UploadError(400, f"refused the file name {filename!r}: use a plain file name such as "
                               "my_pipeline.yaml (letters, digits, '.', '_', '-', no folders, no '..')")
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if filename.lower().endswith(suffix):
            return suffix
    raise UploadError(400, f"{filename}: not a pipeline file; upload one of {', '.join(SUFFIXES)}")


def writable_folder(folder: str) -> Path:
    """The configured upload folder, if uploads can go there now."""
    if not folder:
        raise UploadError(503, "uploads are off: set [kfx] upload_folder to a pipelines folder that a "
                               "load_pipelines() drop-in in the DAG folder reads (see the README, 'Upload')")
    path = Path(folder)
    if not path.is_dir():
        raise UploadError(503, f"the upload folder {folder} does not exist; create it or fix [kfx] upload_folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UploadError(409, f"the upload folder {folder} is read-only just now; nothing was written")
    return path


def validate(filename: str, data: bytes) -> tuple[str | None, str | None]:
    """``kfx validate``'s verdict on the upload: (its error, as that command prints it,
    with the uploaded name in place of the scratch path) or (None, the DAG id)."""
    from airflow_kfx.cli import check_file

    suffix = suffix_of(filename)
    with tempfile.TemporaryDirectory(prefix="kfx-upload-") as scratch:
        path = Path(scratch) / f"upload{suffix}"
        path.write_bytes(data)
        error, dag_id = check_file(path)
    if error:
        return error.replace(str(path), filename), None
    if dag_id is None:  # a component, not a pipeline: nothing to run as a DAG
        return f"{filename}: a component, not a pipeline; compile a pipeline that uses it and upload that", None
    return None, dag_id


def store(folder: Path, dag_id: str, filename: str, data: bytes) -> Stored:
    """Write ``data`` as ``folder/<dag id><suffix>`` atomically; earlier files of the same
    DAG id (another suffix) are removed once the new one is in place."""
    suffix = suffix_of(filename)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", dag_id).lstrip(".") or "pipeline"
    target = folder / f"{stem}{suffix}"
    earlier = tuple(p for p in (folder / f"{stem}{s}" for s in SUFFIXES) if p != target and p.is_file())
    temporary = ""
    try:
        handle, temporary = tempfile.mkstemp(prefix=".kfx-upload-", suffix=suffix, dir=folder)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        replaced = target.is_file()
        os.replace(temporary, target)
    except OSError as err:
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        why = "the folder is read-only just now" if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else (
            err.strerror or str(err))
        raise UploadError(409, f"could not write {target}: {why}; nothing was changed") from err
    for path in earlier:
        with contextlib.suppress(OSError):
            path.unlink()
    return Stored(dag_id, target, (target,) * replaced + earlier)
