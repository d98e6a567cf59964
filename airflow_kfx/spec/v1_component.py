"""KFP v1 component specs (``component.yaml``) → the model's Component + Executor.

KFP v1 semantics, as the v1 SDK (and KFP v2's v1 loader) define them:
- an input consumed with ``inputPath``/``inputUri`` is an artifact (a file), one
  consumed with ``inputValue`` a parameter; an ``outputPath`` output of a
  parameter type (String, Integer, …) is a parameter read from its file, any other
  output an artifact;
- every parameter reaches the container as text: v1 serialises values by their
  declared type (``Integer`` 3 → ``3``, ``Bool`` → ``True``/``False``, JSON types
  with ``json.dumps``), so the model types v1 parameters as STRING and keeps the
  v1 type for serialisation;
- placeholders translate to their v2 equivalents, which the shared placeholder
  resolver fills: ``inputValue`` → ``{{$.inputs.parameters['x']}}``,
  ``concat`` → ``Concat``, ``if``/``isPresent`` → ``IfPresent``, ``executorInput``
  → ``{{$}}``, ``outputMetadata`` → ``{{$.outputs.output_file}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_kfx.spec.model import (
    NO_DEFAULT,
    ArtifactSpec,
    Component,
    Container,
    Executor,
    Interface,
    Location,
    ParameterSpec,
    ParameterType,
)
from airflow_kfx.spec.source import Node

# v1 type names that are parameters (values), and the KFP parameter type they carry.
V1_PARAMETER_TYPES: dict[str, ParameterType] = {
    "string": ParameterType.STRING, "str": ParameterType.STRING, "text": ParameterType.STRING,
    "integer": ParameterType.NUMBER_INTEGER, "int": ParameterType.NUMBER_INTEGER,
    "float": ParameterType.NUMBER_DOUBLE, "double": ParameterType.NUMBER_DOUBLE,
    "bool": ParameterType.BOOLEAN, "boolean": ParameterType.BOOLEAN,
    "jsonarray": ParameterType.LIST, "list": ParameterType.LIST,
    "jsonobject": ParameterType.STRUCT, "dict": ParameterType.STRUCT,
    "gcspath": ParameterType.STRING, "gcrpath": ParameterType.STRING, "gcpregion": ParameterType.STRING,
    "gcpprojectid": ParameterType.STRING, "uri": ParameterType.STRING, "localpath": ParameterType.STRING,
}


@dataclass(frozen=True)
class V1Component:
    """A loaded v1 component: the model pieces plus what v1 semantics need."""

    name: str
    description: str
    component: Component
    executor: Executor
    # input name → v1 type name (for serialising values as v1 does); "" = untyped
    v1_types: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def is_v1_component(document: Any) -> bool:
    return isinstance(document, Mapping) and "implementation" in document


def type_name(value: Any) -> str:
    """A v1 ``type``: a string, or a one-key mapping like ``{GCSPath: {...}}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        return str(next(iter(value)))
    return ""


