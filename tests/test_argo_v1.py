"""KFP v1 Argo workflows (KFP v1 SDK compiler output) load as a PipelineSpec model, or are
refused by feature name; a broken one gives a SpecError naming the file and YAML path.
Parsing only, except one real run of a small two-task workflow."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from airflow_kfx.spec.loader import load_pipeline_file, load_pipeline_text
from airflow_kfx.spec.model import (
    ComponentInput,
    Constant,
    ParameterIterator,
    ParameterType,
    RetryPolicy,
    TaskOutput,
    TriggerStrategy,
)
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
LOADED = 36
REFUSED = {
    "Argo raw input artifact": 1,
    "Argo resource template": 3,
    "Argo script template": 1,
    "Argo steps template": 1,
    "KFP v1 v2-compatible mode": 3,
    "Argo variable in a sidecar": 1,
    "Argo variable in withItems": 1,
    "container resource with two accelerator kinds": 2,
    "recursion": 3,
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
        # Argo gives an exit template the workflow's arguments: consume's inputs are not among them
        ("  serviceAccountName: pipeline-runner", "  onExit: consume", "spec.onExit", "'produce-loud'"),
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
         "Argo when on a container task"),
        ("dependencies: [produce]", "dependencies: [produce]\n        withItems: [1, 2]", "Argo loop over a container template"),
        ("    metadata:\n      labels:", "    retryStrategy: {limit: 2, retryPolicy: OnError}\n    metadata:\n      labels:",
         "Argo retryPolicy OnError"),
        ("limits: {cpu: '1', memory: 1G}", "limits: {hugepages-2Mi: 100Mi}", "container resource hugepages-2Mi"),
        ("limits: {cpu: '1', memory: 1G}", "limits: {cloud-tpus.google.com/v3: '8', nvidia.com/gpu: '1'}",
         "container resource with two accelerator kinds"),
    ],
)
def test_what_v1_workflows_cannot_say_is_refused_by_name(old: str, new: str, feature: str) -> None:
    assert old in TWO_STEP
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_pipeline_text(TWO_STEP.replace(old, new, 1), file="wf.yaml")
    assert caught.value.feature == feature and caught.value.line is not None


def test_a_v1_tpu_limit_is_the_executors_accelerator_and_reaches_the_pod(tmp_path: Path) -> None:
    """``add_resource_limit('cloud-tpus.google.com/v3', '8')``: the executor's one
    accelerator, as a GPU's is; the pod asks Kubernetes for the same extended resource."""
    from airflow_kfx import load_pipeline
    from tests.test_pods import render

    text = TWO_STEP.replace("limits: {cpu: '1', memory: 1G}", "limits: {cpu: '1', cloud-tpus.google.com/v3: '8'}", 1)
    accelerator = load_pipeline_text(text, file="wf.yaml").executors["exec-produce"].container.resources.accelerator
    assert (accelerator.type, accelerator.count) == ("cloud-tpus.google.com/v3", "8")
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    dag = load_pipeline(path)
    limits = render(dag, next(t for t in dag.task_ids if t.startswith("produce")))["spec"]["containers"][0]["resources"]
    assert limits["limits"] == {"cpu": "1", "cloud-tpus.google.com/v3": "8"}


