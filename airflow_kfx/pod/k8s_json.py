"""Turn Kubernetes JSON (camelCase dicts) into ``kubernetes.client`` model objects.

kfp-kubernetes lets a pipeline pass whole Kubernetes objects as parameters
(``tolerationJson``, ``nodeAffinityJson``). The client's own deserialiser drops
unknown keys without a word, so a typo such as ``"efect"`` would silently change
scheduling; this converter refuses them instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from airflow_kfx.exceptions import TaskRuntimeError

_DICT_TYPE = re.compile(r"^dict\(([^,]+), (.+)\)$")


def to_k8s_model(data: Any, type_name: str, what: str) -> Any:
    """``data`` as the client type ``type_name`` (``"V1Toleration"``, ``"list[str]"``, …).

    ``what`` names the value in error messages, e.g. ``"tolerationJson[0]"``.
    """
    from kubernetes.client import models
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise _error(what, f"expected a list, got {type(data).__name__}")
        inner = type_name[5:-1]
        return [to_k8s_model(item, inner, f"{what}[{i}]") for i, item in enumerate(data)]
    match = _DICT_TYPE.match(type_name)
    if match:
        if not isinstance(data, dict):
            raise _error(what, f"expected a mapping, got {type(data).__name__}")
        return {str(k): to_k8s_model(v, match.group(2), f"{what}.{k}") for k, v in data.items()}
    if type_name in ("str", "int", "float", "bool", "object"):
        return _primitive(data, type_name, what)
    cls = getattr(models, type_name, None)
    if cls is None:  # pragma: no cover - only if the client renames a model
        raise _error(what, f"unknown Kubernetes type {type_name}")
    if not isinstance(data, dict):
        raise _error(what, f"expected a {type_name[2:]} mapping, got {type(data).__name__}")
    attrs = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        attr = attrs.get(key)
        if attr is None:
            known = ", ".join(sorted(attrs))
            raise _error(what, f"unknown field {key!r} of a Kubernetes {type_name[2:]} (known: {known})")
        if value is not None:
            kwargs[attr] = to_k8s_model(value, cls.openapi_types[attr], f"{what}.{key}")
    try:
        return cls(**kwargs)
    except ValueError as err:  # the client's own checks, e.g. a missing required field
        raise _error(what, str(err)) from None


def _primitive(data: Any, type_name: str, what: str) -> Any:
    if type_name == "object":
        return data
    if type_name == "str" and isinstance(data, str):
        return data
    if type_name == "bool" and isinstance(data, bool):
        return data
    if type_name in ("int", "float") and isinstance(data, (int, float)) and not isinstance(data, bool):
        if type_name == "float":
            return float(data)
        # JSON numbers that went through a protobuf Struct come back as floats (100.0).
        if isinstance(data, int) or data.is_integer():
            return int(data)
    raise _error(what, f"expected {type_name}, got {data!r}")


def _error(what: str, message: str) -> TaskRuntimeError:
    return TaskRuntimeError(f"{what}: {message}")
