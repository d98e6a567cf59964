"""The Airflow DAG each KFP feature turns into: params, task ids, groups, edges,
trigger rules, retries, caching and docs. Nothing runs: each test loads a real
compiled fixture (tests/fixtures/pipelines, or the KFP corpus) and inspects the
DAG object Airflow would parse.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import ParamValidationError

from airflow_kfx import load_pipeline
from tests.support import CORPUS, FIXTURES, REPO, VALID

try:
    from airflow_kfx.config import CACHE_PARAM
except ImportError:  # pragma: no cover - before run-level caching existed
    CACHE_PARAM = "kfx_cache"
# Params airflow-kfx adds to every DAG besides the pipeline's own.
KFX_PARAMS = {CACHE_PARAM}

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@cache
def dag_of(name: str) -> Any:
    """A fixture's DAG, loaded once (these tests only read it)."""
    return load_pipeline(FIXTURES / f"{name}.yaml")


@cache
def corpus_dag(relative: str) -> Any:
    path = VALID / relative
    if not path.is_file():  # pragma: no cover
        pytest.skip(f"KFP corpus file {path} not found (set KFX_KFP_CORPUS)")
    return load_pipeline(path)


# Every DAG starts with kfx-run-start and ends with kfx-run-end (MLflow run, run status).
RUN_BOUNDARIES = {"kfx-run-start", "kfx-run-end"}


def pipeline_tasks(dag: Any) -> list[Any]:
    """The DAG's tasks minus the run-boundary tasks every kfx DAG has."""
    return [t for t in dag.tasks if t.task_id not in RUN_BOUNDARIES]


def upstream(dag: Any, task_id: str) -> set[str]:
    return set(dag.get_task(task_id).upstream_task_ids) - RUN_BOUNDARIES


def kind(dag: Any, task_id: str) -> str:
    return type(dag.get_task(task_id)).__name__


def group_of(dag: Any, task_id: str) -> str | None:
    return dag.get_task(task_id).task_group.group_id


def rule(dag: Any, task_id: str) -> str:
    return str(dag.get_task(task_id).trigger_rule.value)


def group_leaves(dag: Any, group_id: str) -> set[str]:
    """Tasks of the group (any depth) with no downstream task inside the group."""
    prefix = group_id + "."
    inside = {t.task_id for t in pipeline_tasks(dag) if t.task_id.startswith(prefix)}
    return {t for t in inside if not (set(dag.get_task(t).downstream_task_ids) & inside)}


def schema(dag: Any, name: str) -> dict[str, Any]:
    return dag.params.get_param(name).schema


def default(dag: Any, name: str) -> Any:
    return dag.params.get_param(name).value


# ---------------------------------------------------------------------------
# Pipeline parameters → typed Params
# ---------------------------------------------------------------------------


def test_typed_params_become_typed_airflow_params() -> None:
    dag = dag_of("typed_params")
    assert set(dag.params.keys()) - KFX_PARAMS == {"name", "text", "count", "ratio", "flag", "items", "config", "maybe"}
    expected = {
        "text": ("string", "hello"),
        "count": ("integer", 3),
        "ratio": ("number", 0.25),
        "flag": ("boolean", True),
        "items": ("array", [1, 2, 3]),
        "config": ("object", {"k": "v", "n": 1}),
    }
    for name, (json_type, value) in expected.items():
        assert schema(dag, name)["type"] == json_type, name
        assert default(dag, name) == value, name
    # Optional[str] = None → nullable, defaulting to None
    assert sorted(schema(dag, "maybe")["type"]) == ["null", "string"]
    maybe = dag.params.get_param("maybe")
    assert maybe.value is None
    assert maybe.resolve() is None  # a valid value, not a missing one
    # no default → required: no value until the run supplies one
    name = dag.params.get_param("name")
    assert schema(dag, "name")["type"] == "string"
    assert not name.has_value
    with pytest.raises(ParamValidationError, match="No value passed"):
        name.resolve()


def test_typed_params_validate_like_a_trigger_form() -> None:
    dag = dag_of("typed_params")
    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match="name"):  # 'name' is required
        params.validate()
    params["name"] = "world"
    assert params.validate()["name"] == "world"
    with pytest.raises(ParamValidationError):  # type-checked
        params["count"] = "three"
    with pytest.raises(ParamValidationError):
        params["flag"] = "yes"
    with pytest.raises(ParamValidationError):
        params["items"] = {"not": "a list"}
    params["maybe"] = None  # nullable
    params["maybe"] = "given"


