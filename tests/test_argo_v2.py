"""KFP v2 backend-compiled Argo workflows (``test_data/compiled-workflows``) load as the
pipeline they were compiled from (v1 workflows: tests/test_argo_v1.py); a broken workflow gives a
SpecError naming the file, a YAML path and a line. Parsing only: no DAG is built or run."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from airflow_kfx.spec.loader import load_pipeline_file, load_pipeline_text
from airflow_kfx.spec.model import Component, Constant, Pipeline, Task, TaskOutput
from airflow_kfx.spec.platform_model import KubernetesExecutorConfig, SecurityContext
from tests.support import CORPUS, VALID, corpus_files

WORKFLOWS = CORPUS / "test_data" / "compiled-workflows"
LOADED_FLOOR = 147  # all of them, today
HELLO = WORKFLOWS / "hello_world.yaml"


@cache
def _load(path: Path) -> Pipeline:
    """Loaded once per test process (the corpus tests share them); never the disk cache."""
    return load_pipeline_file(path, use_cache=False)


def _text(text: str, file: str = "wf.yaml") -> Pipeline:
    return load_pipeline_text(text, file=file)


# ---------------------------------------------------------------------------
# 1. The corpus: loaded, or refused by feature, nothing else
# ---------------------------------------------------------------------------


def test_every_compiled_workflow_loads_or_is_refused_by_name() -> None:
    paths = sorted(WORKFLOWS.glob("*.yaml"))
    assert len(paths) == 147
    tally: Counter[str] = Counter()
    for path in paths:  # any other exception (or a plain SpecError) fails the test
        try:
            _load(path)
        except UnsupportedFeatureError as err:
            assert err.feature and err.feature in str(err) and str(path) in str(err)
            tally[f"refused: {err.feature}"] += 1
        else:
            tally["loaded"] += 1
    print("\nKFP v2 backend-compiled workflows:", dict(sorted(tally.items())))
    assert tally["loaded"] >= LOADED_FLOOR


def test_v1_workflows_go_to_argo_v1_and_foreign_manifests_stay_refused() -> None:
    # v1 workflows are no longer refused as a whole: tests/test_argo_v1.py tallies them.
    v1 = corpus_files("v1 Argo workflow")
    assert len(v1) == 53
    for path in v1:
        try:
            _load(path)
        except SpecError as err:
            assert not (isinstance(err, UnsupportedFeatureError) and err.feature == "KFP v1 Argo workflow"), err
    template = HELLO.read_text().replace("kind: Workflow", "kind: WorkflowTemplate", 1)
    with pytest.raises(UnsupportedFeatureError, match="Argo WorkflowTemplate"):
        _text(template)
    with pytest.raises(SpecError, match="without 'kind: Workflow'") as caught:
        _text("apiVersion: argoproj.io/v1alpha1\ninvalidKey: something\n")
    assert not isinstance(caught.value, UnsupportedFeatureError)


# ---------------------------------------------------------------------------
# 2. Faithfulness: the workflow gives the model its SDK-compiled original gives
# ---------------------------------------------------------------------------

# How pairs are matched: KFP's compiler test (backend/test/compiler/argo_ginkgo_test.go)
# compiles every file under sdk_compiled_pipelines/valid/** to compiled-workflows/<same
# base name>.yaml and compares it with the golden there; the corpus takes both from one
# commit, so a same-named original is the very input of the workflow (not another SDK
# version's). Two names have two originals (the root and critical/ if_else_with_oneof_
# artifacts, pipeline_with_importer .yaml and .json): the golden must equal the compiled
# result of each, so both are compared. A pair also needs the same pipeline name.


@cache
def _originals() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(VALID.rglob("*")):
        if path.suffix in (".yaml", ".json"):
            found.setdefault(path.stem, []).append(path)
    return found


def _pairs() -> list[tuple[Path, Path]]:
    return [(workflow, original) for workflow in sorted(WORKFLOWS.glob("*.yaml"))
            for original in _originals().get(workflow.stem, [])]


def _reachable(pipeline: Pipeline) -> set[str]:
    """Components the root's DAG reaches: the compiler visits only those."""
    seen: set[str] = set()
    pending = [pipeline.root]
    while pending:
        dag = pending.pop().dag
        for task in dag.tasks.values() if dag else ():
            if task.component not in seen:
                seen.add(task.component)
                pending.append(pipeline.components[task.component])
    return seen


