"""KFP v1 Argo Workflows (written by the KFP v1 SDK compiler) → a KFP v2 PipelineSpec.

The KFP v1 compiler (kubeflow/pipelines ``sdk/python/kfp/compiler/compiler.py`` and
``_op_to_template.py``, SDK 1.8) writes one Argo template per ``ContainerOp`` and one DAG
template for the pipeline function (the entrypoint). This module reads the subset whose
meaning a v2 PipelineSpec can carry and rebuilds that spec, so that the usual parser
(:func:`airflow_kfx.spec.ir.parse_pipeline_spec`) makes the model from it:

* ``spec.arguments.parameters`` → root ``inputDefinitions`` (types and the pipeline's
  display name from the ``pipelines.kubeflow.org/pipeline_spec`` annotation; the run's
  argument value is the default, as it is what the workflow runs with).
* a container template → a component and its executor: ``{{inputs.parameters.X}}`` →
  ``{{$.inputs.parameters['X']}}``; ``outputs.parameters[].valueFrom.path`` → an output
  parameter whose fixed path, wherever the command line names it, becomes the output's
  file ``{{$.outputs.parameters['P'].output_file}}``. Argo reads that file verbatim after
  the command, as KFP v2 reads ``output_file``; a path the command line never names (it
  is computed inside a program) is refused, because the value could not be found.
* the entrypoint DAG's tasks → root DAG tasks: arguments from pipeline parameters,
  other tasks' output parameters or constants; ``dependencies`` → ``dependentTasks``.
  An entrypoint that is a container template is a one-task pipeline.

Everything else (conditions, loops, exit handlers, nested DAGs, steps, artifacts, volumes,
resource templates, retries, sidecars, pod settings…) is refused by name with
:class:`~airflow_kfx.exceptions.UnsupportedFeatureError`. Errors name the workflow file and
a YAML path of the workflow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_kfx.spec.rebuilt import Origin, located
from airflow_kfx.spec.source import LineDict, Node, join_path

PIPELINE_SPEC_ANNOTATION = "pipelines.kubeflow.org/pipeline_spec"
_KFP_PREFIX = "pipelines.kubeflow.org/"
_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
# serviceAccountName is the KFP deployment's runner account, left to Airflow (as in argo_v2).
_SPEC_FIELDS = {"arguments", "entrypoint", "templates", "serviceAccountName"}
_SPEC_HINTS = {
    "onExit": "exit handlers (dsl.ExitHandler) of v1 workflows are not translated yet",
    "volumes": "workflow volumes (dsl.VolumeOp, PVC mounts) are not translated",
    "volumeClaimTemplates": "workflow volumes (dsl.VolumeOp) are not translated",
    "imagePullSecrets": "image pull secrets are not translated; configure them for Airflow's pods",
}
_TEMPLATE_KINDS = {
    "dag": ("nested Argo DAG template", "dsl.Condition/ExitHandler/ParallelFor groups and graph components "
            "compile to nested DAG templates, which v1 workflows do not translate yet"),
    "steps": ("Argo steps template", "Argo steps templates (recursive @graph_component) are not translated"),
    "resource": ("Argo resource template", "ResourceOp/VolumeOp/VolumeSnapshotOp create Kubernetes "
                 "resources, which has no PipelineSpec equivalent"),
    "script": ("Argo script template", "script templates are not written by the KFP v1 SDK and are not translated"),
    "suspend": ("Argo suspend template", "suspend templates have no PipelineSpec equivalent"),
}
_TASK_HINTS = {
    "when": ("Argo when condition", "dsl.Condition of v1 workflows is not translated yet; compile the "
             "pipeline with the KFP v2 SDK (dsl.If)"),
    "withItems": ("Argo withItems loop", "dsl.ParallelFor of v1 workflows is not translated yet"),
    "withParam": ("Argo withParam loop", "dsl.ParallelFor of v1 workflows is not translated yet"),
}
_TEMPLATE_FIELDS = {"name", "container", "inputs", "outputs", "metadata"}
_CONTAINER_FIELDS = {"image", "command", "args", "env", "resources"}
# Argo text variables the v1 compiler writes; anything else inside {{ }} is refused.
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_INPUT = re.compile(r"^inputs\.parameters\.([^.\s]+)$")
_WORKFLOW = re.compile(r"^workflow\.parameters\.([^.\s]+)$")
_TASK_OUTPUT = re.compile(r"^tasks\.([^.\s]+)\.outputs\.parameters\.([^.\s]+)$")
# v1 types (kfp.dsl.types) that reach a container as the same text when typed in v2. A
# v1 Bool/Float is text like "True"/"1.0", which a v2 BOOLEAN/NUMBER_DOUBLE would render
# as "true"/"1": they stay STRING, as Argo passes them.
_TYPES = {"string": "STRING", "str": "STRING", "integer": "NUMBER_INTEGER", "int": "NUMBER_INTEGER"}


@dataclass(frozen=True)
class V1Spec:
    """The PipelineSpec (plain JSON data with workflow lines) read from a v1 workflow.

    :mod:`airflow_kfx.spec.argo_v2` (which imports this module, so not the other way
    round) wraps it in its ``RebuiltSpec`` and adds ``schemaVersion``."""

    spec: LineDict
    origins: tuple[Origin, ...]


@dataclass(frozen=True)
class _Template:
    """A container template rebuilt as a component (and its executor)."""

    component: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def rebuild_v1_pipeline_spec(node: Node) -> V1Spec:
    """The PipelineSpec of the KFP v1 workflow at ``node`` (already known to be a Workflow)."""
    for key, child in node.items():
        if key not in _TOP_LEVEL:
            child.fail(f"unknown top-level field '{key}' in an Argo Workflow; expected {', '.join(sorted(_TOP_LEVEL))}")
    metadata = node.child("metadata")
    annotation = _pipeline_annotation(metadata)
    spec = node.required("spec", Mapping)
    for key, child in spec.items():
        if key not in _SPEC_FIELDS:
            child.unsupported(f"Argo workflow spec.{key}", _SPEC_HINTS.get(
                key, f"'{key}' has no place in a PipelineSpec and airflow-kfx does not translate it"))
    origins: list[Origin] = []
    parameters = _root_inputs(spec.child("arguments"), annotation)
    templates = _templates(spec.required("templates", list))
    entry_name = spec.required("entrypoint", str)
    if entry_name.value not in templates:
        entry_name.fail(f"the entrypoint '{entry_name.value}' is not a template of the workflow")
    entry = templates[entry_name.value]

    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    built: dict[str, _Template] = {}

    def component_of(name: str, where: Node) -> _Template:
        if name not in templates:
            where.fail(f"names template '{name}', which the workflow does not define")
        if name not in built:
            built[name] = _container_template(templates[name], components, executors, origins)
        return built[name]

    if entry.has("dag"):
        tasks = _dag_tasks(entry, parameters, component_of, origins)
        _entry_inputs(entry, parameters)
    else:  # hello-world style: the entrypoint itself is the only task
        _entry_inputs(entry, parameters)
        template = component_of(entry_name.value, entry_name)
        inputs = {name: located(entry.line, componentInputParameter=name) for name in template.inputs}
        tasks = located(entry.line, {entry_name.value: _task(entry.line, entry_name.value, template, inputs, [])})
        origins.append(Origin(join_path("root", "dag", "tasks", entry_name.value), entry.path, entry.line, exact=False))

    document = located(node.line)
    name, display = _names(metadata, annotation)
    info = located(metadata.line, name=name)
    if display:
        info["displayName"] = display
    description = annotation.get("description") if isinstance(annotation.get("description"), str) else None
    if description:
        info["description"] = description
    document["pipelineInfo"] = info
    origins.append(Origin("pipelineInfo", metadata.path, metadata.line, exact=False))
    root = located(entry.line, dag=located(entry.line, tasks=tasks))
    if parameters:
        root["inputDefinitions"] = located(spec.line, parameters=located(spec.line, parameters))
    document["root"] = root
    origins.append(Origin("root.inputDefinitions", spec.child("arguments").path, spec.line, exact=False))
    document["components"] = located(spec.line, components)
    document["deploymentSpec"] = located(spec.line, executors=located(spec.line, executors))
    return V1Spec(document, tuple(origins))


# ---------------------------------------------------------------------------
# The pipeline: name and parameters
# ---------------------------------------------------------------------------


def _pipeline_annotation(metadata: Node) -> Mapping[str, Any]:
    """The ``pipelines.kubeflow.org/pipeline_spec`` JSON (name, description, inputs), or {}."""
    annotations = metadata.child("annotations")
    value = annotations.child(PIPELINE_SPEC_ANNOTATION)
    if value.value is None:
        return {}
    text = value.expect(str, "the pipeline spec annotation (a JSON string)")
    try:
        parsed = json.loads(text)
    except ValueError as err:
        value.fail(f"the {PIPELINE_SPEC_ANNOTATION} annotation is not valid JSON ({err})")
    if not isinstance(parsed, Mapping):
        value.fail(f"the {PIPELINE_SPEC_ANNOTATION} annotation must be a JSON object")
    return parsed


def _names(metadata: Node, annotation: Mapping[str, Any]) -> tuple[str, str | None]:
    """(pipelineInfo.name, display name). The v1 compiler writes ``generateName`` as the
    annotation's name made a Kubernetes name plus '-': that is the pipeline's name; the
    annotation's own spelling is its display name."""
    display = annotation.get("name") if isinstance(annotation.get("name"), str) else None
    generated = metadata.optional("generateName", str) or metadata.optional("name", str)
    name = (generated or "").rstrip("-") or _k8s_name(display or "")
    if not name:
        metadata.fail("the workflow has no name (metadata.generateName, metadata.name or the pipeline_spec annotation)")
    return name, display if display and display != name else None


