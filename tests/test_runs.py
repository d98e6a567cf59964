"""End to end: the fixture pipelines run for real through Airflow's ``dag.test()``
on the ``local`` runtime, and produce the values a KFP user expects.

Every pipeline run is made once per module (``runner`` caches runs by fixture
name and run conf) and shared by the tests that check it. Besides the
:class:`~tests.runs.RunResult` (states and return-value XComs), each run records
what the tests cannot read from the metadata DB: the output lines of every
container task, the error every failed attempt raised, and the pod the local
runtime was handed. That is observation only: the kfx operators are wrapped,
never changed.

Expected values come from each fixture's docstring (tests/fixtures/pipelines/),
which follow what the KFP backend does. Behaviour that is wrong today is written
as the test it should pass, marked ``xfail(strict=True)`` with the diagnosis.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.runs import RunResult, run_pipeline
from tests.support import FIXTURES

pytestmark = pytest.mark.slow

Key = tuple[str, int]  # (task_id, map_index)


# ---------------------------------------------------------------------------
# Running and observing
# ---------------------------------------------------------------------------


@dataclass
class Attempt:
    key: Key
    try_number: int
    error: str | None  # "ExceptionType: message", None when it succeeded


@dataclass
class Run:
    """One pipeline run: the RunResult plus what the tasks printed and raised."""

    name: str
    path: Path
    conf: dict[str, Any] | None
    result: RunResult
    logs: dict[Key, list[str]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    pods: dict[Key, Any] = field(default_factory=dict)  # the V1Pod of the last attempt

    # shortcuts
    @property
    def state(self) -> str:
        return self.result.state

    def state_of(self, task_id: str, map_index: int = -1) -> str | None:
        return self.result.state_of(task_id, map_index)

    def out(self, task_id: str, name: str = "Output", map_index: int = -1) -> Any:
        return self.result.parameter(task_id, name, map_index)

    def artifact(self, task_id: str, name: str, map_index: int = -1) -> dict[str, Any]:
        return self.result.artifact(task_id, name, map_index)

    def mapped(self, task_id: str, name: str = "Output") -> list[Any]:
        return self.result.mapped(task_id, name)

    def log(self, task_id: str, map_index: int = -1) -> str:
        return "\n".join(self.logs.get((task_id, map_index), []))

    def error(self, task_id: str, map_index: int = -1) -> str | None:
        """The error of the last failed attempt of a task instance."""
        errors = [a.error for a in self.attempts if a.key == (task_id, map_index) and a.error]
        return errors[-1] if errors else None

    def tries(self, task_id: str, map_index: int = -1) -> list[Attempt]:
        return [a for a in self.attempts if a.key == (task_id, map_index)]


_CURRENT: contextvars.ContextVar[Key | None] = contextvars.ContextVar("kfx_test_current_task", default=None)


class _Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.logs: dict[Key, list[str]] = defaultdict(list)
        self.attempts: list[Attempt] = []
        self.pods: dict[Key, Any] = {}


def _instrument(monkeypatch: pytest.MonkeyPatch, recorder: _Recorder) -> None:
    """Wrap (not change) the kfx operators' execute and the local runtime."""
    from airflow_kfx.operators import container, control
    from airflow_kfx.runtime import local

    def wrap_execute(cls: type) -> None:
        original = cls.execute

        def execute(self: Any, context: Any) -> Any:
            ti = context["ti"]
            key = (ti.task_id, ti.map_index if ti.map_index is not None else -1)
            token = _CURRENT.set(key)
            try:
                result = original(self, context)
            except BaseException as err:
                recorder.attempts.append(Attempt(key, ti.try_number, f"{type(err).__name__}: {err}"))
                raise
            else:
                recorder.attempts.append(Attempt(key, ti.try_number, None))
                return result
            finally:
                _CURRENT.reset(token)

        monkeypatch.setattr(cls, "execute", execute)

    for cls in (
        container.KfxContainerOperator,
        control.KfxConditionOperator,
        control.KfxIterationsOperator,
        control.KfxImporterOperator,
        control.KfxPvcOperator,
    ):
        wrap_execute(cls)

    original_run = local.run_pod_locally

    def run_pod_locally(pod: Any, **kwargs: Any) -> Any:
        key = _CURRENT.get() or ("?", -1)
        recorder.pods[key] = pod
        log = kwargs.get("log", print)

        def tee(line: str) -> None:
            recorder.logs[key].append(line)
            log(line)

        kwargs["log"] = tee
        return original_run(pod, **kwargs)

    monkeypatch.setattr(local, "run_pod_locally", run_pod_locally)


