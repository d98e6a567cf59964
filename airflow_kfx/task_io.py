"""A container task's KFP contract (task I/O): ExecutorInput in, outputs back.

Pure (stdlib only). Given a task's resolved inputs and where its outputs go, build
KFP's ``ExecutorInput``, resolve the container's command/args placeholders as the
KFP v2 driver/launcher do, and read the outputs back afterwards the way the
launcher collects them. References (kubeflow/pipelines):

* ``backend/src/v2/component/launcher_v2.go``: getPlaceholders (value text,
  artifact paths), collectOutputParameters, getExecutorOutputFile,
  mergeRuntimeArtifacts, LocalPathForURI;
* ``backend/src/v2/driver/util.go`` (resolveCondition: IfPresent) and
  ``resolve.go`` (runtime constants, STRING conversion);
* values (PbValueToText, TextToPbValue, types): :mod:`airflow_kfx.values`;
* ``sdk/python/kfp/local/placeholder_utils.py``: Concat/IfPresent structure,
  f-string parameters, pipeline placeholders.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.placeholders import (
    RUNTIME_PLACEHOLDERS,
    TOKEN_RE,
    Placeholder,
    PlaceholderError,
    expand,
    list_placeholders,
)
from airflow_kfx.values import (
    ParameterValueError,
    convert,
    go_json,
    parse_text,
    strict_json,
    type_name,
    value_to_text,
)

__all__ = [
    "ArtifactRef",
    "ExecutorContext",
    "OutputError",
    "PlaceholderError",
    "RUNTIME_PLACEHOLDERS",
    "WORKSPACE_MOUNT_PATH",
    "build_executor_input",
    "executor_input_json",
    "list_placeholders",
    "local_path_for_uri",
    "read_outputs",
    "resolve_command_line",
]

WORKSPACE_MOUNT_PATH = "/kfp-workspace"  # kfp.dsl.constants / Go component.WorkspaceMountPath


class OutputError(TaskRuntimeError):
    """An output of a finished task is missing or unreadable."""

    def __init__(self, message: str, *, output: str = "", path: str = "") -> None:
        self.output = output
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class ArtifactRef:
    """One RuntimeArtifact. ``path`` is where it is mounted in the pod (see
    :func:`local_path_for_uri`)."""

    name: str
    uri: str
    path: str
    schema_title: str
    schema_version: str = "0.0.1"
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def for_uri(cls, name: str, uri: str, schema_title: str, schema_version: str = "0.0.1",
                metadata: Mapping[str, Any] | None = None) -> ArtifactRef:
        metadata = dict(metadata or {})
        return cls(name, uri, local_path_for_uri(uri, metadata), schema_title, schema_version, metadata)


@dataclass(frozen=True)
class ExecutorContext:
    """Everything one container task's placeholders can refer to.

    ``input_parameters``: values the task was given; None means absent.
    ``input_parameter_types``: KFP ParameterType names (STRING, NUMBER_INTEGER, …).
    ``input_artifacts``: a list per input (a 1-list for a single artifact).
    ``output_parameters``: name → file path in the pod; ``output_file``: the
    executor output (ExecutorOutput JSON) path. ``pipeline``: values for
    ``{{$.pipeline_job_name}}`` & co. (:data:`RUNTIME_PLACEHOLDERS`).
    ``input_parameter_defaults``: component defaults, used for inputs the task was
    not given. They fill values but do not make an input *present* for IfPresent
    (the Go driver tests only the inputs it resolved). Folding defaults into
    ``input_parameters`` instead makes them present, as kfp.local does.
    """

    input_parameters: Mapping[str, Any]
    input_parameter_types: Mapping[str, Any]
    input_artifacts: Mapping[str, Sequence[ArtifactRef]]
    output_parameters: Mapping[str, str]
    output_artifacts: Mapping[str, Sequence[ArtifactRef]]
    output_file: str
    pipeline: Mapping[str, str] = field(default_factory=dict)
    input_parameter_defaults: Mapping[str, Any] = field(default_factory=dict)
    # Inputs whose values are compiled constants (runtimeValue.constant): only these
    # may hold f-string/pipeline placeholders to fill, as KFP's driver does. Every
    # other value (run params, upstream outputs) is data and passes through as is.
    # None: treat every input as a constant (kfp.local's behaviour).
    constant_inputs: frozenset[str] | None = None

    def is_present(self, name: str) -> bool:
        """IfPresent: a parameter with a non-null value (null counts as absent,
        driver/util.go resolveCondition) or a non-empty artifact list (kfp.local
        counts artifacts too; the Go driver only looks at parameters)."""
        return self.input_parameters.get(name) is not None or bool(self.input_artifacts.get(name))


def local_path_for_uri(uri: str, metadata: Mapping[str, Any] | None = None) -> str:
    """Where the launcher mounts/downloads an artifact (launcher_v2.go LocalPathForURI).

    gs://b/x → /gcs/b/x, s3:// → /s3/, minio:// → /minio/, oci://r/m → /oci/r_m/models;
    anything else (a plain path) unchanged, as kfp.dsl.Artifact.path does. An input
    marked ``metadata['_kfp_workspace'] = True`` lives under /kfp-workspace/.artifacts/
    (launcher_v2.go LocalWorkspacePathForURI).
    """
    for scheme, mount in (("gs://", "/gcs/"), ("s3://", "/s3/"), ("minio://", "/minio/")):
        if uri.startswith(scheme):
            path = mount + uri[len(scheme):]
            break
    else:
        if uri.startswith("oci://"):
            return "/oci/" + uri[len("oci://"):].replace("/", "_") + "/models"
        path = uri
    if metadata and metadata.get("_kfp_workspace") is True:
        return f"{WORKSPACE_MOUNT_PATH}/.artifacts/{path.lstrip('/')}"
    return path


# -- parameter values ---------------------------------------------------------------------


def _typed(value: Any, parameter_type: Any, name: str) -> Any:
    """An input value in its ParameterType's form (:func:`airflow_kfx.values.convert`)."""
    try:
        return convert(value, parameter_type)
    except ParameterValueError as exc:
        raise TaskRuntimeError(f"input parameter {name!r} ({type_name(parameter_type)}): {exc}") from None


