"""airflow_kfx.task_io / airflow_kfx.placeholders: ExecutorInput, placeholders, outputs
(value text and parsing: tests/test_values.py).

Expected values follow the KFP v2 backend (kubeflow/pipelines):
  * value text: backend/src/v2/component/launcher_v2.go getPlaceholders, i.e.
    strconv.FormatFloat(v, 'f', -1, 64) for numbers, strconv.FormatBool, and
    json.Marshal(*structpb.ListValue|Struct) (compact protojson, sorted keys, <>& escaped);
  * IfPresent: backend/src/v2/driver/util.go resolveCondition (null counts as absent);
  * Concat/IfPresent structure: sdk/python/kfp/local/placeholder_utils.py;
  * outputs: launcher_v2.go collectOutputParameters / mergeRuntimeArtifacts and
    backend/src/v2/metadata/converter.go TextToPbValue.
The kfp_reference tests run kfp.local from /work/main/.venv-kfp on the same inputs.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.exceptions import KfxError, TaskRuntimeError
from airflow_kfx.placeholders import parse_placeholder, present_checks
from airflow_kfx.task_io import (
    RUNTIME_PLACEHOLDERS,
    ArtifactRef,
    ExecutorContext,
    OutputError,
    PlaceholderError,
    build_executor_input,
    executor_input_json,
    list_placeholders,
    local_path_for_uri,
    read_outputs,
    resolve_command_line,
)
from tests.support import VALID as CORPUS

REPO = Path(__file__).resolve().parents[1]
KFP_PYTHON = REPO / ".venv-kfp" / "bin" / "python"

PIPELINE = {
    "pipeline_job_name": "my-run",
    "pipeline_job_resource_name": "dag/my-run",
    "pipeline_job_uuid": "job-uuid",
    "pipeline_task_name": "train",
    "pipeline_task_uuid": "task-uuid",
    "pipeline_root": "gs://bucket/root",
    "pipeline_job_create_time_utc": "2024-01-01T00:00:00Z",
    "pipeline_job_schedule_time_utc": "2024-01-01T00:00:00Z",
    "workspace_path": "/kfp-workspace",
}


def p(name: str) -> str:
    return "{{$.inputs.parameters['" + name + "']}}"


def make_ctx(**changes: Any) -> ExecutorContext:
    fields: dict[str, Any] = dict(
        input_parameters={
            "text": "hello",
            "count": 3,
            "ratio": 3.0,
            "half": 0.5,
            "flag": True,
            "items": [1, "a"],
            "config": {"b": 1, "a": "x"},
            "maybe": None,
        },
        input_parameter_types={
            "text": "STRING",
            "count": "NUMBER_INTEGER",
            "ratio": "NUMBER_DOUBLE",
            "half": "NUMBER_DOUBLE",
            "flag": "BOOLEAN",
            "items": "LIST",
            "config": "STRUCT",
            "maybe": "STRING",
            "defaulted": "STRING",
        },
        input_artifacts={
            "data": [ArtifactRef.for_uri("data", "gs://b/in/data", "system.Dataset", metadata={"rows": 10})],
            "many": [
                ArtifactRef.for_uri("m0", "s3://b/m0", "system.Dataset"),
                ArtifactRef.for_uri("m1", "s3://b/m1", "system.Dataset"),
            ],
        },
        output_parameters={"out": "/tmp/kfp/outputs/out"},
        output_artifacts={"model": [ArtifactRef.for_uri("model", "gs://b/root/t/model", "system.Model")]},
        output_file="/gcs/b/root/t/output_metadata.json",
        pipeline=PIPELINE,
        input_parameter_defaults={"defaulted": "dflt"},
    )
    fields.update(changes)
    return ExecutorContext(**fields)


def resolve(*items: Any, ctx: ExecutorContext | None = None) -> list[str]:
    return resolve_command_line(list(items), ctx or make_ctx(), where="exec-x.args")


# -- local paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("gs://b/x/y", "/gcs/b/x/y"),
        ("s3://b/x", "/s3/b/x"),
        ("minio://b/x", "/minio/b/x"),
        ("oci://registry.io/org/model:1", "/oci/registry.io_org_model:1/models"),
        ("/mnt/data/x", "/mnt/data/x"),
        ("relative/x", "relative/x"),
    ],
)
def test_local_path_for_uri(uri: str, expected: str) -> None:
    assert local_path_for_uri(uri) == expected


def test_local_path_for_workspace_artifact() -> None:
    # launcher_v2.go LocalWorkspacePathForURI
    assert local_path_for_uri("gs://b/x", {"_kfp_workspace": True}) == "/kfp-workspace/.artifacts/gcs/b/x"
    ref = ArtifactRef.for_uri("a", "s3://b/k", "system.Artifact")
    assert ref.path == "/s3/b/k" and ref.schema_version == "0.0.1" and dict(ref.metadata) == {}


# -- placeholders -----------------------------------------------------------------------------


def test_input_parameter_placeholders() -> None:
    assert resolve(p("text"), p("count"), p("ratio"), p("half"), p("flag"), p("items"), p("config")) == [
        "hello", "3", "3", "0.5", "true", '[1,"a"]', '{"a":"x","b":1}',
    ]


def test_several_placeholders_in_one_string_and_double_quotes() -> None:
    assert resolve("--x=" + p("text") + "-" + p("count") + '/{{$.inputs.parameters["flag"]}}') == [
        "--x=hello-3/true"
    ]


def test_default_fills_a_missing_input() -> None:
    # launcher_v2.go addDefaultParams (older launchers) / kfp.local fill component defaults
    assert resolve(p("defaulted")) == ["dflt"]


def test_input_artifact_placeholders() -> None:
    a = "{{$.inputs.artifacts['data']"
    resolved = resolve(a + ".uri}}", a + ".path}}", a + ".metadata}}", a + ".metadata['rows']}}",
                       a + ".properties['rows']}}")
    assert resolved == ["gs://b/in/data", "/gcs/b/in/data", '{"rows":10}', "10", "10"]


def test_artifact_list_placeholders() -> None:
    # .uri/.path use the first artifact (launcher_v2.go: Artifacts[0])
    assert resolve("{{$.inputs.artifacts['many'].uri}}", "{{$.inputs.artifacts['many'].path}}") == [
        "s3://b/m0", "/s3/b/m0",
    ]
    # the whole list (kfp.dsl InputListOfArtifactsPlaceholder; consumed as JSON by
    # corpus artifacts_simple.yaml exec-add-container: json.loads → [d['uri'] ...])
    (text,) = resolve("{{$.inputs.artifacts['many']}}")
    assert [a["uri"] for a in json.loads(text)] == ["s3://b/m0", "s3://b/m1"]
    assert json.loads(text)[0] == {
        "name": "m0", "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
        "uri": "s3://b/m0", "metadata": {},
    }


def test_output_placeholders() -> None:
    assert resolve(
        "{{$.outputs.parameters['out'].output_file}}",
        "{{$.outputs.artifacts['model'].uri}}",
        "{{$.outputs.artifacts['model'].path}}",
        "{{$.outputs.artifacts['model'].metadata}}",
        "{{$.outputs.output_file}}",
        "{{$.outputMetadataUri}}",
    ) == [
        "/tmp/kfp/outputs/out", "gs://b/root/t/model", "/gcs/b/root/t/model", "{}",
        "/gcs/b/root/t/output_metadata.json", "/gcs/b/root/t/output_metadata.json",
    ]


def test_artifact_path_is_the_ref_path() -> None:
    ref = ArtifactRef("data", "gs://b/x", "/mnt/pvc/x", "system.Dataset")
    assert resolve("{{$.inputs.artifacts['data'].path}}", ctx=make_ctx(input_artifacts={"data": [ref]})) == [
        "/mnt/pvc/x"
    ]


@pytest.mark.parametrize("name", sorted(PIPELINE))
def test_pipeline_placeholders(name: str) -> None:
    assert resolve("v={{$." + name + "}}") == [f"v={PIPELINE[name]}"]


def test_executor_input_placeholder() -> None:
    (text,) = resolve("{{$}}")
    assert text == executor_input_json(make_ctx())
    assert " " not in text.replace("hello world", "")  # compact, like protojson
    assert json.loads(text) == build_executor_input(make_ctx())
    assert '"ratio":3,' in text  # protojson prints the double 3.0 as 3


def test_values_are_not_rescanned() -> None:
    # single-pass substitution: text a value brings in is never resolved again (no
    # Jinja, no shell); only f-string references to inputs/pipeline values are.
    ctx = make_ctx(input_parameters={"text": "{{ ds }} $(rm -rf /) {{$.outputs.output_file}}"})
    assert resolve("a " + p("text"), ctx=ctx) == ["a {{ ds }} $(rm -rf /) {{$.outputs.output_file}}"]


def test_fstring_and_runtime_values_in_parameters() -> None:
    # the SDK compiles f"Hello {name}" into a constant referring to an injected input;
    # pipeline placeholders passed as arguments are constants too (kfp.local
    # resolve_self_references_in_executor_input; resolve.go for the runtime values)
    ctx = make_ctx(
        input_parameters={
            "pipelinechannel--name": "ann",
            "greeting": "Hello {{$.inputs.parameters['pipelinechannel--name']}}!",
            "job": "{{$.pipeline_job_name}}",
            "n": "{{$.inputs.parameters['pipelinechannel--n']}}",
            "pipelinechannel--n": 4,
        },
        input_parameter_types={"pipelinechannel--name": "STRING", "greeting": "STRING", "job": "STRING",
                               "n": "NUMBER_INTEGER", "pipelinechannel--n": "NUMBER_INTEGER"},
    )
    assert resolve(p("greeting"), p("job"), p("n"), ctx=ctx) == ["Hello ann!", "my-run", "4"]
    values = build_executor_input(ctx)["inputs"]["parameterValues"]
    assert values["greeting"] == "Hello ann!" and values["job"] == "my-run" and values["n"] == 4


# -- Concat / IfPresent -----------------------------------------------------------------------


def test_concat() -> None:
    assert resolve({"Concat": ["--n=", p("count"), "/", p("flag")]}) == ["--n=3/true"]
    assert resolve('{"Concat": ["prefix-", "{{$.inputs.parameters[\'text\']}}"]}') == ["prefix-hello"]


@pytest.mark.parametrize("present, expected", [(True, ["--opt", "hello"]), (False, ["--no-opt"])])
def test_if_present_top_level(present: bool, expected: list[str]) -> None:
    ctx = make_ctx(input_parameters={"text": "hello" if present else None})
    item = {"IfPresent": {"InputName": "text", "Then": ["--opt", p("text")], "Else": ["--no-opt"]}}
    assert resolve("a", item, "b", ctx=ctx) == ["a", *expected, "b"]


def test_if_present_without_else_drops_the_args() -> None:
    ctx = make_ctx(input_parameters={"maybe": None})
    assert resolve("a", {"IfPresent": {"InputName": "maybe", "Then": ["--m", p("maybe")]}}, ctx=ctx) == ["a"]


def test_if_present_then_as_a_single_string() -> None:
    assert resolve({"IfPresent": {"InputName": "text", "Then": p("text")}}) == ["hello"]


@pytest.mark.parametrize("present, expected", [(True, "x=hello;"), (False, "x=none;")])
def test_if_present_nested_in_concat(present: bool, expected: str) -> None:
    ctx = make_ctx(input_parameters={"text": "hello" if present else None})
    item = {"Concat": ["x=", {"IfPresent": {"InputName": "text", "Then": p("text"), "Else": "none"}}, ";"]}
    assert resolve(item, ctx=ctx) == [expected]
    # an absent branch inside Concat contributes "" (kfp.local filter_none)
    item = {"Concat": ["x=", {"IfPresent": {"InputName": "text", "Then": [p("text")]}}, ";"]}
    assert resolve(item, ctx=ctx) == ["x=hello;" if present else "x=;"]


def test_nested_structures() -> None:
    item = {
        "IfPresent": {
            "InputName": "text",
            "Then": [
                {"Concat": ["--t=", p("text")]},
                {"IfPresent": {"InputName": "maybe", "Then": ["--maybe"],
                               "Else": ["--no-maybe", p("count")]}},
            ],
        }
    }
    assert resolve(item) == ["--t=hello", "--no-maybe", "3"]


def test_if_present_artifact_and_null_and_default() -> None:
    assert resolve({"IfPresent": {"InputName": "data", "Then": ["yes"], "Else": ["no"]}}) == ["yes"]
    ctx = make_ctx(input_artifacts={"data": []})
    assert resolve({"IfPresent": {"InputName": "data", "Then": ["yes"], "Else": ["no"]}}, ctx=ctx) == ["no"]
    # a default fills the value but does not make the input present (driver/util.go
    # resolveCondition tests the inputs the driver resolved; defaults are not among them)
    assert resolve({"IfPresent": {"InputName": "defaulted", "Then": ["yes"], "Else": [p("defaulted")]}}) == [
        "dflt"
    ]


def test_absent_branch_may_reference_missing_inputs() -> None:
    ctx = make_ctx(input_parameters={"maybe": None})
    item = {"IfPresent": {"InputName": "maybe", "Then": ["--m", p("maybe")], "Else": ["none"]}}
    assert resolve(item, ctx=ctx) == ["none"]


def _corpus_container(name: str, executor: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import yaml

    spec = yaml.safe_load((CORPUS / name).read_text())
    component = next(c for c in spec["components"].values() if c.get("executorLabel") == executor)
    return spec["deploymentSpec"]["executors"][executor]["container"], component


@pytest.mark.skipif(not CORPUS.is_dir(), reason="KFP corpus not available")
@pytest.mark.parametrize("given, expected", [
    ("hi", ["my_program", "hi", "--dataset", "gs://b/out/dataset"]),
    (None, ["my_program", "bye", "--dataset", "bye"]),
])
def test_corpus_if_placeholder_encoding(given: str | None, expected: list[str]) -> None:
    container, _ = _corpus_container("container_with_if_placeholder.yaml",
                                     "exec-container-with-if-placeholder")
    assert container["command"][1].startswith('{"IfPresent": {"InputName": "optional_input"')  # JSON string
    ctx = make_ctx(
        input_parameters={"optional_input": given},
        input_parameter_types={"optional_input": "STRING"},
        output_parameters={"output_path": "/tmp/kfp/outputs/output_path"},
        output_artifacts={
            "dataset": [ArtifactRef.for_uri("dataset", "gs://b/out/dataset", "system.Dataset")]
        },
    )
    assert resolve_command_line(container["command"], ctx) == expected
    assert resolve_command_line(container["args"], ctx) == ["--output_path", "/tmp/kfp/outputs/output_path"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="KFP corpus not available")
def test_corpus_concat_placeholder_encoding() -> None:
    container, _ = _corpus_container("container_with_concat_placeholder.yaml",
                                     "exec-container-with-concat-placeholder")
    ctx = make_ctx(
        input_parameters={"text1": "t1"},
        input_parameter_types={"text1": "STRING"},
        output_parameters={"output_path": "/tmp/o"},
        output_artifacts={"text2": [ArtifactRef.for_uri("text2", "gs://b/t2", "system.Dataset")]},
    )
    assert resolve_command_line(container["command"], ctx) == ["my_program", "prefix-t1gs://b/t2"]


def test_list_placeholders_and_present_checks() -> None:
    items = ["x" + p("a"), '{"IfPresent": {"InputName": "b", "Then": ["{{$.outputs.output_file}}"], '
             '"Else": [{"Concat": ["{{$}}", "{{$.pipeline_job_name}}"]}]}}']
    assert list_placeholders(items) == {
        p("a"), "{{$.outputs.output_file}}", "{{$}}", "{{$.pipeline_job_name}}"
    }
    assert present_checks(items) == {"b"}


def test_parse_placeholder_kinds() -> None:
    assert parse_placeholder("{{$.inputs.artifacts['a'].metadata['k']}}").key == "k"
    assert parse_placeholder("{{$.outputs.parameters['o'].output_file}}").kind == "output_parameter"
    assert parse_placeholder("{{$.pipeline_job_uuid}}").kind == "runtime"
    assert parse_placeholder("{{$}}").kind == "executor_input"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item, message",
    [
        ("{{$.bogus.thing}}", "unknown placeholder"),
        ("{{$.inputs.parameters['x'].json_escape[0]}}", "unknown placeholder"),
        ("{{$.inputs.parameters['text'].uri}}", "unknown placeholder"),
        ("{{$.outputs.parameters['out']}}", "unknown placeholder"),
        ("{{$.inputs.artifacts['data'].size}}", "unknown placeholder"),
        ("{{$.not_a_kfp_value}}", "unknown placeholder"),
        (p("nope"), "undeclared input parameter 'nope'"),
        (p("maybe"), "'maybe' has no value and no default"),
        ("{{$.inputs.artifacts['nope'].uri}}", "input artifact 'nope' is not available"),
        ("{{$.inputs.artifacts['data'].metadata['nope']}}", "no metadata key 'nope'"),
        ("{{$.outputs.parameters['nope'].output_file}}", "undeclared output parameter 'nope'"),
        ("{{$.outputs.artifacts['nope'].path}}", "output artifact 'nope' is not available"),
        ('{"Concat": ["a", }', "malformed Concat/IfPresent JSON"),
        ({"Concat": "abc"}, "Concat takes a list"),
        ({"IfPresent": {"Then": ["x"]}}, "IfPresent needs an InputName"),
        ({"IfPresent": {"InputName": "text", "then": ["x"]}}, "unknown keys"),
        ({"Join": ["x"]}, "unknown structural placeholder"),
        (3, "must be a string, Concat or IfPresent"),
        ({"Concat": [{"IfPresent": {"InputName": "text", "Then": ["a", "b"]}}]}, "single Then/Else element"),
    ],
)
def test_placeholder_errors(item: Any, message: str) -> None:
    with pytest.raises(PlaceholderError, match=message) as info:
        resolve("ok", item)
    assert isinstance(info.value, KfxError)
    assert str(info.value).startswith("exec-x.args item 1: ")


def test_error_names_placeholder_and_where() -> None:
    ctx = make_ctx(pipeline={})
    with pytest.raises(PlaceholderError) as info:
        resolve_command_line(["a", "b", "x{{$.pipeline_job_name}}"], ctx, where="exec-train.command")
    assert info.value.placeholder == "{{$.pipeline_job_name}}"
    assert info.value.where == "exec-train.command item 2"
    assert "no value for the pipeline placeholder" in str(info.value)


def test_command_must_be_a_list() -> None:
    with pytest.raises(PlaceholderError, match="must be a list"):
        resolve_command_line("echo", make_ctx())  # type: ignore[arg-type]


# -- ExecutorInput ----------------------------------------------------------------------------


def test_executor_input_shape() -> None:
    ctx = ExecutorContext(
        input_parameters={"n": 3.0, "lr": 1, "s": "x", "b": False, "l": [1], "d": {"k": "v"}, "opt": None},
        input_parameter_types={"n": "NUMBER_INTEGER", "lr": "NUMBER_DOUBLE", "s": "STRING", "b": "BOOLEAN",
                               "l": "LIST", "d": "STRUCT", "opt": "STRING"},
        input_artifacts={
            "data": [ArtifactRef.for_uri("data", "gs://b/d", "system.Dataset", metadata={"k": 1})],
            "missing": [],
        },
        output_parameters={"out": "/tmp/kfp/outputs/out"},
        output_artifacts={"model": [ArtifactRef.for_uri("model", "gs://b/r/model", "system.Model", "0.0.2")]},
        output_file="/gcs/b/r/output_metadata.json",
    )
    executor_input = build_executor_input(ctx)
    assert executor_input == {
        "inputs": {
            "parameterValues": {"b": False, "d": {"k": "v"}, "l": [1], "lr": 1.0, "n": 3, "s": "x"},
            "artifacts": {
                "data": {"artifacts": [{
                    "name": "data",
                    "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                    "uri": "gs://b/d",
                    "metadata": {"k": 1},
                }]}
            },
        },
        "outputs": {
            "parameters": {"out": {"outputFile": "/tmp/kfp/outputs/out"}},
            "artifacts": {
                "model": {"artifacts": [{
                    "name": "model",
                    "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.2"},
                    "uri": "gs://b/r/model",
                    "metadata": {},
                }]}
            },
            "outputFile": "/gcs/b/r/output_metadata.json",
        },
    }
    values = executor_input["inputs"]["parameterValues"]
    assert type(values["n"]) is int and type(values["lr"]) is float  # what kfp.dsl.executor expects
    # a copy: mutating it does not touch the context
    values["l"].append(2)
    assert ctx.input_parameters["l"] == [1]


def test_executor_input_json_is_compact_go_style() -> None:
    ctx = make_ctx(input_parameters={"ratio": 3.0, "text": "<b>"}, input_parameter_defaults={})
    text = executor_input_json(ctx)
    assert '"parameterValues":{"ratio":3,"text":"\\u003cb\\u003e"}' in text


# -- outputs ----------------------------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return str(path)


def test_read_outputs_from_files(tmp_path: Path) -> None:
    files = {
        "s": write(tmp_path / "p" / "s", "hi\r\n"),  # bytes as written: no newline translation
        "i": write(tmp_path / "p" / "i", "3"),
        "d": write(tmp_path / "p" / "d", "2.5"),
        "b": write(tmp_path / "p" / "b", "false"),
        "l": write(tmp_path / "p" / "l", "[1, 2]"),
        "m": write(tmp_path / "p" / "m", '{"k": "v"}'),
    }
    types = {"s": "STRING", "i": "NUMBER_INTEGER", "d": "NUMBER_DOUBLE", "b": "BOOLEAN", "l": "LIST",
             "m": "STRUCT"}
    model = [ArtifactRef.for_uri("model", "gs://b/model", "system.Model")]
    params, artifacts = read_outputs(files, types, str(tmp_path / "missing.json"), {"model": model})
    assert params == {"s": "hi\r\n", "i": 3, "d": 2.5, "b": False, "l": [1, 2], "m": {"k": "v"}}
    assert type(params["i"]) is int
    assert artifacts == {"model": model}


def test_executor_output_wins(tmp_path: Path) -> None:
    executor_output = write(tmp_path / "executor_output.json", json.dumps({
        "parameterValues": {"i": 7.0, "s": "from-metadata", "d": 4},
        "artifacts": {
            "model": {"artifacts": [{
                "name": "model", "uri": "gs://b/elsewhere/model",
                "metadata": {"accuracy": 0.9, "framework": "torch"},
            }]},
            "metrics": {"artifacts": [{"metadata": {"f1": 0.5}}]},
            "unknown": {"artifacts": [{"uri": "gs://ignored"}]},
        },
    }))
    files = {"i": write(tmp_path / "i", "3"), "s": str(tmp_path / "never-written"),
             "d": str(tmp_path / "nope")}
    types = {"i": "NUMBER_INTEGER", "s": "STRING", "d": "NUMBER_DOUBLE"}
    model = ArtifactRef.for_uri("model", "gs://b/model", "system.Model",
                                metadata={"framework": "?", "keep": 1})
    metrics = ArtifactRef.for_uri("metrics", "gs://b/metrics", "system.Metrics")
    params, artifacts = read_outputs(files, types, executor_output, {"model": [model], "metrics": [metrics]})
    assert params == {"i": 7, "s": "from-metadata", "d": 4.0}
    assert type(params["i"]) is int and type(params["d"]) is float  # protobuf numbers are doubles
    (new_model,) = artifacts["model"]
    assert new_model.uri == "gs://b/elsewhere/model" and new_model.path == "/gcs/b/elsewhere/model"
    assert dict(new_model.metadata) == {"framework": "torch", "keep": 1, "accuracy": 0.9}  # key-wise merge
    (new_metrics,) = artifacts["metrics"]
    # an empty uri in the executor output keeps the planned one
    assert new_metrics.uri == "gs://b/metrics" and dict(new_metrics.metadata) == {"f1": 0.5}
    assert set(artifacts) == {"model", "metrics"}


def test_executor_output_custom_path(tmp_path: Path) -> None:
    # kfp.dsl.executor writes "custom_path"; mergeRuntimeArtifacts copies CustomPath
    out = write(tmp_path / "eo.json", json.dumps(
        {"artifacts": {"a": {"artifacts": [
            {"name": "a", "uri": "gs://b/a", "metadata": {}, "custom_path": "/data/a"}
        ]}}}
    ))
    _, artifacts = read_outputs({}, {}, out, {"a": [ArtifactRef.for_uri("a", "gs://b/a", "system.Artifact")]})
    assert artifacts["a"][0].path == "/data/a"


def test_missing_output_parameter(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="output parameter 'result' was not written") as info:
        read_outputs({"result": str(tmp_path / "result")}, {"result": "STRING"},
                     str(tmp_path / "eo.json"), {})
    assert info.value.output == "result"
    assert isinstance(info.value, TaskRuntimeError)


def test_unparseable_output_parameter(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"'n' \(NUMBER_INTEGER\).*expected a whole number.*got '3.0'"):
        read_outputs({"n": write(tmp_path / "n", "3.0")}, {"n": "NUMBER_INTEGER"}, str(tmp_path / "eo"), {})


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "invalid executor output"),
        ("[]", "not a JSON object"),
        ('{"parameterValues": {}, "extra": 1}', "unknown fields"),
        ('{"artifacts": {"a": []}}', "must be"),
        ('{"artifacts": {"a": {"artifacts": [{"uri": 1}]}}}', "uri must be a string"),
        ('{"artifacts": {"a": {"artifacts": [{"bogus": 1}]}}}', "unknown fields"),
    ],
)
def test_bad_executor_output(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(OutputError, match=message):
        read_outputs({}, {}, write(tmp_path / "eo.json", content), {})


def test_output_without_type(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no declared type"):
        read_outputs({"x": write(tmp_path / "x", "1")}, {}, str(tmp_path / "eo"), {})


# -- cross-check against kfp.local ------------------------------------------------------------

_KFP_SCRIPT = r"""
import json, sys
from kfp.local import placeholder_utils
placeholder_utils.make_random_id = lambda: "task-uuid"
cases = json.load(sys.stdin)
out = []
for case in cases:
    out.append(placeholder_utils.replace_placeholders(
        full_command=case["command"],
        executor_input_dict=case["executor_input"],
        pipeline_resource_name=case["pipeline"]["pipeline_job_name"],
        task_resource_name=case["pipeline"]["pipeline_task_name"],
        pipeline_root=case["pipeline"]["pipeline_root"],
        unique_pipeline_id=case["pipeline"]["pipeline_job_uuid"],
    ))