Runner = Callable[..., Run]


@pytest.fixture(scope="module")
def runner(dags_folder: Path) -> Iterator[Runner]:
    """``runner(fixture_name, conf=None) -> Run``, each (name, conf) run once per module."""
    recorder = _Recorder()
    cache: dict[str, Run] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        _instrument(monkeypatch, recorder)

        def run(name: str, conf: dict[str, Any] | None = None) -> Run:
            key = f"{name} {json.dumps(conf, sort_keys=True)}"
            if key not in cache:
                recorder.reset()
                path = FIXTURES / f"{name}.yaml"
                result = run_pipeline(path, dags_folder, conf=conf)
                cache[key] = Run(
                    name, path, conf, result,
                    logs=dict(recorder.logs), attempts=list(recorder.attempts), pods=dict(recorder.pods),
                )
            return cache[key]

        yield run


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def read(artifact: dict[str, Any]) -> str:
    """The content of a (local) artifact's file."""
    with open(artifact["uri"], encoding="utf-8", newline="") as f:
        return f.read()


def pipeline_root() -> Path:
    return Path(os.environ["AIRFLOW__KFX__PIPELINE_ROOT"])


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def task_instances(run: Run) -> dict[Key, Any]:
    """(task_id, map_index) → (try_number, start_date, end_date) from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == run.result.dag_id, TaskInstance.run_id == run.result.run_id
        )
        return {(ti.task_id, ti.map_index): (ti.try_number, ti.start_date, ti.end_date) for ti in rows}


class _ResultFetcher:
    """A Resolver fetcher over a finished run's XComs (for pipeline-level outputs)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def task_result(self, task_id: str, map_index: int) -> Any:
        return self.run.result.results.get((task_id, map_index))

    def task_results(self, task_id: str, map_indexes: Any) -> list[Any]:
        return [self.run.result.results.get((task_id, i)) for i in map_indexes]

    def run_param(self, name: str) -> Any:
        raise KeyError(name)

    def task_states(self, task_ids: Any) -> dict[str, str]:
        return {}

    def run_info(self) -> dict[str, str]:
        return {"dag_id": self.run.result.dag_id, "run_id": self.run.result.run_id}


def pipeline_outputs(run: Run) -> dict[str, Any]:
    """The pipeline's own outputs (``root.outputDefinitions``), resolved from the run.

    No task publishes them during an Airflow run, so they are resolved here from
    the plan's bindings and the tasks' XComs, exactly as a consumer task would.
    """
    from airflow_kfx.plan import build_plan
    from airflow_kfx.runtime.resolve import Resolver
    from airflow_kfx.spec.loader import load_pipeline_file

    plan = build_plan(load_pipeline_file(run.path))
    resolver = Resolver(_ResultFetcher(run), ())
    return {name: resolver.resolve(binding) for name, binding in plan.outputs.items()}


def flat(value: Any) -> list[dict[str, Any]]:
    """An artifact output (a 1-list, or nested lists for Collected) → a flat list."""
    if isinstance(value, dict):
        return [value]
    return [a for item in value for a in flat(item)]


# ---------------------------------------------------------------------------
# Typed parameters
# ---------------------------------------------------------------------------


def test_typed_params_defaults(runner: Runner) -> None:
    run = runner("typed_params", {"name": "world"})
    assert run.state == "success"
    assert run.out("next-int") == 4 and type(run.out("next-int")) is int
    assert run.out("next-float") == 0.5
    assert run.out("negate") is False
    assert run.out("extend-list") == [1, 2, 3, 4]
    assert all(type(i) is int for i in run.out("extend-list"))  # [1.0, 2.0, 3.0] in the YAML
    assert run.out("add-key") == {"k": "v", "n": 1, "added": True}
    assert type(run.out("add-key")["n"]) is int
    # The exact text: ints stay ints inside lists and dicts, None stays null.
    assert run.out("describe") == (
        '{"config": {"added": true, "k": "v", "n": 1}, "count": 4, "flag": false, '
        '"items": [1, 2, 3, 4], "maybe": null, "name": "world", "ratio": 0.5, '
        '"text": "hello", "types": "dict,int,bool,list,NoneType,str,float,str"}'
    )


