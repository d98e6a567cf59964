"""The task operator: a KubernetesPodOperator that runs one KFP container task.

At run time it resolves its inputs (upstream XComs, run params, loop items),
fills KFP's placeholders, builds the pod with the provider's own
``build_pod_request_obj`` plus the kfp-kubernetes settings, runs it where the
``runtime`` setting says, and returns the task's outputs as its XCom.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_kfx.config import CACHE_PARAM, KfxSettings, config_value
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.operators.context import (
    component_of,
    open_resolver,
    resolve_inputs,
    run_identity,
)
from airflow_kfx.plan import Literal, PlannedTask
from airflow_kfx.runtime.resolve import Missing
from airflow_kfx.spec.model import Pipeline, Resources
from airflow_kfx.tracking.links import MlflowRunLink

MAIN_CONTAINER = "base"


class KfxContainerOperator(KubernetesPodOperator):
    """Runs a KFP container component (lightweight Python or container component)."""

    # Shown in the UI's "Rendered Template" tab exactly as compiled: placeholders
    # are KFP's, and nothing here is ever rendered by Jinja.
    template_fields = ("image", "cmds", "arguments")
    shallow_copy_attrs = ("kfx_pipeline", "kfx_task")
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#d6e4ff"

    def __init__(
        self,
        *,
        kfx_pipeline: Pipeline,
        kfx_task: PlannedTask,
        kfx_settings: KfxSettings,
        **kwargs: Any,
    ) -> None:
        executor = kfx_pipeline.executors[kfx_task.executor]  # type: ignore[index]
        container = executor.container
        assert container is not None
        kwargs.setdefault("namespace", config_value("namespace", kfx_settings.namespace))
        kwargs.setdefault("kubernetes_conn_id", config_value("kubernetes_conn_id", kfx_settings.kubernetes_conn_id))
        policy = kfx_settings.image_pull_policy or config_value("image_pull_policy")
        if policy:
            kwargs.setdefault("image_pull_policy", policy)
        account = kfx_settings.service_account or config_value("service_account")
        if account:
            kwargs.setdefault("service_account_name", account)
        super().__init__(
            image=container.image,
            cmds=[str(c) if not isinstance(c, str) else c for c in container.command],
            arguments=[str(a) if not isinstance(a, str) else a for a in container.args],
            name=_pod_name(kfx_task.name),
            base_container_name=MAIN_CONTAINER,
            # Our outputs are the XCom (returned by execute); KPO's own XCom
            # sidecar is switched off around its calls (see _without_sidecar).
            do_xcom_push=True,
            get_logs=True,
            on_finish_action="delete_pod",
            labels={"kfx/pipeline": _label(kfx_pipeline.name), "kfx/task": _label(kfx_task.name)},
            **kwargs,
        )
        self.kfx_pipeline = kfx_pipeline
        self.kfx_task = kfx_task
        self.kfx_settings = kfx_settings
        self._platform_values: list[tuple[Any, Any]] = []
        self._invocation: Any = None
        self._workspace_claim: str | None = None
        self.kfx_mlflow_run: Any = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User values are data, never Jinja templates: leave every field as compiled.
        return None

    # -- run ----------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        planned = self.kfx_task
        resolver = open_resolver(context, planned)
        component = component_of(self.kfx_pipeline, planned)
        parameters, artifacts = resolve_inputs(
            resolver, planned, component, upstream_may_fail=planned.all_done
        )
        if planned.condition:
            from airflow_kfx.expressions import evaluate_condition

            if not evaluate_condition(planned.condition, parameters):
                raise AirflowSkipException(f"condition is false: {planned.condition}")
        from airflow_kfx.tracking.task import TaskTracker

        container = self.kfx_pipeline.executors[planned.executor].container  # type: ignore[index]
        tracker = TaskTracker.start(
            context, self.kfx_pipeline, planned, self.kfx_settings, parameters,
            tags={"kfx.component": planned.component, "kfx.image": container.image if container else ""},
        )
        self.kfx_mlflow_run = tracker.ref
        cache_key = self._cache_key(context, component, parameters, artifacts)
        if cache_key:
            from airflow_kfx.runtime import cache

            cached = cache.lookup(self.pipeline_root(), cache_key)
            if cached is not None:
                self.log.info("Cache hit (%s): reusing the outputs of an earlier execution", cache_key[:12])
                tracker.finish(outputs=cached, failed=False, tags={"kfx.cache_hit": "true"})
                return {**cached, "cache_hit": True}
        try:
            outputs = self._run(context, resolver, parameters, artifacts, tracker)
        except BaseException:
            tracker.finish(outputs=None, failed=True, tags={"kfx.cache_hit": "false"})
            raise
        if cache_key:
            from airflow_kfx.runtime import cache

            cache.store(self.pipeline_root(), cache_key, outputs)
            outputs["cache_hit"] = False
        pod_name = self.pod.metadata.name if getattr(self, "pod", None) is not None else "local"
        tracker.finish(outputs=outputs, failed=False, tags={"kfx.cache_hit": "false", "kfx.pod_name": pod_name})
        return outputs

    def _run(self, context: Any, resolver: Any, parameters: Any, artifacts: Any, tracker: Any) -> dict[str, Any]:
        """Build the pod, run it where the runtime says, and read its outputs."""
        planned = self.kfx_task
        self._platform_values = []
        for source, binding in planned.platform_inputs:
            try:
                value = resolver.resolve(binding)
            except Missing:  # an optional input not given: the setting is left out, as in KFP
                value = None
            self._platform_values.append((source, value))
        identity = run_identity(context, planned)
        artifacts = self._write_inline_files(artifacts, identity)
        self.prepare(parameters, artifacts, identity, extra_env=tracker.pod_env())
        _refuse_oci_inputs(artifacts, planned.kfp_path)
        runtime = config_value("runtime", self.kfx_settings.runtime)
        if runtime == "local":
            from airflow_kfx.runtime.local import run_pod_locally

            _make_output_folders(self._invocation)
            pod = self.build_pod_request_obj(context, dry_run=True)
            credentials = tracker.tracking.session.target.credential_env() if tracker.tracking else {}
            run_pod_locally(pod, container_name=MAIN_CONTAINER, log=self.log.info, extra_env=credentials)
        elif runtime == "kubernetes":
            with self._without_sidecar():
                super().execute(context)
        else:
            raise TaskRuntimeError(f"unknown [kfx] runtime '{runtime}'; use 'kubernetes' or 'local'")
        return self.collect_outputs()

    def _cache_key(self, context: Any, component: Any, parameters: Any, artifacts: Any) -> str | None:
        """The KFP cache key when caching applies to this execution, else None."""
        task = self.kfx_task.task
        if task is None or not task.caching.enable_cache:
            return None
        params = context.get("params") or {}
        if params.get(CACHE_PARAM, True) is False:  # switched off for this run
            return None
        from airflow_kfx.runtime.cache import fingerprint

        container = self.kfx_pipeline.executors[self.kfx_task.executor].container  # type: ignore[index]
        return fingerprint(component, container, parameters, artifacts, task.caching.cache_key)  # type: ignore[arg-type]

    def _write_inline_files(self, artifacts: Mapping[str, Any], identity: Any) -> dict[str, Any]:
        """Values given to file inputs (v1 ``inputPath``) become files in the task's folder."""
        from airflow_kfx.runtime.invocation import task_root
        from airflow_kfx.runtime.resolve import InlineFile
        from airflow_kfx.runtime.storage import write_text

        result: dict[str, Any] = {}
        for name, refs in artifacts.items():
            converted = []
            for ref in refs:
                if isinstance(ref, InlineFile):
                    uri = f"{task_root(self.pipeline_root(), identity)}/_kfx/inputs/{name}"
                    write_text(uri, ref.value if isinstance(ref.value, str) else json.dumps(ref.value))
                    ref = {"name": name, "uri": uri, "schemaTitle": "system.Artifact", "metadata": {}}
                converted.append(ref)
            result[name] = converted
        return result

    def prepare(
        self,
        parameters: Mapping[str, Any],
        artifacts: Mapping[str, Any],
        identity: Any,
        symbolic: frozenset[str] = frozenset(),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Resolve placeholders and set what ``build_pod_request_obj`` reads."""
        from airflow_kfx.runtime.invocation import artifact_ref, prepare_container

        component = component_of(self.kfx_pipeline, self.kfx_task)
        container = self.kfx_pipeline.executors[self.kfx_task.executor].container  # type: ignore[index]
        invocation = prepare_container(
            self.kfx_pipeline,
            component,
            container,  # type: ignore[arg-type]
            parameters=parameters,
            artifacts={name: [artifact_ref(d, name) for d in refs] for name, refs in artifacts.items()},
            identity=identity,
            pipeline_root=self.pipeline_root(),
            symbolic=symbolic,
            constant_inputs=frozenset(
                name for name, binding in self.kfx_task.inputs.items() if isinstance(binding, Literal)
            ),
        )
        self._invocation = invocation
        self._workspace_claim = None
        if self.kfx_pipeline.workspace is not None:
            from airflow_kfx.runtime.pvc import workspace_claim_name

            self._workspace_claim = "<run workspace claim>" if identity.symbolic else workspace_claim_name(identity)
        self.image = invocation.image
        self.cmds = invocation.command
        self.arguments = invocation.args
        # The component's env, then MLflow's (so mlflow.log_metric in a component logs
        # into this task's run); credentials come from a Kubernetes secret, never the pipeline.
        self.env_vars = {**invocation.env, **(extra_env or {})}
        secret = config_value("mlflow_credentials_secret")
        if secret and extra_env:
            from kubernetes.client import models as k8s

            self.env_from = [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret, optional=True))]
        self.container_resources = _resource_requirements(invocation.resources)

    def pipeline_root(self) -> str:
        return default_pipeline_root(self.kfx_pipeline, self.kfx_settings)

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        from airflow_kfx.pod.builder import finish_pod

        with self._without_sidecar():
            pod = super().build_pod_request_obj(context, dry_run=dry_run)
        return finish_pod(
            pod,
            pipeline=self.kfx_pipeline,
            planned=self.kfx_task,
            platform_values=self._platform_values,
            pipeline_root=self.pipeline_root(),
            artifact_volume=config_value("artifact_volume", self.kfx_settings.artifact_volume),
            workspace_claim=self._workspace_claim,
            container_name=MAIN_CONTAINER,
        )

    @contextlib.contextmanager
    def _without_sidecar(self) -> Iterator[None]:
        """KPO reads ``do_xcom_push`` to add its XCom sidecar; we read outputs
        from the pipeline root instead (any image works, no shell needed)."""
        saved, self.do_xcom_push = self.do_xcom_push, False
        try:
            yield
        finally:
            self.do_xcom_push = saved

    def collect_outputs(self) -> dict[str, Any]:
        from airflow_kfx.runtime.outputs import read_task_outputs

        component = component_of(self.kfx_pipeline, self.kfx_task)
        return read_task_outputs(self._invocation, component)


def _refuse_oci_inputs(artifacts: Mapping[str, Any], where: str) -> None:
    """KFP mounts ``oci://`` model images into the pod (modelcar); we cannot yet."""
    for name, refs in artifacts.items():
        for ref in refs:
            uri = str(ref.get("uri", "")) if isinstance(ref, Mapping) else ""
            if uri.startswith("oci://"):
                raise TaskRuntimeError(
                    f"task '{where}': input artifact '{name}' is the OCI model image {uri}; mounting "
                    "model images into task pods (KFP's modelcar) is not supported yet"
                )


def _make_output_folders(invocation: Any) -> None:
    """On a local pipeline root, the task's folder exists before it runs, as KFP's
    launcher makes it (``dsl.get_uri()`` outputs are written straight into it)."""
    from airflow_kfx.runtime.storage import is_remote

    if not is_remote(invocation.task_root):
        os.makedirs(invocation.task_root.removeprefix("file://"), exist_ok=True)


def default_pipeline_root(pipeline: Pipeline, settings: KfxSettings) -> str:
    """Per-pipeline setting, then [kfx] pipeline_root, then the file's, then AIRFLOW_HOME."""
    configured = settings.pipeline_root or config_value("pipeline_root")
    if configured:
        return configured
    if pipeline.default_pipeline_root:
        return pipeline.default_pipeline_root
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "kfx", "artifacts")


