"""KFP v2 IR (``PipelineSpec``, schema 2.0.0/2.1.0) → :class:`Pipeline`.

Field names follow ``api/v2alpha1/pipeline_spec.proto``. Anything the proto
allows that we do not translate is refused with ``UnsupportedFeatureError``;
nothing is silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_kfx.spec.model import (
    NO_DEFAULT,
    Accelerator,
    ArtifactIterator,
    ArtifactSpec,
    CachingOptions,
    Component,
    ComponentInput,
    Constant,
    Container,
    Dag,
    DagOutput,
    Executor,
    Importer,
    Interface,
    Location,
    OutputSelector,
    ParameterIterator,
    ParameterSpec,
    ParameterType,
    Pipeline,
    PvcAction,
    Resources,
    RetryPolicy,
    Task,
    TaskFinalStatus,
    TaskInput,
    TaskOutput,
    TriggerStrategy,
    ValueSource,
)
from airflow_kfx.spec.source import LineDict, Node

# Schema 2.0.0 typed parameters with ``type`` (PrimitiveType) instead of ``parameterType``.
_LEGACY_TYPES = {
    "STRING": ParameterType.STRING,
    "INT": ParameterType.NUMBER_INTEGER,
    "DOUBLE": ParameterType.NUMBER_DOUBLE,
}

# Executors kfp-kubernetes emits for CreatePVC/DeletePVC: stub images the KFP
# backend intercepts; we intercept them too.
_PVC_STUB_IMAGES = {"argostub/createpvc": PvcAction.CREATE, "argostub/deletepvc": PvcAction.DELETE}

_KNOWN_TOP_LEVEL = {
    "pipelineInfo", "root", "components", "deploymentSpec", "schemaVersion",
    "sdkVersion", "defaultPipelineRoot",
}


def is_pipeline_spec(document: Any) -> bool:
    return isinstance(document, Mapping) and (
        ("pipelineInfo" in document and "root" in document)
        or ("pipeline_info" in document and "root" in document)
    )


def parse_pipeline_spec(doc: Node, digest: str, platform: Any = None) -> Pipeline:
    """Build the model from the (first) document of a compiled pipeline file."""
    if doc.has("pipeline_info"):
        doc = Node(camelize_proto_json(doc.value), doc.path, doc.file, doc.line)
    doc.expect(Mapping, "a KFP PipelineSpec mapping")
    for key, child in doc.items():
        if key not in _KNOWN_TOP_LEVEL:
            child.fail(
                f"unknown top-level field '{key}'; a compiled KFP pipeline has only "
                f"{', '.join(sorted(_KNOWN_TOP_LEVEL))}"
            )
    info = doc.required("pipelineInfo", Mapping)
    name = info.get("name")
    if not isinstance(name, str) or not name:
        info.child("name").fail("the pipeline has no name (pipelineInfo.name); recompile it with the KFP SDK")

    components = {key: _parse_component(key, node) for key, node in doc.child("components").items()}
    executors = {
        key: _parse_executor(key, node)
        for key, node in doc.child("deploymentSpec").child("executors").items()
    }
    root = _parse_component("root", doc.required("root", Mapping))
    if root.dag is None:
        doc.child("root").fail("the root component must be a DAG ('root.dag')")
    return Pipeline(
        name=name,
        source_file=doc.file,
        digest=digest,
        root=root,
        components=components,
        executors=executors,
        display_name=info.optional("displayName", str) or None,
        description=info.optional("description", str) or None,
        schema_version=doc.optional("schemaVersion", str),
        sdk_version=doc.optional("sdkVersion", str),
        default_pipeline_root=doc.optional("defaultPipelineRoot", str),
        platform=platform,
    )


# ---------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------


def _location(node: Node) -> Location:
    return Location(node.file, node.path, node.line)


def _parse_component(name: str, node: Node) -> Component:
    node.expect(Mapping, "a component spec")
    for unsupported in ("singlePlatformSpecs", "taskConfigPassthroughs"):
        if node.get(unsupported):
            node.child(unsupported).unsupported(
                unsupported, f"'{unsupported}' (Vertex AI platform passthrough) has no Airflow equivalent"
            )
    dag = None
    if node.has("dag"):
        dag = _parse_dag(node.child("dag"))
    executor_label = node.optional("executorLabel", str)
    if dag is None and executor_label is None:
        node.fail("a component needs either 'dag' or 'executorLabel'")
    return Component(
        name=name,
        location=_location(node),
        inputs=_parse_interface(node.child("inputDefinitions")),
        outputs=_parse_interface(node.child("outputDefinitions"), outputs=True),
        dag=dag,
        executor_label=executor_label,
    )


def _parse_interface(node: Node, outputs: bool = False) -> Interface:
    if node.value is None:
        return Interface()
    node.expect(Mapping)
    parameters = {
        name: _parse_parameter_spec(name, child) for name, child in node.child("parameters").items()
    }
    artifacts = {
        name: _parse_artifact_spec(name, child) for name, child in node.child("artifacts").items()
    }
    return Interface(parameters=parameters, artifacts=artifacts)


def _parse_parameter_spec(name: str, node: Node) -> ParameterSpec:
    node.expect(Mapping, "a parameter spec")
    type_name = node.get("parameterType")
    if type_name and type_name != "PARAMETER_TYPE_ENUM_UNSPECIFIED":
        try:
            parameter_type = ParameterType(type_name)
        except ValueError:
            node.child("parameterType").fail(
                f"unknown parameter type '{type_name}'; expected one of "
                f"{', '.join(t.value for t in ParameterType)}"
            )
    elif isinstance(node.get("type"), str) and node.get("type") in _LEGACY_TYPES:
        parameter_type = _LEGACY_TYPES[node.get("type")]
    else:
        node.fail("a parameter needs 'parameterType' (or, in schema 2.0.0, 'type')")
    default = NO_DEFAULT
    if node.has("defaultValue"):
        default = as_delivered(_legacy_value(node.child("defaultValue")), parameter_type)
    return ParameterSpec(
        name=name,
        type=parameter_type,
        default=default,
        optional=bool(node.get("isOptional", False)) or default is not NO_DEFAULT,
        description=node.optional("description", str, ""),
    )


def _parse_artifact_spec(name: str, node: Node) -> ArtifactSpec:
    node.expect(Mapping, "an artifact spec")
    type_node = node.required("artifactType", Mapping)
    if type_node.has("instanceSchema") and not type_node.has("schemaTitle"):
        type_node.unsupported(
            "artifact instanceSchema", "artifact types given as an inline instanceSchema are not supported"
        )
    return ArtifactSpec(
        name=name,
        schema_title=type_node.optional("schemaTitle", str, "system.Artifact"),
        schema_version=type_node.optional("schemaVersion", str, "0.0.1"),
        is_list=bool(node.get("isArtifactList", False)),
        optional=bool(node.get("isOptional", False)),
        description=node.optional("description", str, ""),
    )


def as_delivered(value: Any, parameter_type: ParameterType) -> Any:
    """A value as KFP delivers it: protobuf Values are doubles, and protojson writes
    integral ones as integers, so ``count: 3.0`` reaches a component as ``3`` (also
    inside lists and structs); a NUMBER_INTEGER is an int."""
    if isinstance(value, bool) or value is None:
        return value
    if parameter_type is ParameterType.NUMBER_DOUBLE:
        return float(value) if isinstance(value, int) else value
    if isinstance(value, float) and value.is_integer() and parameter_type is not ParameterType.STRING:
        return int(value)
    if isinstance(value, list):
        return [as_delivered(v, ParameterType.LIST) for v in value]
    if isinstance(value, Mapping):
        return {k: as_delivered(v, ParameterType.STRUCT) for k, v in value.items()}
    return value


def _legacy_value(node: Node) -> Any:
    """Schema 2.0.0 wrote values as ``{stringValue|intValue|doubleValue: x}``."""
    value = node.value
    if isinstance(value, Mapping) and len(value) == 1:
        (key, inner), = value.items()
        if key == "stringValue":
            return inner
        if key == "intValue":
            return _integer(node.child(key))
        if key == "doubleValue":
            return _double(node.child(key))
    return value


def _double(node: Node) -> float:
    if node.value in ("NaN", "Infinity", "-Infinity"):  # how protobuf JSON writes these
        return float(node.value)
    return float(node.expect((int, float), "a number"))


def _integer(node: Node) -> int:
    """An integer written as a number or, as protobuf JSON writes int64, a string."""
    value = node.value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 30:
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return node.expect(int, "an integer")


# ---------------------------------------------------------------------------
# DAGs and tasks
# ---------------------------------------------------------------------------


def _parse_dag(node: Node) -> Dag:
    node.expect(Mapping, "a DAG spec")
    tasks = {name: _parse_task(name, child) for name, child in node.child("tasks").items()}
    outputs: dict[str, DagOutput] = {}
    out = node.child("outputs")
    for name, child in out.child("parameters").items():
        outputs[name] = _parse_dag_parameter_output(name, child)
    for name, child in out.child("artifacts").items():
        selectors = tuple(
            OutputSelector(
                s.required("producerSubtask", str).value, s.required("outputArtifactKey", str).value
            )
            for s in child.required("artifactSelectors", list).elements()
        )
        outputs[name] = DagOutput(name, True, selectors, is_oneof=len(selectors) > 1)
    return Dag(tasks=tasks, outputs=outputs)


def _parse_dag_parameter_output(name: str, node: Node) -> DagOutput:
    if node.has("valueFromParameter"):
        sel = node.child("valueFromParameter")
        selector = OutputSelector(
            sel.required("producerSubtask", str).value, sel.required("outputParameterKey", str).value
        )
        return DagOutput(name, False, (selector,))
    if node.has("valueFromOneof"):
        selectors = tuple(
            OutputSelector(
                s.required("producerSubtask", str).value, s.required("outputParameterKey", str).value
            )
            for s in node.child("valueFromOneof").required("parameterSelectors", list).elements()
        )
        return DagOutput(name, False, selectors, is_oneof=True)
    node.fail("a DAG output parameter needs 'valueFromParameter' or 'valueFromOneof'")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")
_MAX_SECONDS = 365 * 24 * 3600  # longer waits are mistakes (and overflow Airflow's timedelta)


def _seconds(node: Node) -> float | None:
    """Protobuf Duration JSON ("3s", "0.5s") → seconds."""
    if node.value is None:
        return None
    if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        seconds = float(node.value)
    else:
        match = _DURATION.match(node.value) if isinstance(node.value, str) else None
        if not match:
            node.fail(f"expected a duration like '30s', got {node.value!r}")
        seconds = float(match.group(1))
    if not 0 <= seconds <= _MAX_SECONDS:
        node.fail(f"a duration must be between 0s and {_MAX_SECONDS}s (a year), got {node.value!r}")
    return seconds


def _parse_task(name: str, node: Node) -> Task:
    node.expect(Mapping, "a task spec")
    component = node.required("componentRef", Mapping).required("name", str).value
    inputs: dict[str, TaskInput] = {}
    for input_name, child in node.child("inputs").child("parameters").items():
        inputs[input_name] = _parse_task_parameter_input(input_name, child)
    for input_name, child in node.child("inputs").child("artifacts").items():
        inputs[input_name] = _parse_task_artifact_input(input_name, child)

    trigger = node.child("triggerPolicy")
    strategy = TriggerStrategy.ALL_UPSTREAM_TASKS_SUCCEEDED
    if trigger.get("strategy") not in (None, "TRIGGER_STRATEGY_UNSPECIFIED"):
        try:
            strategy = TriggerStrategy(trigger.get("strategy"))
        except ValueError:
            trigger.child("strategy").fail(f"unknown trigger strategy {trigger.get('strategy')!r}")

    iterator: ParameterIterator | ArtifactIterator | None = None
    if node.has("parameterIterator"):
        it = node.child("parameterIterator")
        items = it.required("items", Mapping)
        raw = items.optional("raw", str)
        if raw is not None:
            try:
                parsed = json.loads(raw)
            except (ValueError, RecursionError) as err:  # RecursionError: nested too deep
                items.child("raw").fail(f"loop items are not valid JSON: {err}")
            if not isinstance(parsed, list):
                items.child("raw").fail("loop items must be a JSON list")
        input_parameter = items.optional("inputParameter", str)
        if raw is None and input_parameter is None:
            items.fail("loop items need 'raw' or 'inputParameter'")
        iterator = ParameterIterator(it.required("itemInput", str).value, raw, input_parameter)
    elif node.has("artifactIterator"):
        it = node.child("artifactIterator")
        iterator = ArtifactIterator(
            it.required("itemInput", str).value,
            it.required("items", Mapping).required("inputArtifact", str).value,
        )

    retry = None
    if node.has("retryPolicy") and node.get("retryPolicy"):
        rp = node.child("retryPolicy")
        retry = RetryPolicy(
            max_retry_count=_retry_count(rp.child("maxRetryCount")),
            backoff_seconds=_seconds(rp.child("backoffDuration")),
            backoff_factor=rp.optional("backoffFactor", (int, float)),
            backoff_max_seconds=_seconds(rp.child("backoffMaxDuration")),
        )
    caching = node.child("cachingOptions")
    parallelism = node.child("iteratorPolicy").optional("parallelismLimit", int)
    return Task(
        name=name,
        component=component,
        location=_location(node),
        display_name=node.child("taskInfo").optional("name", str),
        inputs=inputs,
        dependent_tasks=tuple(d.expect(str) for d in node.child("dependentTasks").elements()),
        condition=trigger.optional("condition", str) or None,
        trigger_strategy=strategy,
        iterator=iterator,
        parallelism_limit=parallelism or None,
        retry=retry,
        caching=CachingOptions(
            enable_cache=bool(caching.get("enableCache", False)),
            cache_key=caching.optional("cacheKey", str) or None,
        ),
    )


def _retry_count(node: Node) -> int:
    if node.value is None:
        return 0
    count = _integer(node)
    if not 0 <= count <= 1000:
        node.fail(f"maxRetryCount must be between 0 and 1000, got {count}")
    return count


def parse_value_source(node: Node, *, artifact: bool = False) -> ValueSource:
    """The common ``oneof kind`` of task inputs and parameterised platform settings."""
    node.expect(Mapping, "an input spec")
    if artifact:
        if node.has("taskOutputArtifact"):
            ref = node.child("taskOutputArtifact")
            return TaskOutput(
                ref.required("producerTask", str).value, ref.required("outputArtifactKey", str).value
            )
        if node.has("componentInputArtifact"):
            return ComponentInput(node.required("componentInputArtifact", str).value)
        node.fail("an artifact input needs 'taskOutputArtifact' or 'componentInputArtifact'")
    if node.has("componentInputParameter"):
        return ComponentInput(node.required("componentInputParameter", str).value)
    if node.has("taskOutputParameter"):
        ref = node.child("taskOutputParameter")
        return TaskOutput(
            ref.required("producerTask", str).value, ref.required("outputParameterKey", str).value
        )
    if node.has("runtimeValue"):
        runtime = node.child("runtimeValue")
        if runtime.has("constant"):
            return Constant(_legacy_value(runtime.child("constant")))
        if runtime.has("constantValue"):
            return Constant(_legacy_value(runtime.child("constantValue")))
        runtime.fail("a runtimeValue needs 'constant'")
    if node.has("taskFinalStatus"):
        return TaskFinalStatus(node.child("taskFinalStatus").required("producerTask", str).value)
    node.fail(
        "a parameter input needs one of componentInputParameter, taskOutputParameter, "
        "runtimeValue, taskFinalStatus"
    )


def _parse_task_parameter_input(name: str, node: Node) -> TaskInput:
    source = parse_value_source(node)
    selector = node.optional("parameterExpressionSelector", str) or None
    return TaskInput(name=name, is_artifact=False, source=source, selector=selector)


def _parse_task_artifact_input(name: str, node: Node) -> TaskInput:
    return TaskInput(name=name, is_artifact=True, source=parse_value_source(node, artifact=True))


# ---------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------


def _parse_executor(label: str, node: Node) -> Executor:
    node.expect(Mapping, "an executor spec")
    location = _location(node)
    if node.has("container"):
        container = node.child("container")
        image = container.required("image", str).value
        if image in _PVC_STUB_IMAGES:
            return Executor(label, location, pvc_action=_PVC_STUB_IMAGES[image])
        for unsupported in ("lifecycle", "config"):
            if container.get(unsupported):
                container.child(unsupported).unsupported(
                    f"container {unsupported}", f"container '{unsupported}' is not supported"
                )
        env = {}
        for entry in container.child("env").elements():
            env[entry.required("name", str).value] = _text(entry.child("value"))
        return Executor(
            label,
            location,
            container=Container(
                image=image,
                command=tuple(e.expect(str) for e in container.child("command").elements()),
                args=tuple(e.expect(str) for e in container.child("args").elements()),
                env=env,
                resources=_parse_resources(container.child("resources")),
            ),
        )
    if node.has("importer"):
        return Executor(label, location, importer=_parse_importer(node.child("importer")))
    if node.has("resolver"):
        node.child("resolver").unsupported(
            "resolver executor", "resolver executors (artifact queries) have no Airflow equivalent"
        )
    if node.has("customJob"):
        node.child("customJob").unsupported(
            "Vertex AI customJob", "Vertex AI custom jobs run only on Vertex AI Pipelines"
        )
    node.fail("an executor needs 'container' or 'importer'")


def _text(node: Node) -> str:
    """A string setting that YAML may have typed as a number (``value: 8``)."""
    if node.value is None:
        return ""
    value = node.expect((str, int, float), "a string")
    return value if isinstance(value, str) else _format_number(value)


def _parse_resources(node: Node) -> Resources:
    if node.value is None:
        return Resources()
    node.expect(Mapping)

    def text(*keys: str) -> str | None:
        # Newer SDKs write resourceCpuLimit (a string that may be a placeholder);
        # older ones cpuLimit (a number of cores) / memoryLimit (a number of GB).
        for key in keys:
            value = _text(node.child(key))
            if value == "":
                continue
            if key in ("memoryLimit", "memoryRequest"):
                return f"{value}G"
            return value
        return None

    accelerator = None
    acc = node.child("accelerator")
    if acc.value:
        acc.expect(Mapping)
        acc_type = _text(acc.child("resourceType")) or _text(acc.child("type"))
        acc_count = _text(acc.child("resourceCount")) or _text(acc.child("count"))
        if acc_type:
            accelerator = Accelerator(type=acc_type, count=acc_count or "1")
    return Resources(
        cpu_limit=text("resourceCpuLimit", "cpuLimit"),
        memory_limit=text("resourceMemoryLimit", "memoryLimit"),
        cpu_request=text("resourceCpuRequest", "cpuRequest"),
        memory_request=text("resourceMemoryRequest", "memoryRequest"),
        accelerator=accelerator,
    )


def _format_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_importer(node: Node) -> Importer:
    uri = node.required("artifactUri", Mapping)
    if uri.has("runtimeParameter"):
        artifact_uri: Any = ComponentInput(uri.required("runtimeParameter", str).value)
    elif uri.has("constant"):
        artifact_uri = Constant(uri.get("constant"))
    elif uri.has("constantValue"):
        artifact_uri = Constant(_legacy_value(uri.child("constantValue")))
    else:
        uri.fail("importer artifactUri needs 'constant' or 'runtimeParameter'")
    schema = node.required("typeSchema", Mapping)
    return Importer(
        artifact_uri=artifact_uri,
        schema_title=schema.optional("schemaTitle", str, "system.Artifact"),
        schema_version=schema.optional("schemaVersion", str, "0.0.1"),
        metadata=dict(node.optional("metadata", Mapping, {})),
        reimport=bool(node.get("reimport", False)),
        download_to_workspace=bool(node.get("downloadToWorkspace", False)),
    )


# ---------------------------------------------------------------------------
# Proto field-name JSON (snake_case) → the camelCase the SDK writes
# ---------------------------------------------------------------------------

# Maps whose keys are user names, not proto fields: never rename inside them.
_NAME_MAPS = {"parameters", "artifacts", "tasks", "executors", "components"}
# Values that are user data (protobuf Struct/Value): copied verbatim.
_OPAQUE = {"defaultValue", "constant", "metadata", "raw"}


def camelize_proto_json(value: Any, *, names: bool = False) -> Any:
    if isinstance(value, Mapping):
        result = LineDict()
        result.line = getattr(value, "line", None)
        lines = getattr(value, "key_lines", {})
        for key, child in value.items():
            new_key = key if names else _camel(key)
            if new_key in _OPAQUE:
                renamed = child
            else:
                renamed = camelize_proto_json(child, names=(not names and new_key in _NAME_MAPS))
            # proto JSON writes unset messages as null and empty strings for unset fields
            if renamed is not None and renamed != "" and renamed != []:
                result[new_key] = renamed
                if key in lines:
                    result.key_lines[new_key] = lines[key]
        return result
    if isinstance(value, list):
        return [camelize_proto_json(v) for v in value]
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