def test_typed_params_conf_overrides(runner: Runner) -> None:
    conf = {
        "name": "kfx",
        "text": "bye",
        "count": 10,
        "ratio": 0.75,
        "flag": False,
        "items": [7, "x"],
        "config": {"nested": {"a": [1, 2]}},
        "maybe": "here",
    }
    run = runner("typed_params", conf)
    assert run.state == "success"
    assert run.out("next-int") == 11
    assert run.out("next-float") == 1.5
    assert run.out("negate") is True
    assert run.out("extend-list") == [7, "x", 3]
    assert run.out("add-key") == {"nested": {"a": [1, 2]}, "added": True}
    assert json.loads(run.out("describe")) == {
        "config": {"added": True, "nested": {"a": [1, 2]}},
        "count": 11,
        "flag": True,
        "items": [7, "x", 3],
        "maybe": "here",
        "name": "kfx",
        "ratio": 1.5,
        "text": "bye",
        "types": "dict,int,bool,list,str,str,float,str",
    }


def test_typed_params_without_the_required_name_does_not_start(dags_folder: Path) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="name"):
        run_pipeline(FIXTURES / "typed_params.yaml", dags_folder)


# ---------------------------------------------------------------------------
# Constants, chains, NamedTuple outputs, pipeline outputs
# ---------------------------------------------------------------------------


def test_constants_and_outputs(runner: Runner) -> None:
    run = runner("constants_and_outputs")
    assert run.state == "success"
    assert run.out("add") == 5
    assert run.out("double") == 10
    assert run.out("split-number", "half") == 5
    assert run.out("split-number", "square") == 100
    assert run.out("split-number", "parity") == "even"
    assert run.out("format-result") == "result: half=5 square=100 parity=even"
    assert pipeline_outputs(run) == {"summary": "result: half=5 square=100 parity=even", "doubled": 10}


# ---------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------


def test_artifacts_files_metadata_and_consumers(runner: Runner) -> None:
    run = runner("artifacts")
    assert run.state == "success"
    data = run.artifact("make-data", "data")
    model = run.artifact("make-data", "model")
    notes = run.artifact("make-data", "notes")
    assert read(data) == "id,value\n0,0\n1,10\n2,20\n"
    assert data["metadata"] == {"rows": 3}
    assert data["schemaTitle"] == "system.Dataset"
    assert read(model) == "weights: 42"
    assert model["metadata"] == {"framework": "none", "version": 1}
    assert model["schemaTitle"] == "system.Model"
    assert read(notes) == "made 3 rows"
    assert notes["schemaTitle"] == "system.Artifact"
    # every artifact lives under the pipeline root, one folder per task
    for artifact in (data, model, notes):
        assert Path(artifact["uri"]).is_relative_to(pipeline_root())
    assert len({data["uri"], model["uri"], notes["uri"]}) == 3

    assert run.out("count-rows") == 3
    assert run.out("inspect-data") == "rows=3 framework=none model=weights: 42 uri_ok=True"
    assert run.out("read-notes") == "made 3 rows"
    copied = run.artifact("copy-data", "dst")
    assert copied["schemaTitle"] == "system.Dataset"
    assert copied["uri"] != data["uri"]
    assert read(copied) == read(data)
    assert run.out("count-rows-2") == 3


# ---------------------------------------------------------------------------
# Placeholders
# ---------------------------------------------------------------------------


def test_placeholders_concat_formatting(runner: Runner) -> None:
    run = runner("placeholders")
    assert run.state == "success"
    # KFP launcher text: float 3.0 → "3", bool → "true", list/dict → compact JSON
    assert run.out("format-args", "out") == (
        'text=hello|count=3|ratio=3|flag=true|items=[1,2,3]|config={"a":1,"b":"x"}|half=0.5'
    )


def test_placeholders_if_present_both_ways(runner: Runner) -> None:
    run = runner("placeholders")
    assert run.out("if-present", "out") == "name=ann|--greeting|hi|suffix=!"
    assert run.out("if-present-2", "out") == "name=bob|no-suffix"


def test_placeholders_artifact_path_and_uri(runner: Runner) -> None:
    run = runner("placeholders")
    data = run.artifact("write-artifact", "data")
    assert run.out("write-artifact", "out") == data["uri"]  # {{$.outputs.artifacts['data'].uri}}
    assert read(data) == "a,b\n1,2\n"
    assert run.out("read-artifact", "out") == "a,b\n1,2\n"
    assert f"reading {data['uri']}" in run.log("read-artifact")


