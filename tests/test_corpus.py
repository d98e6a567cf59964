"""The KFP conformance corpus: every v2 pipeline and component loads (or is
refused with UnsupportedFeatureError naming the feature), and every loadable one
renders to Pods that validate against the Kubernetes schema."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from airflow_kfx.loading import load_pipeline
from tests.support import CORPUS, VALID, corpus_files

# Files the corpus labels "v2 pipeline IR" that are not runnable pipelines:
# a protobuf-serialisation test whose root is an executor with no executors.
INVALID_IR = {"backend/test/proto_tests/testdata/generated-1791485/pipeline_spec.json"}
MUST_LOAD = ["critical", "essential", "failing", "parallel_and_nested", "local_execution"]


def _outcome(path: Path) -> str:
    try:
        load_pipeline(path)
    except UnsupportedFeatureError as err:
        return f"unsupported: {err.feature}"
    except SpecError:
        return "invalid"
    return "loaded"


def test_every_v2_file_loads_or_is_refused_by_name() -> None:
    files = corpus_files("v2 pipeline IR", "v2 component")
    assert len(files) == 211
    tally: Counter[str] = Counter()
    invalid = set()
    for path in files:  # any other exception fails the test with its traceback
        outcome = _outcome(path)
        tally[outcome] += 1
        if outcome == "invalid":
            invalid.add(str(path.relative_to(CORPUS)))
    print("\nKFP v2 corpus:", dict(sorted(tally.items())))
    assert invalid == INVALID_IR
    assert tally["loaded"] >= 205


@pytest.mark.parametrize("folder", MUST_LOAD)
def test_kfp_backend_test_pipelines_all_load(folder: str) -> None:
    paths = sorted((VALID / folder).rglob("*.yaml"))
    assert paths, f"no files in {folder}"
    for path in paths:
        dag = load_pipeline(path)
        assert dag.tasks, path


def test_invalid_files_are_rejected_with_a_location() -> None:
    invalid = corpus_files("invalid (negative test)")
    assert len(invalid) == 4
    for path in invalid:
        with pytest.raises(SpecError) as caught:
            load_pipeline(path)
        assert str(path) in str(caught.value)
        # invalid-workflow.yaml (an Argo manifest without kind or spec) is invalid, not an
        # unsupported workflow: v2 backend-compiled workflows load (tests/test_argo_v2.py).
        assert not isinstance(caught.value, UnsupportedFeatureError), caught.value


def test_every_loadable_corpus_pipeline_renders_schema_valid_pods(tmp_path: Path) -> None:
    from airflow_kfx.render import render_pipeline
    from airflow_kfx.spec.loader import load_pipeline_file

    pods = 0
    for path in corpus_files("v2 pipeline IR", "v2 component"):
        if str(path.relative_to(CORPUS)) in INVALID_IR:
            continue
        try:
            pipeline = load_pipeline_file(path)
        except UnsupportedFeatureError:
            continue
        for manifest_path in render_pipeline(pipeline, {}, tmp_path / path.stem):
            manifest = yaml.safe_load(manifest_path.read_text())
            kubernetes_validate.validate(manifest, "1.33", strict=True)
            assert manifest["spec"]["containers"][0]["name"] == "base"
            pods += 1
    print(f"\nrendered and validated {pods} pods")
    assert pods > 400
