"""Reading a finished task's outputs back from the pipeline root.

Everything read here was written by the task's own code, and the worker reading it
holds credentials: output files must be inside the task's folder (not links out of
it), and every output artifact URI inside the run's folder (``airflow_kfx.confine``).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow_kfx.confine import EscapeError, confined, is_reference, is_within
from airflow_kfx.runtime.invocation import ContainerInvocation, artifact_descriptor
from airflow_kfx.runtime.storage import download_file, is_remote
from airflow_kfx.spec.model import Component
from airflow_kfx.task_io import ArtifactRef, local_path_for_uri, read_outputs


def read_task_outputs(invocation: ContainerInvocation, component: Component) -> dict[str, Any]:
    """``{"parameters": {...}, "artifacts": {name: [descriptor, ...]}}`` for XCom."""
    parameter_types = {n: s.type.value for n, s in component.outputs.parameters.items()}
    with tempfile.TemporaryDirectory(prefix="kfx-outputs-") as scratch:
        if is_remote(invocation.task_root):
            parameter_files, executor_output = _download(invocation, scratch)
        else:
            parameter_files, executor_output = _local_files(invocation)
        parameters, artifacts = read_outputs(
            parameter_files, parameter_types, executor_output, invocation.output_artifacts
        )
    for name, refs in artifacts.items():
        for ref in refs:
            if not is_reference(ref.uri):  # an oci:// model image is a name, never read
                confined(ref.uri, invocation.run_root, f"output artifact '{name}' at")
    return {
        "parameters": parameters,
        "artifacts": {
            name: [artifact_descriptor(ref) for ref in refs] for name, refs in artifacts.items()
        },
    }


def _local_files(invocation: ContainerInvocation) -> tuple[dict[str, str], str]:
    """The output files in the task's folder; a link leading out of it is refused."""
    folder = local_path_for_uri(invocation.task_root)

    def checked(path: str) -> str:
        if os.path.lexists(path) and not is_within(path, folder):
            raise EscapeError(f"the output file {path} leads outside the task's folder {folder}; refused")
        return path

    files = {name: checked(path) for name, path in invocation.output_parameter_files.items()}
    return files, checked(invocation.context.output_file)


def _download(invocation: ContainerInvocation, scratch: str) -> tuple[dict[str, str], str]:
    """Fetch the small output files from the pipeline root (runtime/storage.py)."""
    pod_root = local_path_for_uri(invocation.task_root)

    def fetch(pod_path: str) -> str:
        relative = os.path.relpath(pod_path, pod_root)
        target = os.path.join(scratch, relative)
        download_file(f"{invocation.task_root}/{relative}", target)  # none: read_outputs says so
        return target

    files = {n: fetch(p) for n, p in invocation.output_parameter_files.items()}
    return files, fetch(invocation.context.output_file)


__all__ = ["ArtifactRef", "read_task_outputs"]