def test_placeholders_pipeline_and_task(runner: Runner) -> None:
    run = runner("placeholders")
    fields = dict(item.split("=", 1) for item in run.out("runtime-info", "out").split("|"))
    assert list(fields) == [
        "job_name", "job_resource_name", "job_id", "task_name", "task_id",
        "create_time", "schedule_time", "root",
    ]
    assert fields["job_name"] == run.result.run_id
    # KFP names the job '<pipeline name>-<suffix>'
    assert re.fullmatch(r"placeholders-[0-9a-f]{8}", fields["job_resource_name"])
    assert fields["task_name"] == "runtime-info"
    assert is_uuid(fields["job_id"]) and is_uuid(fields["task_id"])
    assert fields["job_id"] != fields["task_id"]
    for stamp in ("create_time", "schedule_time"):
        parsed = datetime.fromisoformat(fields[stamp])
        assert parsed.utcoffset() == timedelta(0), fields[stamp]
    assert fields["root"] == str(pipeline_root())


def test_placeholders_with_overridden_params(runner: Runner) -> None:
    run = runner(
        "placeholders",
        {
            "text": "a b", "count": -1, "ratio": 2.5, "flag": False,
            "items": ["a", "b"], "config": {"z": [1, 2]},
        },
    )
    assert run.state == "success"
    assert run.out("format-args", "out") == (
        'text=a b|count=-1|ratio=2.5|flag=false|items=["a","b"]|config={"z":[1,2]}|half=0.5'
    )


# ---------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------


def test_conditions_default_mode(runner: Runner) -> None:
    run = runner("conditions")
    assert run.state == "success"
    assert run.out("coin") == "heads"
    assert run.out("number") == 7
    # string equality, true and false
    assert run.out("condition-1.say") == "heads won"
    assert run.state_of("condition-2.kfx-condition") == "skipped"
    assert run.state_of("condition-2.say-2") == "skipped"
    # the gate decided; the scheduler skipped its branch without starting a worker
    assert ("condition-2.kfx-condition", -1) in run.result.started
    assert ("condition-2.say-2", -1) not in run.result.started
    # int() comparison of an upstream output, and a nested condition on a param
    assert run.out("condition-3.say-3") == "7 is big"
    assert run.out("condition-3.condition-4.say-4") == "big and fast"
    # legacy dsl.Condition on a param: mode != "fast" is false
    assert run.state_of("condition-5.say-5") == "skipped"
    # a loop inside it: the iterations task is skipped and the loop never expands
    assert run.state_of("condition-5.for-loop-7-iterations") == "skipped"
    assert {key for key in run.result.started if key[0].startswith("condition-5.")} == {("condition-5.kfx-condition", -1)}
    assert run.state_of("condition-5.for-loop-7.say-6") == "skipped"


def test_conditions_slow_mode(runner: Runner) -> None:
    run = runner("conditions", {"mode": "slow"})
    assert run.state == "success"
    assert run.out("condition-1.say") == "heads won"
    assert run.state_of("condition-2.say-2") == "skipped"
    assert run.out("condition-3.say-3") == "7 is big"
    # the outer condition holds, the nested one does not
    assert run.state_of("condition-3.kfx-condition") == "success"
    assert run.state_of("condition-3.condition-4.kfx-condition") == "skipped"
    assert run.state_of("condition-3.condition-4.say-4") == "skipped"
    assert run.out("condition-5.say-5") == "slow mode"
    assert run.mapped("condition-5.for-loop-7.say-6") == ["slow", "steady"]


@pytest.mark.parametrize(
    ("value", "word", "branch"),
    [(7, "medium", "condition-3.say-2"), (12, "big", "condition-2.say"), (3, "small", "condition-4.say-3")],
)
def test_if_elif_else_oneof_parameters(runner: Runner, value: int, word: str, branch: str) -> None:
    run = runner("if_elif_else_oneof", None if value == 7 else {"value": value})
    assert run.state == "success"
    assert run.out("echo-int") == value
    branches = {"condition-2.say", "condition-3.say-2", "condition-4.say-3"}
    for task in branches:
        task_id = f"condition-branches-1.{task}"
        if task == branch:
            assert run.state_of(task_id) == "success"
            assert run.out(task_id) == word
        else:
            assert run.state_of(task_id) == "skipped"
    assert run.out("report") == f"value is {word}"
    assert pipeline_outputs(run) == {"Output": f"value is {word}"}


