"""The Kubernetes pod each task would submit, per KFP feature, without running it.

Each test loads a real compiled pipeline, renders a task's pod with
``airflow_kfx.render.render_pod`` (the operator's own ``build_pod_request_obj``,
with run-time values shown as ``<...>``), checks where each setting lands, and
validates the manifest against the Kubernetes 1.33 schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from airflow_kfx import load_pipeline
from airflow_kfx.render import render_pod
from tests.support import CORPUS, FIXTURES, VALID

K8S_VERSION = "1.33"
SNAPSHOTS = CORPUS / "kubernetes_platform/python/test/snapshot/data"

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def load(path_or_name: str | Path) -> Any:
    """A fresh DAG (render_pod prepares the operator, so never share one)."""
    path = Path(path_or_name)
    if not path.suffix:
        path = FIXTURES / f"{path_or_name}.yaml"
    if not path.is_file():  # pragma: no cover
        pytest.skip(f"{path} not found (set KFX_KFP_CORPUS for corpus files)")
    return load_pipeline(path)


def manifest_of(pod: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", **ApiClient().sanitize_for_serialization(pod)}


def validate(manifest: Mapping[str, Any]) -> None:
    kubernetes_validate.validate(dict(manifest), K8S_VERSION, strict=True)
    spec = manifest["spec"]
    names = [v["name"] for v in spec.get("volumes") or []]
    assert len(names) == len(set(names)), names
    for container in spec["containers"] + (spec.get("initContainers") or []):
        for mount in container.get("volumeMounts") or []:
            assert mount["name"] in names, mount


def render(dag: Any, task_id: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated manifest of ``task_id``'s pod for a run with ``params``."""
    manifest = manifest_of(render_pod(dag.get_task(task_id), dict(params or {})))
    validate(manifest)
    return manifest


