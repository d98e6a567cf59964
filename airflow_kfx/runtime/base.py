"""Where a task's pod runs: one interface, a small registry of runtimes by name.

A runtime receives the very pod the operator built (the provider's own
``build_pod_request_obj`` plus the KFP settings) and decides only *where* it runs,
never *what* runs — as kfp.local's task handlers do. Adding a runtime is one new
module with a :class:`Runtime` subclass and one line in :data:`RUNTIMES`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_kfx.exceptions import TaskRuntimeError

if TYPE_CHECKING:
    from airflow_kfx.config import KfxSettings
    from airflow_kfx.operators.container import KfxContainerOperator

# name → "module:Class"; imported on first use so choosing a runtime costs nothing at parse time.
RUNTIMES: dict[str, str] = {
    "kubernetes": "airflow_kfx.runtime.kubernetes:KubernetesRuntime",
    "local": "airflow_kfx.runtime.local:LocalRuntime",
}


class Runtime(ABC):
    """Runs task pods and manages the volumes they share."""

    name: ClassVar[str]

    @abstractmethod
    def run(self, operator: KfxContainerOperator, context: Any) -> None:
        """Run the operator's pod to its end; raise when it failed.

        May raise Airflow's ``TaskDeferred`` (a runtime that can wait in the
        triggerer); the task then continues in :meth:`resume`.
        """

    def resume(self, operator: KfxContainerOperator, context: Any, event: dict[str, Any]) -> None:
        """Continue a deferred :meth:`run` when its trigger fired."""
        raise TaskRuntimeError(f"the {self.name} runtime never defers, so it cannot resume (event {event})")

    @abstractmethod
    def create_claim(self, manifest: Any, settings: KfxSettings, log: Any) -> None:
        """Create the PersistentVolumeClaim ``manifest`` (a V1PersistentVolumeClaim);
        a claim that already exists (an earlier try made it) is fine."""

    @abstractmethod
    def delete_claim(self, name: str, settings: KfxSettings, log: Any) -> None:
        """Delete the claim ``name``; one that is already gone is fine."""

    def worker_claim_folder(self, name: str) -> str | None:
        """The claim ``name`` as a folder on the worker, if the worker can reach it (the
        local runtime's claims are folders); None when only pods can mount it."""
        return None


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name`` (``[kfx] runtime``)."""
    target = RUNTIMES.get(name)
    if target is None:
        raise TaskRuntimeError(f"unknown [kfx] runtime '{name}'; use one of: {', '.join(sorted(RUNTIMES))}")
    module, _, cls = target.partition(":")
    runtime = getattr(importlib.import_module(module), cls)()
    assert isinstance(runtime, Runtime)
    return runtime


def runtime_for(settings: KfxSettings) -> Runtime:
    """The runtime a pipeline's tasks use: its own setting, else ``[kfx] runtime``."""
    from airflow_kfx.config import config_value

    return get_runtime(config_value("runtime", settings.runtime))


def file_outputs_of(operator: Any) -> dict[str, str]:
    """The task's KFP v1 ``fileOutputs`` (output name → fixed path in the container)."""
    pipeline, task = getattr(operator, "kfx_pipeline", None), getattr(operator, "kfx_task", None)
    executor = pipeline.executors.get(task.executor) if pipeline is not None and task is not None else None
    container = executor.container if executor is not None else None
    return dict(container.file_outputs) if container is not None else {}

