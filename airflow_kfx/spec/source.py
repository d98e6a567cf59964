"""Reading YAML/JSON documents while remembering where each value came from.

Every mapping is loaded as a :class:`LineDict`, a ``dict`` that also knows the
line of each of its keys, so the parser can report ``file:line`` for any error.
:class:`Node` walks the data with its YAML path, which every error carries.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError

try:  # libyaml is ~10x faster; DAG files are parsed every 30 s.
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _BaseLoader = yaml.SafeLoader


# Bounds on what a loaded document may be. KFP's own files nest under 20 levels and hold
# a few thousand values; the bounds are far above that and far below what hurts.
MAX_DEPTH = 100  # nested mappings/lists: libyaml builds nodes recursively in C (a deeper file
# crashes the process) and the parsers walk values recursively (RecursionError)
MAX_VALUES = 1_000_000  # values once aliases are expanded: PyYAML shares an aliased value, but
# anything walking it (proto-JSON renaming, defaults, the cache) expands it, exponentially
# for a "billion laughs" file


class LineDict(dict):
    """A dict that remembers the 1-based source line of each key (and of itself)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}
        self.line: int | None = None


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    try:
        loader.flatten_mapping(node)
    except (TypeError, ValueError, AttributeError):  # PyYAML trips over some odd merges itself
        raise SpecError("a merge key ('<<') must merge mappings", line=_line(node)) from None
    result = LineDict()
    result.line = _line(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            # KFP files are JSON data: keys are strings (and `1:` or `true:` is a typo more often)
            shown = "a mapping or list" if isinstance(key_node, yaml.CollectionNode) else repr(key)
            raise SpecError(f"a mapping key must be a string, got {shown}; quote it", line=_line(key_node))
        if key in result:
            # YAML (and JSON) parsers keep the last of two equal keys: the first value would
            # be dropped without a word, and a hand-edited file would run something else.
            raise SpecError(f"the key '{_clip(key)}' appears twice in one mapping (also at line "
                            f"{result.key_lines[key]}); keep one", line=_line(key_node))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = _line(key_node)
    return result


def _checked_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = _BaseLoader.construct_yaml_int(loader, node)
    if abs(value) > sys.float_info.max:
        raise SpecError(f"{_clip(str(node.value))} is too large for a number in a KFP file", line=_line(node))
    return value


def _json_int(text: str) -> int:
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise ValueError("too large")  # the YAML parser then reports it, with its line
    return value


def _checked_scalar(construct: Any) -> Any:
    """PyYAML's own scalar constructor, with its ValueError/KeyError (``!!int abc``, a
    5000-digit integer, ``!!bool maybe``) turned into an error at the value's line."""

    def checked(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, TypeError, OverflowError) as err:
            kind = node.tag.rsplit(":", 1)[-1]
            raise SpecError(
                f"{_clip(str(node.value))!r} is not a valid {kind} ({_clip(str(err))}); quote it to make it a string",
                line=_line(node),
            ) from None

    return checked


def _refused_tag(loader: yaml.SafeLoader, node: yaml.Node) -> NoReturn:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise SpecError(
        f"the YAML tag {tag} makes a value KFP files cannot hold (they are JSON data); remove it",
        line=_line(node),
    )


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    # An unquoted 2024-01-31 stays the text it is: KFP values are JSON (no dates), and
    # PyYAML would fail on 2024-13-45 or hand a datetime to code expecting JSON types.
    return str(node.value)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
for _kind, _construct in (("null", None), ("bool", None), ("int", _checked_int), ("float", None)):
    _tag = f"tag:yaml.org,2002:{_kind}"
    _LineLoader.add_constructor(_tag, _checked_scalar(_construct or _BaseLoader.yaml_constructors[_tag]))
for _kind in ("binary", "omap", "pairs", "set"):
    _LineLoader.add_constructor(f"tag:yaml.org,2002:{_kind}", _refused_tag)


def decode_text(data: bytes, file: str) -> str:
    """The UTF-8 text of a file (a leading byte-order mark dropped), or a SpecError at the
    line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise SpecError("the file is UTF-16; save it as UTF-8 (KFP YAML or JSON)", file=file, line=1) from None
        raise SpecError(
            f"not a UTF-8 text file (byte 0x{data[err.start]:02x}); expected KFP YAML or JSON",
            file=file, line=data.count(b"\n", 0, err.start) + 1,
        ) from None


def load_documents(text: str, file: str) -> list[Any]:
    """Parse YAML (one or more documents) or JSON text; empty documents are dropped."""
    _check_encodable(text, file)
    if text.lstrip().startswith("{"):
        documents = _json_documents(text, file)
        if documents is not None:
            return documents
    try:
        _check_shape(text)
        documents = list(yaml.load_all(text, Loader=_LineLoader))
    except SpecError as err:
        raise SpecError(err.message, file=file, line=err.line) from None
    except yaml.YAMLError as err:
        raise _yaml_error(err, text, file) from None
    return [doc for doc in documents if doc is not None]


def _check_encodable(text: str, file: str) -> None:
    """Text handed to the loaders directly may hold lone surrogates, which no parser reads."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise SpecError(
            f"the text holds U+{ord(text[err.start]):04X}, which is not a character; expected UTF-8 text",
            file=file, line=text.count("\n", 0, err.start) + 1,
        ) from None


