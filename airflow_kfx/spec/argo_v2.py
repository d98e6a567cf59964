"""KFP v2 backend-compiled Argo Workflows → the PipelineSpec they were compiled from.

KFP's API server compiles a v2 ``PipelineSpec`` (plus the kfp-kubernetes platform spec)
into an Argo ``Workflow`` (kubeflow/pipelines ``backend/src/v2/compiler/argocompiler``).
The workflow's templates are KFP's own driver/launcher machinery; the pipeline itself
travels as protobuf JSON strings, which this module reads back:

* ``spec.arguments.parameters``: ``components-root`` (the root ``ComponentSpec``),
  ``components-<key>`` (every other ``ComponentSpec``, without its name),
  ``implementations-<key>`` (an executor's ``PipelineContainerSpec`` or ``ImporterSpec``)
  and ``kubernetes-<component name>`` (the ``KubernetesExecutorConfig`` of that
  component's executor). ``<key>`` is the sha256 of the executor's container JSON, or
  the component name for DAG and importer components (``hashComponentContainer``).
* The DAG templates' driver tasks pass ``component: {{workflow.parameters.components-<key>}}``,
  ``task: <PipelineTaskSpec JSON>`` (whose ``componentRef.name`` names the component) and
  ``container``/``importer: {{workflow.parameters.implementations-<key>}}``: the only
  place where a component name meets its parameters.
* ``--pipeline_name`` of the driver templates is ``pipelineInfo.name``; the root driver's
  ``runtime-config`` is the run's ``RuntimeConfig`` (root defaults filled in, pipeline root);
  ``spec.volumeClaimTemplates`` holds the ``pipelineConfig`` workspace PVC;
  ``spec.securityContext.runAsUser`` the API server's ``PIPELINE_RUN_AS_USER``;
  ``--cache_disabled=true`` the API server's cache switch.

The compiler loses some of the spec, none of which changes what runs: pipelineInfo's
display name and description, ``sdkVersion``, components no task uses. Components whose
executors have the same container share one ``components-<hash>`` parameter (the first
compiled wins), so they come back with the same interface; one executor is rebuilt per
distinct (implementation, Kubernetes config), because KFP's driver applies the
Kubernetes config per component name. The run's parameter values (``runtime-config``)
become the root inputs' defaults: they are what the workflow runs with. The service
account is the KFP deployment's, not the pipeline's, and is left to Airflow's settings.
Anything else the workflow says that has no place in the spec is refused with
:class:`~airflow_kfx.exceptions.UnsupportedFeatureError`.

Errors name the workflow file and a YAML path; inside a JSON string the path continues
into the JSON: ``spec.arguments.parameters[3].value.inputDefinitions.parameters.x``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_kfx.exceptions import SpecError
from airflow_kfx.spec.rebuilt import Origin, located
from airflow_kfx.spec.source import MAX_DEPTH, LineDict, Node, join_path

ROOT_PARAMETER = "components-root"
COMPONENTS = "components-"
IMPLEMENTATIONS = "implementations-"
KUBERNETES = "kubernetes-"
# KFP accepts only this schema for v2 specs (template.NewV2SpecTemplate); the workflow keeps none.
SCHEMA_VERSION = "2.1.0"

_PLACEHOLDER = re.compile(r"^\{\{workflow\.parameters\.([^{}\s]+)\}\}$")
_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
# Workflow spec fields the compiler writes for every pipeline; the rest are refused below.
_SPEC_FIELDS = {
    "arguments", "entrypoint", "templates", "podMetadata", "securityContext",
    "serviceAccountName", "volumeClaimTemplates",
}
_SPEC_REFUSED = {
    "ttlStrategy": "the pipelineConfig resource TTL (Argo ttlStrategy) is not translated",
    "activeDeadlineSeconds": "a pipeline-wide deadline (pipelineConfig activeDeadlineSeconds) is not translated",
}
# KFP marks every pod of a v2 run with this; it means nothing outside KFP.
_V2_MARKER = {"pipelines.kubeflow.org/v2_component": "true"}
# The pod security baseline the compiler gives every workflow (Argo's rootless defaults).
_BASELINE_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
# API-server defaults for user containers that the driver applies (argocompiler Options).
_REFUSED_DRIVER_FLAGS = ("--default_run_as_user", "--default_run_as_group",
                         "--default_run_as_non_root", "--default_host_users")
_WORKSPACE_PVC = "kfp-workspace"


def is_v2_backend_workflow(document: Mapping[str, Any]) -> bool:
    """True for a workflow the KFP v2 backend compiled: it passes ``components-root``.

    KFP v1 SDK workflows (``pipelines.kubeflow.org/pipeline_spec``), v1 "v2-compatible"
    ones and hand-written Argo workflows have no such parameter.
    """
    annotations = _mapping(_mapping(document.get("metadata")).get("annotations"))
    if "pipelines.kubeflow.org/pipeline_spec" in annotations:
        return False
    parameters = _mapping(_mapping(document.get("spec")).get("arguments")).get("parameters")
    return isinstance(parameters, list) and any(
        isinstance(p, Mapping) and p.get("name") == ROOT_PARAMETER for p in parameters
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------------------
# What the rebuild returns
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RebuiltSpec:
    """The PipelineSpec and ``platforms.kubernetes`` mapping read from one workflow.

    Both are plain JSON data (``LineDict`` mappings carrying workflow lines), ready for
    :func:`airflow_kfx.spec.ir.parse_pipeline_spec` and
    :func:`airflow_kfx.spec.platform.parse_kubernetes_platform`.
    """

    file: str
    line: int | None
    spec: LineDict
    platform: LineDict | None
    origins: tuple[Origin, ...]
    # KFP v1 only: executor label → output → fixed path (``fileOutputs``; see finished)
    file_outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    run_deadline_seconds: int | None = None  # KFP v1 only: spec.activeDeadlineSeconds

    def finished(self, pipeline: Any) -> Any:
        """``pipeline`` (parsed from ``spec``) with what a PipelineSpec cannot say: the v1
        ``fileOutputs`` on its containers and the run's deadline."""
        if self.run_deadline_seconds is not None:
            pipeline = replace(pipeline, run_deadline_seconds=self.run_deadline_seconds)
        if not self.file_outputs:
            return pipeline
        executors = dict(pipeline.executors)
        for label, outputs in self.file_outputs.items():
            executor = executors[label]
            executors[label] = replace(executor, container=replace(executor.container, file_outputs=dict(outputs)))
        return replace(pipeline, executors=executors)

    def spec_node(self) -> Node:
        return Node(self.spec, "", self.file, self.line)

    def platform_node(self) -> Node | None:
        if self.platform is None:
            return None
        return Node(self.platform, "platforms.kubernetes", self.file, self.platform.line)

    def relocate(self, err: SpecError) -> SpecError:
        """``err`` (found in the rebuilt spec) pointing at the workflow: its YAML path and
        line become those of the workflow value the failing part came from."""
        path = err.yaml_path or ""
        for origin in sorted(self.origins, key=lambda o: len(o.ir_path), reverse=True):
            if path == origin.ir_path or path.startswith((f"{origin.ir_path}.", f"{origin.ir_path}[")):
                rest = path[len(origin.ir_path):] if origin.exact else ""
                err.yaml_path = origin.workflow_path + rest
                err.line = origin.line if origin.line is not None else err.line
                # The workflow path names a hashed parameter; the spec path names the component.
                err.message = f"{err.message} (at {path} of the PipelineSpec the workflow holds)"
                err.args = (err.one_line(),)
                break
        return err


