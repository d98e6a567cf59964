"""KFP v1 Argo workflows: a container template's pod scheduling settings → the
kfp-kubernetes executor config a v2 task would carry. Used by
:mod:`airflow_kfx.spec.argo_v1_container`.

* ``tolerations`` (``ContainerOp.add_toleration``, ``use_preemptible_nodepool``) →
  ``tolerations``, one entry each.
* ``affinity`` (``ContainerOp.add_affinity``, ``use_preemptible_nodepool``): node affinity
  → ``nodeAffinity`` terms (a required ``nodeSelectorTerm`` without a weight, a preferred
  one with its weight, as kfp-kubernetes' ``add_node_affinity`` writes them); pod affinity
  and anti-affinity → ``podAffinity`` terms (``anti`` for the latter). The pod gets back
  the Kubernetes affinity it was compiled with (``pod/platform_scheduling.py``).

What these entries cannot say (``matchLabelKeys``, a namespace selector's own options…)
is refused by name; values are checked again when the v2 platform spec is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_kfx.spec.rebuilt import located
from airflow_kfx.spec.source import LineDict, Node

_TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def tolerations(node: Node) -> list[LineDict]:
    node.expect(list, "a list of tolerations")
    result = []
    for toleration in node.elements():
        toleration.expect(Mapping, "a toleration")
        _only(toleration, _TOLERATION_FIELDS, "Argo toleration")
        result.append(located(toleration.line, **{key: value for key, value in toleration.value.items()}))
    return result


def affinity(node: Node) -> dict[str, list[LineDict]]:
    """``nodeAffinity`` and ``podAffinity`` entries of the executor config."""
    node.expect(Mapping, "a pod affinity (nodeAffinity, podAffinity, podAntiAffinity)")
    _only(node, ("nodeAffinity", "podAffinity", "podAntiAffinity"), "Argo affinity")
    config: dict[str, list[LineDict]] = {}
    if node.has("nodeAffinity"):
        config["nodeAffinity"] = _node_affinity(node.child("nodeAffinity"))
    pod_terms = []
    for key, anti in (("podAffinity", False), ("podAntiAffinity", True)):
        if node.has(key):
            pod_terms += _pod_affinity(node.child(key), anti)
    if pod_terms:
        config["podAffinity"] = pod_terms
    return config


def _node_affinity(node: Node) -> list[LineDict]:
    _only(node, (_REQUIRED, _PREFERRED), "Argo nodeAffinity")
    terms = []
    if node.has(_REQUIRED):
        required = node.child(_REQUIRED)
        _only(required, ("nodeSelectorTerms",), "Argo nodeAffinity required")
        for term in required.child("nodeSelectorTerms").elements():
            terms.append(_selector_term(term, None))
    for preferred in node.child(_PREFERRED).elements():
        _only(preferred, ("weight", "preference"), "Argo nodeAffinity preferred")
        terms.append(_selector_term(preferred.child("preference"), preferred.required("weight", int).value))
    return terms


def _selector_term(term: Node, weight: int | None) -> LineDict:
    term.expect(Mapping, "a node selector term (matchExpressions, matchFields)")
    _only(term, ("matchExpressions", "matchFields"), "Argo node selector term")
    if not term.get("matchExpressions") and not term.get("matchFields"):
        term.fail("a node selector term needs matchExpressions or matchFields")
    entry = located(term.line, **{key: term.value[key] for key in ("matchExpressions", "matchFields") if term.has(key)})
    if weight is not None:
        entry["weight"] = weight
    return entry


def _pod_affinity(node: Node, anti: bool) -> list[LineDict]:
    where = "Argo podAntiAffinity" if anti else "Argo podAffinity"
    _only(node, (_REQUIRED, _PREFERRED), where)
    terms = [_pod_term(term, None, anti, where) for term in node.child(_REQUIRED).elements()]
    for preferred in node.child(_PREFERRED).elements():
        _only(preferred, ("weight", "podAffinityTerm"), f"{where} preferred")
        terms.append(_pod_term(preferred.child("podAffinityTerm"), preferred.required("weight", int).value, anti, where))
    return terms


def _pod_term(term: Node, weight: int | None, anti: bool, where: str) -> LineDict:
    term.expect(Mapping, "a pod affinity term (labelSelector, topologyKey, namespaces, namespaceSelector)")
    _only(term, ("labelSelector", "topologyKey", "namespaces", "namespaceSelector"), f"{where} term")
    entry: dict[str, Any] = {"topologyKey": term.required("topologyKey", str).value}
    for selector_key, expressions, labels in (("labelSelector", "matchPodExpressions", "matchPodLabels"),
                                              ("namespaceSelector", "matchNamespaceExpressions",
                                               "matchNamespaceLabels")):
        if term.has(selector_key):
            selector = term.child(selector_key)
            _only(selector, ("matchExpressions", "matchLabels"), f"{where} {selector_key}")
            if selector.has("matchExpressions"):
                entry[expressions] = selector.value["matchExpressions"]
            if selector.has("matchLabels"):
                entry[labels] = selector.value["matchLabels"]
    if term.has("namespaces"):
        entry["namespaces"] = term.value["namespaces"]
    if weight is not None:
        entry["weight"] = weight
    if anti:
        entry["anti"] = True
    return located(term.line, **entry)


def _only(node: Node, known: tuple[str, ...], where: str) -> None:
    node.expect(Mapping, f"a mapping of {', '.join(known)}")
    for key, child in node.items():
        if key not in known:
            child.unsupported(f"{where} {key}", f"'{key}' is not translated; only {', '.join(known)} are")