@pytest.mark.parametrize(("fmt", "content", "ran", "skipped"), [
    ("csv", "a,b,c\n", "condition-2.make-csv", "condition-3.make-tsv"),
    ("tsv", "a\tb\tc\n", "condition-3.make-tsv", "condition-2.make-csv"),
])
def test_if_else_oneof_artifacts(runner: Runner, fmt: str, content: str, ran: str, skipped: str) -> None:
    run = runner("if_else_oneof_artifacts", None if fmt == "csv" else {"fmt": fmt})
    assert run.state == "success"
    chosen = run.artifact(f"condition-branches-1.{ran}", "data")
    assert run.state_of(f"condition-branches-1.{skipped}") == "skipped"
    assert read(chosen) == content
    assert chosen["metadata"] == {"format": fmt}
    # the consumer received the chosen branch's artifact (content and metadata)
    assert run.out("count-fields") == f"{fmt}:3"
    # and the pipeline's OneOf output is that same artifact
    [output] = flat(pipeline_outputs(run)["Output"])
    assert output["uri"] == chosen["uri"]


# ---------------------------------------------------------------------------
# Loops
# ---------------------------------------------------------------------------


def test_loops(runner: Runner) -> None:
    run = runner("loops", {"names": ["cy", "dee", "eve"]})
    assert run.state == "success"
    # 1. raw list of ints, Collected into a sum
    assert run.mapped("for-loop-2.square") == [1, 4, 9]
    assert run.out("sum-ints") == 14
    # 2. raw list of dicts, item.a / item.b sub-fields
    assert run.mapped("for-loop-4.multiply") == [10, 40]
    # 3. a pipeline-input list (here given in the run conf)
    assert run.mapped("for-loop-5.greet") == ["hello cy", "hello dee", "hello eve"]
    # 4. an upstream output list, parallelism=2, Collected
    assert run.out("make-list") == [10, 20, 30]
    assert run.mapped("for-loop-6.square-2") == [100, 400, 900]
    assert run.out("sum-ints-2") == 1400


def test_loop_over_an_empty_list_runs_nothing(runner: Runner) -> None:
    run = runner("loops", {"names": []})
    assert run.state == "success"
    assert run.mapped("for-loop-5.greet") == []
    assert run.state_of("for-loop-5.greet") == "skipped"
    assert run.out("sum-ints") == 14


def test_loop_parallelism(runner: Runner) -> None:
    from airflow_kfx import load_pipeline

    dag = load_pipeline(FIXTURES / "loops.yaml")
    assert dag.get_task("for-loop-6.square-2").max_active_tis_per_dagrun == 2
    assert dag.get_task("for-loop-2.square").max_active_tis_per_dagrun is None
    # never more than two instances at once in the run
    run = runner("loops", {"names": ["cy", "dee", "eve"]})
    spans = [
        (start, end)
        for (task_id, _), (_, start, end) in task_instances(run).items()
        if task_id == "for-loop-6.square-2"
    ]
    assert len(spans) == 3
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2


def test_nested_loops_with_collected(runner: Runner) -> None:
    run = runner("nested_loops")
    assert run.state == "success"
    assert run.mapped("for-loop-2.make-range") == [[1], [1, 2]]
    inner = run.result.results[("for-loop-2__for-loop-3-iterations", -1)]
    assert [(r["path"], r["item"]) for r in inner] == [([0, 0], 1), ([1, 0], 1), ([1, 1], 2)]
    assert run.mapped("for-loop-2__for-loop-3.multiply") == [1, 2, 4]
    # total() only accepts a list of lists (one inner list per outer iteration)
    assert run.out("total") == 7


def test_loop_containing_a_condition(runner: Runner) -> None:
    run = runner("nested_loops")
    assert run.mapped("for-loop-5.parity") == ["odd", "even", "odd", "even"]
    for index, n in enumerate([1, 2, 3, 4]):
        task_id = "for-loop-5.condition-6.report-even"
        if n % 2 == 0:
            assert run.state_of(task_id, index) == "success"
            assert run.out(task_id, map_index=index) == f"{n} is even"
        else:
            assert run.state_of("for-loop-5.condition-6.kfx-condition", index) == "skipped"
            assert run.state_of(task_id, index) == "skipped"
            # this iteration's gate skipped its own instance of the branch only
            assert (task_id, index) not in run.result.started


