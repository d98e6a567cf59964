"""The model as JSON: the translation cache's file format.

The cache folder may be shared between DAG processors, and whoever can write there
must not be able to run code in them, so entries are data (never pickles): every
JSON object is a tagged wrapper naming what it holds, and only the model's own
dataclasses and enums (``airflow_kfx.spec.model``, ``platform_model``) can be built
from it. Anything else in an entry is a :class:`CodecError` — the caller parses the
pipeline file again instead.

    {"d": "Task", "f": {...}}   a model dataclass (its init fields)
    {"e": "ParameterType", "v": "STRING"}   a model enum
    {"t": [...]}   a tuple          {"m": [[key, value], ...]}   a mapping
    {"n": 0}   NO_DEFAULT (a parameter without a default)
Lists, strings, numbers, booleans and null are themselves.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Any


class CodecError(ValueError):
    """An entry that is not the JSON of a model."""


@cache
def _types() -> dict[str, type]:
    """The classes an entry may build: the model's dataclasses and enums, by name."""
    from airflow_kfx.spec import model, platform_model

    found: dict[str, type] = {}
    for module in (model, platform_model):
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__ and (
                dataclasses.is_dataclass(value) or issubclass(value, enum.Enum)
            ):
                if found.setdefault(name, value) is not value:
                    raise RuntimeError(f"two model classes are called {name}")  # the format names them
    return found


def dumps(value: Any) -> str:
    return json.dumps(_encode(value), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise CodecError(f"not JSON: {err}") from None
    return _decode(data)


def _encode(value: Any) -> Any:
    from airflow_kfx.spec.model import NO_DEFAULT

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"cannot store the number {value}")
        return value
    if value is NO_DEFAULT:
        return {"n": 0}
    if isinstance(value, enum.Enum):
        return {"e": _registered(type(value)), "v": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return {"d": _registered(type(value)), "f": fields}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, tuple):
        return {"t": [_encode(item) for item in value]}
    if isinstance(value, Mapping):
        return {"m": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise CodecError(f"cannot store a {type(value).__name__}")


def _registered(cls: type) -> str:
    if _types().get(cls.__name__) is not cls:
        raise CodecError(f"{cls.__module__}.{cls.__name__} is not a model class")
    return cls.__name__


_SCALARS = (str, int, float, bool, type(None))


def _decode(data: Any) -> Any:
    # The hot path of every DAG-folder parse (a warm cache decodes each pipeline once per
    # parse): plain values first, class lookups and field names cached per class.
    if type(data) in _SCALARS:
        return data
    if type(data) is list:
        return [item if type(item) in _SCALARS else _decode(item) for item in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise CodecError(f"unexpected JSON: {str(data)[:80]}")
    if len(data) == 2 and "d" in data and "f" in data and isinstance(data["f"], dict):
        cls, known = _dataclass(data["d"])
        fields = data["f"]
        if not fields.keys() <= known:
            raise CodecError(f"{data['d']} has no field(s) {sorted(set(fields) - known)}")
        try:
            return cls(**{name: value if type(value) in _SCALARS else _decode(value)
                          for name, value in fields.items()})
        except TypeError as err:
            raise CodecError(f"cannot build {data['d']}: {err}") from None
    if "t" in data and len(data) == 1:
        return tuple(_decode(_list(data["t"])))
    if "m" in data and len(data) == 1:
        return {_hashable(_decode(pair[0])): _decode(pair[1]) for pair in _pairs(data["m"])}
    if data == {"n": 0}:
        from airflow_kfx.spec.model import NO_DEFAULT

        return NO_DEFAULT
    if data.keys() == {"e", "v"}:
        cls = _class(data["e"])
        if not issubclass(cls, enum.Enum):
            raise CodecError(f"{data['e']} is not an enum")
        try:
            return cls(data["v"])
        except ValueError:
            raise CodecError(f"{data['v']!r} is not a {data['e']}") from None
    raise CodecError(f"unexpected JSON object with keys {sorted(data)}")


def _dataclass(name: Any) -> tuple[type, frozenset[str]]:
    """A model dataclass by name and the names of its init fields."""
    cls = _class(name)
    if not dataclasses.is_dataclass(cls):
        raise CodecError(f"{name} is not a model dataclass")
    return cls, _init_fields(cls)


@cache
def _init_fields(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _class(name: Any) -> type:
    cls = _types().get(name) if isinstance(name, str) else None
    if cls is None:
        raise CodecError(f"{name!r} is not a model class")
    return cls


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError("expected a list")
    return value


def _pairs(value: Any) -> list[list[Any]]:
    pairs = _list(value)
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise CodecError("expected [key, value] pairs")
    return pairs


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        raise CodecError("a mapping key must be hashable") from None
    return key