@dataclass(frozen=True)
class _Parameter:
    """One of ``spec.arguments.parameters``: its name and the node of its value."""

    name: str
    value: Node


@dataclass(frozen=True)
class _Use:
    """How one driver task runs a component: the parameters it passes."""

    component: str  # componentRef.name
    spec: str  # components-<key>
    kind: str | None  # "container", "importer", or None (a DAG, or a loop's driver)
    implementation: str | None  # implementations-<key>
    kubernetes: str | None  # kubernetes-<component>
    where: Node  # the task's `task` argument, for errors


# ---------------------------------------------------------------------------
# The rebuild
# ---------------------------------------------------------------------------


def rebuild_pipeline_spec(node: Node) -> RebuiltSpec:
    """The PipelineSpec (and platform spec) of the workflow at ``node``.

    Hands KFP v1 workflows to :mod:`airflow_kfx.spec.argo_v1`; refuses workflow settings
    the spec cannot express (UnsupportedFeatureError); a malformed workflow raises SpecError.
    """
    _check_kind(node)
    if not is_v2_backend_workflow(node.value):
        # A KFP v1 SDK (or hand-written) workflow: its templates are the pipeline itself.
        from airflow_kfx.spec.argo_v1 import rebuild_v1_pipeline_spec

        v1 = rebuild_v1_pipeline_spec(node)
        v1.spec["schemaVersion"] = SCHEMA_VERSION
        return RebuiltSpec(node.file, node.line, v1.spec, v1.platform, v1.origins, v1.file_outputs,
                           v1.run_deadline_seconds)
    for key, child in node.items():
        if key not in _TOP_LEVEL:
            child.fail(f"unknown top-level field '{key}' in an Argo Workflow; expected {', '.join(sorted(_TOP_LEVEL))}")
    spec = node.required("spec", Mapping)
    _check_spec_fields(spec)
    parameters = _parameters(spec.child("arguments").required("parameters", list))
    templates = list(spec.required("templates", list).elements())
    _check_driver_flags(templates)

    uses, runtime_config = _scan_tasks(templates, parameters)
    origins: list[Origin] = []
    root = _json(parameters[ROOT_PARAMETER].value, f"workflow parameter '{ROOT_PARAMETER}'")
    root.expect(Mapping, "a ComponentSpec")
    origins.append(_origin("root", root))

    components, executors, kubernetes = _rebuild_components(root, uses, parameters, origins)
    _check_kubernetes_parameters(parameters, kubernetes)
    name_node = _pipeline_name(spec.child("templates"), templates)
    document = located(name_node.line)
    document["pipelineInfo"] = located(name_node.line, name=_last_segment(name_node.value))
    origins.append(Origin("pipelineInfo", name_node.path, name_node.line, exact=False))
    document["root"] = root.value
    document["components"] = located(spec.line, {n: c.value for n, c in sorted(components.items())})
    document["deploymentSpec"] = located(spec.line, executors=located(spec.line, executors))
    document["schemaVersion"] = SCHEMA_VERSION
    if runtime_config is not None:
        _apply_runtime_config(runtime_config, root, document)
    if any(arg.value == "--cache_disabled=true" for arg in _driver_args(templates)):
        _disable_caching([root, *components.values()])

    platform = _platform(spec, parameters, kubernetes, executors, origins)
    return RebuiltSpec(node.file, node.line, document, platform, tuple(origins))