def test_collected_artifacts(runner: Runner) -> None:
    run = runner("collected_artifacts")
    assert run.state == "success"
    written = [run.artifact("for-loop-2.write-number", "data", i) for i in range(3)]
    assert [read(a) for a in written] == ["1", "2", "3"]
    assert [a["metadata"] for a in written] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert run.out("sum-datasets") == 6
    merged = run.artifact("merge-datasets", "merged")
    assert read(merged) == "1\n2\n3\n"
    assert run.out("count-lines") == 3
    # the pipeline returns the three datasets
    outputs = flat(pipeline_outputs(run)["Output"])
    assert sorted(a["uri"] for a in outputs) == sorted(a["uri"] for a in written)


# ---------------------------------------------------------------------------
# Exit handlers and ignore_upstream_failure
# ---------------------------------------------------------------------------


def test_exit_handler_on_success(runner: Runner) -> None:
    run = runner("exit_handler")
    assert run.state == "success"
    assert run.out("exit-handler-1.greet") == "hello kfx"
    assert run.out("exit-handler-1.shout") == "HELLO KFX!"
    assert run.out("report-status") == "done: COMPLETE"  # the KFP backend's state, as its own test asserts
    log = run.log("report-status")
    assert "task: exit-handler-1" in log  # PipelineTaskFinalStatus.pipeline_task_name
    assert "error: None None" in log
    assert run.state_of("kfx-run-end") == "success"


def test_exit_handler_status_names_the_job_like_the_placeholder(runner: Runner) -> None:
    run = runner("exit_handler")
    # what {{$.pipeline_job_resource_name}} gives in this run (see test_placeholders_pipeline_and_task)
    from airflow_kfx.runtime.invocation import job_resource_name

    resource_name = job_resource_name("exit-handler", run.result.dag_id, run.result.run_id)
    assert f"job: {resource_name}" in run.log("report-status").splitlines()


def test_exit_handler_on_failure(runner: Runner) -> None:
    run = runner("exit_handler_failing")
    assert run.state == "failed"
    assert run.out("exit-handler-1.before") == "started"
    assert run.state_of("exit-handler-1.fail") == "failed"
    assert "failing on purpose" in run.log("exit-handler-1.fail")
    assert "exited with code 1" in (run.error("exit-handler-1.fail") or "")
    assert run.state_of("exit-handler-1.after-fail") == "upstream_failed"
    assert ("exit-handler-1.after-fail", -1) not in run.result.results
    # the exit task runs and sees the failure
    assert run.state_of("report-status") == "success"
    assert run.out("report-status") == "cleanup: FAILED"
    [error_line] = [line for line in run.logs[("report-status", -1)] if line.startswith("error:")]
    assert "exit-handler-1.fail" in error_line  # a non-empty error message naming the failed task
    assert run.state_of("kfx-run-end") == "failed"


def test_ignore_upstream_failure(runner: Runner) -> None:
    run = runner("ignore_upstream_failure")
    assert run.state == "failed"
    assert run.state_of("fail-task") == "failed"
    assert "RuntimeError: boom" in run.log("fail-task")
    assert run.state_of("clean-up") == "success"
    assert run.out("clean-up") == "cleaned up after: upstream-failed"  # the input's default
    assert run.state_of("never-runs") == "upstream_failed"
    assert run.state_of("kfx-run-end") == "failed"


# ---------------------------------------------------------------------------
# Nested pipelines, importer
# ---------------------------------------------------------------------------


def test_nested_pipelines(runner: Runner) -> None:
    run = runner("nested_pipeline")
    assert run.state == "success"
    assert run.out("stats-pipeline.square-pipeline.square") == 9
    assert run.out("stats-pipeline.add-one") == 10
    report = run.artifact("stats-pipeline.write-report", "report")
    assert read(report) == "total=10"
    # both outputs of stats-pipeline (a parameter and an artifact) reach check-pipeline
    assert run.out("check-pipeline.read-report") == "total=10 matches 10"
    assert pipeline_outputs(run) == {"Output": 10}


def test_nested_pipelines_with_another_input(runner: Runner) -> None:
    run = runner("nested_pipeline", {"x": 4})
    assert run.out("stats-pipeline.square-pipeline.square") == 16
    assert read(run.artifact("stats-pipeline.write-report", "report")) == "total=17"
    assert run.out("check-pipeline.read-report") == "total=17 matches 17"


