"""KFP v1's documented samples, compiled by the real KFP v1 SDK (1.8.22), run with ``kfx run``.

``tests/fixtures/v1/v1_parallel_sample.py`` is KFP v1's parallel execution samples
(``parallel_join``, ``loop_parallelism``, ``loop_output``); ``v1_xgboost_sample.py`` is
its XGBoost training sample with the confusion matrix and ROC viewers, on scikit-learn's
bundled breast-cancer data so that it runs here (xgboost from ``xgboost-cpu``, in the
``test`` extra). ``make compile-v1-fixtures`` recompiles both (``.yaml`` and ``.tar.gz``).
The XGBoost run is checked where a user looks at it: its MLflow store, where the evaluate
task's nested run has the ``mlpipeline-metrics`` as metrics and each
``mlpipeline-ui-metadata`` viewer as a table and a figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_kfx.runtime.python_env import _satisfied_here, parse_lightweight
from airflow_kfx.spec.loader import load_pipeline_file
from airflow_kfx.spec.model import TaskOutput
from tests.support import REPO, kfx_run

V1 = REPO / "tests" / "fixtures" / "v1"


def _value(entry: dict[str, Any], output: str) -> str:
    """A task's output in the run summary: a parameter's value or an artifact file's text
    (the v1 compiler makes an output a parameter only when a task consumes it)."""
    outputs = entry["outputs"]
    if output in outputs["parameters"]:
        return outputs["parameters"][output]
    return Path(outputs["artifacts"][output]["uri"]).read_text()


def _run(tmp_path: Path, name: str, suffix: str) -> dict[str, Any]:
    code, output, summary = kfx_run(tmp_path / "home", str(V1 / f"{name}{suffix}"), "--runtime", "local")
    assert summary is not None, output
    assert code == 0 and summary["state"] == "success", output
    return summary


def test_parallel_sample_model() -> None:
    pipeline = load_pipeline_file(V1 / "v1_parallel_sample.yaml", use_cache=False)
    tasks = pipeline.root.dag.tasks
    echo = tasks["echo2"]
    assert echo.inputs["download-Output"].source == TaskOutput("download", "download-Output")
    assert echo.inputs["download-2-Output"].source == TaskOutput("download-2", "download-2-Output")
    static, dynamic = tasks["for-loop-2"], tasks["for-loop-3"]
    assert json.loads(static.iterator.raw_items) == [{"A_a": 1, "B_b": 2}, {"A_a": 10, "B_b": 20}]
    assert static.parallelism_limit == 10
    channel = dynamic.iterator.input_parameter
    assert dynamic.inputs[channel].source == TaskOutput("args-generator", "args-generator-Output")
    packaged = load_pipeline_file(V1 / "v1_parallel_sample.tar.gz", use_cache=False)
    assert set(packaged.root.dag.tasks) == set(tasks)


def test_v1_packages_to_install_are_read_without_the_user_retry() -> None:
    """KFP v1 installs a component's packages with ``(pip install … || pip install … --user)
    && "$0" "$@"``: one requirement set, which this environment (the ``test`` extra) has,
    so the local runtime runs the component in it instead of building a virtualenv."""
    workflow = yaml.safe_load((V1 / "v1_xgboost_sample.yaml").read_text())
    container = next(t["container"] for t in workflow["spec"]["templates"] if t["name"] == "evaluate")
    command = parse_lightweight([*container["command"], *container["args"]])
    assert command is not None
    install = ("--quiet", "--no-warn-script-location", "scikit-learn", "xgboost-cpu")
    assert command.requirement_args == (install,)
    assert command.run_argv[:2] == ("sh", "-ec")
    assert _satisfied_here(command)


@pytest.mark.slow
def test_parallel_sample_run(tmp_path: Path) -> None:
    tasks = _run(tmp_path, "v1_parallel_sample", ".yaml")["tasks"]
    # parallel_join: two independent tasks, then the one reading both
    assert _value(tasks["download"], "download-Output") == "hello"
    assert _value(tasks["download-2"], "download-2-Output") == "world"
    assert _value(tasks["echo2"], "echo2-Output") == "Text 1: hello; Text 2: world"
    # loop_parallelism: the whole item (a dict, as JSON) and its fields, per iteration
    described = [_value(i, "describe-item-Output") for i in tasks["for-loop-2/describe-item"]["iterations"]]
    assert described == ["A_a=1,B_b=2", "A_a=10,B_b=20"]
    assert [_value(i, "add-Output") for i in tasks["for-loop-2/add"]["iterations"]] == ["3", "30"]
    # loop_output: over the JSON list a task returned
    assert _value(tasks["args-generator"], "args-generator-Output") == "[1.1, 1.2, 1.3]"
    doubled = [_value(i, "double-Output") for i in tasks["for-loop-3/double"]["iterations"]]
    assert doubled == ["2.2", "2.4", "2.6"]


def _artifact_paths(client: Any, run_id: str, folder: str | None = None) -> set[str]:
    paths: set[str] = set()
    for entry in client.list_artifacts(run_id, folder):
        paths |= _artifact_paths(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return paths


@pytest.mark.slow
def test_xgboost_sample_run_shows_the_metrics_confusion_matrix_and_roc_in_mlflow(tmp_path: Path) -> None:
    summary = _run(tmp_path, "v1_xgboost_sample", ".tar.gz")
    tasks = summary["tasks"]
    assert json.loads(_value(tasks["load-data"], "load-data-classes")) == ["malignant", "benign"]
    assert _value(tasks["load-data"], "load-data-train_rows") == "426"
    assert _value(tasks["load-data"], "load-data-test_rows") == "143"

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'home'}/mlflow.db")
    found = client.search_runs([summary["mlflow"]["experiment_id"]])
    runs = {r.data.tags.get("kfx.task_path", "<pipeline>"): r for r in found}
    assert set(runs) == {"load-data", "train", "evaluate", "<pipeline>"}
    evaluate = runs["evaluate"]
    # mlpipeline-metrics: accuracy (format PERCENTAGE: the value as written) and the ROC AUC
    assert set(evaluate.data.metrics) == {"accuracy", "roc_auc"}
    assert evaluate.data.metrics["accuracy"] > 0.85
    assert 0.9 < evaluate.data.metrics["roc_auc"] <= 1.0
    # mlpipeline-ui-metadata: the document, then viewer 0 (the confusion matrix, inline CSV)
    # and viewer 1 (the ROC curve, a CSV file beside the metadata) as tables and figures
    root = "kfp/mlpipeline-ui-metadata"
    assert _artifact_paths(client, evaluate.info.run_id) == {
        f"{root}/mlpipeline-ui-metadata.json",
        f"{root}/0/confusion_matrix.json",
        f"{root}/0/confusion_matrix.png",
        f"{root}/1/roc_curve.json",
        f"{root}/1/roc_curve.png",
    }

    def download(path: str) -> Path:
        return Path(client.download_artifacts(evaluate.info.run_id, path, str(tmp_path / "download")))

    def table(path: str) -> dict[str, Any]:  # an MLflow table: {"columns": [...], "data": [rows]}
        return json.loads(download(path).read_text())

    matrix = table(f"{root}/0/confusion_matrix.json")
    assert matrix["columns"] == ["target", "malignant", "benign"]
    assert [row[0] for row in matrix["data"]] == ["malignant", "benign"]
    assert sum(matrix["data"][0][1:] + matrix["data"][1][1:]) == 143
    correct = matrix["data"][0][1] + matrix["data"][1][2]
    assert correct / 143 == pytest.approx(evaluate.data.metrics["accuracy"])
    roc = table(f"{root}/1/roc_curve.json")
    assert roc["columns"] == ["fpr", "tpr", "threshold"]
    points = roc["data"]
    assert points[0][:2] == [0, 0] and points[-1][:2] == [1, 1]
    # sklearn's first threshold is inf: the CSV says "inf", the MLflow table null
    assert points[0][2] is None
    for figure in ("0/confusion_matrix.png", "1/roc_curve.png"):
        assert download(f"{root}/{figure}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