def _check_kind(node: Node) -> None:
    kind = node.get("kind")
    if kind == "Workflow":
        return
    if isinstance(kind, str) and kind:
        node.child("kind").unsupported(
            f"Argo {kind}", f"only Argo Workflows compiled by the KFP v2 backend are translated, not an Argo {kind}"
        )
    node.fail("an Argo manifest without 'kind: Workflow'; expected a Workflow compiled by the KFP v2 backend")


def _check_spec_fields(spec: Node) -> None:
    for key, child in spec.items():
        if key in _SPEC_REFUSED:
            child.unsupported(f"Argo workflow spec.{key}", _SPEC_REFUSED[key])
        if key not in _SPEC_FIELDS:
            child.unsupported(
                f"Argo workflow spec.{key}",
                f"'{key}' is not a field the KFP v2 backend compiler writes; it has no place in a "
                "PipelineSpec and airflow-kfx does not translate it",
            )
    pod_metadata = spec.child("podMetadata")
    for key, child in pod_metadata.items():
        if key not in ("annotations", "labels") or dict(child.expect(Mapping)) != _V2_MARKER:
            child.unsupported(
                "Argo workflow spec.podMetadata",
                "pod labels/annotations set on the whole workflow are not translated; set them per "
                "task with kfp-kubernetes (add_pod_label/add_pod_annotation)",
            )
    security = spec.child("securityContext")
    for key, child in security.items():
        if key == "runAsUser":
            continue  # mapped onto every container executor (see _platform)
        if _BASELINE_SECURITY.get(key, object()) != child.value:
            child.unsupported(
                f"Argo workflow spec.securityContext.{key}",
                "only KFP's baseline pod security context (runAsNonRoot, RuntimeDefault seccomp) and "
                "runAsUser are translated; set per-task settings with kfp-kubernetes instead",
            )
    # serviceAccountName is the KFP deployment's runner account (pipeline-runner, or the
    # run's account): not part of the pipeline. Which account pods use is Airflow's config.


