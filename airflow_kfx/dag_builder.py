"""Plan → Airflow DAG: task groups, mapped task groups, operators and edges."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_kfx.config import CACHE_PARAM, KfxSettings
from airflow_kfx.plan import CONDITION, EXECUTOR, ITERATIONS, RUN_START_TASK, Plan, PlannedTask, build_plan
from airflow_kfx.spec.model import Pipeline, RetryPolicy

RUN_END_TASK = "kfx-run-end"
WORKSPACE_TASK = "kfx-workspace"


def default_dag_id(pipeline: Pipeline) -> str:
    """``my-pipeline`` → ``my_pipeline`` (Airflow ids allow [A-Za-z0-9_.-])."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", pipeline.name).strip("_") or "kfp_pipeline"


def build_dag(
    pipeline: Pipeline,
    *,
    dag_id: str | None = None,
    schedule: Any = None,
    settings: KfxSettings | None = None,
    **dag_kwargs: Any,
) -> Any:
    """One Airflow DAG for one pipeline."""
    from airflow.sdk import DAG

    settings = settings or KfxSettings()
    plan = build_plan(pipeline)
    dag_kwargs.setdefault("tags", sorted({"kfp", *settings.tags}))
    dag_kwargs.setdefault("description", pipeline.description or pipeline.display_name or pipeline.name)
    dag_kwargs.setdefault("doc_md", _dag_doc(pipeline))
    dag_kwargs.setdefault("render_template_as_native_obj", False)
    if pipeline.run_deadline_seconds is not None:
        dag_kwargs.setdefault("dagrun_timeout", timedelta(seconds=pipeline.run_deadline_seconds))
    dag = DAG(
        dag_id=dag_id or settings.dag_id or default_dag_id(pipeline),
        schedule=schedule if schedule is not None else settings.schedule,
        params=pipeline_params(pipeline),
        **dag_kwargs,
    )
    _populate(dag, plan, settings)
    return dag


def pipeline_params(pipeline: Pipeline) -> dict[str, Any]:
    """Typed Airflow params for the pipeline's parameters (the trigger form in the UI).

    Their JSON schemas (:func:`airflow_kfx.values.json_schema`) let Airflow reject a
    value of the wrong type when the run is triggered; ``kfx-run-start`` then converts
    and checks every value with the same rules before any task runs.
    """
    from airflow.sdk import Param

    from airflow_kfx.params import list_item_types, nullable, run_parameter
    from airflow_kfx.values import ParameterValueError, json_schema, type_label

    params: dict[str, Any] = {}
    for name, spec in pipeline.root.inputs.parameters.items():
        item_type = list_item_types(pipeline).get(name)
        try:  # Airflow checks the default against the schema too: one its items refuse opens them
            if item_type and spec.has_default and spec.default is not None:
                run_parameter(pipeline, name, spec.default, given=True)
        except ParameterValueError:
            item_type = None
        description = spec.description or f"KFP {type_label(spec.type, item_type)} parameter"
        if spec.type.value == "LIST":
            description += " (in the form: one item per line)"
        default = (spec.default,) if spec.has_default else (None,) if spec.optional else ()
        schema = json_schema(spec.type, item_type, nullable=nullable(spec))
        params[name] = Param(*default, description=description, **schema)
    params[CACHE_PARAM] = Param(
        True,
        type="boolean",
        description="Reuse the outputs of earlier identical task executions (KFP caching); false runs every task.",
    )
    for name, artifact in pipeline.root.inputs.artifacts.items():
        params[name] = Param(
            None if artifact.optional else "",
            type=["string", "null"] if artifact.optional else "string",
            description=f"URI of the input artifact ({artifact.schema_title})",
        )
    return params