def parse_v1_component(doc: Node) -> V1Component:
    doc.expect(Mapping, "a KFP v1 component spec")
    name = doc.optional("name", str) or "component"
    implementation = doc.required("implementation", Mapping)
    if implementation.has("graph"):
        graph = implementation.child("graph")
        refs = sorted({
            str(ref.get("url") or ref.get("name") or ref.get("digest"))
            for _, task in graph.child("tasks").items()
            if isinstance(task.value, Mapping)
            for ref in [task.child("componentRef").value] if isinstance(ref, Mapping) and "spec" not in ref
        })
        graph.unsupported(
            "v1 graph component",
            "graph components (a pipeline written as a v1 component) are not supported; "
            "compile the pipeline with the KFP v2 SDK instead"
            + (f"; its tasks' components are only referenced, not included: {refs[0]}"
               + (f" and {len(refs) - 1} more" if len(refs) > 1 else "") if refs else ""),
        )
    container = implementation.required("container", Mapping)
    inputs = {}
    for element in doc.child("inputs").elements():
        input_name = element.required("name", str).value
        inputs[input_name] = element
    outputs = {}
    for element in doc.child("outputs").elements():
        outputs[element.required("name", str).value] = element

    usage = _Usage()
    command = [usage.translate(item) for item in container.child("command").elements()]
    args = [usage.translate(item) for item in container.child("args").elements()]
    file_outputs = _file_outputs(container.child("fileOutputs"), outputs, usage)
    for kind, names in (("input", usage.inputs()), ("output", usage.outputs)):
        declared = inputs if kind == "input" else outputs
        for used in sorted(names):
            if used not in declared:
                doc.child("implementation").fail(f"the command uses {kind} '{used}', which the component does not declare")

    parameters: dict[str, ParameterSpec] = {}
    artifacts: dict[str, ArtifactSpec] = {}
    v1_types: dict[str, str] = {}
    for input_name, element in inputs.items():
        v1_type = type_name(element.get("type"))
        v1_types[input_name] = v1_type
        optional = bool(element.get("optional", False))
        description = element.optional("description", str, "")
        if _is_file_input(input_name, v1_type, usage):
            artifacts[input_name] = ArtifactSpec(input_name, _schema_title(v1_type), optional=optional or element.has("default"))
        else:
            default = serialize_v1(element.get("default"), v1_type) if element.has("default") else NO_DEFAULT
            parameters[input_name] = ParameterSpec(
                input_name,
                ParameterType.STRING,  # v1 values reach the container as text
                default=default,
                optional=optional or default is not NO_DEFAULT,
                description=description,
            )
    out_parameters: dict[str, ParameterSpec] = {}
    out_artifacts: dict[str, ArtifactSpec] = {}
    for output_name, element in outputs.items():
        v1_type = type_name(element.get("type"))
        # a fileOutputs output is an outputPath output at a fixed path (KFP v1 puts both in
        # ContainerOp.file_outputs): a parameter when its type is one, else an artifact
        if output_name not in usage.output_uris and v1_type.lower() in V1_PARAMETER_TYPES:
            out_parameters[output_name] = ParameterSpec(output_name, ParameterType.STRING)
        else:
            out_artifacts[output_name] = ArtifactSpec(output_name, _schema_title(v1_type))
    # Output paths of parameters are the parameter's output file; of artifacts the path.
    command = [_finish(item, out_parameters) for item in command]
    args = [_finish(item, out_parameters) for item in args]

    env = _text_map(container.child("env"))
    location = Location(doc.file, doc.path or "implementation", doc.line)
    executor = Executor(
        label=f"exec-{_slug(name)}",
        location=location,
        container=Container(
            image=container.required("image", str).value, command=tuple(command), args=tuple(args), env=env,
            file_outputs=file_outputs,
        ),
    )
    component = Component(
        name=f"comp-{_slug(name)}",
        location=location,
        inputs=Interface(parameters, artifacts),
        outputs=Interface(out_parameters, out_artifacts),
        executor_label=executor.label,
    )
    metadata = doc.child("metadata")
    return V1Component(
        name=name,
        description=doc.optional("description", str) or "",
        component=component,
        executor=executor,
        v1_types=v1_types,
        annotations=_text_map(metadata.child("annotations")),
    )


def _file_outputs(node: Node, outputs: Mapping[str, Node], usage: _Usage) -> dict[str, str]:
    """``fileOutputs: {output: /fixed/path}``, checked as KFP v1 does
    (``_structures.ComponentSpec._post_init``: an entry naming no declared output is an
    error; ``_components._resolve_command_line_and_paths``: an output with a fixed path
    and an ``outputPath`` placeholder is a conflict). Argo reads the files after the
    container ends, so a path must be absolute."""
    if node.value is None:
        return {}
    node.expect(Mapping, "a mapping of output names to the paths the command writes them at")
    paths: dict[str, str] = {}
    for output_name, child in node.items():
        path = child.expect(str, "an absolute path in the container")
        if output_name not in outputs:
            child.fail(f"fileOutputs names output '{output_name}', which the component does not declare")
        if not path.startswith("/") or "\0" in path:
            child.fail(f"the fileOutputs path of output '{output_name}' must be an absolute path, not {path!r}")
        if output_name in usage.outputs:
            child.fail(
                f"output '{output_name}' has a fixed path in fileOutputs and is also used with an output "
                "placeholder in the command; KFP v1 refuses the conflicting output files"
            )
        paths[output_name] = path
    return paths


# Argo's run-time variables as KFP v1 used them (``dsl.RUN_ID_PLACEHOLDER`` = the
# workflow's uid, ``dsl.EXECUTION_ID_PLACEHOLDER`` = the pod's name, and the workflow's
# name) → the KFP v2 run-time placeholders that mean the same: the run's id, this task
# execution's id and the run's name. Argo substituted them inside any text; so do we.
ARGO_RUN_VARIABLES = {
    "workflow.uid": "{{$.pipeline_job_uuid}}",
    "workflow.name": "{{$.pipeline_job_name}}",
    "pod.name": "{{$.pipeline_task_uuid}}",
}
_ARGO_RUN_VARIABLE = re.compile(r"\{\{\s*(" + "|".join(re.escape(name) for name in ARGO_RUN_VARIABLES) + r")\s*\}\}")


def with_run_placeholders(text: str) -> str:
    """``{{workflow.uid}}``, ``{{workflow.name}}``, ``{{pod.name}}`` in ``text`` → their v2 placeholders."""
    return _ARGO_RUN_VARIABLE.sub(lambda match: ARGO_RUN_VARIABLES[match.group(1)], text)


# Placeholders naming an input or output → which of the two.
_NAMED = {"inputValue": "input", "inputPath": "input", "inputUri": "input", "outputPath": "output",
          "outputUri": "output"}