def _json_documents(text: str, file: str) -> list[Any] | None:
    """JSON text as one document, its mappings given the lines of a YAML parse of the same
    text (JSON is YAML flow style), so errors name lines in JSON files too. None: not JSON."""
    try:
        document = json.loads(text, object_pairs_hook=LineDict, parse_int=_json_int)
    except (ValueError, RecursionError):
        return None  # YAML flow style, or too big or deep for json: the YAML parser says which, with a line
    as_yaml = _SURROGATE_ESCAPE.sub(r"\\uFFFD", text)
    try:
        _check_shape(as_yaml)
        located = yaml.load(as_yaml, Loader=_LineLoader)
    except SpecError as err:
        raise SpecError(err.message, file=file, line=err.line) from None
    except yaml.YAMLError:  # JSON that YAML 1.1 does not read (e.g. a key over 1024 characters)
        if _depth(document) > MAX_DEPTH:
            raise SpecError(_too_deep(), file=file) from None
        return [document]
    _copy_lines(located, document)
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(document, text, file)
    return [document]


# JSON escapes UTF-16 surrogates ("\\ud83d\\ude00" is one emoji); libyaml refuses them. The
# YAML parse of JSON text only finds lines, so any character will do in their place.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _check_surrogates(document: Any, text: str, file: str) -> None:
    """A lone surrogate escape ("\\ud800" without its pair) makes a string that is not text:
    it cannot be printed, logged or sent anywhere as UTF-8."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                escape = f"\\u{ord(value[err.start]):04x}"
                at = text.lower().find(escape)
                raise SpecError(
                    f"the escape {escape} is half of a UTF-16 pair, not a character; remove it",
                    file=file, line=text.count("\n", 0, at) + 1 if at >= 0 else None,
                ) from None


def _copy_lines(located: Any, document: Any) -> None:
    pairs = [(located, document)]
    while pairs:
        source, target = pairs.pop()
        if isinstance(source, LineDict) and isinstance(target, LineDict):
            target.line, target.key_lines = source.line, source.key_lines
            pairs.extend((source[key], value) for key, value in target.items() if key in source)
        elif isinstance(source, list) and isinstance(target, list):
            pairs.extend(zip(source, target))


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return deepest


def _too_deep() -> str:
    return f"values are nested more than {MAX_DEPTH} levels deep; a KFP file nests far less"


def _check_shape(text: str) -> None:
    """Refuse a stream nested deeper than MAX_DEPTH or whose aliases expand to more than
    MAX_VALUES values, from libyaml's events alone, before any node is built."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor → (values, depth) of its node
    open_nodes: list[list[Any]] = []  # [values, depth, anchor] of each collection being read
    total = 0
    aliased = False
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise SpecError(_too_deep(), line=event.start_mark.line + 1)
            open_nodes.append([1, 1, event.anchor])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            values, depth, anchor = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            values, depth, anchor = 1, 0, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            anchor, aliased = None, True
            values, depth = _aliased(event, anchors, open_nodes)
            if len(open_nodes) + depth > MAX_DEPTH:
                raise SpecError(_too_deep(), line=event.start_mark.line + 1)
        else:
            continue
        if anchor is not None:
            anchors[anchor] = (values, depth)
        if open_nodes:
            parent = open_nodes[-1]
            parent[0] += values
            parent[1] = max(parent[1], depth + 1)
            values = parent[0]
        else:
            total += values
            values = total
        if values > MAX_VALUES:
            raise SpecError(_too_many(aliased), line=event.start_mark.line + 1)