def _populate(dag: Any, plan: Plan, settings: KfxSettings) -> None:
    from airflow.sdk import TaskGroup
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup
    from airflow.sdk.definitions.xcom_arg import XComArg

    operators: dict[str, Any] = {}
    groups: dict[str, Any] = {}

    def group_for(group_id: str | None) -> Any:
        if group_id is None:
            return None
        if group_id in groups:
            return groups[group_id]
        planned_group = plan.groups[group_id]
        parent = group_for(planned_group.parent)
        common = {
            "group_id": planned_group.name,
            "parent_group": parent,
            "dag": dag,
            "tooltip": planned_group.tooltip,
        }
        if planned_group.tooltip and planned_group.tooltip != planned_group.name:
            # KFP's name for it (an ExitHandler's name=, a sub-pipeline's display name)
            # in the grid and graph, where Airflow shows the group id otherwise.
            common["group_display_name"] = planned_group.tooltip
        if planned_group.iterations_task:
            expand = DictOfListsExpandInput({"iteration": XComArg(operators[planned_group.iterations_task])})
            group = MappedTaskGroup(expand_input=expand, **common)
        else:
            group = TaskGroup(**common)
        groups[group_id] = group
        return group

    from airflow_kfx.operators.container import pod_defaults

    defaults = pod_defaults(settings)  # once per DAG, not once per task
    for planned in plan.tasks.values():
        group = group_for(planned.group)
        operator = _make_operator(dag, plan, planned, group, settings, defaults)
        if operator.task_id != planned.task_id:  # the plan's ids are used at run time
            raise AssertionError(f"planned {planned.task_id}, Airflow made {operator.task_id}")
        operators[planned.task_id] = operator
    for planned in plan.tasks.values():
        for upstream in sorted(planned.upstream):
            operators[upstream] >> operators[planned.task_id]
    for group_id, group in groups.items():
        iterations = plan.groups[group_id].iterations_task
        if iterations:
            # What MappedTaskGroup.__exit__ does: Airflow finds the task to expand
            # over through the group's upstream ids.
            group.set_upstream(operators[iterations])
    _add_run_boundaries(dag, plan, operators, settings)


def _add_run_boundaries(dag: Any, plan: Plan, operators: dict[str, Any], settings: KfxSettings) -> None:
    """Tasks around the pipeline: ``kfx-run-start`` opens the MLflow run (before any
    task, so tasks never race to create it), the KFP workspace volume is created and
    removed when the pipeline has one, and ``kfx-run-end`` — after everything — closes
    the MLflow run and fails the DAG run if any task failed. KFP marks such runs
    FAILED even when exit handlers succeed; Airflow would go by its last tasks.
    """
    from airflow_kfx.operators.control import KfxRunBoundaryOperator, KfxWorkspaceOperator

    common = {"dag": dag, "kfx_pipeline": plan.pipeline, "kfx_settings": settings, "retries": 0}
    first = start = KfxRunBoundaryOperator(
        task_id=RUN_START_TASK, kfx_plan=plan, doc_md="Opens this run's MLflow run.", **common
    )
    end = KfxRunBoundaryOperator(
        task_id=RUN_END_TASK, kfx_plan=plan, end=True, trigger_rule="all_done",
        doc_md="Closes this run's MLflow run; fails the DAG run if any task failed.", **common,
    )
    planned = list(operators.values())
    if plan.pipeline.workspace is not None:
        first = KfxWorkspaceOperator(task_id=WORKSPACE_TASK, doc_md="Creates this run's KFP workspace volume.", **common)
        start >> first
        cleanup = KfxWorkspaceOperator(
            task_id=WORKSPACE_TASK + "-cleanup", remove=True, trigger_rule="all_done",
            doc_md="Removes this run's KFP workspace volume.", **common,
        )
        for operator in planned:
            operator >> cleanup
        cleanup >> end
    for operator in planned:
        if not operator.upstream_task_ids:
            first >> operator
        operator >> end