def _runtime_text(text: str, values: Mapping[str, Any], pipeline: Mapping[str, str], own: str) -> str:
    """Resolve placeholders inside a string parameter *value*: f-strings over other
    inputs (``"Hello {{$.inputs.parameters['pipelinechannel--name']}}"``) and
    pipeline placeholders passed as arguments. kfp.local does this
    (resolve_self_references_in_executor_input); anything else is left as is:
    a value is data, not a template."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        ref = re.fullmatch(r"\.inputs\.parameters\['([^']*)'\]", body)
        if ref and ref.group(1) != own and ref.group(1) in values:
            return value_to_text(values[ref.group(1)])
        runtime = re.fullmatch(r"\.([A-Za-z_][A-Za-z0-9_]*)", body)
        if runtime and runtime.group(1) in pipeline:
            return str(pipeline[runtime.group(1)])
        return match.group(0)

    return TOKEN_RE.sub(one, text)


def parameter_values(ctx: ExecutorContext) -> dict[str, Any]:
    """Input values after defaults, f-string/pipeline placeholders and coercion."""
    types = ctx.input_parameter_types
    raw = {n: v for n, v in ctx.input_parameter_defaults.items() if v is not None}
    raw.update((n, v) for n, v in ctx.input_parameters.items() if v is not None)
    values: dict[str, Any] = {}
    templated = {
        n for n, v in raw.items()
        if isinstance(v, str) and "{{$" in v
        and (ctx.constant_inputs is None or n in ctx.constant_inputs or n not in ctx.input_parameters)
    }
    for name in raw.keys() - templated:
        values[name] = _typed(raw[name], types.get(name), name)
    for name in sorted(templated):
        text = _runtime_text(raw[name], {**raw, **values}, ctx.pipeline, name)
        values[name] = _typed(text, types.get(name), name)
    return values


# -- ExecutorInput --------------------------------------------------------------------------


def _runtime_artifact(ref: ArtifactRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "type": {"schemaTitle": ref.schema_title, "schemaVersion": ref.schema_version},
        "uri": ref.uri,
        "metadata": copy.deepcopy(dict(ref.metadata)),
    }


def _artifact_lists(artifacts: Mapping[str, Sequence[ArtifactRef]]) -> dict[str, Any]:
    return {
        name: {"artifacts": [_runtime_artifact(a) for a in refs]}
        for name, refs in sorted(artifacts.items())
        if refs  # an absent optional artifact is left out, as the driver leaves it out
    }


def build_executor_input(ctx: ExecutorContext) -> dict[str, Any]:
    """ExecutorInput in proto JSON form (camelCase), as kfp.dsl.executor reads it.

    Parameter values are typed (NUMBER_INTEGER → int, …); absent optional inputs
    are omitted and the executor falls back to the function default.
    """
    return _executor_input(ctx, parameter_values(ctx))


def _executor_input(ctx: ExecutorContext, values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "inputs": {
            "parameterValues": {name: values[name] for name in sorted(values)},
            "artifacts": _artifact_lists(ctx.input_artifacts),
        },
        "outputs": {
            "parameters": {n: {"outputFile": p} for n, p in sorted(ctx.output_parameters.items())},
            "artifacts": _artifact_lists(ctx.output_artifacts),
            "outputFile": ctx.output_file,
        },
    }


def executor_input_json(ctx: ExecutorContext) -> str:
    """``{{$}}``: compact JSON as protojson writes it (an integral double prints as
    ``3``, so a float input may reach the executor as an int, exactly as on KFP)."""
    return go_json(build_executor_input(ctx))


# -- command line ---------------------------------------------------------------------------


def resolve_command_line(items: Sequence[Any], ctx: ExecutorContext, *, where: str = "") -> list[str]:
    """Resolve a container's ``command`` or ``args`` into argv strings.

    An input used outside IfPresent that has neither a value nor a default raises
    :class:`PlaceholderError`, as the current Go driver does ("parameter not found")
    (older launchers left the placeholder text in place; kfp.local prints "null").
    """
    values = parameter_values(ctx)
    cache: dict[str, str] = {}

    def resolve(ph: Placeholder, loc: str) -> str:
        def fail(message: str) -> PlaceholderError:
            return PlaceholderError(message, placeholder=ph.text, where=loc)

        if ph.kind == "executor_input":
            if "$" not in cache:
                cache["$"] = go_json(_executor_input(ctx, values))
            return cache["$"]
        if ph.kind == "output_file":
            return ctx.output_file
        if ph.kind == "runtime":
            if ph.name in ctx.pipeline:
                return str(ctx.pipeline[ph.name])
            if ph.name in RUNTIME_PLACEHOLDERS:
                raise fail(f"no value for the pipeline placeholder {ph.text}")
            raise fail(f"unknown placeholder {ph.text!r}")
        if ph.kind == "input_parameter":
            if ph.name in values:
                return value_to_text(values[ph.name])
            if ph.name in ctx.input_parameter_types or ph.name in ctx.input_parameters:
                raise fail(
                    f"input parameter {ph.name!r} has no value and no default; "
                    "an optional input must be used inside IfPresent"
                )
            raise fail(f"{ph.text} refers to an undeclared input parameter {ph.name!r}")
        if ph.kind == "output_parameter":
            if ph.name not in ctx.output_parameters:
                raise fail(f"{ph.text} refers to an undeclared output parameter {ph.name!r}")
            return ctx.output_parameters[ph.name]
        refs = (ctx.input_artifacts if ph.kind == "input_artifact" else ctx.output_artifacts).get(ph.name)
        if not refs:
            direction = "input" if ph.kind == "input_artifact" else "output"
            raise fail(f"{direction} artifact {ph.name!r} is not available for {ph.text}")
        if ph.attr is None:  # the whole list (kfp.dsl InputListOfArtifactsPlaceholder)
            return go_json([_runtime_artifact(a) for a in refs])
        first = refs[0]  # launcher_v2.go: "TODO: Support multiple artifacts" → [0]
        if ph.attr == "uri":
            return first.uri
        if ph.attr == "path":
            return first.path or local_path_for_uri(first.uri, first.metadata)
        if ph.key is None:
            return go_json(first.metadata)
        if ph.key not in first.metadata:
            raise fail(f"artifact {ph.name!r} has no metadata key {ph.key!r}")
        return value_to_text(first.metadata[ph.key])

    return expand(items, resolve, ctx.is_present, where)


# -- outputs --------------------------------------------------------------------------------


def _typed_output(value: Any, parameter_type: Any) -> Any:
    """An ExecutorOutput parameterValues entry in its declared type's form (protobuf
    numbers are doubles: an integral NUMBER_INTEGER becomes int, as kfp.local's
    cast_protobuf_numbers does). One that does not fit is kept as written: the
    launcher publishes it as is and the consumer's input check reports it."""
    try:
        return convert(value, parameter_type)
    except ParameterValueError:
        return value