def test_importer(runner: Runner) -> None:
    run = runner("importer")
    assert run.state == "success"
    dataset = run.artifact("importer", "artifact")
    assert dataset["uri"] == "gs://bucket/data.csv"
    assert dataset["schemaTitle"] == "system.Dataset"
    assert dataset["metadata"] == {"source": "static", "rows": 3, "owner": "kfx"}
    assert run.out("describe-dataset") == "gs://bucket/data.csv source=static rows=3 owner=kfx"
    model = run.artifact("importer-2", "artifact")
    assert (model["uri"], model["schemaTitle"]) == ("gs://bucket/models/model.bin", "system.Model")
    assert run.out("describe-model") == "gs://bucket/models/model.bin"


def test_importer_uri_and_metadata_from_params(runner: Runner) -> None:
    run = runner("importer", {"owner": "me", "model_uri": "s3://other/model.bin"})
    assert run.state == "success"
    assert run.out("describe-dataset") == "gs://bucket/data.csv source=static rows=3 owner=me"
    assert run.out("describe-model") == "s3://other/model.bin"


# ---------------------------------------------------------------------------
# Retries, caching options, resources and env
# ---------------------------------------------------------------------------


def test_retry_once(runner: Runner) -> None:
    run = runner("retry_once")
    assert run.state == "success"
    assert run.out("flaky") == "succeeded on attempt 2"
    assert run.out("confirm") == "confirmed: succeeded on attempt 2"
    tries = run.tries("flaky")
    assert [a.try_number for a in tries] == [1, 2]
    assert "exited with code 1" in (tries[0].error or "") and tries[1].error is None
    assert "first attempt: failing on purpose" in run.log("flaky")
    instances = task_instances(run)
    assert instances[("flaky", -1)][0] == 2
    assert instances[("confirm", -1)][0] == 1


def test_retry_and_caching_options(runner: Runner) -> None:
    from airflow_kfx import load_pipeline

    dag = load_pipeline(FIXTURES / "retry_caching.yaml")
    add = dag.get_task("add")
    assert add.retries == 3
    assert add.retry_delay == timedelta(seconds=1)
    assert add.retry_exponential_backoff
    assert add.max_retry_delay == timedelta(seconds=10)
    assert dag.get_task("double").retries == 0
    run = runner("retry_caching")
    assert run.state == "success"
    assert [run.out(t) for t in ("add", "double", "increment", "double-2")] == [5, 10, 11, 22]
    assert all(a.try_number == 1 for a in run.attempts)


def test_resources_and_env(runner: Runner) -> None:
    run = runner("resources_env")
    assert run.state == "success"
    assert run.out("read-env") == "GREETING=hello TARGET=kfx"
    assert run.out("sized") == "sized"
    assert run.out("on-gpu") == "gpu requested"
    # what the pod would ask of a cluster
    env = {e.name: e.value for e in run.pods[("read-env", -1)].spec.containers[0].env or []}
    assert (env.get("GREETING"), env.get("TARGET")) == ("hello", "kfx")
    sized = run.pods[("sized", -1)].spec.containers[0].resources
    assert sized.requests == {"cpu": "100m", "memory": "64Mi"}
    assert sized.limits == {"cpu": "500m", "memory": "256Mi"}  # cpu limit from the pipeline param
    gpu = run.pods[("on-gpu", -1)].spec.containers[0].resources
    assert gpu.limits == {"nvidia.com/gpu": "1"}


def test_resources_limit_from_conf(runner: Runner) -> None:
    run = runner("resources_env", {"cpu_limit": "2"})
    assert run.state == "success"
    assert run.pods[("sized", -1)].spec.containers[0].resources.limits["cpu"] == "2"


# ---------------------------------------------------------------------------
# Strings that look like templates or shell
# ---------------------------------------------------------------------------

SPECIAL = (
    "ds={{ ds }} param={{ params.x }} {% raw %}raw{% endraw %} "
    "$(whoami) $HOME `id` 'quotes' \"double\" back\\slash "
    '{"a": [1, 2]}\ttab héllo ✓'
)
MULTILINE = "line 1 {{ ds }}\n  line 2 $(whoami)\n\nline 4 'q' \"qq\"\n"


def test_special_strings_pass_through_literally(runner: Runner) -> None:
    run = runner("special_strings")
    assert run.state == "success"
    assert run.out("echo-py") == SPECIAL
    assert run.out("echo-sh", "out") == SPECIAL
    assert run.out("echo-py-2") == MULTILINE
    assert run.out("echo-sh-2", "out") == MULTILINE
    assert run.out("same") == "same"


