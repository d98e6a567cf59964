"""KFP's CEL expressions: task trigger conditions and parameterExpressionSelectors.

Mirrors kubeflow/pipelines ``backend/src/v2/expression/expression.go`` (cel-go
v0.30) as the v2 driver calls it:

* Conditions see the task's ``ExecutorInput``: ``inputs.parameter_values[name]``
  is a ``google.protobuf.Value``, so every number is a *double* (an int 7 binds
  as 7.0), which is why the SDK wraps integer channels in ``int(...)``. The result
  must be a bool; a missing key is an error, not false.
* Selectors see the ``protobuf.Value``'s fields: only the one that is set
  (``number_value``, ``bool_value``, ``list_value``, ``struct_value``,
  ``null_value``) plus ``string_value``, always bound to the value's text form
  (``PbValueToText``: a string as is, 3.0 as ``3``, lists/structs as JSON).
* ``parseJson(string)`` is Go ``json.Unmarshal``: every number becomes a double.
* cel-go has heterogeneous numeric equality/ordering (``1.0 == 1`` is true,
  ``'a' == 1`` is false) and a strict ``int('7.0')`` (an error); celpy differs,
  so those operators and casts are overridden below.

celpy is imported lazily: this module is imported at DAG-parse time.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from airflow_kfx.exceptions import KfxError

# KFP's PbValueToText, shared with the command-line placeholders
from airflow_kfx.values import value_to_text

_PARAM_REF = re.compile(r"""parameter_values\s*\[\s*(['"])(.*?)\1\s*\]""")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")  # what Go strconv.ParseInt(s, 10, 64) accepts
_MAX_SAFE_INT = 2**53  # integral doubles below this are exact ints
# celpy type of a bound protobuf.Value -> the oneof field that is set.
_FIELDS = dict(NoneType="null_value", StringType="string_value", BoolType="bool_value",
               DoubleType="number_value", ListType="list_value", MapType="struct_value")


class ExpressionError(KfxError):
    """A CEL expression does not parse, fails to evaluate, or a condition is not a bool."""


def check_expression(expression: str) -> str | None:
    """Parse only; return a one-line error message, or None if ``expression`` parses."""
    try:
        _program(expression)
    except ExpressionError as exc:
        return str(exc)
    return None


def evaluate_condition(expression: str, parameter_values: Mapping[str, Any]) -> bool:
    """Evaluate a ``triggerPolicy.condition`` against the task's resolved inputs."""
    from celpy import celtypes as ct

    def fail(detail: str) -> ExpressionError:
        missing = [n for _, n in _PARAM_REF.findall(expression) if n not in parameter_values]
        if missing:
            detail += f"; missing parameter(s) {', '.join(map(repr, missing))}"
        values = _short(dict(parameter_values))
        return ExpressionError(f"condition {expression!r}: {detail}; parameter values: {values}")

    program = _program(expression)
    try:
        # ExecutorInput's unset fields are bound as defaults: no artifacts, no outputs.
        inputs = _to_cel({"parameter_values": dict(parameter_values), "artifacts": {}})
        result = program.evaluate({"inputs": inputs, "outputs": ct.MapType()})
    except Exception as exc:  # CELEvalError, or a value that cannot be bound
        raise fail(_describe(exc)) from exc
    if not isinstance(result, (bool, ct.BoolType)):
        raise fail(f"returned {_short(result)}, not a bool")
    return bool(result)


def apply_selector(expression: str, value: Any) -> Any:
    """Evaluate a ``parameterExpressionSelector`` on one input value; return plain JSON.

    KFP stores every number as a double; integral ones come back as ``int``
    because KFP renders 3.0 as ``3`` (as text and as JSON), which is what a
    downstream component receives.
    """
    from celpy import celtypes as ct

    program = _program(expression)
    try:
        bound = _to_cel(value)
        activation = {"string_value": ct.StringType(value_to_text(value))}
        # Only the set oneof field is bound (for a string, string_value itself).
        activation.setdefault(_FIELDS[type(bound).__name__], bound)
        return _from_cel(program.evaluate(activation))
    except Exception as exc:
        raise ExpressionError(
            f"parameterExpressionSelector {expression!r} on value {_short(value)}: "
            f"{_describe(exc)}"
        ) from exc


@lru_cache(maxsize=1024)
def _program(expression: str) -> Any:
    """Parse once per expression text: conditions are evaluated per task per run."""
    from celpy.celparser import CELParseError

    env, functions = _runtime()
    try:
        return env.program(env.compile(expression), functions=functions)
    except CELParseError as exc:
        line, column = exc.line or 1, exc.column or 1
        near = (expression.splitlines() or [""])[line - 1][column - 1 :][:20]
        raise ExpressionError(
            f"CEL syntax error in {expression!r} at line {line}, column {column} "
            f"near {near or 'end of expression'!r}"
        ) from None


def _kind(x: Any) -> Any:
    """CEL type family; celpy mixes its own types with plain float/str results."""
    from celpy import celtypes as ct

    kinds = (("null", type(None)), ("bool", (bool, ct.BoolType)), ("num", (int, float)),
             ("str", str), ("list", list), ("map", dict))
    for name, types in kinds:
        if isinstance(x, types):
            return name
    return type(x)


def _num(x: Any) -> int | float:
    # Python compares int with float exactly, as cel-go does across numeric types.
    return float(x) if isinstance(x, float) else int(x)


def _equal(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality, as in cel-go: 1.0 == 1; 'a' == 1 is false."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "num":
        return _num(a) == _num(b)
    if kind == "list":
        return len(a) == len(b) and all(map(_equal, a, b))
    if kind == "map":
        return len(a) == len(b) and all(k in b and _equal(v, b[k]) for k, v in a.items())
    return bool(a == b)


@lru_cache(maxsize=1)
def _runtime() -> tuple[Any, dict[str, Callable[..., Any]]]:
    import celpy
    from celpy import celtypes as ct
    from celpy.evaluation import CELEvalError, base_functions

    def relation(name: str, compare: Callable[[Any, Any], bool]) -> Callable[..., Any]:
        def apply(a: Any, b: Any) -> Any:
            if isinstance(a, CELEvalError) or isinstance(b, CELEvalError):
                return a if isinstance(a, CELEvalError) else b
            if name in ("_==_", "_!=_") or _kind(a) == _kind(b) == "num":
                return ct.BoolType(compare(a, b))
            return base_functions[name](a, b)  # e.g. string < string; mixed kinds fail

        return apply

    def cast(name: str, target: type, text_ok: Callable[[str], bool]) -> Callable[[Any], Any]:
        def convert(arg: Any) -> Any:
            if _kind(arg) not in ("num", "str"):  # celpy would also take bool and null
                raise TypeError(f"no such overload: {name}({_kind(arg)})")
            if _kind(arg) == "str" and not text_ok(arg):
                raise ValueError(f"cannot parse {str(arg)!r} as {name}")
            return target(arg)

        return convert

    def parse_json(arg: Any) -> Any:
        if _kind(arg) != "str":
            raise TypeError(f"no such overload: parseJson({_kind(arg)})")
        try:
            return _to_cel(json.loads(arg, parse_constant=_reject_constant))
        except ValueError as exc:
            raise ValueError(f"failed to unmarshal JSON: {exc}") from None

    ordering = {"_<_": operator.lt, "_<=_": operator.le, "_>_": operator.gt, "_>=_": operator.ge}
    functions = {
        name: relation(name, lambda a, b, op=op: op(_num(a), _num(b)))
        for name, op in ordering.items()
    }
    functions["_==_"] = relation("_==_", _equal)
    functions["_!=_"] = relation("_!=_", lambda a, b: not _equal(a, b))
    functions["int"] = cast("int", ct.IntType, lambda s: bool(_INT_TEXT.fullmatch(s)))
    # Go ParseFloat takes no surrounding spaces or digit underscores; Python float does.
    functions["double"] = cast("double", ct.DoubleType, lambda s: s == s.strip() and "_" not in s)
    functions["parseJson"] = parse_json
    return celpy.Environment(), functions


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")  # Go rejects NaN/Infinity


def _to_cel(value: Any) -> Any:
    """Bind a plain value as cel-go sees a protobuf Value: every number is a double."""
    from celpy import celtypes as ct

    kind = _kind(value)
    if kind == "null":
        return None
    if kind == "str":
        return ct.StringType(value)
    if kind == "bool":
        return ct.BoolType(value)
    if kind == "num":
        return ct.DoubleType(float(value))
    if kind == "list" or isinstance(value, tuple):
        return ct.ListType([_to_cel(v) for v in value])
    if kind == "map" and all(isinstance(k, str) for k in value):
        return ct.MapType({ct.StringType(k): _to_cel(v) for k, v in value.items()})
    raise TypeError(f"cannot bind {type(value).__name__} value as a protobuf Value")


def _from_cel(value: Any) -> Any:
    """celpy result -> plain JSON value (what structpb.NewValue accepts in KFP)."""
    kind = _kind(value)
    if kind == "null":
        return None
    if kind == "str":
        return str(value)
    if kind == "bool":
        return bool(value)
    if kind == "num":  # IntType, DoubleType, or a plain float from celpy arithmetic
        return _integral(float(value))
    if kind == "list":
        return [_from_cel(v) for v in value]
    if kind == "map" and all(isinstance(k, str) for k in value):
        return {str(k): _from_cel(v) for k, v in value.items()}
    raise TypeError(f"result {value!r} cannot be converted to a protobuf Value")


def _integral(value: Any) -> Any:
    """Turn integral doubles into ints (3.0 -> 3), recursively, as KFP renders them."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _MAX_SAFE_INT else value
    if isinstance(value, (list, tuple)):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _describe(exc: BaseException) -> str:
    """One line from a celpy error (CELEvalError args are (text, exc_class, exc_args))."""
    args = exc.args
    text = (str(args[0]) if args else type(exc).__name__).split(" (in activation")[0]
    if text.startswith("found no matching overload"):  # names lark tokens and classes
        text = "no such overload"
    if len(args) == 3 and isinstance(args[2], tuple) and args[2]:
        detail = "; ".join(str(a) for a in args[2])
        # celpy labels every ValueError "return error for overflow"; the detail says more.
        if text == "return error for overflow" or detail.startswith(text):
            return detail
        return f"{text}: {detail}"
    return text


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
