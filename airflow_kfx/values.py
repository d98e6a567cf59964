"""KFP parameter values: one table of rules per ``ParameterType``.

Pure and stdlib-only (spec-layer side). Every place that types a parameter value uses
this module: ``kfx run -p``, the run's parameters (trigger form, REST ``conf``),
a task's inputs, ExecutorInput, command-line placeholders and output files.

The rules follow KFP's backend (kubeflow/pipelines):

* a typed value: ``backend/src/v2/driver/resolve.go`` (handleParamTypeValidationAndConversion):
  a STRING input given a non-string gets its text form (``PbValueToText``); any other
  type must already have its JSON shape — a number for NUMBER_INTEGER/NUMBER_DOUBLE,
  a bool for BOOLEAN, a list for LIST, an object for STRUCT and TASK_FINAL_STATUS;
* text: ``backend/src/v2/metadata/converter.go`` ``TextToPbValue`` (how the launcher
  reads an output-parameter file): strconv.ParseInt / ParseFloat / ParseBool of the
  trimmed text, JSON for LIST and STRUCT, STRING as is;
* a value as text: ``PbValueToText`` (what the launcher puts on a command line):
  ``strconv.FormatFloat(v, 'f', -1, 64)``, ``strconv.FormatBool``, compact protojson.

Where this module is deliberately wider or narrower than KFP's driver, and why:

* a string given for a non-STRING type is read as text, with ``TextToPbValue``'s rules
  (KFP's driver rejects it): in Airflow, values often arrive as text (``kfx run -p``,
  XComs of plain tasks, the REST API); every such text has one meaning here;
* NUMBER_INTEGER takes only whole numbers (3.0 is 3; 1.5 is an error). KFP's driver
  passes 1.5 through to an ``int`` parameter; KFP's UI and SDK reject it, and so do we;
* ``None`` is "no value" for every type: whether that is allowed depends on the
  parameter being optional, which the caller knows.
"""

from __future__ import annotations

import copy
import decimal
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

STRUCT_TYPES = ("STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG")  # JSON-object parameter types


class ParameterValueError(ValueError):
    """A value that does not fit its KFP parameter type; says what was expected."""

    def __init__(self, kind: str, value: Any, expected: str, detail: str = "", where: str = "") -> None:
        self.kind, self.value, self.expected, self.detail = kind, value, expected, detail
        message = f"expected {expected}, got {show(value)}" + (f" ({detail})" if detail else "")
        super().__init__(f"{where}: {message}" if where else message)


def show(value: Any, limit: int = 200) -> str:
    """A value as a message shows it: text quoted, others as JSON, long ones cut."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=repr)
        except ValueError:  # a circular structure
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def type_name(parameter_type: Any) -> str:
    """"NUMBER_INTEGER" from the name or an enum member whose value is the name."""
    return str(getattr(parameter_type, "value", parameter_type) or "")


# -- values as text (PbValueToText, protojson) --------------------------------------------


def value_to_text(value: Any) -> str:
    """A parameter value as the KFP launcher prints it on the command line.

    launcher_v2.go getPlaceholders (same as metadata.PbValueToText): string as is;
    number ``strconv.FormatFloat(v, 'f', -1, 64)`` (3.0 → "3", 1e-05 → "0.00001");
    bool "true"/"false"; list/struct ``json.Marshal`` of the structpb message, i.e.
    compact protojson with sorted keys and HTML-escaped <>&; null → "".
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_float_f(float(value))
    if isinstance(value, (Mapping, list, tuple)):
        return go_json(value)
    raise TypeError(f"not a KFP parameter value: {value!r} ({type(value).__name__})")


def _digits(x: float) -> tuple[str, int]:
    """Shortest round-trip digits of |x| (no trailing zeros) and the decimal point
    position: |x| = 0.DIGITS × 10**point. Python's repr and Go's shortest
    formatting pick the same digits."""
    _, digits, exponent = decimal.Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits))
    stripped = text.rstrip("0")
    assert isinstance(exponent, int)
    return stripped, len(text) + exponent


def format_float_f(x: float) -> str:
    """Go ``strconv.FormatFloat(x, 'f', -1, 64)``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, point = _digits(x)
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _protojson_number(x: float) -> str:
    """protojson's double (google.golang.org/protobuf internal/encoding/json
    appendFloat): 'f' unless |x| < 1e-6 or ≥ 1e21, then 'e' with "e-07" → "e-7"."""
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    magnitude = abs(x)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        return format_float_f(x)
    digits, point = _digits(x)
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    exponent = point - 1
    exp = f"-{-exponent}" if exponent < 0 else f"+{exponent:02d}"
    return f"{'-' if x < 0 else ''}{mantissa}e{exp}"


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_RE = re.compile("[<>&\u2028\u2029]")


def _go_string(text: str) -> str:
    # protojson escapes " \ and control characters (\b \f \n \r \t short, others
    # \u00xx) like json.dumps(ensure_ascii=False); encoding/json's compact pass
    # then HTML-escapes <, >, &, U+2028 and U+2029.
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group(0)], json.dumps(text, ensure_ascii=False))


def go_json(value: Any) -> str:
    """Compact JSON as Go's ``json.Marshal`` of a structpb value: numbers are
    doubles in protojson form (1.0 → 1), object keys sorted, <>& escaped."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _protojson_number(float(value))
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
        return "{" + ",".join(f"{_go_string(k)}:{go_json(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise TypeError(f"not JSON-serialisable: {value!r} ({type(value).__name__})")


# -- text as values (TextToPbValue) -------------------------------------------------------

# what strconv.ParseInt(s, 10, 64) / ParseFloat(s, 64) / ParseBool accept (after TrimSpace)
_INT_TEXT = r"[+-]?[0-9]+"
_FLOAT_TEXT = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_HEX_FLOAT_TEXT = r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
_SPECIAL_FLOAT_TEXT = r"[+-]?[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]"  # any case
_SPECIAL_FLOATS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
                   "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}
_BOOL_TEXT = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
              **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}
