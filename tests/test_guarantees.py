"""What airflow-kfx guarantees when a pipeline file, a trigger value or a task's own
outputs are hostile: the worker (which holds credentials) reads, writes and deletes
nothing outside its place, and no secret leaks. The README's "Guarantees" section
lists each guarantee with the test here that proves it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_kfx.confine import EscapeError, confined, is_within, safe_segment
from airflow_kfx.exceptions import TaskRuntimeError
from tests.runs import run_pipeline
from tests.support import FIXTURES

SECRET = "TOP-SECRET-4f1c2a"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def mlflow_texts(tracking_uri: str, experiment: str) -> str:
    """Every param, tag, metric name and logged file of an experiment's runs, as one text."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return ""
    texts = []
    for run in client.search_runs([found.experiment_id]):
        texts.append(json.dumps([run.data.params, run.data.tags, sorted(run.data.metrics)]))
        for entry in _artifact_files(client, run.info.run_id, ""):
            local = client.download_artifacts(run.info.run_id, entry)
            texts.append(Path(local).read_text(errors="replace"))
    return "\n".join(texts)


def _artifact_files(client: Any, run_id: str, path: str) -> list[str]:
    files = []
    for item in client.list_artifacts(run_id, path or None):
        files += _artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return files


# ---------------------------------------------------------------------------
# A task cannot make the worker read outside its place
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_task_lying_about_its_outputs_fails_and_nothing_outside_is_read(
    dags_folder: Path, secret_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An output artifact URI pointing at a file outside the run, and an output file that
    is a symbolic link out of the task's folder: both tasks fail, naming the escape, and
    the file's content reaches no XCom, no log and no MLflow run."""
    result = run_pipeline(FIXTURES / "lying_task.yaml", dags_folder, conf={"target": str(secret_file)})
    assert result.state_of("point-elsewhere") == "failed"
    assert result.state_of("link-out") == "failed"
    assert result.parameter("honest") == "still fine"
    log = capfd.readouterr().out
    assert f"output artifact 'model' at {str(secret_file)!r} is outside" in log
    assert "leads outside the task's folder" in log
    assert SECRET not in log
    assert SECRET not in json.dumps(list(result.results.values()), default=str)
    assert SECRET not in mlflow_texts(os.environ["MLFLOW_TRACKING_URI"], "lying-task")


def test_tracking_reads_no_ui_metadata_source_outside_the_root(tmp_path: Path, secret_file: Path) -> None:
    """A v1 ``mlpipeline-ui-metadata`` output whose markdown ``source`` is a file outside
    the pipeline root: the file is not read, nothing of it is logged."""
    from mlflow.tracking import MlflowClient

    from airflow_kfx.tracking.task import log_outputs

    root = tmp_path / "root"
    ui = root / "dag" / "run" / "task" / "0" / "mlpipeline_ui_metadata"
    ui.parent.mkdir(parents=True)
    ui.write_text(json.dumps({"outputs": [{"type": "markdown", "storage": "file", "source": str(secret_file)}]}))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = client.create_run(client.create_experiment("ui")).info.run_id
    outputs = {"artifacts": {"mlpipeline_ui_metadata": [
        {"name": "mlpipeline_ui_metadata", "uri": str(ui), "schemaTitle": "system.Artifact", "metadata": {}}
    ]}}
    log_outputs(client, run_id, outputs, str(root))
    assert SECRET not in mlflow_texts(f"sqlite:///{tmp_path}/mlflow.db", "ui")


def test_a_cache_entry_naming_files_outside_the_root_is_ignored(tmp_path: Path, secret_file: Path) -> None:
    """Cache entries live under the pipeline root, where tasks can write: a forged one
    pointing outside it is never used (its URIs are not even checked for existence)."""
    from airflow_kfx.runtime import cache

    root = tmp_path / "root"
    entry = root / cache.CACHE_FOLDER / "k.json"
    entry.parent.mkdir(parents=True)
    forged = {"parameters": {}, "artifacts": {"m": [{"uri": str(secret_file), "schemaTitle": "system.Model"}]}}
    entry.write_text(json.dumps(forged))
    assert cache.lookup(str(root), "k") is None
    inside = root / "dag" / "run" / "t" / "0" / "m"
    inside.parent.mkdir(parents=True)
    inside.write_text("model")
    entry.write_text(json.dumps({**forged, "artifacts": {"m": [{"uri": str(inside), "schemaTitle": "system.Model"}]}}))
    assert cache.lookup(str(root), "k") is not None


@pytest.mark.parametrize(("uri", "root", "inside"), [
    ("/r/dag/run/t/0/m", "/r/dag/run", True),
    ("/r/dag/run/../other/x", "/r/dag/run", False),
    ("/r/dag/runner/x", "/r/dag/run", False),
    ("file:///r/dag/run/x", "/r/dag/run", True),
    ("s3://b/root/dag/run/t/0/m", "s3://b/root/dag/run", True),
    ("s3://b/root/dag/run/../../x", "s3://b/root/dag/run", False),
    ("s3://other/root/dag/run/x", "s3://b/root/dag/run", False),
    ("gs://b/root/dag/run/x", "s3://b/root/dag/run", False),
    ("/etc/shadow", "s3://b/root", False),
    ("relative/path", "/r", False),
])
def test_confinement_by_whole_segments(uri: str, root: str, inside: bool) -> None:
    assert is_within(uri, root) is inside


def test_a_symbolic_link_inside_the_root_leading_out_is_outside(tmp_path: Path, secret_file: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(secret_file)
    assert not is_within(str(root / "link"), str(root))
    with pytest.raises(EscapeError, match="is outside"):
        confined(str(root / "link"), str(root), "output artifact 'x' at")


@pytest.mark.parametrize(("name", "safe"), [("..", "_.."), (".", "_."), ("", "_"), ("a/b", "a_b"), ("ok-1", "ok-1")])
def test_path_segments_from_pipelines_cannot_climb(name: str, safe: str) -> None:
    assert safe_segment(name) == safe


def test_a_task_path_of_dots_stays_in_the_run_folder() -> None:
    from airflow_kfx.runtime.invocation import RunIdentity, task_root

    identity = RunIdentity(dag_id="..", run_id="../../etc", task_id="t", kfp_task_name="..", kfp_path="../..")
    root = task_root("/r", identity)
    assert is_within(root, "/r") and ".." not in root.split("/")


@pytest.mark.parametrize("name", ["../../etc", "/etc", "a/../../b", "UPPER", "x" * 300, ""])
def test_claim_names_are_kubernetes_names_before_any_file_operation(name: str, tmp_path: Path) -> None:
    """DeletePVC/CreatePVC names can come from trigger values: the local runtime never
    creates or removes a folder for a name Kubernetes would refuse."""
    from airflow_kfx.runtime.local import LocalRuntime

    sentinel = tmp_path / "keep"
    sentinel.mkdir()
    with pytest.raises(TaskRuntimeError, match="not a valid PersistentVolumeClaim name"):
        LocalRuntime().delete_claim(name, settings=None, log=None)
    assert sentinel.is_dir()