def _check_driver_flags(templates: list[Node]) -> None:
    for arg in _driver_args(templates):
        if arg.value in _REFUSED_DRIVER_FLAGS:
            arg.unsupported(
                f"backend option {arg.value}",
                "the KFP API server's default security settings for user containers are not "
                "translated; set them per task with kfp-kubernetes (securityContext) instead",
            )


def _driver_args(templates: list[Node]) -> list[Node]:
    """The container args of every template (the drivers' flags are among them)."""
    return [arg for template in templates for arg in template.child("container").child("args").elements()]


def _parameters(node: Node) -> dict[str, _Parameter]:
    found: dict[str, _Parameter] = {}
    for item in node.elements():
        item.expect(Mapping, "a workflow parameter")
        name = item.required("name", str).value
        if name in found:
            item.child("name").fail(f"workflow parameter '{name}' is defined twice")
        if not name.startswith((COMPONENTS, IMPLEMENTATIONS, KUBERNETES)):
            item.unsupported(
                "Argo workflow parameter",
                f"the workflow parameter '{name}' is not one the KFP v2 backend compiler writes "
                "(components-*, implementations-*, kubernetes-*); pipeline inputs of a v2 workflow "
                "live in the root component",
            )
        found[name] = _Parameter(name, item.required("value", str))
    return found


def _arguments(task: Node) -> dict[str, Node]:
    """A DAG task's ``arguments.parameters`` by name (their ``value`` nodes)."""
    found = {}
    for item in task.child("arguments").child("parameters").elements():
        item.expect(Mapping, "a task argument")
        found[item.required("name", str).value] = item.child("value")
    return found


def _referenced(node: Node, prefix: str, parameters: Mapping[str, _Parameter]) -> str:
    """The workflow parameter named by a ``{{workflow.parameters.<prefix>…}}`` argument."""
    text = node.expect(str, "a string")
    match = _PLACEHOLDER.match(text)
    if not match or not match.group(1).startswith(prefix):
        node.fail(f"expected '{{{{workflow.parameters.{prefix}…}}}}', got {text[:120]!r}")
    name = match.group(1)
    if name not in parameters:
        node.fail(f"refers to workflow parameter '{name}', which spec.arguments.parameters does not define")
    return name


def _scan_tasks(templates: list[Node], parameters: Mapping[str, _Parameter]) -> tuple[dict[str, _Use], Node | None]:
    """Which parameters each component's driver tasks pass, and the root runtime config."""
    uses: dict[str, _Use] = {}
    runtime_config = None
    for template in templates:
        template.expect(Mapping, "a template")
        for task in template.child("dag").child("tasks").elements():
            task.expect(Mapping, "a DAG task")
            args = _arguments(task)
            if args.get("driver-type") is not None and args["driver-type"].value == "ROOT_DAG":
                if _referenced(args["component"], COMPONENTS, parameters) != ROOT_PARAMETER:
                    args["component"].fail(f"the root driver must pass '{ROOT_PARAMETER}'")
                if runtime_config is not None:
                    task.fail("the workflow has two root drivers")
                runtime_config = args.get("runtime-config")
            if "task" in args:
                use = _use(args, task, parameters)
                uses[use.component] = _merge(uses.get(use.component), use)
    return uses, runtime_config


