"""The training example tracked in MLflow, checked in the MLflow UI with a real browser.

Runs dags/pipelines/training.yaml (scikit-learn's bundled breast-cancer data)
against a real ``mlflow server``, asserts the metrics MLflow holds are the ones
the component computed, and takes screenshots of the MLflow UI with Playwright
driving Debian's Chromium. Screenshots land in ``test-output/`` (README: "MLflow UI").
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mlflow_server import MlflowServer
from tests.runs import RunResult, run_pipeline
from tests.support import REPO

pytestmark = pytest.mark.slow

TRAINING = REPO / "dags" / "pipelines" / "training.yaml"
OUTPUT = REPO / "test-output"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, dags_folder: Path) -> Iterator[tuple[MlflowServer, RunResult]]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-ui"))
    server.start()
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", f'{{"conn_type": "mlflow", "host": "{server.url}"}}')
    try:
        run = run_pipeline(TRAINING, dags_folder)
        yield server, run
    finally:
        patch.undo()
        server.stop()


def _runs(server: MlflowServer, run: RunResult) -> tuple[Any, dict[str, Any]]:
    client = server.client()
    experiment = client.get_experiment_by_name("training")
    found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`kfx.run_id` = '{run.run_id}'")
    parent = next(r for r in found if r.data.tags.get("kfx.kind") == "pipeline-run")
    tasks = {r.data.tags["kfx.task_id"]: r for r in found if r.data.tags.get("kfx.kind") == "task"}
    return parent, tasks


def test_training_metrics_in_mlflow_are_the_ones_the_component_computed(trained: tuple[MlflowServer, RunResult]) -> None:
    server, run = trained
    assert run.state == "success"
    parent, tasks = _runs(server, run)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["n_estimators"] == "50" and parent.data.params["test_size"] == "0.25"
    evaluate = tasks["evaluate-model"]
    outputs = run.results[("evaluate-model", -1)]
    computed = next(
        refs[0]["metadata"] for refs in outputs["artifacts"].values() if refs[0]["schemaTitle"] == "system.Metrics"
    )
    numbers = {k: v for k, v in computed.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numbers and evaluate.data.metrics == pytest.approx(numbers)
    # the component logs accuracy rounded to 3 digits and returns it unrounded
    assert evaluate.data.metrics["accuracy"] == pytest.approx(run.parameter("evaluate-model"), abs=1e-3)
    artifacts = {a.path for a in server.client().list_artifacts(evaluate.info.run_id, "kfp")}
    listed = {f.path for folder in artifacts for f in server.client().list_artifacts(evaluate.info.run_id, folder)}
    assert any(path.endswith("confusion_matrix.png") for path in listed), listed
    assert any(path.endswith("confusion_matrix.json") for path in listed), listed
    assert any(path.endswith(".md") for path in listed), listed


def test_mlflow_ui_shows_the_pipeline_run_with_its_task_runs(trained: tuple[MlflowServer, RunResult]) -> None:
    from playwright.sync_api import sync_playwright

    server, run = trained
    parent, tasks = _runs(server, run)
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{server.url}/#/experiments/{parent.info.experiment_id}/runs", wait_until="load")
        page.get_by_text(run.run_id).first.wait_for(timeout=90_000)
        for close in page.locator("button[aria-label='Close']").all():  # the assistant side panel
            if close.is_visible():
                close.click()
        # expand the pipeline run: its nested task runs appear under it
        page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
        page.get_by_text("evaluate-model").first.wait_for(timeout=60_000)
        page.screenshot(path=str(OUTPUT / "mlflow-experiment.png"), full_page=True)
        assert page.get_by_text("train-model").count() >= 1
        evaluate = tasks["evaluate-model"]
        page.goto(f"{server.url}/#/experiments/{parent.info.experiment_id}/runs/{evaluate.info.run_id}", wait_until="load")
        page.get_by_text("accuracy").first.wait_for(timeout=90_000)
        page.screenshot(path=str(OUTPUT / "mlflow-evaluate-run.png"), full_page=True)
        browser.close()
    assert (OUTPUT / "mlflow-experiment.png").stat().st_size > 10_000
