"""KFP backend conformance: what each pipeline of KFP's own backend test set must do here.

KFP's backend tests run every pipeline of ``test_data/sdk_compiled_pipelines/valid/``
``critical/`` and ``essential/`` and expect the run to SUCCEED; those of ``failing/``
must end FAILED with their exit handlers run. ``tests/test_conformance.py`` runs each
one with ``kfx run --json`` on the ``local`` runtime and checks it against this table.

``expected`` is what a run on this machine must end with:

- ``success`` / ``failed``: as KFP's backend tests expect;
- ``needs: <what>``: the pipeline cannot succeed without something this machine does
  not have (a Kubernetes secret, network access, an OCI image, ...). The run must end
  failed and its log must name the need (``evidence``, by default the text after
  ``needs:``): in airflow-kfx's own task error (``named_by="airflow-kfx"``, a
  ``TaskRuntimeError``), or, for what only the component can know (a data set on the
  network, an SDK feature), in the component's output (``named_by="component"``).

``bug`` marks a case that fails today because of airflow-kfx; its test is
``xfail(strict=True)`` with this diagnosis, so a fix makes the suite say so.

Values come from each pipeline's embedded Python source and KFP's semantics (see the
comments); random components are checked with :class:`OneOf`/:class:`Between` plus a
consistency ``check`` on the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

VALID = "test_data/sdk_compiled_pipelines/valid"


# ---------------------------------------------------------------------------
# Matchers for values that are not fixed
# ---------------------------------------------------------------------------


class OneOf:
    def __init__(self, *choices: Any) -> None:
        self.choices = choices

    def __eq__(self, other: object) -> bool:
        return other in self.choices

    def __repr__(self) -> str:
        return f"OneOf{self.choices!r}"


class Between:
    """An integer in [low, high] (random.randint semantics)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool) and self.low <= other <= self.high

    def __repr__(self) -> str:
        return f"Between({self.low}, {self.high})"


@dataclass(frozen=True)
class Artifact:
    """An output artifact: the file's exact text and/or metadata entries it must have."""

    text: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

Summary = Mapping[str, Any]


@dataclass(frozen=True)
class Case:
    file: str  # relative to the corpus root
    expected: str  # "success" | "failed" | "needs: <what>"
    params: tuple[str, ...] = ()  # kfx run -p NAME=VALUE
    # pipeline outputs (summary["outputs"]): name → value or Artifact
    outputs: Mapping[str, Any] = field(default_factory=dict)
    # task outputs: KFP task path → {output name: value or Artifact}; for a task in a
    # ParallelFor the value is the list over its iterations
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    states: Mapping[str, str] = field(default_factory=dict)  # KFP task path → state
    exit_tasks: tuple[str, ...] = ()  # exit-handler tasks: must have run (state success)
    log: tuple[str, ...] = ()  # text the run log must contain (the components' own output)
    evidence: str | None = None  # needs: text in the log naming the need (default: the need)
    named_by: str = "airflow-kfx"  # needs: who names it, "airflow-kfx" (its task error) or "component"
    cache: bool = False  # run with KFP caching on (default --no-cache: every task really runs)
    check: Callable[[Summary], None] | None = None  # consistency of random outcomes
    bug: str | None = None  # an airflow-kfx bug: the test is xfail(strict=True) with this reason
    # on a cluster (the kubernetes runtime against the API double, which has the secrets KFP's
    # backend tests create): the expectation when it differs from ``expected``
    on_cluster: str | None = None

    @property
    def id(self) -> str:
        return self.file.removeprefix(VALID + "/").removesuffix(".yaml")

    @property
    def ci(self) -> bool:
        """Run by default (the CI subset); the rest only with ``KFX_CONFORMANCE=all``.
        Known bugs always run, so their strict xfail reports a fix."""
        return self.id in CI_SUBSET or self.bug is not None

    @property
    def need(self) -> str | None:
        return self.expected.split(":", 1)[1].strip() if self.expected.startswith("needs:") else None

    def on(self, runtime: str) -> Case:
        """This case as it must end on ``runtime`` ("local" or "kubernetes…")."""
        from dataclasses import replace

        if runtime.startswith("kubernetes") and self.on_cluster is not None:
            outputs, log = (self.outputs, self.log) if self.on_cluster == "success" else ({}, ())
            return replace(self, expected=self.on_cluster, states={}, tasks={}, outputs=outputs, log=log)
        return self


