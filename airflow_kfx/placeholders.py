"""KFP command-line placeholders: parsing, structure (Concat/IfPresent), value text.

Pure and stdlib-only. :mod:`airflow_kfx.task_io` supplies the values; this module
knows the grammar and the structure. How a value becomes command-line text is
:mod:`airflow_kfx.values`.

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

import json
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