def test_pipeline_without_parameters_has_only_kfx_params() -> None:
    params = dag_of("constants_and_outputs").params
    assert set(params.keys()) == KFX_PARAMS
    # kfx_cache: switch KFP caching off for one run
    cache_param = params.get_param(CACHE_PARAM)
    assert cache_param.schema["type"] == "boolean"
    assert cache_param.value is True


def test_dag_identity_tags_and_docs() -> None:
    dag = dag_of("typed_params")
    assert dag.dag_id == "typed_params"  # pipeline name 'typed-params' sanitised
    assert "kfp" in dag.tags
    assert dag.description == "Parameters of every type."
    assert dag.doc_md.startswith("# typed-params")
    assert "Compiled KFP pipeline `typed-params`" in dag.doc_md
    assert "typed_params.yaml" in dag.doc_md
    assert "sha256" in dag.doc_md and "kfp-2.16.1" in dag.doc_md
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual runs unless a schedule is set


# ---------------------------------------------------------------------------
# Sequential tasks, data edges and dependentTasks
# ---------------------------------------------------------------------------


def test_data_edges_form_a_chain() -> None:
    dag = dag_of("constants_and_outputs")
    assert {t.task_id for t in pipeline_tasks(dag)} == {"add", "double", "split-number", "format-result"}
    assert upstream(dag, "add") == set()
    assert upstream(dag, "double") == {"add"}
    assert upstream(dag, "split-number") == {"double"}
    # NamedTuple outputs of one producer: one edge, not one per output
    assert upstream(dag, "format-result") == {"split-number"}
    for task in pipeline_tasks(dag):
        assert kind(dag, task.task_id) == "KfxContainerOperator"
        assert rule(dag, task.task_id) == "none_failed"
        assert group_of(dag, task.task_id) is None


def test_artifact_edges_fan_out() -> None:
    dag = dag_of("artifacts")
    assert upstream(dag, "make-data") == set()
    for consumer in ("count-rows", "inspect-data", "read-notes", "copy-data"):
        assert upstream(dag, consumer) == {"make-data"}, consumer
    assert upstream(dag, "count-rows-2") == {"copy-data"}


def test_typed_outputs_fan_in() -> None:
    dag = dag_of("typed_params")
    assert upstream(dag, "describe") == {"next-int", "next-float", "negate", "extend-list", "add-key"}
    for producer in ("next-int", "next-float", "negate", "extend-list", "add-key"):
        assert upstream(dag, producer) == set()


def test_dependent_tasks_from_after_and_from_platform_inputs() -> None:
    """``.after()`` (dependentTasks) and a PVC name read from createpvc's output."""
    dag = dag_of("kubernetes_platform")
    assert upstream(dag, "createpvc") == set()
    assert upstream(dag, "write-file") == {"createpvc"}
    assert upstream(dag, "read-file") == {"createpvc", "write-file"}
    assert upstream(dag, "deletepvc") == {"createpvc", "read-file"}
    assert kind(dag, "createpvc") == "KfxPvcOperator"
    assert kind(dag, "deletepvc") == "KfxPvcOperator"
    assert kind(dag, "write-file") == "KfxContainerOperator"


def test_resource_placeholders_from_task_outputs_are_data_edges() -> None:
    """``set_cpu_limit(task.output)``: only the resources read those inputs."""
    dag = corpus_dag("pipeline_with_string_machine_fields_task_output.yaml")
    assert upstream(dag, "sum-numbers") == {"accelerator-limit", "accelerator-type", "cpu-limit", "memory-limit"}


# ---------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------


