"""Resolving the parameterised settings of a platform config, with clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.spec.model import ComponentInput, Constant, TaskOutput, ValueSource


def describe(source: ValueSource) -> str:
    """Where a value came from, for error messages."""
    if isinstance(source, ComponentInput):
        return f"pipeline input {source.name!r}"
    if isinstance(source, TaskOutput):
        return f"output {source.output_key!r} of task {source.producer_task!r}"
    if isinstance(source, Constant):
        return "a constant"
    return repr(source)


def resolve_name(resolve: Callable[[ValueSource], Any], source: ValueSource, what: str) -> str | None:
    """A Secret/ConfigMap/PVC name; None when the value is absent (an optional input not given)."""
    value = resolve(source)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TaskRuntimeError(f"{what} from {describe(source)} must be a string, got {value!r}")
    return value


def resolve_json(resolve: Callable[[ValueSource], Any], source: ValueSource, what: str) -> Any:
    """A JSON object or list (given as such, or as JSON text); None when absent or empty.

    KFP skips an empty struct or list the same way as a missing optional input.
    """
    value = resolve(source)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise TaskRuntimeError(f"{what} from {describe(source)} is not valid JSON: {err}") from None
    if value is None or value == {} or value == []:
        return None
    if not isinstance(value, (dict, list)):
        raise TaskRuntimeError(f"{what} from {describe(source)} must be a JSON object or list, got {value!r}")
    return value