def _too_many(aliased: bool) -> str:
    if aliased:
        return f"YAML aliases expand to more than {MAX_VALUES:,} values (an alias bomb?); KFP files use no aliases"
    return f"the file holds more than {MAX_VALUES:,} values; a KFP file holds far fewer"


def _aliased(event: yaml.AliasEvent, anchors: dict[str, tuple[int, int]], open_nodes: list[list[Any]]) -> tuple[int, int]:
    """(values, depth) an alias stands for."""
    if any(node[2] == event.anchor for node in open_nodes):
        raise SpecError(
            f"the alias *{event.anchor} refers to a value that contains it (endless data)",
            line=event.start_mark.line + 1,
        )
    return anchors.get(event.anchor, (1, 0))  # an undefined anchor: the composer reports it


def _yaml_error(err: yaml.YAMLError, text: str, file: str) -> SpecError:
    """One line: what is wrong and where (PyYAML's own message spans several lines)."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        context = err.context or ""
        if err.context_mark and mark is not err.context_mark:  # where the unclosed thing began
            context += f" that starts on line {err.context_mark.line + 1}, column {err.context_mark.column + 1}"
        problem = " ".join(filter(None, (err.problem, context and f"({context.strip()})")))
        # libyaml places the end of the text on the line after the last one
        line = min(mark.line + 1, text.count("\n") + 1) if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        return SpecError(f"not valid YAML{column}: {problem or err}; fix the syntax", file=file, line=line)
    if isinstance(err, yaml.reader.ReaderError):
        line = text.encode("utf-8")[: err.position].count(b"\n") + 1
        return SpecError(
            f"not valid YAML: {err.reason} (U+{err.character:04X}); remove it",
            file=file, line=line,
        )
    return SpecError(f"not valid YAML: {err}", file=file)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@dataclass(frozen=True)
class Node:
    """A value inside a loaded document, with the YAML path that reaches it."""

    value: Any
    path: str
    file: str
    line: int | None = None

    # -- navigation -------------------------------------------------------------
    def child(self, key: str | int) -> Node:
        """The child at ``key`` (a missing key gives a Node whose value is None)."""
        value = self.value
        line = self.line
        if isinstance(value, Mapping):
            child_value = value.get(key)
            line = getattr(value, "key_lines", {}).get(key, line)
            if isinstance(child_value, LineDict) and child_value.line is not None:
                line = child_value.line
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            child_value = value[key]
            if isinstance(child_value, LineDict) and child_value.line is not None:
                line = child_value.line
        else:
            child_value = None
        return Node(child_value, self._join(key), self.file, line)

    def _join(self, key: str | int) -> str:
        return join_path(self.path, key)

    def items(self) -> Iterator[tuple[str, Node]]:
        """``(key, child)`` pairs of a mapping (none if the value is absent)."""
        if self.value is None:
            return
        self.expect(Mapping)
        for key in self.value:
            yield key, self.child(key)

    def elements(self) -> Iterator[Node]:
        """The children of a list (none if the value is absent)."""
        if self.value is None:
            return
        self.expect(list)
        for index in range(len(self.value)):
            yield self.child(index)

    def has(self, key: str) -> bool:
        return isinstance(self.value, Mapping) and key in self.value

    def get(self, key: str, default: Any = None) -> Any:
        if isinstance(self.value, Mapping):
            return self.value.get(key, default)
        return default

    # -- typed access -------------------------------------------------------------
    def expect(self, kind: type | tuple[type, ...], what: str | None = None) -> Any:
        """The value if it is of ``kind``, else a SpecError naming what was expected."""
        if isinstance(self.value, bool) and kind in (int, float, (int, float)):
            self.fail(f"expected {what or _kind_name(kind)}, got a boolean")
        if not isinstance(self.value, kind):
            self.fail(f"expected {what or _kind_name(kind)}, got {_value_kind(self.value)}")
        return self.value

    def required(self, key: str, kind: type | tuple[type, ...] = object, what: str | None = None) -> Node:
        """The child ``key``, which must be present (and of ``kind``)."""
        self.expect(Mapping)
        if key not in self.value:
            self.fail(f"missing required field '{key}'")
        node = self.child(key)
        node.expect(kind, what)
        return node

    def optional(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        """The value at ``key`` if present (checked against ``kind``), else ``default``."""
        if not self.has(key) or self.value[key] is None:
            return default
        return self.child(key).expect(kind)

    # -- errors ---------------------------------------------------------------------
    def fail(self, message: str) -> NoReturn:
        raise SpecError(message, file=self.file, yaml_path=self.path or None, line=self.line)

    def unsupported(self, feature: str, message: str) -> NoReturn:
        raise UnsupportedFeatureError(
            feature, message, file=self.file, yaml_path=self.path or None, line=self.line
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {Mapping: "a mapping", dict: "a mapping", list: "a list", str: "a string",
             int: "an integer", float: "a number", bool: "a boolean"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def join_path(path: str, *keys: str | int) -> str:
    """``path`` one or more steps deeper: ``a.b``, ``a[3]``, ``a["odd.key"]``."""
    for key in keys:
        text = str(key)
        if isinstance(key, int):
            path = f"{path}[{key}]"
        elif text.replace("-", "").replace("_", "").isalnum():
            path = f"{path}.{text}" if path else text
        else:
            path = f"{path}[{json.dumps(text)}]"
    return path


# One step of a YAML path as join_path writes it: [3], ["odd key"] or .name
_PATH_STEP = re.compile(r'\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([^.\[]+)')


def relocate(err: SpecError, document: Any) -> SpecError:
    """``err`` naming the line of its YAML path in ``document``, as far as the path is found
    there. The model keeps the line of each task and component only, so errors found by
    checking the model (a dangling reference deep inside a task) start on that line."""
    line = _path_line(document, err.yaml_path or "")
    if line is not None and line != err.line:
        err.line = line
        err.args = (err.one_line(),)
    return err


def _path_line(document: Any, path: str) -> int | None:
    value, line = document, getattr(document, "line", None)
    for index, quoted, name in _PATH_STEP.findall(path):
        key: Any = int(index) if index else json.loads(quoted) if quoted else name
        if isinstance(value, LineDict) and not isinstance(key, int) and key in value:
            line = value.key_lines.get(key, line)
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
            line = value.line if isinstance(value, LineDict) and value.line else line
        else:
            break
    return line


def _value_kind(value: Any) -> str:
    if value is None:
        return "nothing"
    for kind in (bool, Mapping, list, str, int, float):  # bool first: it is an int too
        if isinstance(value, kind):
            return _kind_name(kind)
    return type(value).__name__


def root_node(document: Any, file: str) -> Node:
    # A document that is not a mapping (a list, a scalar) is refused at its top: line 1.
    line = document.line if isinstance(document, LineDict) else 1
    return Node(document, "", file, line)