def _make_operator(dag: Any, plan: Plan, planned: PlannedTask, group: Any, settings: KfxSettings,
                   pod_defaults: Mapping[str, Any]) -> Any:
    common: dict[str, Any] = {
        "task_id": planned.name,
        "dag": dag,
        "task_group": group,
        "trigger_rule": "all_done" if planned.all_done else "none_failed",
        "kfx_pipeline": plan.pipeline,
        "kfx_task": planned,
        "kfx_settings": settings,
    }
    limit = _parallelism_limit(plan, planned)
    if limit:
        common["max_active_tis_per_dagrun"] = limit
    if planned.kind == CONDITION:
        from airflow_kfx.operators.control import KfxConditionOperator

        return KfxConditionOperator(doc_md=f"Condition: `{planned.condition}`", **common)
    if planned.kind == ITERATIONS:
        from airflow_kfx.operators.control import KfxIterationsOperator

        return KfxIterationsOperator(doc_md=f"Iterations of loop `{planned.kfp_path}`", **common)
    assert planned.kind == EXECUTOR and planned.task is not None
    common.update(_retry_kwargs(planned.task.retry))
    if planned.task.display_name and planned.task.display_name != planned.task.name:
        common["task_display_name"] = planned.task.display_name  # dsl set_display_name
    executor = plan.pipeline.executors[planned.executor]  # type: ignore[index]
    common["doc_md"] = _task_doc(plan.pipeline, planned)
    if executor.container is not None:
        from airflow_kfx.operators.container import KfxContainerOperator

        return KfxContainerOperator(kfx_pod_defaults=pod_defaults, **common)
    if executor.importer is not None:
        from airflow_kfx.operators.control import KfxImporterOperator

        return KfxImporterOperator(**common)
    from airflow_kfx.operators.control import KfxPvcOperator

    return KfxPvcOperator(**common)


def _parallelism_limit(plan: Plan, planned: PlannedTask) -> int | None:
    """``ParallelFor(parallelism=n)`` → at most n concurrent instances per task.

    A task in nested loops gets the smallest limit of its loops: the flattened
    (outer × inner) group has one instance per inner iteration, so this can only
    be stricter than KFP, never looser.
    """
    limits = [
        group.parallelism_limit
        for group in plan.groups.values()
        if group.iterations_task in planned.loops and group.parallelism_limit
    ]
    return min(limits) if limits else None


def _retry_kwargs(retry: RetryPolicy | None) -> dict[str, Any]:
    if retry is None or retry.max_retry_count <= 0:
        return {"retries": 0}
    kwargs: dict[str, Any] = {"retries": retry.max_retry_count}
    # KFP's backend defaults (argo): 0s backoff unless set.
    kwargs["retry_delay"] = timedelta(seconds=retry.backoff_seconds or 0)
    if retry.backoff_factor and retry.backoff_factor > 1:
        kwargs["retry_exponential_backoff"] = float(retry.backoff_factor)
    if retry.backoff_max_seconds:
        kwargs["max_retry_delay"] = timedelta(seconds=retry.backoff_max_seconds)
    return kwargs


def _dag_doc(pipeline: Pipeline) -> str:
    lines = [f"# {pipeline.display_name or pipeline.name}", ""]
    if pipeline.description:
        lines += [pipeline.description, ""]
    lines += [
        f"Compiled KFP pipeline `{pipeline.name}` loaded by airflow-kfx.",
        "",
        f"- source: `{pipeline.source_file}`",
        f"- sha256: `{pipeline.digest}`",
        f"- KFP SDK: `{pipeline.sdk_version or 'unknown'}`, schema `{pipeline.schema_version or 'unknown'}`",
    ]
    return "\n".join(lines)


def _task_doc(pipeline: Pipeline, planned: PlannedTask) -> str:
    executor = pipeline.executors[planned.executor]  # type: ignore[index]
    lines = [f"**KFP task** `{planned.kfp_path}` — component `{planned.component}`", ""]
    if executor.container is not None:
        lines.append(f"image: `{executor.container.image}`")
    if executor.importer is not None:
        lines.append(f"importer of `{executor.importer.schema_title}`")
    if planned.task and planned.task.caching.enable_cache:
        key = planned.task.caching.cache_key
        lines.append(f"caching: enabled{f' (key `{key}`)' if key else ''}")
    return "\n".join(lines)
