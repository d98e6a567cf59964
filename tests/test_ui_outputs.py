"""The run-outputs view's content and the upload page's file handling, without a server:
what a task's stored outputs become (tables, charts, documents), that user data never
becomes markup or script, that nothing outside the pipeline root is read, and that an
upload is validated before it is written and then written whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_kfx.ui import pages
from airflow_kfx.ui.outputs import (
    ConfusionMatrix,
    Html,
    Markdown,
    Metrics,
    Problem,
    RocCurve,
    Table,
    task_view,
)
from airflow_kfx.ui.store import confined_reader
from airflow_kfx.ui.upload import UploadError, store, suffix_of, validate, writable_folder
from tests.support import FIXTURES

CONFUSION = {"annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
             "rows": [{"row": [5, 1]}, {"row": [2, 7]}]}
ROC = [{"confidenceThreshold": 0.9, "falsePositiveRate": 0.0, "recall": 0.5},
       {"confidenceThreshold": 0.1, "falsePositiveRate": 0.5, "recall": 1.0}]


def _artifact(name: str, title: str, uri: str, metadata: dict | None = None) -> dict:
    return {"name": name, "uri": uri, "schemaTitle": title, "schemaVersion": "0.0.1", "metadata": metadata or {}}


def _view(root: Path, artifacts: dict, parameters: dict | None = None):
    read_text, readable = confined_reader(str(root))
    outputs = {"parameters": parameters or {}, "artifacts": {k: [v] for k, v in artifacts.items()}}
    return task_view("evaluate", -1, "success", outputs, read_text=read_text, readable=readable)


def test_v2_outputs_become_kfp_run_page_panels(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "page.html").write_text("<p>hi</p>")
    view = _view(tmp_path, {
        "metrics": _artifact("metrics", "system.Metrics", str(tmp_path / "m"), {"accuracy": 0.95, "note": "x"}),
        "confusion": _artifact("confusion", "system.ClassificationMetrics", str(tmp_path / "c"),
                               {"confusionMatrix": CONFUSION, "confidenceMetrics": ROC}),
        "report": _artifact("report", "system.Markdown", str(tmp_path / "report.md")),
        "page": _artifact("page", "system.HTML", str(tmp_path / "page.html")),
    }, parameters={"Output": 0.95})
    panels = {a.name: a.panels for a in view.artifacts}
    assert panels["metrics"] == (Metrics((("accuracy", 0.95),)),)  # non-numbers are not metrics
    assert panels["confusion"][0] == ConfusionMatrix(("cat", "dog"), ((5.0, 1.0), (2.0, 7.0)))
    assert isinstance(panels["confusion"][1], RocCurve) and panels["confusion"][1].tpr == (0.5, 1.0)
    assert panels["report"] == (Markdown((tmp_path / "report.md").read_text()),)
    assert panels["page"] == (Html(uri=str(tmp_path / "page.html")),)
    assert view.parameters == (("Output", 0.95),)

    html = pages.run_page("training", "r1", "success", [view], base="/kfx")
    assert "<td>accuracy</td><td>0.95</td>" in html
    assert html.count("<svg class=\"kfx-confusion\"") == 1 and "<svg class=\"kfx-roc\"" in html
    assert ">7</text>" in html  # the dog/dog cell
    assert "<h1>Report</h1>" in html and "<td>1</td>" in html  # Markdown rendered, with its table
    assert "<iframe class='kfx-html' sandbox" in html and "/kfx/runs/training/r1/artifact?uri=" in html


def test_nothing_outside_the_pipeline_root_is_read_or_linked(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret.md"
    root.mkdir()
    outside.write_text("the worker's secrets")
    (root / "link.md").symlink_to(outside)
    view = _view(root, {
        "stolen": _artifact("stolen", "system.Markdown", str(outside)),
        "linked": _artifact("linked", "system.Markdown", str(root / "link.md")),
        "etc": _artifact("etc", "system.HTML", "/etc/passwd"),
    })
    for artifact in view.artifacts:
        assert not artifact.readable and artifact.panels == (), artifact
    html = pages.run_page("d", "r", "success", [view], base="/kfx")
    assert "secrets" not in html and "artifact?uri=" not in html


def test_v1_ui_metadata_viewers_are_drawn_and_a_bad_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "cm.csv").write_text("cat,cat,5\ncat,dog,1\ndog,cat,2\ndog,dog,7\n")
    (tmp_path / "roc.csv").write_text("0.0,0.5,0.9\n0.5,1.0,0.1\n")
    document = {"outputs": [
        {"type": "table", "format": "csv", "header": ["a", "b"], "storage": "inline", "source": "1,2\n3,4"},
        {"type": "markdown", "storage": "inline", "source": "**bold** <script>alert(1)</script>"},
        {"type": "confusion_matrix", "format": "csv", "labels": ["cat", "dog"], "source": str(tmp_path / "cm.csv"),
         "schema": [{"name": "target"}, {"name": "predicted"}, {"name": "count"}]},
        {"type": "roc", "format": "csv", "source": str(tmp_path / "roc.csv"),
         "schema": [{"name": "fpr"}, {"name": "tpr"}, {"name": "thresholds"}]},
        {"type": "web-app", "storage": "inline", "source": "<b>app</b>"},
        {"type": "markdown", "source": "/etc/hostname"},
    ]}
    (tmp_path / "ui.json").write_text(json.dumps(document))
    view = _view(tmp_path, {"mlpipeline-ui-metadata": _artifact("mlpipeline-ui-metadata", "system.Artifact",
                                                               str(tmp_path / "ui.json"))})
    table, markdown, confusion, roc, webapp, refused = view.artifacts[0].panels
    assert table == Table(("a", "b"), (("1", "2"), ("3", "4")))
    assert confusion == ConfusionMatrix(("cat", "dog"), ((5.0, 1.0), (2.0, 7.0)), ("target", "predicted"))
    assert roc == RocCurve((0.0, 0.5), (0.5, 1.0), (0.9, 0.1))
    assert webapp == Html(text="<b>app</b>")
    assert isinstance(refused, Problem) and "outside" in refused.message
    html = pages.run_page("d", "r", "success", [view], base="/kfx")
    assert "<strong>bold</strong>" in html and "<script>" not in html  # raw HTML in Markdown stays text
    assert "srcdoc='&lt;b&gt;app&lt;/b&gt;'" in html  # the web app only inside a sandboxed frame


def test_user_text_never_becomes_markup(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    (tmp_path / "r.md").write_text(f"[click](javascript:alert(1)) {evil}")
    read_text, readable = confined_reader(str(tmp_path))
    view = task_view(evil, -1, "success", {"parameters": {evil: evil}, "artifacts": {evil: [
        _artifact(evil, "system.ClassificationMetrics", str(tmp_path / "c"),
                  {"confusionMatrix": {**CONFUSION, "annotationSpecs": [{"displayName": evil}, {"displayName": "b"}]}}),
        _artifact("r", "system.Markdown", str(tmp_path / "r.md"))]}},
        read_text=read_text, readable=readable, mlflow_url="javascript:alert(1)")
    html = pages.run_page(evil, evil, "success", [view], base="/kfx")
    assert "<img" not in html
    assert "href='javascript" not in html and 'href="javascript' not in html  # the MLflow link and Markdown's
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 4


def test_a_malformed_confusion_matrix_is_a_message_not_an_error_page(tmp_path: Path) -> None:
    view = _view(tmp_path, {"c": _artifact("c", "system.ClassificationMetrics", str(tmp_path / "c"),
                                           {"confusionMatrix": {"annotationSpecs": [{"displayName": "a"}], "rows": []}})})
    (problem,) = view.artifacts[0].panels
    assert isinstance(problem, Problem) and "confusion matrix is not 1x1" in problem.message


# ---- upload -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x.yaml", "a/b.yaml", ".hidden.yaml", "x..yaml", "a\\b.yaml", "x.yaml\x00.py",
                                  "x.py", ""])
def test_upload_names_with_path_tricks_or_no_pipeline_suffix_are_refused(name: str) -> None:
    with pytest.raises(UploadError) as caught:
        suffix_of(name)
    assert caught.value.status == 400


def test_a_broken_upload_gets_kfx_validates_message_under_its_own_name() -> None:
    error, dag_id = validate("mine.yaml", b"pipelineSpec: [unclosed")
    assert dag_id is None and error is not None and error.startswith("mine.yaml") and "kfx-upload" not in error
    error, dag_id = validate("conditions.yaml", (FIXTURES / "conditions.yaml").read_bytes())
    assert error is None and dag_id == "conditions", error


def test_an_upload_lands_whole_and_replaces_its_earlier_version(tmp_path: Path) -> None:
    (tmp_path / "conditions.json").write_text("{}")  # an earlier version, uploaded as JSON
    first = store(tmp_path, "conditions", "x.yaml", b"v1")
    assert first.path == tmp_path / "conditions.yaml" and first.replaced == (tmp_path / "conditions.json",)
    second = store(tmp_path, "conditions", "y.yaml", b"v2")
    assert second.replaced == (tmp_path / "conditions.yaml",)
    assert sorted(os.listdir(tmp_path)) == ["conditions.yaml"]  # no temporary file left behind
    assert (tmp_path / "conditions.yaml").read_bytes() == b"v2"


def test_uploads_into_a_read_only_or_unset_folder_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    with pytest.raises(UploadError, match="upload_folder") as unset:
        writable_folder("")
    assert unset.value.status == 503
    (tmp_path / "conditions.yaml").write_bytes(b"v1")

    def read_only(*args: object, **kwargs: object) -> None:  # what a read-only mount answers (root too)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(UploadError, match="read-only just now; nothing was changed") as refused:
        store(tmp_path, "conditions", "c.yaml", b"v2")
    assert refused.value.status == 409
    assert (tmp_path / "conditions.yaml").read_bytes() == b"v1" and os.listdir(tmp_path) == ["conditions.yaml"]
