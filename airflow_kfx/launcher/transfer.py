"""Downloading a task's inputs into the pod and uploading its outputs (KFP's launcher, split in two).

``download``: each input artifact URI to its KFP local path — one object becomes a file,
a prefix ("directory") a folder tree — and the task's output folders made, writable by
any user (the user's container may run as another user than the launcher).

``upload``: the local mirror of the task root to the task root, then every artifact of
the executor output (``<task root>/executor_output.json``) whose URI is elsewhere under
the run root, then :data:`~airflow_kfx.launcher.MARKER` — written last and only when
everything got there, so the worker can tell a finished upload from an interrupted or
failed one. Only regular files whose real path is inside the shared artifact folders
(``/s3``, ``/gcs``, ``/minio``) are read: a symlink the user's code made to anything else
(``/proc/self/environ`` of the uploader holds its credentials) is refused.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.launcher import (
    ERROR_MARKER,
    EXECUTOR_OUTPUT,
    EXIT_FAILED,
    EXIT_MISSING,
    EXIT_REFUSED,
    MARKER,
)
from airflow_kfx.launcher.remote import download_file, filesystem, upload_file
from airflow_kfx.launcher.uris import (
    LauncherError,
    check_uri,
    fs_path,
    inside,
    is_within,
    local_path,
    local_root,
    mirror_roots,
    scheme_of,
)

Say = Callable[[str], None]
# Concurrent transfers: many small files at once; big ones (multipart, s3fs holds a 50 MiB
# part of each in memory) two at a time, so the launcher stays within a few hundred MiB.
_WORKERS = 8
_BIG_WORKERS = 2
_BIG = 16 * 2**20
_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def say(line: str) -> None:
    print(line, flush=True)


def scrub(text: str) -> str:
    """``text`` without the values of credential variables (an error may quote a request)."""
    for name in _SECRET_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def describe(error: BaseException) -> str:
    return scrub(f"{type(error).__name__}: {error}")


@dataclass
class Stats:
    files: int = 0
    bytes: int = 0
    uris: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Transfer:
    uri: str  # the object's URI
    local: str  # the file in this container
    size: int


def make_dirs(path: str, root: str) -> None:
    """``os.makedirs`` with every folder it creates below ``root`` open to all users (0o777,
    whatever the umask), as the user's container may run as anyone."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current) and inside(current, root) and current != root:
        missing.append(current)
        current = os.path.dirname(current)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        os.chmod(folder, 0o777)


def _run(transfers: Sequence[_Transfer], one: Callable[[_Transfer], None]) -> list[str]:
    """Run ``one`` over ``transfers`` concurrently; the error messages of those that failed."""
    if not transfers:
        return []
    failures: list[str] = []

    def guarded(transfer: _Transfer) -> None:
        try:
            one(transfer)
        except LauncherError as error:
            failures.append(str(error))
        except Exception as error:  # a store error: name the object, never the credentials
            failures.append(f"{transfer.uri}: {describe(error)}")

    small = [t for t in transfers if t.size < _BIG]
    big = [t for t in transfers if t.size >= _BIG]
    for group, workers in ((small, _WORKERS), (big, _BIG_WORKERS)):
        if group:
            with ThreadPoolExecutor(max_workers=min(workers, len(group))) as pool:
                list(pool.map(guarded, group))
    return failures


# -- download -----------------------------------------------------------------------------


def download(
    artifacts: Iterable[str],
    mkdirs: Iterable[str] = (),
    *,
    task_root: str | None = None,
    root: str | None = None,
    out: Say = say,
) -> Stats:
    """Put every artifact at its KFP local path; make the local folders of ``mkdirs`` URIs.

    ``task_root``: the task's output folder — made locally, and an earlier try's upload
    markers under it removed, so only this pod's uploader can vouch for its outputs.
    """
    root = local_root() if root is None else os.path.abspath(root)
    if task_root:
        check_uri(task_root, "task root")
        make_dirs(local_path(task_root, root), root)
        fs = filesystem(scheme_of(task_root))
        for name in (MARKER, ERROR_MARKER):
            _remove(fs, f"{fs_path(task_root)}/{name}")
    for uri in mkdirs:
        check_uri(uri, "output folder")
        make_dirs(local_path(uri, root), root)
    by_path: dict[str, _Transfer] = {}  # one transfer per local file, even for overlapping artifacts
    for uri in dict.fromkeys(artifacts):
        check_uri(uri, "input artifact")
        for item in _listing(filesystem(scheme_of(uri)), uri, local_path(uri, root)):
            by_path.setdefault(item.local, item)
    transfers = list(by_path.values())

    def one(transfer: _Transfer) -> None:
        make_dirs(os.path.dirname(transfer.local), root)
        download_file(filesystem(scheme_of(transfer.uri)), fs_path(transfer.uri), transfer.local)
        out(f"downloaded {transfer.uri} -> {transfer.local} ({transfer.size} bytes)")

    started = time.monotonic()
    failures = _run(transfers, one)
    if failures:
        raise LauncherError("download failed: " + "; ".join(failures), EXIT_FAILED)
    stats = Stats(len(transfers), sum(t.size for t in transfers), [t.uri for t in transfers])
    out(f"downloaded {stats.files} file(s), {stats.bytes} bytes in {time.monotonic() - started:.1f} s")
    return stats


