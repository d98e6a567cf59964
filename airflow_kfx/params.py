"""Pipeline parameters as users give them: ``kfx run -p name=value`` text, a run's
``conf`` (the trigger form, the REST API), and references to DAG params in
hand-written DAGs. Every value is typed by :mod:`airflow_kfx.values`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_kfx.config import CACHE_PARAM
from airflow_kfx.exceptions import SpecError
from airflow_kfx.spec.model import ParameterSpec, Pipeline
from airflow_kfx.values import ParameterValueError, convert, convert_run_parameter, parse_text, type_label


@dataclass(frozen=True)
class DagParam:
    """A reference to a DAG param, resolved when the task runs (never via Jinja)."""

    name: str


def dag_param(name: str) -> DagParam:
    return DagParam(name)


def parse_params(pipeline: Any, raw_params: Sequence[str]) -> dict[str, Any]:
    """``-p name=value`` typed by the pipeline parameter's declared type: the text is
    read as KFP reads an output-parameter file of that type (JSON for lists and dicts),
    then checked as ``kfx-run-start`` checks a run's parameters."""
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
        try:  # then as a run takes it (list items), so kfx-run-start has nothing left to refuse
            params[name] = run_parameter(pipeline, name, parse_text(text, spec.type), given=True)
        except ParameterValueError as err:
            raise SpecError(f"-p {name}: '{text}' is not a valid {spec.type.value}: {err}") from None
    missing = sorted(n for n, s in declared.items() if n not in params and not s.optional and not s.has_default)
    if missing:
        raise SpecError(
            "the pipeline needs parameter(s) " + ", ".join(f"-p {n}=<{declared[n].type.value}>" for n in missing),
            file=pipeline.source_file,
        )
    return params


# -- a run's parameters ---------------------------------------------------------------------

_item_types: dict[str, dict[str, str]] = {}  # pipeline digest → list item types


def list_item_types(pipeline: Pipeline) -> dict[str, str]:
    """:func:`airflow_kfx.spec.list_items.list_item_types`, once per pipeline file."""
    from airflow_kfx.spec.list_items import list_item_types as find

    if pipeline.digest not in _item_types:
        _item_types[pipeline.digest] = find(pipeline)
    return _item_types[pipeline.digest]


def nullable(spec: ParameterSpec) -> bool:
    """May the run give null? Only when the parameter's default is null, or it is
    optional without a default (KFP's driver: "got null for input parameter")."""
    return spec.default is None if spec.has_default else spec.optional


def run_parameter(pipeline: Pipeline, name: str, value: Any, *, given: bool) -> Any:
    """One declared pipeline parameter's value for a run, typed.

    ``given``: the value came with the run (conf); a default is converted plainly, so
    a compiled default reaches components exactly as compiled.
    """
    spec = pipeline.root.inputs.parameters[name]
    if not given:
        return convert(value, spec.type)
    return convert_run_parameter(value, spec.type, list_item_types(pipeline).get(name))


def check_run_parameters(
    pipeline: Pipeline, params: Mapping[str, Any], conf: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Every pipeline parameter of a run (``params``: defaults merged with ``conf``)
    typed, and one line per parameter that does not fit: name, type, what was
    expected and the value."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in pipeline.root.inputs.parameters.items():
        label = f"{name} ({type_label(spec.type, list_item_types(pipeline).get(name))})"
        value = params.get(name)
        if value is None:
            if not (nullable(spec) if name in params else spec.optional or spec.has_default):
                problems.append(f"{label}: needs a value, got null")
            elif name in params:
                values[name] = None  # no value, which this parameter allows
            continue
        try:
            values[name] = run_parameter(pipeline, name, value, given=name in conf)
        except ParameterValueError as err:
            problems.append(f"{label}: {err}")
    declared = pipeline.root.inputs.parameters
    # A misspelt name would otherwise run silently with the default value.
    for name in sorted(set(conf) - set(declared) - {CACHE_PARAM}):
        known = ", ".join(declared) or "none"
        problems.append(f"{name}: the pipeline has no such parameter (its parameters: {known})")
    return values, problems
