"""Lightweight Python components on the ``local`` runtime.

A KFP lightweight component's command is ``sh -c <pip install script> sh -ec
<launcher> <source> --executor_input …``. On a cluster the install script runs in
a fresh container. Locally it must never touch the interpreter Airflow runs in,
so the script is run once per distinct requirement set inside a cached virtual
environment (``<AIRFLOW_HOME>/kfx/venvs/<hash>``), and the task then runs the
launcher with that environment first on ``PATH``. When the running interpreter
already satisfies the requirements, it is used directly (no venv, no pip).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_kfx.exceptions import TaskRuntimeError

_PIP_INSTALL = re.compile(r"python3 -m pip install (?P<args>[^\n&]*)")


@dataclass(frozen=True)
class LightweightCommand:
    """The parts of a lightweight component's command line."""

    install_script: str
    requirement_args: tuple[tuple[str, ...], ...]  # one tuple of pip args per install line
    run_argv: tuple[str, ...]  # what "$0" "$@" expands to after the install


def parse_lightweight(argv: Sequence[str]) -> LightweightCommand | None:
    """Recognise KFP's ``sh -c <install> <program...>`` form; None for anything else."""
    if len(argv) < 4 or argv[0] != "sh" or argv[1] != "-c":
        return None
    script = argv[2]
    if "pip install" not in script or not script.rstrip().endswith('"$0" "$@"'):
        return None
    lines = tuple(_install_args(m.group("args")) for m in _PIP_INSTALL.finditer(script))
    if not lines:
        return None
    return LightweightCommand(script, lines, tuple(argv[3:]))


def _install_args(text: str) -> tuple[str, ...]:
    """The arguments of one ``pip install``: its words up to the shell operator that ends
    the command. KFP v1 writes ``(<install> || <install> --user) && "$0" "$@"``: the
    ``--user`` retry after ``||`` is the same install again, not more arguments."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # as shlex.split
    args: list[str] = []
    for token in lexer:
        if token and set(token) <= set(lexer.punctuation_chars):
            break
        args.append(token)
    return tuple(args)


def environment_for(command: LightweightCommand, log: Callable[[str], None]) -> dict[str, str]:
    """PATH (and VIRTUAL_ENV) entries that make ``python3`` satisfy the requirements."""
    if _satisfied_here(command):
        log("local runtime: the running interpreter already has the component's requirements")
        bin_dir = str(Path(sys.executable).parent)
        return {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    root = _venv_root() / _requirements_key(command)
    ready = root / ".kfx-ready"
    if not ready.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        # Tasks run concurrently (loop iterations, parallel runs, several workers): one
        # builds the environment while the others wait for it, never two at once.
        with _locked(root.parent / f"{root.name}.lock"):
            if not ready.exists():
                _build(root, command, log)
    return {
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(root),
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(root: Path, command: LightweightCommand, log: Callable[[str], None]) -> None:
    """A fresh virtual environment with the requirements; ``.kfx-ready`` written last."""
    python = root / "bin" / "python3"
    log(f"local runtime: creating a virtual environment for the component's requirements in {root}")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    env = {**os.environ, "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(root)}
    for args in command.requirement_args:
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
            env=env, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise TaskRuntimeError(
                f"installing the component's requirements ({' '.join(args)}) failed:\n"
                + (result.stderr or result.stdout)[-2000:]
            )
    (root / ".kfx-ready").write_text("\n".join(" ".join(a) for a in command.requirement_args))


def _venv_root() -> Path:
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(os.environ.get("KFX_VENV_DIR") or os.path.join(home, "kfx", "venvs"))


def _requirements_key(command: LightweightCommand) -> str:
    text = f"{sys.version_info[:2]}\n" + "\n".join(" ".join(a) for a in command.requirement_args)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _satisfied_here(command: LightweightCommand) -> bool:
    """True when every named requirement is installed here at an acceptable version."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    for args in command.requirement_args:
        skip_next = False
        for arg in args:
            if skip_next:
                skip_next = False
                continue
            if arg in ("--index-url", "--extra-index-url", "--trusted-host", "-i", "--find-links", "-f"):
                skip_next = True
                continue
            if arg.startswith("-"):
                continue
            try:
                requirement = Requirement(arg)
            except InvalidRequirement:
                return False
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            try:
                installed = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                return False
            if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
                return False
    return True