def _listing(fs: Any, uri: str, target: str) -> list[_Transfer]:
    """The objects of one input artifact: itself, or everything under its prefix."""
    path = fs_path(uri)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise LauncherError(f"input artifact {uri} does not exist (no object, no prefix)", EXIT_MISSING) from None
    except Exception as error:
        raise LauncherError(f"cannot read input artifact {uri}: {describe(error)}", EXIT_FAILED) from None
    if info.get("type") != "directory":
        return [_Transfer(uri, target, int(info.get("size") or 0))]
    try:
        found = fs.find(path, detail=True)
    except Exception as error:
        raise LauncherError(f"cannot list input artifact {uri}: {describe(error)}", EXIT_FAILED) from None
    transfers = []
    base = uri.rstrip("/")
    for name, item in sorted(found.items()):
        if item.get("type") == "directory" or name.endswith("/"):
            continue  # folder placeholder objects
        segments = name[len(path):].lstrip("/").split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise LauncherError(
                f"input artifact {uri}: the object {name!r} would land outside {target}; refused", EXIT_REFUSED
            )
        transfers.append(_Transfer(f"{base}/{'/'.join(segments)}", os.path.join(target, *segments),
                                   int(item.get("size") or 0)))
    if not transfers:
        raise LauncherError(f"input artifact {uri} does not exist (an empty prefix)", EXIT_MISSING)
    return transfers


# -- upload -------------------------------------------------------------------------------


class _Plan:
    """What to upload (URI → file), and what was refused."""

    def __init__(self, roots: Sequence[str], out: Say) -> None:
        self.roots = [os.path.realpath(r) for r in roots]
        self.out = out
        self.transfers: dict[str, _Transfer] = {}
        self.errors: list[LauncherError] = []

    def refuse(self, message: str) -> None:
        self.errors.append(LauncherError(message, EXIT_REFUSED))

    def add(self, path: str, uri: str, *, skip: frozenset[str] = frozenset(),
            parents: frozenset[str] = frozenset()) -> None:
        """``path`` (a file or a folder tree) to ``uri``. ``skip``: URIs not to upload."""
        real = os.path.realpath(path)
        if not any(inside(real, r) for r in self.roots):
            self.refuse(f"{path} leads to {real}, outside the shared artifact folders "
                        f"({', '.join(self.roots)}); refused")
            return
        try:
            info = os.stat(real)
        except OSError as error:
            self.errors.append(LauncherError(f"cannot read {path}: {error}", EXIT_FAILED))
            return
        if stat.S_ISDIR(info.st_mode):
            if real in parents:
                self.out(f"skipped {path}: a symlink to a folder that contains it")
                return
            for name in sorted(os.listdir(real)):
                self.add(os.path.join(real, name), f"{uri.rstrip('/')}/{name}", skip=skip,
                         parents=parents | {real})
        elif stat.S_ISREG(info.st_mode):
            if uri not in skip:
                self.transfers[uri] = _Transfer(uri, real, info.st_size)
        else:
            self.out(f"skipped {path}: not a regular file")


