"""KFP v1 ``dsl.VolumeOp``: an Argo resource template creating a PersistentVolumeClaim →
kfp-kubernetes' ``CreatePVC`` component (the executor KFP v2 writes for
``kubernetes.CreatePVC``, run by :class:`airflow_kfx.operators.control.KfxPvcOperator`).

The v1 compiler writes a VolumeOp as ``resource: {action: create, manifest: <PVC YAML>}``
with the outputs ``<op>-name`` (``{.metadata.name}``), ``<op>-manifest`` and ``<op>-size``;
its consumers mount ``{{inputs.parameters.<op>-name}}``, passed from
``{{tasks.<op>.outputs.parameters.<op>-name}}`` (see ``argo_v1_container.volume_mounts``).

    metadata.name: '{{workflow.name}}-x'  → pvc_name_suffix 'x' (a claim per run, as in v1)
    metadata.name: fixed                  → pvc_name
    spec.accessModes                      → access_modes
    spec.resources.requests.storage       → size (fixed, or one of the template's inputs)
    spec.storageClassName, volumeName     → storage_class_name, volume_name
    metadata.annotations                  → annotations

Other resources (``dsl.ResourceOp`` of any kind, ``VolumeSnapshotOp``), other actions, a
``dataSource`` and the ``-manifest``/``-size`` outputs (read back from the cluster's
object) are refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from airflow_kfx.spec.argo_v1_container import (
    INPUT,
    VARIABLE,
    Template,
    refuse_template_kind,
    template_inputs,
)
from airflow_kfx.spec.rebuilt import Origin, located
from airflow_kfx.spec.source import LineDict, Node, join_path

CREATE_PVC_IMAGE = "argostub/createpvc"  # kfp-kubernetes' CreatePVC executor (spec/ir.py)
_RUN_NAME_PREFIX = re.compile(r"^\{\{\s*workflow\.name\s*\}\}-(.+)$")
_SPEC_KEYS = {"accessModes", "resources", "storageClassName", "volumeName"}
_RESOURCE_HINT = ("only dsl.VolumeOp's PersistentVolumeClaim is translated (to kfp-kubernetes CreatePVC); "
                  "other Kubernetes resources have no PipelineSpec equivalent")


def is_resource_template(template: Node) -> bool:
    """A ``resource`` template: a VolumeOp is translated, any other resource refused by kind."""
    return template.has("resource")


def volume_op_template(template: Node, components: dict[str, Any], executors: dict[str, Any],
                       origins: list[Origin]) -> Template:
    """One VolumeOp template → ``comp-<name>`` running kfp-kubernetes' CreatePVC."""
    refuse_template_kind(template, "resource")
    for key, child in template.items():
        if key not in ("name", "inputs", "outputs", "resource", "metadata"):
            child.unsupported(f"Argo resource template {key}", f"the setting '{key}' of a resource template "
                                                               "is not translated")
    name = template.value["name"]
    resource = template.child("resource")
    manifest_node = resource.required("manifest", str)
    try:
        manifest = yaml.safe_load(manifest_node.value)
    except yaml.YAMLError as err:
        manifest_node.fail(f"the resource manifest is not YAML: {err}")
    if not isinstance(manifest, Mapping) or manifest.get("kind") != "PersistentVolumeClaim" \
            or manifest.get("apiVersion") != "v1":
        kind = manifest.get("kind") if isinstance(manifest, Mapping) else None
        manifest_node.unsupported("Argo resource template", f"a resource template creating a {kind or 'resource'}: "
                                  + _RESOURCE_HINT)
    for key, child in resource.items():
        if key not in ("action", "manifest"):
            child.unsupported(f"Argo resource {key}", f"'{key}' of a resource template (ResourceOp's success "
                              "and failure conditions, merge strategies) is not translated")
    action = resource.required("action", str)
    if action.value != "create":
        action.unsupported(f"Argo resource action {action.value}", _RESOURCE_HINT)
    inputs, artifacts = template_inputs(template.child("inputs"))
    if artifacts:
        template.child("inputs").child("artifacts").unsupported("Argo resource template input artifacts",
                                                                "a VolumeOp takes parameters only")
    values, input_keys = _create_pvc_inputs(manifest_node, manifest, inputs)
    output_keys, refused = _outputs(template.child("outputs"))
    label, component = f"exec-{name}", f"comp-{name}"
    executors[label] = located(template.line, container=located(template.line, image=CREATE_PVC_IMAGE))
    parameters = located(template.line)
    for key, (kind, _) in values.items():
        parameters[key] = located(template.line, parameterType=kind)
    components[component] = located(
        template.line, executorLabel=label,
        inputDefinitions=located(template.line, parameters=parameters),
        outputDefinitions=located(template.line, parameters=located(
            template.line, name=located(template.line, parameterType="STRING"))))
    origins.append(Origin(join_path("components", component), template.path, template.line, exact=False))
    origins.append(Origin(join_path("deploymentSpec", "executors", label), resource.path, resource.line, exact=False))
    constants = {key: value for key, (_, value) in values.items() if value is not None}
    return Template(component, tuple(inputs), tuple(output_keys), input_keys=input_keys, output_keys=output_keys,
                    refused_outputs=refused, constants=constants)