def _task(summary: Summary, path: str) -> Mapping[str, Any]:
    return summary["tasks"][path]


def _out(summary: Summary, path: str, name: str = "Output") -> Any:
    return _task(summary, path)["outputs"]["parameters"][name]


def _flip_coin(s: Summary) -> None:
    """critical/flip_coin: heads → random 0..9 → >5 / <=5; tails → random 10..19 → >15 / <=15."""
    heads = _out(s, "flip-coin") == "heads"
    taken, other = ("condition-1", "condition-4") if heads else ("condition-4", "condition-1")
    number_task = "condition-1/random-num" if heads else "condition-4/random-num-2"
    number = _out(s, number_task)
    assert number == (Between(0, 9) if heads else Between(10, 19)), number
    high = number > (5 if heads else 15)
    prints = {
        ("condition-1", True): "condition-1/condition-2/print-msg",
        ("condition-1", False): "condition-1/condition-3/print-msg-2",
        ("condition-4", True): "condition-4/condition-5/print-msg-3",
        ("condition-4", False): "condition-4/condition-6/print-msg-4",
    }
    assert _task(s, prints[(taken, high)])["state"] == "success"
    assert _task(s, prints[(taken, not high)])["state"] == "skipped"
    for path, task in s["tasks"].items():
        if path.startswith(other + "/"):
            assert task["state"] == "skipped", (path, task["state"])


def _nested_conditions_yaml(s: Summary) -> None:
    """essential/pipeline_with_nested_conditions_yaml: same shape as flip_coin."""
    heads = _out(s, "flip-coin", "output") == "heads"
    number_task = "condition-1/generate-random-number" if heads else "condition-4/generate-random-number-2"
    number = _out(s, number_task, "output")
    assert number == (Between(0, 9) if heads else Between(10, 19)), number
    high = number > (5 if heads else 15)
    prints = {
        (True, True): "condition-1/condition-2/print", (True, False): "condition-1/condition-3/print-2",
        (False, True): "condition-4/condition-5/print-3", (False, False): "condition-4/condition-6/print-4",
    }
    assert _task(s, prints[(heads, high)])["state"] == "success"
    for key, path in prints.items():
        if key != (heads, high):
            assert _task(s, path)["state"] == "skipped", path


def _condition(s: Summary) -> None:
    """essential/pipeline_with_condition: condition-1 runs iff the first flip is heads."""
    state = "success" if _out(s, "flip-coin-op") == "heads" else "skipped"
    for path in ("condition-1/flip-coin-op-2", "condition-1/print-op-2", "condition-1/print-op-3"):
        assert _task(s, path)["state"] == state, path


def _nested_conditions(s: Summary) -> None:
    """essential/pipeline_with_nested_conditions: condition-1 (flip != 'no-such-result') always
    runs; condition-2 runs iff flip-coin-op-2 == flip-coin-op-3."""
    assert _task(s, "condition-1/print-op-3")["state"] == "success"
    same = _out(s, "flip-coin-op-2") == _out(s, "condition-1/flip-coin-op-3")
    for path in ("condition-1/condition-2/flip-coin-op-4", "condition-1/condition-2/print-op-4"):
        assert _task(s, path)["state"] == ("success" if same else "skipped"), path


def _parameter_oneof(s: Summary) -> None:
    """critical/parameter_oneof: dsl.OneOf of the If/Else branches is the branch that ran."""
    heads = _out(s, "mantle/core/flip-coin") == "heads"
    ran = "mantle/core/condition-branches-1/condition-2/core-comp" if heads else \
        "mantle/core/condition-branches-1/condition-3/core-output-comp"
    assert _task(s, ran)["state"] == "success"