_EXECUTOR_OUTPUT_FIELDS = {"parameterValues", "parameter_values", "artifacts", "parameters"}
_RUNTIME_ARTIFACT_FIELDS = {"name", "type", "uri", "metadata", "properties", "customProperties",
                            "custom_properties", "customPath", "custom_path"}


def _load_executor_output(path: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(parameterValues, {artifact: first RuntimeArtifact}) of the ExecutorOutput
    file; a missing file is an empty ExecutorOutput (getExecutorOutputFile)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read the executor output {path}: {exc}", path=path) from None

    def bad(why: str) -> OutputError:
        return OutputError(f"invalid executor output {path}: {why}", path=path)

    try:
        data = strict_json(text)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    unknown = set(data) - _EXECUTOR_OUTPUT_FIELDS  # protojson rejects unknown fields
    if unknown:
        raise bad(f"unknown fields {sorted(unknown)}")
    # ExecutorOutput.parameters (deprecated typed values) is ignored by the v2 launcher too.
    params = data.get("parameterValues", data.get("parameter_values", {}))
    artifacts = data.get("artifacts", {})
    if not isinstance(params, dict) or not isinstance(artifacts, dict):
        raise bad("parameterValues and artifacts must be objects")
    firsts: dict[str, dict[str, Any]] = {}
    for name, listing in artifacts.items():
        items = listing.get("artifacts", []) if isinstance(listing, dict) else None
        if not isinstance(items, list) or not all(isinstance(a, dict) for a in items):
            raise bad(f"artifacts[{name!r}] must be {{'artifacts': [RuntimeArtifact, ...]}}")
        for item in items:
            unknown = set(item) - _RUNTIME_ARTIFACT_FIELDS
            if unknown:
                raise bad(f"artifacts[{name!r}] has unknown fields {sorted(unknown)}")
            if not isinstance(item.get("metadata", {}), dict) or not isinstance(item.get("uri", ""), str):
                raise bad(f"artifacts[{name!r}]: uri must be a string and metadata an object")
        if items:
            firsts[name] = items[0]
    return params, firsts


def _merge_artifact(ref: ArtifactRef, src: Mapping[str, Any]) -> ArtifactRef:
    """launcher_v2.go mergeRuntimeArtifacts: a non-empty uri replaces, metadata keys
    override one by one, a custom path replaces the local path."""
    uri = src.get("uri") or ref.uri
    metadata = {**ref.metadata, **(src.get("metadata") or {})}
    custom = src.get("customPath") or src.get("custom_path")
    path = custom if custom else (ref.path if uri == ref.uri else local_path_for_uri(uri))
    return replace(ref, uri=uri, metadata=metadata, path=path)


def read_outputs(
    output_parameters: Mapping[str, str],
    output_parameter_types: Mapping[str, Any],
    executor_output_path: str,
    output_artifacts: Mapping[str, Sequence[ArtifactRef]],
) -> tuple[dict[str, Any], dict[str, list[ArtifactRef]]]:
    """Collect a finished task's outputs (launcher_v2.go collectOutputParameters).

    The executor output file wins: a parameter it carries is not read from its
    file; every other declared parameter must have its file (``output_parameters``:
    name → local path). Artifacts get the executor output's uri/metadata merged in.
    Parameters the executor output has but the component does not declare are
    dropped (the launcher would publish them; nothing downstream can refer to them).
    """
    written, artifact_updates = _load_executor_output(executor_output_path)
    parameters: dict[str, Any] = {}
    for name in sorted(set(output_parameters) | set(output_parameter_types)):
        if name not in output_parameter_types:
            raise OutputError(f"output parameter {name!r} has no declared type", output=name)
        kind = output_parameter_types[name]
        if name in written:
            parameters[name] = _typed_output(written[name], kind)
            continue
        path = output_parameters.get(name)
        if path is None:
            raise OutputError(
                f"output parameter {name!r} is not in the executor output {executor_output_path}",
                output=name,
            )
        try:
            with open(path, encoding="utf-8", newline="") as f:  # bytes as written, like os.ReadFile
                text = f.read()
        except FileNotFoundError:
            raise OutputError(
                f"output parameter {name!r} was not written: no file {path} and not in the "
                f"executor output {executor_output_path}",
                output=name,
                path=path,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise OutputError(f"cannot read output parameter {name!r} from {path}: {exc}",
                              output=name, path=path) from None
        try:
            parameters[name] = parse_text(text, kind)
        except ValueError as exc:
            raise OutputError(
                f"output parameter {name!r} ({type_name(kind)}) in {path}: {exc}",
                output=name,
                path=path,
            ) from None
    artifacts = {
        name: [_merge_artifact(r, artifact_updates[name]) if name in artifact_updates else r for r in refs]
        for name, refs in output_artifacts.items()
    }
    return parameters, artifacts
