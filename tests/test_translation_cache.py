"""The translation cache: data, never code, and never stale.

DAG processors re-parse pipeline files every 30 s, so parsed pipelines are cached on
disk by content hash. The cache folder may be shared, so an entry must never be able
to run code in a DAG processor (entries are JSON of the model, not pickles), a
tampered or foreign entry is ignored (the file is parsed again), and an entry written
by other airflow-kfx code is never used (the key includes a digest of the spec layer's
own source, so no hand-bumped version can be forgotten).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from airflow_kfx.exceptions import KfxError
from airflow_kfx.spec import codec, loader
from airflow_kfx.spec.loader import load_pipeline_file
from tests.support import FIXTURES, corpus_files


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KFX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "specs"


def test_every_loadable_corpus_pipeline_round_trips_through_json() -> None:
    files = corpus_files("v2 pipeline IR", "v2 component") + sorted(FIXTURES.glob("*.yaml"))
    checked = 0
    for path in files:
        try:
            pipeline = load_pipeline_file(path, use_cache=False)
        except KfxError:
            continue
        assert codec.loads(codec.dumps(pipeline)) == pipeline, path
        checked += 1
    assert checked > 200


def test_a_second_load_comes_from_the_cache_as_json(cache_dir: Path) -> None:
    path = FIXTURES / "loops.yaml"
    first = load_pipeline_file(path)
    entries = list(cache_dir.iterdir())
    assert [e.suffix for e in entries] == [".json"]
    json.loads(entries[0].read_text())  # data, readable by anyone's JSON parser
    assert load_pipeline_file(path) == first


def test_a_pickle_planted_in_the_cache_never_runs(cache_dir: Path, tmp_path: Path) -> None:
    """Whoever can write the cache folder writes a pickle that would create a file when
    unpickled: loading the pipeline ignores it, parses the file and runs nothing."""
    path = FIXTURES / "loops.yaml"
    load_pipeline_file(path)
    (entry,) = list(cache_dir.iterdir())
    proof = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # noqa: ANN204 - the classic pickle payload
            return (os.system, (f"touch {proof}",))

    entry.write_bytes(pickle.dumps(Exploit()))
    pipeline = load_pipeline_file(path)
    assert not proof.exists()
    assert pipeline == load_pipeline_file(path, use_cache=False)


@pytest.mark.parametrize("forged", [
    {"d": "Popen", "f": {"args": ["touch", "/tmp/x"]}},  # not a model class
    {"e": "ParameterType", "v": "NO_SUCH_TYPE"},
    {"d": "Location", "f": {"file": "x", "yaml_path": "", "line": None, "evil": 1}},
    {"x": 1},
    [1, {"t": "not a list"}],
])
def test_forged_entries_are_refused_by_the_codec(forged: object) -> None:
    with pytest.raises(codec.CodecError):
        codec.loads(json.dumps(forged))


def test_a_tampered_entry_is_ignored_and_replaced(cache_dir: Path) -> None:
    path = FIXTURES / "loops.yaml"
    good = load_pipeline_file(path)
    (entry,) = list(cache_dir.iterdir())
    entry.write_text('{"d": "Location", "f": {"file": "evil", "yaml_path": ""}}')  # valid JSON, wrong object
    assert load_pipeline_file(path) == good
    assert codec.loads(entry.read_text()) == good  # rewritten with the real translation


def test_the_key_changes_with_the_spec_layer_source(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new release (or a local edit) of the parser never reads entries of the old one."""
    path = FIXTURES / "loops.yaml"
    load_pipeline_file(path)
    monkeypatch.setattr(loader, "code_digest", lambda: "another version of the spec layer")
    load_pipeline_file(path)
    assert len(list(cache_dir.iterdir())) == 2


def test_a_cache_folder_others_can_write_is_not_used(cache_dir: Path) -> None:
    """Entries decide what a DAG's pods run: only a folder no one else can write is
    trusted (like ssh with its keys). A shared, group- or world-writable folder means no
    caching, never someone else's translation."""
    path = FIXTURES / "loops.yaml"
    cache_dir.mkdir(parents=True)
    cache_dir.chmod(0o777)
    load_pipeline_file(path)
    assert list(cache_dir.iterdir()) == []
    cache_dir.chmod(0o700)
    load_pipeline_file(path)
    assert len(list(cache_dir.iterdir())) == 1