def executor_output_artifacts(path: str, task_root: str, out: Say = say) -> list[tuple[str, str, str]]:
    """``(name, uri, custom path)`` of every artifact the executor output names.

    A missing file has none; an unreadable one is reported by the worker (which reads it
    with KFP's rules), so here it only means no artifacts outside the task root. An
    artifact given only a custom path goes to its declared URI, ``<task root>/<name>``
    (``runtime/invocation.py``).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        out(f"cannot read the executor output {path} ({error}); no artifacts outside the task root uploaded")
        return []
    listings = data.get("artifacts") if isinstance(data, dict) else None
    found = []
    for name, listing in (listings or {}).items() if isinstance(listings, dict) else ():
        items = listing.get("artifacts") if isinstance(listing, dict) else None
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            uri = item.get("uri") or ""
            custom = item.get("customPath") or item.get("custom_path") or ""
            if not isinstance(uri, str) or not isinstance(custom, str) or not (uri or custom):
                continue
            found.append((str(name), uri or f"{task_root.rstrip('/')}/{name}", custom))
    return found


def upload(
    task_root: str,
    run_root: str,
    *,
    attempt: str = "",
    root: str | None = None,
    out: Say = say,
) -> Stats:
    """Upload the task's outputs; write :data:`MARKER` last. Raises LauncherError (after
    uploading what it could and recording the error under the task root)."""
    root = local_root() if root is None else os.path.abspath(root)
    check_uri(task_root, "task root")
    check_uri(run_root, "run root")
    if not is_within(task_root, run_root):
        raise LauncherError(f"the task root {task_root} is not under the run root {run_root}", EXIT_REFUSED)
    fs = filesystem(scheme_of(task_root))
    task_path = fs_path(task_root)
    _remove(fs, f"{task_path}/{MARKER}")  # a marker of an earlier try must not vouch for this one
    started = time.monotonic()
    plan = _Plan(mirror_roots(root), out)
    mirror = local_path(task_root, root)
    own = frozenset(f"{task_root.rstrip('/')}/{name}" for name in (MARKER, ERROR_MARKER))
    if os.path.lexists(mirror):
        plan.add(mirror, task_root.rstrip("/"), skip=own)
    else:
        out(f"nothing at {mirror}: the task wrote no files under its task root")
    executor_output = os.path.join(mirror, EXECUTOR_OUTPUT)
    if os.path.lexists(executor_output) and not any(
        inside(os.path.realpath(executor_output), r) for r in plan.roots
    ):
        executor_output = ""  # refused above, as part of the mirror
    for name, uri, custom in executor_output_artifacts(executor_output, task_root, out) if executor_output else ():
        what = f"output artifact {name!r}"
        try:
            check_uri(uri, what)
        except LauncherError as error:
            plan.errors.append(error)
            continue
        if not is_within(uri, run_root):
            plan.refuse(f"{what}: {uri} is outside the run root {run_root}: "
                        "a task's output URIs must stay under its run's root")
            continue
        if custom:
            source = os.path.join(root, custom.lstrip("/"))
        elif is_within(uri, task_root):
            continue  # part of the mirror
        else:
            source = local_path(uri, root)
        if not os.path.lexists(source):
            plan.errors.append(LauncherError(f"{what}: nothing at {source} to upload to {uri}", EXIT_FAILED))
            continue
        plan.add(source, uri.rstrip("/"), skip=own)

    transfers = sorted(plan.transfers.values(), key=lambda t: t.uri)

    def one(transfer: _Transfer) -> None:
        upload_file(filesystem(scheme_of(transfer.uri)), transfer.local, fs_path(transfer.uri))
        out(f"uploaded {transfer.local} -> {transfer.uri} ({transfer.size} bytes)")

    failures = _run(transfers, one)
    errors = [*plan.errors, *(LauncherError(f, EXIT_FAILED) for f in failures)]
    stats = Stats(len(transfers) - len(failures), sum(t.size for t in transfers), [t.uri for t in transfers])
    if errors:
        message = "upload failed: " + "; ".join(str(e) for e in errors)
        _write_json(fs, f"{task_path}/{ERROR_MARKER}", {"attempt": attempt, "error": message}, best_effort=True)
        raise LauncherError(message, errors[0].code)
    _remove(fs, f"{task_path}/{ERROR_MARKER}")
    _write_json(fs, f"{task_path}/{MARKER}", {
        "version": 1,
        "attempt": attempt,
        "task_root": task_root,
        "files": stats.files,
        "bytes": stats.bytes,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    out(f"uploaded {stats.files} file(s), {stats.bytes} bytes in {time.monotonic() - started:.1f} s; "
        f"marker {task_root.rstrip('/')}/{MARKER} written")
    return stats


def _remove(fs: Any, path: str) -> None:
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as error:
        raise LauncherError(f"cannot reach {path}: {describe(error)}", EXIT_FAILED) from None


def _write_json(fs: Any, path: str, value: Any, *, best_effort: bool = False) -> None:
    try:
        fs.pipe_file(path, json.dumps(value, sort_keys=True).encode())
    except Exception as error:
        if not best_effort:
            raise LauncherError(f"cannot write {path}: {describe(error)}", EXIT_FAILED) from None