def _k8s_name(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def _root_inputs(arguments: Node, annotation: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.arguments.parameters`` as root input definitions. The argument's value is
    what the run passes (the compiler writes the default there); typed from the annotation."""
    for key, child in arguments.items():
        if key != "parameters":
            child.unsupported(f"Argo workflow arguments.{key}", "only parameter arguments are translated, not artifacts")
    declared = {i.get("name"): i for i in annotation.get("inputs") or [] if isinstance(i, Mapping)}
    found: dict[str, Any] = {}
    for item in arguments.child("parameters").elements():
        item.expect(Mapping, "a workflow parameter")
        name = item.required("name", str).value
        if name in found:
            item.child("name").fail(f"workflow parameter '{name}' is defined twice")
        extra = set(item.value) - {"name", "value"}
        if extra:
            item.unsupported(f"Argo workflow parameter {sorted(extra)[0]}",
                             "only a parameter's name and value are translated")
        v1_type = str(declared.get(name, {}).get("type") or "String")
        kind = _TYPES.get(v1_type.lower(), "STRING")
        definition = located(item.line, parameterType=kind)
        value = item.child("value")
        if value.value is not None:
            definition["defaultValue"] = _typed(value, kind)
        elif declared.get(name, {}).get("optional"):
            definition["isOptional"] = True
        description = declared.get(name, {}).get("description")
        if isinstance(description, str) and description:
            definition["description"] = description
        found[name] = definition
    return found


def _typed(value: Node, kind: str) -> Any:
    text = value.expect((str, int, float, bool), "a parameter value")
    text = text if isinstance(text, str) else json.dumps(text)
    if kind == "NUMBER_INTEGER":
        try:
            number = int(text)
        except ValueError:
            value.fail(f"the value {text!r} of an Integer parameter is not an integer")
        if str(number) != text:  # would reach the container spelled differently
            value.fail(f"the Integer parameter value {text!r} is not written as an integer")
        return number
    return text


def _entry_inputs(entry: Node, parameters: Mapping[str, Any]) -> None:
    """Argo fills the entrypoint's inputs from the workflow arguments, by name."""
    for item in entry.child("inputs").child("parameters").elements():
        name = item.required("name", str).value
        if name not in parameters:
            item.fail(f"the entrypoint takes input '{name}', which spec.arguments.parameters does not define")


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------


def _templates(node: Node) -> dict[str, Node]:
    found: dict[str, Node] = {}
    for template in node.elements():
        template.expect(Mapping, "a template")
        name = template.required("name", str).value
        if name in found:
            template.child("name").fail(f"template '{name}' is defined twice")
        found[name] = template
    return found


def _refuse_template_kind(template: Node, allowed: str) -> None:
    for key, (feature, hint) in _TEMPLATE_KINDS.items():
        if key != allowed and template.has(key):
            template.child(key).unsupported(feature, hint)


def _container_template(
    template: Node, components: dict[str, Any], executors: dict[str, Any], origins: list[Origin]
) -> _Template:
    """One ContainerOp template → ``comp-<name>`` and ``exec-<name>``."""
    _refuse_template_kind(template, "container")
    if not template.has("container"):
        template.fail("a template needs 'container' or 'dag'")
    for key, child in template.items():
        if key not in _TEMPLATE_FIELDS:
            child.unsupported(f"Argo template {key}", f"the template setting '{key}' (pod, retry, sidecar or "
                              "scheduling settings) is not translated for v1 workflows")
    _check_metadata(template.child("metadata"))
    name = template.value["name"]
    inputs = _template_inputs(template.child("inputs"))
    outputs = _template_outputs(template.child("outputs"))
    container = template.child("container")
    for key, child in container.items():
        if key not in _CONTAINER_FIELDS:
            child.unsupported(f"container {key}", f"the container setting '{key}' is not translated for v1 workflows")
    command = [_text(item, inputs, outputs) for item in container.child("command").elements()]
    args = [_text(item, inputs, outputs) for item in container.child("args").elements()]
    for output, path in outputs.items():
        if not any(_mentions(text, path) for text in (*command, *args)):
            template.child("outputs").unsupported(
                "KFP v1 output at a fixed path",
                f"output '{output}' is read from {path}, which the command line never names (the program "
                "computes it), so the output's file cannot be given to it",
            )
    body = located(container.line, image=container.required("image", str).value)
    body["command"] = [_output_files(text, outputs) for text in command]
    body["args"] = [_output_files(text, outputs) for text in args]
    env = _env(container.child("env"))
    if env:
        body["env"] = env
    resources = _resources(container.child("resources"))
    if resources:
        body["resources"] = resources
    label, component = f"exec-{name}", f"comp-{name}"
    executors[label] = located(container.line, container=body)
    spec = located(template.line, executorLabel=label)
    if inputs:
        spec["inputDefinitions"] = located(template.line, parameters=located(
            template.line, {i: located(template.line, parameterType="STRING") for i in inputs}))
    if outputs:
        spec["outputDefinitions"] = located(template.line, parameters=located(
            template.line, {o: located(template.line, parameterType="STRING") for o in outputs}))
    components[component] = spec
    origins.append(Origin(join_path("components", component), template.path, template.line, exact=False))
    origins.append(Origin(join_path("deploymentSpec", "executors", label), container.path, container.line, exact=False))
    return _Template(component, tuple(inputs), tuple(outputs))


def _check_metadata(node: Node) -> None:
    """The v1 compiler's own pod labels/annotations (``pipelines.kubeflow.org/*``: SDK
    version, component spec, caching hints) describe KFP bookkeeping; others are refused."""
    for key, child in node.items():
        if key not in ("annotations", "labels"):
            child.unsupported(f"Argo template metadata.{key}", "only pod labels and annotations are known here")
        for name, value in child.items():
            if not name.startswith(_KFP_PREFIX):
                value.unsupported("Argo template pod metadata",
                                  f"the pod {key[:-1]} '{name}' is not translated for v1 workflows")


def _template_inputs(node: Node) -> list[str]:
    for key, child in node.items():
        if key != "parameters":
            child.unsupported(f"Argo template inputs.{key}", "input artifacts (artifact passing, raw artifact "
                              "values) of v1 workflows are not translated yet")
    names = []
    for item in node.child("parameters").elements():
        item.expect(Mapping, "an input parameter")
        extra = set(item.value) - {"name"}
        if extra:
            item.unsupported(f"Argo template input {sorted(extra)[0]}", "an input's default or fixed value "
                             "is not written by the KFP v1 SDK and is not translated")
        names.append(item.required("name", str).value)
    return names


def _template_outputs(node: Node) -> dict[str, str]:
    """Output parameter → the fixed path Argo reads it from. The v1 compiler also writes
    each as an artifact of the same name and path (for the KFP UI), and older ones the
    ``mlpipeline-ui-metadata``/``mlpipeline-metrics`` artifacts; only those copies pass."""
    found: dict[str, str] = {}
    for key, child in node.items():
        if key not in ("parameters", "artifacts"):
            child.unsupported(f"Argo template outputs.{key}", f"'{key}' outputs are not translated")
    for item in node.child("parameters").elements():
        item.expect(Mapping, "an output parameter")
        name = item.required("name", str).value
        source = item.required("valueFrom", Mapping)
        if set(source.value) != {"path"} or set(item.value) - {"name", "valueFrom"}:
            source.unsupported("Argo output parameter valueFrom", "only output parameters read from a file path "
                               "(valueFrom.path) are translated")
        path = source.required("path", str).value
        if not path.startswith("/"):
            source.child("path").fail(f"the path of output '{name}' must be absolute, not {path!r}")
        found[name] = path
    for item in node.child("artifacts").elements():
        item.expect(Mapping, "an output artifact")
        name = item.required("name", str).value
        if found.get(name) != item.get("path") or set(item.value) - {"name", "path"}:
            item.unsupported("Argo output artifacts", "output artifacts of v1 workflows are not translated yet "
                             "(only the artifact copy of an output parameter is)")
    return found


def _text(node: Node, inputs: list[str], outputs: Mapping[str, str]) -> str:
    """A command-line item with ``{{inputs.parameters.X}}`` as a v2 placeholder."""
    text = node.expect((str, int, float), "a command-line string")
    text = text if isinstance(text, str) else json.dumps(text)
    if "{{$" in text or text.lstrip().startswith('{"'):
        node.unsupported("KFP v2 placeholder text in a v1 workflow",
                         "the text would be read as a KFP v2 placeholder, which Argo passes verbatim")

    def replace(match: re.Match[str]) -> str:
        found = _INPUT.match(match.group(1))
        if not found:
            node.unsupported("Argo variable", f"the Argo variable {match.group(0)!r} has no PipelineSpec equivalent")
        if found.group(1) not in inputs:
            node.fail(f"uses input '{found.group(1)}', which the template's inputs.parameters does not declare")
        return f"{{{{$.inputs.parameters['{found.group(1)}']}}}}"

    return _VARIABLE.sub(replace, text)


def _mentions(text: str, path: str) -> bool:
    return re.search(_path_pattern(path), text) is not None


def _path_pattern(path: str) -> str:
    # The path as a whole: not the start of a longer path (/tmp/out vs /tmp/output).
    return rf"(?<![\w./-]){re.escape(path)}(?![\w.-]|/\w)"


def _output_files(text: str, outputs: Mapping[str, str]) -> str:
    """Every mention of an output's fixed path → that output's file: the command writes
    the value where KFP v2 reads it (and whatever else reads it reads the same file)."""
    for name, path in outputs.items():
        placeholder = f"{{{{$.outputs.parameters['{name}'].output_file}}}}"
        text = re.sub(_path_pattern(path), lambda _, value=placeholder: value, text)
    return text


def _env(node: Node) -> list[Any]:
    found = []
    for item in node.elements():
        item.expect(Mapping, "an environment variable")
        if set(item.value) - {"name", "value"}:
            item.unsupported("container env valueFrom", "environment variables from secrets, config maps or "
                             "fields are not translated for v1 workflows")
        value = item.child("value")
        if isinstance(value.value, str) and "{{" in value.value:
            value.unsupported("Argo variable in env", "environment values with Argo variables are not translated")
        found.append(located(item.line, name=item.required("name", str).value, value=value.value))
    return found


def _resources(node: Node) -> LineDict | None:
    """CPU/memory limits and requests; other resources (GPUs, TPUs) are refused."""
    if node.value is None:
        return None
    result = located(node.line)
    keys = {("limits", "cpu"): "resourceCpuLimit", ("limits", "memory"): "resourceMemoryLimit",
            ("requests", "cpu"): "resourceCpuRequest", ("requests", "memory"): "resourceMemoryRequest"}
    for group, child in node.items():
        if group not in ("limits", "requests"):
            child.unsupported(f"container resources.{group}", "only resource limits and requests are translated")
        for resource, value in child.items():
            if (group, resource) not in keys:
                value.unsupported(f"container resource {resource}", "only cpu and memory are translated "
                                  "for v1 workflows (accelerators are not)")
            text = value.expect((str, int, float), "a resource quantity")
            if isinstance(text, str) and "{{" in text:
                value.unsupported("Argo variable in resources", "resources set from parameters are not translated")
            result[keys[(group, resource)]] = str(text)
    return result or None


# ---------------------------------------------------------------------------
# The entrypoint DAG
# ---------------------------------------------------------------------------


def _dag_tasks(entry: Node, parameters: Mapping[str, Any], component_of: Any, origins: list[Origin]) -> LineDict:
    _refuse_template_kind(entry, "dag")
    for key, child in entry.items():
        if key not in ("name", "dag", "inputs"):
            child.unsupported(f"Argo template {key}", f"the DAG template setting '{key}' is not translated")
    dag = entry.child("dag")
    for key, child in dag.items():
        if key != "tasks":
            child.unsupported(f"Argo DAG {key}", f"the DAG setting '{key}' is not translated")
    entry_inputs = {i.get("name") for i in entry.child("inputs").child("parameters").value or [] if isinstance(i, Mapping)}
    task_nodes: dict[str, Node] = {}
    for task in dag.required("tasks", list).elements():
        task.expect(Mapping, "a DAG task")
        name = task.required("name", str).value
        if name in task_nodes:
            task.child("name").fail(f"task '{name}' is defined twice")
        task_nodes[name] = task
    tasks = located(dag.line)
    outputs: dict[str, tuple[str, ...]] = {}
    for name, task in task_nodes.items():
        for key, child in task.items():
            if key in _TASK_HINTS:
                child.unsupported(*_TASK_HINTS[key])
            if key not in ("name", "template", "arguments", "dependencies"):
                child.unsupported(f"Argo DAG task {key}", f"the task setting '{key}' is not translated")
        template_name = task.required("template", str)
        template = component_of(template_name.value, template_name)
        outputs[name] = template.outputs
    for name, task in task_nodes.items():
        template = component_of(task.value["template"], task.child("template"))
        inputs = _task_inputs(task, template, entry_inputs, parameters, task_nodes, outputs)
        dependencies = []
        for dependency in task.child("dependencies").elements():
            if dependency.expect(str, "a task name") not in task_nodes:
                dependency.fail(f"depends on task '{dependency.value}', which the DAG does not define")
            dependencies.append(dependency.value)
        tasks[name] = _task(task.line, name, template, inputs, dependencies)
        origins.append(Origin(join_path("root", "dag", "tasks", name), task.path, task.line, exact=False))
    return tasks


def _task_inputs(
    task: Node,
    template: _Template,
    entry_inputs: set[Any],
    parameters: Mapping[str, Any],
    tasks: Mapping[str, Node],
    outputs: Mapping[str, tuple[str, ...]],
) -> dict[str, Any]:
    arguments = task.child("arguments")
    for key, child in arguments.items():
        if key != "parameters":
            child.unsupported(f"Argo task arguments.{key}", "artifact passing of v1 workflows is not translated yet")
    found: dict[str, Any] = {}
    for item in arguments.child("parameters").elements():
        item.expect(Mapping, "a task argument")
        name = item.required("name", str).value
        if name not in template.inputs:
            item.child("name").fail(f"passes '{name}', which template '{task.value['template']}' does not take")
        found[name] = _source(item.required("value", (str, int, float, bool)), entry_inputs, parameters, tasks, outputs)
    for name in template.inputs:
        if name not in found:
            arguments.fail(f"task '{task.value['name']}' does not pass input '{name}' of its template")
    return found


def _source(
    value: Node,
    entry_inputs: set[Any],
    parameters: Mapping[str, Any],
    tasks: Mapping[str, Node],
    outputs: Mapping[str, tuple[str, ...]],
) -> LineDict:
    """A task argument as a v2 task input: a pipeline parameter, a task output or text."""
    text = value.value if isinstance(value.value, str) else json.dumps(value.value)
    if "{{" not in text:
        return located(value.line, runtimeValue=located(value.line, constant=text))
    match = _VARIABLE.fullmatch(text.strip())
    if match is None:
        value.unsupported("Argo argument mixing text and variables",
                          "an argument that embeds variables in text is not translated")
    body = match.group(1)
    for pattern, scope in ((_WORKFLOW, None), (_INPUT, entry_inputs)):
        found = pattern.match(body)
        if found:
            if found.group(1) not in parameters or (scope is not None and found.group(1) not in scope):
                value.fail(f"refers to pipeline parameter '{found.group(1)}', which the workflow does not define")
            return located(value.line, componentInputParameter=found.group(1))
    found = _TASK_OUTPUT.match(body)
    if found:
        producer, output = found.groups()
        if producer not in tasks:
            value.fail(f"refers to task '{producer}', which the DAG does not define")
        if output not in outputs[producer]:
            value.fail(f"refers to output '{output}', which task '{producer}' does not produce")
        return located(value.line, taskOutputParameter=located(
            value.line, producerTask=producer, outputParameterKey=output))
    value.unsupported("Argo variable", f"the Argo variable {text!r} has no PipelineSpec equivalent")


def _task(line: int | None, name: str, template: _Template, inputs: Mapping[str, Any], dependencies: list[str]) -> LineDict:
    task = located(line, componentRef=located(line, name=template.component), taskInfo=located(line, name=name))
    if inputs:
        task["inputs"] = located(line, parameters=located(line, dict(inputs)))
    if dependencies:
        task["dependentTasks"] = dependencies
    return task