def _use(args: Mapping[str, Node], task: Node, parameters: Mapping[str, _Parameter]) -> _Use:
    where = args["task"]
    task_spec = _json(where, "the task spec ('task' argument)")
    name = task_spec.required("componentRef", Mapping).required("name", str).value
    if "component" not in args:
        task.child("arguments").fail("a driver task passing 'task' must pass 'component' too")
    spec = _referenced(args["component"], COMPONENTS, parameters)
    kind = implementation = kubernetes = None
    for candidate in ("container", "importer"):
        if candidate in args:
            kind, implementation = candidate, _referenced(args[candidate], IMPLEMENTATIONS, parameters)
    config = args.get("kubernetes-config")
    if config is not None and config.value:
        kubernetes = _referenced(config, KUBERNETES, parameters)
        if kubernetes != KUBERNETES + name:
            config.fail(f"component '{name}' is given '{kubernetes}'; KFP names it '{KUBERNETES}{name}'")
    return _Use(name, spec, kind, implementation, kubernetes, where)


def _merge(known: _Use | None, new: _Use) -> _Use:
    """One component's uses must agree (a loop's driver passes no implementation)."""
    if known is None:
        return new
    if known.spec != new.spec:
        new.where.fail(
            f"component '{new.component}' is passed '{new.spec}' here but '{known.spec}' elsewhere"
        )
    if new.kind is None:
        return known
    if known.kind is not None and (known.kind, known.implementation) != (new.kind, new.implementation):
        new.where.fail(
            f"component '{new.component}' is run with '{new.implementation}' here but "
            f"'{known.implementation}' elsewhere"
        )
    return _Use(new.component, new.spec, new.kind, new.implementation,
                new.kubernetes or known.kubernetes, known.where)


def _rebuild_components(
    root: Node,
    uses: Mapping[str, _Use],
    parameters: Mapping[str, _Parameter],
    origins: list[Origin],
) -> tuple[dict[str, Node], dict[str, LineDict], dict[str, str]]:
    """Components reachable from the root (name → spec), executors (label → spec) and
    the kubernetes parameter of each executor label that has one."""
    components: dict[str, Node] = {}
    executors: dict[str, LineDict] = {}
    kubernetes: dict[str, str] = {}
    owners: dict[str, tuple[str, str, str | None]] = {}  # label → what it runs
    pending = [root]
    while pending:
        for _, task in pending.pop().child("dag").child("tasks").items():
            ref = task.required("componentRef", Mapping).required("name", str)
            name = ref.value
            if name in components:
                continue
            if name not in uses:
                ref.fail(
                    f"no driver task of the workflow runs component '{name}', so its spec and "
                    "executor cannot be found"
                )
            use = uses[name]
            component = _json(parameters[use.spec].value, f"workflow parameter '{use.spec}'")
            component.expect(Mapping, "a ComponentSpec")
            components[name] = component
            origins.append(_origin(join_path("components", name), component))
            if component.has("dag"):
                if use.kind is not None:
                    use.where.fail(f"component '{name}' is a DAG but its task passes an executor '{use.implementation}'")
                pending.append(component)
                continue
            label = component.optional("executorLabel", str)
            if not label:
                continue  # parse_pipeline_spec names what is missing
            if use.kind is None or use.implementation is None:
                component.fail(
                    f"component '{name}' runs executor '{label}', but no task passes its container or importer"
                )
            # An importer's driver passes no Kubernetes config; KFP still stores one under
            # the component's name.
            config = use.kubernetes or (KUBERNETES + name if KUBERNETES + name in parameters else None)
            what = (use.kind, use.implementation, _text(parameters, config))
            label = _label(label, name, what, owners)
            component.value["executorLabel"] = label
            if label in executors:
                continue
            body = _json(parameters[use.implementation].value, f"workflow parameter '{use.implementation}'")
            body.expect(Mapping, f"a {use.kind} spec")
            executors[label] = located(body.line, {use.kind: body.value})
            executor_path = join_path("deploymentSpec", "executors", label)
            origins.append(Origin(executor_path, body.path, body.line))
            origins.append(Origin(join_path(executor_path, use.kind), body.path, body.line))
            if config is not None:
                kubernetes[label] = config
    return components, executors, kubernetes


def _text(parameters: Mapping[str, _Parameter], name: str | None) -> str | None:
    return None if name is None else parameters[name].value.value


