"""Volumes at a container's mount paths: bind mounts in a private mount namespace of the
container's own, and the machine-wide registry of the mount points pods create."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

MOUNT_MESSAGE = (
    "its volumes are mapped to local folders with a private mount namespace, "
    "which needs root and util-linux's 'unshare'"
)


@dataclass(frozen=True)
class Mount:
    source: str  # on this machine
    target: str  # in the container
    read_only: bool


def can_mount() -> bool:
    """Whether volumes can be bind-mounted in private mount namespaces here."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def is_within(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def mount_argv(mounts: Sequence[Mount], workdir: str, argv: Sequence[str], *, keep_oldpwd: bool) -> list[str]:
    """argv running ``argv`` in ``workdir`` with ``mounts`` in a private mount namespace.

    The mount points on this machine exist already (:func:`claim_mount_points`); a
    mount point inside another volume is made in the namespace, after that volume is
    mounted, so it lands in the volume. Only absolute tool paths are used, so the pod's
    own PATH cannot change what sets it up, and no shell variable is assigned, so the
    pod's env reaches the command unchanged.
    """
    tools = {tool: shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") or tool
             for tool in ("unshare", "mount", "mkdir", "dirname", "sh")}
    q = {tool: shlex.quote(path) for tool, path in tools.items()}
    script = (
        "set -e\n"
        'while [ "$1" != -- ]; do\n'
        f'  if [ -d "$1" ]; then {q["mkdir"]} -p "$2"; '
        f'elif [ ! -e "$2" ]; then {q["mkdir"]} -p "$({q["dirname"]} "$2")"; : > "$2"; fi\n'
        f'  {q["mount"]} --bind "$1" "$2"\n'
        f'  if [ "$3" = ro ]; then {q["mount"]} -o remount,bind,ro "$2"; fi\n'
        "  shift 3\n"
        "done\n"
        "shift\n"
        f'{q["mkdir"]} -p "$1"; cd "$1"; shift\n'
        + ("" if keep_oldpwd else "unset OLDPWD\n")  # cd's own; PWD is what a shell in the container sets too
        + 'exec "$@"\n'
    )
    prefix = [
        tools["unshare"], "--mount", "--propagation", "private", "--", tools["sh"], "-c", script, "kfx-mounts",
    ]
    for mount in mounts:
        prefix += [mount.source, mount.target, "ro" if mount.read_only else "rw"]
    return [*prefix, "--", workdir, *argv]


# Mount points this machine did not have are created for the pods that need them, and
# removed when no pod uses them any more. Several pods may use one at once (two tasks
# both mounting /s3/bucket), in this process or another (Airflow workers, the API double
# of the tests), so they are reference-counted in one registry per machine, under an
# exclusive file lock. Removing a mount point while another pod's namespace has a mount
# on it would silently detach that pod's volume (Linux lazily unmounts the mounts of
# other namespaces whose mount point is removed), and a pod between its mkdir and its
# mount would fail: a pod registers a mount point before creating or using it, and it is
# removed only by the last holder (holders whose process died do not count).
_MOUNT_POINTS = "/tmp/kfx-mount-points.json"  # fixed: every process must find the same one


@contextlib.contextmanager
def _mount_point_registry() -> Iterator[dict[str, Any]]:
    import fcntl  # POSIX only, like mounting: imported when a pod mounts

    with open(_MOUNT_POINTS + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            with open(_MOUNT_POINTS, encoding="utf-8") as handle:
                registry = json.load(handle)
        except (OSError, ValueError):
            registry = {}
        yield registry
        with open(_MOUNT_POINTS + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(registry, handle)
        os.replace(_MOUNT_POINTS + ".tmp", _MOUNT_POINTS)


def claim_mount_points(mounts: Sequence[Mount], holder: str) -> None:
    """Register ``holder`` on the mount points of ``mounts`` on this machine (not those
    inside another of the mounts: they are made inside that volume), creating missing ones."""
    outer = [m for m in mounts if not any(o is not m and is_within(m.target, o.target) for o in mounts)]
    with _mount_point_registry() as registry:
        for mount in outer:
            entry = registry.setdefault(mount.target, {"created": "", "holders": []})
            if not os.path.lexists(mount.target):
                top = mount.target
                while not os.path.lexists(os.path.dirname(top)):
                    top = os.path.dirname(top)
                # inside a folder made for another mount point: that folder goes with the last of them
                made = [e["created"] for e in registry.values()
                        if e["created"] and is_within(top, e["created"])]
                entry["created"] = entry["created"] or min(made + [top], key=len)
                if os.path.isdir(mount.source):
                    os.makedirs(mount.target)
                else:  # a file mounted alone (a subPath): its mount point is a file
                    os.makedirs(os.path.dirname(mount.target), exist_ok=True)
                    open(mount.target, "a").close()
            if holder not in entry["holders"]:
                entry["holders"].append(holder)


def release_mount_points(holder: str) -> None:
    """Unregister ``holder``; remove the mount points nobody holds that a pod created."""
    if not os.path.exists(_MOUNT_POINTS):
        return
    with _mount_point_registry() as registry:
        for target, entry in list(registry.items()):
            entry["holders"] = [h for h in entry["holders"] if h != holder and _holder_alive(h)]
            if entry["holders"]:
                continue
            del registry[target]
            path, top = target, entry.get("created") or ""
            while top and is_within(path, top):
                if path != target and path in registry:
                    break  # another pod's mount point: never removed under it
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.rmdir(path)  # only ever an empty folder
                    elif os.path.getsize(path) == 0:
                        os.remove(path)
                    else:
                        break
                except OSError:
                    break
                path = os.path.dirname(path)


def _holder_alive(holder: str) -> bool:
    """Whether the process of a holder ("<pid>:...") still runs; when unsure, it does."""
    try:
        os.kill(int(holder.split(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
