"""KFP v1 workflows compiled to pass artifacts through a volume
(``PipelineConf.data_passing_method = KubernetesVolume(volume, path_prefix)``) → the same
workflow passing artifacts, as the v1 compiler writes it by default. Used by
:mod:`airflow_kfx.spec.argo_v1` before it translates the workflow.

With a data-passing volume the v1 compiler writes no artifacts: the workflow declares
the volume (``spec.volumes``) and every step mounts a per-run folder of it where its
component reads or writes a file —

* an output ``O`` of a step: a mount at the output file's folder with subPath
  ``<prefix>{{workflow.uid}}_{{pod.name}}/O``, and an output parameter ``O-subpath``
  holding that subPath;
* an input ``I`` fed by such an output: a read-only mount at the input file's folder
  with subPath ``{{inputs.parameters.I-subpath}}``, an input parameter ``I-subpath``, and
  the DAG task passing ``{{tasks.T.outputs.parameters.O-subpath}}`` to it.

Those become the output artifact ``O`` and the input artifact ``I`` (each at the file
the command line names under the mount) and an artifact argument ``from:
{{tasks.T.outputs.artifacts.O}}``: the data moves between steps through the pipeline root,
as every other artifact of airflow-kfx does, instead of through the user's volume (the
volume itself is not mounted). A workflow whose ``spec.volumes`` is anything else is
left as it is, and its volumes are refused by name.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from airflow_kfx.spec.rebuilt import located
from airflow_kfx.spec.source import Node

_SUFFIX = "-subpath"
_OUTPUT_SUBPATH = re.compile(r"^(?P<prefix>[^{}]*)\{\{workflow\.uid\}\}_\{\{pod\.name\}\}/(?P<output>[^/{}\s]+)$")
_INPUT_SUBPATH = re.compile(r"^\{\{inputs\.parameters\.(?P<name>[^{}\s]+)-subpath\}\}$")
_TASK_SUBPATH = re.compile(r"^\{\{tasks\.(?P<task>[^.{}\s]+)\.outputs\.parameters\.(?P<output>[^{}\s]+)-subpath\}\}$")


def without_passing_volume(workflow: Node) -> Node:
    """``workflow`` with its data-passing volume turned into artifact passing (itself if
    it has none)."""
    volumes = workflow.child("spec").child("volumes")
    if not isinstance(volumes.value, list) or len(volumes.value) != 1 or not isinstance(volumes.value[0], Mapping):
        return workflow
    volume = volumes.value[0].get("name")
    mounts = [mount for template in _templates(workflow.value) for mount in _mounts(template, volume)]
    if not mounts or not all(_OUTPUT_SUBPATH.match(str(m.get("subPath", ""))) or
                             _INPUT_SUBPATH.match(str(m.get("subPath", ""))) for m in mounts):
        return workflow
    data = copy.deepcopy(workflow.value)
    spec = data["spec"]
    del spec["volumes"]
    try:
        for index, template in enumerate(spec["templates"]):
            where = workflow.child("spec").child("templates").child(index)
            if not isinstance(template, Mapping):
                continue  # the translation proper says what is wrong with it
            if isinstance(template.get("container"), Mapping):
                _container_template(template, volume, where)
            elif isinstance(template.get("dag"), Mapping):
                _dag_template(template)
    except (AttributeError, TypeError, KeyError):
        # A malformed template (a list where a mapping belongs…): not the compiler's shape,
        # so no rewrite; the translation refuses the volume or reports the malformed field.
        return workflow
    return Node(data, workflow.path, workflow.file, workflow.line)


def _templates(workflow: Any) -> list[Mapping[str, Any]]:
    spec = workflow.get("spec") if isinstance(workflow, Mapping) else None
    templates = spec.get("templates") if isinstance(spec, Mapping) else None
    return [t for t in templates if isinstance(t, Mapping)] if isinstance(templates, list) else []


def _mounts(template: Mapping[str, Any], volume: Any) -> list[Mapping[str, Any]]:
    container = template.get("container")
    mounts = container.get("volumeMounts") if isinstance(container, Mapping) else None
    if not isinstance(mounts, list):
        return []
    return [m for m in mounts if isinstance(m, Mapping) and m.get("name") == volume]


def _container_template(template: dict[str, Any], volume: Any, where: Node) -> None:
    container = template["container"]
    words = [w for key in ("command", "args") for w in container.get(key) or [] if isinstance(w, str)]
    kept = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if not (isinstance(mount, Mapping) and mount.get("name") == volume):
            kept.append(mount)
            continue
        node = where.child("container").child("volumeMounts").child(index)
        subpath = str(mount.get("subPath", ""))
        output = _OUTPUT_SUBPATH.match(subpath)
        if output:
            name = output["output"]
            _drop_parameter(template, "outputs", name + _SUFFIX, node)
            _add_artifact(template, "outputs", name, _file_under(mount, words, template, name, node))
        else:
            name = _INPUT_SUBPATH.match(subpath)["name"]  # type: ignore[index]  # checked by the caller
            _drop_parameter(template, "inputs", name + _SUFFIX, node)
            _add_artifact(template, "inputs", name, _file_under(mount, words, template, name, node))
    if kept:
        container["volumeMounts"] = kept
    else:
        container.pop("volumeMounts", None)


def _file_under(mount: Mapping[str, Any], words: list[str], template: Mapping[str, Any], name: str,
                node: Node) -> str:
    """The file the command line names inside the mounted folder (the component's
    ``inputPath``/``outputPath``); for an output parameter, the file it is read from."""
    folder = str(mount.get("mountPath", "")).rstrip("/") + "/"
    found = {word for word in words if word.startswith(folder)}
    for parameter in (template.get("outputs") or {}).get("parameters") or []:
        path = (parameter.get("valueFrom") or {}).get("path") if isinstance(parameter, Mapping) else None
        if isinstance(parameter, Mapping) and parameter.get("name") == name and isinstance(path, str):
            found.add(path)
    if len(found) != 1:
        node.unsupported("Argo data-passing volume mount", f"the data-passing mount of '{name}' at {folder} "
                         f"should hold one file the command line names, found {sorted(found) or 'none'}")
    return found.pop()


def _drop_parameter(template: dict[str, Any], side: str, name: str, node: Node) -> None:
    parameters = (template.get(side) or {}).get("parameters") or []
    kept = [p for p in parameters if not (isinstance(p, Mapping) and p.get("name") == name)]
    if len(kept) == len(parameters):
        node.fail(f"a data-passing volume mount without the {side[:-1]} parameter '{name}' the v1 compiler "
                  "writes beside it; the workflow was edited by hand?")
    template[side]["parameters"] = kept
    if not kept:
        del template[side]["parameters"]


def _add_artifact(template: dict[str, Any], side: str, name: str, path: str) -> None:
    holder = template.setdefault(side, located(getattr(template, "line", None)))
    holder.setdefault("artifacts", []).append(located(getattr(template, "line", None), name=name, path=path))


def _dag_template(template: dict[str, Any]) -> None:
    """Arguments ``X-subpath`` passed from a task's or the DAG's ``-subpath`` parameter →
    artifact arguments; the DAG's own ``-subpath`` inputs and outputs → artifacts."""
    passed_in = set()
    for task in template["dag"].get("tasks") or []:
        arguments = task.get("arguments") if isinstance(task, Mapping) else None
        if not isinstance(arguments, Mapping):
            continue
        kept, artifacts = [], []
        for argument in arguments.get("parameters") or []:
            value = str(argument.get("value", "")) if isinstance(argument, Mapping) else ""
            name = str(argument.get("name", "")) if isinstance(argument, Mapping) else ""
            from_task, from_input = _TASK_SUBPATH.match(value), _INPUT_SUBPATH.match(value)
            if name.endswith(_SUFFIX) and (from_task or from_input):
                source = (f"{{{{tasks.{from_task['task']}.outputs.artifacts.{from_task['output']}}}}}" if from_task
                          else f"{{{{inputs.artifacts.{from_input['name']}}}}}")  # type: ignore[index]
                if from_input:
                    passed_in.add(from_input["name"])
                artifacts.append(located(getattr(argument, "line", None), name=name[: -len(_SUFFIX)], **{"from": source}))
            else:
                kept.append(argument)
        if artifacts:
            arguments["parameters"] = kept
            arguments.setdefault("artifacts", []).extend(artifacts)
            if not kept:
                del arguments["parameters"]
    inputs = template.get("inputs")
    if passed_in and isinstance(inputs, Mapping):
        for name in sorted(passed_in):
            inputs["parameters"] = [p for p in inputs.get("parameters") or []
                                    if not (isinstance(p, Mapping) and p.get("name") == name + _SUFFIX)]
            inputs.setdefault("artifacts", []).append(located(getattr(inputs, "line", None), name=name))
        if not inputs["parameters"]:
            del inputs["parameters"]
    outputs = template.get("outputs")
    if isinstance(outputs, Mapping):
        kept = []
        for parameter in outputs.get("parameters") or []:
            value = (parameter.get("valueFrom") or {}).get("parameter") if isinstance(parameter, Mapping) else None
            from_task = _TASK_SUBPATH.match(str(value or ""))
            if from_task and str(parameter.get("name", "")).endswith(_SUFFIX):
                outputs.setdefault("artifacts", []).append(located(getattr(parameter, "line", None), **{
                    "name": parameter["name"][: -len(_SUFFIX)],
                    "from": f"{{{{tasks.{from_task['task']}.outputs.artifacts.{from_task['output']}}}}}"}))
            else:
                kept.append(parameter)
        if "parameters" in outputs:
            outputs["parameters"] = kept