def pod(name: str | Path, task_id: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return render(load(name), task_id, params)


def main(manifest: Mapping[str, Any]) -> dict[str, Any]:
    [container] = [c for c in manifest["spec"]["containers"] if c["name"] == "base"]
    return container


def executor_input(manifest: Mapping[str, Any]) -> dict[str, Any]:
    args = main(manifest)["args"]
    return json.loads(args[args.index("--executor_input") + 1])


def env(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in main(manifest).get("env") or []}


def mounted(manifest: Mapping[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volumeMount, volume) at ``path`` in the main container."""
    [mount] = [m for m in main(manifest).get("volumeMounts") or [] if m["mountPath"] == path]
    [volume] = [v for v in manifest["spec"]["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def cli_params(path: Path, *raw: str) -> dict[str, Any]:
    """``kfx render -p NAME=VALUE`` parameters, typed as the CLI types them."""
    from airflow_kfx.params import parse_params
    from airflow_kfx.spec.loader import load_pipeline_file

    return parse_params(load_pipeline_file(path), list(raw))


def pipeline_root(dag: Any) -> str:
    return next(t for t in dag.tasks if hasattr(t, "pipeline_root")).pipeline_root().rstrip("/")


# ---------------------------------------------------------------------------
# Container components: placeholders resolved into command and args
# ---------------------------------------------------------------------------

DUMP = 'mkdir -p "$(dirname "$0")"; IFS="|"; printf "%s" "$*" > "$0"; printf "%s\\n" "$*"'


def test_concat_placeholders_format_values_like_the_kfp_launcher() -> None:
    dag = load("placeholders")
    manifest = render(dag, "format-args")
    container = main(manifest)
    assert container["image"] == "python:3.11"
    assert container["command"] == ["sh", "-c", DUMP]
    root = pipeline_root(dag)
    assert container["args"] == [
        f"{root}/placeholders/<run_id>/format-args/0/_kfx/parameters/out",  # OutputPath(str)
        "text=hello",
        "count=3",
        "ratio=3",  # the float 3.0 is printed as 3
        "flag=true",
        "items=[1,2,3]",  # compact JSON
        'config={"a":1,"b":"x"}',
        "half=0.5",
    ]


def test_concat_placeholders_with_given_params() -> None:
    args = main(pod("placeholders", "format-args", {
        "text": "a b", "count": 10, "ratio": 2.5, "flag": False,
        "items": ["x", 1.5, None], "config": {"z": [1, 2], "a": {"n": True}},
    }))["args"]
    assert args[1:] == [
        "text=a b", "count=10", "ratio=2.5", "flag=false",
        'items=["x",1.5,null]', 'config={"a":{"n":true},"z":[1,2]}', "half=0.5",
    ]


def test_if_present_with_inputs_given_and_absent() -> None:
    dag = load("placeholders")
    root = pipeline_root(dag)
    given = main(render(dag, "if-present"))["args"]
    assert given == [f"{root}/placeholders/<run_id>/if-present/0/_kfx/parameters/out", "name=ann", "--greeting", "hi", "suffix=!"]
    absent = main(render(dag, "if-present-2"))["args"]
    assert absent == [f"{root}/placeholders/<run_id>/if-present-2/0/_kfx/parameters/out", "name=bob", "no-suffix"]


def test_artifact_paths_and_uris_under_the_pipeline_root() -> None:
    dag = load("placeholders")
    root = pipeline_root(dag)
    written = main(render(dag, "write-artifact"))["args"]
    data = f"{root}/placeholders/<run_id>/write-artifact/0/data"
    assert written == [data, data, f"{root}/placeholders/<run_id>/write-artifact/0/_kfx/parameters/out"]
    read = main(render(dag, "read-artifact"))["args"]
    # the consumer reads exactly where the (unmapped) producer wrote
    assert read == [data, data, f"{root}/placeholders/<run_id>/read-artifact/0/_kfx/parameters/out"]


def test_pipeline_and_task_placeholders() -> None:
    dag = load("placeholders")
    args = main(render(dag, "runtime-info"))["args"]
    values = dict(a.split("=", 1) for a in args[1:])
    assert values == {
        "job_name": "<run_id>",
        "job_resource_name": "<pipeline_job_resource_name>",
        "job_id": "<pipeline_job_uuid>",
        "task_name": "runtime-info",
        "task_id": "<pipeline_task_uuid>",
        "create_time": "<run create time>",
        "schedule_time": "<run schedule time>",
        "root": pipeline_root(dag),
    }


# ---------------------------------------------------------------------------
# Python components: the executor input
# ---------------------------------------------------------------------------


def test_python_component_command_and_typed_executor_input() -> None:
    dag = load("typed_params")
    root = pipeline_root(dag)
    manifest = render(dag, "next-int", {"name": "world"})
    container = main(manifest)
    assert container["command"][:2] == ["sh", "-c"]
    assert "kfp==2.16.1" in container["command"][2]
    assert "def next_int(n: int) -> int:" in container["command"][-1]
    assert container["args"][0] == "--executor_input"
    assert container["args"][2:] == ["--function_to_execute", "next_int"]
    task_root = f"{root}/typed_params/<run_id>/next-int/0"
    assert executor_input(manifest) == {
        "inputs": {"artifacts": {}, "parameterValues": {"n": 3}},
        "outputs": {
            "artifacts": {},
            "outputFile": f"{task_root}/executor_output.json",
            "parameters": {"Output": {"outputFile": f"{task_root}/_kfx/parameters/Output"}},
        },
    }
    # the integer 3 (stored as 3.0 in the YAML) is an int in the JSON text
    assert '"parameterValues":{"n":3}' in container["args"][1]


@pytest.mark.parametrize("params, expected", [
    ({"name": "w"}, {"next-int": {"n": 3}, "next-float": {"x": 0.25}, "negate": {"b": True},
                     "extend-list": {"items": [1, 2, 3]}, "add-key": {"config": {"k": "v", "n": 1}}}),
    ({"name": "w", "count": 10, "ratio": 1.0, "flag": False, "items": [], "config": {}},
     {"next-int": {"n": 10}, "next-float": {"x": 1.0}, "negate": {"b": False},
      "extend-list": {"items": []}, "add-key": {"config": {}}}),
])
def test_typed_params_reach_the_executor_input(params: dict[str, Any], expected: dict[str, Any]) -> None:
    dag = load("typed_params")
    for task_id, values in expected.items():
        got = executor_input(render(dag, task_id, params))["inputs"]["parameterValues"]
        assert got == values, task_id
        for name, value in values.items():
            if not isinstance(value, float):  # protojson prints an integral double as 1, as KFP does
                assert type(got[name]) is type(value), (task_id, name)


def test_fan_in_task_renders_with_symbolic_upstream_values() -> None:
    values = executor_input(pod("typed_params", "describe", {"name": "world"}))["inputs"]["parameterValues"]
    assert values["name"] == "world"
    assert values["text"] == "hello"
    assert values["count"] == "<output 'Output' of task 'next-int'>"
    assert values["flag"] == "<output 'Output' of task 'negate'>"


def test_optional_pipeline_param_not_given_is_absent() -> None:
    values = executor_input(pod("typed_params", "describe", {"name": "world"}))["inputs"]["parameterValues"]
    assert values.get("maybe") is None


def test_optional_pipeline_param_given() -> None:
    values = executor_input(pod("typed_params", "describe", {"name": "world", "maybe": "yes"}))["inputs"]["parameterValues"]
    assert values["maybe"] == "yes"


def test_artifact_inputs_of_a_python_component() -> None:
    dag = load("artifacts")
    root = pipeline_root(dag)
    produced = executor_input(render(dag, "make-data"))
    assert produced["inputs"]["parameterValues"] == {"rows": 3}
    outputs = produced["outputs"]["artifacts"]
    assert outputs["data"]["artifacts"][0]["type"]["schemaTitle"] == "system.Dataset"
    assert outputs["model"]["artifacts"][0]["type"]["schemaTitle"] == "system.Model"
    assert outputs["data"]["artifacts"][0]["uri"] == f"{root}/artifacts/<run_id>/make-data/0/data"
    consumed = executor_input(render(dag, "inspect-data"))["inputs"]["artifacts"]
    assert consumed["data"]["artifacts"][0]["uri"] == f"{root}/artifacts/<run_id>/make-data/0/data"
    assert consumed["model"]["artifacts"][0]["uri"] == f"{root}/artifacts/<run_id>/make-data/0/model"


def test_rendered_input_artifacts_keep_the_producers_type() -> None:
    consumed = executor_input(pod("artifacts", "inspect-data"))["inputs"]["artifacts"]
    assert consumed["data"]["artifacts"][0]["type"]["schemaTitle"] == "system.Dataset"
    assert consumed["model"]["artifacts"][0]["type"]["schemaTitle"] == "system.Model"


def test_importer_consumers_render() -> None:
    dag = load("importer")
    for task_id in ("describe-dataset", "describe-model"):
        artifacts = executor_input(render(dag, task_id))["inputs"]["artifacts"]
        [(name, listing)] = artifacts.items()
        assert len(listing["artifacts"]) == 1, task_id


def test_importer_consumer_sees_the_imported_uri() -> None:
    dag = load("importer")
    data = executor_input(render(dag, "describe-dataset"))["inputs"]["artifacts"]["data"]["artifacts"][0]
    assert data["uri"] == "gs://bucket/data.csv"
    model = executor_input(render(dag, "describe-model", {"model_uri": "gs://b/m.bin"}))["inputs"]["artifacts"]["model"]["artifacts"][0]
    assert model["uri"] == "gs://b/m.bin"


def test_loop_tasks_render_with_the_item_and_a_mapped_output_folder() -> None:
    dag = load("loops")
    root = pipeline_root(dag)
    manifest = render(dag, "for-loop-5.greet")
    data = executor_input(manifest)
    assert data["inputs"]["parameterValues"] == {"name": "<item of loop 'for-loop-5'>"}
    assert data["outputs"]["outputFile"] == f"{root}/loops/<run_id>/for-loop-5/greet/<map_index>/executor_output.json"
    for task_id in ("for-loop-2.square", "for-loop-4.multiply", "for-loop-6.square-2", "sum-ints", "sum-ints-2"):
        render(dag, task_id)
    collected = executor_input(render(dag, "sum-ints"))["inputs"]["parameterValues"]["values"]
    assert "for-loop-2/square" in str(collected)


def test_oneof_input_is_shown_as_a_choice_not_as_one_branch() -> None:
    data = executor_input(pod("if_else_oneof_artifacts", "count-fields", {"fmt": "tsv"}))["inputs"]["artifacts"]["data"]
    uri = data["artifacts"][0]["uri"]
    # which branch runs is known only at run time: the stand-in names both
    assert uri.startswith("<one of: ") and "/make-csv/" in uri and "/make-tsv/" in uri


def test_exit_task_gets_a_final_status_struct() -> None:
    values = executor_input(pod("exit_handler", "report-status"))["inputs"]["parameterValues"]
    assert values["label"] == "done"
    assert values["status"]["pipelineTaskName"] == "exit-handler-1"
    assert "state" in values["status"]


def test_nested_pipeline_tasks_render() -> None:
    dag = load("nested_pipeline")
    assert executor_input(render(dag, "stats-pipeline.square-pipeline.square", {"x": 5}))["inputs"]["parameterValues"] == {"x": 5}
    root = pipeline_root(dag)
    report = executor_input(render(dag, "check-pipeline.read-report"))["inputs"]["artifacts"]["report"]["artifacts"][0]
    assert report["uri"] == f"{root}/nested_pipeline/<run_id>/stats-pipeline/write-report/0/report"


# ---------------------------------------------------------------------------
# Env vars and resources
# ---------------------------------------------------------------------------


def test_env_variables() -> None:
    manifest = pod("resources_env", "read-env")
    assert main(manifest)["env"] == [{"name": "GREETING", "value": "hello"}, {"name": "TARGET", "value": "kfx"}]


def test_cpu_and_memory_requests_and_limits() -> None:
    resources = main(pod("resources_env", "sized"))["resources"]
    assert resources == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},  # cpu limit: the pipeline param's default
    }


def test_cpu_limit_from_a_pipeline_param_given_with_dash_p() -> None:
    path = FIXTURES / "resources_env.yaml"
    params = cli_params(path, "cpu_limit=2")
    assert params == {"cpu_limit": "2"}
    resources = main(pod(path, "sized", params))["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "256Mi"}
    assert resources["requests"] == {"cpu": "100m", "memory": "64Mi"}


def test_accelerator_becomes_an_extended_resource_limit() -> None:
    resources = main(pod("resources_env", "on-gpu"))["resources"]
    assert resources == {"limits": {"nvidia.com/gpu": "1"}}
    assert main(pod("resources_env", "read-env")).get("resources") in (None, {})


def test_machine_fields_from_pipeline_params() -> None:
    path = VALID / "pipeline_with_string_machine_fields_pipeline_input.yaml"
    defaults = main(pod(path, "sum-numbers"))["resources"]
    assert defaults == {"limits": {"cpu": "4000m", "memory": "15G", "nvidia.com/gpu": "1"}}
    params = cli_params(path, "cpu_limit=1500m", "memory_limit=2Gi", "accelerator_type=TPU_V3", "accelerator_limit=4")
    given = main(pod(path, "sum-numbers", params))["resources"]
    assert given == {"limits": {"cpu": "1500m", "memory": "2Gi", "google.com/tpu": "4"}}


# ---------------------------------------------------------------------------
# kfp-kubernetes settings: tests/fixtures/pipelines/kubernetes_platform.yaml
# ---------------------------------------------------------------------------


def test_platform_write_file() -> None:
    manifest = pod("kubernetes_platform", "write-file")
    spec = main(manifest)
    # use_secret_as_env
    assert env(manifest)["DB_PASSWORD"] == {"secretKeyRef": {"name": "db-credentials", "key": "password", "optional": False}}
    # mount_pvc, the name from createpvc's output (known at run time)
    _, volume = mounted(manifest, "/data")
    assert volume["persistentVolumeClaim"]["claimName"] == "<output 'name' of task 'createpvc'>"
    # use_secret_as_volume, name from the tls_secret pipeline param
    _, secret = mounted(manifest, "/mnt/tls")
    assert secret["secret"] == {"secretName": "tls-certs", "optional": True}
    # add_node_selector
    assert manifest["spec"]["nodeSelector"] == {"disktype": "ssd"}
    # add_toleration + add_toleration_json (pipeline param)
    assert manifest["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "pipelines", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert spec["image"] == "python:3.11"


def test_platform_write_file_with_params() -> None:
    path = FIXTURES / "kubernetes_platform.yaml"
    params = cli_params(path, "tls_secret=other-tls",
                        'tolerations=[{"key": "gpu", "operator": "Exists"}, {"key": "x", "value": "y", "effect": "NoExecute", "tolerationSeconds": 30}]')
    manifest = pod(path, "write-file", params)
    _, secret = mounted(manifest, "/mnt/tls")
    assert secret["secret"]["secretName"] == "other-tls"
    assert manifest["spec"]["tolerations"][1:] == [
        {"key": "gpu", "operator": "Exists"},
        {"key": "x", "value": "y", "effect": "NoExecute", "tolerationSeconds": 30},
    ]


def test_platform_read_file() -> None:
    manifest = pod("kubernetes_platform", "read-file")
    variables = env(manifest)
    assert variables["APP_MODE"] == {"configMapKeyRef": {"name": "app-config", "key": "mode", "optional": False}}
    assert variables["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    _, config_map = mounted(manifest, "/etc/app")
    assert config_map["configMap"] == {"name": "app-files", "optional": True}
    _, pvc = mounted(manifest, "/data")
    assert pvc["persistentVolumeClaim"]["claimName"] == "<output 'name' of task 'createpvc'>"
    assert manifest["spec"]["affinity"]["nodeAffinity"] == {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
        ]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}},
        ],
    }
    assert manifest["spec"]["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert "tolerations" not in manifest["spec"] or not manifest["spec"]["tolerations"]


def test_platform_config_map_volume_from_param() -> None:
    path = FIXTURES / "kubernetes_platform.yaml"
    manifest = pod(path, "read-file", cli_params(path, "config_map=my-files"))
    _, config_map = mounted(manifest, "/etc/app")
    assert config_map["configMap"]["name"] == "my-files"


def test_platform_scratch_inside_a_condition() -> None:
    manifest = pod("kubernetes_platform", "condition-1.scratch")
    spec = manifest["spec"]
    container = main(manifest)
    _, scratch = mounted(manifest, "/scratch")
    assert scratch["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    _, cache = mounted(manifest, "/cache")
    assert cache["ephemeral"]["volumeClaimTemplate"] == {
        "metadata": {"labels": {"owner": "kfx"}, "annotations": {"kfx/purpose": "cache"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "standard"},
    }
    assert manifest["metadata"]["labels"]["team"] == "kfx"
    assert manifest["metadata"]["annotations"]["kfx/fixture"] == "kubernetes-platform"
    assert spec["activeDeadlineSeconds"] == 120
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["runAsGroup"] == 1000
    assert container["securityContext"]["runAsNonRoot"] is True
    # names/JSON from pipeline params, read through the condition's own inputs
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert spec["imagePullSecrets"] == [{"name": "registry-creds-2"}]


def test_platform_scratch_with_params() -> None:
    path = FIXTURES / "kubernetes_platform.yaml"
    params = cli_params(path, 'node_selector={"pool": "fast", "zone": "b"}', "pull_secret=other-creds")
    spec = pod(path, "condition-1.scratch", params)["spec"]
    assert spec["nodeSelector"] == {"pool": "fast", "zone": "b"}
    assert spec["imagePullSecrets"] == [{"name": "other-creds"}]


def test_pod_identity_labels_and_annotations() -> None:
    manifest = pod("kubernetes_platform", "condition-1.scratch")
    meta = manifest["metadata"]
    assert meta["labels"]["kfx/pipeline"] == "kubernetes-platform"
    assert meta["labels"]["kfx/task"] == "scratch"
    assert meta["annotations"]["kfx/pipeline"] == "kubernetes-platform"
    assert meta["annotations"]["kfx/task-path"] == "condition-1/scratch"
    assert meta["name"].startswith("scratch")
    assert manifest["spec"]["restartPolicy"] == "Never"
    assert [c["name"] for c in manifest["spec"]["containers"]] == ["base"]  # no XCom sidecar


def test_optional_kubernetes_inputs_not_given_leave_their_settings_out() -> None:
    manifest = pod(VALID / "critical/missing_kubernetes_optional_inputs.yaml", "log-message")
    spec = manifest["spec"]
    assert not main(manifest).get("env")
    assert not main(manifest).get("volumeMounts") and not spec.get("volumes")
    assert not spec.get("imagePullSecrets") and not spec.get("tolerations") and not spec.get("nodeSelector")
    assert not (spec.get("affinity") or {}).get("nodeAffinity")


OPTIONAL_JSON = {
    "optional_selector": {"pool": "a"},
    "optional_tolerations": [{"key": "k", "operator": "Exists"}],
    "optional_affinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "z", "operator": "In", "values": ["1"]}]}]}},
}


def test_optional_kubernetes_inputs_given() -> None:
    params = {**OPTIONAL_JSON, "optional_secret_name": "s1", "optional_config_map_name": "cm1",
              "optional_image_pull_secret_name": "pull"}
    manifest = pod(VALID / "critical/missing_kubernetes_optional_inputs.yaml", "log-message", params)
    spec = manifest["spec"]
    assert env(manifest) == {
        "PASSWORD": {"secretKeyRef": {"name": "s1", "key": "password", "optional": True}},
        "SETTING": {"configMapKeyRef": {"name": "cm1", "key": "setting", "optional": True}},
    }
    assert mounted(manifest, "/mnt/secret")[1]["secret"] == {"secretName": "s1", "optional": True}
    assert mounted(manifest, "/mnt/config")[1]["configMap"] == {"name": "cm1", "optional": True}
    assert spec["imagePullSecrets"] == [{"name": "pull"}]
    assert spec["nodeSelector"] == {"pool": "a"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert spec["affinity"]["nodeAffinity"] == OPTIONAL_JSON["optional_affinity"]


def test_optional_kubernetes_names_not_given_are_left_out_when_json_settings_are_given() -> None:
    manifest = pod(VALID / "critical/missing_kubernetes_optional_inputs.yaml", "log-message", OPTIONAL_JSON)
    spec = manifest["spec"]
    assert spec["nodeSelector"] == {"pool": "a"}
    assert not main(manifest).get("env"), main(manifest).get("env")
    assert not spec.get("volumes"), spec.get("volumes")
    assert not spec.get("imagePullSecrets"), spec.get("imagePullSecrets")


def test_settings_namespace_account_pull_policy_and_artifact_volume() -> None:
    settings = {"pipeline_root": "s3://bucket/root", "artifact_volume": "kfx-artifacts", "namespace": "ml",
                "service_account": "runner", "image_pull_policy": "Always"}
    dag = load_pipeline(FIXTURES / "placeholders.yaml", settings=settings)
    manifest = render(dag, "write-artifact")
    container = main(manifest)
    run = "/s3/bucket/root/placeholders/<run_id>"
    assert container["args"] == [f"{run}/write-artifact/0/data", "s3://bucket/root/placeholders/<run_id>/write-artifact/0/data",
                                 f"{run}/write-artifact/0/_kfx/parameters/out"]
    mount, volume = mounted(manifest, "/s3/bucket")
    assert volume["persistentVolumeClaim"] == {"claimName": "kfx-artifacts"}
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["spec"]["serviceAccountName"] == "runner"
    assert container["imagePullPolicy"] == "Always"
    # a task's own kfp-kubernetes pull policy wins over the setting
    platform = load_pipeline(FIXTURES / "kubernetes_platform.yaml", settings=settings)
    assert main(render(platform, "condition-1.scratch"))["imagePullPolicy"] == "IfNotPresent"


def test_create_pvc_claim_and_delete_pvc_inputs() -> None:
    """CreatePVC runs no pod: the claim it would create, from the task's inputs."""
    from airflow_kfx.plan import Literal, Output
    from airflow_kfx.pod.platform import create_pvc_manifest
    from airflow_kfx.runtime.invocation import RunIdentity
    from airflow_kfx.runtime.pvc import claim_prefix

    dag = load("kubernetes_platform")
    create = dag.get_task("createpvc").kfx_task
    arguments = {k: b.value for k, b in create.inputs.items() if isinstance(b, Literal) and b.value is not None}
    assert arguments == {"access_modes": ["ReadWriteOnce"], "pvc_name_suffix": "-kfx-fixture", "size": "1Gi",
                         "storage_class_name": "standard"}
    identity = RunIdentity(dag_id=dag.dag_id, run_id="manual__2024-01-01", task_id="createpvc",
                           kfp_task_name="createpvc", kfp_path="createpvc")
    claim = ApiClient().sanitize_for_serialization(create_pvc_manifest(name_prefix=claim_prefix(identity), **arguments))
    kubernetes_validate.validate(claim, K8S_VERSION, strict=True)
    assert claim["metadata"]["name"].endswith("-kfx-fixture")
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                             "storageClassName": "standard"}
    # stable across retries (same run and task), distinct across runs
    again = create_pvc_manifest(name_prefix=claim_prefix(identity), **arguments).metadata.name
    other = create_pvc_manifest(name_prefix=claim_prefix(RunIdentity(
        dag_id=dag.dag_id, run_id="manual__2024-01-02", task_id="createpvc", kfp_task_name="createpvc",
        kfp_path="createpvc")), **arguments).metadata.name
    assert again == claim["metadata"]["name"] != other
    assert dag.get_task("deletepvc").kfx_task.inputs["pvc_name"] == Output("createpvc", "name", False, ())


# ---------------------------------------------------------------------------
# kfp-kubernetes settings: the KFP corpus snapshot files
# ---------------------------------------------------------------------------


def _check_config_map_as_env(pods: dict[str, Any]) -> None:
    assert env(pods["comp"])["CONFIG_MAP_VAR"] == {"configMapKeyRef": {"name": "my-cm", "key": "foo", "optional": False}}


def _check_config_map_as_vol(pods: dict[str, Any]) -> None:
    mount, volume = mounted(pods["comp"], "/mnt/my_vol")
    assert volume["configMap"] == {"name": "my-cm", "optional": False}


def _check_pvc_from_createpvc(*task_ids: str) -> Any:
    def check(pods: dict[str, Any]) -> None:
        assert set(task_ids) <= set(pods)
        for task_id in task_ids:
            _, volume = mounted(pods[task_id], "/data")
            assert volume["persistentVolumeClaim"]["claimName"] == "<output 'name' of task 'createpvc'>"
    return check


def _check_empty_dir(pods: dict[str, Any]) -> None:
    _, volume = mounted(pods["comp"], "/mnt/my_vol_1")
    assert volume == {"name": "emptydir-vol-1", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}


def _check_field_path(pods: dict[str, Any]) -> None:
    assert env(pods["comp"])["KFP_RUN_NAME"] == {"fieldRef": {"fieldPath": "metadata.annotations['pipelines.kubeflow.org/run_name']"}}


def _check_ephemeral(pods: dict[str, Any]) -> None:
    _, volume = mounted(pods["comp"], "path")
    template = volume["ephemeral"]["volumeClaimTemplate"]
    assert template["metadata"] == {"annotations": {"annotation1": "a1"}}
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert template["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    assert "storageClassName" not in template["spec"]  # defaultStorageClass: true


def _check_image_pull_secrets(pods: dict[str, Any]) -> None:
    assert pods["comp"]["spec"]["imagePullSecrets"] == [{"name": "my-secret"}]


def _check_init_container(pods: dict[str, Any]) -> None:
    manifest = pods["print-greeting"]
    [init] = manifest["spec"]["initContainers"]
    assert init["name"] == "prepare-data" and init["image"] == "busybox:1.36"
    assert init["command"] == ["sh", "-c"] and init["args"] == ["echo ready > /data/marker"]
    assert init["env"] == [{"name": "MARKER_TEXT", "value": "ready"}]
    _, volume = mounted(manifest, "/data")
    assert init["volumeMounts"] == [{"name": volume["name"], "mountPath": "/data"}]
    assert volume["emptyDir"] == {}


def _check_node_selector(pods: dict[str, Any]) -> None:
    assert pods["comp"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-p4"}


def _check_node_affinity(pods: dict[str, Any]) -> None:
    def affinity(task_id: str) -> Any:
        return (pods[task_id]["spec"].get("affinity") or {}).get("nodeAffinity")

    assert affinity("print-hello-with-empty-json") is None  # an empty JSON is skipped
    assert affinity("print-hello-with-json-affinity") == {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "disktype", "operator": "In", "values": ["ssd"]}]}},
    ]}
    assert [t["weight"] for t in affinity("print-hello-with-json-affinity-2")["preferredDuringSchedulingIgnoredDuringExecution"]] == [100, 50]
    assert affinity("print-hello-with-preferred-affinity") == {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["us-west-1"]}]}},
    ]}


