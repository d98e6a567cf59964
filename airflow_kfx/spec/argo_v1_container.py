"""KFP v1 Argo workflows: one container template (a ``ContainerOp``) → a PipelineSpec
component and its executor. Used by :mod:`airflow_kfx.spec.argo_v1`.

* ``{{inputs.parameters.X}}`` → ``{{$.inputs.parameters['X']}}``; ``{{workflow.uid}}``,
  ``{{workflow.name}}``, ``{{pod.name}}`` → the run's id, the run's name, the task
  execution's id (``{{$.pipeline_job_uuid}}`` …, see ``v1_component.ARGO_RUN_VARIABLES``).
* ``outputs.parameters[].valueFrom.path`` → an output parameter whose fixed path, wherever
  the command line names it, becomes the output's file
  ``{{$.outputs.parameters['P'].output_file}}``; ``outputs.artifacts[]`` (other than the
  artifact copy the compiler writes of each output parameter) → an output artifact
  (``system.Artifact``) whose path becomes ``{{$.outputs.artifacts['A'].path}}``;
  ``inputs.artifacts[]`` with a ``path`` → an input artifact read at
  ``{{$.inputs.artifacts['A'].path}}``. A fixed path the command line never names (a
  program computes it) is refused: the value could not be placed there or found.
* ``retryStrategy`` → the retry policy of every task that runs the template;
  ``container.resources`` (cpu, memory, one GPU kind) and plain ``env`` → the executor's;
  the ``pipelines.kubeflow.org/task_display_name`` annotation (``set_display_name``) → the
  display name (``taskInfo.name``) of the tasks; the compiler's other
  ``pipelines.kubeflow.org/*`` pod labels and annotations are KFP bookkeeping, ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.spec import argo_v1_scheduling, argo_v1_sidecars
from airflow_kfx.spec.rebuilt import Origin, located
from airflow_kfx.spec.source import LineDict, Node, join_path
from airflow_kfx.spec.v1_component import ARGO_RUN_VARIABLES

_KFP_PREFIX = "pipelines.kubeflow.org/"
_KFP_STORE_SECRET = "mlpipeline-minio-artifact"
_DISPLAY_NAME = _KFP_PREFIX + "task_display_name"
TEMPLATE_KINDS = {
    "dag": ("nested Argo DAG template", "a DAG template cannot be used here"),
    "steps": ("Argo steps template", "Argo steps templates (recursive @graph_component) are not translated"),
    "resource": ("Argo resource template", "ResourceOp/VolumeOp/VolumeSnapshotOp create Kubernetes "
                 "resources; only a VolumeOp's claim is translated, and not here"),
    "script": ("Argo script template", "script templates are not written by the KFP v1 SDK and are not translated"),
    "suspend": ("Argo suspend template", "suspend templates have no PipelineSpec equivalent"),
}
_TEMPLATE_FIELDS = {"name", "container", "inputs", "outputs", "metadata", "retryStrategy", "nodeSelector",
                    "activeDeadlineSeconds", "volumes", "tolerations", "affinity", "initContainers", "sidecars"}
_CONTAINER_FIELDS = {"image", "command", "args", "env", "resources", "volumeMounts"}
# Argo text variables the v1 compiler writes; anything else inside {{ }} is refused.
VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
INPUT = re.compile(r"^inputs\.parameters\.([^.\s]+)$")
INPUT_ARTIFACT = re.compile(r"^inputs\.artifacts\.([^.\s]+)$")
WORKFLOW = re.compile(r"^workflow\.parameters\.([^.\s]+)$")
TASK_OUTPUT = re.compile(r"^tasks\.([^.\s]+)\.outputs\.parameters\.([^.\s]+)$")
TASK_ARTIFACT = re.compile(r"^tasks\.([^.\s]+)\.outputs\.artifacts\.([^.\s]+)$")
ITEM = re.compile(r"^item(?:\.([^.\s]+))?$")
# Extended resources a PipelineSpec executor can carry as its one accelerator: GPUs
# (ContainerOp.set_gpu_limit) and TPUs (add_resource_limit('cloud-tpus.google.com/v3', n)).
_ACCELERATORS = ("nvidia.com/gpu", "amd.com/gpu")
_ACCELERATOR_PREFIXES = ("cloud-tpus.google.com/",)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600}
ARTIFACT_TYPE = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}


@dataclass(frozen=True)
class Template:
    """A template rebuilt as a component: what tasks may pass to it and read from it."""

    component: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_artifacts: tuple[str, ...] = ()
    output_artifacts: tuple[str, ...] = ()
    retry: LineDict | None = None  # the retryPolicy of the tasks that run it
    is_dag: bool = False
    display_name: str | None = None  # ContainerOp.set_display_name: the taskInfo.name of its tasks
    # Where the component's names differ from the template's (a VolumeOp's CreatePVC):
    # template input → component input, template output → component output.
    input_keys: Mapping[str, str] = field(default_factory=dict)
    output_keys: Mapping[str, str] = field(default_factory=dict)
    refused_outputs: Mapping[str, str] = field(default_factory=dict)  # output → why it cannot be read
    constants: Mapping[str, Any] = field(default_factory=dict)  # component input → the value every task passes
    # template input naming a PVC → the executor's pvcMount entries it names (set per task)
    claims: Mapping[str, tuple[LineDict, ...]] = field(default_factory=dict)


def refuse_template_kind(template: Node, allowed: str) -> None:
    for key, (feature, hint) in TEMPLATE_KINDS.items():
        if key != allowed and template.has(key):
            template.child(key).unsupported(feature, hint)


def container_template(
    template: Node, components: dict[str, Any], executors: dict[str, Any], origins: list[Origin],
    platform: dict[str, Any] | None = None, file_outputs: dict[str, dict[str, str]] | None = None,
) -> Template:
    """One ContainerOp template → ``comp-<name>`` and ``exec-<name>``; its pod settings
    (``add_node_selector_constraint``, ``set_timeout``) → ``platform[exec-<name>]``, the
    kfp-kubernetes executor config they are in a v2 pipeline; outputs read from a fixed
    path that the command line never names (``ContainerOp(file_outputs=...)`` of a program
    that picks the path itself) → ``file_outputs[exec-<name>]``, the model's v1
    ``fileOutputs`` (collected by the local runtime, refused by name on the kubernetes one)."""
    refuse_template_kind(template, "container")
    if not template.has("container"):
        template.fail("a template needs 'container' or 'dag'")
    for key, child in template.items():
        if key == "initContainers" and "kfp-launcher" in str(child.value):
            child.unsupported("KFP v1 v2-compatible mode", "the workflow was compiled with "
                              "mode=V2_COMPATIBLE: KFP's launcher wraps every step (its init container copies "
                              "it in); recompile the pipeline with the KFP v2 SDK")
        if key not in _TEMPLATE_FIELDS:
            child.unsupported(f"Argo template {key}", f"the template setting '{key}' is not translated "
                              "for v1 workflows")
    display_name, pod_metadata = _check_metadata(template.child("metadata"))
    name = template.value["name"]
    inputs, input_artifacts = template_inputs(template.child("inputs"))
    outputs, output_artifacts = _template_outputs(template.child("outputs"))
    container = template.child("container")
    for key, child in container.items():
        if key not in _CONTAINER_FIELDS:
            child.unsupported(f"container {key}", f"the container setting '{key}' is not translated for v1 workflows")
    command = [_text(item, inputs) for item in container.child("command").elements()]
    args = [_text(item, inputs) for item in container.child("args").elements()]
    paths = [(f"{{{{$.outputs.parameters['{o}'].output_file}}}}", p, "output", o) for o, p in outputs.items()]
    paths += [(f"{{{{$.outputs.artifacts['{o}'].path}}}}", p, "output", o) for o, p in output_artifacts.items()]
    paths += [(f"{{{{$.inputs.artifacts['{i}'].path}}}}", p, "input", i) for i, p in input_artifacts.items()]
    label, component = f"exec-{name}", f"comp-{name}"
    unnamed: dict[str, str] = {}
    for _, path, kind, what in paths:
        if not any(_mentions(text, path) for text in (*command, *args)):
            if kind == "output" and file_outputs is not None:
                unnamed[what] = path
                continue
            template.child(f"{kind}s").unsupported(
                f"KFP v1 {kind} at a fixed path",
                f"{kind} '{what}' is {'read from' if kind == 'output' else 'placed at'} {path}, which the command "
                f"line never names (the program computes it), so the {kind}'s file cannot be given to it",
            )
    body = located(container.line, image=container.required("image", str).value)
    body["command"] = [_placed(text, paths) for text in command]
    body["args"] = [_placed(text, paths) for text in args]
    env, sourced_env = _env(container.child("env"))
    if env:
        body["env"] = env
    resources = _resources(container.child("resources"))
    if resources:
        body["resources"] = resources
    executors[label] = located(container.line, container=body)
    if unnamed and file_outputs is not None:
        file_outputs[label] = unnamed
    config = _pod_settings(template, pod_metadata, sourced_env)
    claims: dict[str, list[LineDict]] = {}
    mounts = volume_mounts(template.child("volumes"), container.child("volumeMounts"), inputs, claims)
    if mounts:
        config = config or located(template.line)
        config.update(mounts)
    if config and platform is not None:
        platform[label] = config
        origins.append(Origin(join_path("platforms", "kubernetes", "deploymentSpec", "executors", label),
                              template.path, template.line, exact=False))
    spec = located(template.line, executorLabel=label)
    if inputs or input_artifacts:
        spec["inputDefinitions"] = interface(template.line, inputs, input_artifacts)
    if outputs or output_artifacts:
        spec["outputDefinitions"] = interface(template.line, outputs, output_artifacts)
    components[component] = spec
    origins.append(Origin(join_path("components", component), template.path, template.line, exact=False))
    origins.append(Origin(join_path("deploymentSpec", "executors", label), container.path, container.line, exact=False))
    return Template(component, tuple(inputs), tuple(outputs), tuple(input_artifacts), tuple(output_artifacts),
                    retry_policy(template.child("retryStrategy")), display_name=display_name,
                    claims={name: tuple(entries) for name, entries in claims.items()})


def interface(line: int | None, parameters: Any, artifacts: Any = ()) -> LineDict:
    """Input or output definitions: STRING parameters (v1 values are text) and artifacts."""
    result = located(line)
    if parameters:
        result["parameters"] = located(line, {p: located(line, parameterType="STRING") for p in parameters})
    if artifacts:
        result["artifacts"] = located(line, {a: located(line, artifactType=dict(ARTIFACT_TYPE)) for a in artifacts})
    return result


def _check_metadata(node: Node) -> tuple[str | None, dict[str, dict[str, str]]]:
    """The task's display name (``ContainerOp.set_display_name``: the
    ``pipelines.kubeflow.org/task_display_name`` annotation) or None, and the user's own
    pod labels and annotations (``add_pod_label``/``add_pod_annotation``: kfp-kubernetes'
    ``podMetadata``).

    The v1 compiler's other pod labels/annotations (``pipelines.kubeflow.org/*``) are KFP
    bookkeeping with no run-time meaning here: the SDK version and type, the component
    spec and reference and the arguments it was called with (all already in the container
    the template runs), and caching hints (``enable_caching``, ``max_cache_staleness``)
    for KFP's cache webhook: airflow-kfx never caches a v1 task (the rebuilt spec sets no
    ``cachingOptions``), so every one runs, as ``max_cache_staleness: P0D`` asks."""
    display_name = None
    own: dict[str, dict[str, str]] = {}
    for key, child in node.items():
        if key not in ("annotations", "labels"):
            child.unsupported(f"Argo template metadata.{key}", "only pod labels and annotations are known here")
        for name, value in child.items():
            if not name.startswith(_KFP_PREFIX):
                own.setdefault(key, {})[name] = str(value.expect((str, int, float, bool), f"a pod {key[:-1]} value"))
            if key == "annotations" and name == _DISPLAY_NAME:
                display_name = value.expect(str, "a task display name") or None
    return display_name, own


def template_inputs(node: Node) -> tuple[list[str], dict[str, str]]:
    """Input parameter names, and input artifact → the fixed path Argo places it at."""
    only_parameters_and_artifacts(node, "Argo template inputs", "inputs")
    names = []
    for item in node.child("parameters").elements():
        item.expect(Mapping, "an input parameter")
        extra = set(item.value) - {"name"}
        if extra:
            item.unsupported(f"Argo template input {sorted(extra)[0]}", "an input's default or fixed value "
                             "is not written by the KFP v1 SDK and is not translated")
        names.append(item.required("name", str).value)
    artifacts: dict[str, str] = {}
    for item in node.child("artifacts").elements():
        item.expect(Mapping, "an input artifact")
        name = item.required("name", str).value
        if item.has("raw"):
            item.child("raw").unsupported("Argo raw input artifact", "an input artifact given as a constant "
                                          "(raw.data) has no PipelineSpec equivalent (artifacts are files that "
                                          "tasks produce); pass the value as a parameter")
        extra = set(item.value) - {"name", "path", "optional"}
        if extra:
            item.child(sorted(extra)[0]).unsupported(
                f"Argo input artifact {sorted(extra)[0]}", "only an input artifact's name and path are translated")
        artifacts[name] = _absolute(item.required("path", str), name)
        if name in names:
            item.child("name").fail(f"'{name}' is both an input parameter and an input artifact")
    return names, artifacts


def _absolute(path: Node, name: str) -> str:
    if not path.value.startswith("/"):
        path.fail(f"the path of '{name}' must be absolute, not {path.value!r}")
    return path.value


def _template_outputs(node: Node) -> tuple[dict[str, str], dict[str, str]]:
    """Output parameter → the fixed path Argo reads it from, and output artifact → its
    path. The v1 compiler also writes each output parameter as an artifact of the same
    name and path (for the KFP UI): that copy is the parameter, not another output."""
    found: dict[str, str] = {}
    only_parameters_and_artifacts(node, "Argo template outputs", "outputs")
    for item in node.child("parameters").elements():
        item.expect(Mapping, "an output parameter")
        name = item.required("name", str).value
        source = item.required("valueFrom", Mapping)
        if set(source.value) != {"path"} or set(item.value) - {"name", "valueFrom"}:
            source.unsupported("Argo output parameter valueFrom", "only output parameters read from a file path "
                               "(valueFrom.path) are translated")
        found[name] = _absolute(source.required("path", str), name)
    artifacts: dict[str, str] = {}
    for item in node.child("artifacts").elements():
        item.expect(Mapping, "an output artifact")
        name = item.required("name", str).value
        extra = set(item.value) - {"name", "path", "optional"} - ({"s3"} if _kfp_store(item.child("s3")) else set())
        if extra:
            item.child(sorted(extra)[0]).unsupported(
                f"Argo output artifact {sorted(extra)[0]}", "only an output artifact's name and path are "
                "translated (where Argo stores it is the deployment's artifact repository)")
        path = _absolute(item.required("path", str), name)
        if name in found:
            if found[name] != path:
                item.child("path").fail(f"output '{name}' is a parameter read from {found[name]} and an artifact "
                                        f"read from {path}")
            continue
        artifacts[name] = path
    return found, artifacts


def _kfp_store(node: Node) -> bool:
    """The S3 location older v1 compilers wrote for every output artifact: KFP's own
    MinIO store (secret ``mlpipeline-minio-artifact``), i.e. where KFP keeps artifacts,
    which is the pipeline root here."""
    value = node.value
    return isinstance(value, Mapping) and all(
        isinstance(value.get(key), Mapping) and value[key].get("name") == _KFP_STORE_SECRET
        for key in ("accessKeySecret", "secretKeySecret"))


def _text(node: Node, inputs: list[str]) -> str:
    """A command-line item with ``{{inputs.parameters.X}}`` as a v2 placeholder."""
    text = node.expect((str, int, float), "a command-line string")
    text = text if isinstance(text, str) else json.dumps(text)
    if "{{$" in text or text.lstrip().startswith('{"'):
        node.unsupported("KFP v2 placeholder text in a v1 workflow",
                         "the text would be read as a KFP v2 placeholder, which Argo passes verbatim")

    def replace(match: re.Match[str]) -> str:
        if match.group(1) in ARGO_RUN_VARIABLES:
            return ARGO_RUN_VARIABLES[match.group(1)]
        found = INPUT.match(match.group(1))
        if not found:
            node.unsupported("Argo variable", f"the Argo variable {match.group(0)!r} has no PipelineSpec equivalent")
        if found.group(1) not in inputs:
            node.fail(f"uses input '{found.group(1)}', which the template's inputs.parameters does not declare")
        return f"{{{{$.inputs.parameters['{found.group(1)}']}}}}"

    return VARIABLE.sub(replace, text)


def _mentions(text: str, path: str) -> bool:
    return re.search(_path_pattern(path), text) is not None


def _path_pattern(path: str) -> str:
    # The path as a whole: not the start of a longer path (/tmp/out vs /tmp/output).
    return rf"(?<![\w./-]){re.escape(path)}(?![\w.-]|/\w)"


def _placed(text: str, paths: list[tuple[str, str, str, str]]) -> str:
    """Every mention of a fixed path → that output's file or artifact path: the command
    writes (or reads) the value where KFP v2 keeps it."""
    for placeholder, path, _, _ in paths:
        text = re.sub(_path_pattern(path), lambda _, value=placeholder: value, text)
    return text


def _env(node: Node) -> tuple[list[Any], dict[str, list[Any]]]:
    """Plain variables (the container's ``env``), and those taken from a secret, a config
    map or a pod field (``use_k8s_secret``, ``V1EnvVarSource``) as kfp-kubernetes'
    ``secretAsEnv``/``configMapAsEnv``/``fieldPathAsEnv``."""
    found, sourced = [], {}
    for item in node.elements():
        item.expect(Mapping, "an environment variable")
        name = item.required("name", str).value
        if set(item.value) - {"name", "value", "valueFrom"}:
            item.fail("an environment variable has only name, value and valueFrom")
        if item.has("valueFrom"):
            key, entry = _env_source(item.child("valueFrom"), name)
            sourced.setdefault(key, []).append(entry)
            continue
        value = item.child("value")
        if isinstance(value.value, str) and "{{" in value.value:
            value.unsupported("Argo variable in env", "environment values with Argo variables are not translated")
        found.append(located(item.line, name=name, value=value.value))
    return found, sourced


def _env_source(node: Node, env_var: str) -> tuple[str, LineDict]:
    node.expect(Mapping, "an env valueFrom")
    if set(node.value) == {"secretKeyRef"} or set(node.value) == {"configMapKeyRef"}:
        kind = "secret" if "secretKeyRef" in node.value else "configMap"
        ref = node.child(f"{kind}KeyRef")
        entry = located(ref.line, **{f"{kind}Name": ref.required("name", str).value, "keyToEnv": [
            located(ref.line, **{f"{kind}Key": ref.required("key", str).value, "envVar": env_var})]})
        if ref.get("optional") is not None:
            entry["optional"] = bool(ref.child("optional").expect(bool, "optional (true/false)"))
        return f"{kind}AsEnv", entry
    if set(node.value) == {"fieldRef"}:
        field_ref = node.child("fieldRef")
        return "fieldPathAsEnv", located(field_ref.line, name=env_var,
                                         fieldPath=field_ref.required("fieldPath", str).value)
    node.unsupported("container env valueFrom", f"env '{env_var}' from {', '.join(sorted(map(str, node.value)))} "
                     "is not translated (secretKeyRef, configMapKeyRef and fieldRef are)")


def _is_accelerator(resource: str) -> bool:
    return resource in _ACCELERATORS or resource.startswith(_ACCELERATOR_PREFIXES)


def _resources(node: Node) -> LineDict | None:
    """CPU/memory limits and requests, and one GPU or TPU kind (``set_gpu_limit``,
    ``add_resource_limit('cloud-tpus.google.com/v3', n)``) as the executor's accelerator;
    other resources (hugepages…) and two accelerator kinds in one container are refused."""
    if node.value is None:
        return None
    result = located(node.line)
    keys = {("limits", "cpu"): "resourceCpuLimit", ("limits", "memory"): "resourceMemoryLimit",
            ("requests", "cpu"): "resourceCpuRequest", ("requests", "memory"): "resourceMemoryRequest"}
    accelerators: dict[tuple[str, str], str] = {}
    for group, child in node.items():
        if group not in ("limits", "requests"):
            child.unsupported(f"container resources.{group}", "only resource limits and requests are translated")
        for resource, value in child.items():
            if (group, resource) not in keys and not _is_accelerator(resource):
                value.unsupported(f"container resource {resource}", "only cpu, memory, GPUs "
                                  f"({', '.join(_ACCELERATORS)}) and TPUs (cloud-tpus.google.com/*) are "
                                  "translated for v1 workflows")
            text = value.expect((str, int, float), "a resource quantity")
            if isinstance(text, str) and "{{" in text:
                value.unsupported("Argo variable in resources", "resources set from parameters are not translated")
            if _is_accelerator(resource):
                accelerators[(group, resource)] = str(text)
            else:
                result[keys[(group, resource)]] = str(text)
    kinds = {resource for _, resource in accelerators}
    if len(kinds) > 1:
        node.unsupported("container resource with two accelerator kinds",
                         f"a PipelineSpec executor has one accelerator; this container asks for {sorted(kinds)}")
    if kinds:
        (kind,) = kinds
        count = accelerators.get(("limits", kind), accelerators.get(("requests", kind)))
        if ("requests", kind) in accelerators and accelerators[("requests", kind)] != count:
            node.fail(f"the {kind} request and limit differ; Kubernetes requires them equal")
        result["accelerator"] = located(node.line, resourceType=kind, resourceCount=count)
    return result or None


def retry_policy(node: Node) -> LineDict | None:
    """``retryStrategy`` (``ContainerOp.set_retry``) → a v2 ``retryPolicy``: ``limit`` →
    ``maxRetryCount``, ``backoff`` → the backoff durations and factor. Argo retries by
    default on a failed container (``OnFailure``), as Airflow does; ``Always`` also retries
    Argo's own errors, which Airflow's retries include. Other policies are refused."""
    if node.value is None:
        return None
    node.expect(Mapping, "a retry strategy")
    for key, child in node.items():
        if key not in ("limit", "retryPolicy", "backoff"):
            child.unsupported(f"Argo retryStrategy.{key}", f"the retry setting '{key}' has no PipelineSpec equivalent")
    policy = node.get("retryPolicy")
    if policy not in (None, "OnFailure", "Always"):
        node.child("retryPolicy").unsupported(
            f"Argo retryPolicy {policy}", "only retries on failure (OnFailure, Always) are translated")
    limit = node.child("limit")
    if limit.value is None:
        node.unsupported("Argo retryStrategy without limit", "unlimited retries have no PipelineSpec equivalent")
    count = limit.expect((int, str), "a number of retries")
    if isinstance(count, str):
        if not count.strip().isdigit():
            limit.unsupported("Argo variable in retryStrategy", "a retry limit must be a number")
        count = int(count)
    result = located(node.line, maxRetryCount=count)
    backoff = node.child("backoff")
    for key, child in backoff.items():
        target = {"duration": "backoffDuration", "maxDuration": "backoffMaxDuration", "factor": "backoffFactor"}
        if key not in target:
            child.unsupported(f"Argo retryStrategy backoff.{key}", f"the backoff setting '{key}' is not translated")
        if key == "factor":
            factor = child.expect((int, float, str), "a backoff factor")
            try:
                result[target[key]] = float(factor)
            except ValueError:
                child.fail(f"the backoff factor must be a number, not {factor!r}")
        else:
            result[target[key]] = _duration(child)
    return result


def _duration(node: Node) -> str:
    """An Argo duration (``"30"``, ``"30s"``, ``"2m"``, ``"1h"``) as protobuf JSON seconds."""
    value = node.expect((int, float, str), "a duration")
    match = _DURATION.match(str(value).strip())
    if match is None:
        node.unsupported("Argo duration", f"the duration {value!r} is not a number of seconds, minutes or hours")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def only_parameters_and_artifacts(node: Node, where: str, kind: str) -> None:
    """Refuse any key of an Argo ``inputs``/``outputs``/``arguments`` block but the two
    translated (``parameters``, ``artifacts``)."""
    for key, child in node.items():
        if key not in ("parameters", "artifacts"):
            child.unsupported(f"{where}.{key}", f"'{key}' {kind} are not translated")


def _pod_settings(template: Node, pod_metadata: dict[str, dict[str, str]],
                  sourced_env: dict[str, list[Any]]) -> LineDict | None:
    """``nodeSelector`` → ``nodeSelector.labels``; ``activeDeadlineSeconds`` (a task's
    timeout) → ``activeDeadlineSeconds``; ``tolerations`` and ``affinity`` → their
    kfp-kubernetes entries (:mod:`.argo_v1_scheduling`); init containers and sidecars →
    ``initContainers`` (:mod:`.argo_v1_sidecars`); the user's pod labels/annotations →
    ``podMetadata``; env from secrets, config maps and fields: the pod gets them, as a v2
    task's would."""
    config = located(template.line, **sourced_env)
    if pod_metadata:
        config["podMetadata"] = located(template.line, **pod_metadata)
    if template.has("nodeSelector"):
        selector = template.child("nodeSelector")
        selector.expect(Mapping, "a node selector (label → value)")
        labels = {}
        for key, value in selector.items():
            value.expect(str, "a node label value")
            labels[str(key)] = value.value
        config["nodeSelector"] = located(selector.line, labels=labels)
    if template.has("activeDeadlineSeconds"):
        config["activeDeadlineSeconds"] = deadline_seconds(template.child("activeDeadlineSeconds"))
    if template.get("tolerations"):
        config["tolerations"] = argo_v1_scheduling.tolerations(template.child("tolerations"))
    if template.get("affinity"):
        config.update(argo_v1_scheduling.affinity(template.child("affinity")))
    if template.get("initContainers") or template.get("sidecars"):
        config["initContainers"] = argo_v1_sidecars.extra_containers(template)
    return config or None


def deadline_seconds(node: Node) -> int:
    """An ``activeDeadlineSeconds`` (a template's or the workflow's): whole seconds > 0."""
    seconds = node.value
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        node.fail("activeDeadlineSeconds must be a positive whole number of seconds")
    return seconds


def volume_mounts(volumes: Node, mounts: Node, inputs: list[str] | None = None,
                  claims: dict[str, list[LineDict]] | None = None) -> dict[str, list[LineDict]]:
    """A template's ``volumes`` mounted by its container's ``volumeMounts``
    (``ContainerOp.add_pvolumes``, ``add_volume`` + ``add_volume_mount``, ``use_gcp_secret``'s
    secret volume) as the kfp-kubernetes settings a v2 task would carry: a secret →
    ``secretAsVolume``, a config map → ``configMapAsVolume``, a PVC of a fixed name →
    ``pvcMount``, an emptyDir → ``emptyDirMounts``. Anything these cannot say (a claim
    named by a parameter or a VolumeOp's output, a subPath with variables, a read-only
    PVC, other volume kinds or options) is refused by name. A claim named by one of the
    template's ``inputs`` (``{{inputs.parameters.x}}``, a VolumeOp's claim passed in) is
    recorded in ``claims`` (input → its pvcMount entries): each task fills in its source."""
    declared: dict[str, Node] = {}
    for volume in volumes.elements():
        volume.expect(Mapping, "a pod volume")
        declared[volume.required("name", str).value] = volume
    found: dict[str, list[LineDict]] = {}
    for mount in mounts.elements():
        mount.expect(Mapping, "a volume mount")
        for key, child in mount.items():
            if key not in ("name", "mountPath", "readOnly", "subPath"):
                child.unsupported(f"Argo volumeMount {key}", f"the volume mount setting '{key}' is not translated")
        name = mount.required("name", str).value
        path = mount.required("mountPath", str).value
        if "{{" in path:
            mount.child("mountPath").unsupported("Argo variable in a mount path", "a mount path must be fixed text")
        if name not in declared:
            mount.child("name").fail(f"mounts volume '{name}', which the template's volumes does not define")
        volume = declared[name]
        kinds = [key for key in volume.value if key != "name"]
        if len(kinds) != 1:
            volume.fail(f"volume '{name}' needs exactly one source (secret, configMap, persistentVolumeClaim, emptyDir)")
        kind = kinds[0]
        source = volume.child(kind)
        sub_path = mount.optional("subPath", str, "")
        if sub_path and kind != "persistentVolumeClaim":
            mount.child("subPath").unsupported(f"Argo subPath of a {kind} volume", "only PVC mounts take a subPath")
        if "{{" in sub_path:
            mount.child("subPath").unsupported("Argo variable in a subPath", "a subPath must be fixed text (the v1 "
                                               "SDK's data-passing volumes with per-run subPaths are not translated)")
        claim_input = _claim_input(source, inputs) if kind == "persistentVolumeClaim" else None
        entry = _volume_entry(kind, source, mount, name, path, sub_path, claim_input is not None)
        found.setdefault(entry[0], []).append(entry[1])
        if claim_input is not None and claims is not None:
            claims.setdefault(claim_input, []).append(entry[1])
    return found


_VOLUME_OPTIONS = {"secret": {"secretName", "optional"}, "configMap": {"name", "optional"},
                   "persistentVolumeClaim": {"claimName", "readOnly"}, "emptyDir": {"medium", "sizeLimit"}}


def _claim_input(source: Node, inputs: list[str] | None) -> str | None:
    """The template input a PVC volume's ``claimName`` is, if it is exactly one."""
    claim = source.value.get("claimName") if isinstance(source.value, Mapping) else None
    found = VARIABLE.fullmatch(claim.strip()) if isinstance(claim, str) else None
    taken = INPUT.match(found.group(1)) if found else None
    return taken.group(1) if taken and inputs is not None and taken.group(1) in inputs else None


def _volume_entry(kind: str, source: Node, mount: Node, name: str, path: str, sub_path: str,
                  claim_from_input: bool = False) -> tuple[str, LineDict]:
    if kind not in _VOLUME_OPTIONS:
        source.unsupported(f"Argo volume {kind}", f"a {kind} volume has no kfp-kubernetes equivalent (secret, "
                           "configMap, persistentVolumeClaim and emptyDir volumes are translated)")
    source.expect(Mapping, f"a {kind} volume source")
    for key, child in source.items():
        if key not in _VOLUME_OPTIONS[kind]:
            child.unsupported(f"Argo {kind} volume {key}", f"the {kind} volume setting '{key}' is not translated")
    line = mount.line
    if kind == "persistentVolumeClaim":
        if source.value.get("readOnly") or mount.value.get("readOnly"):
            mount.unsupported("Argo read-only PVC mount", "kfp-kubernetes mounts PVCs read-write only")
        claim = source.required("claimName", str).value
        if claim_from_input:  # each task running the template names the claim (argo_v1_resource.claim_source)
            entry = located(line, mountPath=path)
        elif "{{" in claim:
            source.child("claimName").unsupported("Argo volume claim from a variable", "a PVC must be named by "
                                                  "fixed text or by one of the template's inputs")
        else:
            entry = located(line, constant=claim,
                            pvcNameParameter=located(line, runtimeValue=located(line, constant=claim)), mountPath=path)
        if sub_path:
            entry["subPath"] = sub_path
        return "pvcMount", entry
    if kind == "emptyDir":
        entry = located(line, volumeName=name, mountPath=path)
        for key in ("medium", "sizeLimit"):
            if source.value.get(key):
                entry[key] = str(source.value[key])
        return "emptyDirMounts", entry
    key = "secretName" if kind == "secret" else "name"
    target = "secret" if kind == "secret" else "configMap"
    named = source.required(key, str).value
    entry = located(line, **{f"{target}Name": named, "mountPath": path})
    if source.value.get("optional") is not None:
        entry["optional"] = bool(source.child("optional").expect(bool, "true or false"))
    return f"{target}AsVolume", entry