def test_condition_groups_have_a_gate_first() -> None:
    dag = dag_of("conditions")
    groups = dag.task_group_dict
    assert {g for g in groups if g} >= {"condition-1", "condition-2", "condition-3", "condition-3.condition-4", "condition-5"}
    expectations = {
        # group: (body task, gate upstream, condition text)
        "condition-1": ("say", {"coin"}, "inputs.parameter_values['pipelinechannel--coin-Output'] == 'heads'"),
        "condition-2": ("say-2", {"coin"}, "inputs.parameter_values['pipelinechannel--coin-Output'] == 'tails'"),
        "condition-3": ("say-3", {"number"}, "int(inputs.parameter_values['pipelinechannel--number-Output']) > 5"),
        "condition-3.condition-4": ("say-4", {"condition-3.kfx-condition"}, "inputs.parameter_values['pipelinechannel--mode'] == 'fast'"),
        # legacy dsl.Condition on a pipeline parameter: nothing upstream
        "condition-5": ("say-5", set(), "inputs.parameter_values['pipelinechannel--mode'] != 'fast'"),
    }
    for group_id, (body, gate_upstream, condition) in expectations.items():
        gate = f"{group_id}.kfx-condition"
        assert kind(dag, gate) == "KfxConditionOperator", gate
        assert group_of(dag, gate) == group_id
        assert upstream(dag, gate) == gate_upstream, gate
        assert dag.get_task(gate).kfx_task.condition == condition
        assert condition in dag.get_task(gate).doc_md
        assert rule(dag, gate) == "none_failed"
        body_id = f"{group_id}.{body}"
        assert group_of(dag, body_id) == group_id
        assert upstream(dag, body_id) == {gate}
        assert kind(dag, body_id) == "KfxContainerOperator"
        assert gate in {t.task_id for t in groups[group_id].children.values() if hasattr(t, "task_id")}


def test_nested_condition_group_and_gates() -> None:
    dag = dag_of("conditions")
    inner = dag.task_group_dict["condition-3.condition-4"]
    assert inner.parent_group.group_id == "condition-3"
    say4 = dag.get_task("condition-3.condition-4.say-4").kfx_task
    # the inner task honours both verdicts
    assert [g.task_id for g in say4.gates] == ["condition-3.kfx-condition", "condition-3.condition-4.kfx-condition"]
    # tasks before/outside a condition are not gated
    assert dag.get_task("coin").kfx_task.gates == ()
    assert dag.get_task("number").kfx_task.gates == ()


def test_condition_group_tooltips_are_the_kfp_names() -> None:
    dag = dag_of("conditions")
    tooltips = {g: dag.task_group_dict[g].tooltip for g in ("condition-1", "condition-2", "condition-3", "condition-3.condition-4", "condition-5")}
    assert tooltips == {
        "condition-1": "heads",
        "condition-2": "tails",
        "condition-3": "big",
        "condition-3.condition-4": "big-and-fast",
        "condition-5": "slow",
    }


def test_if_elif_else_branches() -> None:
    dag = dag_of("if_elif_else_oneof")
    branches = dag.task_group_dict["condition-branches-1"]
    assert branches.parent_group.group_id is None
    test_big = "int(inputs.parameter_values['pipelinechannel--echo-int-Output']) > 10"
    test_medium = "int(inputs.parameter_values['pipelinechannel--echo-int-Output']) > 5"
    conditions = {
        "condition-branches-1.condition-2": (test_big, "say"),
        "condition-branches-1.condition-3": (f"!({test_big}) && {test_medium}", "say-2"),
        "condition-branches-1.condition-4": (f"!({test_big}) && !({test_medium})", "say-3"),
    }
    for group_id, (condition, body) in conditions.items():
        assert dag.task_group_dict[group_id].parent_group.group_id == "condition-branches-1"
        gate = f"{group_id}.kfx-condition"
        assert dag.get_task(gate).kfx_task.condition == condition
        assert upstream(dag, gate) == {"echo-int"}
        assert upstream(dag, f"{group_id}.{body}") == {gate}
    # the OneOf consumer waits for every branch; skipped branches do not block it
    assert upstream(dag, "report") == {
        "condition-branches-1.condition-2.say",
        "condition-branches-1.condition-3.say-2",
        "condition-branches-1.condition-4.say-3",
    }
    assert rule(dag, "report") == "none_failed"


def test_if_else_oneof_artifacts_branches() -> None:
    dag = dag_of("if_else_oneof_artifacts")
    assert upstream(dag, "condition-branches-1.condition-2.kfx-condition") == set()  # a pipeline param
    assert dag.get_task("condition-branches-1.condition-3.kfx-condition").kfx_task.condition == (
        "!(inputs.parameter_values['pipelinechannel--fmt'] == 'csv')"
    )
    assert upstream(dag, "count-fields") == {
        "condition-branches-1.condition-2.make-csv",
        "condition-branches-1.condition-3.make-tsv",
    }


def test_condition_on_a_parameter_in_platform_fixture() -> None:
    dag = dag_of("kubernetes_platform")
    assert upstream(dag, "condition-1.kfx-condition") == set()
    assert upstream(dag, "condition-1.scratch") == {"condition-1.kfx-condition"}
    assert dag.get_task("condition-1.kfx-condition").kfx_task.condition == (
        "inputs.parameter_values['pipelinechannel--with_scratch'] == true"
    )


