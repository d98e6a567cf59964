"""The ``kfx`` command as a user meets it: validate, render, and how ``-p`` values are typed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import FIXTURES, VALID, corpus_files, kfx_run

BASE = VALID / "critical" / "two_step_pipeline_containerized.yaml"

# (name, replace this, with this, expected fragment of the message, the line the message must
# name: that of the offending field in the edited file)
BROKEN = [
    ("unknown-component", "name: comp-component2\n        dependentTasks", "name: comp-nope\n        dependentTasks",
     "uses component 'comp-nope', which is not defined", 65),  # name: comp-nope
    ("unknown-dependency", "dependentTasks:\n        - component1", "dependentTasks:\n        - component9",
     "depends on 'component9', which is not a task of the same DAG", 66),  # dependentTasks:
    ("cycle", "        inputs:\n          parameters:\n            text:\n              componentInputParameter: text",
     "        dependentTasks:\n        - component2\n        inputs:\n          parameters:\n            text:\n              componentInputParameter: text",
     "cycle: component1 → component2 → component1", 55),  # component1's dependentTasks:
    ("wrong-output", "outputArtifactKey: output_gcs", "outputArtifactKey: output_xyz",
     "reads artifact 'output_xyz' of task 'component1', which has no such output", 72),  # outputArtifactKey: output_xyz
    ("missing-required-input", "            text:\n              componentInputParameter: text\n", "",
     "does not pass required parameter 'text'", 56),  # component1's inputs.parameters:
    ("constant-of-wrong-type", "componentInputParameter: text", "runtimeValue:\n                constant: [1, 2]",
     "expected STRING", 58),  # runtimeValue:
    ("unknown-pipeline-input", "componentInputParameter: text", "componentInputParameter: texx",
     "reads 'texx' from the enclosing DAG", 58),  # componentInputParameter: texx
    ("bad-cel", "        taskInfo:\n          name: component2", "        triggerPolicy:\n          condition: 'inputs.parameter_values[''x'''\n        taskInfo:\n          name: component2",
     "is not valid CEL", 75),  # condition: ...
    ("yaml-syntax", "  name: containerized-two-step-pipeline", "  name: [unclosed", "not valid YAML", 47),  # the line after the unclosed '[': where YAML noticed
    ("duplicate-key", "  name: containerized-two-step-pipeline", "  name: containerized-two-step-pipeline\n  name: other",
     "the key 'name' appears twice in one mapping (also at line 46)", 47),  # the second name:
    ("unknown-type", "parameterType: STRING\n  deploymentSpec", "parameterType: TEXT", "unknown parameter type 'TEXT'", 11),  # parameterType: TEXT
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
        assert text.startswith(f"{path}:{line}: "), (name, line, text)
        assert fragment in text, (name, text)
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


# -p values are typed by airflow_kfx.values, as a run's conf is (kfx-run-start)
RENDERED_P = [
    # (fixture, -p values, {task: {input: (pipeline parameter, value in the rendered ExecutorInput)}})
    ("pipelines/typed_params.yaml",
     ["name=n", "count= 41 ", "flag=1", "ratio=1e3", 'items=["10", "20"]', 'config={"b": 1.0}'],
     {"next-int": {"n": ("count", 41)}, "negate": {"b": ("flag", True)},
      "next-float": {"x": ("ratio", 1000)},  # protojson writes 1000.0 as 1000
      "extend-list": {"items": ("items", [10, 20])}, "add-key": {"config": ("config", {"b": 1})}}),
    ("values/typed_lists.yaml", ['nums=[" 7", 8.0]', 'ratios=["0.5"]', 'values=["1", "x"]'],
     {"describe-lists": {"nums": ("nums", [7, 8]), "ratios": ("ratios", [0.5]), "values": ("values", ["1", "x"])}}),
]


@pytest.mark.parametrize("fixture, raw, expected", RENDERED_P, ids=[c[0] for c in RENDERED_P])
def test_render_types_p_values_as_a_run_does(
    fixture: str, raw: list[str], expected: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    from airflow_kfx.params import run_parameter
    from airflow_kfx.spec.loader import load_pipeline_file
    from airflow_kfx.values import parse_text

    path = FIXTURES.parent / fixture
    result = kfx("render", str(path), *(a for p in raw for a in ("-p", p)), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    pipeline = load_pipeline_file(path)
    texts = dict(p.split("=", 1) for p in raw)
    for task, inputs in expected.items():
        [pod] = tmp_path.glob(f"*/{task}.yaml")
        args = yaml.safe_load(pod.read_text())["spec"]["containers"][0]["args"]
        delivered = json.loads(args[args.index("--executor_input") + 1])["inputs"]["parameterValues"]
        for name, (param, value) in inputs.items():
            spec = pipeline.root.inputs.parameters[param]
            # the very rules kfx-run-start applies to a run's conf
            typed = run_parameter(pipeline, param, parse_text(texts[param], spec.type), given=True)
            assert delivered[name] == value == typed, (task, name)


@pytest.mark.parametrize("fixture, raw, message", [
    ("pipelines/typed_params.yaml", ["name=n", "count=1e3"],
     "-p count: '1e3' is not a valid NUMBER_INTEGER: expected a whole number, or its text like '42'"),
    ("pipelines/typed_params.yaml", ["name=n", "flag=yes"], "-p flag: 'yes' is not a valid BOOLEAN: expected true or false"),
    ("pipelines/typed_params.yaml", ["name=n", "items={}"], "-p items: '{}' is not a valid LIST: expected a list"),
    ("values/typed_lists.yaml", ['nums=["1", "x"]'], "is not a valid LIST: item 1: expected a whole number"),
])
def test_kfx_run_refuses_a_p_value_as_a_run_refuses_it(fixture: str, raw: list[str], message: str, tmp_path: Path) -> None:
    code, output, summary = kfx_run(tmp_path, str(FIXTURES.parent / fixture), *(a for p in raw for a in ("-p", p)))
    assert code == 1 and summary is None
    assert message in output and "Traceback" not in output


def test_two_files_of_one_pipeline_name_are_a_warning_naming_the_dag_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not silent: validate and the DAG folder both say which DAG id each file got."""
    import shutil

    from airflow_kfx.loading import load_pipelines

    (tmp_path / "team-a").mkdir()
    shutil.copy(FIXTURES / "loops.yaml", tmp_path / "loops.yaml")
    shutil.copy(FIXTURES / "loops.yaml", tmp_path / "team-a" / "loops.yaml")
    result = kfx("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (f"{tmp_path}/team-a/loops.yaml: warning: its DAG id 'loops' is {tmp_path}/loops.yaml's; "
            "in a DAG folder it becomes DAG 'team_a_loops'") in result.stdout
    from airflow_kfx import loading

    warnings: list[str] = []
    monkeypatch.setattr(loading.log, "warning", lambda message, *args: warnings.append(message % args))
    report = load_pipelines(tmp_path)
    assert set(report.dags) == {"loops", "team_a_loops"}
    assert report.renamed == {str(tmp_path / "team-a" / "loops.yaml"): "team_a_loops"}
    assert len(warnings) == 1 and "DAG id 'loops' is taken by another file" in warnings[0], warnings
    assert "this pipeline is DAG 'team_a_loops'" in warnings[0]