json.dump(out, sys.stdout)
"""


def run_kfp_local(cases: list[tuple[list[str], ExecutorContext]], tmp_path: Path) -> list[list[str]]:
    payload = [
        {"command": command, "executor_input": build_executor_input(ctx), "pipeline": dict(ctx.pipeline)}
        for command, ctx in cases
    ]
    result = subprocess.run(
        [str(KFP_PYTHON), "-c", _KFP_SCRIPT], input=json.dumps(payload), capture_output=True,
        text=True, cwd=tmp_path, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _local_ctx(**changes: Any) -> ExecutorContext:
    # kfp.local maps .path to the uri itself, so use plain local paths as URIs
    fields: dict[str, Any] = dict(
        input_parameters={"text": "hello", "count": 3, "flag": True, "off": False, "maybe": None,
                          "pipelinechannel--x": "X",
                          "fstr": "v={{$.inputs.parameters['pipelinechannel--x']}}"},
        input_parameter_types={"text": "STRING", "count": "NUMBER_INTEGER", "flag": "BOOLEAN",
                               "off": "BOOLEAN", "maybe": "STRING", "pipelinechannel--x": "STRING",
                               "fstr": "STRING"},
        input_artifacts={"data": [ArtifactRef.for_uri("data", "/tmp/kfx/in/data", "system.Dataset")]},
        output_parameters={"out": "/tmp/kfx/out/out"},
        output_artifacts={"model": [ArtifactRef.for_uri("model", "/tmp/kfx/out/model", "system.Model")]},
        output_file="/tmp/kfx/out/executor_output.json",
        pipeline={"pipeline_job_name": "my-run", "pipeline_job_uuid": "job-uuid",
                  "pipeline_task_name": "train", "pipeline_task_uuid": "task-uuid",
                  "pipeline_root": "/tmp/kfx/root"},
    )
    fields.update(changes)
    return ExecutorContext(**fields)


def _j(struct: Any) -> str:
    return json.dumps(struct)  # the SDK's encoding of Concat/IfPresent in the IR


REFERENCE_COMMANDS: list[list[str]] = [
    [p("text"), p("count"), p("flag"), p("off"), "--x=" + p("text") + p("count"), p("fstr")],
    ["{{$.inputs.artifacts['data'].uri}}", "{{$.inputs.artifacts['data'].path}}",
     "{{$.outputs.artifacts['model'].uri}}", "{{$.outputs.artifacts['model'].path}}",
     "{{$.outputs.parameters['out'].output_file}}", "{{$.outputs.output_file}}",
     "{{$.outputs.artifacts['model'].metadata}}"],
    ["{{$.pipeline_job_name}}", "{{$.pipeline_job_uuid}}", "{{$.pipeline_task_name}}",
     "{{$.pipeline_task_uuid}}", "{{$.pipeline_root}}/x"],
    [_j({"Concat": ["a-", p("text"), "-", p("count")]})],
]
# also run with "text" absent
IF_PRESENT_COMMANDS: list[list[str]] = [
    [_j({"IfPresent": {"InputName": "text", "Then": ["--t", p("text")], "Else": ["--no-t"]}}),
     _j({"IfPresent": {"InputName": "maybe", "Then": ["--m", p("maybe")], "Else": ["--no-m"]}}),
     _j({"IfPresent": {"InputName": "maybe", "Then": ["--m"]}}),
     _j({"IfPresent": {"InputName": "data", "Then": "{{$.inputs.artifacts['data'].uri}}"}}),
     _j({"Concat": ["x=", {"IfPresent": {"InputName": "maybe", "Then": p("maybe"), "Else": "none"}}, ";",
                    {"IfPresent": {"InputName": "text", "Then": p("text")}}]}),
     _j({"Concat": ["y=", {"IfPresent": {"InputName": "maybe", "Then": p("maybe")}}]}),
     _j({"IfPresent": {"InputName": "text", "Then": [{"Concat": ["--c=", p("count")]}, "z"]}})],
]


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_matches_kfp_local(tmp_path: Path) -> None:
    contexts = [_local_ctx(), _local_ctx(input_parameters={**_local_ctx().input_parameters, "text": None})]
    cases = [(command, contexts[0]) for command in REFERENCE_COMMANDS]
    cases += [(command, ctx) for ctx in contexts for command in IF_PRESENT_COMMANDS]
    expected = run_kfp_local(cases, tmp_path)
    for (command, ctx), theirs in zip(cases, expected):
        assert resolve_command_line(command, ctx) == theirs, command


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_executor_input_placeholder_matches_kfp_local(tmp_path: Path) -> None:
    ctx = _local_ctx()
    ((theirs,),) = run_kfp_local([(["{{$}}"], ctx)], tmp_path)
    (ours,) = resolve_command_line(["{{$}}"], ctx)
    assert json.loads(ours) == json.loads(theirs)  # same content; we write it compact like protojson


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_known_divergences_from_kfp_local(tmp_path: Path) -> None:
    # kfp.local prints non-strings with json.dumps; the Go launcher (what runs on a
    # cluster) uses FormatFloat and compact protojson. We follow the launcher.
    ctx = _local_ctx(
        input_parameters={"r": 3.0, "l": [1, "a"]}, input_parameter_types={"r": "NUMBER_DOUBLE", "l": "LIST"}
    )
    command = [p("r"), p("l")]
    ((theirs_r, theirs_l),) = run_kfp_local([(command, ctx)], tmp_path)
    assert (theirs_r, theirs_l) == ("3.0", '[1, "a"]')
    assert resolve_command_line(command, ctx) == ["3", '[1,"a"]']


_EXECUTOR_SCRIPT = r"""
import json, sys
from typing import NamedTuple
from kfp.dsl import Dataset, Input, Model, Output, OutputPath
from kfp.dsl.executor import Executor

