"""KFP backend conformance: KFP's own backend test pipelines, run with ``kfx run --json``.

Every pipeline of ``test_data/sdk_compiled_pipelines/valid/{critical,essential,failing}``
runs once, as a user runs it: ``kfx run PATH [-p ...] --json FILE`` in a subprocess, on
the embedded Airflow home and the ``local`` runtime. ``tests/conformance.py`` holds what
each run must produce (the expectations are data); this module only runs and compares.

All runs share one ``KFX_HOME`` (SQLite database, artifacts, logs): a temporary folder
per module, or ``$KFX_TEST_HOME`` to keep it. Component virtualenvs go to
``$KFX_VENV_DIR`` (conftest.py: ``$TMPDIR/kfx-test-venvs``, shared across sessions).
Runs use ``--no-cache`` unless the case is about caching, so every task really runs and
prints what the log checks look for.

By default only the CI subset runs (``CI_SUBSET`` in tests/conformance.py, plus every case
with a known bug), and on the kubernetes runtimes the shorter ``KUBERNETES_CI_SUBSET`` and
``DEFERRABLE_CI_SUBSET``. ``make conformance`` runs the whole table (~20-30 minutes on 2
shared cores). tests/CONFORMANCE.md has the results table and timings.

MLflow tracking is off for these runs (``[kfx] tracking = false``): what they check is
KFP's semantics, which tracking cannot change (a tracking error never fails a task,
tests/test_tracking.py), and it costs ~3 s of a run's ~10 (bench/RESULTS.md); the MLflow
mapping has its own tests (test_tracking, test_mlflow_ui, test_v1_samples, test_runs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import BY_ID, CASES, DEFERRABLE_CI_SUBSET, KUBERNETES_CI_SUBSET, Artifact, Case
from tests.kube.fixtures import KubeDouble, kube_double
from tests.support import CORPUS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.conformance,
    pytest.mark.skipif(not CORPUS.is_dir(), reason="KFP corpus not available"),
]

RUN_TIMEOUT = 900  # seconds; the slowest pipeline (iris: pandas + scikit-learn venv) takes ~75 s

# Exceptions a task may legitimately end with: the task's own failure (its command failed,
# or it needs what the runtime cannot give) and the run-status task failing the run.
ALLOWED_TASK_ERRORS = (
    "airflow_kfx.exceptions.TaskRuntimeError:",
    "airflow.sdk.exceptions.AirflowFailException:",
    "airflow.sdk.exceptions.AirflowSkipException:",
    # the kubernetes runtime: the provider reports a failed pod (its termination message follows)
    "airflow.sdk.exceptions.AirflowException: Pod ",
)

# local: pods' commands as subprocesses; kubernetes: the KubernetesPodOperator against the
# Kubernetes API double (tests/kube), sync and deferrable (the provider's trigger watches pods).
RUNTIMES = ("local", "kubernetes", "kubernetes-deferrable")


@dataclass
class Outcome:
    returncode: int
    output: str  # kfx's own stdout + stderr
    summary: dict[str, Any] | None  # the --json file
    log: str  # the Airflow log of the run ($KFX_HOME/logs/<dag>-<time>.log)
    log_path: Path | None


@pytest.fixture(scope="module")
def kfx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("KFX_TEST_HOME")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    return tmp_path_factory.mktemp("kfx-conformance-home")


def kfx_environment(home: Path, runtime: str, kube: KubeDouble | None) -> dict[str, str]:
    """The user's environment, minus the Airflow settings this test session set for itself;
    for the kubernetes runtimes, ``kubernetes_default`` and KUBECONFIG point at the double."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["KFX_HOME"] = str(home)
    env["AIRFLOW__KFX__TRACKING"] = "false"  # see the module doc
    if kube is not None:
        env.update(kube.airflow_environment())
    if runtime == "kubernetes-deferrable":
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "True"
    return env


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    """The Kubernetes API double, with the secrets KFP's backend tests create (what
    critical/pipeline_with_secret_as_env's component asserts it receives)."""
    from kubernetes.client import V1ObjectMeta, V1Secret

    secrets = {"test-secret-1": {"username": "user1"}, "test-secret-2": {"password": "psw1"},
               "test-secret-3": {"password": "psw2"}}
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        api = double.api()
        for name, data in secrets.items():
            api.create_namespaced_secret("default", V1Secret(metadata=V1ObjectMeta(name=name), string_data=data))
        yield double


