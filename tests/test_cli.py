"""The ``kfx`` command as a user meets it: validate and render."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import FIXTURES, VALID, corpus_files

BASE = VALID / "critical" / "two_step_pipeline_containerized.yaml"

# (name, replace this, with this, expected fragment of the message, expected line)
BROKEN = [
    ("unknown-component", "name: comp-component2\n        dependentTasks", "name: comp-nope\n        dependentTasks",
     "uses component 'comp-nope', which is not defined", 60),
    ("unknown-dependency", "dependentTasks:\n        - component1", "dependentTasks:\n        - component9",
     "depends on 'component9', which is not a task of the same DAG", 60),
    ("cycle", "        inputs:\n          parameters:\n            text:\n              componentInputParameter: text",
     "        dependentTasks:\n        - component2\n        inputs:\n          parameters:\n            text:\n              componentInputParameter: text",
     "cycle: component1 → component2 → component1", None),
    ("wrong-output", "outputArtifactKey: output_gcs", "outputArtifactKey: output_xyz",
     "reads artifact 'output_xyz' of task 'component1', which has no such output", 60),
    ("missing-required-input", "            text:\n              componentInputParameter: text\n", "",
     "does not pass required parameter 'text'", 50),
    ("constant-of-wrong-type", "componentInputParameter: text", "runtimeValue:\n                constant: [1, 2]",
     "expected STRING", 50),
    ("unknown-pipeline-input", "componentInputParameter: text", "componentInputParameter: texx",
     "reads 'texx' from the enclosing DAG", 50),
    ("bad-cel", "        taskInfo:\n          name: component2", "        triggerPolicy:\n          condition: 'inputs.parameter_values[''x'''\n        taskInfo:\n          name: component2",
     "is not valid CEL", 60),
    ("yaml-syntax", "  name: containerized-two-step-pipeline", "  name: [unclosed", "not valid YAML", None),
    ("unknown-type", "parameterType: STRING\n  deploymentSpec", "parameterType: TEXT", "unknown parameter type 'TEXT'", None),
]


def kfx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_kfx.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    base = BASE.read_text()
    files = {}
    for name, old, new, _, _ in BROKEN:
        if old not in base and name != "unknown-type":
            raise AssertionError(f"fixture edit {name} does not apply")
        text = base.replace(old, new, 1) if name != "unknown-type" else base.replace(
            "parameterType: STRING", "parameterType: TEXT", 1)
        path = folder / f"{name}.yaml"
        path.write_text(text)
        files[name] = path
    return files


def test_each_broken_file_gives_one_clear_line(broken_files: dict[str, Path]) -> None:
    result = kfx("validate", *map(str, broken_files.values()))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(BROKEN), result.stderr
    for (name, _, _, fragment, line), text in zip(BROKEN, lines):
        path = str(broken_files[name])
        assert text.startswith(path), text
        assert fragment in text, (name, text)
        if line is not None:
            assert text.startswith(f"{path}:"), text
        # every message names where in the YAML, or the line, so it can be fixed
        assert " (at " in text or text.split(":")[1].strip().isdigit(), text
    assert f"checked {len(BROKEN)} file(s): {len(BROKEN)} problem(s)" in result.stdout


def test_corpus_negative_tests_one_line_each_exit_1() -> None:
    invalid = corpus_files("invalid (negative test)")
    result = kfx("validate", *map(str, invalid))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4
    messages = "\n".join(lines)
    assert "the file is empty" in messages
    assert "unknown top-level field 'components_1'" in messages
    assert "the pipeline has no name" in messages


def test_a_folder_with_good_and_bad_files_reports_only_the_bad(broken_files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(BASE.read_text())
    (tmp_path / "bad.yaml").write_text(broken_files["cycle"].read_text())
    result = kfx("validate", str(tmp_path))
    assert result.returncode == 1
    assert "bad.yaml" in result.stderr and "good.yaml" not in result.stderr
    assert "checked 2 file(s): 1 problem(s)" in result.stdout


def test_validate_succeeds_on_the_fixtures() -> None:
    result = kfx("validate", str(FIXTURES))
    assert result.returncode == 0, result.stderr
    assert "0 problem(s)" in result.stdout


def test_render_writes_one_pod_per_task_with_typed_params(tmp_path: Path) -> None:
    result = kfx("render", str(FIXTURES / "placeholders.yaml"), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "placeholders").glob("*.yaml"))
    assert "format-args.yaml" in written and "read-artifact.yaml" in written
    pod = yaml.safe_load((tmp_path / "placeholders" / "read-artifact.yaml").read_text())
    assert pod["kind"] == "Pod"
    args = pod["spec"]["containers"][0]["args"]
    # the upstream artifact's location is known except for the run id
    assert any("/<run_id>/write-artifact/0/data" in a for a in args), args


def test_render_rejects_a_badly_typed_param(tmp_path: Path) -> None:
    result = kfx("render", str(FIXTURES / "typed_params.yaml"), "-p", "count=three", "-o", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "-p count: 'three' is not a valid NUMBER_INTEGER" in result.stderr


def test_render_rejects_an_unknown_param(tmp_path: Path) -> None:
    result = kfx("render", str(FIXTURES / "typed_params.yaml"), "-p", "nope=1", "-o", str(tmp_path))
    assert result.returncode == 1
    assert "has no parameter 'nope'" in result.stderr
