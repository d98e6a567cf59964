"""What the API server refuses, and how it says so.

Objects are validated against the Kubernetes 1.33 OpenAPI schema (``kubernetes_validate``,
strict: a field the schema does not know is refused), then by the rules of the API
server's own validation that the schema cannot express and that matter here: names,
labels, annotations, container/volume/mount consistency, env names, enums. Errors are
``Status`` objects as the API server writes them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

SCHEMA_VERSION = "1.33"

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: ``status()`` is the ``Status`` body, ``code`` the HTTP status."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    details = {"name": name, "kind": resource, **({"group": group} if group else {})}
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', details)


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', {"name": name, "kind": resource})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def conflict(resource: str, name: str, message: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": {message}',
                    {"name": name, "kind": resource})


class Cause:
    """One field error, rendered as the API server's ``field.Error``."""

    def __init__(self, reason: str, field: str, text: str, *, bare: bool = False) -> None:
        self.reason = reason
        self.field = field
        self.text = text  # what follows "field: "
        self.bare = bare  # the text names the field itself

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.text, "field": self.field}

    def line(self) -> str:
        return f"{self.field}: {self.text}" if self.field and not self.bare else self.text


def _go(value: Any) -> str:
    """A value as Go's %#v-ish rendering in field errors: strings quoted."""
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", field, f"Invalid value: {_go(value)}: {detail}")


def unsupported(field: str, value: Any, supported: list[str]) -> Cause:
    values = ", ".join(f'"{v}"' for v in supported)
    return Cause("FieldValueNotSupported", field, f"Unsupported value: {_go(value)}: supported values: {values}")


