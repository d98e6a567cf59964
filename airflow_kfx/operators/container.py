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
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

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
from airflow_kfx.pod.transport import DOWNLOAD_CONTAINER, UPLOAD_CONTAINER
from airflow_kfx.runtime.resolve import Missing
from airflow_kfx.spec.model import Container, Pipeline, Resources
from airflow_kfx.tracking.links import MlflowRunLink

if TYPE_CHECKING:
    from airflow_kfx.runtime.base import Runtime

MAIN_CONTAINER = "base"
# The launcher's image name on the local runtime, where it runs on this machine (never pulled).
LOCAL_LAUNCHER_IMAGE = "airflow-kfx-launcher:local"
# How long to wait for the uploader's marker once the pod is reported finished.
UPLOAD_WAIT_SECONDS = 60


@dataclass
class _Execution:
    """What one execution of a task has resolved before its pod runs."""

    parameters: dict[str, Any]
    artifacts: dict[str, Any]
    tracker: Any  # airflow_kfx.tracking.task.TaskTracker


def pod_defaults(settings: KfxSettings) -> dict[str, Any]:
    """The pod operator arguments that ``[kfx]`` and the pipeline's settings give every
    task of a DAG. The DAG builder reads them once per DAG (Airflow's config lookups were
    15 % of a drop-in's parse) and hands them to each operator."""
    defaults: dict[str, Any] = {
        "namespace": config_value("namespace", settings.namespace),
        "kubernetes_conn_id": config_value("kubernetes_conn_id", settings.kubernetes_conn_id),
        "on_finish_action": config_value("on_finish_action", settings.on_finish_action),
    }
    if settings.deferrable is not None:
        defaults["deferrable"] = settings.deferrable
    policy = settings.image_pull_policy or config_value("image_pull_policy")
    if policy:
        defaults["image_pull_policy"] = policy
    account = settings.service_account or config_value("service_account")
    if account:
        defaults["service_account_name"] = account
    return defaults


