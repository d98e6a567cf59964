"""The kfp-kubernetes platform spec: parsing it, and applying it to a task pod.

Driven by the KFP conformance corpus: every ``platforms:`` document must parse
(or be refused as unsupported), and every kfp-kubernetes snapshot file, applied
to a minimal pod, must put each setting where Kubernetes expects it and yield a
pod that validates against the Kubernetes 1.33 schema.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client import (
    ApiClient,
    V1Affinity,
    V1Container,
    V1NodeAffinity,
    V1NodeSelector,
    V1NodeSelectorRequirement,
    V1NodeSelectorTerm,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1SecurityContext,
    V1Toleration,
)

from airflow_kfx.exceptions import SpecError, TaskRuntimeError, UnsupportedFeatureError
from airflow_kfx.pod.platform import apply_executor_config, create_pvc_manifest
from airflow_kfx.pod.volumes import DNS_LABEL
from airflow_kfx.spec.model import ComponentInput, Constant, TaskOutput, ValueSource
from airflow_kfx.spec.platform import (
    KubernetesExecutorConfig,
    KubernetesPlatform,
    parse_executor_config,
    parse_kubernetes_platform,
    parse_value_source,
)
from airflow_kfx.spec.source import Node, load_documents, root_node
from tests.support import CORPUS

SNAPSHOTS = CORPUS / "kubernetes_platform/python/test/snapshot/data"
K8S_VERSION = "1.33"

if not SNAPSHOTS.is_dir():  # pragma: no cover
    pytest.skip(f"KFP corpus not found at {CORPUS} (set KFX_KFP_CORPUS)", allow_module_level=True)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def base_pod() -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="t"),
                 spec=V1PodSpec(containers=[V1Container(name="base", image="python:3.11")]))


def resolver(inputs: dict[str, Any] | None = None,
             task_output: Any = "pvc-from-task") -> Callable[[ValueSource], Any]:
    """Constants → their value; pipeline inputs → ``inputs`` (absent → None); task outputs → fixed."""
    inputs = inputs or {}

    def resolve(source: ValueSource) -> Any:
        if isinstance(source, Constant):
            return source.value
        if isinstance(source, ComponentInput):
            return inputs.get(source.name)
        if isinstance(source, TaskOutput):
            return task_output
        raise AssertionError(source)

    return resolve


def manifest(pod: V1Pod) -> dict:
    data = ApiClient().sanitize_for_serialization(pod)
    return {"apiVersion": "v1", "kind": "Pod", **data}


def validate(pod: V1Pod) -> None:
    """Strict schema check, plus what the schema cannot say about volume names."""
    kubernetes_validate.validate(manifest(pod), K8S_VERSION, strict=True)
    names = [v.name for v in pod.spec.volumes or []]
    assert len(names) == len(set(names)), names
    assert all(DNS_LABEL.match(n) and len(n) <= 63 for n in names), names
    for container in (pod.spec.containers or []) + (pod.spec.init_containers or []):
        for mount in container.volume_mounts or []:
            assert mount.name in names, (container.name, mount.name)


def load_platform_doc(path: Path) -> Node:
    docs = load_documents(path.read_text(), str(path))
    platform_docs = [d for d in docs if isinstance(d, dict) and "platforms" in d]
    assert len(platform_docs) == 1, path
    return root_node(platform_docs[0], str(path)).child("platforms").child("kubernetes")


def platform_of(path: Path) -> KubernetesPlatform:
    return parse_kubernetes_platform(load_platform_doc(path))


def parse_text(text: str) -> KubernetesPlatform:
    doc = load_documents(text, "<test>")[0]
    return parse_kubernetes_platform(root_node(doc, "<test>").child("platforms").child("kubernetes"))


def config_of(yaml_executor: str) -> KubernetesExecutorConfig:
    """Parse one executor config written as an indented YAML block."""
    text = "platforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-x:\n"
    text += "".join(f"          {line}\n" for line in yaml_executor.strip("\n").splitlines())
    return parse_text(text).executors["exec-x"]


def env(pod: V1Pod, name: str, container: str = "base"):
    [c] = [c for c in pod.spec.containers if c.name == container]
    matches = [e for e in c.env or [] if e.name == name]
    assert len(matches) == 1, (name, c.env)
    return matches[0]


def mounted(pod: V1Pod, path: str, container: str = "base"):
    """(volumeMount, volume) of what is mounted at ``path``."""
    [c] = [c for c in pod.spec.containers if c.name == container]
    [mount] = [m for m in c.volume_mounts or [] if m.mount_path == path]
    [volume] = [v for v in pod.spec.volumes if v.name == mount.name]
    return mount, volume


@cache
def corpus_platform_files() -> tuple[Path, ...]:
    found = []
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if "platforms" not in text:
            continue
        try:
            docs = load_documents(text, str(path))
        except SpecError:
            continue  # the deliberately broken negative-test files
        if any(isinstance(d, dict) and "platforms" in d for d in docs):
            found.append(path)
    return tuple(found)


# ---------------------------------------------------------------------------
# (a) Every platforms: document in the corpus
# ---------------------------------------------------------------------------


def test_every_corpus_platform_document_parses_or_is_refused():
    tally: Counter[str] = Counter()
    for path in corpus_platform_files():
        try:
            platform = platform_of(path)
        except UnsupportedFeatureError as err:
            tally[f"unsupported: {err.feature}"] += 1
            continue
        tally["parsed"] += 1
        tally["executors"] += len(platform.executors)
        tally["with pipelineConfig"] += platform.pipeline_config is not None
    print("\nplatforms: documents in the corpus:", dict(tally))
    assert tally["parsed"] >= len(list(SNAPSHOTS.glob("*.yaml")))


def test_every_corpus_platform_document_builds_a_valid_pod():
    """Apply every executor config of the corpus; optional inputs are left unset."""
    def resolve(source: ValueSource) -> Any:
        if isinstance(source, ComponentInput):
            return None if source.name.startswith("optional_") else "input-value"
        return resolver()(source)

    applied = 0
    for path in corpus_platform_files():
        for config in platform_of(path).executors.values():
            validate(apply_executor_config(base_pod(), config, resolve))
            applied += 1
    assert applied > 40


def test_argo_workflow_kubernetes_parameters_parse():
    """KFP-compiled Argo workflows embed the same configs as ``kubernetes-*`` parameters."""
    count = 0
    for path in sorted((CORPUS / "test_data/compiled-workflows").glob("*.yaml")):
        workflow = load_documents(path.read_text(), str(path))[0]
        for param in workflow.get("spec", {}).get("arguments", {}).get("parameters", []):
            if param["name"].startswith("kubernetes-"):
                where = f"{path}#{param['name']}"
                parse_executor_config(root_node(load_documents(param["value"], where)[0], where))
                count += 1
    print(f"\n{count} kubernetes-* workflow parameters parsed")
    assert count > 0


# ---------------------------------------------------------------------------
# (b) + (c) Each snapshot feature lands where Kubernetes expects it
# ---------------------------------------------------------------------------


def check_config_map_as_env(pods):
    ref = env(pods["exec-comp"], "CONFIG_MAP_VAR").value_from.config_map_key_ref
    assert (ref.name, ref.key, ref.optional) == ("my-cm", "foo", False)


def check_config_map_as_vol(pods):
    mount, volume = mounted(pods["exec-comp"], "/mnt/my_vol")
    assert (volume.config_map.name, volume.config_map.optional) == ("my-cm", False)
    assert mount.read_only is None and mount.sub_path is None


def check_pvc_from_task(*labels):
    def check(pods):
        assert set(pods) == set(labels)
        for pod in pods.values():
            _, volume = mounted(pod, "/data")
            assert volume.persistent_volume_claim.claim_name == "pvc-from-task"
    return check


def check_empty_dir_mounts(pods):
    mount, volume = mounted(pods["exec-comp"], "/mnt/my_vol_1")
    assert volume.name == "emptydir-vol-1"
    assert (volume.empty_dir.medium, volume.empty_dir.size_limit) == ("Memory", "1Gi")


def check_field_path_as_env(pods):
    ref = env(pods["exec-comp"], "KFP_RUN_NAME").value_from.field_ref
    assert ref.field_path == "metadata.annotations['pipelines.kubeflow.org/run_name']"


def check_general_ephemeral_volume(pods):
    _, volume = mounted(pods["exec-comp"], "path")
    assert volume.name == "pvc-name"
    template = volume.ephemeral.volume_claim_template
    assert template.metadata.annotations == {"annotation1": "a1"}
    assert template.spec.access_modes == ["ReadWriteOnce"]
    assert template.spec.resources.requests == {"storage": "5Gi"}
    assert template.spec.storage_class_name is None  # defaultStorageClass: true


def check_image_pull_secrets(pods):
    assert [s.name for s in pods["exec-comp"].spec.image_pull_secrets] == ["my-secret"]


def check_init_container(pods):
    pod = pods["exec-print-greeting"]
    _, volume = mounted(pod, "/data")
    assert volume.empty_dir is not None and volume.name == "shared-data"
    [init] = pod.spec.init_containers
    assert (init.name, init.image) == ("prepare-data", "busybox:1.36")
    assert init.command == ["sh", "-c"] and init.args == ["echo ready > /data/marker"]
    assert [(e.name, e.value) for e in init.env] == [("MARKER_TEXT", "ready")]
    assert [(m.name, m.mount_path) for m in init.volume_mounts] == [(volume.name, "/data")]
    assert init.restart_policy is None


def check_node_selector(pods):
    assert pods["exec-comp"].spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-p4"}


def _preferred(pod):
    node_affinity = pod.spec.affinity.node_affinity
    assert node_affinity.required_during_scheduling_ignored_during_execution is None
    return [(t.weight, [(r.key, r.operator, r.values) for r in t.preference.match_expressions])
            for t in node_affinity.preferred_during_scheduling_ignored_during_execution]


def check_nodeaffinity(pods):
    assert pods["exec-print-hello-with-empty-json"].spec.affinity is None
    assert _preferred(pods["exec-print-hello-with-json-affinity"]) == [(100, [("disktype", "In", ["ssd"])])]
    assert _preferred(pods["exec-print-hello-with-json-affinity-2"]) == [
        (100, [("zone", "In", ["us-west-1"])]),
        (50, [("instance-type", "In", ["n1-standard-4"])]),
    ]
    assert _preferred(pods["exec-print-hello-with-preferred-affinity"]) == [
        (50, [("zone", "In", ["us-west-1"])])]


def check_secret_as_env(pods):
    ref = env(pods["exec-comp"], "SECRET_VAR").value_from.secret_key_ref
    assert (ref.name, ref.key, ref.optional) == ("my-secret", "password", False)


def check_secret_as_vol(pods):
    _, volume = mounted(pods["exec-comp"], "/mnt/my_vol")
    assert (volume.secret.secret_name, volume.secret.optional) == ("my-secret", False)


def check_security_context(pods):
    context = pods["exec-print-greeting"].spec.containers[0].security_context
    assert (context.run_as_user, context.run_as_group) == (65534, 0)
    assert context.capabilities.drop == ["ALL"]


def check_timeout(pods):
    assert pods["exec-comp"].spec.active_deadline_seconds == 20


def check_toleration(pods):
    [t] = pods["exec-comp"].spec.tolerations
    assert (t.key, t.operator, t.value, t.effect) == ("key1", "Equal", "value1", "NoExecute")
    assert t.toleration_seconds == 10


SNAPSHOT_CHECKS = {
    "config_map_as_env.yaml": check_config_map_as_env,
    "config_map_as_vol.yaml": check_config_map_as_vol,
    "create_mount_delete_dynamic_pvc.yaml": check_pvc_from_task("exec-consumer", "exec-producer"),
    "create_mount_delete_existing_pvc.yaml": check_pvc_from_task("exec-comp"),
    "create_mount_delete_existing_pvc_from_task_output.yaml": check_pvc_from_task("exec-comp"),
    "empty_dir_mounts.yaml": check_empty_dir_mounts,
    "field_path_as_env.yaml": check_field_path_as_env,
    "general_ephemeral_volume.yaml": check_general_ephemeral_volume,
    "image_pull_secrets.yaml": check_image_pull_secrets,
    "init_container.yaml": check_init_container,
    "node_selector.yaml": check_node_selector,
    "nodeaffinity.yaml": check_nodeaffinity,
    "secret_as_env.yaml": check_secret_as_env,
    "secret_as_vol.yaml": check_secret_as_vol,
    "security_context.yaml": check_security_context,
    "timeout.yaml": check_timeout,
    "toleration.yaml": check_toleration,
}


def test_every_snapshot_file_has_a_check():
    assert sorted(p.name for p in SNAPSHOTS.glob("*.yaml")) == sorted(SNAPSHOT_CHECKS)


@pytest.mark.parametrize("name", sorted(SNAPSHOT_CHECKS))
def test_snapshot_lands_in_the_pod(name):
    platform = platform_of(SNAPSHOTS / name)
    pods = {}
    for label, config in platform.executors.items():
        original = base_pod()
        before = manifest(original)
        pods[label] = apply_executor_config(original, config, resolver())
        assert manifest(original) == before, "the input pod must not be modified"
        validate(pods[label])
    SNAPSHOT_CHECKS[name](pods)


# ---------------------------------------------------------------------------
# Parameterised names and optional inputs (test_data pipelines)
# ---------------------------------------------------------------------------

CRITICAL = CORPUS / "test_data/sdk_compiled_pipelines/valid/critical"


def test_secret_names_from_constant_input_and_task_output():
    config = platform_of(CRITICAL / "pipeline_with_secret_as_env.yaml").executors["exec-comp"]
    pod = apply_executor_config(base_pod(), config, resolver({"secret_parm": "user-secret"}, "task-secret"))
    refs = {v: env(pod, v).value_from.secret_key_ref for v in ("USER_NAME", "PASSWORD_VAR1", "PASSWORD_VAR2")}
    assert [(r.name, r.key) for r in refs.values()] == [
        ("user-secret", "username"), ("test-secret-2", "password"), ("task-secret", "password")]
    validate(pod)


def test_missing_optional_inputs_skip_their_settings():
    config = platform_of(CRITICAL / "missing_kubernetes_optional_inputs.yaml").executors["exec-log-message"]
    pod = apply_executor_config(base_pod(), config, resolver())
    assert manifest(pod) == manifest(base_pod())


def test_optional_inputs_given_as_objects_or_json_text():
    config = platform_of(CRITICAL / "missing_kubernetes_optional_inputs.yaml").executors["exec-log-message"]
    affinity = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}
    inputs = {
        "optional_config_map_name": "cm",
        "optional_image_pull_secret_name": "pull",
        "optional_secret_name": "sec",
        "optional_selector": {"disk": "ssd"},
        "optional_tolerations": json.dumps([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
                                            {"key": "spot", "operator": "Exists"}]),
        "optional_affinity": json.dumps(affinity),
    }
    pod = apply_executor_config(base_pod(), config, resolver(inputs))
    validate(pod)
    assert env(pod, "SETTING").value_from.config_map_key_ref.name == "cm"
    assert env(pod, "PASSWORD").value_from.secret_key_ref.optional is True
    assert mounted(pod, "/mnt/config")[1].config_map.optional is True
    assert mounted(pod, "/mnt/secret")[1].secret.secret_name == "sec"
    assert [s.name for s in pod.spec.image_pull_secrets] == ["pull"]
    assert pod.spec.node_selector == {"disk": "ssd"}
    assert [(t.key, t.operator, t.effect) for t in pod.spec.tolerations] == [
        ("gpu", "Exists", "NoSchedule"), ("spot", "Exists", None)]
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    [term] = required.node_selector_terms
    assert (term.match_expressions[0].key, term.match_expressions[0].values) == ("zone", ["a"])


def test_workspace_pipeline_config():
    platform = platform_of(CRITICAL / "pipeline_with_workspace.yaml")
    assert platform.executors == {}
    workspace = platform.pipeline_config.workspace
    assert workspace.size == "1Gi"
    assert workspace.kubernetes.pvc_spec_patch == {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "standard"}


# ---------------------------------------------------------------------------
# Value sources and precedence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("{runtimeValue: {constant: x}}", Constant("x")),
    ("{runtimeValue: {constant: {a: [1]}}}", Constant({"a": [1]})),
    ("{runtimeValue: {constantValue: {intValue: '7'}}}", Constant(7)),
    ("{componentInputParameter: name}", ComponentInput("name")),
    ("{taskOutputParameter: {producerTask: t, outputParameterKey: k}}", TaskOutput("t", "k")),
])
def test_parse_value_source(text, expected):
    assert parse_value_source(root_node(load_documents(text, "<t>")[0], "<t>")) == expected


def test_parameter_form_wins_over_the_deprecated_name():
    config = config_of("""
