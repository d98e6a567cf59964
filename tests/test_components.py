"""KFP components in hand-written DAGs: v1 component.yaml and compiled v2 components."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx import load_component_from_file, load_component_from_text
from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from tests.support import CORPUS, REPO, corpus_files

COMPONENTS = REPO / "dags" / "components"


def test_every_v1_component_in_the_corpus_loads_or_is_refused_by_name() -> None:
    files = corpus_files("v1 component")
    assert len(files) == 308
    tally: Counter[str] = Counter()
    for path in files:  # any other exception fails the test
        try:
            load_component_from_file(path)
            tally["loaded"] += 1
        except UnsupportedFeatureError as err:
            tally[f"unsupported: {err.feature}"] += 1
    print("\nv1 components:", dict(tally))
    # the 4 still refused: graph components (tests/test_v1_legacy_outputs.py)
    assert tally == {"loaded": 304, "unsupported: v1 graph component": 4}


def _argv(factory: Any, inputs: dict[str, Any], **kwargs: Any) -> list[str]:
    """The main container's command + args for one call with literal inputs."""
    from airflow.sdk import DAG

    from airflow_kfx.operators.context import flatten_artifacts
    from airflow_kfx.runtime.invocation import RunIdentity
    from airflow_kfx.runtime.resolve import Resolver

    with DAG("argv_probe", schedule=None):
        task = factory(task_id="probe", **inputs)
    planned = task.kfx_task
    resolver = Resolver(fetcher=None, loops=())  # literals only: nothing to fetch
    parameters, artifacts = {}, {}
    for name, binding in planned.inputs.items():
        value = resolver.resolve(binding)
        if name in factory.component.inputs.artifacts:
            artifacts[name] = kwargs.get("artifacts", {}).get(name) or flatten_artifacts(value)
        else:
            parameters[name] = value
    identity = RunIdentity(dag_id="d", run_id="r1", task_id="probe", kfp_task_name="probe", kfp_path="probe")
    task.prepare(parameters, artifacts, identity)
    pod = task.build_pod_request_obj(None, dry_run=True)
    container = pod.spec.containers[0]
    return [*(container.command or []), *(container.args or [])]





def test_input_value_and_output_path_of_a_parameter() -> None:
    factory = load_component_from_file(COMPONENTS / "make_numbers.yaml")
    argv = _argv(factory, {"count": 7})
    assert argv[:2] == ["python3", "-c"]
    # Integer 7 is passed as v1 text "7"; a parameter outputPath is its output file
    assert argv[3] == "7"
    assert argv[4].endswith("/d/r1/probe/0/_kfx/parameters/numbers")


def test_v1_defaults_and_serialisation_of_each_type() -> None:
    text = """
name: Types
inputs:
- {name: i, type: Integer, default: '5'}
- {name: f, type: Float}
- {name: b, type: Bool}
- {name: l, type: JsonArray}
- {name: o, type: JsonObject}
- {name: s, type: String}
- {name: u}
implementation:
  container:
    image: alpine
    command: [echo, {inputValue: i}, {inputValue: f}, {inputValue: b}, {inputValue: l}, {inputValue: o}, {inputValue: s}, {inputValue: u}]
"""
    factory = load_component_from_text(text)
    argv = _argv(factory, {"f": 0.5, "b": True, "l": [1, "a"], "o": {"k": 1}, "s": "x y", "u": 3})
    # KFP v1 (kfp.components._data_passing): str() for scalars, json.dumps for JSON types
    assert argv == ["echo", "5", "0.5", "True", '[1, "a"]', '{"k": 1}', "x y", "3"]


def test_concat_and_if_is_present_both_ways() -> None:
    factory = load_component_from_file(COMPONENTS / "sum_numbers.yaml")
    with_offset = _argv(factory, {"numbers": [1, 2], "offset": 4})
    assert with_offset[3:4] == ["[1, 2]"] and with_offset[-2:] == ["--offset", "4"]
    without = _argv(factory, {"numbers": [1, 2]})
    assert "--offset" not in without and len(without) == len(with_offset) - 2
    text = """
name: Concat
inputs: [{name: a, type: String}, {name: b, type: String, optional: true}]
implementation:
  container:
    image: alpine
    command: [echo, {concat: [--a=, {inputValue: a}, "+", {if: {cond: {isPresent: b}, then: [{inputValue: b}], else: [none]}}]}]
"""
    factory = load_component_from_text(text)
    assert _argv(factory, {"a": "x", "b": "y"}) == ["echo", "--a=x+y"]
    assert _argv(factory, {"a": "x"}) == ["echo", "--a=x+none"]