def test_v1_pod_settings_reach_the_pod(tmp_path: Path) -> None:
    """``add_node_selector_constraint``, ``set_timeout``, ``add_pod_label``/``add_pod_annotation``
    (a template's ``nodeSelector``, ``activeDeadlineSeconds``, own metadata) and
    ``set_image_pull_secrets`` (the workflow's ``imagePullSecrets``) become kfp-kubernetes
    settings, so the pod has them."""
    from airflow_kfx import load_pipeline
    from tests.test_pods import render

    old = "    metadata:\n      labels:"
    assert old in TWO_STEP
    path = tmp_path / "wf.yaml"
    text = TWO_STEP.replace(old, "    nodeSelector: {pool: gpu}\n    activeDeadlineSeconds: 30\n" + old
                            + "\n        team: vision", 1)
    text = text.replace("        value: fast\n", "        value: fast\n"
                        "      - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}\n"
                        "      - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n", 1)
    text = text.replace("  serviceAccountName: pipeline-runner",
                        "  serviceAccountName: pipeline-runner\n  imagePullSecrets: [{name: registry}]", 1)
    path.write_text(text)
    dag = load_pipeline(path)
    tasks = [t for t in dag.task_ids if t.startswith("produce")]
    manifest = render(dag, tasks[0])
    assert manifest["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert manifest["spec"]["activeDeadlineSeconds"] == 30
    assert manifest["metadata"]["labels"]["team"] == "vision"
    assert manifest["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    env = {e["name"]: e.get("valueFrom") for e in manifest["spec"]["containers"][0]["env"]}
    assert env["TOKEN"] == {"secretKeyRef": {"name": "creds", "key": "token"}}
    assert env["NODE"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["MODE"] is None  # the plain variable is still there
    broken = TWO_STEP.replace(old, "    activeDeadlineSeconds: -1\n" + old, 1)
    with pytest.raises(SpecError, match="activeDeadlineSeconds must be a positive"):
        load_pipeline_text(broken, file="wf.yaml")


AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu", "tpu"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]},
        ]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [
                {"key": "cloud.google.com/gke-preemptible", "operator": "In", "values": ["true"]}]}},
        ],
    },
    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "trainer"}}, "topologyKey": "kubernetes.io/hostname",
         "namespaces": ["ml"]},
    ]},
    "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            "namespaceSelector": {"matchLabels": {"team": "ml"}}, "topologyKey": "zone"}},
    ]},
}
TOLERATIONS = [{"key": "preemptible", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
               {"key": "gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]


def test_v1_tolerations_and_affinity_reach_the_pod_as_compiled(tmp_path: Path) -> None:
    """``add_toleration``, ``add_affinity`` and ``use_preemptible_nodepool`` (a template's
    ``tolerations`` and ``affinity``) become kfp-kubernetes ``tolerations``,
    ``nodeAffinity`` and ``podAffinity``: the pod carries the very affinity and
    tolerations the workflow's template had."""
    from airflow_kfx import load_pipeline
    from tests.test_pods import render

    old = "    metadata:\n      labels:"
    settings = f"    affinity: {json.dumps(AFFINITY)}\n    tolerations: {json.dumps(TOLERATIONS)}\n"
    path = tmp_path / "wf.yaml"
    path.write_text(TWO_STEP.replace(old, settings + old, 1))
    dag = load_pipeline(path)
    spec = render(dag, next(t for t in dag.task_ids if t.startswith("produce")))["spec"]
    assert spec["affinity"] == AFFINITY
    assert spec["tolerations"] == TOLERATIONS
    # the corpus's use_preemptible_nodepool + set_gpu_limit example
    corpus = load_pipeline(CORPUS / "sdk/python/tests/compiler/testdata/preemptible_tpu_gpu.yaml")
    spec = render(corpus, "flip")["spec"]
    assert spec["tolerations"] == [{"effect": "NoSchedule", "key": "preemptible", "operator": "Equal", "value": "true"}]
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 50


@pytest.mark.parametrize(("affinity", "feature"), [
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}, "podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone", "matchLabelKeys": ["x"]}]}},
     "Argo podAffinity term matchLabelKeys"),
    ({"nodeAfinity": {}}, "Argo affinity nodeAfinity"),
])
def test_v1_affinity_it_cannot_say_is_refused_by_name(affinity: dict, feature: str) -> None:
    old = "    metadata:\n      labels:"
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_pipeline_text(TWO_STEP.replace(old, f"    affinity: {json.dumps(affinity)}\n" + old, 1), file="wf.yaml")
    assert caught.value.feature == feature


VOLUMES = """\
    volumes:
    - {name: gcp-credentials, secret: {secretName: user-gcp-sa}}
    - {name: settings, configMap: {name: app-settings, optional: true}}
    - {name: data, persistentVolumeClaim: {claimName: shared-data}}
    - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 1Gi}}
"""
MOUNTS = """\
      volumeMounts:
      - {mountPath: /secret/gcp-credentials, name: gcp-credentials}
      - {mountPath: /etc/settings, name: settings}
      - {mountPath: /data, name: data, subPath: team-a}
      - {mountPath: /scratch, name: scratch}
"""