def _check_secret_as_env(pods: dict[str, Any]) -> None:
    assert env(pods["comp"])["SECRET_VAR"] == {"secretKeyRef": {"name": "my-secret", "key": "password", "optional": False}}


def _check_secret_as_vol(pods: dict[str, Any]) -> None:
    _, volume = mounted(pods["comp"], "/mnt/my_vol")
    assert volume["secret"] == {"secretName": "my-secret", "optional": False}


def _check_security_context(pods: dict[str, Any]) -> None:
    context = main(pods["print-greeting"])["securityContext"]
    assert context["runAsUser"] == 65534 and context["runAsGroup"] == 0
    assert context["capabilities"] == {"drop": ["ALL"]}


def _check_timeout(pods: dict[str, Any]) -> None:
    assert pods["comp"]["spec"]["activeDeadlineSeconds"] == 20


def _check_toleration(pods: dict[str, Any]) -> None:
    assert pods["comp"]["spec"]["tolerations"] == [
        {"key": "key1", "operator": "Equal", "value": "value1", "effect": "NoExecute", "tolerationSeconds": 10},
    ]


SNAPSHOT_CHECKS = {
    "config_map_as_env": _check_config_map_as_env,
    "config_map_as_vol": _check_config_map_as_vol,
    "create_mount_delete_dynamic_pvc": _check_pvc_from_createpvc("producer", "consumer"),
    "create_mount_delete_existing_pvc": _check_pvc_from_createpvc("comp"),
    "create_mount_delete_existing_pvc_from_task_output": _check_pvc_from_createpvc("comp"),
    "empty_dir_mounts": _check_empty_dir,
    "field_path_as_env": _check_field_path,
    "general_ephemeral_volume": _check_ephemeral,
    "image_pull_secrets": _check_image_pull_secrets,
    "init_container": _check_init_container,
    "node_selector": _check_node_selector,
    "nodeaffinity": _check_node_affinity,
    "secret_as_env": _check_secret_as_env,
    "secret_as_vol": _check_secret_as_vol,
    "security_context": _check_security_context,
    "timeout": _check_timeout,
    "toleration": _check_toleration,
}


