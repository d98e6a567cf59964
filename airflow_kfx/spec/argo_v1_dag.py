"""KFP v1 Argo workflows: DAG templates → PipelineSpec DAG components. Used by
:mod:`airflow_kfx.spec.argo_v1`; the PipelineSpec pieces are those the KFP v2 compiler
writes for the same groups, so :mod:`airflow_kfx.spec.ir` makes the same model of them.

* A DAG template (``condition-N``, ``for-loop-N``, ``exit-handler-N``, a graph
  component) → a component ``comp-<template>`` with a ``dag``; its ``inputs.parameters``/
  ``inputs.artifacts`` → input definitions (passed by the calling task's ``arguments``),
  its ``outputs.parameters[].valueFrom.parameter``/``outputs.artifacts[].from`` → DAG
  outputs. Task arguments: ``{{inputs.parameters.X}}`` → ``componentInputParameter``,
  ``{{workflow.parameters.X}}`` (entrypoint only) → the pipeline parameter,
  ``{{tasks.T.outputs.parameters.P}}`` → ``taskOutputParameter``, artifact
  ``from: {{tasks.T.outputs.artifacts.A}}``/``{{inputs.artifacts.A}}`` → ``taskOutputArtifact``/
  ``componentInputArtifact``; ``dependencies`` → ``dependentTasks``.
* ``when`` (``dsl.Condition``: ``"{{…}}" == "heads"`` for ==/!=, ``{{…}} > 5`` unquoted for
  ordering) → ``triggerPolicy.condition``, a CEL expression over the task's inputs as the
  v2 compiler writes it: each value the condition reads is a task input (an argument
  passing the same value, or ``pipelinechannel--…``). Quoted operands compare as text,
  unquoted ones as numbers (``double(…)``), as Argo's govaluate does.
* ``withItems`` (a constant list) / ``withParam`` (a JSON list in a parameter or a task
  output) → ``parameterIterator`` (``items.raw`` / ``items.inputParameter``); the loop
  template's ``parallelism`` → ``iteratorPolicy.parallelismLimit`` (0, which KFP 1.8 writes
  for a loop without a limit, is none). The arguments
  ``{{item}}`` and ``{{item.a}}`` become the loop's item input, and inside the loop the
  inputs they fed read that item (with ``parseJson(string_value)["a"]`` for a field).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.spec.argo_v1_container import (
    INPUT,
    INPUT_ARTIFACT,
    ITEM,
    TASK_ARTIFACT,
    TASK_OUTPUT,
    VARIABLE,
    WORKFLOW,
    Template,
    container_template,
    interface,
    only_parameters_and_artifacts,
    refuse_template_kind,
)
from airflow_kfx.spec.argo_v1_resource import claim_source, is_resource_template, volume_op_template
from airflow_kfx.spec.rebuilt import Origin, located
from airflow_kfx.spec.source import LineDict, Node, join_path
from airflow_kfx.spec.v1_component import ARGO_RUN_VARIABLES

_TASK_FIELDS = {"name", "template", "arguments", "dependencies", "when", "withItems", "withParam"}
_DAG_TEMPLATE_FIELDS = {"name", "dag", "inputs", "outputs", "parallelism"}
_OPERAND = r"""("[^"]*"|'[^']*'|[^\s"'=!<>]+)"""
_WHEN = re.compile(rf"^\s*{_OPERAND}\s*(==|!=|>=|<=|>|<)\s*{_OPERAND}\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_SIMPLE_NAME = re.compile(r"^[\w.-]+$")


@dataclass
class Scope:
    """What the tasks of one DAG template can read."""

    inputs: set[str]  # the template's input parameters (the component's inputs)
    artifacts: set[str]  # its input artifacts
    root: bool  # the entrypoint: workflow parameters are its inputs
    parameters: Mapping[str, Any]  # the pipeline parameters
    items: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # loop body: input → (item, field)


class Builder:
    """Rebuilds templates as components on demand, each once (per loop variant)."""

    def __init__(self, templates: Mapping[str, Node], parameters: Mapping[str, Any], origins: list[Origin]) -> None:
        self.templates = templates
        self.parameters = parameters
        self.origins = origins
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.platform: dict[str, Any] = {}  # kfp-kubernetes executor configs (pod settings)
        self.file_outputs: dict[str, dict[str, str]] = {}  # executor → output → fixed path (v1 fileOutputs)
        self._built: dict[Any, Template] = {}

    def template(self, name: str, where: Node, items: Mapping[str, str | None] | None = None) -> Template:
        """The component of template ``name``; ``items``: for a loop body, the inputs
        that the loop's ``{{item}}``/``{{item.x}}`` arguments feed (input → field)."""
        if name not in self.templates:
            where.fail(f"names template '{name}', which the workflow does not define")
        node = self.templates[name]
        key = (name, tuple(sorted((items or {}).items(), key=str)) if items is not None else None)
        if key in self._built:
            return self._built[key]
        if node.has("dag"):
            built = self._dag_template(name, node, items)
        else:
            if items is not None:
                where.unsupported("Argo loop over a container template", "a withItems/withParam task runs a "
                                  "container template directly (the KFP v1 SDK loops over a for-loop DAG template)")
            if is_resource_template(node):
                built = volume_op_template(node, self.components, self.executors, self.origins)
            else:
                built = container_template(node, self.components, self.executors, self.origins, self.platform,
                                           self.file_outputs)
        self._built[key] = built
        return built

    # -- DAG templates ------------------------------------------------------------
    def _dag_template(self, name: str, node: Node, items: Mapping[str, str | None] | None) -> Template:
        refuse_template_kind(node, "dag")
        for key, child in node.items():
            if key not in _DAG_TEMPLATE_FIELDS or (key == "parallelism" and items is None):
                child.unsupported(f"Argo template {key}", f"the DAG template setting '{key}' is not translated")
        inputs, artifacts = dag_inputs(node.child("inputs"))
        component = f"comp-{name}"
        number = 2
        while component in self.components:  # another loop variant of the same template
            component, number = f"comp-{name}-{number}", number + 1
        self.components[component] = located(node.line)  # reserved; filled below
        scope = Scope(set(inputs), set(artifacts), False, self.parameters)
        declared = list(inputs)
        if items is not None:
            for argument in items:
                if argument not in inputs:
                    node.child("inputs").fail(f"the loop passes '{argument}', which template '{name}' does not take")
            item_input = _item_input(items, inputs)
            scope.items = {argument: (item_input, item_field) for argument, item_field in items.items()}
            declared = [i for i in inputs if i not in items] + [item_input]
        tasks = self.dag_tasks(node, scope, join_path("components", component))
        dag = located(node.line, tasks=tasks)
        outputs, output_artifacts = self._dag_outputs(node.child("outputs"), node)
        if outputs or output_artifacts:
            dag["outputs"] = located(node.line)
            if outputs:
                dag["outputs"]["parameters"] = outputs
            if output_artifacts:
                dag["outputs"]["artifacts"] = output_artifacts
        spec = self.components[component]
        spec["dag"] = dag
        if declared or artifacts:
            spec["inputDefinitions"] = interface(node.line, declared, artifacts)
        if outputs or output_artifacts:
            spec["outputDefinitions"] = interface(node.line, list(outputs), list(output_artifacts))
        self.origins.append(Origin(join_path("components", component), node.path, node.line, exact=False))
        return Template(component, tuple(declared), tuple(outputs), tuple(artifacts), tuple(output_artifacts),
                        is_dag=True)

    def _dag_outputs(self, node: Node, template: Node) -> tuple[LineDict, LineDict]:
        tasks = {t.get("name"): t for t in template.child("dag").child("tasks").value or [] if isinstance(t, Mapping)}
        parameters, artifacts = located(node.line), located(node.line)
        only_parameters_and_artifacts(node, "Argo template outputs", "outputs")
        for item in node.child("parameters").elements():
            item.expect(Mapping, "a DAG output parameter")
            name = item.required("name", str).value
            source = item.required("valueFrom", Mapping)
            if set(source.value) != {"parameter"}:
                source.unsupported("Argo DAG output valueFrom", "only DAG outputs taken from a task's output "
                                   "parameter (valueFrom.parameter) are translated")
            producer, key = _reference(source.required("parameter", str), TASK_OUTPUT, "a task's output parameter")
            self._check_output(source.child("parameter"), tasks, producer, key, artifact=False)
            parameters[name] = located(item.line, valueFromParameter=located(
                item.line, producerSubtask=producer, outputParameterKey=key))
        for item in node.child("artifacts").elements():
            item.expect(Mapping, "a DAG output artifact")
            name = item.required("name", str).value
            if set(item.value) - {"name", "from"}:
                item.unsupported("Argo DAG output artifact", "only DAG output artifacts taken 'from' a task's output "
                                 "artifact are translated")
            producer, key = _reference(item.required("from", str), TASK_ARTIFACT, "a task's output artifact")
            self._check_output(item.child("from"), tasks, producer, key, artifact=True)
            artifacts[name] = located(item.line, artifactSelectors=[located(
                item.line, producerSubtask=producer, outputArtifactKey=key)])
        return parameters, artifacts

    def _check_output(self, where: Node, tasks: Mapping[str, Any], producer: str, key: str, artifact: bool) -> None:
        if producer not in tasks:
            where.fail(f"refers to task '{producer}', which the DAG does not define")
        task = tasks[producer]
        if task.get("withItems") is not None or task.get("withParam") is not None:
            where.unsupported("Argo output of a loop", "the outputs of a loop's iterations (a fan-in) are not "
                              "translated for v1 workflows")
        template = self._built_by_name(task.get("template"))
        names = template.output_artifacts if artifact else template.outputs
        if key not in names:
            where.fail(f"refers to {'artifact' if artifact else 'output'} '{key}', which task '{producer}' "
                       "does not produce")

    def _built_by_name(self, name: Any) -> Template:
        for (built, _), template in self._built.items():
            if built == name:
                return template
        raise AssertionError(f"template {name!r} was not built")

    # -- the tasks of a DAG ---------------------------------------------------------
    def dag_tasks(self, template: Node, scope: Scope, ir_path: str) -> LineDict:
        dag = template.child("dag")
        for key, child in dag.items():
            if key != "tasks":
                child.unsupported(f"Argo DAG {key}", f"the DAG setting '{key}' is not translated")
        nodes: dict[str, Node] = {}
        for task in dag.required("tasks", list).elements():
            task.expect(Mapping, "a DAG task")
            name = task.required("name", str).value
            if name in nodes:
                task.child("name").fail(f"task '{name}' is defined twice")
            nodes[name] = task
        callees: dict[str, Template] = {}
        for name, task in nodes.items():
            for key, child in task.items():
                if key not in _TASK_FIELDS:
                    child.unsupported(f"Argo DAG task {key}", f"the task setting '{key}' is not translated")
            if task.has("withItems") and task.has("withParam"):
                task.fail("a task loops with either withItems or withParam, not both")
            items = _item_arguments(task) if task.has("withItems") or task.has("withParam") else None
            callees[name] = self.template(task.required("template", str).value, task.child("template"), items)
        tasks = located(dag.line)
        for name, task in nodes.items():
            context = _Context(scope, nodes, callees)
            tasks[name] = self._task(task, callees[name], context)
            self.origins.append(Origin(join_path(ir_path, "dag", "tasks", name), task.path, task.line, exact=False))
        return tasks

    def _task(self, task: Node, callee: Template, context: _Context) -> LineDict:
        name = task.value["name"]
        line = task.line
        loop = task.has("withItems") or task.has("withParam")
        body = located(line, componentRef=located(line, name=callee.component),
                       taskInfo=located(line, name=callee.display_name or name))
        parameters, artifacts = located(line), located(line)
        arguments = task.child("arguments")
        only_parameters_and_artifacts(arguments, "Argo task arguments", "arguments")
        for item in arguments.child("parameters").elements():
            item.expect(Mapping, "a task argument")
            argument = item.required("name", str).value
            value = item.required("value", (str, int, float, bool))
            if loop and _item_field(value) is not False:
                continue  # the loop's item: the body reads it
            # Argo ignores arguments a template does not declare (checked, never passed on)
            source = context.source(value, parameters if argument in callee.inputs else located(line))
            if argument in callee.inputs:
                parameters[callee.input_keys.get(argument, argument)] = source
                for entry in callee.claims.get(argument, ()):
                    claim_source(entry, source, value)
        for key, constant in callee.constants.items():  # what the template fixes (a VolumeOp's size, modes)
            parameters[key] = located(line, runtimeValue=located(line, constant=constant))
        self._declare_channels(callee, [name for name in parameters if name not in callee.inputs
                                        and name not in callee.constants
                                        and name not in callee.input_keys.values()], task.line)
        for item in arguments.child("artifacts").elements():
            item.expect(Mapping, "a task artifact argument")
            argument = item.required("name", str).value
            if set(item.value) - {"name", "from"}:
                item.unsupported("Argo artifact argument", "only artifacts passed 'from' a task output or a DAG "
                                 "input are translated (not raw or repository artifacts)")
            if argument not in callee.input_artifacts:
                item.child("name").fail(f"passes artifact '{argument}', which template '{task.value['template']}' "
                                        "does not take")
            artifacts[argument] = context.artifact(item.required("from", str))
        item_input = None
        if loop:
            item_input = callee.inputs[-1]  # the loop variant's item input comes last
        for required in callee.inputs:
            if callee.input_keys.get(required, required) not in parameters and required != item_input:
                arguments.fail(f"task '{name}' does not pass input '{required}' of its template")
        for required in callee.input_artifacts:
            if required not in artifacts:
                arguments.fail(f"task '{name}' does not pass artifact '{required}' of its template")
        if loop:
            iterator = located(task.line, itemInput=item_input)
            if task.has("withItems"):
                iterator["items"] = located(task.line, raw=_raw_items(task.child("withItems")))
            else:
                source = task.child("withParam")
                name_of = context.channel(source, parameters)
                iterator["items"] = located(task.line, inputParameter=name_of)
            body["parameterIterator"] = iterator
            limit = _parallelism(self.templates[task.value["template"]].child("parallelism"))
            if limit:
                body["iteratorPolicy"] = located(task.line, parallelismLimit=limit)
        if task.has("when"):
            if not callee.is_dag:
                task.child("when").unsupported("Argo when on a container task", "the KFP v1 SDK puts a condition "
                                               "on a condition-N DAG template; a condition on a container task "
                                               "is not translated")
            added = len(parameters)
            condition = _condition(task.child("when"), lambda node: context.channel(node, parameters))
            self._declare_channels(callee, list(parameters)[added:], task.line)
            body["triggerPolicy"] = located(task.line, condition=condition)
        if parameters or artifacts:
            body["inputs"] = located(line)
            if parameters:
                body["inputs"]["parameters"] = parameters
            if artifacts:
                body["inputs"]["artifacts"] = artifacts
        dependencies = []
        for dependency in task.child("dependencies").elements():
            if dependency.expect(str, "a task name") not in context.tasks:
                dependency.fail(f"depends on task '{dependency.value}', which the DAG does not define")
            dependencies.append(dependency.value)
        if dependencies:
            body["dependentTasks"] = dependencies
        if callee.retry is not None:
            body["retryPolicy"] = callee.retry
        return body

    def _declare_channels(self, callee: Template, channels: list[str], line: int | None) -> None:
        """The ``pipelinechannel--…`` inputs a task adds (for its condition or the
        variables in its arguments' text) as optional inputs of the component it calls,
        as the v2 compiler declares them."""
        if not channels:
            return
        definitions = self.components[callee.component].setdefault(
            "inputDefinitions", located(line)).setdefault("parameters", located(line))
        for channel in channels:
            definitions[channel] = located(line, parameterType="STRING", isOptional=True)


@dataclass
class _Context:
    """Resolves the variables of one task's arguments inside its DAG."""

    scope: Scope
    tasks: Mapping[str, Node]
    callees: Mapping[str, Template]

    def source(self, value: Node, parameters: LineDict) -> LineDict:
        """A task argument as a v2 task input: a DAG input, a task output or text. Text
        with variables in it (``"{{workflow.parameters.m}} from A"``) is what the v2
        compiler makes of an f-string: a constant whose placeholders read each variable
        from a ``pipelinechannel--…`` input added to ``parameters``."""
        text = value.value if isinstance(value.value, str) else json.dumps(value.value)
        if "{{" not in text:
            return located(value.line, runtimeValue=located(value.line, constant=text))
        match = VARIABLE.fullmatch(text.strip())
        if match is None:
            if "{{$" in text:
                value.unsupported("KFP v2 placeholder text in a v1 workflow",
                                  "the text would be read as a KFP v2 placeholder, which Argo passes verbatim")

            def placeholder(found: re.Match[str]) -> str:
                if found.group(1) in ARGO_RUN_VARIABLES:  # the run's id or name: filled in at run time
                    return ARGO_RUN_VARIABLES[found.group(1)]
                return f"{{{{$.inputs.parameters['{self.channel(value, parameters, found.group(1))}']}}}}"

            return located(value.line, runtimeValue=located(value.line, constant=VARIABLE.sub(placeholder, text)))
        return self.variable(value, match.group(1))

    def variable(self, value: Node, body: str) -> LineDict:
        scope = self.scope
        found = INPUT.match(body)
        if found:
            name = found.group(1)
            if name in scope.items:
                item_input, item_field = scope.items[name]
                source = located(value.line, componentInputParameter=item_input)
                if item_field is not None:
                    source["parameterExpressionSelector"] = f"parseJson(string_value)[{json.dumps(item_field)}]"
                return source
            if name not in scope.inputs:
                value.fail(f"refers to input '{name}', which the template's inputs.parameters does not declare")
            return located(value.line, componentInputParameter=name)
        found = WORKFLOW.match(body)
        if found:
            if not scope.root:
                value.unsupported("Argo workflow parameter in a nested DAG", "a nested DAG template reads "
                                  "pipeline parameters through its inputs (as the KFP v1 SDK writes it)")
            if found.group(1) not in scope.parameters:
                value.fail(f"refers to pipeline parameter '{found.group(1)}', which the workflow does not define")
            return located(value.line, componentInputParameter=found.group(1))
        found = TASK_OUTPUT.match(body)
        if found:
            producer, output = found.groups()
            if producer not in self.tasks:
                value.fail(f"refers to task '{producer}', which the DAG does not define")
            callee = self.callees[producer]
            if output in callee.refused_outputs:
                value.unsupported("Argo resource template output", callee.refused_outputs[output])
            if output not in callee.outputs:
                value.fail(f"refers to output '{output}', which task '{producer}' does not produce")
            if self.tasks[producer].has("withItems") or self.tasks[producer].has("withParam"):
                value.unsupported("Argo output of a loop", "the outputs of a loop's iterations (a fan-in) are not "
                                  "translated for v1 workflows")
            return located(value.line, taskOutputParameter=located(
                value.line, producerTask=producer, outputParameterKey=callee.output_keys.get(output, output)))
        value.unsupported("Argo variable", f"the Argo variable '{{{{{body}}}}}' has no PipelineSpec equivalent here")

    def artifact(self, value: Node) -> LineDict:
        match = VARIABLE.fullmatch(value.value.strip())
        body = match.group(1) if match else ""
        found = TASK_ARTIFACT.match(body)
        if found:
            producer, output = found.groups()
            if producer not in self.tasks:
                value.fail(f"refers to task '{producer}', which the DAG does not define")
            callee = self.callees[producer]
            if output not in callee.output_artifacts:
                if output in callee.outputs:
                    value.unsupported("Argo artifact from an output parameter", f"'{output}' of task '{producer}' "
                                      "is an output parameter; passing its file as an artifact is not translated")
                value.fail(f"refers to artifact '{output}', which task '{producer}' does not produce")
            return located(value.line, taskOutputArtifact=located(
                value.line, producerTask=producer, outputArtifactKey=output))
        found = INPUT_ARTIFACT.match(body)
        if found:
            if found.group(1) not in self.scope.artifacts:
                value.fail(f"refers to artifact '{found.group(1)}', which the template's inputs.artifacts does not declare")
            return located(value.line, componentInputArtifact=found.group(1))
        value.unsupported("Argo artifact source", f"the artifact source {value.value!r} is not translated")

    def channel(self, value: Node, parameters: LineDict, body: str | None = None) -> str:
        """The task input holding the value of the variable at ``value`` (``{{…}}``, or a
        body without braces; ``body``: one variable of its text): an argument passing that
        value already, else a new ``pipelinechannel--…`` input, as the v2 compiler names them."""
        if body is None:
            text = value.expect(str, "an Argo variable")
            match = VARIABLE.fullmatch(text.strip())
            body = match.group(1) if match else text.strip()
        source = self.variable(value, body)
        for name, existing in parameters.items():
            if existing == source:
                return name
        found = TASK_OUTPUT.match(body)
        base = f"pipelinechannel--{'-'.join(found.groups())}" if found else f"pipelinechannel--{body.rsplit('.', 1)[-1]}"
        name, number = base, 2
        while name in parameters:
            name, number = f"{base}-{number}", number + 1
        parameters[name] = source
        return name


def dag_inputs(node: Node) -> tuple[list[str], list[str]]:
    """A DAG template's input parameter and artifact names (no values: callers pass them)."""
    only_parameters_and_artifacts(node, "Argo template inputs", "inputs")
    names: dict[str, list[str]] = {"parameters": [], "artifacts": []}
    for kind in names:
        for item in node.child(kind).elements():
            item.expect(Mapping, "a DAG template input")
            extra = set(item.value) - {"name"}
            if extra:
                item.unsupported(f"Argo template input {sorted(extra)[0]}", "a DAG template input's default, "
                                 "path or value is not translated")
            names[kind].append(item.required("name", str).value)
    return names["parameters"], names["artifacts"]


def _item_field(value: Node) -> str | None | bool:
    """For ``{{item}}`` None, for ``{{item.x}}`` "x", for anything else False."""
    if not isinstance(value.value, str):
        return False
    match = VARIABLE.fullmatch(value.value.strip())
    found = ITEM.match(match.group(1)) if match else None
    if found is None:
        if "{{item" in value.value.replace(" ", ""):
            value.unsupported("Argo argument mixing text and variables",
                              "an argument that embeds the loop item in text is not translated")
        return False
    return found.group(1)


def _item_arguments(task: Node) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for item in task.child("arguments").child("parameters").elements():
        value = item.child("value")
        item_field = _item_field(value)
        if item_field is not False:
            found[item.required("name", str).value] = item_field  # type: ignore[assignment]
    return found


def _item_input(items: Mapping[str, str | None], inputs: list[str]) -> str:
    """The loop body's item input: the argument given ``{{item}}``, else the v1 SDK's
    ``loop-item-param-N`` that its ``…-subvar-x`` arguments share."""
    whole = [argument for argument, item_field in items.items() if item_field is None]
    if whole:
        return whole[0]
    base = next((a.rsplit("-subvar-", 1)[0] for a in items if "-subvar-" in a), "loop-item")
    name, number = base, 2
    while name in inputs:
        name, number = f"{base}-{number}", number + 1
    return name


def _raw_items(node: Node) -> str:
    items = node.expect(list, "a list of loop items")
    text = json.dumps(items)
    if "{{" in text:
        node.unsupported("Argo variable in withItems", "loop items that embed pipeline parameters or task "
                         "outputs are not translated (the items must be constants)")
    return text


def _parallelism(node: Node) -> int | None:
    """A loop template's ``parallelism``: at most that many iterations at once. 0 is no
    limit: KFP 1.8's ``dsl.ParallelFor`` writes ``parallelism: 0`` for every loop given no
    parallelism, and Argo only limits a template whose parallelism is above 0
    (``Template.HasParallelism``), as a v2 ``parallelismLimit`` of 0 means no limit."""
    if node.value is None:
        return None
    value = node.expect((int, str), "a number of parallel iterations")
    if isinstance(value, str):
        if not value.strip().isdigit():
            node.unsupported("Argo variable in parallelism", "a loop's parallelism must be a number")
        value = int(value)
    if value < 0:
        node.fail(f"parallelism must be 0 (no limit) or more, not {value}")
    return value or None


def _reference(node: Node, pattern: re.Pattern[str], what: str) -> tuple[str, str]:
    match = VARIABLE.fullmatch(node.value.strip())
    found = pattern.match(match.group(1)) if match else None
    if found is None:
        node.unsupported("Argo DAG output", f"{node.value!r} is not {what}, the only DAG output translated")
    return found.group(1), found.group(2)


def _condition(when: Node, channel: Any) -> str:
    """An Argo ``when`` → CEL over the task's inputs. ``channel(node)`` gives the input
    holding a variable's value.

    Argo substitutes the variables into the text, then evaluates it with govaluate,
    reading unquoted words as text (so ``{{x}} == heads`` compares text, as older v1
    compilers wrote it) and unquoted numbers as numbers. So: a comparison with quoted
    text or a word compares text; one of numbers and (unquoted) variables compares
    numbers, ``double(…)`` of the variables; ``==``/``!=`` of two variables compare text."""
    text = when.expect(str, "a condition")
    match = _WHEN.match(text)
    if match is None:
        when.unsupported("Argo when expression", f"the condition {text!r} is not one comparison (==, !=, <, <=, "
                         ">, >=) of two values, as the KFP v1 SDK writes dsl.Condition")
    left, operator, right = match.groups()
    kinds = [_operand_kind(operand) for operand in (left, right)]
    numeric = all(kind in ("number", "variable") for kind in kinds)
    if operator in ("==", "!=") and "number" not in kinds:
        numeric = False
    if numeric:
        operands = [_cel_number(operand, when, channel) for operand in (left, right)]
    else:
        operands = [_cel_text(operand[1:-1] if kind == "quoted" else operand, when, channel)
                    for operand, kind in zip((left, right), kinds)]
    return f"{operands[0]} {operator} {operands[1]}"


def _operand_kind(operand: str) -> str:
    if operand[0] in "\"'":
        return "quoted"
    if VARIABLE.fullmatch(operand):
        return "variable"
    if _NUMBER.match(operand):
        return "number"
    return "word"


def _parameter(name: str) -> str:
    key = f"'{name}'" if _SIMPLE_NAME.match(name) else json.dumps(name)
    return f"inputs.parameter_values[{key}]"


def _cel_text(text: str, when: Node, channel: Any) -> str:
    parts: list[str] = []
    position = 0
    for match in VARIABLE.finditer(text):
        if match.start() > position:
            parts.append(json.dumps(text[position:match.start()], ensure_ascii=False))
        parts.append(_parameter(channel(Node(match.group(0), when.path, when.file, when.line))))
        position = match.end()
    if position < len(text) or not parts:
        parts.append(json.dumps(text[position:], ensure_ascii=False))
    return " + ".join(parts)


def _cel_number(operand: str, when: Node, channel: Any) -> str:
    if VARIABLE.fullmatch(operand):
        return f"double({_parameter(channel(Node(operand, when.path, when.file, when.line)))})"
    return repr(float(operand))