HEADS_OR_TAILS = OneOf("heads", "tails")

# The CI subset, run by default (plus every case with a bug): one pipeline per feature. The whole
# table (KFX_CONFORMANCE=all) takes ~20-30 min on 2 shared cores, this ~7-8 min from cold
# virtualenvs (see tests/CONFORMANCE.md, timing). Mostly kfp==2.14.3/2.14.6 components, so CI
# builds few virtualenvs.
CI_SUBSET = frozenset({
    "critical/modelcar",  # an OCI model image: a need named by airflow-kfx
    "critical/pipeline_with_input_status_state",  # PipelineTaskFinalStatus as KFP's backend gives it
    "critical/pipeline_with_placeholders",  # pipeline/task placeholders
    "critical/pipeline_with_pod_metadata",  # fieldPathAsEnv from pod labels/annotations
    "critical/pythonic_artifacts_test_pipeline",  # dsl.get_uri() outputs
    "critical/add_numbers",  # typed parameters, pipeline output
    "critical/parameters_simple",  # ParallelFor, dsl.Collected, a jq container, pipeline output
    "essential/pipeline_with_outputs",  # nested pipeline returning an artifact
    "critical/artifact_crust",  # artifacts through two levels of nested pipelines
    "critical/flip_coin",  # nested dsl.Condition with CEL int() comparisons
    "critical/parameter_oneof",  # dsl.If/Else + dsl.OneOf
    "critical/component_with_optional_inputs",  # optional inputs, None
    "critical/two_step_pipeline_containerized",  # container components, artifact paths
    "critical/pipeline_with_env",  # env on containers and lightweight components
    "critical/pipeline_with_secret_as_env",  # needs: a Kubernetes secret, named
    "critical/pipeline_with_workspace",  # dsl.WorkspaceConfig
    "critical/pipeline_with_importer_workspace",  # importers downloading into the workspace
    "essential/pipeline_with_params_containing_format",  # f-string placeholders in loops
    "essential/placeholder_with_if_placeholder_none_input_value",  # IfPresent placeholders
    "essential/component_with_pip_install",  # packages_to_install, pip index URLs
    "failing/fail_v2",  # a failing task fails the run
    "failing/pipeline_with_multiple_exit_handlers",  # exit handlers run, run FAILED
})


# On the kubernetes runtime (sync), CI runs these: every way a pod differs from a local
# process (secrets, fieldRef env, workspace PVC, artifact paths in pods, nested artifacts,
# loops, failures and exit handlers). The rest of CI_SUBSET (parameters, conditions, env)
# is resolved and decided in the worker exactly as on the local runtime and makes the same
# pod spec; `make conformance` runs all of it on both (the CI budget keeps this list short).
KUBERNETES_CI_SUBSET = frozenset({
    "critical/parameters_simple",
    "critical/two_step_pipeline_containerized",
    "critical/pythonic_artifacts_test_pipeline",
    "critical/artifact_crust",
    "critical/pipeline_with_workspace",
    "critical/pipeline_with_secret_as_env",
    "critical/pipeline_with_pod_metadata",
    "failing/pipeline_with_multiple_exit_handlers",
})


# On the kubernetes runtime in deferrable mode, CI runs one per kind of task life: a loop's
# mapped deferrals, artifacts collected when the trigger hands back, a failing task before
# exit handlers (the training example runs deferrable in tests/test_examples.py too).
DEFERRABLE_CI_SUBSET = frozenset({
    "critical/parameters_simple",
    "critical/two_step_pipeline_containerized",
    "failing/pipeline_with_multiple_exit_handlers",
})


CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------------ critical
    Case(f"{VALID}/critical/add_numbers.yaml", "success", params=("a=1", "b=2"),
         outputs={"Output": 3}, tasks={"add-numbers": {"Output": 3}}),
    Case(f"{VALID}/critical/artifact_cache.yaml", "success", cache=True,
         tasks={"mantle/core/core-comp": {"dataset": Artifact(text="foo")}},
         states={"crust-comp": "success"}),
    Case(f"{VALID}/critical/artifact_crust.yaml", "success",
         tasks={"mantle/core/core-comp": {"dataset": Artifact(text="foo")}},
         states={"crust-comp": "success"}, log=("input:  foo",)),
    Case(f"{VALID}/critical/collected_parameters.yaml", "success",
         tasks={
             "collecting-parameters/split-ids": {"Output": ["s1", "s2", "s3"]},
             "collecting-parameters/for-loop-1/prepend-id": {
                 "Output": ["model_id_s1", "model_id_s2", "model_id_s3"]},
             "collecting-parameters/for-loop-1/consume-single-id": {"Output": ["completed"] * 3},
             "collecting-parameters/consume-ids": {"Output": "completed"},
             "consume-ids": {"Output": "completed"},
         },
         log=("Consuming: model_id_s1", "Consuming: model_id_s3")),
    Case(f"{VALID}/critical/component_with_optional_inputs.yaml", "success",
         log=("input1: Hello, type: <class 'str'>", "input2: World, type: <class 'str'>",
              "input3: None, type: <class 'NoneType'>")),
    # the image's python is not needed: the command is a plain `echo`
    Case(f"{VALID}/critical/container_component_with_no_inputs.yaml", "success",
         states={"hello-world-container": "success"}, log=("hello world",)),
    Case(f"{VALID}/critical/flip_coin.yaml", "success",
         tasks={"flip-coin": {"Output": HEADS_OR_TAILS}}, check=_flip_coin),
    # flip_coin() always returns 'heads': the If branch's artifact is the OneOf output
    Case(f"{VALID}/critical/if_else_with_oneof_artifacts.yaml", "success",
         tasks={
             "flip-coin-pipeline/flip-coin": {"Output": "heads"},
             "flip-coin-pipeline/condition-branches-1/condition-2/param-to-artifact": {
                 "a": Artifact(text="heads")},
         },
         states={"flip-coin-pipeline/condition-branches-1/condition-3/param-to-artifact-2": "skipped",
                 "flip-coin-pipeline/print-artifact": "success", "print-artifact": "success"}),
    # every kfp-kubernetes setting is bound to an absent optional input: all dropped
    Case(f"{VALID}/critical/missing_kubernetes_optional_inputs.yaml", "success",
         states={"log-message": "success"}, log=("baseline task",)),
    Case(f"{VALID}/critical/mixed_parameters.yaml", "success",
         tasks={"mantle/core/core-comp": {"Output": 1}}, log=("sum : 3",)),
    Case(f"{VALID}/critical/modelcar.yaml",
         "needs: OCI image 'registry.domain.local/modelcar:test' (a modelcar model artifact)",
         evidence="registry.domain.local/modelcar:test",  # in airflow-kfx's error, not just the URI
         tasks={"build-model-car": {"model": Artifact()}},
         states={"build-model-car": "success", "importer": "success"}),
    Case(f"{VALID}/critical/multiple_artifacts_namedtuple.yaml", "success",
         tasks={"mantle/core/core-comp": {"ds1": Artifact(text="foo"), "ds2": Artifact(text="bar")}},
         log=("ds1:  foo", "ds2:  bar")),
    Case(f"{VALID}/critical/multiple_parameters_namedtuple.yaml", "success",
         tasks={"mantle/core/core-comp": {"val1": "foo", "val2": "bar"}},
         log=("val1:  foo", "val2:  bar")),
    # the notebook asserts its own log.txt == text + " default2"
    Case(f"{VALID}/critical/notebook_component_simple.yaml", "success",
         states={"run-train-notebook": "success"}, log=("[KFP Notebook] Execution complete",)),
    Case(f"{VALID}/critical/parallel_for_after_dependency.yaml", "success",
         tasks={"for-loop-2/print-op": {"Output": ["foo"] * 3}, "print-op-2": {"Output": "bar"},
                "print-op-3": {"Output": "baz"}}),
    Case(f"{VALID}/critical/parameter_cache.yaml", "success", cache=True,
         tasks={"mantle/core/core-comp": {"Output": "foo"}}, states={"crust-comp": "success"}),
    Case(f"{VALID}/critical/parameter_oneof.yaml", "success",
         tasks={"mantle/core/flip-coin": {"Output": HEADS_OR_TAILS}},
         log=("input : Got ",), check=_parameter_oneof),
    # double() of [1, 2, 3], collected; add() and the jq container both sum them
    Case(f"{VALID}/critical/parameters_simple.yaml", "success",
         outputs={"Output": [2, 4, 6]},
         tasks={"for-loop-2/double": {"Output": [2, 4, 6]}, "add": {"Output": 12},
                "add-container": {"sum": 12}}),
    # Artifact.set_path() exists from kfp 2.15; the YAML pins kfp==2.14.6 (KFP's CI installs its
    # own SDK build over the pin), so the component fails the same way on any KFP with PyPI's 2.14.6
    Case(f"{VALID}/critical/pipeline_with_artifact_custom_path.yaml",
         "needs: a KFP SDK with Artifact.set_path (the pinned kfp==2.14.6 lacks it)",
         evidence="'Dataset' object has no attribute 'set_path'", named_by="component",
         states={"component-output-artifact": "failed"}),
    Case(f"{VALID}/critical/pipeline_with_artifact_upload_download.yaml",
         "needs: network access to the Hugging Face Hub (data set google/frames-benchmark)",
         evidence="Couldn't find 'google/frames-benchmark' on the Hugging Face Hub", named_by="component",
         states={"download-dataset-and-upload-as-artifact": "failed"}),
    Case(f"{VALID}/critical/pipeline_with_env.yaml", "success",
         log=("val0", "val2", "val3", "ENV1 val1", "ENV2 None")),
    Case(f"{VALID}/critical/pipeline_with_importer_workspace.yaml", "success",
         # train_result is train's `scalar` output ('123'); its `message` shows what it read
         outputs={"dir_result": "part-000.txt,part-001.txt", "train_result": "123"},
         tasks={"import-stage/train": {"message": "My model trained using data: Hello from producer file\n"},
                "import-stage/importer": {"artifact": Artifact(metadata={"_kfp_workspace": True, "key": "value"})},
                "import-stage/importer-2": {"artifact": Artifact(metadata={"_kfp_workspace": True})}},
         log=("downloaded to the workspace at",),
         on_cluster="needs: download_to_workspace is not supported on the kubernetes runtime yet"),
    Case(f"{VALID}/critical/pipeline_with_input_status_state.yaml", "success",
         states={"exit-handler-1/some-task": "success", "echo-state": "success"}),
    Case(f"{VALID}/critical/pipeline_with_placeholders.yaml", "success",
         states={"print-all-placeholders": "success"}),
    Case(f"{VALID}/critical/pipeline_with_pod_metadata.yaml", "success",
         tasks={f"validate-{t}": {"Output": True} for t in (
             "no-pod-metadata", "pod-metadata-task-a", "pod-metadata-task-b",
             "pod-metadata-task-c", "pod-metadata-task-d")}),
    Case(f"{VALID}/critical/pipeline_with_retry.yaml", "success", tasks={"add": {"Output": 8.0}}),
    Case(f"{VALID}/critical/pipeline_with_secret_as_env.yaml", "needs: Kubernetes secret 'test-secret-1'",
         tasks={"generate-secret-name": {"some_output": "test-secret-3"}},
         states={"comp": "failed"}, on_cluster="success"),
    # MULTI_USER is unset: both components return without a request
    Case(f"{VALID}/critical/pipeline_with_submit_request.yaml", "success",
         states={"submit-request": "success", "submit-request-2": "success"}),
    # CreatePVC of the local runtime is a folder; the long pipeline name must not break anything
    Case(f"{VALID}/critical/pipeline_with_volume_long_name.yaml", "success",
         states={"createpvc": "success", "dummy-task": "success"}, log=("hello",)),
    Case(f"{VALID}/critical/pipeline_with_workspace.yaml", "success",
         outputs={"Output": "Hello from workspace!"},
         tasks={"write-to-workspace": {"Output": "/kfp-workspace/data/test_file.txt"}}),
    # `echo "$0, ..." > file`: the output file keeps echo's newline (KFP reads the file as is)
    Case(f"{VALID}/critical/producer_consumer_param_pipeline.yaml", "success",
         tasks={"producer": {"output_value": "Hello world, this is an output parameter\n"}},
         log=("Read from an input parameter: ",)),
    Case(f"{VALID}/critical/pythonic_artifacts_test_pipeline.yaml", "success",
         tasks={"gen-data": {"Output": Artifact(text="some data", metadata={"length": 9})},
                "train-model": {"Output": Artifact(text="model trained")}}),
    Case(f"{VALID}/critical/two_step_pipeline_containerized.yaml", "success",
         tasks={"component1": {"output_gcs": Artifact(text="Hello KFP Containerized!\n")}},
         log=("Hello KFP Containerized!",)),
    # ------------------------------------------------------------------ essential
    Case(f"{VALID}/essential/component_with_env_variable.yaml", "success",
         outputs={"Output": "env_var_value"}),
    Case(f"{VALID}/essential/component_with_pip_index_urls.yaml", "success",
         states={"component-op": "success"}, log=("'FormatFiles'",)),
    Case(f"{VALID}/essential/component_with_pip_install.yaml", "success",
         states={"component-with-pip-install": "success"}, log=("'FormatFiles'",)),
    Case(f"{VALID}/essential/component_with_pip_install_in_venv.yaml", "success",
         states={"component-with-pip-install": "success"}, log=("'FormatFiles'",)),
    Case(f"{VALID}/essential/concat_message.yaml", "success",
         params=("message1=input message", "message2=other message"),
         outputs={"Output": "input messageother message"}),
    Case(f"{VALID}/essential/container_no_input.yaml", "success",
         states={"container-no-input": "success"}, log=("hello world",)),
    Case(f"{VALID}/essential/dict_input.yaml", "success", params=('struct={"a": 1, "b": 2}',),
         log=("{'a': 1, 'b': 2}",)),
    Case(f"{VALID}/essential/embedded_artifact.yaml",
         "needs: a KFP SDK with dsl.EmbeddedInput (the pinned kfp==2.14.3 lacks it)",
         evidence="module 'kfp.dsl' has no attribute 'EmbeddedInput'", named_by="component",
         states={"read-embedded-artifact-dir": "failed", "read-embedded-artifact-file": "failed"}),
    # train_test_split(random_state=0) and 3-fold cross_val_predict are deterministic
    Case(f"{VALID}/essential/iris_pipeline_compiled.yaml", "success",
         tasks={
             "normalize-dataset": {"normalized_iris_dataset": Artifact(metadata={"state": "Normalized"})},
             "train-model": {
                 "model": Artifact(metadata={"framework": "scikit-learn"}),
                 "metrics": Artifact(metadata={"confusionMatrix": {
                     "annotationSpecs": [{"displayName": "Iris-Setosa"}, {"displayName": "Iris-Versicolour"},
                                         {"displayName": "Iris-Virginica"}],
                     "rows": [{"row": [16, 0, 0]}, {"row": [0, 12, 0]}, {"row": [0, 1, 10]}],
                 }}),
             },
         }),
    Case(f"{VALID}/essential/lightweight_python_functions_pipeline.yaml", "success",
         params=("message=here is my message",),
         tasks={
             "preprocess": {
                 "output_parameter_path": "here is my message",
                 "output_bool_parameter_path": True,  # the file holds "True"
                 "output_dict_parameter_path": {"A": 1, "B": 2},
                 "output_list_parameter_path": ["a", "b", "c"],
                 "output_dataset_one": Artifact(text="here is my message"),
                 "output_dataset_two_path": Artifact(text="here is my message"),
             },
             "train": {"model": Artifact(metadata={"accuracy": 0.9})},
         }),
    Case(f"{VALID}/essential/lightweight_python_functions_with_outputs.yaml", "success",
         params=("first_message=a", "second_message=b", "first_number=1", "second_number=2"),
         tasks={
             "add-numbers": {"Output": 3},
             "concat-message": {"Output": "ab"},
             "output-artifact": {"Output": Artifact(text="ab\nab\nab")},
             "output-named-tuple": {"scalar": "123", "model": Artifact(text="Model contents: ab\nab\nab")},
         }),
    Case(f"{VALID}/essential/pipeline_with_after.yaml", "success",
         states={"print-text": "success", "print-text-2": "success", "print-text-3": "success"},
         log=("1st task", "2nd task", "3rd task")),
    Case(f"{VALID}/essential/pipeline_with_condition.yaml", "success",
         tasks={"flip-coin-op": {"Output": HEADS_OR_TAILS}}, states={"print-op": "success"},
         check=_condition),
    Case(f"{VALID}/essential/pipeline_with_metrics_outputs.yaml", "success",
         tasks={"output-metrics": {"metrics": Artifact(metadata={"accuracy": Between(0, 100)})},
                "for-loop-2/output-metrics-2": {
                    "metrics": [Artifact(metadata={"accuracy": Between(0, 100)})] * 2}}),
    Case(f"{VALID}/essential/pipeline_with_nested_conditions.yaml", "success",
         tasks={"flip-coin-op": {"Output": HEADS_OR_TAILS}, "flip-coin-op-2": {"Output": HEADS_OR_TAILS}},
         states={"print-op": "success", "print-op-2": "success"}, check=_nested_conditions),
    Case(f"{VALID}/essential/pipeline_with_nested_conditions_yaml.yaml", "success",
         tasks={"flip-coin": {"output": HEADS_OR_TAILS}}, check=_nested_conditions_yaml),
    # the pipeline returns the inner pipeline's artifact: `echo world > data`
    Case(f"{VALID}/essential/pipeline_with_outputs.yaml", "success",
         outputs={"Output": Artifact(text="world\n")},
         tasks={"print-op1": {"Output": "Hello"}, "inner-pipeline/print-op1": {"Output": "world"}}),
    Case(f"{VALID}/essential/pipeline_with_params_containing_format.yaml", "success",
         tasks={"print-op": {"Output": "Hello KFP"}, "print-op-2": {"Output": "Hello KFP, again."},
                "for-loop-2/print-op2": {"Output": ["1 and KFP.", "2 and KFP."]}}),
    # a=2, b=5: 2+3=5, 5+5=10, 10+7=17
    Case(f"{VALID}/essential/pipeline_with_reused_component.yaml", "success",
         tasks={"add-numbers": {"Output": 5}, "add-numbers-2": {"Output": 10},
                "add-numbers-3": {"Output": 17}}),
    Case(f"{VALID}/essential/placeholder_with_if_placeholder_none_input_value.yaml", "success",
         log=("--arg0 input0 --arg2 default value",)),
    # ------------------------------------------------------------------ failing
    Case(f"{VALID}/failing/fail_v2.yaml", "failed", states={"fail": "failed"}),
    Case(f"{VALID}/failing/pipeline_with_exit_handler.yaml", "failed",
         states={"exit-handler-1/fail-op": "failed", "exit-handler-1/print-op-2": "success"},
         exit_tasks=("print-op",), log=("Exit handler has worked!", "Task failed.")),
    Case(f"{VALID}/failing/pipeline_with_multiple_exit_handlers.yaml", "failed",
         states={"exit-handler-1/fail-op": "failed", "exit-handler-2/print-op-4": "success",
                 "exit-handler-3/print-op-6": "success"},
         exit_tasks=("print-op", "print-op-3", "print-op-5"),
         log=("First exit handler has worked!", "Second exit handler has worked!",
              "Third exit handler has worked!")),
)

BY_ID = {case.id: case for case in CASES}
