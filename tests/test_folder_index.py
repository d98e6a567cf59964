"""A task's process parses only its own pipeline: the DAG processor's full parse of the
drop-in records which file made which DAG, and Airflow's parsing context (set when a task
runs) names the DAG; a stale or tampered index only costs a full parse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from airflow_kfx import loading
from tests.support import FIXTURES

CONTEXT = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"  # what Airflow's task runner sets (get_parsing_context)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KFX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(CONTEXT, raising=False)
    pipelines = tmp_path / "pipelines"
    (pipelines / "team-a").mkdir(parents=True)
    for name in ("loops", "exit_handler", "typed_params"):
        shutil.copy(FIXTURES / f"{name}.yaml", pipelines)
    shutil.copy(FIXTURES / "loops.yaml", pipelines / "team-a")  # same pipeline name: renamed
    (pipelines / "broken.yaml").write_text("pipelineInfo: {name: broken}\nroot: [\n")
    return pipelines


def _loaded_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loaded: list[str] = []
    real = loading.load_pipeline

    def counting(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        loaded.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(loading, "load_pipeline", counting)
    return loaded


def test_a_task_process_loads_only_its_pipeline(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = loading.load_pipelines(folder)  # the DAG processor
    assert {"loops", "team_a_loops", "exit_handler", "typed_params"} <= set(full.dags) and full.errors
    loaded = _loaded_files(monkeypatch)
    monkeypatch.setenv(CONTEXT, "exit_handler")
    namespace: dict[str, object] = {}
    report = loading.load_pipelines(folder, namespace)
    assert set(namespace) == {"exit_handler"} and loaded == ["exit_handler.yaml"]
    assert not report.errors  # the broken file's error is not in this task's log
    monkeypatch.setenv(CONTEXT, "team_a_loops")  # a renamed one keeps its DAG id
    assert set(loading.load_pipelines(folder).dags) == {"team_a_loops"}


def test_a_stale_index_falls_back_to_a_full_parse(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loading.load_pipelines(folder)
    (folder / "exit_handler.yaml").write_text((FIXTURES / "loops.yaml").read_text().replace("name: loops", "name: x"))
    monkeypatch.setenv(CONTEXT, "exit_handler")
    report = loading.load_pipelines(folder)
    assert "loops" in report.dags and "exit_handler" not in report.dags  # everything parsed; no such DAG now
    monkeypatch.setenv(CONTEXT, "not_a_dag")
    assert "typed_params" in loading.load_pipelines(folder).dags


def test_an_index_naming_a_file_outside_the_folder_is_ignored(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    loading.load_pipelines(folder)
    (index,) = (tmp_path / "cache" / "specs").glob("folder-*.json")
    shutil.copy(FIXTURES / "loops.yaml", tmp_path / "outside.yaml")
    data = json.loads(index.read_text())
    data["dags"]["loops"]["file"] = "../outside.yaml"
    index.write_text(json.dumps(data))
    loaded = _loaded_files(monkeypatch)
    monkeypatch.setenv(CONTEXT, "loops")
    loading.load_pipelines(folder)
    assert "outside.yaml" not in loaded and "loops.yaml" in loaded