_INT_RE, _FLOAT_RE, _HEX_FLOAT_RE = re.compile(_INT_TEXT), re.compile(_FLOAT_TEXT), re.compile(_HEX_FLOAT_TEXT)
# a JSON number (RFC 8259), for the items of an untyped list typed in the trigger form
_JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class _Detail(Exception):
    """Why a text is not of its type, beyond "expected …" (e.g. the JSON error)."""


def strict_json(text: str) -> Any:
    """JSON as protojson accepts it: no NaN/Infinity tokens, no duplicate keys."""

    def no_constant(token: str) -> Any:
        raise ValueError(f"{token} is not valid JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    return json.loads(text, parse_constant=no_constant, object_pairs_hook=unique)


def _int_text(text: str) -> int | None:
    trimmed = text.strip()
    if not _INT_RE.fullmatch(trimmed):
        return None  # ParseInt: base 10 only ("3.0", "1e3", "1_000" fail)
    if not -(2**63) <= int(trimmed) < 2**63:
        raise _Detail("out of the 64-bit range")
    return int(trimmed)


def _float_text(text: str) -> float | None:
    trimmed = text.strip()
    if trimmed.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[trimmed.lower()]
    if _HEX_FLOAT_RE.fullmatch(trimmed):
        return float.fromhex(trimmed)
    if not _FLOAT_RE.fullmatch(trimmed):
        return None
    if math.isinf(float(trimmed)):
        raise _Detail("out of the 64-bit range")  # "1e999" is ErrRange in Go
    return float(trimmed)


def _json_text(shape: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = strict_json(text)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise _Detail(f"not JSON: {exc}") from None
        return value if isinstance(value, shape) else None

    return parse


# -- typed values (resolve.go) ------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf numbers are doubles: 3.0 is 3
    return value if _number(value) and isinstance(value, int) else None


def _double(value: Any) -> float | None:
    return float(value) if _number(value) else None


def _boolean(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _list(value: Any) -> list[Any] | None:
    return copy.deepcopy(list(value)) if isinstance(value, (list, tuple)) else None


def _struct(value: Any) -> dict[str, Any] | None:
    return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else None


def _string(value: Any) -> str | None:
    try:
        return value_to_text(value)  # resolve.go: a non-string STRING input → PbValueToText
    except TypeError:
        return None


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How one ParameterType takes values.

    ``from_value``: a non-text value → the typed value, or None if it does not fit.
    ``from_text``: text → the typed value, or None (TextToPbValue).
    ``schema``: the JSON schema of the typed value (Airflow params);
    ``text_schema``: the JSON schema of its text, where a regex can say it (JSON text
    cannot be checked by one, so LIST and STRUCT have none).
    """

    kind: str
    expected: str
    from_value: Callable[[Any], Any]
    from_text: Callable[[str], Any]
    schema: Mapping[str, Any]
    text_schema: Mapping[str, Any] = field(default_factory=dict)


def _struct_rule(kind: str) -> Rule:
    return Rule(kind, "a JSON object, or its JSON text like '{\"k\": 1}'", _struct, _json_text(dict),
                {"type": "object"})


def _text_pattern(regex: str) -> dict[str, Any]:
    return {"type": "string", "pattern": rf"^\s*(?:{regex})\s*$"}  # TrimSpace, as TextToPbValue


RULES: Mapping[str, Rule] = {
    rule.kind: rule
    for rule in (
        Rule("STRING", "a string", _string, lambda text: text, {"type": "string"}),
        Rule("NUMBER_INTEGER", "a whole number, or its text like '42'", _integer, _int_text,
             {"type": "integer"}, _text_pattern(_INT_TEXT)),
        Rule("NUMBER_DOUBLE", "a number, or its text like '2.5'", _double, _float_text, {"type": "number"},
             _text_pattern("|".join((_FLOAT_TEXT, _HEX_FLOAT_TEXT, _SPECIAL_FLOAT_TEXT)))),
        Rule("BOOLEAN", "true or false (as text also 1/0, t/f, TRUE/FALSE, True/False)", _boolean,
             lambda text: _BOOL_TEXT.get(text.strip()), {"type": "boolean"}, _text_pattern("|".join(_BOOL_TEXT))),
        Rule("LIST", "a list, or its JSON text like '[1, 2]'", _list, _json_text(list), {"type": "array"}),
        *(_struct_rule(kind) for kind in STRUCT_TYPES),
    )
}


def type_label(parameter_type: Any, item_type: Any = None) -> str:
    """"NUMBER_DOUBLE", "LIST of NUMBER_INTEGER" (a list whose items are typed)."""
    return type_name(parameter_type) + (f" of {type_name(item_type)}" if item_type else "")


def rule_for(parameter_type: Any) -> Rule | None:
    return RULES.get(type_name(parameter_type))


def convert(value: Any, parameter_type: Any) -> Any:
    """``value`` (a JSON value or text) as a value of ``parameter_type``.

    None stays None (no value). Text is read as KFP reads text of that type; any
    other value must have the type's JSON shape (STRING takes any value's text).
    A type this module does not know passes the value through. Raises
    :class:`ParameterValueError` saying what was expected.
    """
    rule = rule_for(parameter_type)
    if value is None or rule is None:
        return copy.deepcopy(value)
    if isinstance(value, str):
        return parse_text(value, rule.kind)
    converted = rule.from_value(value)
    if converted is None:
        raise ParameterValueError(rule.kind, value, rule.expected)
    return converted


def parse_text(text: str, parameter_type: Any) -> Any:
    """An output parameter file's text → value (metadata.TextToPbValue).

    STRING as is (no trimming); NUMBER_INTEGER strconv.ParseInt of the trimmed text
    (base 10, int64: "3" → 3, "3.0" is an error); NUMBER_DOUBLE strconv.ParseFloat;
    BOOLEAN strconv.ParseBool (1/t/T/TRUE/true/True, 0/f/F/FALSE/false/False);
    LIST / STRUCT JSON of that shape. Raises :class:`ParameterValueError`.
    """
    rule = rule_for(parameter_type)
    if rule is None:
        raise ParameterValueError(type_name(parameter_type), text, "a known parameter type",
                                  f"unknown parameter type {type_name(parameter_type)!r}")
    try:
        value = rule.from_text(text)
    except _Detail as detail:
        raise ParameterValueError(rule.kind, text, rule.expected, str(detail)) from None
    if value is None:
        raise ParameterValueError(rule.kind, text, rule.expected)
    return value


def to_text(value: Any, parameter_type: Any = "") -> str:
    """KFP's command-line text of a value of ``parameter_type``: 3.0 → "3", 1.5 → "1.5",
    True → "true", [1, "a"] → '[1,"a"]', {"b": 1, "a": "x"} → '{"a":"x","b":1}'."""
    return value_to_text(convert(value, parameter_type))


# -- run parameters (trigger form, REST conf, kfx run -p) ------------------------------------


def convert_run_parameter(value: Any, parameter_type: Any, item_type: Any = None) -> Any:
    """A pipeline parameter given for a run, as :func:`convert`, plus the list items.

    Airflow's trigger form sends a list as text, one item per line (``["10", "20"]``).
    KFP's form takes the list as JSON, so its numbers reach components as numbers. A
    LIST whose items have a known type (``item_type``, e.g. ``List[int]`` in the
    component) gets each item converted by that type's rule; an untyped LIST whose
    items are all the text of JSON numbers gets those numbers (a mixed list is
    left as it is: its text items are meant as text).
    """
    value = convert(value, parameter_type)
    if type_name(parameter_type) != "LIST" or not isinstance(value, list):
        return value
    if rule_for(item_type) is not None:
        return [_item(item, index, item_type) for index, item in enumerate(value)]
    texts = [item.strip() for item in value if isinstance(item, str)]
    if value and len(texts) == len(value) and all(_JSON_NUMBER_RE.fullmatch(t) for t in texts):
        return [json.loads(t) for t in texts]
    return value


def _item(item: Any, index: int, item_type: Any) -> Any:
    try:
        return convert(item, item_type)
    except ParameterValueError as err:
        raise ParameterValueError(err.kind, err.value, err.expected, err.detail, f"item {index}") from None


def json_schema(parameter_type: Any, item_type: Any = None, *, nullable: bool = False) -> dict[str, Any]:
    """The JSON schema of a run parameter (Airflow's trigger form and REST API check it).

    Scalars keep their JSON type, so the form shows a number field, a switch, …
    List items of a known scalar type may also be that type's text (the form sends a
    list as lines of text); the ``items`` schema then has no ``type``, so the form
    keeps its one-item-per-line text box. The schema cannot say everything (an int64's
    range, a float's ErrRange): ``kfx-run-start`` checks the rest.
    """
    rule = rule_for(parameter_type)
    schema: dict[str, Any] = dict(rule.schema) if rule else {}
    item_rule = rule_for(item_type)
    if rule is not None and rule.kind == "LIST" and item_rule is not None and item_rule.kind != "STRING":
        typed = dict(item_rule.schema)  # lists of lists or dicts: the form's JSON editor for lists
        schema["items"] = {"anyOf": [typed, dict(item_rule.text_schema)]} if item_rule.text_schema else typed
    if nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema
