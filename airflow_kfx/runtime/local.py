"""The ``local`` runtime: run a task's pod as processes on the worker.

It receives the very V1Pod the ``kubernetes`` runtime would submit and runs the whole
pod with :mod:`airflow_kfx.runtime.podrun` — init containers, sidecars and main
containers, each command with only the pod's env (the worker's own environment never
reaches it). Volumes map to local folders (a PVC to ``<AIRFLOW_HOME>/kfx/volumes/<claim>``,
an emptyDir or ephemeral volume to a fresh folder), bind-mounted at the pod's mount
paths inside a private mount namespace, so component code that writes ``/data/x``
writes the volume. What only a cluster provides (secrets, config maps, a PVC that no
task created, an image's own entrypoint) makes the task fail with a message naming
every such need — never run silently without it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.base import Runtime, file_outputs_of
from airflow_kfx.runtime.podrun import (
    CANNOT_RUN,
    NEVER_STARTED,
    ContainerExit,
    PodOutcome,
    PodRun,
    can_mount,
    pod_needs,
)

_TAIL = 20  # lines of a failed container's output in the task's error


def local_volume_root() -> str:
    """Where PVCs and empty dirs live for the local runtime."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "kfx", "volumes")


class _LocalCluster:
    """What the worker offers a pod: no secrets, no config maps; a claim is a folder
    under :func:`local_volume_root` (CreatePVC makes it)."""

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        return None

    def config_map(self, name: str) -> Mapping[str, str] | None:
        return None

    def claim_folder(self, name: str) -> str | None:
        folder = claim_folder(name)
        return folder if os.path.isdir(folder) else None


class _TaskLog:
    """Every container's output to the task log (``[name]`` before lines of containers
    other than the main one), keeping each one's last lines for the error."""

    def __init__(self, main: str, log: Callable[[str], None]) -> None:
        self.main = main
        self._log = log
        self.tails: dict[str, deque[str]] = {}

    def container_started(self, name: str, *, init: bool) -> None:
        if name != self.main:
            self._log(f"local runtime: {'init container' if init else 'container'} '{name}' started")

    def log(self, container: str, line: str) -> None:
        self.tails.setdefault(container, deque(maxlen=_TAIL)).append(line)
        self._log(line if container == self.main else f"[{container}] {line}")

    def container_ended(self, exit: ContainerExit, *, init: bool) -> None:
        if exit.name != self.main and exit.started_at is not None:
            self._log(f"local runtime: container '{exit.name}' exited with code {exit.exit_code}")


class LocalRuntime(Runtime):
    """Task pods as processes on the worker; claims as folders under :func:`local_volume_root`."""

    name = "local"

    def run(self, operator: Any, context: Any) -> None:
        pod = operator.build_pod_request_obj(context, dry_run=True)
        operator.pod = pod  # the pod that ran, as the provider records it (its name ties outputs to it)
        operator.start_clean()  # every local pod is a new one: no earlier attempt's leftovers
        main = operator.base_container_name
        env = {name: dict(values) for name, values in operator.local_secret_env().items()}
        file_outputs = file_outputs_of(operator)
        started = time.time()
        # the module's run_pod_locally, looked up now (tests observe runs by wrapping it)
        run_pod_locally(pod, container_name=main, log=operator.log.info, extra_env=env.pop(main, None),
                        container_env=env)
        if file_outputs:
            collect_file_outputs(file_outputs, operator._invocation, pod, main, started, operator.log.info)

    def create_claim(self, manifest: Any, settings: Any, log: Any) -> None:
        path = claim_folder(manifest.metadata.name)
        os.makedirs(path, exist_ok=True)
        log.info("local runtime: volume %s is the folder %s", manifest.metadata.name, path)

    def worker_claim_folder(self, name: str) -> str | None:
        return claim_folder(name)

    def delete_claim(self, name: str, settings: Any, log: Any) -> None:
        path = claim_folder(name)
        shutil.rmtree(path, ignore_errors=True)
        log.info("local runtime: removed volume folder %s", path)


def collect_file_outputs(
    file_outputs: Mapping[str, str],
    invocation: Any,
    pod: Any,
    main: str,
    started: float,
    log: Callable[[str], None] = print,
) -> None:
    """KFP v1 ``fileOutputs``: after the command ended, copy each output from the fixed
    path it wrote it at to the output's place in the task's folder (its parameter file or
    artifact path), as Argo collects ``outputs.parameters[].valueFrom.path``. Here the
    container's files are the worker's, outside the pod's volume mounts; a file older than
    this run was not written by it and is refused, as is a link (never followed)."""
    from airflow_kfx.runtime.storage import is_remote

    if is_remote(invocation.task_root):
        raise TaskRuntimeError(
            f"the component's fileOutputs ({', '.join(sorted(file_outputs))}) need a local pipeline root "
            f"on the local runtime; this task's outputs go to {invocation.task_root}"
        )
    mounts = [m["mountPath"] for c in _as_json(pod)["spec"].get("containers") or [] if c.get("name") == main
              for m in c.get("volumeMounts") or []]
    for name, path in sorted(file_outputs.items()):
        under = next((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), None)
        if under is not None:
            raise TaskRuntimeError(f"output '{name}': its fileOutputs path {path} is under the volume mounted at "
                                   f"{under}; the local runtime reads fixed paths only outside volumes")
        if os.path.islink(path) or not os.path.lexists(path):
            what = "is a link" if os.path.islink(path) else "does not exist"
            raise TaskRuntimeError(f"output '{name}': the command ended but its file {path} (fileOutputs) {what}")
        if os.stat(path).st_mtime < started - 1:
            raise TaskRuntimeError(f"output '{name}': {path} (fileOutputs) was not written by this run "
                                   "(it is older than the task's start)")
        if name in invocation.output_parameter_files:
            target = invocation.output_parameter_files[name]
        else:
            target = invocation.output_artifacts[name][0].path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(path):
            if name in invocation.output_parameter_files:
                raise TaskRuntimeError(f"output '{name}': {path} (fileOutputs) is a folder; a parameter is a file")
            shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copyfile(path, target, follow_symlinks=False)
        log(f"local runtime: output '{name}' read from {path} (fileOutputs)")


_CLAIM_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def claim_folder(name: str) -> str:
    """The folder standing in for claim ``name``. Names can come from run parameters
    (CreatePVC/DeletePVC inputs), so only a valid Kubernetes object name is accepted:
    nothing outside :func:`local_volume_root` is ever created or removed."""
    if not isinstance(name, str) or not _CLAIM_NAME.fullmatch(name) or ".." in name:
        raise TaskRuntimeError(
            f"{name!r} is not a valid PersistentVolumeClaim name (lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters)"
        )
    return os.path.join(local_volume_root(), name)


