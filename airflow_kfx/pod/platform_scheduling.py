"""Scheduling settings of a platform config: node selector, tolerations, affinity."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import (
        V1LabelSelector,
        V1NodeAffinity,
        V1NodeSelectorRequirement,
        V1NodeSelectorTerm,
        V1PodSpec,
        V1PreferredSchedulingTerm,
    )

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.pod.k8s_json import to_k8s_model
from airflow_kfx.pod.values import describe, resolve_json
from airflow_kfx.spec.model import ValueSource
from airflow_kfx.spec.platform_model import (
    KubernetesExecutorConfig,
    NodeAffinityTerm,
    PodAffinityTerm,
    SelectorRequirement,
)

Resolver = Callable[[ValueSource], Any]


def apply_scheduling(config: KubernetesExecutorConfig, resolve: Resolver, spec: V1PodSpec) -> None:
    from kubernetes.client import V1Toleration
    _node_selector(config, resolve, spec)
    tolerations = list(spec.tolerations or [])
    for toleration in config.tolerations:
        if toleration.toleration_json is None:
            tolerations.append(V1Toleration(
                key=toleration.key or None,
                operator=toleration.operator or None,
                value=toleration.value or None,
                effect=toleration.effect or None,
                toleration_seconds=toleration.toleration_seconds,
            ))
            continue
        data = resolve_json(resolve, toleration.toleration_json, "tolerationJson")
        if data is not None:  # one toleration or a list of them, as KFP accepts
            tolerations += to_k8s_model(data if isinstance(data, list) else [data], "list[V1Toleration]",
                                        "tolerationJson")
    spec.tolerations = tolerations or None
    if config.node_affinity:
        _node_affinity(config.node_affinity, resolve, spec)
    if config.pod_affinity:
        _pod_affinity(config.pod_affinity, spec)


def _node_selector(config: KubernetesExecutorConfig, resolve: Resolver, spec: V1PodSpec) -> None:
    selector = config.node_selector
    if selector is None:
        return
    labels: Any = selector.labels
    if selector.node_selector_json is not None:  # takes precedence over labels, as in KFP
        labels = resolve_json(resolve, selector.node_selector_json, "nodeSelectorJson")
        if labels is None:
            return
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise TaskRuntimeError(
                f"nodeSelectorJson from {describe(selector.node_selector_json)} must map labels to "
                f"strings, got {labels!r}"
            )
    if labels:
        spec.node_selector = {**(spec.node_selector or {}), **labels}


def _node_affinity(terms: tuple[NodeAffinityTerm, ...], resolve: Resolver, spec: V1PodSpec) -> None:
    from kubernetes.client import (
        V1Affinity,
        V1NodeAffinity,
        V1NodeSelector,
        V1NodeSelectorTerm,
        V1PreferredSchedulingTerm,
    )
    required: list[V1NodeSelectorTerm] = []
    preferred: list[V1PreferredSchedulingTerm] = []
    for term in terms:
        if term.is_empty:
            continue  # KFP skips an empty term (with a warning)
        if term.node_affinity_json is not None:
            data = resolve_json(resolve, term.node_affinity_json, "nodeAffinityJson")
            if data is None:
                continue
            affinity: V1NodeAffinity = to_k8s_model(data, "V1NodeAffinity", "nodeAffinityJson")
            if affinity.required_during_scheduling_ignored_during_execution is not None:
                required += affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
            preferred += affinity.preferred_during_scheduling_ignored_during_execution or []
            continue
        selector_term = V1NodeSelectorTerm(
            match_expressions=[_node_requirement(r) for r in term.match_expressions] or None,
            match_fields=[_node_requirement(r) for r in term.match_fields] or None,
        )
        if term.weight is None:
            required.append(selector_term)
        else:
            preferred.append(V1PreferredSchedulingTerm(weight=term.weight, preference=selector_term))
    if not required and not preferred:
        return
    spec.affinity = spec.affinity or V1Affinity()
    # Replaces the base pod's node affinity, as KFP does: required terms are ORed,
    # so merging ours into existing ones would loosen the base pod's constraint.
    spec.affinity.node_affinity = V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=(
            V1NodeSelector(node_selector_terms=required) if required else None),
        preferred_during_scheduling_ignored_during_execution=preferred or None,
    )


def _node_requirement(requirement: SelectorRequirement) -> V1NodeSelectorRequirement:
    from kubernetes.client import V1NodeSelectorRequirement
    return V1NodeSelectorRequirement(key=requirement.key, operator=requirement.operator,
                                     values=list(requirement.values) or None)


def _pod_affinity(terms: tuple[PodAffinityTerm, ...], spec: V1PodSpec) -> None:
    # Pod (anti-)affinity terms are ANDed, so adding to the base pod's only narrows it.
    from kubernetes.client import (
        V1Affinity,
        V1PodAffinity,
        V1PodAffinityTerm,
        V1PodAntiAffinity,
        V1WeightedPodAffinityTerm,
    )
    spec.affinity = spec.affinity or V1Affinity()
    for term in terms:
        if term.anti:
            spec.affinity.pod_anti_affinity = spec.affinity.pod_anti_affinity or V1PodAntiAffinity()
            target = spec.affinity.pod_anti_affinity
        else:
            spec.affinity.pod_affinity = spec.affinity.pod_affinity or V1PodAffinity()
            target = spec.affinity.pod_affinity
        pod_term = V1PodAffinityTerm(
            topology_key=term.topology_key,
            label_selector=_label_selector(term.match_pod_expressions, term.match_pod_labels),
            namespaces=list(term.namespaces) or None,
            namespace_selector=_label_selector(term.match_namespace_expressions, term.match_namespace_labels),
        )
        if term.weight is None:
            existing = target.required_during_scheduling_ignored_during_execution or []
            target.required_during_scheduling_ignored_during_execution = [*existing, pod_term]
        else:
            existing = target.preferred_during_scheduling_ignored_during_execution or []
            weighted = V1WeightedPodAffinityTerm(weight=term.weight, pod_affinity_term=pod_term)
            target.preferred_during_scheduling_ignored_during_execution = [*existing, weighted]


def _label_selector(expressions: tuple[SelectorRequirement, ...], labels: Any) -> V1LabelSelector | None:
    from kubernetes.client import V1LabelSelector, V1LabelSelectorRequirement
    if not expressions and not labels:
        return None
    return V1LabelSelector(
        match_expressions=[
            V1LabelSelectorRequirement(key=r.key, operator=r.operator, values=list(r.values) or None)
            for r in expressions
        ] or None,
        match_labels=dict(labels) or None,
    )