def test_every_snapshot_file_has_a_check() -> None:
    if not SNAPSHOTS.is_dir():  # pragma: no cover
        pytest.skip(f"KFP corpus not found at {CORPUS}")
    assert {p.stem for p in SNAPSHOTS.glob("*.yaml")} == set(SNAPSHOT_CHECKS)


@pytest.mark.parametrize("name", sorted(SNAPSHOT_CHECKS))
def test_snapshot_settings_land_in_the_pod(name: str) -> None:
    from airflow_kfx.operators.container import KfxContainerOperator

    dag = load(SNAPSHOTS / f"{name}.yaml")
    pods = {t.task_id: render(dag, t.task_id) for t in dag.tasks if isinstance(t, KfxContainerOperator)}
    assert pods
    SNAPSHOT_CHECKS[name](pods)
    # a task mounting createpvc's claim runs after createpvc
    if "createpvc" in dag.task_dict:
        assert type(dag.get_task("createpvc")).__name__ == "KfxPvcOperator"
        for task_id, manifest in pods.items():
            if any("persistentVolumeClaim" in v for v in manifest["spec"].get("volumes") or []):
                assert "createpvc" in dag.get_task(task_id).upstream_task_ids


# ---------------------------------------------------------------------------
# Every fixture's every pod validates
# ---------------------------------------------------------------------------

