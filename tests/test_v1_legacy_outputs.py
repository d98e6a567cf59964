"""KFP v1 legacy ``fileOutputs``: outputs the command writes at fixed paths.

KFP v1 (sdk 1.8, ``_components._resolve_command_line_and_paths`` and
``dsl/_component_bridge.py``) merges ``fileOutputs`` into ``ContainerOp.file_outputs``
exactly like ``{outputPath: x}`` outputs, only at the author's fixed path, and Argo reads
them from there after the container ends. Here the output keeps the type-based
parameter/artifact choice of an ``outputPath`` output, the model's ``Container`` records
the fixed path, and the local runtime copies the file into the output's place.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airflow_kfx import load_component_from_file, load_component_from_text
from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from tests.support import CORPUS

ATHENA = CORPUS / "components/aws/athena/query/component.yaml"
INVOKER = CORPUS / "components/contrib/nuclio/invoker/component.yaml"


def test_corpus_file_outputs_translate_like_output_paths() -> None:
    athena = load_component_from_file(ATHENA)
    # untyped output: an artifact, as an untyped {outputPath: x} is
    assert set(athena.component.outputs.artifacts) == {"output_path"}
    assert athena.executor.container.file_outputs == {"output_path": "/output.txt"}
    assert athena.executor.container.command == ("python", "query.py")  # no wrapper
    invoker = load_component_from_file(INVOKER)
    assert set(invoker.component.outputs.parameters) == {"output"}  # type String: a parameter
    assert invoker.executor.container.file_outputs == {"output": "/tmp/output"}


@pytest.mark.parametrize(
    ("file_outputs", "message"),
    [
        ("{result: out.txt}", "must be an absolute path, not 'out.txt'"),
        ("{reslt: /tmp/out.txt}", "names output 'reslt', which the component does not declare"),
        ("[/tmp/out.txt]", "expected a mapping of output names"),
    ],
)
def test_bad_file_outputs_name_file_and_yaml_path(file_outputs: str, message: str) -> None:
    text = textwrap.dedent(f"""\
        name: Bad
        outputs: [{{name: result, type: String}}]
        implementation:
          container:
            image: alpine
            command: [echo]
            fileOutputs: {file_outputs}
        """)
    with pytest.raises(SpecError) as caught:
        load_component_from_text(text, source="bad/component.yaml")
    err = str(caught.value)
    assert not isinstance(caught.value, UnsupportedFeatureError)
    assert "bad/component.yaml" in err and "implementation.container.fileOutputs" in err, err
    assert message in err, err


def test_file_output_with_an_output_placeholder_too_is_a_conflict() -> None:
    text = """
name: Both
outputs: [{name: result, type: String}]
implementation:
  container:
    image: alpine
    command: [echo, {outputPath: result}]
    fileOutputs: {result: /tmp/out.txt}
"""
    with pytest.raises(SpecError, match="conflicting output files"):
        load_component_from_text(text, source="both.yaml")


COMPONENT = """\
name: Legacy writer
inputs: [{{name: text, type: String}}]
outputs: [{{name: greeting, type: String}}, {{name: report}}]
implementation:
  container:
    image: python:3.11-slim
    command:
    - python3
    - -c
    - |
      import sys
      open(sys.argv[2], "w").write("hello " + sys.argv[1])
      open(sys.argv[3], "w").write("report of " + sys.argv[1])
    - {{inputValue: text}}
    - {fixed}/greeting.txt
    - {fixed}/report.md
    fileOutputs:
      greeting: {fixed}/greeting.txt
      report: {fixed}/report.md
"""

DAG_FILE = """\
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_kfx import load_component_from_file

writer_op = load_component_from_file(Path(__file__).parent / "legacy_writer.yaml")


@task
def shout(greeting: str) -> str:
    return greeting.upper()


with DAG("kfx_v1_file_outputs", schedule=None) as dag:
    written = writer_op(task_id="writer", text="world")
    shout.override(task_id="shout")(written.outputs["greeting"])
"""


def test_file_outputs_reach_a_downstream_task(dags_folder: Path, tmp_path: Path) -> None:
    import importlib.util

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (dags_folder / "legacy_writer.yaml").write_text(COMPONENT.format(fixed=fixed))
    dag_file = dags_folder / "kfx_v1_file_outputs.py"
    dag_file.write_text(DAG_FILE)
    spec = importlib.util.spec_from_file_location("kfx_v1_file_outputs", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_run = module.dag.test()
    assert str(dag_run.state) == "success"
    with create_session() as session:
        xcoms = {
            (x.task_id, x.key): XComModel.deserialize_value(x)
            for x in session.query(XComModel).filter(
                XComModel.dag_id == "kfx_v1_file_outputs", XComModel.run_id == dag_run.run_id)
        }
    outputs = xcoms[("writer", "return_value")]
    assert outputs["parameters"]["greeting"] == "hello world"
    assert xcoms[("shout", "return_value")] == "HELLO WORLD"
    report_uri = outputs["artifacts"]["report"][0]["uri"]
    assert Path(report_uri.removeprefix("file://")).read_text() == "report of world"


def test_a_fixed_path_left_from_before_is_not_this_runs_output(tmp_path: Path) -> None:
    import os
    import time
    from types import SimpleNamespace

    from airflow_kfx.exceptions import TaskRuntimeError
    from airflow_kfx.runtime.local import collect_file_outputs

    stale = tmp_path / "out.txt"
    stale.write_text("old")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    invocation = SimpleNamespace(task_root=str(tmp_path / "task"),
                                 output_parameter_files={"out": str(tmp_path / "task/_kfx/parameters/out")})
    pod = {"spec": {"containers": [{"name": "base"}]}}
    with pytest.raises(TaskRuntimeError, match="not written by this run"):
        collect_file_outputs({"out": str(stale)}, invocation, pod, "base", time.time())
    with pytest.raises(TaskRuntimeError, match="does not exist"):
        collect_file_outputs({"out": str(tmp_path / "missing")}, invocation, pod, "base", time.time())


def test_graph_components_are_refused_naming_their_component_refs() -> None:
    path = CORPUS / "components/contrib/XGBoost/Train_regression_and_calculate_metrics/from_CSV/component.yaml"
    with pytest.raises(UnsupportedFeatureError) as caught:
        load_component_from_file(path)
    assert caught.value.feature == "v1 graph component"
    assert "components/tables/Remove_header/component.yaml and 4 more" in str(caught.value)


def test_the_kubernetes_runtime_refuses_file_outputs_before_any_pod(tmp_path: Path) -> None:
    """In a pod the fixed path is in the container's own filesystem: refused by name, no pod created."""
    from airflow.sdk import DAG

    from airflow_kfx.exceptions import TaskRuntimeError
    from airflow_kfx.runtime.kubernetes import KubernetesRuntime

    writer_op = load_component_from_text(COMPONENT.format(fixed=tmp_path))
    with DAG("kfx_v1_file_outputs_on_kubernetes", schedule=None):
        writer = writer_op(task_id="writer", text="world")
    with pytest.raises(TaskRuntimeError, match=r"fileOutputs \(greeting, report\) are not supported on the kubernetes"):
        KubernetesRuntime().run(writer, {})
