"""KFP v1 Argo workflows (KFP v1 SDK compiler output) load as a PipelineSpec model, or are
refused by feature name; a broken one gives a SpecError naming the file and YAML path.
Parsing only, except one real run of a small two-task workflow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from airflow_kfx.spec.loader import load_pipeline_file, load_pipeline_text
from airflow_kfx.spec.model import ComponentInput, Constant, ParameterType, TaskOutput
from tests.support import CORPUS, corpus_files

# A v1 workflow as the KFP v1 SDK writes one: a producer writes an output parameter at a
# fixed path (ContainerOp file_outputs), a consumer gets it through {{tasks…}}. Like the
# SDK's own code, the programs create the folder of the path (Argo does not).
TWO_STEP = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  annotations:
    pipelines.kubeflow.org/pipeline_spec: '{"description": "Pass a word on.", "inputs":
      [{"name": "word", "type": "String"}, {"name": "times", "type": "Integer", "default": "2"}],
      "name": "V1 Two Step"}'
  generateName: v1-two-step-
spec:
  arguments:
    parameters:
    - name: word
      value: hello
    - name: times
      value: '2'
  entrypoint: v1-two-step
  serviceAccountName: pipeline-runner
  templates:
  - name: v1-two-step
    inputs:
      parameters:
      - name: times
      - name: word
    dag:
      tasks:
      - name: produce
        template: produce
        arguments:
          parameters:
          - name: word
            value: '{{inputs.parameters.word}}'
          - name: times
            value: '{{workflow.parameters.times}}'
      - name: consume
        template: consume
        dependencies: [produce]
        arguments:
          parameters:
          - name: produce-loud
            value: '{{tasks.produce.outputs.parameters.produce-loud}}'
          - name: suffix
            value: '!'
  - name: produce
    container:
      image: python:3.11
      command: [python3, -c, "import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True);
        open(sys.argv[1], 'w').write(sys.argv[2].upper() * int(sys.argv[3]))"]
      args: [/tmp/outputs/loud/data, '{{inputs.parameters.word}}', '{{inputs.parameters.times}}']
      env:
      - name: MODE
        value: fast
      resources:
        limits: {cpu: '1', memory: 1G}
    inputs:
      parameters:
      - name: times
      - name: word
    metadata:
      labels:
        pipelines.kubeflow.org/pipeline-sdk-type: kfp
    outputs:
      artifacts:
      - name: produce-loud
        path: /tmp/outputs/loud/data
      parameters:
      - name: produce-loud
        valueFrom:
          path: /tmp/outputs/loud/data
  - name: consume
    container:
      image: python:3.11
      command: [python3, -c, "import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True);
        open(sys.argv[1], 'w').write(sys.argv[2] + sys.argv[3])",
                /tmp/outputs/said/data, '{{inputs.parameters.produce-loud}}', '{{inputs.parameters.suffix}}']
    inputs:
      parameters:
      - name: produce-loud
      - name: suffix
    outputs:
      parameters:
      - name: consume-said
        valueFrom:
          path: /tmp/outputs/said/data
"""

# What the 53 corpus v1 workflows give today (see the module docstring of argo_v1).
LOADED = 8
REFUSED = {
    "Argo argument mixing text and variables": 1,
    "Argo output artifacts": 3,
    "Argo resource template": 5,
    "Argo script template": 1,
    "Argo steps template": 1,
    "Argo template affinity": 1,
    "Argo template initContainers": 2,
    "Argo template inputs.artifacts": 1,
    "Argo template pod metadata": 2,
    "Argo template sidecars": 2,
    "Argo template volumes": 4,
    "Argo when condition": 3,
    "Argo withItems loop": 3,
    "Argo withParam loop": 6,
    "Argo workflow spec.activeDeadlineSeconds": 1,
    "Argo workflow spec.imagePullSecrets": 1,
    "Argo workflow spec.onExit": 4,
    "Argo workflow spec.volumes": 1,
    "nested Argo DAG template": 2,
}
# Not a valid Argo workflow (Argo itself requires spec.entrypoint): a SpecError.
INVALID = {"sdk/python/tests/compiler/testdata/tolerations.yaml": "missing required field 'entrypoint'"}


def test_every_v1_workflow_loads_or_is_refused_by_name() -> None:
    paths = corpus_files("v1 Argo workflow")
    assert len(paths) == 53
    tally: Counter[str] = Counter()
    for path in paths:
        relative = str(path.relative_to(CORPUS))
        try:
            load_pipeline_file(path, use_cache=False)
        except UnsupportedFeatureError as err:
            assert err.feature and err.feature in str(err) and str(err).startswith(f"{path}:"), err
            tally[err.feature] += 1
        except SpecError as err:  # only the known-invalid file; any other exception fails
            assert relative in INVALID and INVALID[relative] in str(err), err
            tally["invalid"] += 1
        else:
            tally["loaded"] += 1
    print("\nKFP v1 Argo workflows:", dict(sorted(tally.items())))
    assert tally.pop("loaded") == LOADED
    assert tally.pop("invalid") == len(INVALID)
    assert dict(tally) == REFUSED