def test_argo_run_variables_become_this_runs_ids() -> None:
    """A v1 component's ``{{workflow.uid}}``/``{{pod.name}}`` (``dsl.RUN_ID_PLACEHOLDER``,
    ``dsl.EXECUTION_ID_PLACEHOLDER``: Argo filled them in) are the run's and the task
    execution's ids, not literal text: two runs get two different unique URIs."""
    # as components/contrib/google-cloud/storage/upload_to_unique_uri/component.yaml writes it
    text = """
name: Unique
inputs: [{name: GCS path prefix, type: String}]
implementation:
  container:
    image: google/cloud-sdk
    command: [gsutil, cp, /data, {concat: [{inputValue: GCS path prefix}, '{{workflow.uid}}_{{pod.name}}']}]
"""
    argv = _argv(load_component_from_text(text), {"GCS path prefix": "gs://b/p/"})
    unique = [item for item in argv if item.startswith("gs://b/p/")]
    assert len(unique) == 1 and "{{" not in unique[0], argv
    run_part, _, task_part = unique[0].removeprefix("gs://b/p/").partition("_")
    assert run_part and task_part and run_part != task_part, unique


def test_input_path_input_uri_output_uri() -> None:
    text = """
name: Files
inputs: [{name: data, type: Dataset}, {name: raw, type: String}]
outputs: [{name: model, type: Model}, {name: where, type: Model}]
implementation:
  container:
    image: alpine
    command: [cp, {inputPath: data}, {inputUri: raw}, {outputPath: model}, {outputUri: where}]
"""
    factory = load_component_from_text(text)
    assert set(factory.component.inputs.artifacts) == {"data", "raw"}
    assert set(factory.component.outputs.artifacts) == {"model", "where"}
    data = [{"name": "data", "uri": "s3://bucket/in/data.csv", "metadata": {}}]
    raw = [{"name": "raw", "uri": "gs://b/raw.txt", "metadata": {}}]
    argv = _argv(factory, {"data": "unused", "raw": "unused"}, artifacts={"data": data, "raw": raw})
    # KFP's local-path convention for object-store URIs; URIs as they are
    assert argv[1] == "/s3/bucket/in/data.csv"
    assert argv[2] == "gs://b/raw.txt"
    assert argv[3].endswith("/d/r1/probe/0/model")
    assert argv[4].endswith("/d/r1/probe/0/where")


def test_executor_input_and_output_metadata() -> None:
    path = CORPUS / "sdk/python/kfp/deprecated/containers_tests/testdata/expected_component.yaml"
    factory = load_component_from_file(path)
    # types decide when only the executor input refers to an input (v2-compatible components)
    assert set(factory.component.inputs.parameters) == {"test_param"}
    assert set(factory.component.inputs.artifacts) == {"test_artifact"}
    artifact = [{"name": "test_artifact", "uri": "/data/x", "metadata": {}}]
    argv = _argv(factory, {"test_param": "hi", "test_artifact": "x"}, artifacts={"test_artifact": artifact})
    executor_input = json.loads(argv[argv.index("--executor_input_str") + 1])
    assert executor_input["inputs"]["parameterValues"] == {"test_param": "hi"}
    assert executor_input["inputs"]["artifacts"]["test_artifact"]["artifacts"][0]["uri"] == "/data/x"
    assert argv[argv.index("--output_metadata_path") + 1].endswith("/d/r1/probe/0/executor_output.json")


def test_missing_and_unknown_inputs_fail_when_the_dag_is_written() -> None:
    from airflow.sdk import DAG

    factory = load_component_from_file(COMPONENTS / "sum_numbers.yaml")
    with DAG("bad_inputs", schedule=None):
        with pytest.raises(SpecError, match="'Sum numbers' \\(task 'sum'\\) needs input\\(s\\) numbers"):
            factory(task_id="sum")
        with pytest.raises(SpecError, match="has no input\\(s\\) numbrs"):
            factory(task_id="sum", numbrs=[1])