def run_pod_locally(
    pod: Any,
    *,
    container_name: str = "base",
    log: Callable[[str], None] = print,
    extra_env: Mapping[str, str] | None = None,
    container_env: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Run the pod; raise TaskRuntimeError on failure. ``extra_env`` goes to its main
    container, ``container_env`` to others by name (credentials a cluster would give
    them from secrets)."""
    body = _as_json(pod)
    names = [c.get("name") for c in (body.get("spec") or {}).get("containers") or []]
    if container_name not in names:
        raise TaskRuntimeError(f"the pod has no container named '{container_name}'")
    cluster = _LocalCluster()
    targets = [m["mountPath"] for c in _containers(body) for m in c.get("volumeMounts") or []]
    if targets and not can_mount():
        raise TaskRuntimeError(
            f"this task mounts volumes at {', '.join(targets)}; the local runtime maps them to local folders "
            "with a private mount namespace, which needs root and util-linux's 'unshare'; "
            "run as root or use the kubernetes runtime"
        )
    needs = pod_needs(body, cluster) + _optional_references(body)
    if needs:
        hint = ""
        if any("PersistentVolumeClaim" in need for need in needs):
            hint = (
                f" A PersistentVolumeClaim is a folder under {local_volume_root()} here: a CreatePVC task of "
                "the run makes it (or create the folder to stand in for the claim)."
            )
        raise TaskRuntimeError(
            "the local runtime cannot provide what this task needs from a Kubernetes cluster: "
            + "; ".join(needs) + ". Use the kubernetes runtime." + hint
        )
    for volume in (body.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        folder = f"the folder {cluster.claim_folder(claim)}" if claim else "a folder of this pod"
        for target in sorted({m["mountPath"] for c in _containers(body) for m in c.get("volumeMounts") or []
                              if m.get("name") == volume.get("name")}):
            log(f"local runtime: {target} is {folder}")
    observer = _TaskLog(container_name, log)
    env = {name: dict(values) for name, values in (container_env or {}).items()}
    env[container_name] = {**env.get(container_name, {}), **(extra_env or {})}
    outcome = PodRun(body, cluster, observer, extra_env=env).run()
    if outcome.phase != "Succeeded":
        raise TaskRuntimeError(_failure(outcome, observer, container_name, body))


def _as_json(pod: Any) -> dict[str, Any]:
    """The pod as the API serialises it, without the pipeline root's volume: the local
    pipeline root is already where the task's code reads and writes it."""
    from airflow_kfx.pod.builder import ARTIFACT_VOLUME_NAME

    if isinstance(pod, Mapping):
        body = dict(pod)
    else:
        from kubernetes.client import ApiClient

        body = ApiClient().sanitize_for_serialization(pod)
    spec = dict(body.get("spec") or {})
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") != ARTIFACT_VOLUME_NAME]
    for key in ("initContainers", "containers"):
        if spec.get(key):
            spec[key] = [
                {**c, "volumeMounts": [m for m in c.get("volumeMounts") or []
                                       if m.get("name") != ARTIFACT_VOLUME_NAME]}
                for c in spec[key]
            ]
    body["spec"] = spec
    return body


def _optional_references(body: Mapping[str, Any]) -> list[str]:
    """Secrets and config maps the pod marks optional. A cluster leaves out an optional
    object that does not exist; here none exists, so running would silently differ from
    the same run on a cluster, where the object is presumably there: a need too."""
    needs: list[str] = []
    for volume in (body.get("spec") or {}).get("volumes") or []:
        for key, label, name_key in (("secret", "secret", "secretName"), ("configMap", "config map", "name")):
            ref = volume.get(key)
            if ref and ref.get("optional"):
                paths = ", ".join(sorted(
                    m["mountPath"] for c in _containers(body) for m in c.get("volumeMounts") or []
                    if m.get("name") == volume.get("name")
                )) or f"'{volume.get('name')}'"
                needs.append(f"the Kubernetes {label} '{ref.get(name_key)}' (optional volume at {paths})")
    for container in _containers(body):
        for variable in container.get("env") or []:
            source = variable.get("valueFrom") or {}
            for key, label in (("secretKeyRef", "secret"), ("configMapKeyRef", "config map")):
                ref = source.get(key)
                if ref and ref.get("optional"):
                    needs.append(f"the Kubernetes {label} '{ref.get('name')}' "
                                 f"(key '{ref.get('key')}' as optional env var {variable.get('name')})")
        for source in container.get("envFrom") or []:
            for key, label in (("secretRef", "secret"), ("configMapRef", "config map")):
                ref = source.get(key)
                if ref and ref.get("optional"):
                    needs.append(f"the Kubernetes {label} '{ref.get('name')}' (all keys as optional env vars)")
    return needs


def _containers(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = body.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _failure(outcome: PodOutcome, observer: _TaskLog, main: str, body: Mapping[str, Any]) -> str:
    """The task's error: the first thing that went wrong, with the end of its output."""
    if outcome.reason == "DeadlineExceeded":
        seconds = (body.get("spec") or {}).get("activeDeadlineSeconds")
        return f"the pod ran longer than its active deadline ({seconds} s) and was stopped"
    if outcome.reason and not (outcome.init_containers or outcome.containers):
        return f"the local runtime could not set up the pod's volumes: {outcome.message}"
    exits = [*outcome.init_containers, *sorted(outcome.containers, key=lambda e: e.name != main)]
    failed = next((e for e in exits if e.reason in NEVER_STARTED or e.reason == CANNOT_RUN), None)
    if failed is not None:
        if failed.name == main and failed.reason == CANNOT_RUN:
            return failed.message
        return f"the local runtime could not start container '{failed.name}': {failed.message}"
    # A sidecar's exit code (after its SIGTERM) never fails a pod, as in Kubernetes.
    sidecars = {c.get("name") for c in (body.get("spec") or {}).get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    failed = next((e for e in exits if e.exit_code != 0 and e.name not in sidecars), None)
    if failed is None:
        return f"the pod ended {outcome.phase}{': ' + outcome.message if outcome.message else ''}"
    tail = "\n".join(observer.tails.get(failed.name, ()))
    if failed.name == main:
        what = "the task's command"
    elif failed in outcome.init_containers:
        what = f"the init container '{failed.name}'"
    else:
        what = f"the container '{failed.name}'"
    return f"{what} exited with code {failed.exit_code}; last output:\n{tail}"