def test_a_v1_workflow_becomes_the_model() -> None:
    pipeline = load_pipeline_text(TWO_STEP, file="two.yaml")
    assert (pipeline.name, pipeline.display_name, pipeline.description) == ("v1-two-step", "V1 Two Step", "Pass a word on.")
    word, times = pipeline.root.inputs.parameters["word"], pipeline.root.inputs.parameters["times"]
    assert (word.type, word.default, times.type, times.default) == (ParameterType.STRING, "hello",
                                                                   ParameterType.NUMBER_INTEGER, 2)
    produce, consume = pipeline.root.dag.tasks["produce"], pipeline.root.dag.tasks["consume"]
    assert produce.inputs["word"].source == ComponentInput("word")
    assert produce.inputs["times"].source == ComponentInput("times")
    assert consume.inputs["produce-loud"].source == TaskOutput("produce", "produce-loud")
    assert consume.inputs["suffix"].source == Constant("!")
    assert consume.dependent_tasks == ("produce",)
    container = pipeline.executors["exec-produce"].container
    assert container.args == ("{{$.outputs.parameters['produce-loud'].output_file}}",
                              "{{$.inputs.parameters['word']}}", "{{$.inputs.parameters['times']}}")
    assert dict(container.env) == {"MODE": "fast"}
    assert (container.resources.cpu_limit, container.resources.memory_limit) == ("1", "1G")
    assert set(pipeline.components["comp-produce"].outputs.parameters) == {"produce-loud"}


def _broken(old: str, new: str) -> SpecError:
    assert old in TWO_STEP
    with pytest.raises(SpecError) as caught:
        load_pipeline_text(TWO_STEP.replace(old, new, 1), file="broken.yaml")
    return caught.value


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        ("entrypoint: v1-two-step", "entrypoint: nope", "spec.entrypoint", "not a template"),
        ("value: '{{tasks.produce.outputs.parameters.produce-loud}}'",
         "value: '{{tasks.produce.outputs.parameters.quiet}}'",
         "spec.templates[0].dag.tasks[1].arguments.parameters[0].value", "does not produce"),
        ("dependencies: [produce]", "dependencies: [gone]", "spec.templates[0].dag.tasks[1].dependencies[0]",
         "'gone'"),
        ("template: consume", "template: missing", "spec.templates[0].dag.tasks[1].template", "'missing'"),
        ("'{{inputs.parameters.word}}', '{{inputs.parameters.times}}'", "'{{inputs.parameters.wrd}}', '3'",
         "spec.templates[1].container.args[1]", "'wrd'"),
        ("    - name: times\n      value: '2'", "    - name: times\n      value: 'two'",
         "spec.arguments.parameters[1].value", "not an integer"),
    ],
)
def test_a_broken_v1_workflow_names_file_and_path(old: str, new: str, path: str, message: str) -> None:
    err = _broken(old, new)
    assert not isinstance(err, UnsupportedFeatureError), err
    assert err.file == "broken.yaml" and err.line is not None and err.yaml_path == path, err
    assert message in str(err) and str(err).startswith(f"broken.yaml:{err.line}: ")


@pytest.mark.parametrize(
    ("old", "new", "feature"),
    [
        ("dependencies: [produce]", "dependencies: [produce]\n        when: '{{tasks.produce.outputs.parameters.produce-loud}} == A'",
         "Argo when condition"),
        ("  serviceAccountName: pipeline-runner", "  onExit: produce", "Argo workflow spec.onExit"),
        ("          - name: suffix\n            value: '!'", "          - name: suffix\n            value: 'x{{workflow.name}}'",
         "Argo argument mixing text and variables"),
        ("/tmp/outputs/said/data, '{{", "/tmp/elsewhere, '{{", "KFP v1 output at a fixed path"),
        ("limits: {cpu: '1', memory: 1G}", "limits: {nvidia.com/gpu: '1'}", "container resource nvidia.com/gpu"),
    ],
)
def test_what_v1_workflows_cannot_say_is_refused_by_name(old: str, new: str, feature: str) -> None:
    assert old in TWO_STEP
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_pipeline_text(TWO_STEP.replace(old, new, 1), file="wf.yaml")
    assert caught.value.feature == feature and caught.value.line is not None


def test_a_v1_workflow_runs_and_passes_an_output_on(tmp_path: Path, dags_folder: Path) -> None:
    from tests.runs import run_pipeline

    path = tmp_path / "v1_two_step.yaml"
    path.write_text(TWO_STEP)
    result = run_pipeline(path, dags_folder, conf={"word": "hey", "times": 3})
    assert result.state == "success", result.states
    assert result.parameter("produce", "produce-loud") == "HEYHEYHEY"
    assert result.parameter("consume", "consume-said") == "HEYHEYHEY!"
