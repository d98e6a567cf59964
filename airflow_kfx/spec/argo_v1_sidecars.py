"""KFP v1 Argo workflows: a container template's ``initContainers``
(``ContainerOp.add_init_container``) and ``sidecars`` (``ContainerOp.add_sidecar``) →
kfp-kubernetes ``initContainers`` of the executor. Used by
:mod:`airflow_kfx.spec.argo_v1_container`.

An Argo sidecar runs beside the main container and is stopped when the main container
ends; that is a Kubernetes native sidecar (an init container with ``restartPolicy:
Always``, Kubernetes 1.29+), which both runtimes run that way (the local runtime starts
it before the main command and stops it after). Init containers run first, in order,
then the sidecars start, as Argo starts them before the main container.

Only what a kfp-kubernetes init container can say is translated: name, image, command,
args, plain env and resources. Anything else (volume mounts, ports, a security context…)
and Argo variables inside the text are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow_kfx.spec.rebuilt import located
from airflow_kfx.spec.source import LineDict, Node

_FIELDS = ("name", "image", "command", "args", "env", "resources")


def extra_containers(template: Node) -> list[LineDict]:
    """The template's init containers, then its sidecars, as kfp-kubernetes ``initContainers``."""
    containers = [(node, "init container", None) for node in template.child("initContainers").elements()]
    containers += [(node, "sidecar", "Always") for node in template.child("sidecars").elements()]
    result: list[LineDict] = []
    for node, kind, restart_policy in containers:
        entry = _container(node, kind, restart_policy)
        if entry["name"] == "base" or any(entry["name"] == other["name"] for other in result):
            # "base" is the pod's main container (KubernetesPodOperator's name for it)
            node.child("name").fail(f"container name '{entry['name']}' is already taken in the pod")
        result.append(entry)
    return result


def _container(node: Node, kind: str, restart_policy: str | None) -> LineDict:
    node.expect(Mapping, f"an Argo {kind}")
    for key, child in node.items():
        if key not in _FIELDS:
            child.unsupported(f"Argo {kind} {key}", f"the {kind} setting '{key}' is not translated; only "
                              f"{', '.join(_FIELDS)} are")
    if "{{" in str(node.value):
        node.unsupported(f"Argo variable in a {kind}", f"the {kind}'s image, command, args and env must be fixed "
                         "text (a kfp-kubernetes init container takes no placeholders)")
    entry = located(node.line, name=node.required("name", str).value, image=node.required("image", str).value)
    for key in ("command", "args"):
        if node.has(key):
            entry[key] = [str(element.expect((str, int, float), "a command-line word")) for element in node.child(key).elements()]
    env = []
    for variable in node.child("env").elements():
        variable.expect(Mapping, "an environment variable")
        if variable.has("valueFrom"):
            variable.child("valueFrom").unsupported(f"Argo {kind} env valueFrom",
                                                    f"only plain env values reach the {kind}")
        env.append(located(variable.line, name=variable.required("name", str).value,
                           value=str(variable.optional("value", (str, int, float), ""))))
    if env:
        entry["env"] = env
    if node.has("resources"):
        resources = node.child("resources")
        entry["resources"] = located(resources.line, **{
            group: {str(name): str(quantity.expect((str, int, float), "a resource quantity"))
                    for name, quantity in resources.child(group).items()}
            for group in ("requests", "limits") if resources.has(group)})
        for group, child in resources.items():
            if group not in ("requests", "limits"):
                child.unsupported(f"Argo {kind} resources.{group}", "only requests and limits are translated")
    if restart_policy:
        entry["restartPolicy"] = restart_policy
    return entry