secretAsEnv:
- secretName: old
  secretNameParameter: {componentInputParameter: secret}
  keyToEnv: [{secretKey: k, envVar: V}]
pvcMount:
- constant: old-pvc
  pvcNameParameter: {runtimeValue: {constant: new-pvc}}
  mountPath: /data
  subPath: sub
""")
    assert config.secret_as_env[0].secret_name == ComponentInput("secret")
    assert config.pvc_mount[0].pvc_name == Constant("new-pvc")
    pod = apply_executor_config(base_pod(), config, resolver({"secret": "new"}))
    assert env(pod, "V").value_from.secret_key_ref.name == "new"
    mount, volume = mounted(pod, "/data")
    assert (volume.persistent_volume_claim.claim_name, mount.sub_path) == ("new-pvc", "sub")


# ---------------------------------------------------------------------------
# Refused and malformed input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("executor", "feature"), [
    ("sidecars: [{name: s, image: busybox}]", "kubernetes: sidecars"),
    ("podResourceClaims: [{resourceClaimTemplateName: gpu}]", "kubernetes: podResourceClaims"),
    ("securityContext: {privileged: true}", "kubernetes: securityContext.privileged"),
    ("tolerations: [{key: k, bogus: 1}]", "kubernetes: tolerations.bogus"),
])
def test_unknown_or_refused_fields_are_unsupported(executor, feature):
    with pytest.raises(UnsupportedFeatureError) as info:
        config_of(executor)
    assert info.value.feature == feature
    assert info.value.yaml_path.startswith("platforms.kubernetes.deploymentSpec.executors.exec-x")


def test_refused_pipeline_config_field():
    with pytest.raises(UnsupportedFeatureError) as info:
        parse_text("platforms:\n  kubernetes:\n    pipelineConfig:\n      semaphoreKey: k\n")
    assert info.value.feature == "kubernetes: pipelineConfig.semaphoreKey"


@pytest.mark.parametrize(("executor", "path", "message"), [
    ("secretAsEnv:\n- secretName: s\n", "secretAsEnv[0]", "keyToEnv"),
    ("secretAsEnv:\n- secretName: s\n  keyToEnv: {secretKey: k, envVar: V}\n",
     "secretAsEnv[0].keyToEnv", "list"),
    ("secretAsEnv:\n- keyToEnv: [{secretKey: k, envVar: V}]\n", "secretAsEnv[0]", "secretNameParameter"),
    ("tolerations:\n- tolerationSeconds: soon\n", "tolerations[0].tolerationSeconds", "integer"),
    ("emptyDirMounts:\n- {volumeName: v, mountPath: /m, sizeLimit: lots}\n",
     "emptyDirMounts[0].sizeLimit", "quantity"),
    ("nodeAffinity:\n- {weight: 500, matchExpressions: [{key: a, operator: Exists}]}\n",
     "nodeAffinity[0].weight", "100"),
    ("imagePullPolicy: Sometimes\n", "imagePullPolicy", "IfNotPresent"),
])
def test_malformed_values_name_their_yaml_path(executor, path, message):
    with pytest.raises(SpecError) as info:
        config_of(executor)
    assert not isinstance(info.value, UnsupportedFeatureError)
    assert info.value.yaml_path == f"platforms.kubernetes.deploymentSpec.executors.exec-x.{path}"
    assert message in info.value.message
    assert info.value.line is not None


# ---------------------------------------------------------------------------
# Pod building details
# ---------------------------------------------------------------------------


def test_volume_names_are_valid_unique_and_shared_sources_reused():
    config = config_of("""