Outputs = NamedTuple("Outputs", [("total", int), ("ratio", float)])

def train(n: int, r: float, b: bool, l: list, d: dict, s: str, data: Input[Dataset],
          model: Output[Model], extra: OutputPath(str)) -> Outputs:
    assert (n, b, l, d, s) == (3, True, [1, "a"], {"k": "v"}, "hi"), (n, b, l, d, s)
    assert r == 1.5 and data.uri.endswith("/in/data") and data.metadata == {"rows": 2}
    with open(data.path) as f, open(model.path, "w") as g:
        g.write(f.read() + s)
    model.metadata["accuracy"] = 0.5
    with open(extra, "w") as f:
        f.write("E")
    return (n + 1, r * 2)

Executor(executor_input=json.loads(sys.argv[1]), function_to_execute=train).execute()
"""


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_kfp_python_executor_round_trip(tmp_path: Path) -> None:
    """Our ExecutorInput drives kfp.dsl.executor; read_outputs reads what it wrote."""
    write(tmp_path / "in" / "data", "rows\n")
    model = ArtifactRef.for_uri("model", str(tmp_path / "out" / "model"), "system.Model")
    ctx = ExecutorContext(
        input_parameters={"n": 3, "r": 1.5, "b": True, "l": [1, "a"], "d": {"k": "v"}, "s": "hi"},
        input_parameter_types={"n": "NUMBER_INTEGER", "r": "NUMBER_DOUBLE", "b": "BOOLEAN", "l": "LIST",
                               "d": "STRUCT", "s": "STRING"},
        input_artifacts={"data": [ArtifactRef.for_uri("data", str(tmp_path / "in" / "data"), "system.Dataset",
                                                      metadata={"rows": 2})]},
        output_parameters={n: str(tmp_path / "out" / "params" / n) for n in ("total", "ratio", "extra")},
        output_artifacts={"model": [model]},
        output_file=str(tmp_path / "out" / "executor_output.json"),
    )
    (executor_input,) = resolve_command_line(["{{$}}"], ctx)  # what the pod receives
    result = subprocess.run([str(KFP_PYTHON), "-c", _EXECUTOR_SCRIPT, executor_input], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    params, artifacts = read_outputs(
        ctx.output_parameters,
        {"total": "NUMBER_INTEGER", "ratio": "NUMBER_DOUBLE", "extra": "STRING"},
        ctx.output_file,
        ctx.output_artifacts,
    )
    assert params == {"total": 4, "ratio": 3.0, "extra": "E"}
    assert type(params["total"]) is int and type(params["ratio"]) is float
    (new_model,) = artifacts["model"]
    assert dict(new_model.metadata) == {"accuracy": 0.5} and new_model.uri == model.uri
    assert Path(new_model.path).read_text() == "rows\nhi"


# -- the corpus: every compiled executor resolves ------------------------------------------------

_SYNTHETIC = {
    "STRING": "s",
    "NUMBER_INTEGER": 7,
    "NUMBER_DOUBLE": 1.25,
    "BOOLEAN": True,
    "LIST": [1, "a"],
    "STRUCT": {"k": "v"},
    "TASK_FINAL_STATUS": {"state": "SUCCEEDED", "pipelineJobResourceName": "r", "pipelineTaskName": "t"},
    "TASK_CONFIG": {},
}


def _corpus_executors() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    import yaml

    found = []
    for path in sorted(CORPUS.rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        spec = next((d for d in docs if "deploymentSpec" in d), None)
        if spec is None:
            continue
        executors = spec["deploymentSpec"].get("executors", {})
        for component in spec.get("components", {}).values():
            executor = executors.get(component.get("executorLabel", ""), {})
            if "container" in executor:
                found.append((str(path.relative_to(CORPUS)), component["executorLabel"], component,
                              executor["container"]))
    return found


def _synthetic_ctx(component: dict[str, Any], *, optional_absent: bool = False) -> ExecutorContext:
    inputs = component.get("inputDefinitions", {})
    outputs = component.get("outputDefinitions", {})
    params, types, defaults = {}, {}, {}
    for name, spec in inputs.get("parameters", {}).items():
        types[name] = spec["parameterType"]
        if "defaultValue" in spec:
            defaults[name] = spec["defaultValue"]
        # TASK_FINAL_STATUS is always isOptional in the IR but the exit task always gets it
        if not (optional_absent and spec.get("isOptional") and spec["parameterType"] != "TASK_FINAL_STATUS"):
            params[name] = _SYNTHETIC[spec["parameterType"]]
    artifacts = {}
    for name, spec in inputs.get("artifacts", {}).items():
        if optional_absent and spec.get("isOptional"):
            continue
        schema = spec["artifactType"]
        count = 2 if spec.get("isArtifactList") else 1
        artifacts[name] = [
            ArtifactRef.for_uri(f"{name}{i}", f"gs://bucket/in/{name}/{i}", schema.get("schemaTitle", ""),
                                schema.get("schemaVersion", "0.0.1"), {"k": "v"})
            for i in range(count)
        ]
    out_artifacts = {
        name: [ArtifactRef.for_uri(name, f"gs://bucket/out/{name}",
                                   spec["artifactType"].get("schemaTitle", ""))]
        for name, spec in outputs.get("artifacts", {}).items()
    }
    return ExecutorContext(
        input_parameters=params,
        input_parameter_types=types,
        input_artifacts=artifacts,
        output_parameters={name: f"/tmp/kfp/outputs/{name}" for name in outputs.get("parameters", {})},
        output_artifacts=out_artifacts,
        output_file="/gcs/bucket/out/output_metadata.json",
        pipeline={name: f"<{name}>" for name in RUNTIME_PLACEHOLDERS},
        input_parameter_defaults=defaults,
    )


@pytest.mark.skipif(not CORPUS.is_dir(), reason="KFP corpus not available")
def test_every_corpus_executor_resolves() -> None:
    tally: Counter[str] = Counter()
    executors = _corpus_executors()
    for file, label, component, container in executors:
        ctx = _synthetic_ctx(component)
        for part in ("command", "args"):
            items = container.get(part, [])
            resolved = resolve_command_line(items, ctx, where=f"{file}:{label}.{part}")
            assert not any("{{$" in arg for arg in resolved), (file, label, resolved)
            for token in list_placeholders(items):
                tally[parse_placeholder(token).kind] += 1
            tally["IfPresent"] += sum("IfPresent" in str(i) for i in items)
            tally["Concat"] += sum("Concat" in str(i) for i in items)
        json.loads(executor_input_json(ctx))
        tally["executors"] += 1
    tally["files"] = len({file for file, *_ in executors})
    print("corpus placeholder tally:", dict(sorted(tally.items())))
    assert tally["executors"] > 100 and tally["executor_input"] > 0 and tally["IfPresent"] > 0


@pytest.mark.skipif(not CORPUS.is_dir(), reason="KFP corpus not available")
def test_corpus_with_optional_inputs_absent() -> None:
    # optional inputs left out: they may only be used inside IfPresent (or have a default)
    failures = []
    for file, label, component, container in _corpus_executors():
        ctx = _synthetic_ctx(component, optional_absent=True)
        for part in ("command", "args"):
            try:
                resolve_command_line(container.get(part, []), ctx, where=f"{file}:{label}.{part}")
            except PlaceholderError as exc:
                failures.append(str(exc))
    print("optional-absent failures:", failures)
    assert failures == []