def run_kfx(case: Case, home: Path, workdir: Path, runtime: str = "local", kube: KubeDouble | None = None) -> Outcome:
    logs = home / "logs"
    before = set(logs.glob("*.log")) if logs.is_dir() else set()
    summary_file = workdir / "summary.json"
    command = [sys.executable, "-m", "airflow_kfx.cli", "run", str(CORPUS / case.file),
               "--runtime", "local" if runtime == "local" else "kubernetes"]
    for param in case.params:
        command += ["-p", param]
    if not case.cache:
        command.append("--no-cache")
    command += ["--json", str(summary_file)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=kfx_environment(home, runtime, kube), cwd=workdir,
        timeout=RUN_TIMEOUT,
    )
    after = set(logs.glob("*.log")) if logs.is_dir() else set()
    new_logs = sorted(after - before, key=lambda p: p.stat().st_mtime)
    log_path = new_logs[-1] if new_logs else None
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    return Outcome(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        summary=summary,
        log=log_path.read_text(errors="replace") if log_path else "",
        log_path=log_path,
    )


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def internal_errors(log: str) -> list[str]:
    """Python tracebacks through airflow_kfx code that end in anything but a task failure.

    The components' own output is logged line by line behind a timestamp, so only
    tracebacks Airflow or kfx print start a line with ``Traceback``.
    """
    found: list[str] = []
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Traceback (most recent call last):"):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
            j += 1
        frames = "\n".join(lines[i:j])
        error = lines[j] if j < len(lines) else "<truncated traceback>"
        if "airflow_kfx" in frames and not error.startswith(ALLOWED_TASK_ERRORS):
            found.append(f"{error}\n{frames[-1500:]}")
        i = j + 1
    return found