secretAsVolume:
- {secretNameParameter: {runtimeValue: {constant: My.Secret_Name}}, mountPath: /s}
configMapAsVolume:
- {configMapNameParameter: {runtimeValue: {constant: my-secret-name}}, mountPath: /c}
pvcMount:
- {pvcNameParameter: {runtimeValue: {constant: data.pvc}}, mountPath: /a, subPath: a}
- {pvcNameParameter: {runtimeValue: {constant: data.pvc}}, mountPath: /b, subPath: b}
emptyDirMounts:
- {volumeName: my-secret-name, mountPath: /e}
""")
    pod = apply_executor_config(base_pod(), config, resolver())
    validate(pod)
    assert mounted(pod, "/a")[1] is mounted(pod, "/b")[1]  # one PVC volume, two mounts
    assert len(pod.spec.volumes) == 4
    assert mounted(pod, "/s")[1].secret.secret_name == "My.Secret_Name"


def test_two_mounts_at_one_path_are_an_error():
    config = config_of("emptyDirMounts:\n- {volumeName: a, mountPath: /m}\n"
                       "- {volumeName: b, mountPath: /m}\n")
    with pytest.raises(TaskRuntimeError, match="/m"):
        apply_executor_config(base_pod(), config, resolver())


def test_init_container_needs_a_defined_volume():
    config = config_of("initContainers:\n"
                       "- {name: i, image: busybox, volumeMounts: [{volumeName: nope, mountPath: /x}]}\n")
    with pytest.raises(TaskRuntimeError, match="nope"):
        apply_executor_config(base_pod(), config, resolver())


def test_init_container_mounts_a_pvc_by_its_claim_name():
    config = config_of("""
