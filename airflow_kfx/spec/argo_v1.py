"""KFP v1 Argo Workflows (written by the KFP v1 SDK compiler) → a KFP v2 PipelineSpec.

The KFP v1 compiler (kubeflow/pipelines ``sdk/python/kfp/compiler/compiler.py`` and
``_op_to_template.py``, SDK 1.8) writes one Argo template per ``ContainerOp``, one DAG
template per group (``dsl.Condition`` → ``condition-N``, ``dsl.ParallelFor`` →
``for-loop-N``, ``dsl.ExitHandler`` → ``exit-handler-N``, graph components) and one for the
pipeline function (the entrypoint). This module reads the subset whose meaning a v2
PipelineSpec can carry and rebuilds that spec, so that the usual parser
(:func:`airflow_kfx.spec.ir.parse_pipeline_spec`) makes the model from it:

* ``spec.arguments.parameters`` → root ``inputDefinitions`` (types and the pipeline's
  display name from the ``pipelines.kubeflow.org/pipeline_spec`` annotation; the run's
  argument value is the default, as it is what the workflow runs with).
* container templates → components and executors (:mod:`.argo_v1_container`: parameters,
  outputs and artifacts at fixed paths, retries, resources, env).
* the entrypoint DAG and nested DAG templates → the root DAG and DAG components, with
  conditions, loops and their parallelism (:mod:`.argo_v1_dag`). An entrypoint that is a
  container template is a one-task pipeline.
* ``spec.onExit`` → the exit task of ``dsl.ExitHandler``: a root task that runs the exit
  template after every other root task (the ``exit-handler-N`` group), whether they
  succeeded or not (``ALL_UPSTREAM_TASKS_COMPLETED``).

A template that calls itself, directly or through others (recursive graph components), is
refused as "recursion". Everything else without a PipelineSpec equivalent (steps, volumes,
resource templates, sidecars, raw artifacts, pod settings…) is refused by name with
:class:`~airflow_kfx.exceptions.UnsupportedFeatureError`. Errors name the workflow file and
a YAML path of the workflow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.spec.argo_v1_container import deadline_seconds, refuse_template_kind
from airflow_kfx.spec.argo_v1_dag import Builder, Scope, dag_inputs
from airflow_kfx.spec.argo_v1_volume_passing import without_passing_volume
from airflow_kfx.spec.rebuilt import Origin, located
from airflow_kfx.spec.source import LineDict, Node, join_path

PIPELINE_SPEC_ANNOTATION = "pipelines.kubeflow.org/pipeline_spec"
_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
# serviceAccountName is the KFP deployment's runner account, left to Airflow (as in argo_v2).
_SPEC_FIELDS = {"arguments", "entrypoint", "templates", "serviceAccountName", "onExit", "imagePullSecrets",
                "activeDeadlineSeconds"}
_SPEC_HINTS = {
    "volumes": "volumes declared for the whole workflow are not translated, other than the v1 SDK's "
               "data-passing volume (artifacts then pass through the pipeline root); volumes of a template "
               "and dsl.VolumeOp are",
    "volumeClaimTemplates": "workflow volumes (dsl.VolumeOp) are not translated",
}
_ALL_DONE = "ALL_UPSTREAM_TASKS_COMPLETED"
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
    platform: LineDict | None = None  # ``platforms.kubernetes``: the templates' pod settings
    # executor label → output → the fixed path its program writes it at (v1 fileOutputs,
    # which a PipelineSpec cannot say: set on the model's containers after parsing)
    file_outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    run_deadline_seconds: int | None = None  # spec.activeDeadlineSeconds (PipelineConf.set_timeout)


def rebuild_v1_pipeline_spec(node: Node) -> V1Spec:
    """The PipelineSpec of the KFP v1 workflow at ``node`` (already known to be a Workflow)."""
    node = without_passing_volume(node)
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
    exit_name = spec.child("onExit")
    _refuse_recursion(templates, [entry_name] + ([exit_name] if exit_name.value is not None else []))
    builder = Builder(templates, parameters, origins)

    _entry_inputs(entry, parameters)
    if entry.has("dag"):
        refuse_template_kind(entry, "dag")
        for key, child in entry.items():
            if key not in ("name", "dag", "inputs"):
                child.unsupported(f"Argo template {key}", f"the entrypoint DAG setting '{key}' is not translated")
        names, artifacts = dag_inputs(entry.child("inputs"))
        if artifacts:
            entry.child("inputs").child("artifacts").unsupported(
                "Argo workflow artifact arguments", "only parameter arguments are translated, not artifacts")
        scope = Scope(set(names), set(), True, parameters)
        tasks = builder.dag_tasks(entry, scope, "root")
    else:  # hello-world style: the entrypoint itself is the only task
        template = builder.template(entry_name.value, entry_name)
        task = located(entry.line, componentRef=located(entry.line, name=template.component),
                       taskInfo=located(entry.line, name=template.display_name or entry_name.value))
        if template.inputs:
            task["inputs"] = located(entry.line, parameters=located(
                entry.line, {name: located(entry.line, componentInputParameter=name) for name in template.inputs}))
        if template.retry is not None:
            task["retryPolicy"] = template.retry
        tasks = located(entry.line, {entry_name.value: task})
        origins.append(Origin(join_path("root", "dag", "tasks", entry_name.value), entry.path, entry.line, exact=False))
    if exit_name.value is not None:
        _exit_task(exit_name, builder, tasks, origins)

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
    document["components"] = located(spec.line, builder.components)
    document["deploymentSpec"] = located(spec.line, executors=located(spec.line, builder.executors))
    _pull_secrets(spec.child("imagePullSecrets"), builder)
    platform = None
    if builder.platform:
        platform = located(spec.line, deploymentSpec=located(spec.line, executors=located(spec.line, builder.platform)))
    return V1Spec(document, tuple(origins), platform, builder.file_outputs, _deadline(spec.child("activeDeadlineSeconds")))


def _deadline(node: Node) -> int | None:
    """``spec.activeDeadlineSeconds``: Argo fails the whole workflow once it has run this
    long; Airflow does the same to a DAG run with ``dagrun_timeout``."""
    return None if node.value is None else deadline_seconds(node)


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
# Templates: recursion and the exit handler
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


def _calls(template: Node) -> list[Node]:
    """The ``template`` fields of the tasks (DAG) or steps of a template."""
    found = []
    tasks = template.child("dag").child("tasks")
    for task in tasks.elements() if isinstance(tasks.value, list) else ():
        if isinstance(task.value, Mapping) and isinstance(task.get("template"), str):
            found.append(task.child("template"))
    steps = template.child("steps")
    for group in steps.elements() if isinstance(steps.value, list) else ():
        for step in group.elements() if isinstance(group.value, list) else ():
            if isinstance(step.value, Mapping) and isinstance(step.get("template"), str):
                found.append(step.child("template"))
    return found


def _refuse_recursion(templates: Mapping[str, Node], starts: list[Node]) -> None:
    """A template that runs itself, directly or through others (a recursive
    ``@graph_component``), has no PipelineSpec equivalent: KFP v2 forbids recursion."""
    done: set[str] = set()
    for start in starts:
        if not isinstance(start.value, str) or start.value not in templates:
            continue
        trail = [start.value]
        pending = [iter(_calls(templates[start.value]))]
        while trail:
            call = next(pending[-1], None)
            if call is None:
                done.add(trail.pop())
                pending.pop()
            elif call.value in trail:
                cycle = " → ".join([*trail[trail.index(call.value):], call.value])
                call.unsupported("recursion", f"template '{call.value}' runs itself ({cycle}); recursive graph "
                                 "components have no PipelineSpec equivalent (KFP v2 forbids recursion)")
            elif call.value in templates and call.value not in done:
                trail.append(call.value)
                pending.append(iter(_calls(templates[call.value])))


def _exit_task(name: Node, builder: Builder, tasks: LineDict, origins: list[Origin]) -> None:
    """``spec.onExit``: Argo runs the exit template once the workflow ends, whatever its
    outcome; in a PipelineSpec that is a root task after the others (the v1 SDK's
    ``exit-handler-N`` group) with ``ALL_UPSTREAM_TASKS_COMPLETED``, as the v2 compiler
    writes ``dsl.ExitHandler``. Argo hands the exit template the workflow's own arguments
    (``spec.GetExitHook(spec.arguments)``), so its inputs are pipeline parameters of the
    same names (older v1 compilers wrote exit handlers that way)."""
    name.expect(str, "the name of the exit template")
    template = builder.template(name.value, name)
    if template.input_artifacts:
        name.unsupported("Argo onExit template input artifacts", "an exit template receives the workflow's "
                         "parameters only; its input artifacts would have no source")
    unknown = [input_name for input_name in template.inputs if input_name not in builder.parameters]
    if unknown:
        name.fail(f"the exit template '{name.value}' takes input '{unknown[0]}', which spec.arguments.parameters "
                  "does not define (Argo gives an exit template the workflow's arguments)")
    task_name, number = name.value, 2
    while task_name in tasks:
        task_name, number = f"{name.value}-{number}", number + 1
    task = located(name.line, componentRef=located(name.line, name=template.component),
                   taskInfo=located(name.line, name=template.display_name or task_name),
                   triggerPolicy=located(name.line, strategy=_ALL_DONE))
    if template.inputs:
        task["inputs"] = located(name.line, parameters=located(
            name.line, {input_name: located(name.line, componentInputParameter=input_name)
                        for input_name in template.inputs}))
    if tasks:
        task["dependentTasks"] = list(tasks)
    if template.retry is not None:
        task["retryPolicy"] = template.retry
    tasks[task_name] = task
    origins.append(Origin(join_path("root", "dag", "tasks", task_name), name.path, name.line, exact=False))


def _pull_secrets(node: Node, builder: Builder) -> None:
    """``spec.imagePullSecrets`` (``PipelineConf.set_image_pull_secrets``): every task's
    pod may pull with them, as kfp-kubernetes' ``imagePullSecret`` on each executor."""
    names = []
    for item in node.elements():
        item.expect(Mapping, "an image pull secret ({name: ...})")
        names.append(item.required("name", str).value)
    for label in builder.executors if names else ():
        config = builder.platform.setdefault(label, located(node.line))
        config["imagePullSecret"] = [located(node.line, secretName=name) for name in names]