def task_entry(summary: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    tasks = summary["tasks"]
    assert path in tasks, f"task '{path}' is not in the summary (tasks: {sorted(tasks)})"
    return tasks[path]


def output_of(instance: Mapping[str, Any], name: str) -> tuple[str, Any]:
    """("parameter" | "artifact", value) of one output of one task instance."""
    outputs = instance.get("outputs") or {}
    if name in (outputs.get("parameters") or {}):
        return "parameter", outputs["parameters"][name]
    if name in (outputs.get("artifacts") or {}):
        return "artifact", outputs["artifacts"][name]
    shown = json.dumps(outputs)[:500]
    raise AssertionError(f"no output '{name}' (state {instance.get('state')}, outputs {shown})")


def artifact_text(reference: Any) -> str:
    if isinstance(reference, list):
        assert len(reference) == 1, f"expected one artifact, got {reference}"
        reference = reference[0]
    uri = str(reference["uri"]).removeprefix("file://")
    assert "://" not in uri, f"artifact {uri} is not on this machine"
    return Path(uri).read_text(errors="replace")


def compare(where: str, expected: Any, actual: Any) -> None:
    if isinstance(expected, Artifact):
        assert isinstance(actual, (Mapping, list)), f"{where}: expected an artifact, got {actual!r}"
        reference = actual[0] if isinstance(actual, list) and len(actual) == 1 else actual
        if expected.text is not None:
            text = artifact_text(reference)
            assert text == expected.text, f"{where}: artifact text {text[:300]!r} != {expected.text!r}"
        metadata = reference.get("metadata") or {}
        for key, value in expected.metadata.items():
            assert key in metadata, f"{where}: artifact metadata has no '{key}' ({metadata})"
            assert value == metadata[key], f"{where}: metadata['{key}'] = {metadata[key]!r}, not {value!r}"
        return
    assert expected == actual, f"{where}: {actual!r}, expected {expected!r}"


def check_outputs(case: Case, summary: Mapping[str, Any]) -> None:
    for name, expected in case.outputs.items():
        outputs = summary["outputs"]
        actual = outputs["parameters"].get(name, outputs["artifacts"].get(name, "<missing>"))
        compare(f"pipeline output '{name}'", expected, actual)
    for path, expected_outputs in case.tasks.items():
        entry = task_entry(summary, path)
        for name, expected in expected_outputs.items():
            where = f"task '{path}' output '{name}'"
            if "iterations" in entry:
                assert isinstance(expected, list), f"{where}: '{path}' is in a loop, expect a list"
                iterations = entry["iterations"]
                assert len(iterations) == len(expected), (
                    f"{where}: {len(iterations)} iteration(s), expected {len(expected)}")
                for index, (instance, value) in enumerate(zip(iterations, expected)):
                    compare(f"{where} [{index}]", value, output_of(instance, name)[1])
            else:
                compare(where, expected, output_of(entry, name)[1])


def check_case(case: Case, outcome: Outcome) -> None:
    crashed = "Traceback (most recent call last)" in outcome.output
    assert not crashed, f"kfx run crashed:\n{outcome.output[-3000:]}"
    assert outcome.summary is not None, f"kfx run wrote no --json summary:\n{outcome.output[-3000:]}"
    summary = outcome.summary
    succeeded = case.expected == "success"
    states = {path: task.get("state") for path, task in summary["tasks"].items()}
    context = f"(log {outcome.log_path}; task states {states})"
    expected_state = "success" if succeeded else "failed"
    assert summary["state"] == expected_state, f"run state {summary['state']} {context}"
    assert (outcome.returncode == 0) == succeeded, f"kfx run exit code {outcome.returncode} {context}"
    problems = internal_errors(outcome.log)
    assert not problems, "airflow-kfx internal error(s) in the run log:\n" + "\n\n".join(problems)
    for path, state in case.states.items():
        actual = task_entry(summary, path)["state"]
        assert actual == state, f"task '{path}': {actual}, expected {state} {context}"
    for path in case.exit_tasks:
        actual = task_entry(summary, path)["state"]
        assert actual == "success", f"exit task '{path}' did not run: {actual} {context}"
    if case.need:
        evidence = case.evidence or case.need
        if case.named_by == "component":
            assert evidence in outcome.log, f"the run log does not show the need: {evidence!r} {context}"
        else:
            errors = [line for line in outcome.log.splitlines() if line.startswith(ALLOWED_TASK_ERRORS[0])]
            assert any(evidence in line for line in errors), (
                f"no airflow-kfx task error names the need {evidence!r}; task errors: {errors} {context}")
    check_outputs(case, summary)
    for text in case.log:
        assert text in outcome.log, f"the run log lacks {text!r} {context}"
    if case.check is not None:
        case.check(summary)


def _param(case: Case, runtime: str) -> Any:
    marks = []
    if case.bug:
        marks.append(pytest.mark.xfail(strict=True, reason=case.bug))
    subset = {"kubernetes": KUBERNETES_CI_SUBSET, "kubernetes-deferrable": DEFERRABLE_CI_SUBSET}.get(runtime)
    if not case.ci or (subset is not None and case.id not in subset):
        # deselected by default (pyproject addopts), not skipped: `make conformance` runs them
        marks.append(pytest.mark.conformance_full)
    return pytest.param(case.on(runtime), runtime, id=f"{case.id}-{runtime}", marks=marks)


@pytest.mark.parametrize(("case", "runtime"), [_param(case, runtime) for runtime in RUNTIMES for case in CASES])
def test_kfp_backend_pipeline(case: Case, runtime: str, kfx_home: Path, tmp_path: Path,
                              request: pytest.FixtureRequest) -> None:
    kube = request.getfixturevalue("kube") if runtime.startswith("kubernetes") else None
    check_case(case, run_kfx(case, kfx_home, tmp_path, runtime, kube))


def test_missing_required_parameter_is_a_clear_error(kfx_home: Path, tmp_path: Path) -> None:
    """KFP's backend tests pass add_numbers a and b; without them the user gets one clear line."""
    case = Case(BY_ID["critical/add_numbers"].file, "failed")  # without -p a=1 -p b=2
    outcome = run_kfx(case, kfx_home, tmp_path)
    assert outcome.returncode != 0
    assert "Traceback" not in outcome.output, outcome.output[-2000:]
    # one message naming both missing parameters
    assert re.search(r"\bb\b", outcome.output) and "param" in outcome.output.lower(), outcome.output[-2000:]


def test_table_covers_the_backend_test_set() -> None:
    """Every pipeline of critical/, essential/ and failing/ has exactly one case."""
    valid = CORPUS / "test_data" / "sdk_compiled_pipelines" / "valid"
    files = sorted(
        str(p.relative_to(CORPUS))
        for folder in ("critical", "essential", "failing")
        for p in (valid / folder).glob("*.yaml")
    )
    assert sorted(case.file for case in CASES) == files
    for case in CASES:
        assert re.fullmatch(r"success|failed|needs: .+", case.expected), case.expected
        assert case.file.split("/")[-2] != "failing" or case.expected == "failed", case.file


# KFP v2 backend-compiled Argo workflows of the same pipelines (test_data/compiled-workflows,
# compiled by KFP's backend from these very files): rebuilt into the PipelineSpec they came
# from (airflow_kfx/spec/argo_v2.py), they must run to the same results.
WORKFLOW_CASES = ("critical/flip_coin",)  # conditions, nested DAGs, CEL; every pair is compared parsed


@pytest.mark.parametrize("case_id", WORKFLOW_CASES)
def test_kfp_backend_compiled_workflow_runs_like_its_pipeline(case_id: str, kfx_home: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    case = BY_ID[case_id]
    workflow = f"test_data/compiled-workflows/{Path(case.file).name}"
    assert (CORPUS / workflow).is_file(), workflow
    check_case(case, run_kfx(replace(case, file=workflow), kfx_home, tmp_path))