def test_v1_volumes_reach_the_pod(tmp_path: Path) -> None:
    """A template's volumes mounted by its container (``use_gcp_secret``'s secret volume,
    ``add_volume``/``add_volume_mount``, ``add_pvolumes`` of an existing claim) become
    kfp-kubernetes ``secretAsVolume``/``configMapAsVolume``/``pvcMount``/``emptyDirMounts``,
    so the pod mounts them where the template did."""
    from airflow_kfx import load_pipeline
    from tests.test_pods import render

    old = "    metadata:\n      labels:"
    text = TWO_STEP.replace(old, VOLUMES + old, 1).replace("      resources:\n", MOUNTS + "      resources:\n", 1)
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    dag = load_pipeline(path)
    manifest = render(dag, next(t for t in dag.task_ids if t.startswith("produce")))
    mounts = {m["mountPath"]: m for m in manifest["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}

    def volume_at(mount_path: str) -> dict:
        return volumes[mounts[mount_path]["name"]]

    assert volume_at("/secret/gcp-credentials")["secret"]["secretName"] == "user-gcp-sa"
    assert volume_at("/etc/settings")["configMap"] == {"name": "app-settings", "optional": True}
    assert volume_at("/data")["persistentVolumeClaim"]["claimName"] == "shared-data"
    assert mounts["/data"]["subPath"] == "team-a"
    assert volume_at("/scratch")["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}


@pytest.mark.parametrize(("volumes", "mounts", "feature"), [
    ("{name: data, persistentVolumeClaim: {claimName: 'x-{{inputs.parameters.word}}'}}",
     "{mountPath: /data, name: data}", "Argo volume claim from a variable"),
    ("{name: data, persistentVolumeClaim: {claimName: c}}", "{mountPath: /data, name: data, subPath: '{{workflow.uid}}'}",
     "Argo variable in a subPath"),
    ("{name: data, persistentVolumeClaim: {claimName: c}}", "{mountPath: /data, name: data, readOnly: true}",
     "Argo read-only PVC mount"),
    ("{name: data, hostPath: {path: /var}}", "{mountPath: /data, name: data}", "Argo volume hostPath"),
    ("{name: data, secret: {secretName: s, items: [{key: a, path: b}]}}", "{mountPath: /data, name: data}",
     "Argo secret volume items"),
])
def test_v1_volumes_they_cannot_say_are_refused_by_name(volumes: str, mounts: str, feature: str) -> None:
    old = "    metadata:\n      labels:"
    text = TWO_STEP.replace(old, f"    volumes:\n    - {volumes}\n" + old, 1).replace(
        "      resources:\n", f"      volumeMounts:\n      - {mounts}\n      resources:\n", 1)
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_pipeline_text(text, file="wf.yaml")
    assert caught.value.feature == feature, caught.value


def test_a_v1_workflow_deadline_becomes_the_dag_runs_timeout(tmp_path: Path) -> None:
    """``spec.activeDeadlineSeconds`` (``PipelineConf.set_timeout``): Argo fails the whole
    workflow after it; Airflow's scheduler does the same to a DAG run past its
    ``dagrun_timeout`` (tests/test_trigger.py shows it happen)."""
    from datetime import timedelta

    from airflow_kfx import load_pipeline

    dag = load_pipeline(CORPUS / "sdk/python/tests/compiler/testdata/timeout.yaml")
    assert dag.dagrun_timeout == timedelta(seconds=50)
    broken = TWO_STEP.replace("  serviceAccountName: pipeline-runner", "  activeDeadlineSeconds: soon", 1)
    with pytest.raises(SpecError, match="activeDeadlineSeconds must be a positive") as caught:
        load_pipeline_text(broken, file="wf.yaml")
    assert caught.value.yaml_path == "spec.activeDeadlineSeconds"


def test_a_v1_volume_op_creates_the_claim_its_steps_share(tmp_path: Path, dags_folder: Path) -> None:
    """``dsl.VolumeOp`` (a resource template creating a PersistentVolumeClaim) → kfp-kubernetes
    CreatePVC; the steps mounting ``{{inputs.parameters.mypvc-name}}`` get the claim it made.
    KFP v1's own volumeop_sequential.yaml: step1 writes /data/file1, step2 copies it to file2,
    step3 reads both — on the local runtime, through the claim's folder."""
    import os

    from tests.runs import run_pipeline

    sample = CORPUS / "sdk/python/tests/compiler/testdata/volumeop_sequential.yaml"
    pipeline = load_pipeline_file(sample, use_cache=False)
    step1 = pipeline.platform.executors["exec-step1"].pvc_mount[0]
    assert step1.mount_path == "/data" and step1.pvc_name == TaskOutput("mypvc", "name")
    result = run_pipeline(sample, dags_folder)
    assert result.state == "success", result.states
    claim = result.parameter("mypvc", "name")
    assert claim.startswith("kfx-") and claim.endswith("-newpvc"), claim
    folder = Path(os.environ["AIRFLOW_HOME"]) / "kfx" / "volumes" / claim
    assert (folder / "file1").read_text().strip() == "1" and (folder / "file2").read_text().strip() == "1"
    with pytest.raises(UnsupportedFeatureError) as caught:  # a ResourceOp making a Secret
        load_pipeline_file(CORPUS / "sdk/python/tests/compiler/testdata/resourceop_basic.yaml", use_cache=False)
    assert caught.value.feature == "Argo resource template" and "Secret" in str(caught.value)


def test_v1_run_variables_become_the_runs_identity_and_an_exit_template_gets_the_pipeline_parameters() -> None:
    """``{{workflow.uid}}``/``{{workflow.name}}``/``{{pod.name}}`` (``dsl.RUN_ID_PLACEHOLDER``,
    the workflow's name, ``dsl.EXECUTION_ID_PLACEHOLDER``) → the v2 run-time placeholders;
    ``spec.onExit`` naming a template with inputs: Argo passes it the workflow's arguments."""
    text = TWO_STEP.replace("'{{inputs.parameters.word}}', '{{inputs.parameters.times}}'",
                            "'{{inputs.parameters.word}}-{{workflow.uid}}/{{pod.name}}', '{{workflow.name}}'", 1)
    text = text.replace("  serviceAccountName: pipeline-runner", "  onExit: produce", 1)
    pipeline = load_pipeline_text(text, file="wf.yaml")
    args = pipeline.executors["exec-produce"].container.args
    assert args[1:] == ("{{$.inputs.parameters['word']}}-{{$.pipeline_job_uuid}}/{{$.pipeline_task_uuid}}",
                        "{{$.pipeline_job_name}}")
    exit_task = pipeline.root.dag.tasks["produce-2"]
    assert exit_task.trigger_strategy is TriggerStrategy.ALL_UPSTREAM_TASKS_COMPLETED
    assert {name: value.source for name, value in exit_task.inputs.items()} == {
        "word": ComponentInput("word"), "times": ComponentInput("times")}


def test_a_v1_output_at_a_fixed_path_the_program_picks_is_collected_from_it(tmp_path: Path, dags_folder: Path) -> None:
    """``ContainerOp(file_outputs={'said': '/fixed/path'})`` of a program that computes the
    path itself (the command line never names it): the local runtime reads the file from
    there after the command, as Argo's ``valueFrom.path`` did (the model's v1 fileOutputs)."""
    from tests.runs import run_pipeline

    fixed = tmp_path / "fixed" / "said.txt"
    consume = """command: [python3, -c, "import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True);
        open(sys.argv[1], 'w').write(sys.argv[2] + sys.argv[3])",
                /tmp/outputs/said/data, '{{inputs.parameters.produce-loud}}', '{{inputs.parameters.suffix}}']"""
    picks_its_path = f"""command: [python3, -c, "import os, sys; os.makedirs(os.environ['OUT'], exist_ok=True);
        open(os.path.join(os.environ['OUT'], 'said.txt'), 'w').write(sys.argv[1] + sys.argv[2])",
                '{{{{inputs.parameters.produce-loud}}}}', '{{{{inputs.parameters.suffix}}}}']
      env:
      - name: OUT
        value: {fixed.parent}"""
    assert consume in TWO_STEP
    text = TWO_STEP.replace(consume, picks_its_path).replace("path: /tmp/outputs/said/data", f"path: {fixed}")
    path = tmp_path / "v1_fixed_path.yaml"
    path.write_text(text)
    pipeline = load_pipeline_text(text, file="wf.yaml")
    assert pipeline.executors["exec-consume"].container.file_outputs == {"consume-said": str(fixed)}
    result = run_pipeline(path, dags_folder, conf={"word": "ok", "times": 2})
    assert result.state == "success", result.states
    assert result.parameter("consume", "consume-said") == "OKOK!"


def test_v1_argument_text_with_variables_is_filled_in_like_an_f_string(tmp_path: Path, dags_folder: Path) -> None:
    """``value: '{{workflow.parameters.word}} x{{tasks.produce.outputs…}}'`` (text around
    variables, as test/frontend-integration-test/helloworld.yaml passes its message): the
    value is the text with each variable's value in place, as Argo fills it in."""
    from tests.runs import run_pipeline

    text = TWO_STEP.replace(
        "          - name: suffix\n            value: '!'",
        "          - name: suffix\n            value: ' by {{workflow.parameters.word}}, run {{workflow.uid}}'", 1)
    path = tmp_path / "v1_text_arguments.yaml"
    path.write_text(text)
    consume = load_pipeline_text(text, file="wf.yaml").root.dag.tasks["consume"]
    assert consume.inputs["pipelinechannel--word"].source == ComponentInput("word")
    result = run_pipeline(path, dags_folder, conf={"word": "hey", "times": 2})
    assert result.state == "success", result.states
    said = result.parameter("consume", "consume-said")
    assert said.startswith("HEYHEY by hey, run ") and "{{" not in said and len(said) > len("HEYHEY by hey, run "), said


def test_a_v1_workflow_runs_and_passes_an_output_on(tmp_path: Path, dags_folder: Path) -> None:
    from tests.runs import run_pipeline

    path = tmp_path / "v1_two_step.yaml"
    path.write_text(TWO_STEP)
    result = run_pipeline(path, dags_folder, conf={"word": "hey", "times": 3})
    assert result.state == "success", result.states
    assert result.parameter("produce", "produce-loud") == "HEYHEYHEY"
    assert result.parameter("consume", "consume-said") == "HEYHEYHEY!"


# The groups the KFP v1 SDK compiles to nested DAG templates, in its spelling: an
# ExitHandler (exit-handler-1 + spec.onExit), Conditions (condition-N called with `when`,
# == quoted, > unquoted), a ParallelFor over dicts (for-loop-N, {{item.a}}, parallelism),
# a withParam loop over a task output, artifacts passed between tasks, and retries.
GROUPS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  annotations:
    pipelines.kubeflow.org/pipeline_spec: '{"inputs": [{"name": "side", "type": "String"},
      {"name": "n", "type": "Integer"}], "name": "v1 groups"}'
  generateName: v1-groups-
spec:
  arguments:
    parameters:
    - {name: side, value: heads}
    - {name: n, value: '7'}
  entrypoint: v1-groups
  onExit: goodbye
  serviceAccountName: pipeline-runner
  templates:
  - name: v1-groups
    inputs:
      parameters:
      - {name: side}
      - {name: n}
    dag:
      tasks:
      - name: exit-handler-1
        template: exit-handler-1
        arguments:
          parameters:
          - {name: side, value: '{{inputs.parameters.side}}'}
          - {name: n, value: '{{inputs.parameters.n}}'}
  - name: exit-handler-1
    inputs:
      parameters:
      - {name: side}
      - {name: n}
    dag:
      tasks:
      - name: flip
        template: flip
        arguments:
          parameters:
          - {name: side, value: '{{inputs.parameters.side}}'}
      - name: condition-1
        template: condition-1
        dependencies: [flip]
        when: '"{{tasks.flip.outputs.parameters.flip-output}}" == "heads"'
        arguments:
          parameters:
          - {name: flip-output, value: '{{tasks.flip.outputs.parameters.flip-output}}'}
      - name: condition-2
        template: condition-2
        when: '{{inputs.parameters.n}} > 5'
      - name: for-loop-3
        template: for-loop-3
        withItems:
        - {a: 1, b: x}
        - {a: 2, b: y}
        arguments:
          parameters:
          - {name: loop-item-param-2-subvar-a, value: '{{item.a}}'}
          - {name: side, value: '{{inputs.parameters.side}}'}
      - name: make-list
        template: make-list
      - name: for-loop-5
        template: for-loop-5
        dependencies: [make-list]
        withParam: '{{tasks.make-list.outputs.parameters.make-list-out}}'
        arguments:
          parameters:
          - {name: loop-item-param-4, value: '{{item}}'}
  - name: condition-1
    inputs:
      parameters:
      - {name: flip-output}
    dag:
      tasks:
      - name: write
        template: write
        arguments:
          parameters:
          - {name: flip-output, value: '{{inputs.parameters.flip-output}}'}
      - name: read
        template: read
        dependencies: [write]
        arguments:
          artifacts:
          - {name: write-data, from: '{{tasks.write.outputs.artifacts.write-data}}'}
    outputs:
      artifacts:
      - {name: write-data, from: '{{tasks.write.outputs.artifacts.write-data}}'}
  - name: condition-2
    dag:
      tasks:
      - {name: big, template: big}
  - name: for-loop-3
    parallelism: 1
    inputs:
      parameters:
      - {name: loop-item-param-2-subvar-a}
      - {name: side}
    dag:
      tasks:
      - name: show
        template: show
        arguments:
          parameters:
          - {name: text, value: '{{inputs.parameters.loop-item-param-2-subvar-a}}'}
  - name: for-loop-5
    inputs:
      parameters:
      - {name: loop-item-param-4}
    dag:
      tasks:
      - name: show-2
        template: show
        arguments:
          parameters:
          - {name: text, value: '{{inputs.parameters.loop-item-param-4}}'}
  - name: flip
    retryStrategy: {limit: 2, backoff: {duration: '1s', factor: 2}}
    inputs:
      parameters:
      - {name: side}
    container:
      image: python:3.11
      command: [sh, -c, 'mkdir -p "$(dirname /tmp/outputs/side/data)" && echo -n "$0" > /tmp/outputs/side/data', '{{inputs.parameters.side}}']
    outputs:
      parameters:
      - name: flip-output
        valueFrom: {path: /tmp/outputs/side/data}
  - name: write
    inputs:
      parameters:
      - {name: flip-output}
    container:
      image: python:3.11
      command: [sh, -c, 'mkdir -p "$(dirname /tmp/outputs/data/data)" && echo -n "got $0" > /tmp/outputs/data/data', '{{inputs.parameters.flip-output}}']
      resources:
        limits: {nvidia.com/gpu: 1}
    outputs:
      artifacts:
      - {name: write-data, path: /tmp/outputs/data/data}
  - name: read
    inputs:
      artifacts:
      - {name: write-data, path: /tmp/inputs/data/data}
    container:
      image: python:3.11
      command: [sh, -c, 'mkdir -p "$(dirname /tmp/outputs/said/data)" && cp /tmp/inputs/data/data /tmp/outputs/said/data']
    outputs:
      parameters:
      - name: read-said
        valueFrom: {path: /tmp/outputs/said/data}
  - name: big
    container:
      image: python:3.11
      command: [echo, big]
  - name: make-list
    container:
      image: python:3.11
      command: [sh, -c, 'mkdir -p "$(dirname /tmp/outputs/out/data)" && echo -n "[10, 20, 30]" > /tmp/outputs/out/data']
    outputs:
      parameters:
      - name: make-list-out
        valueFrom: {path: /tmp/outputs/out/data}
  - name: show
    inputs:
      parameters:
      - {name: text}
    container:
      image: python:3.11
      command: [echo, '{{inputs.parameters.text}}']
  - name: goodbye
    container:
      image: python:3.11
      command: [echo, goodbye]
"""


def test_v1_groups_become_nested_dag_components() -> None:
    pipeline = load_pipeline_text(GROUPS, file="groups.yaml")
    handler = pipeline.root.dag.tasks["exit-handler-1"]
    assert pipeline.components[handler.component].kind == "exit-handler"
    assert handler.inputs["side"].source == ComponentInput("side")
    body = pipeline.components["comp-exit-handler-1"]
    assert set(body.inputs.parameters) == {"side", "n"}
    assert set(body.dag.tasks) == {"flip", "condition-1", "condition-2", "for-loop-3", "make-list", "for-loop-5"}
    # a DAG output: the condition's artifact, from the task inside it
    condition = pipeline.components["comp-condition-1"]
    assert condition.kind == "condition"
    output = condition.dag.outputs["write-data"]
    assert output.is_artifact and output.selectors[0].producer_task == "write"
    assert set(condition.outputs.artifacts) == {"write-data"}


def test_v1_when_becomes_a_cel_condition_over_the_task_inputs() -> None:
    tasks = load_pipeline_text(GROUPS, file="groups.yaml").components["comp-exit-handler-1"].dag.tasks
    text = tasks["condition-1"]
    # the argument passing the same value is the condition's input
    assert text.condition == "inputs.parameter_values['flip-output'] == \"heads\""
    assert text.inputs["flip-output"].source == TaskOutput("flip", "flip-output")
    number = tasks["condition-2"]
    # unquoted: compared as numbers; the value becomes a pipelinechannel input
    assert number.condition == "double(inputs.parameter_values['pipelinechannel--n']) > 5.0"
    assert number.inputs["pipelinechannel--n"].source == ComponentInput("n")


@pytest.mark.parametrize(
    ("when", "condition"),
    [
        ("'{{inputs.parameters.n}}' != 'a b'", "inputs.parameter_values['pipelinechannel--n'] != \"a b\""),
        ("{{inputs.parameters.n}} == tails", "inputs.parameter_values['pipelinechannel--n'] == \"tails\""),
        ("{{inputs.parameters.n}} <= -1.5", "double(inputs.parameter_values['pipelinechannel--n']) <= -1.5"),
        ("{{inputs.parameters.n}} == 3", "double(inputs.parameter_values['pipelinechannel--n']) == 3.0"),
        ('"x-{{inputs.parameters.n}}" == "x-1"', "\"x-\" + inputs.parameter_values['pipelinechannel--n'] == \"x-1\""),
    ],
)
def test_v1_when_operators(when: str, condition: str) -> None:
    from airflow_kfx.expressions import check_expression

    text = GROUPS.replace("when: '{{inputs.parameters.n}} > 5'", f"when: {json.dumps(when)}")
    task = load_pipeline_text(text, file="w.yaml").components["comp-exit-handler-1"].dag.tasks["condition-2"]
    assert task.condition == condition and check_expression(condition) is None


def test_v1_loops_become_parallel_for() -> None:
    pipeline = load_pipeline_text(GROUPS, file="groups.yaml")
    tasks = pipeline.components["comp-exit-handler-1"].dag.tasks
    items = tasks["for-loop-3"]
    assert items.iterator == ParameterIterator("loop-item-param-2", raw_items='[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]')
    assert items.parallelism_limit == 1
    assert pipeline.components[items.component].kind == "loop"
    assert set(pipeline.components[items.component].inputs.parameters) == {"side", "loop-item-param-2"}
    show = pipeline.components[items.component].dag.tasks["show"]
    # {{item.a}} reaches the body as a field of the loop's item
    assert show.inputs["text"].source == ComponentInput("loop-item-param-2")
    assert show.inputs["text"].selector == 'parseJson(string_value)["a"]'
    param = tasks["for-loop-5"]
    assert param.iterator == ParameterIterator("loop-item-param-4", input_parameter="pipelinechannel--make-list-make-list-out")
    assert param.inputs["pipelinechannel--make-list-make-list-out"].source == TaskOutput("make-list", "make-list-out")
    assert pipeline.components[param.component].dag.tasks["show-2"].inputs["text"].source == ComponentInput("loop-item-param-4")


def test_v1_on_exit_becomes_an_exit_task_after_the_handler() -> None:
    pipeline = load_pipeline_text(GROUPS, file="groups.yaml")
    exit_task = pipeline.root.dag.tasks["goodbye"]
    assert exit_task.dependent_tasks == ("exit-handler-1",)
    assert exit_task.trigger_strategy is TriggerStrategy.ALL_UPSTREAM_TASKS_COMPLETED


def test_v1_retries_resources_and_artifacts() -> None:
    pipeline = load_pipeline_text(GROUPS, file="groups.yaml")
    flip = pipeline.components["comp-exit-handler-1"].dag.tasks["flip"]
    assert flip.retry == RetryPolicy(max_retry_count=2, backoff_seconds=1.0, backoff_factor=2.0)
    write = pipeline.executors["exec-write"].container
    assert (write.resources.accelerator.type, write.resources.accelerator.count) == ("nvidia.com/gpu", "1")
    assert write.command[-2].endswith("> {{$.outputs.artifacts['write-data'].path}}")
    assert pipeline.components["comp-write"].outputs.artifacts["write-data"].schema_title == "system.Artifact"
    read = pipeline.components["comp-condition-1"].dag.tasks["read"]
    assert read.inputs["write-data"].is_artifact and read.inputs["write-data"].source == TaskOutput("write", "write-data")
    assert "{{$.inputs.artifacts['write-data'].path}}" in pipeline.executors["exec-read"].container.command[-1]


RECURSIVE = GROUPS.replace("      - {name: big, template: big}", "      - {name: again, template: exit-handler-1}")


@pytest.mark.parametrize(
    ("text", "feature"),
    [
        (RECURSIVE, "recursion"),
        (GROUPS.replace("- {a: 1, b: x}", "- {a: '{{workflow.parameters.n}}', b: x}"), "Argo variable in withItems"),
        (GROUPS.replace("when: '{{inputs.parameters.n}} > 5'", "when: '{{inputs.parameters.n}} > 5 && 1 < 2'"),
         "Argo when expression"),
        (GROUPS.replace("      - {name: write-data, path: /tmp/inputs/data/data}",
                        "      - {name: write-data, path: /tmp/inputs/data/data, raw: {data: hi}}"), "Argo raw input artifact"),
        (GROUPS.replace("cp /tmp/inputs/data/data", "cp /tmp/elsewhere"), "KFP v1 input at a fixed path"),
        (GROUPS.replace("  - name: big\n    container:", "  - name: big\n    steps: []\n    container:"),
         "Argo steps template"),
        (GROUPS.replace("      - {name: write-data, path: /tmp/outputs/data/data}",
                        "      - {name: write-data, path: /tmp/outputs/data/data, s3: {bucket: mine}}"),
         "Argo output artifact s3"),
    ],
)
def test_what_v1_groups_cannot_say_is_refused_by_name(text: str, feature: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_pipeline_text(text, file="wf.yaml")
    assert caught.value.feature == feature and caught.value.line is not None, caught.value


def test_v1_groups_run(tmp_path: Path, dags_folder: Path) -> None:
    from tests.runs import run_pipeline

    path = tmp_path / "v1_groups.yaml"
    path.write_text(GROUPS.replace("limits: {nvidia.com/gpu: 1}", "limits: {cpu: '1'}"))
    result = run_pipeline(path, dags_folder, conf={"side": "heads", "n": 3})
    assert result.state == "success", result.states
    assert result.parameter("exit-handler-1.condition-1.read", "read-said") == "got heads"
    # n=3: the numeric condition is false, its group skipped; the exit task ran
    assert result.states[("exit-handler-1.condition-2.big", -1)] == "skipped", result.states
    assert result.states[("goodbye", -1)] == "success"
    assert sorted(i for (t, i), s in result.states.items() if t == "exit-handler-1.for-loop-5.show-2" and s == "success") == [0, 1, 2]
