"""airflow_kfx.tracking.outputs: a task's KFP outputs logged into a real MLflow run
(SQLite tracking store and a local artifact store under tmp_path), read back with
MlflowClient."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.runtime.storage import read_text
from airflow_kfx.tracking.outputs import log_task_outputs

mlflow = pytest.importorskip("mlflow")

# Artifact metadata exactly as the KFP SDK (2.16.1, .venv-kfp) produces it, printed by
# running there:
#   m = dsl.Metrics(); m.log_metric("accuracy", 0.92); m.log_metric("loss", 0.31); m.log_metric("epochs", 10)
#   c = dsl.ClassificationMetrics()
#   c.log_confusion_matrix(["cat", "dog", "bird"], [[9, 1, 0], [2, 7, 1], [0, 1, 8]])
#   c.log_roc_curve(fpr=[0.0, 0.1, 0.5, 1.0], tpr=[0.0, 0.6, 0.9, 1.0], threshold=[1.0, 0.8, 0.4, 0.0])
#   s = dsl.SlicedClassificationMetrics(); s._sliced_metrics = {}  # the SDK's __init__ forgets it
#   s.set_confusion_matrix_categories("overall", ["neg", "pos"])
#   s.log_confusion_matrix_row("overall", "neg", [45, 5]); s.log_confusion_matrix_row("overall", "pos", [8, 42])
#   s.set_confusion_matrix_categories("mobile", ["neg", "pos"]); s.log_confusion_matrix_cell("mobile", "pos", "pos", 12)
METRICS_METADATA = {"accuracy": 0.92, "loss": 0.31, "epochs": 10}
CLASSIFICATION_METADATA = {
    "confusionMatrix": {
        "annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}, {"displayName": "bird"}],
        "rows": [{"row": [9, 1, 0]}, {"row": [2, 7, 1]}, {"row": [0, 1, 8]}],
    },
    "confidenceMetrics": [
        {"confidenceThreshold": 1.0, "recall": 0.0, "falsePositiveRate": 0.0},
        {"confidenceThreshold": 0.8, "recall": 0.6, "falsePositiveRate": 0.1},
        {"confidenceThreshold": 0.4, "recall": 0.9, "falsePositiveRate": 0.5},
        {"confidenceThreshold": 0.0, "recall": 1.0, "falsePositiveRate": 1.0},
    ],
}
SLICED_METADATA = {
    "evaluationSlices": [
        {
            "slice": "overall",
            "sliceClassificationMetrics": {
                "confusionMatrix": {
                    "annotationSpecs": [{"displayName": "neg"}, {"displayName": "pos"}],
                    "rows": [{"row": [45, 5]}, {"row": [8, 42]}],
                }
            },
        },
        {
            "slice": "mobile",
            "sliceClassificationMetrics": {
                "confusionMatrix": {
                    "annotationSpecs": [{"displayName": "neg"}, {"displayName": "pos"}],
                    "rows": [{"row": [0, 0]}, {"row": [0, 12]}],
                }
            },
        },
    ]
}

# KFP v1 files, in the formats of "Pipeline metrics" and "Visualize Results in the Pipelines UI".
V1_METRICS = {
    "metrics": [
        {"name": "accuracy-score", "numberValue": 0.875, "format": "PERCENTAGE"},
        {"name": "roc-auc", "numberValue": 0.93, "format": "RAW"},
    ]
}
V1_UI_METADATA = {
    "outputs": [
        {"type": "markdown", "storage": "inline", "source": "# Training report\n\n*accuracy*: 87.5%"},
        {
            "type": "confusion_matrix",
            "format": "csv",
            "schema": [
                {"name": "target", "type": "CATEGORY"},
                {"name": "predicted", "type": "CATEGORY"},
                {"name": "count", "type": "NUMBER"},
            ],
            "storage": "inline",
            "source": "yummy,yummy,10\nyummy,not yummy,2\nnot yummy,yummy,6\nnot yummy,not yummy,7\n",
            "labels": ["yummy", "not yummy"],
        },
        {
            "type": "roc",
            "format": "csv",
            "schema": [
                {"name": "fpr", "type": "NUMBER"},
                {"name": "tpr", "type": "NUMBER"},
                {"name": "thresholds", "type": "NUMBER"},
            ],
            "storage": "inline",
            "source": "0.0,0.0,1.0\n0.2,0.7,0.5\n1.0,1.0,0.0\n",
        },
        {"type": "table", "format": "csv", "header": ["model", "score"], "storage": "inline",
         "source": "baseline,0.61\nboosted,0.87\n"},
        {"type": "web-app", "storage": "inline", "source": "<html><body><p>hello</p></body></html>"},
        {"type": "tensorboard", "source": "gs://bucket/logs"},
        {"type": "markdown", "source": "MARKDOWN_FILE"},  # not inline: read from its path
    ]
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("mlflow")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    client.create_experiment("kfx-outputs", artifact_location=(root / "artifacts").as_uri())
    return client


@pytest.fixture()
def run_id(client: Any) -> str:
    experiment = client.get_experiment_by_name("kfx-outputs")
    return client.create_run(experiment.experiment_id).info.run_id


def artifact(name: str, schema: str, uri: str = "", metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "uri": uri or f"/pipeline-root/train/{name}",
        "schemaTitle": schema,
        "schemaVersion": "0.0.1",
        "metadata": metadata or {},
    }


def write(path: Path, content: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def download(client: Any, run_id: str, path: str, tmp_path: Path) -> Path:
    return Path(client.download_artifacts(run_id, path, str(tmp_path / "downloads")))


def artifact_paths(client: Any, run_id: str, folder: str | None = None) -> set[str]:
    paths = set()
    for info in client.list_artifacts(run_id, folder):
        paths |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return paths


def load_table(client: Any, run_id: str, path: str, tmp_path: Path) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a table logged with ``log_table`` (pandas' "split" JSON layout)."""
    table = json.loads(download(client, run_id, path, tmp_path).read_text())
    return table["columns"], table["data"]


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    assert height > 200 and width > 200


