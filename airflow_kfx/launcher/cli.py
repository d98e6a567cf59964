"""``python -m airflow_kfx.launcher download|upload``: the command line of the launcher containers.

The two containers of a pod meet in a folder of their own (``--uploader-ready`` /
``--ready-file``, ``--done-file`` / ``--download-done``):

* the upload sidecar starts first; once it holds SIGTERM it writes its ready file;
* the download init container waits for that file before it ends, so the task's own
  container never starts before the uploader can be told to stop — however fast the
  task is, its SIGTERM is never lost (a SIGTERM to a container's PID 1 without a handler
  is dropped by the kernel, one to any other process kills it);
* the download writes its done file last; an uploader stopped without it (the download
  failed, the task never ran) uploads nothing and writes no marker.

Exit codes: 0 done; 1 a transfer failed (store unreachable, credentials, the other
container never showed up, ...); 2 a bad command line; 3 an input artifact does not
exist; 4 refused (an output URI outside the run root, a path leaving the shared artifact
folders, a '..' URI).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence

from airflow_kfx.launcher import EXIT_FAILED, EXIT_OK
from airflow_kfx.launcher.uris import LauncherError

PROG = "python -m airflow_kfx.launcher"
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Move a KFP task's artifacts between object storage and its pod "
                    "(KFP local paths: s3://b/k -> /s3/b/k, gs:// -> /gcs/, minio:// -> /minio/).",
        epilog="Credentials come from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
               "AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL (required for minio://); "
               "gs:// uses gcsfs and Google's default credentials. KFX_LAUNCHER_LOCAL_ROOT (tests "
               "only, default /) is the folder the local paths are under.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="{download,upload}")
    down = commands.add_parser(
        "download", help="put input artifacts at their KFP local paths",
        description="Download each artifact to its KFP local path: one object becomes a file, "
                    "a prefix a folder tree. A missing artifact is an error (exit 3).",
    )
    down.add_argument("--artifact", action="append", default=[], metavar="URI",
                      help="an input artifact's URI (repeatable)")
    down.add_argument("--mkdir", action="append", default=[], metavar="URI",
                      help="make the local folder of this URI, writable by any user (repeatable)")
    down.add_argument("--task-root", default="", metavar="URI",
                      help="the task's output folder: made like --mkdir, and an earlier try's "
                           "upload markers under it removed")
    down.add_argument("--uploader-ready", default="", metavar="PATH",
                      help="before ending, wait until the upload sidecar has written this file")
    down.add_argument("--wait-timeout", type=float, default=120.0, metavar="SECONDS",
                      help="how long to wait for --uploader-ready (default: %(default)s)")
    down.add_argument("--done-file", default="", metavar="PATH",
                      help="a file written once everything is in place")
    up = commands.add_parser(
        "upload", help="upload a task's outputs",
        description="Upload the local mirror of the task root, then the executor output's artifacts "
                    "elsewhere under the run root, then write <task root>/_kfx/uploaded.json last.",
    )
    up.add_argument("--task-root", required=True, metavar="URI", help="the task's output folder")
    up.add_argument("--run-root", required=True, metavar="URI",
                    help="the run's folder: no output may be uploaded outside it")
    up.add_argument("--attempt", default="", metavar="ID",
                    help="an identifier of this try, recorded in the marker")
    up.add_argument("--wait-for-sigterm", action="store_true",
                    help="wait for SIGTERM or SIGINT before uploading (a native sidecar's end)")
    up.add_argument("--ready-file", default="", metavar="PATH",
                    help="with --wait-for-sigterm: a file written once the signals are held")
    up.add_argument("--download-done", default="", metavar="PATH",
                    help="upload only if this file exists (the download container's --done-file)")
    return top


def block_stop_signals() -> None:
    """Hold SIGTERM/SIGINT pending instead of dying of them; :func:`wait_for_stop` takes them."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _touch(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def wait_for_stop(ready_file: str = "") -> int:
    block_stop_signals()
    if ready_file:
        _touch(ready_file, "ready")
    print("waiting for SIGTERM (sent when the task's containers have ended)", flush=True)
    received = signal.sigwait(STOP_SIGNALS)  # they stay blocked: a second one cannot cut the upload short
    print(f"got {signal.Signals(received).name}: uploading the task's outputs", flush=True)
    return received


def wait_for_file(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise LauncherError(
                f"the upload sidecar did not get ready within {timeout:g} s (no {path}); see its log",
                EXIT_FAILED,
            )
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from airflow_kfx.launcher import transfer

    try:
        if args.command == "download":
            transfer.download(args.artifact, args.mkdir, task_root=args.task_root or None)
            if args.uploader_ready:
                wait_for_file(args.uploader_ready, args.wait_timeout)
            if args.done_file:
                _touch(args.done_file, "done")
        else:
            if args.wait_for_sigterm:
                wait_for_stop(args.ready_file)
            if args.download_done and not os.path.exists(args.download_done):
                raise LauncherError(
                    "the download container did not finish, so the task never ran: nothing uploaded",
                    EXIT_FAILED,
                )
            transfer.upload(args.task_root, args.run_root, attempt=args.attempt)
    except LauncherError as error:
        print(f"kfx-launcher {args.command}: error: {error}", file=sys.stderr, flush=True)
        return error.code
    except Exception as error:  # pragma: no cover - a bug or an unexpected store error
        print(f"kfx-launcher {args.command}: error: {transfer.describe(error)}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK
