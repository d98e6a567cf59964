"""Reading YAML/JSON documents while remembering where each value came from.

Every mapping is loaded as a :class:`LineDict`, a ``dict`` that also knows the
line of each of its keys, so the parser can report ``file:line`` for any error.
:class:`Node` walks the data with its YAML path, which every error carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError

try:  # libyaml is ~10x faster; DAG files are parsed every 30 s.
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _BaseLoader = yaml.SafeLoader


class LineDict(dict):
    """A dict that remembers the 1-based source line of each key (and of itself)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}
        self.line: int | None = None


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise SpecError(
                "a mapping key must be a scalar", line=key_node.start_mark.line + 1
            ) from None
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(text: str, file: str) -> list[Any]:
    """Parse YAML (one or more documents) or JSON text; empty documents are dropped."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return [json.loads(text, object_pairs_hook=LineDict)]
        except json.JSONDecodeError:
            pass  # YAML flow style; fall through to the YAML parser
    try:
        documents = list(yaml.load_all(text, Loader=_LineLoader))
    except SpecError as err:
        raise SpecError(err.message, file=file, line=err.line) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(
            f"not valid YAML: {err.problem or err}; fix the syntax", file=file, line=line
        ) from None
    except yaml.YAMLError as err:
        raise SpecError(f"not valid YAML: {err}", file=file) from None
    return [doc for doc in documents if doc is not None]


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
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        text = str(key)
        if text.replace("-", "").replace("_", "").isalnum():
            return f"{self.path}.{text}" if self.path else text
        return f"{self.path}[{json.dumps(text)}]"

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
            got = "nothing" if self.value is None else type(self.value).__name__
            self.fail(f"expected {what or _kind_name(kind)}, got {got}")
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


def root_node(document: Any, file: str) -> Node:
    line = document.line if isinstance(document, LineDict) else None
    return Node(document, "", file, line)
