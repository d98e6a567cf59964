"""Reading a finished task's outputs back from the pipeline root."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow_kfx.runtime.invocation import ContainerInvocation, artifact_descriptor
from airflow_kfx.runtime.storage import download_file, is_remote
from airflow_kfx.spec.model import Component
from airflow_kfx.task_io import ArtifactRef, read_outputs


def read_task_outputs(invocation: ContainerInvocation, component: Component) -> dict[str, Any]:
    """``{"parameters": {...}, "artifacts": {name: [descriptor, ...]}}`` for XCom."""
    parameter_files = dict(invocation.output_parameter_files)
    executor_output = invocation.context.output_file
    if is_remote(invocation.task_root):
        parameter_files, executor_output = _download(invocation, parameter_files, executor_output)
    parameters, artifacts = read_outputs(
        parameter_files,
        {n: s.type.value for n, s in component.outputs.parameters.items()},
        executor_output,
        invocation.output_artifacts,
    )
    return {
        "parameters": parameters,
        "artifacts": {
            name: [artifact_descriptor(ref) for ref in refs] for name, refs in artifacts.items()
        },
    }


def _download(
    invocation: ContainerInvocation, parameter_files: dict[str, str], executor_output: str
) -> tuple[dict[str, str], str]:
    """Fetch the small output files from the pipeline root (runtime/storage.py)."""
    from airflow_kfx.task_io import local_path_for_uri

    pod_root = local_path_for_uri(invocation.task_root)
    local_root = tempfile.mkdtemp(prefix="kfx-outputs-")

    def fetch(pod_path: str) -> str:
        relative = os.path.relpath(pod_path, pod_root)
        target = os.path.join(local_root, relative)
        download_file(f"{invocation.task_root}/{relative}", target)  # none: read_outputs says so
        return target

    return {n: fetch(p) for n, p in parameter_files.items()}, fetch(executor_output)


__all__ = ["ArtifactRef", "read_task_outputs"]