def test_parameters_metrics_and_artifact_tags(client: Any, run_id: str) -> None:
    outputs = {
        "parameters": {"Output": "done", "n": 3, "rate": 0.5, "ok": True, "items": [1, "a"], "cfg": {"k": 1}},
        "artifacts": {
            "metrics": [artifact("metrics", "system.Metrics", "s3://bucket/root/train/metrics", METRICS_METADATA)],
            "model": [artifact("model", "system.Model", "s3://bucket/root/train/model", {"framework": "sk"})],
        },
    }
    log_task_outputs(client, run_id, outputs, read_text)

    data = client.get_run(run_id).data
    assert data.params == {
        "output.Output": "done",
        "output.n": "3",
        "output.rate": "0.5",
        "output.ok": "true",
        "output.items": '[1, "a"]',
        "output.cfg": '{"k": 1}',
    }
    assert data.metrics == {"accuracy": 0.92, "loss": 0.31, "epochs": 10.0}
    assert data.tags["kfx.artifact.metrics"] == "s3://bucket/root/train/metrics"
    assert data.tags["kfx.artifact.model"] == "s3://bucket/root/train/model"
    assert client.list_artifacts(run_id) == []  # scalars only: no files for these types


def test_colliding_metric_names_are_prefixed_with_the_artifact_name(client: Any, run_id: str) -> None:
    outputs = {
        "artifacts": {
            "train_metrics": [artifact("train_metrics", "system.Metrics", metadata={"accuracy": 0.99, "loss": 0.1})],
            "eval_metrics": [artifact("eval_metrics", "system.Metrics", metadata={"accuracy": 0.91, "f1": 0.8})],
        }
    }
    log_task_outputs(client, run_id, outputs, read_text)
    assert client.get_run(run_id).data.metrics == {
        "train_metrics/accuracy": 0.99,
        "eval_metrics/accuracy": 0.91,
        "loss": 0.1,
        "f1": 0.8,
    }