def _label(label: str, component: str, what: tuple[Any, ...], owners: dict[str, tuple[Any, ...]]) -> str:
    """The executor label for ``component``: the one its spec names, unless another
    component already uses that label for a different implementation or Kubernetes
    config (their specs came from one shared ``components-<hash>`` parameter)."""
    candidate = label
    base = f"exec-{component.removeprefix('comp-')}"
    count = 1
    while candidate in owners and owners[candidate] != what:
        candidate = base if count == 1 else f"{base}-{count}"
        count += 1
    owners[candidate] = what
    return candidate


def _check_kubernetes_parameters(parameters: Mapping[str, _Parameter], used: Mapping[str, str]) -> None:
    """Every ``kubernetes-<component>`` parameter must reach an executor: one that does not
    would be a setting silently dropped."""
    for name, parameter in parameters.items():
        if name.startswith(KUBERNETES) and name not in used.values():
            parameter.value.fail(
                f"workflow parameter '{name}' is the Kubernetes config of component "
                f"'{name.removeprefix(KUBERNETES)}', which runs no executor in this workflow"
            )


def _pipeline_name(templates_node: Node, templates: list[Node]) -> Node:
    """The ``--pipeline_name`` every driver template passes (``pipelineInfo.name``)."""
    found: list[Node] = []
    for template in templates:
        args = list(template.child("container").child("args").elements())
        for flag, value in zip(args, args[1:]):
            if flag.value == "--pipeline_name":
                found.append(value)
    if not found:
        templates_node.fail("no KFP driver template passes --pipeline_name; is this a KFP v2 workflow?")
    for node in found:
        text = node.expect(str, "the pipeline name")
        if not text:
            node.fail("the pipeline name (--pipeline_name) is empty")
        if text != found[0].value:
            node.fail(f"the driver templates disagree on the pipeline name: {found[0].value!r} and {text!r}")
    return found[0]


def _last_segment(name: str) -> str:
    """The API server may name a pipeline ``[namespace/<ns>/]pipeline/<name>``; KFP itself
    names the workflow after the last segment (retrieveLastValidString), as do we."""
    return name.rsplit("/", 1)[-1]


def _apply_runtime_config(node: Node, root: Node, document: LineDict) -> None:
    """The root driver's RuntimeConfig: parameter values become the root inputs' defaults
    (the compiler filled in the defaults; any other value is what this workflow runs
    with), ``gcsOutputDirectory`` the pipeline root."""
    if not node.value:
        return
    config = _json(node, "the root runtime config ('runtime-config' argument)")
    config.expect(Mapping, "a RuntimeConfig")
    for key, child in config.items():
        if key not in ("parameterValues", "gcsOutputDirectory"):
            child.unsupported(
                f"runtime-config {key}",
                f"the run's runtime config sets '{key}', which a PipelineSpec cannot carry",
            )
    declared = root.child("inputDefinitions").child("parameters")
    for name, value in config.child("parameterValues").items():
        spec = declared.child(name)
        if not isinstance(spec.value, Mapping):
            value.fail(f"the runtime config sets '{name}', which is not an input of the pipeline")
        if value.value is None and "defaultValue" not in spec.value:
            continue  # KFP's filler for an optional input without a default
        if "defaultValue" not in spec.value or spec.value["defaultValue"] != value.value:
            spec.value["defaultValue"] = value.value
    directory = config.optional("gcsOutputDirectory", str)
    if directory:
        document["defaultPipelineRoot"] = directory


def _disable_caching(components: list[Node]) -> None:
    """``--cache_disabled=true``: the API server turned caching off for every task."""
    for component in components:
        for _, task in component.child("dag").child("tasks").items():
            if isinstance(task.value, Mapping):
                task.value["cachingOptions"] = located(task.line, enableCache=False)