def _task(task: Task) -> Task:
    """A task as compared: KFP's compiler adds each data producer to dependentTasks (and
    sorts them; addImplicitDependencies), which the SDK leaves implicit; locations name
    different files."""
    producers = {i.source.producer_task for i in task.inputs.values() if isinstance(i.source, TaskOutput)}
    return dataclasses.replace(task, location=None, dependent_tasks=tuple(sorted({*task.dependent_tasks, *producers})))


def _component(component: Component) -> Component:
    """A component as compared: the executor label is compared through the executor it
    names (components with one container share one spec parameter in the workflow, so a
    label may be a sibling's, e.g. comp-print-op-2 → exec-print-op)."""
    dag = component.dag
    if dag is not None:
        dag = dataclasses.replace(dag, tasks={name: _task(t) for name, t in dag.tasks.items()})
    return dataclasses.replace(component, location=None, executor_label=None, dag=dag)


def _executor(pipeline: Pipeline, component: Component) -> Any:
    if component.executor_label is None:
        return None
    executor = pipeline.executors[component.executor_label]
    return dataclasses.replace(executor, label="", location=None)


def _k8s(pipeline: Pipeline, component: Component) -> KubernetesExecutorConfig | None:
    if pipeline.platform is None or component.executor_label is None:
        return None
    return pipeline.platform.executors.get(component.executor_label)


def _with_run_as_user(config: KubernetesExecutorConfig | None, user: int) -> KubernetesExecutorConfig:
    """The API server's PIPELINE_RUN_AS_USER (workflow spec.securityContext.runAsUser)
    applies to every pod; a task's own kfp-kubernetes setting wins."""
    config = config or KubernetesExecutorConfig()
    context = config.security_context or SecurityContext()
    if context.run_as_user is None:
        context = dataclasses.replace(context, run_as_user=user)
    return dataclasses.replace(config, security_context=context)


def _assert_same_pipeline(original: Pipeline, rebuilt: Pipeline, run_as_user: int | None) -> None:
    # Not compared: source_file, digest (different files); sdk_version, display_name,
    # description (the compiler keeps only pipelineInfo.name); schema_version (always
    # 2.1.0, the only one KFP accepts); default_pipeline_root: the workflow keeps only a
    # runtime-config pipeline root (KFP's driver never reads the spec's), checked below.
    assert rebuilt.name == original.name
    assert rebuilt.schema_version == "2.1.0" and rebuilt.sdk_version is None
    assert rebuilt.default_pipeline_root in (None, original.default_pipeline_root)
    assert _component(rebuilt.root) == _component(original.root)  # inputs, outputs, DAG
    assert set(rebuilt.components) == _reachable(original)
    for name, component in rebuilt.components.items():
        source = original.components[name]
        assert _component(component) == _component(source), name
        assert _executor(rebuilt, component) == _executor(original, source), name
        expected = _k8s(original, source)
        executor = rebuilt.executors.get(component.executor_label or "")
        if run_as_user is not None and executor is not None and executor.container is not None:
            expected = _with_run_as_user(expected, run_as_user)
        assert _k8s(rebuilt, component) == expected, name
    original_config = original.platform.pipeline_config if original.platform else None
    rebuilt_config = rebuilt.platform.pipeline_config if rebuilt.platform else None
    assert rebuilt_config == original_config


