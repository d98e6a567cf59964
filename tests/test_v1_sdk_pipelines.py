"""KFP v1 pipelines compiled with the real KFP v1 SDK (1.8.22) load and run.

The fixtures under ``tests/fixtures/v1/`` are KFP v1 DSL pipelines (lightweight
components from ``create_component_from_func``), each ``.py`` beside the workflow the SDK
compiled from it (``.yaml``) and the package it writes for the KFP UI (``.tar.gz``);
``make compile-v1-fixtures`` recompiles them. Both files load as the same model; each
pipeline runs once with ``kfx run --runtime local`` (the exit handler twice: passing and
failing). Outputs no task reads are artifacts in a v1 workflow (the v1 compiler makes an
output a parameter only when a task consumes it), so their values are read from their files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.spec.loader import load_pipeline_file
from airflow_kfx.spec.model import ComponentInput, TaskOutput
from tests.support import REPO, kfx_run

V1 = REPO / "tests" / "fixtures" / "v1"
NAMES = ("v1_params_files", "v1_loops", "v1_exit_handler", "v1_parallel_sample", "v1_xgboost_sample", "v1_sidecar",
         "v1_volume_passing")


def _load(name: str, suffix: str):
    return load_pipeline_file(V1 / f"{name}{suffix}", use_cache=False)


def _without_source(pipeline: Any, source: str) -> str:
    """The model as text, without what names its file (locations, the file's digest: the
    two files differ in the compilation time the v1 compiler stamps)."""
    plain = dataclasses.replace(pipeline, source_file="", digest="")
    return repr(plain).replace(source, "<file>")


@pytest.mark.parametrize("name", NAMES)
def test_the_yaml_and_the_package_load_as_the_same_model(name: str) -> None:
    plain, packaged = _load(name, ".yaml"), _load(name, ".tar.gz")
    assert packaged.source_file.endswith(f"{name}.tar.gz!pipeline.yaml")
    assert _without_source(plain, plain.source_file) == _without_source(packaged, packaged.source_file)


def test_params_and_files_model() -> None:
    pipeline = _load("v1_params_files", ".yaml")
    assert (pipeline.name, pipeline.display_name) == ("v1-params-and-files", "v1 params and files")
    parameters = pipeline.root.inputs.parameters
    assert {name: spec.default for name, spec in parameters.items()} == {"a": 1, "b": 2, "label": "sum"}
    tasks = pipeline.root.dag.tasks
    assert tasks["describe"].inputs["add-Output"].source == TaskOutput("add", "add-Output")
    assert tasks["count-lines"].inputs["write-lines-lines"].is_artifact
    assert tasks["condition-1"].condition == "double(inputs.parameter_values['pipelinechannel--add-add-Output']) > 2.0"
    assert tasks["condition-2"].condition == "inputs.parameter_values['label'] == \"skip\""
    # the v1 task settings: display name, retries, env, memory; metrics and UI metadata files
    report = tasks["report"]
    assert (report.display_name, report.retry.max_retry_count) == ("Report the total", 2)
    container = pipeline.executors["exec-report"].container
    assert (dict(container.env), container.resources.memory_limit) == ({"HEADING": "Total"}, "512M")
    assert set(pipeline.components["comp-report"].outputs.artifacts) == {"mlpipeline-metrics", "mlpipeline-ui-metadata"}


def test_loops_model() -> None:
    pipeline = _load("v1_loops", ".yaml")
    static, dynamic = pipeline.root.dag.tasks["for-loop-2"], pipeline.root.dag.tasks["for-loop-3"]
    assert json.loads(static.iterator.raw_items)[0] == {"label": "one", "v": 1}
    assert static.parallelism_limit == 1
    # KFP 1.8 writes `parallelism: 0` for a loop given none: no limit
    assert dynamic.parallelism_limit is None
    channel = dynamic.iterator.input_parameter
    assert dynamic.inputs[channel].source == TaskOutput("make-list", "make-list-Output")
    body = pipeline.components[dynamic.component].dag.tasks["triple"]
    assert body.inputs["make-list-Output-loop-item"].source == ComponentInput("make-list-Output-loop-item")


def _value(entry: dict[str, Any], output: str) -> str:
    """A task's output in the run summary: a parameter's value or an artifact file's text."""
    outputs = entry["outputs"]
    if output in outputs["parameters"]:
        return outputs["parameters"][output]
    return Path(outputs["artifacts"][output]["uri"]).read_text()


def _run(tmp_path: Path, name: str, suffix: str, *params: str) -> tuple[int, str, dict[str, Any]]:
    args = [a for p in params for a in ("-p", p)]
    code, output, summary = kfx_run(tmp_path / "home", str(V1 / f"{name}{suffix}"), "--runtime", "local", *args)
    assert summary is not None, output
    return code, output, summary