def test_classification_metrics_become_tables_figures_and_json(client: Any, run_id: str, tmp_path: Path) -> None:
    outputs = {"artifacts": {"eval": [artifact("eval", "system.ClassificationMetrics", metadata=CLASSIFICATION_METADATA)]}}
    log_task_outputs(client, run_id, outputs, read_text)

    assert artifact_paths(client, run_id) == {
        f"kfp/eval/{f}"
        for f in ("confusion_matrix.json", "confusion_matrix.png", "confusion_matrix_kfp.json",
                  "roc_curve.json", "roc_curve.png", "roc_curve_kfp.json")
    }
    columns, rows = load_table(client, run_id, "kfp/eval/confusion_matrix.json", tmp_path)
    assert columns == ["actual", "cat", "dog", "bird"]
    assert rows == [["cat", 9, 1, 0], ["dog", 2, 7, 1], ["bird", 0, 1, 8]]
    columns, rows = load_table(client, run_id, "kfp/eval/roc_curve.json", tmp_path)
    assert columns == ["threshold", "fpr", "tpr"]
    assert rows == [[1.0, 0.0, 0.0], [0.8, 0.1, 0.6], [0.4, 0.5, 0.9], [0.0, 1.0, 1.0]]
    # The tables are registered as such, which the MLflow UI uses to show them.
    logged = json.loads(client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])
    assert {"path": "kfp/eval/confusion_matrix.json", "type": "table"} in logged
    assert {"path": "kfp/eval/roc_curve.json", "type": "table"} in logged

    raw = json.loads(download(client, run_id, "kfp/eval/confusion_matrix_kfp.json", tmp_path).read_text())
    assert raw == CLASSIFICATION_METADATA["confusionMatrix"]
    raw_roc = json.loads(download(client, run_id, "kfp/eval/roc_curve_kfp.json", tmp_path).read_text())
    assert raw_roc == {"confidenceMetrics": CLASSIFICATION_METADATA["confidenceMetrics"]}
    assert_png(download(client, run_id, "kfp/eval/confusion_matrix.png", tmp_path))
    assert_png(download(client, run_id, "kfp/eval/roc_curve.png", tmp_path))


def test_logging_the_same_outputs_again_replaces_tables(client: Any, run_id: str, tmp_path: Path) -> None:
    # MLflow's log_table appends to an existing table: a retried task must not double its rows.
    outputs = {
        "parameters": {"n": 1},
        "artifacts": {"eval": [artifact("eval", "system.ClassificationMetrics", metadata=CLASSIFICATION_METADATA)]},
    }
    log_task_outputs(client, run_id, outputs, read_text)
    log_task_outputs(client, run_id, outputs, read_text)
    columns, rows = load_table(client, run_id, "kfp/eval/confusion_matrix.json", tmp_path)
    assert rows == [["cat", 9, 1, 0], ["dog", 2, 7, 1], ["bird", 0, 1, 8]]
    logged = json.loads(client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])
    assert logged.count({"path": "kfp/eval/confusion_matrix.json", "type": "table"}) == 1


def test_sliced_classification_metrics(client: Any, run_id: str, tmp_path: Path) -> None:
    outputs = {"artifacts": {"sliced": [artifact("sliced", "system.SlicedClassificationMetrics", metadata=SLICED_METADATA)]}}
    log_task_outputs(client, run_id, outputs, read_text)

    assert artifact_paths(client, run_id) == {
        "kfp/sliced/sliced_classification_metrics.json",
        "kfp/sliced/slices/overall/confusion_matrix.json",
        "kfp/sliced/slices/overall/confusion_matrix_kfp.json",
        "kfp/sliced/slices/mobile/confusion_matrix.json",
        "kfp/sliced/slices/mobile/confusion_matrix_kfp.json",
    }
    raw = json.loads(download(client, run_id, "kfp/sliced/sliced_classification_metrics.json", tmp_path).read_text())
    assert raw == SLICED_METADATA
    columns, rows = load_table(client, run_id, "kfp/sliced/slices/mobile/confusion_matrix.json", tmp_path)
    assert (columns, rows) == (["actual", "neg", "pos"], [["neg", 0, 0], ["pos", 0, 12]])


def test_html_and_markdown_files(client: Any, run_id: str, tmp_path: Path) -> None:
    html = "<html><body><h1>Report</h1><p>caf\u00e9</p></body></html>"
    markdown = "# Summary\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    outputs = {
        "artifacts": {
            "report": [artifact("report", "system.HTML", write(tmp_path / "root" / "report", html))],
            "summary": [artifact("summary", "system.Markdown", write(tmp_path / "root" / "summary", markdown))],
        }
    }
    log_task_outputs(client, run_id, outputs, read_text)
    assert artifact_paths(client, run_id) == {"kfp/report/report.html", "kfp/summary/summary.md"}
    assert download(client, run_id, "kfp/report/report.html", tmp_path).read_text() == html
    assert download(client, run_id, "kfp/summary/summary.md", tmp_path).read_text() == markdown


def test_html_through_read_bytes_is_copied_byte_for_byte(client: Any, run_id: str, tmp_path: Path) -> None:
    content = b"<html><meta charset='latin-1'><p>caf\xe9</p></html>"  # not UTF-8
    (tmp_path / "page").write_bytes(content)
    outputs = {"artifacts": {"page": [artifact("page", "system.HTML", str(tmp_path / "page"))]}}
    log_task_outputs(client, run_id, outputs, read_text, read_bytes=lambda uri: Path(uri).read_bytes())
    assert download(client, run_id, "kfp/page/page.html", tmp_path).read_bytes() == content


