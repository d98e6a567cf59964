"""Pipeline parameters as users give them: ``kfx run -p name=value`` text typed by the
parameter's declared KFP type, and references to DAG params in hand-written DAGs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_kfx.exceptions import SpecError


@dataclass(frozen=True)
class DagParam:
    """A reference to a DAG param, resolved when the task runs (never via Jinja)."""

    name: str


def dag_param(name: str) -> DagParam:
    return DagParam(name)


def parse_params(pipeline: Any, raw_params: Sequence[str]) -> dict[str, Any]:
    """``-p name=value`` typed by the pipeline parameter's declared type."""
    from airflow_kfx.spec.model import ParameterType

    declared = pipeline.root.inputs.parameters
    params: dict[str, Any] = {}
    for raw in raw_params:
        name, sep, text = raw.partition("=")
        if not sep:
            raise SpecError(f"-p expects NAME=VALUE, got '{raw}'")
        spec = declared.get(name)
        if spec is None:
            known = ", ".join(sorted(declared)) or "none"
            raise SpecError(f"the pipeline has no parameter '{name}' (parameters: {known})", file=pipeline.source_file)
        try:
            if spec.type is ParameterType.STRING:
                value: Any = text
            elif spec.type is ParameterType.NUMBER_INTEGER:
                value = int(text)
            elif spec.type is ParameterType.NUMBER_DOUBLE:
                value = float(text)
            elif spec.type is ParameterType.BOOLEAN:
                if text.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                value = text.lower() == "true"
            else:
                value = json.loads(text)
                expected = list if spec.type is ParameterType.LIST else dict
                if not isinstance(value, expected):
                    raise ValueError(f"expected a JSON {'list' if expected is list else 'object'}")
        except ValueError as err:
            raise SpecError(f"-p {name}: '{text}' is not a valid {spec.type.value}: {err}") from None
        params[name] = value
    missing = sorted(n for n, s in declared.items() if n not in params and not s.optional and not s.has_default)
    if missing:
        raise SpecError(
            "the pipeline needs parameter(s) " + ", ".join(f"-p {n}=<{declared[n].type.value}>" for n in missing),
            file=pipeline.source_file,
        )
    return params