pvcMount:
- pvcNameParameter: {taskOutputParameter: {producerTask: c, outputParameterKey: name}}
  mountPath: /d
initContainers:
- name: warm
  image: busybox
  restartPolicy: Always
  resources: {requests: {cpu: 100m}, limits: {memory: 64Mi}}
  volumeMounts: [{volumeName: run-1.pvc, mountPath: /d}]
""")
    pod = apply_executor_config(base_pod(), config, resolver(task_output="run-1.pvc"))
    validate(pod)
    [init] = pod.spec.init_containers
    assert init.volume_mounts[0].name == mounted(pod, "/d")[1].name == "run-1-pvc"
    assert init.restart_policy == "Always"
    assert (init.resources.requests, init.resources.limits) == ({"cpu": "100m"}, {"memory": "64Mi"})


def test_toleration_json_with_an_unknown_field_is_refused():
    config = config_of(
        "tolerations: [{tolerationJson: {runtimeValue: {constant: {key: k, efect: NoSchedule}}}}]")
    with pytest.raises(TaskRuntimeError, match="efect"):
        apply_executor_config(base_pod(), config, resolver())


def test_pod_affinity_shared_memory_and_metadata():
    config = config_of("""
podAffinity:
- {topologyKey: kubernetes.io/hostname, matchPodLabels: {app: db}}
- {topologyKey: zone, anti: true, weight: 10, namespaces: [ns],
   matchPodExpressions: [{key: app, operator: In, values: [web]}], matchNamespaceLabels: {team: a}}