@pytest.mark.parametrize("metrics_name", ["mlpipeline_metrics", "MLPipeline Metrics", "mlpipeline-metrics"])
def test_kfp_v1_metrics_and_ui_metadata(client: Any, run_id: str, tmp_path: Path, metrics_name: str) -> None:
    ui_metadata = json.loads(json.dumps(V1_UI_METADATA).replace("MARKDOWN_FILE", str(tmp_path / "notes.md")))
    write(tmp_path / "notes.md", "## Notes from a file")
    outputs = {
        "artifacts": {
            # What KFP's compiler makes of a v1 component's `{name: MLPipeline Metrics, type: Metrics}`
            # and `{name: MLPipeline UI metadata, type: UI metadata}` outputs.
            metrics_name: [artifact(metrics_name, "system.Metrics", write(tmp_path / "m" / "data", V1_METRICS))],
            "mlpipeline_ui_metadata": [
                artifact("mlpipeline_ui_metadata", "system.Artifact", write(tmp_path / "ui" / "data", ui_metadata))
            ],
        }
    }
    log_task_outputs(client, run_id, outputs, read_text)

    assert client.get_run(run_id).data.metrics == {"accuracy-score": 0.875, "roc-auc": 0.93}
    ui = "kfp/mlpipeline_ui_metadata"
    assert artifact_paths(client, run_id) == {
        f"{ui}/mlpipeline-ui-metadata.json",
        f"{ui}/0/markdown.md",
        f"{ui}/1/confusion_matrix.json",
        f"{ui}/1/confusion_matrix.png",
        f"{ui}/2/roc_curve.json",
        f"{ui}/2/roc_curve.png",
        f"{ui}/3/table.json",
        f"{ui}/4/web-app.html",
        f"{ui}/6/markdown.md",
    }
    assert json.loads(download(client, run_id, f"{ui}/mlpipeline-ui-metadata.json", tmp_path).read_text()) == ui_metadata
    assert download(client, run_id, f"{ui}/0/markdown.md", tmp_path).read_text().startswith("# Training report")
    assert download(client, run_id, f"{ui}/6/markdown.md", tmp_path).read_text() == "## Notes from a file"
    assert "<p>hello</p>" in download(client, run_id, f"{ui}/4/web-app.html", tmp_path).read_text()
    columns, rows = load_table(client, run_id, f"{ui}/1/confusion_matrix.json", tmp_path)
    assert (columns, rows) == (["target", "yummy", "not yummy"], [["yummy", 10, 2], ["not yummy", 6, 7]])
    columns, rows = load_table(client, run_id, f"{ui}/2/roc_curve.json", tmp_path)
    assert (columns, rows) == (["fpr", "tpr", "threshold"], [[0.0, 0.0, 1.0], [0.2, 0.7, 0.5], [1.0, 1.0, 0.0]])
    columns, rows = load_table(client, run_id, f"{ui}/3/table.json", tmp_path)
    assert (columns, rows) == (["model", "score"], [["baseline", "0.61"], ["boosted", "0.87"]])
    assert_png(download(client, run_id, f"{ui}/1/confusion_matrix.png", tmp_path))