def _platform(
    spec: Node,
    parameters: Mapping[str, _Parameter],
    kubernetes: Mapping[str, str],
    executors: Mapping[str, LineDict],
    origins: list[Origin],
) -> LineDict | None:
    """``platforms.kubernetes``: the executors' configs, the workspace, the run-as user."""
    configs: dict[str, Any] = {}
    for label, name in sorted(kubernetes.items()):
        config = _json(parameters[name].value, f"workflow parameter '{name}'")
        config.expect(Mapping, "a KubernetesExecutorConfig")
        configs[label] = config.value
        origins.append(_origin(join_path("platforms", "kubernetes", "deploymentSpec", "executors", label), config))
    run_as = spec.child("securityContext").child("runAsUser")
    if run_as.value is not None:
        # Argo sets it on every pod of the workflow; a container's own setting wins, as here.
        user = run_as.expect(int, "a user id")
        for label, executor in executors.items():
            container = executor.get("container")
            if not isinstance(container, Mapping) or str(container.get("image", "")).startswith("argostub/"):
                continue
            config = configs.setdefault(label, located(run_as.line))
            if not isinstance(config, Mapping):
                continue  # parse_kubernetes_platform reports it
            context = config.setdefault("securityContext", located(run_as.line))
            if isinstance(context, dict):
                context.setdefault("runAsUser", user)
    pipeline_config = _workspace(spec.child("volumeClaimTemplates"), origins)
    if not configs and pipeline_config is None:
        return None
    platform = located(spec.line, deploymentSpec=located(spec.line, executors=located(spec.line, configs)))
    if pipeline_config is not None:
        platform["pipelineConfig"] = pipeline_config
    return platform


def _workspace(node: Node, origins: list[Origin]) -> LineDict | None:
    """The ``kfp-workspace`` volume claim template → ``pipelineConfig.workspace``."""
    workspace = None
    for claim in node.elements():
        claim.expect(Mapping, "a volume claim template")
        metadata = claim.required("metadata", Mapping)
        if metadata.get("name") != _WORKSPACE_PVC or set(metadata.value) != {"name"} or workspace is not None:
            claim.unsupported(
                "Argo volumeClaimTemplates",
                f"only KFP's workspace volume ('{_WORKSPACE_PVC}') is translated, not other workflow volumes",
            )
        pvc = claim.required("spec", Mapping)
        resources = pvc.required("resources", Mapping)
        requests = resources.required("requests", Mapping)
        if set(resources.value) != {"requests"} or set(requests.value) != {"storage"}:
            resources.unsupported(
                "workspace PVC resources",
                "the workspace volume can only request storage (its size); other resources are not translated",
            )
        size = requests.child("storage").expect((str, int, float), "a storage size")
        patch = located(pvc.line, {k: v for k, v in pvc.value.items() if k != "resources"})
        workspace = located(claim.line, size=str(size))
        if patch:
            workspace["kubernetes"] = located(pvc.line, pvcSpecPatch=patch)
        origins.append(Origin("platforms.kubernetes.pipelineConfig", claim.path, claim.line, exact=False))
    return None if workspace is None else located(node.line, workspace=workspace)


# ---------------------------------------------------------------------------
# JSON strings
# ---------------------------------------------------------------------------


def _origin(ir_path: str, node: Node) -> Origin:
    return Origin(ir_path, node.path, node.line)


def _json(node: Node, what: str) -> Node:
    """The JSON in a string value, as a Node whose path continues the value's path.

    The compiler writes each spec on one line, so every part of it gets the value's line.
    """
    text = node.expect(str, f"{what} as a JSON string")

    def mapping(pairs: list[tuple[str, Any]]) -> LineDict:
        return located(node.line, dict(pairs))

    try:
        value = json.loads(text, object_pairs_hook=mapping, parse_int=_bounded_int, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deep for json
        node.fail(f"{what} is not valid JSON ({str(err).splitlines()[0][:200]}); the KFP compiler writes JSON here")
    _check_values(node, value, what)
    return Node(value, node.path, node.file, node.line)


def _bounded_int(text: str) -> int:
    value = int(text)
    if len(text) > 308:  # beyond a double: KFP's values are protobuf doubles or int64s
        raise ValueError(f"the number {text[:20]}… is too large")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON (protobuf JSON writes it as a string)")


def _check_values(node: Node, value: Any, what: str) -> None:
    """JSON text may nest deeper than any parser here should walk, or escape half a UTF-16
    pair ("\\ud800"), which is not a character."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            node.fail(f"{what} nests values more than {MAX_DEPTH} levels deep; a KFP spec nests far less")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in (*item.keys(), *item.values()))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                node.fail(f"{what} holds an escape of half a UTF-16 pair, which is not a character")