# ---------------------------------------------------------------------------
# Loops
# ---------------------------------------------------------------------------


def _mapped_group_expands_over(dag: Any, group_id: str, iterations_id: str) -> None:
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    group = dag.task_group_dict[group_id]
    assert isinstance(group, MappedTaskGroup), group_id
    iterations = dag.get_task(iterations_id)
    assert type(iterations).__name__ == "KfxIterationsOperator"
    expand = group._expand_input.value
    assert list(expand) == ["iteration"]
    assert expand["iteration"].operator is iterations
    assert iterations_id in group.upstream_task_ids
    for task_id in (t for t in group.children if not t.endswith("-iterations")):
        child = group.children[task_id]
        if hasattr(child, "task_id"):
            assert child.get_closest_mapped_task_group() is group


def test_parallel_for_is_an_iterations_task_and_a_mapped_group() -> None:
    dag = dag_of("loops")
    for loop, body in (("for-loop-2", "square"), ("for-loop-4", "multiply"), ("for-loop-5", "greet"), ("for-loop-6", "square-2")):
        iterations = f"{loop}-iterations"
        assert group_of(dag, iterations) is None  # beside the group, not in it
        _mapped_group_expands_over(dag, loop, iterations)
        assert upstream(dag, f"{loop}.{body}") == {iterations}
        assert dag.get_task(f"{loop}.{body}").kfx_task.loops == (iterations,)
    # item sources: raw JSON lists, a pipeline parameter, an upstream output
    from airflow_kfx.plan import Literal, Output, RunParam

    assert dag.get_task("for-loop-2-iterations").kfx_task.items == Literal([1, 2, 3])
    assert dag.get_task("for-loop-4-iterations").kfx_task.items == Literal([{"a": 1, "b": 10}, {"a": 2, "b": 20}])
    assert dag.get_task("for-loop-5-iterations").kfx_task.items == RunParam("names")
    items = dag.get_task("for-loop-6-iterations").kfx_task.items
    assert isinstance(items, Output) and items.task_id == "make-list"
    assert upstream(dag, "for-loop-2-iterations") == set()
    assert upstream(dag, "for-loop-5-iterations") == set()
    assert upstream(dag, "for-loop-6-iterations") == {"make-list"}


def test_parallelism_limits_concurrent_instances() -> None:
    dag = dag_of("loops")
    assert dag.get_task("for-loop-6.square-2").max_active_tis_per_dagrun == 2
    for task_id in ("for-loop-2.square", "for-loop-4.multiply", "for-loop-5.greet", "for-loop-6-iterations", "make-list"):
        assert dag.get_task(task_id).max_active_tis_per_dagrun is None, task_id


def test_collected_consumer_is_downstream_of_the_loop_body() -> None:
    dag = dag_of("loops")
    assert upstream(dag, "sum-ints") == {"for-loop-2.square"}
    assert upstream(dag, "sum-ints-2") == {"for-loop-6.square-2"}
    for task_id in ("sum-ints", "sum-ints-2"):
        assert group_of(dag, task_id) is None
        assert dag.get_task(task_id).kfx_task.loops == ()


def test_collected_artifacts_consumer() -> None:
    dag = dag_of("collected_artifacts")
    _mapped_group_expands_over(dag, "for-loop-2", "for-loop-2-iterations")
    assert upstream(dag, "sum-datasets") == {"for-loop-2.write-number"}
    assert upstream(dag, "merge-datasets") == {"for-loop-2.write-number"}
    assert upstream(dag, "count-lines") == {"merge-datasets"}


def test_nested_loop_is_hoisted_beside_its_outer_loop() -> None:
    dag = dag_of("nested_loops")
    hoisted = "for-loop-2__for-loop-3"
    assert dag.task_group_dict[hoisted].parent_group.group_id is None
    assert dag.task_group_dict[hoisted].tooltip == "for-loop-3"
    _mapped_group_expands_over(dag, "for-loop-2", "for-loop-2-iterations")
    _mapped_group_expands_over(dag, hoisted, f"{hoisted}-iterations")
    assert group_of(dag, f"{hoisted}-iterations") is None
    # the inner items come from a task of the outer loop
    assert upstream(dag, f"{hoisted}-iterations") == {"for-loop-2.make-range"}
    assert dag.get_task(f"{hoisted}-iterations").kfx_task.loops == ("for-loop-2-iterations",)
    multiply = dag.get_task(f"{hoisted}.multiply")
    assert multiply.kfx_task.loops == ("for-loop-2-iterations", f"{hoisted}-iterations")
    assert multiply.kfx_task.kfp_path == "for-loop-2/for-loop-3/multiply"
    assert upstream(dag, f"{hoisted}.multiply") == {f"{hoisted}-iterations"}
    # Collected over both levels
    assert upstream(dag, "total") == {f"{hoisted}.multiply"}