REQUIRED = {"typed_params": {"name": "world"}}


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.yaml")))
def test_every_fixture_pod_validates(name: str) -> None:
    from airflow_kfx.operators.container import KfxContainerOperator

    dag = load(name)
    tasks = [t for t in dag.tasks if isinstance(t, KfxContainerOperator)]
    assert tasks
    for task in tasks:
        manifest = render(dag, task.task_id, REQUIRED.get(name))
        assert main(manifest)["image"]
        annotations = manifest["metadata"]["annotations"]
        assert annotations["kfx/task-path"] == task.kfx_task.kfp_path


# ---------------------------------------------------------------------------
# User values are data, never Jinja
# ---------------------------------------------------------------------------

JINJA = "{{ ds }} {{ params.x }} {% raw %}r{% endraw %} {{ dag_run.conf }}"


def test_jinja_in_a_param_stays_literal_in_container_args() -> None:
    args = main(pod("placeholders", "format-args", {"text": JINJA}))["args"]
    assert args[1] == f"text={JINJA}"


def test_jinja_in_a_param_stays_literal_in_the_executor_input() -> None:
    dag = load("special_strings")
    default = dag.params.get_param("text").value
    assert "{{ ds }}" in default and "{% raw %}" in default
    assert executor_input(render(dag, "echo-py"))["inputs"]["parameterValues"] == {"text": default}
    assert executor_input(render(dag, "echo-py", {"text": JINJA}))["inputs"]["parameterValues"] == {"text": JINJA}
    same = executor_input(render(dag, "same", {"text": JINJA}))["inputs"]["parameterValues"]
    assert same["text"] == JINJA
    assert same["multiline"] == "line 1 {{ ds }}\n  line 2 $(whoami)\n\nline 4 'q' \"qq\"\n"


