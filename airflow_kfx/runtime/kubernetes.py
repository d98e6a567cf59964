"""The ``kubernetes`` runtime: the KubernetesPodOperator machinery, sync or deferrable.

The operator *is* a KubernetesPodOperator; this runtime hands its pod to the
provider's own ``execute`` (create or reattach, wait, follow logs, clean up per
``on_finish_action``) and, in deferrable mode, its ``trigger_reentry``. Outputs are
read from the pipeline root afterwards, so the provider's XCom sidecar (which needs
a shell in every image) stays off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# This module is imported only when a task runs on this runtime, never at DAG parse.
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager

from airflow_kfx.config import KfxSettings, config_value
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.runtime.base import Runtime, file_outputs_of

if TYPE_CHECKING:
    from airflow_kfx.operators.container import KfxContainerOperator


class KubernetesRuntime(Runtime):
    name = "kubernetes"

    def run(self, operator: KfxContainerOperator, context: Any) -> None:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        file_outputs = file_outputs_of(operator)
        if file_outputs:
            # In a pod the fixed path is in the container's own filesystem: collecting it needs
            # a helper in the user's container (as Argo's executor does), not built yet.
            raise TaskRuntimeError(
                f"KFP v1 fileOutputs ({', '.join(sorted(file_outputs))}) are not supported on the kubernetes "
                "runtime yet (only on the local runtime); declare the outputs with {outputPath: ...} instead"
            )
        with operator.without_xcom_sidecar():
            KubernetesPodOperator.execute(operator, context)

    def resume(self, operator: KfxContainerOperator, context: Any, event: dict[str, Any]) -> None:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        with operator.without_xcom_sidecar():
            KubernetesPodOperator.trigger_reentry(operator, context, event)

    def create_claim(self, manifest: Any, settings: KfxSettings, log: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        namespace = config_value("namespace", settings.namespace)
        try:
            _core_api(settings).create_namespaced_persistent_volume_claim(namespace=namespace, body=manifest)
        except ApiException as err:
            if err.status != 409:  # 409: created by an earlier try of this task
                raise
        log.info("PersistentVolumeClaim %s/%s is ready", namespace, manifest.metadata.name)

    def delete_claim(self, name: str, settings: KfxSettings, log: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        namespace = config_value("namespace", settings.namespace)
        try:
            _core_api(settings).delete_namespaced_persistent_volume_claim(name=name, namespace=namespace)
        except ApiException as err:
            if err.status != 404:  # 404: an earlier try deleted it
                raise
        log.info("deleted PersistentVolumeClaim %s/%s", namespace, name)


class FreshStartPodManager(PodManager):
    """The provider's ``PodManager`` calling ``before_create()`` right before it creates a
    pod — and so never when the operator reattaches to one still running after its
    worker died."""

    def __init__(self, *, before_create: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._before_create = before_create

    def create_pod(self, pod: Any) -> Any:
        self._before_create()
        return super().create_pod(pod)


def _core_api(settings: KfxSettings) -> Any:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(conn_id=config_value("kubernetes_conn_id", settings.kubernetes_conn_id)).core_v1_client