def test_condition_inside_a_loop() -> None:
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup, TaskGroup

    dag = dag_of("nested_loops")
    group = dag.task_group_dict["for-loop-5.condition-6"]
    assert type(group) is TaskGroup and not isinstance(group, MappedTaskGroup)
    assert group.parent_group.group_id == "for-loop-5"
    gate = "for-loop-5.condition-6.kfx-condition"
    assert upstream(dag, gate) == {"for-loop-5.parity"}
    assert dag.get_task(gate).get_closest_mapped_task_group().group_id == "for-loop-5"
    assert upstream(dag, "for-loop-5.condition-6.report-even") == {gate}


def test_corpus_loop_in_condition_in_loop_is_hoisted_inside_the_condition() -> None:
    dag = corpus_dag("pipeline_with_loops_and_conditions.yaml")
    hoisted = "condition-1.for-loop-2__condition-5__for-loop-7"
    assert dag.task_group_dict[hoisted].parent_group.group_id == "condition-1"
    assert upstream(dag, f"{hoisted}-iterations") == {"condition-1.for-loop-2.condition-5.kfx-condition"}
    # three levels deep: for-loop-2 > for-loop-9 > for-loop-10
    deepest = "condition-1.for-loop-2__for-loop-9__for-loop-10"
    assert dag.get_task(f"{deepest}.print-text-6").kfx_task.loops == (
        "condition-1.for-loop-2-iterations",
        "condition-1.for-loop-2__for-loop-9-iterations",
        f"{deepest}-iterations",
    )


def test_outer_loop_parallelism_still_limits_a_hoisted_inner_loop() -> None:
    dag = corpus_dag("pipeline_with_parallelfor_parallelism.yaml")
    assert dag.get_task("for-loop-1.print-text").max_active_tis_per_dagrun == 2
    assert dag.get_task("for-loop-1__for-loop-2.print-text-2").max_active_tis_per_dagrun is not None


# ---------------------------------------------------------------------------
# Exit handlers, ignore_upstream_failure and the run-status task
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exit_handler", "exit_handler_failing"])
def test_exit_task_runs_after_the_whole_group(name: str) -> None:
    dag = dag_of(name)
    group = "exit-handler-1"
    assert rule(dag, "report-status") == "all_done"
    assert group_of(dag, "report-status") is None
    leaves = group_leaves(dag, group)
    assert upstream(dag, "report-status") == leaves
    for task in pipeline_tasks(dag):
        if task.task_id.startswith(group + "."):
            assert rule(dag, task.task_id) == "none_failed", task.task_id
    # the run end: after everything, fails the run if anything failed
    end = dag.get_task("kfx-run-end")
    assert type(end).__name__ == "KfxRunBoundaryOperator"
    assert rule(dag, "kfx-run-end") == "all_done"
    assert end.retries == 0
    assert upstream(dag, "kfx-run-end") == {t.task_id for t in pipeline_tasks(dag)}
    assert end.downstream_task_ids == set()


def test_exit_handler_leaves_and_group_names() -> None:
    assert group_leaves(dag_of("exit_handler"), "exit-handler-1") == {"exit-handler-1.shout"}
    failing = dag_of("exit_handler_failing")
    assert group_leaves(failing, "exit-handler-1") == {"exit-handler-1.after-fail"}
    assert upstream(failing, "exit-handler-1.fail") == {"exit-handler-1.before"}
    assert failing.task_group_dict["exit-handler-1"].tooltip == "body"
    assert failing.task_group_dict["exit-handler-1"].label == "body"  # dsl.ExitHandler(name="body") in the grid
    assert dag_of("conditions").task_group_dict["condition-3.condition-4"].label == "big-and-fast"
    # the exit task sees the group's final status: all of its Airflow tasks
    from airflow_kfx.plan import FinalStatus

    status = failing.get_task("report-status").kfx_task.inputs["status"]
    assert status == FinalStatus(
        "exit-handler-1",
        ("exit-handler-1.after-fail", "exit-handler-1.before", "exit-handler-1.fail"),
        "exit-handler-failing",  # names the job in the status, as {{$.pipeline_job_resource_name}}
    )