def test_workflows_rebuild_the_pipeline_they_were_compiled_from() -> None:
    compared: list[str] = []
    for workflow, original_path in _pairs():
        original, rebuilt = _load(original_path), _load(workflow)
        if original.name != rebuilt.name:
            continue
        document = yaml.load(workflow.read_text(), Loader=yaml.CSafeLoader)
        run_as_user = document["spec"].get("securityContext", {}).get("runAsUser")
        try:
            _assert_same_pipeline(original, rebuilt, run_as_user)
        except AssertionError as err:
            raise AssertionError(f"{workflow.name} vs {original_path.relative_to(VALID)}: {err}") from err
        compared.append(workflow.stem)
    print(f"\n{len(compared)} workflow/original pairs agree ({len(set(compared))} workflows)")
    assert len(compared) == 149 and len(set(compared)) == 147


# ---------------------------------------------------------------------------
# 3. Broken workflows: a SpecError with the file, a YAML path and a line
# ---------------------------------------------------------------------------


def _hello() -> str:
    return HELLO.read_text()


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


HASH = "fd2b3a3d7effc63b08efb8931fd4ce26f2a7f37c1c384e37958e43cfe244499a"
ROOT_JSON = ('{"dag":{"tasks":{"echo":{"cachingOptions":{"enableCache":true},'
             '"componentRef":{"name":"comp-echo"},"taskInfo":{"name":"echo"}}}}}')


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        pytest.param(ROOT_JSON, "{not json", "spec.arguments.parameters[2].value", "is not valid JSON",
                     id="root-not-json"),
        pytest.param(f"workflow.parameters.components-{HASH}}}}}'\n          - name: task",
                     "workflow.parameters.components-0000}}'\n          - name: task",
                     "spec.templates[3].dag.tasks[0].arguments.parameters[0].value",
                     "'components-0000', which spec.arguments.parameters does not define", id="missing-hash"),
        pytest.param('"componentRef":{"name":"comp-echo"},"taskInfo":{"name":"echo"}}}}}',
                     '"componentRef":{"name":"comp-other"},"taskInfo":{"name":"echo"}}}}}',
                     "spec.arguments.parameters[2].value.dag.tasks.echo.componentRef.name",
                     "no driver task of the workflow runs component 'comp-other'", id="unknown-component"),
        pytest.param('value: \'{"executorLabel":"exec-echo"}\'', "value: '{}'",
                     "spec.arguments.parameters[0].value", "needs either 'dag' or 'executorLabel'",
                     id="component-without-body"),
        pytest.param('"image":"registry.access.redhat.com/ubi9/python-311:latest"', '"image":7',
                     "spec.arguments.parameters[1].value.image", "expected a string", id="bad-image"),
        pytest.param('"taskInfo":{"name":"echo"}}}}}', '"taskInfo":{"name":"echo"},"dependentTasks":["nope"]}}}}',
                     "spec.arguments.parameters[2].value.dag.tasks.echo.dependentTasks", "nope",
                     id="dangling-dependency"),
        pytest.param("- --pipeline_name\n      - echo", "- --pipeline_name\n      - other",
                     "spec.templates", "disagree on the pipeline name", id="two-names"),
        pytest.param("- name: components-root", "- name: components-root\n      value: '{}'\n    - name: components-root",
                     "spec.arguments.parameters[3].name", "defined twice", id="duplicate-parameter"),
        pytest.param("- name: components-root", "- name: kubernetes-comp-nope\n      value: '{}'\n    - name: components-root",
                     "spec.arguments.parameters[2].value", "runs no executor", id="stray-kubernetes-config"),
    ],
)
def test_a_broken_workflow_names_file_path_and_line(old: str, new: str, path: str, message: str) -> None:
    text = _hello()
    assert old in text
    broken = text.replace(old, new, 1)
    with pytest.raises(SpecError) as caught:
        _text(broken, "broken.yaml")
    err = caught.value
    assert not isinstance(err, UnsupportedFeatureError), err
    assert err.file == "broken.yaml" and err.line is not None, err
    assert (err.yaml_path or "").startswith(path), err
    assert message in str(err)
    assert str(err).startswith(f"broken.yaml:{err.line}: ")


def test_an_error_inside_a_parameter_points_at_its_line() -> None:
    text = _hello().replace('"args":["hello world"]', '"args":"hello world"', 1)
    with pytest.raises(SpecError) as caught:
        _text(text, "broken.yaml")
    assert caught.value.line == _line_of(text, f"- name: implementations-{HASH}") + 1
    assert caught.value.yaml_path == "spec.arguments.parameters[1].value.args"


@pytest.mark.parametrize(
    ("old", "new", "feature"),
    [
        ("  entrypoint: entrypoint\n", "  entrypoint: entrypoint\n  ttlStrategy:\n    secondsAfterCompletion: 5\n",
         "Argo workflow spec.ttlStrategy"),
        ("    - name: components-root\n", "    - name: pipeline-root\n      value: x\n    - name: components-root\n",
         "Argo workflow parameter"),
        ('      pipelines.kubeflow.org/v2_component: "true"\n  securityContext',
         '      pipelines.kubeflow.org/v2_component: "true"\n      team: a\n  securityContext',
         "Argo workflow spec.podMetadata"),
        ("    runAsNonRoot: true\n    seccompProfile", "    runAsNonRoot: true\n    fsGroup: 3\n    seccompProfile",
         "Argo workflow spec.securityContext.fsGroup"),
        ("      - --ca_cert_path\n", "      - --default_run_as_user\n      - '5'\n      - --ca_cert_path\n",
         "backend option --default_run_as_user"),
        ("value: '{}'\n          - name: driver-type", "value: '{\"failurePolicy\":\"PIPELINE_FAILURE_POLICY_FAST\"}'\n"
         "          - name: driver-type", "runtime-config failurePolicy"),
    ],
)
def test_workflow_settings_without_a_place_in_the_spec_are_refused(old: str, new: str, feature: str) -> None:
    text = _hello()
    assert old in text
    with pytest.raises(UnsupportedFeatureError) as caught:
        _text(text.replace(old, new, 1))
    assert caught.value.feature == feature and caught.value.line is not None