def test_special_strings_given_in_the_conf(runner: Runner) -> None:
    text = (
        "{{ run_id }} {{ params.text }} {{ ti.xcom_pull() }} {% if 1 %}x{% endif %} "
        "${HOME} $(id) \\n \"q\" '1'"
    )
    run = runner("special_strings", {"text": text})
    assert run.state == "success"
    assert run.out("echo-py") == text
    assert run.out("echo-sh", "out") == text
    assert run.out("same") == "same"


def test_special_strings_kfp_placeholder_syntax_in_a_param_is_data(runner: Runner) -> None:
    text = "job={{$.pipeline_job_name}} task={{$.pipeline_task_name}}"
    run = runner("special_strings", {"text": text})
    assert run.out("echo-py") == text


# ---------------------------------------------------------------------------
# Kubernetes-only settings on the local runtime
# ---------------------------------------------------------------------------


def refused(run: Run, task_id: str, *needs: str) -> str:
    """Assert the local runtime refused ``task_id`` up front, naming one of ``needs``."""
    assert run.state_of(task_id) == "failed", (task_id, run.state_of(task_id))
    error = run.error(task_id) or ""
    assert "local runtime" in error, error
    assert "exited with code" not in error, error  # not a crash of the component itself
    assert any(need in error for need in needs), (needs, error)
    return error


def test_kubernetes_platform_on_the_local_runtime(runner: Runner) -> None:
    """What a cluster provides (PVC mounts, secrets, config maps) cannot be had
    locally: such a task fails up front with a message naming the need; tasks
    without cluster needs (CreatePVC as a folder, the condition gate) succeed."""
    from airflow_kfx.runtime.local import local_volume_root

    run = runner("kubernetes_platform")
    assert run.state == "failed"
    pvc = run.out("createpvc", "name")
    assert re.fullmatch(r"kfx-[0-9a-f]{8}-kfx-fixture", pvc)
    assert (Path(local_volume_root()) / pvc).is_dir()
    assert run.state_of("condition-1.kfx-condition") == "success"

    refused(run, "write-file", "/data", "'tls-certs'", "'db-credentials'")
    assert ("write-file", -1) not in run.logs  # nothing ran
    # downstream of the failure
    assert run.state_of("read-file") == "upstream_failed"
    assert run.state_of("deletepvc") == "upstream_failed"
    # scratch: emptyDir + generic ephemeral volume
    if run.state_of("condition-1.scratch") == "success":
        assert run.out("condition-1.scratch") == "scratch ok"
    else:
        refused(run, "condition-1.scratch", "/scratch", "/cache")


def test_kubernetes_platform_refusal_names_the_secrets(runner: Runner) -> None:
    run = runner("kubernetes_platform")
    error = run.error("write-file") or ""
    assert "'db-credentials'" in error and "'tls-certs'" in error, error


def test_local_volumes_create_pvc_is_a_folder(runner: Runner) -> None:
    from airflow_kfx.runtime.local import local_volume_root

    run = runner("local_volumes")
    pvc = run.out("createpvc", "name")
    assert re.fullmatch(r"kfx-[0-9a-f]{8}-kfx-local", pvc)
    assert run.state_of("createpvc") == "success"
    # DeletePVC removes the folder when it runs (only after read-file succeeded)
    folder = Path(local_volume_root()) / pvc
    assert folder.exists() is (run.state_of("deletepvc") != "success")


def test_local_volumes_pvc_mount(runner: Runner) -> None:
    """A PVC mount is either emulated (the reader sees the writer's file) or
    refused up front; never run against the host's own /kfx-data."""
    run = runner("local_volumes")
    assert not Path("/kfx-data/hello.txt").exists()
    if run.state_of("write-file") == "success":
        assert run.out("write-file") == "wrote /kfx-data/hello.txt"
        assert run.out("read-file") == "hello via pvc"
        assert run.state_of("deletepvc") == "success"
    else:
        refused(run, "write-file", "/kfx-data")
        assert run.state_of("read-file") == "upstream_failed"
        assert run.state_of("deletepvc") == "upstream_failed"
        assert run.state == "failed"


def test_local_volumes_empty_dir(runner: Runner) -> None:
    run = runner("local_volumes")
    if run.state_of("scratch") == "success":
        assert run.out("scratch") == "scratch ok"
    else:
        refused(run, "scratch", "/kfx-scratch")