class _Usage:
    """Translates v1 placeholders and records how each input/output is used."""

    def __init__(self) -> None:
        self.value_inputs: set[str] = set()
        self.file_inputs: set[str] = set()
        self.present_checks: set[str] = set()
        self.outputs: set[str] = set()
        self.output_paths: set[str] = set()
        self.output_uris: set[str] = set()

    def inputs(self) -> set[str]:
        return self.value_inputs | self.file_inputs | self.present_checks

    def translate(self, node: Node) -> Any:
        item = node.value
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            return with_run_placeholders(str(item))
        if not isinstance(item, Mapping) or len(item) != 1:
            node.fail("expected a string or a one-key placeholder like {inputValue: name}")
        kind = next(iter(item))
        if kind in _NAMED:
            return self._named(kind, node.child(kind).expect(str, f"the name of an {_NAMED[kind]}"))
        if kind == "concat":
            return {"Concat": [self.translate(part) for part in node.child(kind).elements()]}
        if kind == "if":
            return self._if(node.child(kind))
        if kind == "executorInput":
            return "{{$}}"
        if kind == "outputMetadata":
            return "{{$.outputs.output_file}}"
        node.unsupported(f"v1 placeholder '{kind}'", f"the v1 placeholder '{kind}' is not supported")

    def _named(self, kind: str, name: str) -> Any:
        """The v2 form of a placeholder naming an input or output, recording the use."""
        if kind == "inputValue":
            self.value_inputs.add(name)
            return f"{{{{$.inputs.parameters['{name}']}}}}"
        if kind in ("inputPath", "inputUri"):
            self.file_inputs.add(name)
            return f"{{{{$.inputs.artifacts['{name}'].{'path' if kind == 'inputPath' else 'uri'}}}}}"
        self.outputs.add(name)
        if kind == "outputPath":
            self.output_paths.add(name)
            return _OutputPath(name)
        self.output_uris.add(name)
        return f"{{{{$.outputs.artifacts['{name}'].uri}}}}"

    def _if(self, node: Node) -> Any:
        cond = node.required("cond", Mapping)
        if not cond.has("isPresent"):
            cond.unsupported("v1 if condition", "only {isPresent: name} conditions are supported in v1 'if' placeholders")
        name = cond.required("isPresent", str, "the name of an input").value
        self.present_checks.add(name)
        placeholder: dict[str, Any] = {"InputName": name, "Then": self._branch(node.child("then"))}
        if node.get("else") is not None:
            placeholder["Else"] = self._branch(node.child("else"))
        return {"IfPresent": placeholder}

    def _branch(self, node: Node) -> list[Any]:
        """``then``/``else``: a list of arguments, or one argument."""
        if isinstance(node.value, list):
            return [self.translate(item) for item in node.elements()]
        return [] if node.value is None else [self.translate(node)]


@dataclass(frozen=True)
class _OutputPath:
    """``{outputPath: x}``: a parameter's output file or an artifact's path, known once types are."""

    name: str


def _finish(item: Any, out_parameters: Mapping[str, ParameterSpec]) -> Any:
    if isinstance(item, _OutputPath):
        if item.name in out_parameters:
            return f"{{{{$.outputs.parameters['{item.name}'].output_file}}}}"
        return f"{{{{$.outputs.artifacts['{item.name}'].path}}}}"
    if isinstance(item, dict):
        return {k: _finish(v, out_parameters) for k, v in item.items()}
    if isinstance(item, list):
        return [_finish(v, out_parameters) for v in item]
    return item


def _is_file_input(name: str, v1_type: str, usage: _Usage) -> bool:
    """A file (artifact) when read as a path/URI; a value when read with inputValue;
    otherwise (e.g. only through executorInput) by its type, as KFP's v1 loader does."""
    if name in usage.file_inputs:
        return True
    if name in usage.value_inputs:
        return False
    return bool(v1_type) and v1_type.lower() not in V1_PARAMETER_TYPES


def _text_map(node: Node) -> dict[str, str]:
    """``env``/``annotations``: names to texts (YAML may type a value as a number)."""
    return {name: _text(child) for name, child in node.items()}


def _text(node: Node) -> str:
    value = node.expect((str, int, float, bool, type(None)), "a string")
    return "" if value is None else str(value)


def _schema_title(v1_type: str) -> str:
    if v1_type.startswith("google."):
        return v1_type
    known = {"dataset": "system.Dataset", "model": "system.Model", "metrics": "system.Metrics",
             "html": "system.HTML", "markdown": "system.Markdown"}
    return known.get(v1_type.lower(), "system.Artifact")


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "component"


def serialize_v1(value: Any, v1_type: str) -> Any:
    """A value as KFP v1 passes it to the container (``kfp.components._data_passing``)."""
    if value is None or isinstance(value, str):
        return value
    kind = V1_PARAMETER_TYPES.get(v1_type.lower())
    if kind in (ParameterType.LIST, ParameterType.STRUCT) or isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