def test_malformed_artifacts_only_warn(
    client: Any, run_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad_matrix = {
        "confusionMatrix": {"annotationSpecs": [{"displayName": "a"}, {"displayName": "b"}], "rows": [{"row": [1]}]},
        "confidenceMetrics": CLASSIFICATION_METADATA["confidenceMetrics"],  # fine: still logged
    }
    bad_ui = {"outputs": [{"type": "confusion_matrix", "format": "csv", "storage": "inline",
                           "source": "x,y,1\n", "labels": ["a", "b"], "schema": []},
                          {"type": "markdown", "storage": "inline", "source": "still here"}]}
    outputs = {
        "parameters": {"n": 1},
        "artifacts": {
            "cls": [artifact("cls", "system.ClassificationMetrics", metadata=bad_matrix)],
            "missing_report": [artifact("missing_report", "system.HTML", str(tmp_path / "does-not-exist"))],
            "mlpipeline_metrics": [artifact("mlpipeline_metrics", "system.Metrics", write(tmp_path / "m", "{not json"))],
            "mlpipeline_ui_metadata": [artifact("mlpipeline_ui_metadata", "system.Artifact", write(tmp_path / "u", bad_ui))],
            "sliced": [artifact("sliced", "system.SlicedClassificationMetrics", metadata={"evaluationSlices": 3})],
            "weird": ["not a descriptor"],
            "metrics": [artifact("metrics", "system.Metrics", metadata={"accuracy": 0.5, "note": "text", "flag": True})],
        },
    }
    with caplog.at_level(logging.WARNING, logger="airflow_kfx.tracking"):
        log_task_outputs(client, run_id, outputs, read_text)

    data = client.get_run(run_id).data
    assert data.metrics == {"accuracy": 0.5}  # non-numeric metadata is not a metric
    assert data.params == {"output.n": "1"}
    assert data.tags["kfx.artifact.cls"] == "/pipeline-root/train/cls"
    assert artifact_paths(client, run_id) == {
        "kfp/cls/roc_curve.json", "kfp/cls/roc_curve.png", "kfp/cls/roc_curve_kfp.json",
        "kfp/mlpipeline_ui_metadata/mlpipeline-ui-metadata.json", "kfp/mlpipeline_ui_metadata/1/markdown.md",
    }
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for expected in ("'cls'", "confusionMatrix", "missing_report", "'mlpipeline_metrics'", "outputs[0]",
                     "'sliced'", "'weird'"):
        assert expected in warnings


def test_mlflow_limits(client: Any, run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, int]] = []
    log_batch = client.log_batch

    def counting_log_batch(run_id: str, metrics=(), params=(), tags=(), **kwargs: Any) -> Any:
        calls.append({"metrics": len(metrics), "params": len(params), "tags": len(tags)})
        return log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(client, "log_batch", counting_log_batch)
    parameters: dict[str, Any] = {f"p{i}": i for i in range(150)}
    parameters["long"] = "x" * 7000
    parameters["weird name: with ✓ and /../ parts"] = "ok"
    parameters["k" * 300] = "long key"
    long_uri = "s3://bucket/" + "d/" * 5000
    outputs = {
        "parameters": parameters,
        "artifacts": {
            "many": [artifact("many", "system.Metrics", long_uri, {f"m{i:03d}": float(i) for i in range(250)})]
        },
    }
    log_task_outputs(client, run_id, outputs, read_text)

    data = client.get_run(run_id).data
    assert len(data.metrics) == 250 and data.metrics["m249"] == 249.0
    assert len([k for k in data.params if k.startswith("output.p")]) == 150
    long = data.params["output.long"]
    assert len(long) <= 6000 and long.startswith("xxx") and long.endswith("[truncated, 7000 chars]")
    assert data.params["output.weird name_ with _ and / parts"] == "ok"
    assert data.params[("output." + "k" * 300)[:250]] == "long key"
    tag = data.tags["kfx.artifact.many"]
    assert len(tag) <= 8000 and tag.startswith("s3://bucket/d/") and "truncated" in tag
    assert len(calls) >= 2
    for call in calls:
        assert call["params"] <= 100 and call["tags"] <= 100 and call["metrics"] <= 1000
        assert sum(call.values()) <= 1000


def test_a_changed_output_parameter_only_warns(
    client: Any, run_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    # MLflow params are immutable: a second logging with another value (a retried task
    # that returned something else) is refused for that param alone.
    client.log_param(run_id, "output.n", "1")
    outputs = {
        "parameters": {"n": 2, "other": "x"},
        "artifacts": {"m": [artifact("m", "system.Metrics", metadata={"a": 1.0})]},
    }
    with caplog.at_level(logging.WARNING, logger="airflow_kfx.tracking"):
        log_task_outputs(client, run_id, outputs, read_text)
    data = client.get_run(run_id).data
    assert data.params == {"output.n": "1", "output.other": "x"}
    assert data.metrics == {"a": 1.0}
    assert data.tags["kfx.artifact.m"] == "/pipeline-root/train/m"
    assert "'output.n'" in caplog.text


def test_mlflow_connection_errors_propagate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    unreachable = mlflow.MlflowClient(tracking_uri="http://127.0.0.1:9")  # nothing listens on the discard port
    outputs = {"parameters": {"n": 1}, "artifacts": {"m": [artifact("m", "system.Metrics", metadata={"a": 1.0})]}}
    with pytest.raises(mlflow.exceptions.MlflowException):
        log_task_outputs(unreachable, "0123456789abcdef", outputs, read_text)


def test_importing_the_module_loads_neither_mlflow_nor_matplotlib_nor_pandas() -> None:
    code = (
        "import sys, airflow_kfx.tracking.outputs\n"
        "heavy = [m for m in ('mlflow', 'matplotlib', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