def _mutations(value: str) -> list[str]:
    return [value[: len(value) // 2], "[]", "{}", '{"dag":3}', '"x"', value.replace("{", "[", 1), "null"]


@pytest.mark.parametrize("name", ["hello_world", "pipeline_with_exit_handler", "pipeline_with_importer",
                                  "pipeline_with_secret_as_env", "pipeline_with_workspace"])
def test_mutated_parameters_are_refused_with_a_location(name: str) -> None:
    """Each JSON parameter cut in half or replaced by the wrong JSON type: a SpecError at a
    line of the file, never another exception. (The mutants are written as JSON text, which
    is YAML too and much faster to write.)"""
    document = yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())
    outcomes: Counter[str] = Counter()
    for index, parameter in enumerate(document["spec"]["arguments"]["parameters"]):
        for mutant in _mutations(parameter["value"]):
            changed = json.loads(json.dumps(document))
            changed["spec"]["arguments"]["parameters"][index]["value"] = mutant
            try:
                _text(json.dumps(changed, indent=1), f"{name}.yaml")
            except SpecError as err:
                assert err.line is not None and str(err).startswith(f"{name}.yaml:{err.line}: "), err
                assert err.yaml_path, err
                outcomes["refused"] += 1
            else:
                outcomes["loaded"] += 1
    assert outcomes["refused"] > 0


# ---------------------------------------------------------------------------
# What the workflow says beyond the parameters
# ---------------------------------------------------------------------------


def test_run_values_pipeline_root_and_cache_switch_are_kept() -> None:
    text = (WORKFLOWS / "component_with_env_variable.yaml").read_text()
    original = _text(text)
    assert original.root.inputs.parameters["var_name"].default == "KFP_TEST_ENV_VAR"
    assert original.default_pipeline_root is None
    assert all(t.caching.enable_cache for t in original.root.dag.tasks.values())
    changed = text.replace('{"parameterValues":{"var_name":"KFP_TEST_ENV_VAR"}}',
                           '{"gcsOutputDirectory":"s3://bucket/root","parameterValues":{"var_name":"OTHER"}}', 1)
    changed = re.sub(r"--cache_disabled=false", "--cache_disabled=true", changed)
    pipeline = _text(changed)
    assert pipeline.root.inputs.parameters["var_name"].default == "OTHER"  # what this run ran with
    assert pipeline.default_pipeline_root == "s3://bucket/root"
    assert not any(t.caching.enable_cache for t in pipeline.root.dag.tasks.values())
    with pytest.raises(SpecError, match="'nope', which is not an input of the pipeline"):
        _text(text.replace('{"parameterValues":{"var_name"', '{"parameterValues":{"nope"', 1))


def test_run_as_user_reaches_every_container_executor() -> None:
    pipeline = _load(WORKFLOWS / "run_as_user_cache_enabled.yaml")
    assert pipeline.platform is not None
    for label, executor in pipeline.executors.items():
        if executor.container is not None:
            assert pipeline.platform.executors[label].security_context == SecurityContext(run_as_user=1001)


def _two_tasks_one_container(configure: Callable[[dict[str, Any]], None]) -> str:
    """hello_world with a second task on comp-echo-2, whose executor has the same container
    (so the compiler kept one components-<hash> parameter for both)."""
    document = yaml.safe_load(_hello())
    parameters = document["spec"]["arguments"]["parameters"]
    root = json.loads(parameters[2]["value"])
    root["dag"]["tasks"]["echo-2"] = {"componentRef": {"name": "comp-echo-2"}, "taskInfo": {"name": "echo-2"}}
    parameters[2]["value"] = json.dumps(root)
    dag = next(t for t in document["spec"]["templates"] if t["name"] == "root")["dag"]
    driver = json.loads(json.dumps(dag["tasks"][0]))
    driver["name"] = "echo-2-driver"
    for argument in driver["arguments"]["parameters"]:
        if argument["name"] == "task":
            argument["value"] = json.dumps(root["dag"]["tasks"]["echo-2"])
    dag["tasks"].append(driver)
    configure(document)
    return yaml.safe_dump(document)


def test_components_sharing_a_container_keep_their_own_kubernetes_config() -> None:
    def secret_for_echo_2(document: dict[str, Any]) -> None:
        config = {"secretAsEnv": [{"secretName": "s", "keyToEnv": [{"secretKey": "k", "envVar": "E"}]}]}
        document["spec"]["arguments"]["parameters"].append({"name": "kubernetes-comp-echo-2", "value": json.dumps(config)})
        driver = document["spec"]["templates"][3]["dag"]["tasks"][-1]
        driver["arguments"]["parameters"].append(
            {"name": "kubernetes-config", "value": "{{workflow.parameters.kubernetes-comp-echo-2}}"})

    shared = _text(_two_tasks_one_container(lambda document: None))
    assert shared.components["comp-echo-2"].executor_label == "exec-echo"  # same container, same executor
    assert shared.platform is None
    pipeline = _text(_two_tasks_one_container(secret_for_echo_2))
    first, second = pipeline.components["comp-echo"], pipeline.components["comp-echo-2"]
    assert (first.executor_label, second.executor_label) == ("exec-echo", "exec-echo-2")
    assert pipeline.executors["exec-echo"].container == pipeline.executors["exec-echo-2"].container
    assert pipeline.platform is not None and set(pipeline.platform.executors) == {"exec-echo-2"}
    assert pipeline.platform.executors["exec-echo-2"].secret_as_env[0].secret_name == Constant("s")