def test_several_exit_handlers_each_wait_for_their_own_group() -> None:
    dag = corpus_dag("failing/pipeline_with_multiple_exit_handlers.yaml")
    for exit_task, group in (("print-op", "exit-handler-1"), ("print-op-3", "exit-handler-2"), ("print-op-5", "exit-handler-3")):
        assert rule(dag, exit_task) == "all_done"
        assert upstream(dag, exit_task) == group_leaves(dag, group), exit_task
    assert rule(dag, "kfx-run-end") == "all_done"


def test_ignore_upstream_failure() -> None:
    dag = dag_of("ignore_upstream_failure")
    assert rule(dag, "clean-up") == "all_done"
    assert upstream(dag, "clean-up") == {"fail-task"}
    assert rule(dag, "never-runs") == "none_failed"
    assert rule(dag, "fail-task") == "none_failed"
    assert rule(dag, "kfx-run-end") == "all_done"
    assert upstream(dag, "kfx-run-end") == {"fail-task", "clean-up", "never-runs"}


@pytest.mark.parametrize("name", ["loops", "conditions", "constants_and_outputs", "kubernetes_platform"])
def test_every_dag_starts_and_ends_with_the_run_boundaries(name: str) -> None:
    dag = dag_of(name)
    assert all(rule(dag, t.task_id) == "none_failed" for t in pipeline_tasks(dag))
    roots = {t.task_id for t in pipeline_tasks(dag) if not upstream(dag, t.task_id)}
    assert dag.get_task("kfx-run-start").downstream_task_ids == roots
    assert dag.get_task("kfx-run-end").upstream_task_ids == {t.task_id for t in pipeline_tasks(dag)}


def test_pipeline_as_exit_task_runs_all_done() -> None:
    dag = corpus_dag("pipeline_as_exit_task.yaml")
    assert rule(dag, "conditional-notification.get-run-state") == "all_done"
    assert upstream(dag, "conditional-notification.get-run-state") == {"exit-handler-1.fail-op", "exit-handler-1.print-op"}


def test_pipeline_as_exit_task_still_fails_the_run() -> None:
    dag = corpus_dag("pipeline_as_exit_task.yaml")
    assert "exit-handler-1.fail-op" in upstream(dag, "kfx-run-end")


# ---------------------------------------------------------------------------
# Nested pipelines, importers
# ---------------------------------------------------------------------------


def test_nested_pipelines_become_nested_groups() -> None:
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    dag = dag_of("nested_pipeline")
    groups = dag.task_group_dict
    assert groups["stats-pipeline"].parent_group.group_id is None
    assert groups["stats-pipeline.square-pipeline"].parent_group.group_id == "stats-pipeline"
    assert groups["check-pipeline"].parent_group.group_id is None
    assert not any(isinstance(g, MappedTaskGroup) for g in groups.values())
    assert {t.task_id for t in pipeline_tasks(dag)} == {
        "stats-pipeline.square-pipeline.square",
        "stats-pipeline.add-one",
        "stats-pipeline.write-report",
        "check-pipeline.read-report",
    }
    assert group_of(dag, "stats-pipeline.square-pipeline.square") == "stats-pipeline.square-pipeline"
    assert upstream(dag, "stats-pipeline.square-pipeline.square") == set()
    # a nested pipeline's output feeds the next task: the edge goes to its producer
    assert upstream(dag, "stats-pipeline.add-one") == {"stats-pipeline.square-pipeline.square"}
    assert upstream(dag, "stats-pipeline.write-report") == {"stats-pipeline.add-one"}
    assert upstream(dag, "check-pipeline.read-report") == {"stats-pipeline.write-report"}
    assert dag.get_task("check-pipeline.read-report").kfx_task.kfp_path == "check-pipeline/read-report"


def test_importer_operator() -> None:
    dag = dag_of("importer")
    for importer in ("importer", "importer-2"):
        assert kind(dag, importer) == "KfxImporterOperator"
        assert upstream(dag, importer) == set()
        assert "importer of `system." in dag.get_task(importer).doc_md
    assert upstream(dag, "describe-dataset") == {"importer"}
    assert upstream(dag, "describe-model") == {"importer-2"}
    assert kind(dag, "describe-dataset") == "KfxContainerOperator"