enabledSharedMemory: {size: 2Gi}
podMetadata: {labels: {team: ml}, annotations: {note: hi}}
imagePullPolicy: Always
""")
    pod = apply_executor_config(base_pod(), config, resolver())
    validate(pod)
    [required] = pod.spec.affinity.pod_affinity.required_during_scheduling_ignored_during_execution
    assert required.topology_key == "kubernetes.io/hostname"
    assert required.label_selector.match_labels == {"app": "db"}
    [weighted] = pod.spec.affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution
    term = weighted.pod_affinity_term
    assert weighted.weight == 10 and term.namespaces == ["ns"]
    assert term.label_selector.match_expressions[0].values == ["web"]
    assert term.namespace_selector.match_labels == {"team": "a"}
    mount, volume = mounted(pod, "/dev/shm")
    assert (volume.name, volume.empty_dir.medium, volume.empty_dir.size_limit) == ("dshm", "Memory", "2Gi")
    assert pod.metadata.labels == {"team": "ml"} and pod.metadata.annotations == {"note": "hi"}
    assert pod.spec.containers[0].image_pull_policy == "Always"


def test_merges_with_what_the_base_pod_already_has():
    pod = base_pod()
    pod.metadata.labels = {"keep": "1", "team": "old"}
    pod.spec.tolerations = [V1Toleration(key="base", operator="Exists")]
    pod.spec.node_selector = {"pool": "a"}
    pod.spec.affinity = V1Affinity(node_affinity=V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=V1NodeSelector(node_selector_terms=[
            V1NodeSelectorTerm(match_fields=[
                V1NodeSelectorRequirement(key="metadata.name", operator="In", values=["n1"])])])))
    pod.spec.containers[0].security_context = V1SecurityContext(run_as_user=1000)
    config = config_of("""