def _resource_requirements(resources: Resources) -> Any:
    from kubernetes.client import models as k8s

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if resources.cpu_limit:
        limits["cpu"] = str(resources.cpu_limit)
    if resources.memory_limit:
        limits["memory"] = str(resources.memory_limit)
    if resources.cpu_request:
        requests["cpu"] = str(resources.cpu_request)
    if resources.memory_request:
        requests["memory"] = str(resources.memory_request)
    if resources.accelerator is not None and resources.accelerator.type:
        limits[accelerator_resource(str(resources.accelerator.type))] = str(resources.accelerator.count or 1)
    if not limits and not requests:
        return None
    return k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None)


def accelerator_resource(accelerator_type: str) -> str:
    """KFP accelerator types → Kubernetes extended resource names.

    The SDK accepts Kubernetes names ('nvidia.com/gpu') and Vertex AI names
    ('NVIDIA_TESLA_T4', 'TPU_V3'); the latter map to the device plugin's resource.
    """
    if "/" in accelerator_type or accelerator_type.startswith("<"):  # "<...>": kfx render's stand-in
        return accelerator_type
    upper = accelerator_type.upper()
    if upper.startswith("NVIDIA") or upper == "GPU":
        return "nvidia.com/gpu"
    if upper.startswith("TPU"):
        return "google.com/tpu"
    if upper.startswith("AMD"):
        return "amd.com/gpu"
    raise TaskRuntimeError(f"unknown accelerator type '{accelerator_type}'; use a Kubernetes resource name like 'nvidia.com/gpu'")


def _pod_name(task_name: str) -> str:
    return _label(task_name)[:50] or "kfx-task"


def _label(value: str) -> str:
    """A valid Kubernetes label value (≤63 chars, alphanumeric ends)."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63]
    return cleaned.strip("-_.")