class KfxContainerOperator(KubernetesPodOperator):
    """Runs a KFP container component (lightweight Python or container component).

    ``execute`` reads as the task's life: resolve inputs → condition → cache →
    run the pod where the runtime says → collect outputs → track. In deferrable mode
    the pod is watched by the provider's trigger and ``trigger_reentry`` picks the
    task up again at "collect".
    """

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
        kfx_pod_defaults: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        executor = kfx_pipeline.executors[kfx_task.executor]  # type: ignore[index]
        container = executor.container
        assert container is not None
        for name, value in (kfx_pod_defaults if kfx_pod_defaults is not None else pod_defaults(kfx_settings)).items():
            kwargs.setdefault(name, value)
        super().__init__(
            image=container.image,
            cmds=[str(c) if not isinstance(c, str) else c for c in container.command],
            arguments=[str(a) if not isinstance(a, str) else a for a in container.args],
            name=pod_name(kfx_task.name),
            base_container_name=MAIN_CONTAINER,
            # Our outputs are the XCom (returned by execute); KPO's own XCom
            # sidecar is switched off around its calls (see without_xcom_sidecar).
            do_xcom_push=True,
            get_logs=True,
            log_events_on_failure=True,
            # A failed container's last lines become its termination message, and so the
            # task's error; the whole pod spec in the error would bury them.
            termination_message_policy="FallbackToLogsOnError",
            log_pod_spec_on_failure=False,
            labels={"kfx/pipeline": _label(kfx_pipeline.name), "kfx/task": _label(kfx_task.name)},
            **kwargs,
        )
        self.kfx_pipeline = kfx_pipeline
        self.kfx_task = kfx_task
        self.kfx_settings = kfx_settings
        self._platform_values: list[tuple[Any, Any]] = []
        self._invocation: Any = None
        self._workspace_claim: str | None = None
        self._execution: _Execution | None = None
        self.kfx_mlflow_run: Any = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User values are data, never Jinja templates: leave every field as compiled.
        return None

    # -- the task's life ------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        execution = self._begin(context)
        cache_key = self._cache_key(context, execution)
        if cache_key:
            from airflow_kfx.runtime import cache

            cached = cache.lookup(self.pipeline_root(), cache_key)
            if cached is not None:
                self.log.info("Cache hit (%s): reusing the outputs of an earlier execution", cache_key[:12])
                execution.tracker.finish(
                    outputs=cached, failed=False, pipeline_root=self.pipeline_root(), tags={"kfx.cache_hit": "true"}
                )
                return self.publish(context, {**cached, "cache_hit": True})
        self._prepare_pod(context, execution)
        with self._failures_tracked(execution):
            self.runtime().run(self, context)
            return self._complete(context, execution, cache_key)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        """The provider's trigger saw the pod end (deferrable mode): collect and track."""
        if self._execution is not None:
            # Still inside execute(): the provider skipped the deferral because the pod
            # had already ended, and execute() goes on to collect the outputs itself.
            self.runtime().resume(self, context, event)
            return None
        execution = self._begin(context)
        self._prepare_pod(context, execution)
        with self._failures_tracked(execution):
            self.runtime().resume(self, context, event)
            return self._complete(context, execution, self._cache_key(context, execution))

    def _begin(self, context: Any) -> _Execution:
        """Resolve the inputs, skip when the task's condition is false, open its MLflow run."""
        planned = self.kfx_task
        resolver = open_resolver(context, planned)
        component = component_of(self.kfx_pipeline, planned)
        parameters, artifacts = resolve_inputs(resolver, planned, component, upstream_may_fail=planned.all_done)
        if planned.condition:
            from airflow_kfx.expressions import evaluate_condition

            if not evaluate_condition(planned.condition, parameters):
                raise AirflowSkipException(f"condition is false: {planned.condition}")
        self._platform_values = []
        for source, binding in planned.platform_inputs:
            try:
                value = resolver.resolve(binding)
            except Missing:  # an optional input not given: the setting is left out, as in KFP
                value = None
            self._platform_values.append((source, value))
        from airflow_kfx.tracking.task import TaskTracker

        container = self._container()
        tracker = TaskTracker.start(
            context, self.kfx_pipeline, planned, self.kfx_settings, self._shown_inputs(context, component, parameters),
            tags={"kfx.component": planned.component, "kfx.image": container.image},
        )
        self.kfx_mlflow_run = tracker.ref
        self._execution = _Execution(parameters, artifacts, tracker)
        return self._execution

    def _constant_inputs(self) -> frozenset[str]:
        return frozenset(name for name, binding in self.kfx_task.inputs.items() if isinstance(binding, Literal))

    def _shown_inputs(self, context: Any, component: Any, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        """The inputs as the component receives them (f-strings over other inputs
        resolved), for MLflow; the raw values when they do not resolve, since the task
        then fails in :meth:`prepare` with the reason."""
        from airflow_kfx.runtime.invocation import input_values

        try:
            return input_values(self.kfx_pipeline, component, parameters, identity=run_identity(context, self.kfx_task),
                                pipeline_root=self.pipeline_root(), constant_inputs=self._constant_inputs())
        except TaskRuntimeError:
            return parameters

    def _prepare_pod(self, context: Any, execution: _Execution) -> None:
        """Fill the placeholders and set what ``build_pod_request_obj`` reads."""
        identity = run_identity(context, self.kfx_task)
        with self._writing_root():
            artifacts = self._write_inline_files(execution.artifacts, identity)
        self.prepare(execution.parameters, artifacts, identity, extra_env=execution.tracker.pod_env())
        _refuse_oci_inputs(artifacts, self.kfx_task.kfp_path)
        with self._writing_root():
            _make_output_folders(self._invocation)

    @contextlib.contextmanager
    def _writing_root(self) -> Iterator[None]:
        """A pipeline root the worker cannot write is the task's error, said in one line."""
        try:
            yield
        except OSError as err:
            raise TaskRuntimeError(
                f"the pipeline root {self.pipeline_root()} cannot be written: {err}; check [kfx] pipeline_root "
                "and that the worker may write there"
            ) from None

    def start_clean(self) -> None:
        """A new pod is about to start (not a reattached one): nothing an earlier attempt
        left in the task's folder — partial outputs of a killed pod, its executor-output
        and parameter files, upload markers — can be taken for this attempt's outputs, as
        on KFP, where every pod writes them afresh. The inline input files this attempt
        wrote (``_kfx/inputs``) stay."""
        from airflow_kfx.runtime.storage import clear_folder

        root = self._invocation.task_root
        with self._writing_root():
            clear_folder(root, keep=("_kfx",))
            clear_folder(f"{root}/_kfx", keep=("inputs",))
            _make_output_folders(self._invocation)

    @cached_property
    def pod_manager(self) -> Any:
        """The provider's pod manager, calling :meth:`start_clean` before it creates a pod."""
        from airflow_kfx.runtime.kubernetes import FreshStartPodManager

        return FreshStartPodManager(kube_client=self.client, callbacks=self.callbacks, before_create=self.start_clean)

    def _complete(self, context: Any, execution: _Execution, cache_key: str | None) -> dict[str, Any]:
        """The pod has ended well: read its outputs, remember them, close the MLflow run."""
        outputs = self.collect_outputs()
        if cache_key:
            from airflow_kfx.runtime import cache

            cache.store(self.pipeline_root(), cache_key, outputs)
            outputs["cache_hit"] = False
        pod = getattr(self, "pod", None)
        pod_name = pod.metadata.name if pod is not None and pod.metadata is not None else "local"
        execution.tracker.finish(
            outputs=outputs, failed=False, pipeline_root=self.pipeline_root(),
            tags={"kfx.cache_hit": "false", "kfx.pod_name": pod_name},
        )
        return self.publish(context, outputs)

    @contextlib.contextmanager
    def _failures_tracked(self, execution: _Execution) -> Iterator[None]:
        """A failure closes the task's MLflow run FAILED; a deferral leaves it open."""
        from airflow_kfx.compat import TaskDeferred

        try:
            yield
        except TaskDeferred:
            raise
        except BaseException:
            execution.tracker.finish(outputs=None, failed=True, tags={"kfx.cache_hit": "false"})
            raise

    def publish(self, context: Any, outputs: dict[str, Any]) -> dict[str, Any]:
        """The task's XCom; subclasses may publish more (see KfxComponentOperator)."""
        return outputs

    def runtime(self) -> Runtime:
        from airflow_kfx.runtime.base import runtime_for

        return runtime_for(self.kfx_settings)

    def _container(self) -> Container:
        container = self.kfx_pipeline.executors[self.kfx_task.executor].container  # type: ignore[index]
        assert container is not None
        return container

    def _cache_key(self, context: Any, execution: _Execution) -> str | None:
        """The KFP cache key when caching applies to this execution, else None."""
        task = self.kfx_task.task
        if task is None or not task.caching.enable_cache:
            return None
        params = context.get("params") or {}
        if params.get(CACHE_PARAM, True) is False:  # switched off for this run
            return None
        from airflow_kfx.runtime.cache import fingerprint

        component = component_of(self.kfx_pipeline, self.kfx_task)
        return fingerprint(
            component, self._container(), execution.parameters, execution.artifacts, task.caching.cache_key
        )

    def _write_inline_files(self, artifacts: Mapping[str, Any], identity: Any) -> dict[str, Any]:
        """Values given to file inputs (v1 ``inputPath``) become files in the task's folder."""
        from airflow_kfx.confine import safe_segment
        from airflow_kfx.runtime.invocation import task_root
        from airflow_kfx.runtime.resolve import InlineFile
        from airflow_kfx.runtime.storage import write_text

        result: dict[str, Any] = {}
        for name, refs in artifacts.items():
            converted = []
            for ref in refs:
                if isinstance(ref, InlineFile):
                    uri = f"{task_root(self.pipeline_root(), identity)}/_kfx/inputs/{safe_segment(name)}"
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
        invocation = prepare_container(
            self.kfx_pipeline,
            component,
            self._container(),
            parameters=parameters,
            artifacts={name: [artifact_ref(d, name) for d in refs] for name, refs in artifacts.items()},
            identity=identity,
            pipeline_root=self.pipeline_root(),
            symbolic=symbolic,
            constant_inputs=self._constant_inputs(),
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

    def local_secret_env(self) -> dict[str, dict[str, str]]:
        """Credentials the ``local`` runtime hands to containers, by container name —
        on a cluster they come from Kubernetes secrets instead (``[kfx]
        mlflow_credentials_secret``, ``artifact_credentials_secret``)."""
        env: dict[str, dict[str, str]] = {}
        execution = self._execution
        tracking = execution.tracker.tracking if execution is not None else None
        if tracking is not None:
            env[MAIN_CONTAINER] = dict(tracking.session.target.credential_env())
        if self._uses_launcher():
            from airflow_kfx.runtime.storage import launcher_env

            credentials = launcher_env(self.pipeline_root())
            env[DOWNLOAD_CONTAINER] = dict(credentials)
            env[UPLOAD_CONTAINER] = dict(credentials)
        return env

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        from airflow_kfx.pod.builder import finish_pod

        with self.without_xcom_sidecar():
            pod = super().build_pod_request_obj(context, dry_run=dry_run)
        pod = finish_pod(
            pod,
            pipeline=self.kfx_pipeline,
            planned=self.kfx_task,
            platform_values=self._platform_values,
            pipeline_root=self.pipeline_root(),
            artifact_volume=self._artifact_volume(),
            workspace_claim=self._workspace_claim,
            container_name=MAIN_CONTAINER,
        )
        if context is not None:
            # Find a run's pods: kubectl get pods -l kfx/run-id=<run id, as a label value>.
            from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

            pod.metadata.labels = {**(pod.metadata.labels or {}), "kfx/run-id": make_safe_label_value(context["run_id"])}
        if self._uses_launcher() and self._invocation is not None:
            from airflow_kfx.pod.transport import add_launcher

            # The pod's name identifies this attempt in the uploader's marker, so outputs are
            # taken from the pod that really ran (a reattached one included), never a stale try.
            spec = self._launcher_spec(dry_run, attempt=pod.metadata.name)
            pod = add_launcher(pod, spec, main_container=MAIN_CONTAINER)
            # The download container's log goes into the task log too (the provider follows
            # init containers it is told about).
            self.init_container_logs = [DOWNLOAD_CONTAINER]
        return pod

    def _artifact_volume(self) -> str:
        return config_value("artifact_volume", self.kfx_settings.artifact_volume)

    def _uses_launcher(self) -> bool:
        """Object storage and no shared volume: the launcher moves artifacts in and out."""
        from airflow_kfx.runtime.storage import is_remote

        return is_remote(self.pipeline_root()) and not self._artifact_volume()

    def _launcher_spec(self, dry_run: bool, attempt: str) -> Any:
        from airflow_kfx.pod.transport import LauncherSpec

        invocation = self._invocation
        image = config_value("launcher_image")
        if not image:
            if dry_run:  # kfx render: show where the image goes
                image = "<[kfx] launcher_image>"
            elif self.runtime().name != "local":
                raise TaskRuntimeError(
                    f"the pipeline root {self.pipeline_root()} is object storage and no [kfx] artifact_volume "
                    "is set, so task pods need the launcher: set [kfx] launcher_image to an image with "
                    "airflow-kfx[s3] installed (see the README, 'Running on a cluster')"
                )
            image = LOCAL_LAUNCHER_IMAGE
        inputs = tuple(
            dict.fromkeys(ref.uri for refs in invocation.context.input_artifacts.values() for ref in refs)
        )
        return LauncherSpec(
            image=image,
            pipeline_root=self.pipeline_root(),
            run_root=invocation.run_root,
            task_root=invocation.task_root,
            inputs=inputs,
            credentials_secret=config_value("artifact_credentials_secret") or None,
            attempt=attempt,
        )

    @contextlib.contextmanager
    def without_xcom_sidecar(self) -> Iterator[None]:
        """KPO reads ``do_xcom_push`` to add its XCom sidecar; we read outputs
        from the pipeline root instead (any image works, no shell needed)."""
        saved, self.do_xcom_push = self.do_xcom_push, False
        try:
            yield
        finally:
            self.do_xcom_push = saved

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: Any = None, context: Any = None) -> None:
        """Before the provider deletes the pod: the upload container's log into the task
        log (the provider follows only the main container), so a failed upload is explained."""
        if self._uses_launcher() and remote_pod is not None:
            try:
                logs = self.pod_manager.read_pod_logs(remote_pod, UPLOAD_CONTAINER, follow=False)
                for raw in logs:
                    self.log.info("[%s] %s", UPLOAD_CONTAINER, raw.decode("utf-8", "replace").rstrip())
            except Exception as err:  # noqa: BLE001 - the log is a courtesy; never fail cleanup over it
                self.log.warning("could not read the %s container's log: %s", UPLOAD_CONTAINER, err)
        super().cleanup(pod, remote_pod, xcom_result, context)

    def _await_upload(self) -> None:
        """The uploader's marker for the pod that ran. Normally there already: the pod ends
        only after its uploader; a short wait covers a pod reported done before that."""
        from airflow_kfx.runtime.storage import upload_error, wait_for_upload

        task_root = self._invocation.task_root
        attempt = self.pod.metadata.name if getattr(self, "pod", None) is not None else None
        if wait_for_upload(task_root, timeout=UPLOAD_WAIT_SECONDS, attempt=attempt) is None:
            error = upload_error(task_root, attempt)
            raise TaskRuntimeError(
                f"the launcher did not upload this task's outputs to {task_root} (container {UPLOAD_CONTAINER}): "
                + (error or f"no result after {UPLOAD_WAIT_SECONDS} s")
            )

    def collect_outputs(self) -> dict[str, Any]:
        from airflow_kfx.runtime.outputs import read_task_outputs

        if self._uses_launcher():
            self._await_upload()
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
    from airflow_kfx.config import fallback_pipeline_root

    configured = settings.pipeline_root or config_value("pipeline_root")
    if configured:
        return configured
    return pipeline.default_pipeline_root or fallback_pipeline_root()


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


def pod_name(task_name: str) -> str:
    """A DNS-1123 label from a KFP task name; the provider adds a random suffix per pod."""
    import re

    return re.sub(r"[^a-z0-9-]+", "-", task_name.lower()).strip("-")[:50].rstrip("-") or "kfx-task"


def _label(value: str) -> str:
    """A valid Kubernetes label value (≤63 chars, alphanumeric ends)."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63]
    return cleaned.strip("-_.")