def duplicate(field: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", field, f"Duplicate value: {_go(value)}")


def missing(field: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", field, f"Not found: {_go(value)}")


def forbidden(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", field, f"Forbidden: {detail}")


def invalid_error(kind: str, name: str, causes: list[Cause]) -> ApiError:
    lines = [c.line() for c in causes]
    text = lines[0] if len(lines) == 1 else "[" + ", ".join(lines) + "]"
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                    {"name": name, "kind": kind, "causes": [c.as_dict() for c in causes]})


# ---------------------------------------------------------------------------
# Names, labels
# ---------------------------------------------------------------------------

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_ENV_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and "
    "must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for "
    "validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def dns_label_causes(field: str, value: str) -> list[Cause]:
    causes = []
    if len(value) > 63:
        causes.append(invalid(field, value, "must be no more than 63 characters"))
    if not DNS1123_LABEL.fullmatch(value):
        causes.append(invalid(field, value, _LABEL_MSG))
    return causes


def dns_subdomain_causes(field: str, value: str) -> list[Cause]:
    causes = []
    if len(value) > 253:
        causes.append(invalid(field, value, "must be no more than 253 characters"))
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        causes.append(invalid(field, value, _SUBDOMAIN_MSG))
    return causes


def qualified_name_causes(field: str, key: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    causes = []
    if "/" in key and (not prefix or not DNS1123_SUBDOMAIN.fullmatch(prefix) or len(prefix) > 253):
        causes.append(invalid(field, key, "prefix part " + _SUBDOMAIN_MSG))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        detail = "name part must be no more than 63 characters" if len(name) > 63 else _QUALIFIED_MSG
        causes.append(invalid(field, key, detail))
    return causes


def label_value_causes(field: str, value: Any) -> list[Cause]:
    if not isinstance(value, str):
        return [invalid(field, value, "must be a string")]
    if len(value) > 63:
        return [invalid(field, value, "must be no more than 63 characters")]
    if not _LABEL_VALUE.fullmatch(value):
        return [invalid(field, value, _LABEL_VALUE_MSG)]
    return []


def valid_label_key(key: str) -> bool:
    return not qualified_name_causes("", key)


def valid_label_value(value: str) -> bool:
    return not label_value_causes("", value)


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------


@functools.cache
def _validator(kind: str) -> Any:
    """A jsonschema validator for a core/v1 kind, built once (kubernetes_validate reads and
    parses the schema files on every call, which is slow)."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = [v for v in utils.all_versions() if utils.major_minor(v) == SCHEMA_VERSION][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = utils.schema_contents(f"{folder}/{kind.lower()}-v1.json", SCHEMA_VERSION)
    definitions = utils.schema_contents(f"{folder}/_definitions.json", SCHEMA_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_causes(kind: str, obj: Mapping[str, Any]) -> list[Cause]:
    """The schema's complaints, as field errors (all of them, not only the first)."""
    causes: list[Cause] = []
    for error in sorted(_validator(kind).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        field = _field_path(error.absolute_path)
        if error.validator == "additionalProperties":
            known = set(error.schema.get("properties") or {})
            for extra in sorted(k for k in error.instance if k not in known):
                path = f"{field}.{extra}" if field else extra
                # worded as the API server's strict decoding (fieldValidation=Strict)
                causes.append(Cause("FieldValueInvalid", path, f'unknown field "{path}"', bare=True))
        elif error.validator == "required":
            name = re.search(r"'([^']+)' is a required property", error.message)
            sub = name.group(1) if name else "?"
            causes.append(required(f"{field}.{sub}" if field else sub))
        elif error.validator == "enum":
            causes.append(unsupported(field, error.instance, [str(v) for v in error.validator_value if v]))
        elif error.validator in ("type", "oneOf", "anyOf"):
            expected = _expected_type(error)
            causes.append(invalid(field, error.instance, f"must be of type {expected}"))
        else:
            causes.append(invalid(field, error.instance, error.message))
    return causes


def _expected_type(error: Any) -> str:
    value = error.validator_value
    if error.validator == "type":
        types = [value] if isinstance(value, str) else list(value)
        types = [t for t in types if t != "null"]
        return " or ".join(types) or "null"
    return "string or number"  # the int-or-string and quantity oneOfs


def _field_path(parts: Any) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# ---------------------------------------------------------------------------
# Per kind
# ---------------------------------------------------------------------------


def validate(kind: str, obj: Mapping[str, Any], *, name_rule: str = "subdomain") -> None:
    """Raise 422 Invalid with every problem of ``obj`` (a ``kind`` of core/v1)."""
    causes = schema_causes(kind, obj)
    metadata = obj.get("metadata") or {}
    if isinstance(metadata, Mapping):
        causes += metadata_causes(metadata, name_rule)
        if kind == "Pod" and isinstance(obj.get("spec"), Mapping):
            causes += pod_spec_causes(obj["spec"])
        elif kind in ("Secret", "ConfigMap"):
            causes += keyed_data_causes(obj)
        elif kind == "PersistentVolumeClaim":
            causes += claim_causes(obj.get("spec") or {})
    if causes:
        raise invalid_error(kind, str(metadata.get("name") or metadata.get("generateName") or ""), causes)


def metadata_causes(metadata: Mapping[str, Any], name_rule: str) -> list[Cause]:
    causes: list[Cause] = []
    name = metadata.get("name")
    if not name and not metadata.get("generateName"):
        causes.append(required("metadata.name", "name or generateName is required"))
    elif name and isinstance(name, str):
        check = dns_label_causes if name_rule == "label" else dns_subdomain_causes
        causes += check("metadata.name", name)
    for key, value in (metadata.get("labels") or {}).items():
        causes += qualified_name_causes("metadata.labels", key)
        causes += label_value_causes("metadata.labels", value)
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        causes += qualified_name_causes("metadata.annotations", key)
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > 256 * 1024:
        causes.append(Cause("FieldValueTooLong", "metadata.annotations",
                            "Too long: may not be more than 262144 bytes"))
    return causes


_RESTART = ["Always", "OnFailure", "Never"]
_PULL = ["Always", "IfNotPresent", "Never"]
_MESSAGE_POLICY = ["File", "FallbackToLogsOnError"]
_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)
_QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")


def pod_spec_causes(spec: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    volumes = spec.get("volumes") or []
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        if not isinstance(volume, Mapping):
            continue
        field = f"spec.volumes[{i}]"
        name = volume.get("name") or ""
        causes += dns_label_causes(f"{field}.name", name) if name else [required(f"{field}.name")]
        if name in names:
            causes.append(duplicate(f"{field}.name", name))
        names.add(name)
        sources = [k for k in _VOLUME_SOURCES if volume.get(k) is not None]
        if not sources:
            causes.append(required(field, "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(forbidden(f"{field}.{sources[1]}", "may not specify more than 1 volume type"))
    if not spec.get("containers"):
        causes.append(required("spec.containers"))
    if spec.get("restartPolicy") not in (None, *_RESTART):
        causes.append(unsupported("spec.restartPolicy", spec["restartPolicy"], _RESTART))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= 2147483647:
        causes.append(invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            if isinstance(container, Mapping):
                causes += container_causes(f"spec.{key}[{i}]", container, names, seen, init=key == "initContainers")
    return causes


def container_causes(
    field: str, container: Mapping[str, Any], volumes: set[str], seen: set[str], *, init: bool
) -> list[Cause]:
    causes: list[Cause] = []
    name = container.get("name") or ""
    if name:
        causes += dns_label_causes(f"{field}.name", name)
        if name in seen:
            causes.append(duplicate(f"{field}.name", name))
        seen.add(name)
    if not container.get("image"):
        causes.append(required(f"{field}.image"))
    policy = container.get("restartPolicy")
    if policy is not None:
        if not init:
            causes.append(forbidden(f"{field}.restartPolicy", "may not be set for non-init containers"))
        elif policy != "Always":
            causes.append(unsupported(f"{field}.restartPolicy", policy, ["Always"]))
    if container.get("imagePullPolicy") not in (None, *_PULL):
        causes.append(unsupported(f"{field}.imagePullPolicy", container["imagePullPolicy"], _PULL))
    if container.get("terminationMessagePolicy") not in (None, *_MESSAGE_POLICY):
        causes.append(unsupported(f"{field}.terminationMessagePolicy", container["terminationMessagePolicy"],
                                  _MESSAGE_POLICY))
    for i, variable in enumerate(container.get("env") or []):
        if isinstance(variable, Mapping):
            causes += env_causes(f"{field}.env[{i}]", variable)
    for i, source in enumerate(container.get("envFrom") or []):
        if isinstance(source, Mapping):
            refs = [k for k in ("configMapRef", "secretRef") if source.get(k) is not None]
            if len(refs) != 1:
                causes.append(invalid(f"{field}.envFrom[{i}]", "", "may not have more than one field specified at a time"
                                      if refs else "must specify one of: `configMapRef` or `secretRef`"))
    paths: set[str] = set()
    for i, mount in enumerate(container.get("volumeMounts") or []):
        if not isinstance(mount, Mapping):
            continue
        at = f"{field}.volumeMounts[{i}]"
        if mount.get("name") not in volumes:
            causes.append(missing(f"{at}.name", mount.get("name")))
        path = mount.get("mountPath") or ""
        if path in paths:
            causes.append(invalid(f"{at}.mountPath", path, "must be unique"))
        paths.add(path)
        sub = mount.get("subPath") or ""
        if sub and (sub.startswith("/") or ".." in sub.split("/")):
            causes.append(invalid(f"{at}.subPath", sub, "must be a relative path without '..'"))
    for kind in ("limits", "requests"):
        for resource, value in ((container.get("resources") or {}).get(kind) or {}).items():
            if not _QUANTITY.fullmatch(str(value)):
                causes.append(invalid(f"{field}.resources.{kind}[{resource}]", value,
                                      "quantities must match the regular expression "
                                      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
    return causes


def env_causes(field: str, variable: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    name = variable.get("name") or ""
    if name and not _ENV_NAME.fullmatch(name):
        causes.append(invalid(f"{field}.name", name, _ENV_MSG))
    source = variable.get("valueFrom")
    if isinstance(source, Mapping):
        kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef") if source.get(k)]
        if variable.get("value"):
            causes.append(invalid(f"{field}.valueFrom", "", "may not be specified when `value` is not empty"))
        if len(kinds) > 1:
            causes.append(invalid(f"{field}.valueFrom", "", "may not have more than one field specified at a time"))
        elif not kinds:
            causes.append(invalid(f"{field}.valueFrom", "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                  "`configMapKeyRef` or `secretKeyRef`"))
    return causes


def keyed_data_causes(obj: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for section in ("data", "binaryData", "stringData"):
        for key in (obj.get(section) or {}):
            if not _CONFIG_KEY.fullmatch(key) or key in (".", ".."):
                causes.append(invalid(f"{section}[{key}]", key, _CONFIG_KEY_MSG))
            if section == "binaryData" and key in seen:
                causes.append(invalid(f"{section}[{key}]", key, "duplicate of key present in data"))
            seen.add(key)
    return causes


def claim_causes(spec: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if not spec.get("accessModes"):
        causes.append(required("spec.accessModes", "at least 1 access mode is required"))
    if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
        causes.append(required("spec.resources[storage]"))
    return causes
