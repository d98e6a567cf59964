"""KFP command-line placeholders: parsing, structure (Concat/IfPresent), value text.

Pure and stdlib-only. :mod:`airflow_kfx.task_io` supplies the values; this module
knows the grammar, how KFP turns values into command-line text (Go launcher
semantics) and how it reads output-parameter files back into values.

Grammar (``api/v2alpha1/pipeline_spec.proto``, comment on ``ExecutorInput``, and
``kfp/dsl/placeholders.py`` for what the SDK emits)::

    {{$}}                                         the ExecutorInput as JSON
    {{$.inputs.parameters['x']}}                  an input parameter's value
    {{$.inputs.artifacts['x']}}                   the input artifact list as JSON
    {{$.inputs.artifacts['x'].uri|path|metadata}} of the first artifact
    {{$.inputs.artifacts['x'].metadata['k']}}     (``.properties['k']``: proto alias)
    {{$.outputs.parameters['x'].output_file}}
    {{$.outputs.artifacts['x']}} / ['x'].uri|path|metadata|metadata['k']
    {{$.outputs.output_file}}                     (legacy alias ``{{$.outputMetadataUri}}``)
    {{$.pipeline_job_name}} … {{$.workspace_path}} run-time values (``RUNTIME_PLACEHOLDERS``)

Structural placeholders come as dicts or, as the SDK compiles them, as strings
holding their JSON (``'{"Concat": [...]}'``, ``'{"IfPresent": {...}}'``); they
nest. Substitution is a single regex pass over each final string, so text that a
value brings in is never re-scanned (no Jinja, no shell, no injection).
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_kfx.exceptions import KfxError

# {{$.pipeline_*}} names defined by kfp.dsl (PIPELINE_*_PLACEHOLDER, WORKSPACE_PATH_PLACEHOLDER)
# and the Vertex-only ones google-cloud-pipeline-components use as input defaults.
RUNTIME_PLACEHOLDERS = frozenset(
    {
        "pipeline_job_name",
        "pipeline_job_resource_name",
        "pipeline_job_uuid",
        "pipeline_task_name",
        "pipeline_task_uuid",
        "pipeline_root",
        "pipeline_job_create_time_utc",
        "pipeline_job_schedule_time_utc",
        "workspace_path",
        "pipeline_google_cloud_project_id",
        "pipeline_google_cloud_location",
        "pipeline_persistent_resource_id",
    }
)

STRUCT_TYPES = ("STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG")  # JSON-object parameter types

TOKEN_RE = re.compile(r"\{\{\$([^{}]*?)\}\}")
_IO_RE = re.compile(
    r"""\.(?P<io>inputs|outputs)\.(?P<kind>parameters|artifacts)
        \[(?P<q>['"])(?P<name>[^'"]*)(?P=q)\]
        (?:\.(?P<attr>[A-Za-z_]+)(?:\[(?P<q2>['"])(?P<key>[^'"]*)(?P=q2)\])?)?""",
    re.X,
)
_RUNTIME_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
# the SDK serialises Concat/IfPresent with json.dumps; the Go driver tests the
# same prefix after TrimSpace (backend/src/v2/driver/util.go isConditionClause)
_STRUCT_RE = re.compile(r'\s*\{\s*"(Concat|IfPresent)"\s*:')


class PlaceholderError(KfxError):
    """A command-line item uses a placeholder that cannot be resolved."""

    def __init__(self, message: str, *, placeholder: str = "", where: str = "") -> None:
        self.message = message
        self.placeholder = placeholder
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class Placeholder:
    """One parsed ``{{$...}}`` token.

    ``kind``: executor_input | input_parameter | input_artifact | output_parameter |
    output_artifact | output_file | runtime. ``attr``: uri | path | metadata |
    output_file | None (whole artifact list). ``key``: a metadata key.
    """

    text: str
    kind: str
    name: str = ""
    attr: str | None = None
    key: str | None = None


def parse_placeholder(text: str, where: str = "") -> Placeholder:
    """Parse one ``{{$...}}`` token; unknown shapes raise :class:`PlaceholderError`."""
    match = TOKEN_RE.fullmatch(text)
    if not match:
        raise PlaceholderError(f"not a placeholder: {text!r}", placeholder=text, where=where)
    body = match.group(1)
    if body == "":
        return Placeholder(text, "executor_input")
    if body in (".outputs.output_file", ".outputMetadataUri"):
        return Placeholder(text, "output_file")
    io = _IO_RE.fullmatch(body)
    if io:
        return _io_placeholder(text, io, where)
    runtime = _RUNTIME_RE.fullmatch(body)
    if runtime:
        return Placeholder(text, "runtime", runtime.group(1))
    raise PlaceholderError(f"unknown placeholder {text!r}", placeholder=text, where=where)


def _io_placeholder(text: str, m: re.Match[str], where: str) -> Placeholder:
    direction, kind, name, attr, key = m["io"], m["kind"], m["name"], m["attr"], m["key"]
    if attr == "properties":  # proto comment's name for what RuntimeArtifact now calls metadata
        attr = "metadata"
    if kind == "parameters":
        ok = (attr is None and direction == "inputs") or (
            attr == "output_file" and direction == "outputs"
        )
        if ok and key is None:
            return Placeholder(text, f"{direction[:-1]}_parameter", name, attr)
    elif attr in (None, "uri", "path", "metadata") and (key is None or attr == "metadata"):
        return Placeholder(text, f"{direction[:-1]}_artifact", name, attr, key)
    raise PlaceholderError(f"unknown placeholder {text!r}", placeholder=text, where=where)


# -- command-line structure ------------------------------------------------------------

Resolve = Callable[[Placeholder, str], str]


def expand(
    items: Sequence[Any],
    resolve: Resolve,
    is_present: Callable[[str], bool],
    where: str = "",
) -> list[str]:
    """Command/args items → argv, as kfp.local.placeholder_utils.resolve_struct_placeholders.

    A top-level IfPresent contributes 0..n args (its Then/Else list is spliced in;
    no Else → nothing); a Concat is one arg. Inside Concat, an IfPresent must have
    a single element (the SDK rejects lists there: ConcatPlaceholder.__init__) and
    an absent branch contributes "".
    """
    if isinstance(items, (str, Mapping)):
        raise PlaceholderError("command/args must be a list", where=where)
    argv: list[str] = []
    for index, item in enumerate(items):
        loc = f"{where} item {index}" if where else f"item {index}"
        argv.extend(_expand(_decode(item, loc), resolve, is_present, loc))
    return argv


def _decode(item: Any, where: str) -> str | dict[str, Any]:
    """A string, or a validated ``{"Concat": ...}`` / ``{"IfPresent": ...}`` dict."""
    if isinstance(item, str):
        if not _STRUCT_RE.match(item):
            return item
        try:
            item = json.loads(item)
        except json.JSONDecodeError as exc:
            raise PlaceholderError(f"malformed Concat/IfPresent JSON ({exc}): {item!r}", where=where) from None
    if not isinstance(item, Mapping) or len(item) != 1:
        raise PlaceholderError(
            f"a command-line item must be a string, Concat or IfPresent, got {item!r}", where=where
        )
    (kind, body), = item.items()
    if kind == "Concat":
        if not isinstance(body, list):
            raise PlaceholderError(f"Concat takes a list, got {body!r}", where=where)
    elif kind == "IfPresent":
        if not isinstance(body, Mapping) or not isinstance(body.get("InputName"), str):
            raise PlaceholderError(f"IfPresent needs an InputName: {body!r}", where=where)
        unknown = set(body) - {"InputName", "Then", "Else"}
        if unknown:
            raise PlaceholderError(f"IfPresent has unknown keys {sorted(unknown)}", where=where)
    else:
        raise PlaceholderError(f"unknown structural placeholder {kind!r}", where=where)
    return {kind: body}


def _branch(node: Mapping[str, Any], is_present: Callable[[str], bool]) -> Any:
    body = node["IfPresent"]
    return body.get("Then") if is_present(body["InputName"]) else body.get("Else")


def _expand(node: Any, resolve: Resolve, is_present: Callable[[str], bool], where: str) -> list[str]:
    if isinstance(node, str):
        return [substitute(node, resolve, where)]
    if "Concat" in node:
        return [_scalar(node, resolve, is_present, where)]
    branch = _branch(node, is_present)
    if branch is None:
        return []
    elements = branch if isinstance(branch, list) else [branch]
    return [arg for e in elements for arg in _expand(_decode(e, where), resolve, is_present, where)]


def _scalar(node: Any, resolve: Resolve, is_present: Callable[[str], bool], where: str) -> str:
    if isinstance(node, str):
        return substitute(node, resolve, where)
    if "Concat" in node:
        return "".join(_scalar(_decode(e, where), resolve, is_present, where) for e in node["Concat"])
    branch = _branch(node, is_present)
    if isinstance(branch, list):
        if len(branch) > 1:
            raise PlaceholderError(
                "IfPresent inside Concat must have a single Then/Else element", where=where
            )
        branch = branch[0] if branch else None
    return "" if branch is None else _scalar(_decode(branch, where), resolve, is_present, where)


def substitute(text: str, resolve: Resolve, where: str = "") -> str:
    """Replace every ``{{$...}}`` token in ``text`` in one pass."""
    return TOKEN_RE.sub(lambda m: resolve(parse_placeholder(m.group(0), where), where), text)


def list_placeholders(items: Any) -> set[str]:
    """Every ``{{$...}}`` token in command/args items, both IfPresent branches included."""
    return {m.group(0) for text in _strings(items) for m in TOKEN_RE.finditer(text)}


def present_checks(items: Any) -> set[str]:
    """The input names IfPresent placeholders test."""
    names: set[str] = set()
    for node in _nodes(items):
        if isinstance(node, Mapping) and isinstance(node.get("IfPresent"), Mapping):
            names.add(str(node["IfPresent"].get("InputName")))
    return names


def _nodes(value: Any) -> Iterator[Any]:
    if isinstance(value, str) and _STRUCT_RE.match(value):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    yield value
    if isinstance(value, Mapping):
        for child in value.values():
            yield from _nodes(child)
    elif isinstance(value, (list, tuple)):
        for child in value:
            yield from _nodes(child)


def _strings(value: Any) -> Iterator[str]:
    return (n for n in _nodes(value) if isinstance(n, str))


# -- values as text (Go semantics) -------------------------------------------------------


def value_to_text(value: Any) -> str:
    """A parameter value as the KFP launcher prints it on the command line.

    backend/src/v2/component/launcher_v2.go getPlaceholders (same as
    metadata.PbValueToText): string as is; number ``strconv.FormatFloat(v, 'f', -1,
    64)`` (3.0 → "3", 1e-05 → "0.00001"); bool "true"/"false"; list/struct
    ``json.Marshal`` of the structpb message, i.e. compact protojson with sorted
    keys and HTML-escaped <>&; null → "".
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


# -- text as values (Go semantics) -------------------------------------------------------

_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_FLOAT_RE = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_SPECIAL_FLOATS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
                   "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}
_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
          **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}


def parameter_type_name(parameter_type: Any) -> str:
    """"NUMBER_INTEGER" from the name or an enum member whose value is the name."""
    return str(getattr(parameter_type, "value", parameter_type) or "")


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


def parse_parameter_text(text: str, parameter_type: Any) -> Any:
    """An output parameter file's text → value (metadata.TextToPbValue).

    STRING as is (no trimming); NUMBER_INTEGER strconv.ParseInt of the trimmed text
    (base 10, int64: "3" → 3, "3.0" is an error); NUMBER_DOUBLE strconv.ParseFloat;
    BOOLEAN strconv.ParseBool (1/t/T/TRUE/true/True, 0/f/F/FALSE/false/False);
    LIST / STRUCT JSON of that shape. Raises ValueError.
    """
    kind = parameter_type_name(parameter_type)
    if kind == "STRING":
        return text
    trimmed = text.strip()
    if kind == "NUMBER_INTEGER":
        if not _INT_RE.fullmatch(trimmed) or not -(2**63) <= int(trimmed) < 2**63:
            raise ValueError(f"not an int64: {text!r}")
        return int(trimmed)
    if kind == "NUMBER_DOUBLE":
        if trimmed.lower() in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[trimmed.lower()]
        if _HEX_FLOAT_RE.fullmatch(trimmed):
            return float.fromhex(trimmed)
        if not _FLOAT_RE.fullmatch(trimmed) or math.isinf(float(trimmed)):
            raise ValueError(f"not a float64: {text!r}")
        return float(trimmed)
    if kind == "BOOLEAN":
        if trimmed not in _BOOLS:
            raise ValueError(f"not a boolean: {text!r}")
        return _BOOLS[trimmed]
    if kind in ("LIST", *STRUCT_TYPES):
        try:
            value = strict_json(text)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(value, list if kind == "LIST" else dict):
            raise ValueError(f"expected a JSON {'array' if kind == 'LIST' else 'object'}: {text!r}")
        return value
    raise ValueError(f"unknown parameter type {kind!r}")