podMetadata: {labels: {team: ml}}
tolerations: [{key: gpu, operator: Exists}]
nodeSelector: {labels: {disk: ssd}}
nodeAffinity: [{matchExpressions: [{key: zone, operator: In, values: [b]}]}]
securityContext: {runAsUser: '0', runAsNonRoot: true}
""")
    result = apply_executor_config(pod, config, resolver())
    validate(result)
    assert result.metadata.labels == {"keep": "1", "team": "ml"}
    assert [t.key for t in result.spec.tolerations] == ["base", "gpu"]
    assert result.spec.node_selector == {"pool": "a", "disk": "ssd"}
    required = result.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    [term] = required.node_selector_terms
    assert term.match_fields is None and term.match_expressions[0].key == "zone"  # replaced, as KFP
    context = result.spec.containers[0].security_context
    assert (context.run_as_user, context.run_as_non_root) == (1000, True)  # the base pod's identity wins
    assert [t.key for t in pod.spec.tolerations] == ["base"]  # input untouched


# ---------------------------------------------------------------------------
# CreatePVC
# ---------------------------------------------------------------------------


def validate_pvc(pvc) -> dict:
    data = ApiClient().sanitize_for_serialization(pvc)
    kubernetes_validate.validate(data, K8S_VERSION, strict=True)
    return data


def test_create_pvc_with_suffix_and_all_inputs():
    pvc = create_pvc_manifest(
        access_modes=["ReadWriteOnce"], size="5Gi", name_prefix="run-1a2b", pvc_name_suffix="-my-pvc",
        storage_class_name="fast", volume_name="pv-1", annotations={"a": "b"},
        data_source={"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"},
    )
    data = validate_pvc(pvc)
    assert data["metadata"] == {"name": "run-1a2b-my-pvc", "annotations": {"a": "b"}}
    assert data["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast", "volumeName": "pv-1",
        "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"},
    }


def test_create_pvc_naming_and_storage_class():
    named = validate_pvc(create_pvc_manifest(access_modes=["ReadWriteMany"], size="1Gi", name_prefix="p",
                                             pvc_name="shared", storage_class_name=""))
    assert named["metadata"]["name"] == "shared"
    assert named["spec"]["storageClassName"] == ""  # "": static binding, kept as KFP sends it
    default = validate_pvc(
        create_pvc_manifest(access_modes=["ReadWriteOnce"], size="1Gi", name_prefix="run-x"))
    assert default["metadata"]["name"] == "run-x" and "storageClassName" not in default["spec"]


@pytest.mark.parametrize("kwargs", [
    {"pvc_name": "a", "pvc_name_suffix": "-b"},
    {"pvc_name": "Not_Valid"},
    {"access_modes": ["ReadWriteSometimes"]},
    {"size": "five gigs"},
    {"data_source": {"kind": "VolumeSnapshot", "name": "s", "namespace": "x"}},
])
def test_create_pvc_rejects_bad_inputs(kwargs):
    args = {"access_modes": ["ReadWriteOnce"], "size": "1Gi", "name_prefix": "run", **kwargs}
    with pytest.raises(TaskRuntimeError):
        create_pvc_manifest(**args)