@pytest.mark.slow
def test_params_and_files_run(tmp_path: Path) -> None:
    code, output, summary = _run(tmp_path, "v1_params_files", ".yaml")
    assert code == 0 and summary["state"] == "success", output
    tasks = summary["tasks"]
    assert _value(tasks["add"], "add-Output") == "3"
    assert _value(tasks["describe"], "describe-text") == "sum=3"
    assert _value(tasks["describe"], "describe-double") == "6"
    assert _value(tasks["write-lines"], "write-lines-lines") == "sum=3\nsum=3\nsum=3"
    assert _value(tasks["count-lines"], "count-lines-Output") == "3"
    assert _value(tasks["condition-1/shout"], "shout-Output") == "SUM=3!"
    assert tasks["condition-2/shout-2"]["state"] == "skipped"
    report = tasks["report"]
    assert json.loads(_value(report, "mlpipeline-metrics"))["metrics"][0]["numberValue"] == 3
    assert json.loads(_value(report, "mlpipeline-ui-metadata"))["outputs"][0]["source"] == "# Total: 3"

    import mlflow

    client = mlflow.MlflowClient(summary["mlflow"]["tracking_uri"])
    runs = client.search_runs([summary["mlflow"]["experiment_id"]])
    metrics = {r.data.tags.get("kfx.task_id"): r.data.metrics for r in runs}
    assert metrics["report"] == {"total": 3.0}  # mlpipeline-metrics, logged as a metric


@pytest.mark.slow
def test_loops_run_from_the_package(tmp_path: Path) -> None:
    code, output, summary = _run(tmp_path, "v1_loops", ".tar.gz", "prefix=p", "count=4")
    assert code == 0 and summary["state"] == "success", output
    tasks = summary["tasks"]
    assert [_value(i, "square-Output") for i in tasks["for-loop-2/square"]["iterations"]] == ["p1-one", "p4-two", "p9-three"]
    assert _value(tasks["make-list"], "make-list-Output") == "[0, 10, 20, 30]"
    assert [_value(i, "triple-Output") for i in tasks["for-loop-3/triple"]["iterations"]] == ["0", "30", "60", "90"]


@pytest.mark.slow
@pytest.mark.parametrize(("suffix", "fail"), [(".tar.gz", "no"), (".yaml", "yes")])
def test_exit_handler_run(tmp_path: Path, suffix: str, fail: str) -> None:
    code, output, summary = _run(tmp_path, "v1_exit_handler", suffix, "word=hi", f"fail={fail}")
    tasks = summary["tasks"]
    assert _value(tasks["exit-handler-1/greet"], "greet-Output") == "hi!"
    if fail == "no":
        assert code == 0 and summary["state"] == "success", output
        assert _value(tasks["exit-handler-1/check"], "check-Output") == "checked hi!"
    else:
        assert code != 0 and summary["state"] == "failed", output
        assert tasks["exit-handler-1/check"]["state"] == "failed"
    # the exit task runs once the handler's tasks ended, whatever their outcome
    assert tasks["goodbye"]["state"] == "success"
    assert _value(tasks["goodbye"], "goodbye-Output") == "bye"


def test_a_sidecar_and_an_init_container_become_the_pods(tmp_path: Path) -> None:
    """``add_sidecar`` → a native sidecar (an init container with ``restartPolicy: Always``,
    stopped when the main container ends, as Argo stops its sidecars); ``add_init_container``
    → an init container, run before the sidecars start, as Argo runs them."""
    from airflow_kfx import load_pipeline
    from tests.test_pods import render

    text = (V1 / "v1_sidecar.yaml").read_text()
    sidecar = render(load_pipeline(V1 / "v1_sidecar.yaml"), "fetch")["spec"]["initContainers"]
    server = next(c for c in sidecar if c["name"] == "server")
    assert server["restartPolicy"] == "Always" and server["image"] == "python:3.11"
    assert server["command"][:2] == ["python3", "-c"] and "serve_forever" in server["command"][2]
    with_init = text.replace("    sidecars:\n", "    initContainers:\n    - {name: prepare, image: busybox, command: [sh, -c, "
                             "'echo ready'], env: [{name: MODE, value: fast}]}\n    sidecars:\n", 1)
    (tmp_path / "v1_sidecar.yaml").write_text(with_init)
    dag = load_pipeline(tmp_path / "v1_sidecar.yaml")
    containers = render(dag, "fetch")["spec"]["initContainers"]
    names = [c["name"] for c in containers]
    assert names.index("prepare") < names.index("server")
    prepare = containers[names.index("prepare")]
    assert "restartPolicy" not in prepare and prepare["env"] == [{"name": "MODE", "value": "fast"}]