def test_compiled_v2_component_loads_as_a_factory() -> None:
    path = CORPUS / "test_data/sdk_compiled_pipelines/valid/critical/container_component_with_no_inputs.yaml"
    factory = load_component_from_file(path)
    assert factory.component.executor_label in factory.pipeline.executors


def test_metadata_shows_in_the_airflow_ui() -> None:
    from airflow.sdk import DAG

    factory = load_component_from_file(COMPONENTS / "write_report.yaml")
    with DAG("docs", schedule=None):
        task = factory(task_id="report", total=1)
    assert "Write report" in task.doc_md and "one-line Markdown report" in task.doc_md
    assert task.image == "alpine:3.20"
    assert "image" in task.template_fields and "cmds" in task.template_fields
    assert set(task.outputs) == {"report"} and task.output.output_name == "report"


@pytest.mark.slow
def test_hand_written_dag_mixing_components_and_airflow_tasks_runs(dags_folder: Path) -> None:
    import importlib.util

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    spec = importlib.util.spec_from_file_location("kfx_hand_written_example", REPO / "dags" / "hand_written.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import shutil

    # as deployed: the DAG file and its components in the DAG folder
    (dags_folder / "kfx_hand_written.py").write_text((REPO / "dags" / "hand_written.py").read_text())
    shutil.copytree(COMPONENTS, dags_folder / "components", dirs_exist_ok=True)
    dag_run = module.dag.test(run_conf={"title": "Doubled"})
    assert str(dag_run.state) == "success"
    with create_session() as session:
        xcoms = {
            (x.task_id, x.key): XComModel.deserialize_value(x)
            for x in session.query(XComModel).filter(XComModel.dag_id == "kfx_hand_written", XComModel.run_id == dag_run.run_id)
        }
    assert xcoms[("double_all", "return_value")] == [2, 4, 6, 8]
    assert xcoms[("sum-numbers", "return_value")]["parameters"]["total"] == "30"
    report_uri = xcoms[("write-report", "return_value")]["artifacts"]["report"][0]["uri"]
    assert Path(report_uri).read_text() == "# Doubled\n\ntotal = 30\n"
    assert xcoms[("count-lines", "return_value")]["parameters"]["lines"].strip() == "3"

    # MLflow: the DAG is the pipeline — one experiment named after it, one parent run for
    # the DAG run (with the DAG's params), closed when the run ended, the components nested.
    import os

    import mlflow

    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = [r for e in client.search_experiments() for r in client.search_runs(
        [e.experiment_id], filter_string=f"tags.`kfx.run_id` = '{dag_run.run_id}'")]
    assert {client.get_experiment(r.info.experiment_id).name for r in runs} == {"kfx_hand_written"}
    (parent,) = [r for r in runs if r.data.tags["kfx.kind"] == "pipeline-run"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["title"] == "Doubled"
    tasks = {r.data.tags["kfx.task_id"]: r for r in runs if r.data.tags["kfx.kind"] == "task"}
    assert set(tasks) == {"make-numbers", "sum-numbers", "write-report", "count-lines"}
    assert {r.data.tags["mlflow.parentRunId"] for r in tasks.values()} == {parent.info.run_id}
    assert {r.info.status for r in tasks.values()} == {"FINISHED"}


def test_load_component_from_url_over_http() -> None:
    import http.server
    import threading

    body = (COMPONENTS / "write_report.yaml").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            status = 200 if self.path == "/write_report.yaml" else 404
            self.send_response(status)
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from airflow_kfx import load_component_from_url

        base = f"http://127.0.0.1:{server.server_port}"
        factory = load_component_from_url(f"{base}/write_report.yaml")
        assert factory.name == "Write report"
        with pytest.raises(SpecError, match="cannot download the component"):
            load_component_from_url(f"{base}/missing.yaml")
    finally:
        server.shutdown()


def test_kfx_validate_accepts_component_files() -> None:
    from airflow_kfx.cli import validate_command

    assert validate_command([str(COMPONENTS)]) == 0