# ---------------------------------------------------------------------------
# Retries and caching
# ---------------------------------------------------------------------------


def test_retry_policy_becomes_airflow_retries() -> None:
    dag = dag_of("retry_caching")
    add = dag.get_task("add")  # set_retry(3, "1s", 2, "10s")
    assert add.retries == 3
    assert add.retry_delay == timedelta(seconds=1)
    assert add.retry_exponential_backoff == 2.0
    assert add.max_retry_delay == timedelta(seconds=10)
    for task_id in ("double", "increment", "double-2"):
        assert dag.get_task(task_id).retries == 0, task_id
        assert not dag.get_task(task_id).retry_exponential_backoff


def test_retry_policy_with_sdk_defaults() -> None:
    dag = dag_of("retry_once")
    flaky = dag.get_task("flaky")  # set_retry(num_retries=2): factor 2.0, max 3600s filled in
    assert flaky.retries == 2
    assert flaky.retry_exponential_backoff == 2.0
    assert flaky.max_retry_delay == timedelta(seconds=3600)
    assert dag.get_task("confirm").retries == 0


def test_retry_delays_follow_the_policy() -> None:
    """What Airflow will actually wait: 1s, 2s, 4s … capped at 10s (plus its jitter)."""
    add = dag_of("retry_caching").get_task("add")
    base = add.retry_delay.total_seconds()
    waits = [min(base * add.retry_exponential_backoff ** (n - 1), add.max_retry_delay.total_seconds()) for n in (1, 2, 3, 4, 5)]
    assert waits == [1, 2, 4, 8, 10]


def test_caching_options_are_carried() -> None:
    dag = dag_of("retry_caching")
    caching = {t.task_id: t.kfx_task.task.caching for t in pipeline_tasks(dag)}
    assert (caching["add"].enable_cache, caching["add"].cache_key) == (True, None)
    assert caching["double"].enable_cache is False  # set_caching_options(False) → cachingOptions: {}
    assert (caching["increment"].enable_cache, caching["increment"].cache_key) == (True, None)
    assert (caching["double-2"].enable_cache, caching["double-2"].cache_key) == (True, "kfx-fixture-v1")
    assert "caching: enabled (key `kfx-fixture-v1`)" in dag.get_task("double-2").doc_md
    assert "caching" not in dag.get_task("double").doc_md


# ---------------------------------------------------------------------------
# Names, tooltips, docs
# ---------------------------------------------------------------------------


def test_task_docs_name_the_kfp_task_component_and_image() -> None:
    dag = dag_of("conditions")
    doc = dag.get_task("condition-3.condition-4.say-4").doc_md
    assert "**KFP task** `condition-3/condition-4/say-4`" in doc
    assert "component `comp-say-4`" in doc
    assert "image: `python:3.11`" in doc
    assert "caching: enabled" in doc
    gate_doc = dag.get_task("condition-3.kfx-condition").doc_md
    assert gate_doc.startswith("Condition: `int(")
    loops = dag_of("loops")
    assert loops.get_task("for-loop-6-iterations").doc_md == "Iterations of loop `for-loop-6`"


def test_placeholder_component_images_in_docs() -> None:
    dag = dag_of("placeholders")
    for task in pipeline_tasks(dag):
        assert "image: `python:3.11`" in task.doc_md, task.task_id


def test_task_ids_stay_kfp_task_names() -> None:
    """``set_display_name`` never changes a task id (ids are used at run time)."""
    dag = dag_of("resources_env")
    assert {t.task_id for t in pipeline_tasks(dag)} == {"read-env", "sized", "on-gpu"}
    assert dag.get_task("read-env").kfx_task.task.display_name == "Read environment"


def test_display_names_reach_the_ui() -> None:
    dag = dag_of("resources_env")
    assert dag.get_task("read-env").task_display_name == "Read environment"
    assert dag.get_task("sized").task_display_name == "Small resources"
    assert dag_of("conditions").get_task("condition-1.say").task_display_name == "say-heads"


# ---------------------------------------------------------------------------
# Whole-DAG sanity over every fixture
# ---------------------------------------------------------------------------