@pytest.mark.parametrize(("old", "new", "feature"), [
    ("    - command:\n      - python3", "    - ports: [{containerPort: 18765}]\n      command:\n      - python3",
     "Argo sidecar ports"),
    ("image: python:3.11\n      name: server", "image: 'python:{{workflow.parameters.tag}}'\n      name: server",
     "Argo variable in a sidecar"),
])
def test_a_sidecar_setting_that_cannot_be_translated_is_refused_by_name(old: str, new: str, feature: str) -> None:
    from airflow_kfx.exceptions import UnsupportedFeatureError
    from airflow_kfx.spec.loader import load_pipeline_text

    text = (V1 / "v1_sidecar.yaml").read_text()
    assert old in text
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_pipeline_text(text.replace(old, new, 1), file="sidecar.yaml")
    assert caught.value.feature == feature


@pytest.mark.slow
def test_a_step_reaches_the_server_its_sidecar_runs(tmp_path: Path) -> None:
    code, output, summary = _run(tmp_path, "v1_sidecar", ".yaml")
    assert code == 0 and summary["state"] == "success", output
    assert _value(summary["tasks"]["fetch"], "fetch-page") == "served by the sidecar"


def test_a_data_passing_volume_becomes_artifact_passing(tmp_path: Path) -> None:
    """``data_passing_method = KubernetesVolume(...)``: the per-run subPath mounts and their
    ``-subpath`` parameters become the artifacts and artifact arguments the default mode
    writes; the volume is not mounted. Any other workflow volume is still refused."""
    from airflow_kfx.exceptions import UnsupportedFeatureError
    from airflow_kfx.spec.loader import load_pipeline_text

    pipeline = _load("v1_volume_passing", ".yaml")
    tasks = pipeline.root.dag.tasks
    assert tasks["shout"].inputs["write-lines-lines"].source == TaskOutput("write-lines", "write-lines-lines")
    assert tasks["shout"].inputs["write-lines-lines"].is_artifact
    # through the condition's nested DAG: its input, then the step inside it
    assert tasks["condition-1"].inputs["shout-loud"].source == TaskOutput("shout", "shout-loud")
    assert tasks["condition-1"].inputs["shout-loud"].is_artifact
    inner = pipeline.components[tasks["condition-1"].component].dag.tasks
    assert inner["count-lines"].inputs["shout-loud"].source == ComponentInput("shout-loud")
    assert not any(name.endswith("-subpath") for task in [*tasks.values(), *inner.values()] for name in task.inputs)
    assert pipeline.executors["exec-shout"].container.args[-4:] == (
        "--lines", "{{$.inputs.artifacts['write-lines-lines'].path}}",
        "--loud", "{{$.outputs.artifacts['shout-loud'].path}}")
    assert pipeline.platform is None  # no pvcMount of the data volume: no Kubernetes settings at all
    text = (V1 / "v1_volume_passing.yaml").read_text()
    old = "subPath: 'artifact_data/{{workflow.uid}}_{{pod.name}}/shout-loud'"
    assert old in text
    with pytest.raises(UnsupportedFeatureError) as caught:  # a mount of the volume that passes no data
        load_pipeline_text(text.replace(old, "subPath: shared/loud"), file="wf.yaml")
    assert caught.value.feature == "Argo workflow spec.volumes"


@pytest.mark.slow
def test_artifacts_of_a_data_passing_volume_pipeline_pass_through_the_pipeline_root(tmp_path: Path) -> None:
    code, output, summary = _run(tmp_path, "v1_volume_passing", ".tar.gz", "text=kfp", "times=3")
    assert code == 0 and summary["state"] == "success", output
    tasks = summary["tasks"]
    assert _value(tasks["write-lines"], "write-lines-lines") == "kfp\nkfp\nkfp"
    assert _value(tasks["shout"], "shout-loud") == "KFP\nKFP\nKFP"
    assert _value(tasks["condition-1/count-lines"], "count-lines-Output") == "3 lines of KFP"


@pytest.mark.slow
def test_the_sidecar_serves_its_step_on_the_kubernetes_runtime_too(tmp_path: Path) -> None:
    """The same pod through the KubernetesPodOperator to the Kubernetes API double, which
    validates it against the Kubernetes schema and runs the native sidecar beside the step."""
    from tests.kube.fixtures import kube_double

    with kube_double(tmp_path / "kube") as kube:
        code, output, summary = kfx_run(tmp_path / "home", str(V1 / "v1_sidecar.yaml"), "--runtime", "kubernetes",
                                        env={**kube.airflow_environment(), "AIRFLOW__KFX__TRACKING": "false"})
    assert code == 0 and summary is not None and summary["state"] == "success", output
    assert _value(summary["tasks"]["fetch"], "fetch-page") == "served by the sidecar"
