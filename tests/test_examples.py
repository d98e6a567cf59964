"""The example pipelines of ``dags/pipelines`` on every runtime, with the same expected results.

``local`` runs the pods' commands as subprocesses; ``kubernetes`` submits the pods through
the KubernetesPodOperator to the Kubernetes API double (tests/kube), which runs them on
this machine, sync and deferrable (the provider's trigger watches the pod, the task is
resumed in ``trigger_reentry``). A run is Airflow's ``dag.test()`` in this process; its
result is read as ``kfx run --json`` reports it (task keys are KFP task paths).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fixtures import KubeDouble, kube_double
from tests.runs import run_pipeline
from tests.support import REPO

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "dags" / "pipelines"


@dataclass(frozen=True)
class Example:
    name: str
    conf: Mapping[str, Any] = field(default_factory=dict)
    state: str = "success"
    outputs: Mapping[str, Any] = field(default_factory=dict)  # pipeline outputs
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # task path → output → value
    states: Mapping[str, str] = field(default_factory=dict)  # task path → state

    @property
    def id(self) -> str:
        return self.name + "".join(f"-{k}={v}" for k, v in self.conf.items())


CASES = [
    Example("hello_world", outputs={"Output": "Hello, World!"}, tasks={"say-hello": {"greeting": "Hello, World!"}}),
    Example(
        "sequential",
        outputs={"Output": "3 lines, 27 chars, last: 3: hello"},
        tasks={"produce": {"chars": 27}, "announce": {"Output": "done after consume"}},
    ),
    Example(
        "parallel_execution",
        outputs={"Output": 55},
        tasks={"for-loop-1/square": {"Output": [1, 4, 9, 16, 25]}, "join-sorted": {"Output": "apple x2, banana x3, cherry x5"}},
    ),
    Example("flip_coin", outputs={"Output": "heads: 6"}, states={"print-msg-6": "success"}),
    Example(
        "exit_handler",
        tasks={"exit-handler-1/check-message": {"Output": "HELLO, KFX!"}, "exit-op": {"Output": "exit handler: COMPLETE"}},
    ),
    Example(
        "exit_handler", conf={"fail": True}, state="failed",
        states={"exit-handler-1/check-message": "failed"},
        tasks={"exit-op": {"Output": "exit handler: FAILED"}},
    ),
    Example("training", outputs={"Output": 0.951048951048951}, tasks={"split-data": {"n_train": 426, "n_test": 143}}),
]

RUNTIMES = ["local", "kubernetes", "kubernetes-deferrable"]


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    with kube_double(tmp_path_factory.mktemp("kube")) as double:
        yield double


@pytest.fixture
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points ``[kfx] runtime`` (and for kubernetes, ``kubernetes_default``) at the runtime."""
    name: str = request.param
    if name.startswith("kubernetes"):
        double: KubeDouble = request.getfixturevalue("kube")
        use_double(monkeypatch, double)
    return name


def use_double(monkeypatch: pytest.MonkeyPatch, double: KubeDouble) -> None:
    for name, value in double.airflow_environment().items():
        monkeypatch.setenv(name, value)


def run_example(example: Example, runtime: str, dags_folder: Path) -> dict[str, Any]:
    """One run, summarised like ``kfx run --json``."""
    from airflow_kfx.plan import build_plan
    from airflow_kfx.run import collect_summary
    from airflow_kfx.spec.loader import load_pipeline_file

    path = EXAMPLES / f"{example.name}.yaml"
    settings = {"deferrable": True} if runtime == "kubernetes-deferrable" else {}
    result = run_pipeline(path, dags_folder, conf=dict(example.conf), settings=settings)
    plan = build_plan(load_pipeline_file(path))
    return collect_summary(plan, result.dag_id, result.run_id, result.state, dict(example.conf))


def check(example: Example, summary: Mapping[str, Any]) -> None:
    tasks = summary["tasks"]
    states = {path: task["state"] for path, task in tasks.items()}
    assert summary["state"] == example.state, states
    for name, value in example.outputs.items():
        assert summary["outputs"]["parameters"][name] == value
    for path, state in example.states.items():
        assert tasks[path]["state"] == state, states
    for path, outputs in example.tasks.items():
        entry = tasks[path]
        for name, value in outputs.items():
            if "iterations" in entry:
                got = sorted(i["outputs"]["parameters"][name] for i in entry["iterations"])
                assert got == sorted(value), f"{path}.{name}"
            else:
                assert entry["outputs"]["parameters"][name] == value, f"{path}.{name}: {entry}"


@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
@pytest.mark.parametrize("example", CASES, ids=lambda e: e.id)
def test_example(example: Example, runtime: str, dags_folder: Path) -> None:
    check(example, run_example(example, runtime, dags_folder))