def _create_pvc_inputs(node: Node, manifest: Mapping[str, Any], inputs: list[str],
                       ) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
    """CreatePVC's inputs (name → (parameter type, default or None when a template input
    feeds it)) and which template input feeds which of them."""
    values: dict[str, tuple[str, Any]] = {}
    feeds: dict[str, str] = {}

    def take(key: str, kind: str, value: Any, where: str) -> None:
        if isinstance(value, str) and "{{" in value:
            found = VARIABLE.fullmatch(value.strip())
            taken = INPUT.match(found.group(1)) if found else None
            if taken is None or taken.group(1) not in inputs:
                node.unsupported("Argo variable in a VolumeOp manifest", f"{where} must be fixed text or one of "
                                 f"the template's inputs, not {value!r}")
            feeds[taken.group(1)] = key
            values[key] = (kind, None)
        else:
            values[key] = (kind, value)

    metadata = manifest.get("metadata") or {}
    for key in metadata:
        if key not in ("name", "annotations"):
            node.unsupported(f"VolumeOp manifest metadata.{key}", "only the claim's name and annotations are "
                             "translated")
    claim_name = str(metadata.get("name") or "")
    suffix = _RUN_NAME_PREFIX.match(claim_name)
    if suffix:
        values["pvc_name_suffix"] = ("STRING", "-" + suffix.group(1))
    elif claim_name and "{{" not in claim_name:
        values["pvc_name"] = ("STRING", claim_name)
    else:
        node.unsupported("Argo variable in a VolumeOp manifest", f"the claim name {claim_name!r} must be fixed "
                         "text or '{{workflow.name}}-<suffix>'")
    if metadata.get("annotations"):
        values["annotations"] = ("STRUCT", dict(metadata["annotations"]))
    spec = manifest.get("spec") or {}
    for key in spec:
        if key not in _SPEC_KEYS:
            node.unsupported(f"VolumeOp manifest spec.{key}", f"the claim setting '{key}' (a snapshot or clone "
                             "source, selectors) is not translated")
    take("access_modes", "LIST", list(spec.get("accessModes") or ["ReadWriteOnce"]), "accessModes")
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        node.fail("the PersistentVolumeClaim needs spec.resources.requests.storage")
    take("size", "STRING", str(storage), "the storage request")
    for key, target in (("storageClassName", "storage_class_name"), ("volumeName", "volume_name")):
        if spec.get(key):
            take(target, "STRING", str(spec[key]), key)
    return values, feeds


def _outputs(node: Node) -> tuple[dict[str, str], dict[str, str]]:
    """The claim's name output (``{.metadata.name}``) → CreatePVC's ``name``; the others
    (the object's JSON, its bound size) → why they cannot be read."""
    keys: dict[str, str] = {}
    refused: dict[str, str] = {}
    for item in node.child("parameters").elements():
        item.expect(Mapping, "an output parameter")
        output = item.required("name", str).value
        path = item.child("valueFrom").optional("jsonPath", str, "")
        if path == "{.metadata.name}":
            keys[output] = "name"
        else:
            refused[output] = f"the output '{output}' reads {path or 'a value'} back from the cluster's object"
    for item in node.child("artifacts").elements():
        item.unsupported("Argo resource template output artifacts", "a VolumeOp has parameter outputs only")
    return keys, refused


def claim_source(entry: LineDict, source: LineDict, where: Node) -> None:
    """A consumer's ``pvcMount`` whose claim a task argument names: the argument's source
    (``taskOutputParameter`` of the VolumeOp's task, or a DAG input) becomes the mount's
    ``pvcNameParameter``. The mount is the executor's, so every task running the template
    must pass the same source."""
    current = entry.get("pvcNameParameter")
    if current is not None and current != source:
        where.unsupported("Argo template mounting different claims", "tasks running one template pass it "
                          "different claims; each template's mounts are one executor's settings")
    entry["pvcNameParameter"] = source