ALL_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_builds_a_consistent_dag(name: str) -> None:
    dag = dag_of(name)
    ids = {t.task_id for t in pipeline_tasks(dag)}
    for task in pipeline_tasks(dag):
        assert upstream(dag, task.task_id) <= ids
        planned = getattr(task, "kfx_task", None)
        if planned is None:
            assert task.task_id.startswith("kfx-workspace"), task.task_id
            continue
        assert planned.task_id == task.task_id
        assert task.task_group.group_id == planned.group
        for gate in planned.gates:
            assert gate.task_id in ids
        for loop in planned.loops:
            assert loop in ids
    # acyclic, as Airflow requires (raises on a cycle)
    dag.check_cycle()


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_dag_survives_airflow_serialization(name: str) -> None:
    """What the scheduler and UI get: the serialized DAG keeps the structure."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dag_of(name)
    dag.validate()
    back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert set(back.task_dict) == set(dag.task_dict)
    for task in pipeline_tasks(dag):
        copy_ = back.get_task(task.task_id)
        assert set(copy_.upstream_task_ids) == set(task.upstream_task_ids), task.task_id
        assert copy_.trigger_rule == task.trigger_rule
        assert (copy_.retries, copy_.retry_delay, copy_.retry_exponential_backoff, copy_.max_retry_delay) == (
            task.retries, task.retry_delay, task.retry_exponential_backoff, task.max_retry_delay)
        assert copy_.max_active_tis_per_dagrun == task.max_active_tis_per_dagrun
        assert tuple(copy_.template_fields) == tuple(task.template_fields)
    assert {g: type(v).__name__.replace("Serialized", "") for g, v in back.task_group_dict.items()} == {
        g: type(v).__name__ for g, v in dag.task_group_dict.items()}
    assert {k: back.params.get_param(k).schema for k in back.params.keys()} == {
        k: dag.params.get_param(k).schema for k in dag.params.keys()}


def test_a_scheduled_pipeline_with_a_required_param_is_refused() -> None:
    """Airflow refuses a schedule when a param has no default (KFP's required inputs)."""
    with pytest.raises(Exception, match="required params"):
        load_pipeline(FIXTURES / "typed_params.yaml", schedule="@daily")
    assert type(load_pipeline(FIXTURES / "loops.yaml", schedule="@daily").timetable).__name__ != "NullTimetable"


def test_a_schedule_refused_by_airflow_does_not_hide_other_pipelines(tmp_path: Path) -> None:
    import shutil

    from airflow_kfx.loading import load_pipelines

    for name in ("typed_params", "loops"):
        shutil.copy(FIXTURES / f"{name}.yaml", tmp_path)
    (tmp_path / "kfx.yaml").write_text("defaults:\n  schedule: '@daily'\n")
    report = load_pipelines(tmp_path)
    assert "loops" in report.dags
    assert any("typed_params" in key for key in report.errors)


def test_loading_leaves_garbage_collection_as_it_found_it(tmp_path: Path) -> None:
    """Garbage collection is paused while DAGs are built (a parse-time saving) and back on
    afterwards, also when a file fails to load; a caller that had it off keeps it off."""
    import gc
    import shutil

    from airflow_kfx.exceptions import SpecError
    from airflow_kfx.loading import load_pipelines

    shutil.copy(FIXTURES / "loops.yaml", tmp_path)
    (tmp_path / "broken.yaml").write_text("pipelineInfo: [")
    assert gc.isenabled()
    report = load_pipelines(tmp_path)
    assert "loops" in report.dags and report.errors and gc.isenabled()
    with pytest.raises(SpecError):
        load_pipeline(tmp_path / "broken.yaml")
    assert gc.isenabled()
    gc.disable()
    try:
        load_pipelines(tmp_path)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_corpus_is_available() -> None:
    assert Path(CORPUS).is_dir(), f"KFP corpus not found at {CORPUS}"


def test_trigger_form_fields_carry_the_pipelines_own_descriptions() -> None:
    """KFP puts the pipeline docstring's ``Args:`` into the compiled YAML; the trigger form
    shows them, and a dict parameter is a JSON-object field with its default."""
    dag = load_pipeline(REPO / "dags" / "pipelines" / "training.yaml")
    assert dag.params.get_param("n_estimators").description == "Number of boosting stages."
    assert dag.params.get_param("test_size").description == "Share of the rows held out for evaluation (0 to 1)."
    options = dag.params.get_param("model_options")
    assert options.schema["type"] == "object"
    assert options.value == {"learning_rate": 0.1, "max_depth": 3}
