"""Scalar readers shared by the platform-spec parsers.

The platform spec is protobuf JSON: camelCase keys, int64 written as strings,
int32 sometimes written as ``50.0`` by the SDK. These helpers read such values
from a :class:`~airflow_kfx.spec.source.Node`, so every error carries its YAML
path, and refuse keys that airflow-kfx does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_kfx.spec.model import ComponentInput, Constant, TaskOutput, ValueSource
from airflow_kfx.spec.source import Node

# Fields we recognise but refuse, keyed by their path below ``platforms.kubernetes``
# executor configs (or ``pipelineConfig.``), with the reason shown to the user.
REFUSED = {
    "podResourceClaims": (
        "Dynamic Resource Allocation claims are not translated: how the claim is attached to "
        "the container is not defined by the proto; request the device through the "
        "container's resources or a pod template instead"
    ),
    "pipelineConfig.semaphoreKey": (
        "KFP run-level semaphores are not translated; limit concurrency with an Airflow pool "
        "or the DAG's max_active_runs instead"
    ),
    "pipelineConfig.mutexName": (
        "KFP run-level mutexes are not translated; use max_active_runs=1 on the DAG instead"
    ),
    "pipelineConfig.resourceTtl": (
        "the time-to-live of run resources is not translated; remove it and clean up yourself"
    ),
    "securityContext.privileged": "privileged containers are not allowed (KFP removed this field too)",
    "securityContext.addCapabilities": "adding capabilities is not allowed (KFP removed this field too)",
    "securityContext.dropCapabilities": "all capabilities are always dropped; remove this field",
}

# A Kubernetes resource.Quantity, e.g. "5Gi", "500M", "1.5", "1e3".
_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
_INT = re.compile(r"^\s*-?\d+\s*$")
_SOURCE_KINDS = ("runtimeValue", "componentInputParameter", "taskOutputParameter")


def fields(node: Node, known: Iterable[str], prefix: str) -> None:
    """Require a mapping whose keys are all in ``known``; refuse any other key.

    ``prefix`` is the message path used in the feature name, e.g. ``"tolerations."``.
    """
    node.expect(Mapping, "a mapping")
    known = set(known)
    for key in node.value:
        if key in known:
            continue
        feature = f"{prefix}{key}"
        reason = REFUSED.get(feature) or (
            f"'{key}' is not a kfp-kubernetes setting airflow-kfx translates (written by a newer "
            "kfp-kubernetes?); remove it or run this pipeline on KFP"
        )
        node.child(key).unsupported(f"kubernetes: {feature}", reason)


def strict(node: Node, known: tuple[str, ...]) -> None:
    """Require a mapping with only ``known`` keys (a malformed value, not a feature)."""
    node.expect(Mapping, "a mapping")
    for key in node.value:
        if key not in known:
            node.child(key).fail(f"unknown key '{key}'; expected {', '.join(known)}")


# ---------------------------------------------------------------------------
# Value sources
# ---------------------------------------------------------------------------


def parse_value_source(node: Node) -> ValueSource:
    """An ``InputParameterSpec``: ``{runtimeValue: {constant}}``, ``{componentInputParameter}``
    or ``{taskOutputParameter: {producerTask, outputParameterKey}}``."""
    node.expect(Mapping, "a parameter mapping (runtimeValue, componentInputParameter or taskOutputParameter)")
    for key in node.value:
        if key in ("parameterExpressionSelector", "taskFinalStatus"):
            node.child(key).unsupported(
                f"kubernetes: {key}", f"'{key}' cannot set a Kubernetes setting; pass a plain value"
            )
        if key not in _SOURCE_KINDS:
            node.child(key).fail(f"unknown key '{key}'; expected one of {', '.join(_SOURCE_KINDS)}")
    present = [k for k in _SOURCE_KINDS if k in node.value]
    if len(present) != 1:
        node.fail(f"expected exactly one of {', '.join(_SOURCE_KINDS)}")
    kind = present[0]
    if kind == "componentInputParameter":
        return ComponentInput(nonempty(node.required(kind, str)))
    if kind == "taskOutputParameter":
        return task_output(node.child(kind))
    runtime = node.child(kind)
    strict(runtime, ("constant", "constantValue"))
    if runtime.has("constant"):
        return Constant(plain(runtime.value["constant"]))
    if runtime.has("constantValue"):  # the typed form written before KFP SDK 2.0
        typed = runtime.child("constantValue")
        strict(typed, ("stringValue", "intValue", "doubleValue"))
        if typed.has("stringValue"):
            return Constant(typed.required("stringValue", str).value)
        if typed.has("intValue"):
            return Constant(to_int(typed.child("intValue")))
        if typed.has("doubleValue"):
            return Constant(float(typed.required("doubleValue", (int, float)).value))
    runtime.fail("runtimeValue needs a 'constant'")


def task_output(node: Node) -> TaskOutput:
    strict(node, ("producerTask", "outputParameterKey"))
    return TaskOutput(
        nonempty(node.required("producerTask", str)),
        nonempty(node.required("outputParameterKey", str)),
    )


def name_source(node: Node, parameter_key: str, legacy_key: str) -> ValueSource:
    """A Secret/ConfigMap name: the ``*Parameter`` form wins over the deprecated plain name.

    The SDK writes both for constants; files from kfp-kubernetes < 1.2 only the plain one.
    """
    if node.get(parameter_key) is not None:
        return parse_value_source(node.child(parameter_key))
    legacy = node.optional(legacy_key, str, "")
    if not legacy:
        node.fail(f"missing '{parameter_key}' (or the deprecated '{legacy_key}')")
    return Constant(legacy)


def optional_source(node: Node, key: str) -> ValueSource | None:
    return None if node.get(key) is None else parse_value_source(node.child(key))


# ---------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------


def required_str(node: Node, key: str) -> str:
    return nonempty(node.required(key, str))


def nonempty(node: Node) -> str:
    if not node.value:
        node.fail("must not be empty")
    return node.value


def optional_str(node: Node, key: str) -> str:
    """A proto3 string: absent and ``""`` both mean "not set"."""
    return node.optional(key, str, "")


def optional_bool(node: Node, key: str) -> bool | None:
    return node.optional(key, bool, None)


def strings(node: Node, key: str) -> tuple[str, ...]:
    return tuple(element.expect(str) for element in node.child(key).elements())


def str_map(node: Node, key: str) -> dict[str, str]:
    return {k: v.expect(str) for k, v in node.child(key).items()}


def to_int(node: Node) -> int:
    """An integer; protobuf JSON writes int64 as a string and the SDK int32 as ``50.0``."""
    value = node.value
    if isinstance(value, bool):
        node.fail("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.match(value):
        return int(value)
    node.fail(f"expected an integer, got {value!r}")


def optional_int(node: Node, key: str) -> int | None:
    child = node.child(key)
    return None if child.value is None else to_int(child)


def quantity(node: Node, key: str, *, required: bool = False) -> str | None:
    """A Kubernetes quantity such as ``5Gi``; checked here so a typo fails at parse time."""
    text = required_str(node, key) if required else (optional_str(node, key) or None)
    if text is not None and not is_quantity(text):
        node.child(key).fail(f"{text!r} is not a Kubernetes quantity (e.g. '5Gi', '500Mi')")
    return text


def is_quantity(text: str) -> bool:
    # Bounded first: the pattern backtracks quadratically over a long run of digits.
    return len(text) <= 64 and bool(_QUANTITY.match(text))


def plain(value: Any) -> Any:
    """Loaded YAML → plain dicts and lists (drops the line bookkeeping of ``LineDict``)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