def test_template_fields_keep_kfp_placeholders_as_compiled() -> None:
    dag = load("special_strings")
    op = dag.get_task("echo-sh")
    assert op.template_fields == ("image", "cmds", "arguments")
    compiled = ["{{$.inputs.parameters['text']}}", "{{$.outputs.parameters['out'].output_file}}"]
    assert op.arguments == compiled
    assert op.cmds == ["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"']
    # Airflow's rendering step (the "Rendered Template" tab, and before execute) is a no-op
    context = {"ds": "2024-01-01", "params": {"x": "X"}, "dag_run": None}
    op.render_template_fields(context)
    assert op.arguments == compiled
    py = dag.get_task("echo-py")
    before = list(py.arguments)
    assert "{{$}}" in before
    py.render_template_fields(context)
    assert py.arguments == before
    for task in dag.tasks:
        if task is not op and task is not py and hasattr(task, "arguments"):
            task.render_template_fields(context)
            assert "{{$" in json.dumps(task.arguments)


def test_control_operators_have_no_template_fields() -> None:
    dag = load("conditions")
    for task_id in ("condition-1.kfx-condition", "condition-5.kfx-condition"):
        assert dag.get_task(task_id).template_fields == ()
    loops = load("loops")
    assert loops.get_task("for-loop-2-iterations").template_fields == ()
    importer = load("importer")
    assert importer.get_task("importer").template_fields == ()
