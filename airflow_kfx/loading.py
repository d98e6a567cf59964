"""``load_pipeline`` and the DAG-folder drop-in ``load_pipelines``."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_kfx.config import KfxSettings
from airflow_kfx.exceptions import KfxError, SpecError
from airflow_kfx.folder_index import lookup as indexed_file
from airflow_kfx.folder_index import record as record_index
from airflow_kfx.spec.loader import ARCHIVE_SUFFIXES, PIPELINE_SUFFIXES, load_pipeline_file
from airflow_kfx.spec.source import Node, decode_text, load_documents, root_node

log = logging.getLogger("airflow_kfx")

SETTINGS_FILE = "kfx.yaml"
ERROR_DAG_PREFIX = "kfx_error__"


def load_pipeline(
    path: str | os.PathLike[str],
    dag_id: str | None = None,
    schedule: Any = None,
    *,
    settings: KfxSettings | Mapping[str, Any] | None = None,
    **dag_kwargs: Any,
) -> Any:
    """A compiled KFP pipeline file → an Airflow DAG (raises SpecError/UnsupportedFeatureError)."""
    from airflow_kfx.dag_builder import build_dag

    if isinstance(settings, Mapping):
        settings = KfxSettings.from_mapping(settings, where=str(path))
    started = time.perf_counter()
    with gc_paused():
        pipeline = load_pipeline_file(path)
        dag = build_dag(pipeline, dag_id=dag_id, schedule=schedule, settings=settings, **dag_kwargs)
    log.debug("loaded %s as DAG %s in %.3fs", path, dag.dag_id, time.perf_counter() - started)
    return dag


@dataclass
class LoadReport:
    """What ``load_pipelines`` found: DAGs by id, and errors by file."""

    dags: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, KfxError] = field(default_factory=dict)
    # Files whose pipeline name another file already had: path → the DAG id it got instead.
    renamed: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # DAG id → its pipeline file


def pipeline_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Pipeline files under ``folder`` (recursively), sorted, settings files excluded."""
    root = Path(folder)
    if root.is_file():
        return [root]
    found = []
    for path in sorted(root.rglob("*")):
        name = path.name
        if not path.is_file() or name == SETTINGS_FILE or name.startswith("."):
            continue
        if name.endswith(PIPELINE_SUFFIXES) or name.endswith(ARCHIVE_SUFFIXES):
            found.append(path)
    return found


def load_pipelines(
    folder: str | os.PathLike[str],
    namespace: MutableMapping[str, Any] | None = None,
    *,
    settings: KfxSettings | Mapping[str, Any] | None = None,
    **dag_kwargs: Any,
) -> LoadReport:
    """Load every pipeline file under ``folder`` into ``namespace`` (pass ``globals()``).

    A broken file never hides the good ones: it is logged, and a small DAG named
    ``kfx_error__<file>`` appears in Airflow with the error as its description,
    so the problem shows in the UI where the pipeline was expected.
    """
    if isinstance(settings, Mapping):
        settings = KfxSettings.from_mapping(settings)
    base = settings or KfxSettings()
    folder_settings = _folder_settings(Path(folder))

    def load_one(report: LoadReport, path: Path, renamed: bool) -> None:
        key = str(path.relative_to(folder)) if Path(folder).is_dir() else path.name
        try:
            file_settings = base.merged(folder_settings.get(key, KfxSettings()))
            dag = load_pipeline(path, dag_id=file_dag_id(key) if renamed else None,
                                settings=file_settings, **dag_kwargs)
            if dag.dag_id in report.dags:  # two files compiled from one pipeline name
                taken = dag.dag_id
                dag = load_pipeline(path, dag_id=file_dag_id(key), settings=file_settings, **dag_kwargs)
                report.renamed[str(path)] = dag.dag_id
                log.warning("airflow-kfx: %s: DAG id '%s' is taken by another file of this folder; this "
                            "pipeline is DAG '%s' (set dag_id in kfx.yaml to choose)", path, taken, dag.dag_id)
        except KfxError as err:
            log.error("airflow-kfx: %s", err)
            report.errors[str(path)] = err
            dag = _error_dag(path, err)
        except Exception as err:  # noqa: BLE001 - e.g. Airflow refusing the DAG: never hide the others
            log.exception("airflow-kfx: cannot load %s", path)
            wrapped = KfxError(f"{path}: {type(err).__name__}: {err}")
            report.errors[str(path)] = wrapped
            dag = _error_dag(path, wrapped)
        report.dags[dag.dag_id] = dag
        report.files[dag.dag_id] = path

    with gc_paused():
        report = _load_all(folder, load_one)
    if namespace is not None:
        namespace.update(report.dags)
    return report


def _load_all(folder: str | os.PathLike[str], load_one: Any) -> LoadReport:
    report = LoadReport()
    wanted = _dag_being_run()
    entry = indexed_file(folder, wanted) if wanted else None
    if entry is not None:  # a task's process: parse only the pipeline of its DAG
        load_one(report, entry.path, entry.renamed)
        if set(report.dags) != {wanted}:  # the index was stale: parse everything
            report = LoadReport()
            entry = None
    if entry is None:
        for path in pipeline_files(folder):
            load_one(report, path, renamed=False)
        if wanted is None:
            renamed = set(report.renamed.values())
            record_index(folder, {
                dag_id: (path, dag_id in renamed) for dag_id, path in report.files.items()
                if not dag_id.startswith(ERROR_DAG_PREFIX)
            })
    return report


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while DAGs are built. Building them allocates
    many objects that all stay alive (operators, their params, the decoded pipeline), so
    each collection walks a growing heap and finds little: 35 % of a warm parse of 100
    pipelines (bench/RESULTS.md). Collection resumes as it was afterwards; nested calls
    (load_pipelines → load_pipeline) leave it to the outermost."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _dag_being_run() -> str | None:
    """The DAG whose task this process runs (Airflow's parsing context), else None (the
    DAG processor parsing the whole file)."""
    from airflow.sdk import get_parsing_context

    return get_parsing_context().dag_id


def file_dag_id(relative_path: str) -> str:
    """The DAG id a pipeline gets from its file name when its own name is taken."""
    stem = re.sub(r"\.(ya?ml|json|zip|tar\.gz|tgz)$", "", relative_path)
    return re.sub(r"[^A-Za-z0-9_.]", "_", stem)


def _folder_settings(folder: Path) -> dict[str, KfxSettings]:
    """``kfx.yaml``: ``defaults:`` for every file, ``pipelines: {file: {...}}`` per file."""
    settings_path = folder / SETTINGS_FILE if folder.is_dir() else folder.parent / SETTINGS_FILE
    if not settings_path.exists():
        return {}
    document = _settings_document(settings_path)
    defaults = _settings(document.child("defaults"))
    result: dict[str, KfxSettings] = {}
    for path in pipeline_files(folder) if folder.is_dir() else [folder]:
        key = str(path.relative_to(folder)) if folder.is_dir() else path.name
        result[key] = defaults
    for name, values in document.child("pipelines").items():
        result[name] = defaults.merged(_settings(values))
    return result


def _settings_document(path: Path) -> Node:
    """The checked top of ``kfx.yaml``, read like a pipeline file (so with the same
    protections and a line in every error)."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read the settings: {err.strerror}", file=file) from None
    documents = load_documents(decode_text(data, file), file)
    if len(documents) > 1:
        root_node(documents[1], file).fail("a second YAML document; kfx.yaml holds one mapping")
    node = root_node(documents[0] if documents else {}, file)
    node.expect(Mapping, "a mapping with 'defaults' and/or 'pipelines'")
    for key, child in node.items():
        if key not in ("defaults", "pipelines"):
            child.fail(f"unknown key '{key}'; expected 'defaults' and 'pipelines'")
    return node


def _settings(node: Node) -> KfxSettings:
    """One mapping of settings, each value of its setting's type."""
    if node.value is None:
        return KfxSettings()
    node.expect(Mapping, "a mapping of settings")
    known = {f.name for f in dataclasses.fields(KfxSettings)}
    values: dict[str, Any] = {}
    for key, child in node.items():
        if key not in known:
            child.fail(f"unknown setting '{key}'; known: {', '.join(sorted(known))}")
        if child.value is None:
            continue
        if key == "tags":
            values[key] = tuple(tag.expect(str, "a tag (a string)") for tag in child.elements())
        else:
            values[key] = child.expect(bool if key == "deferrable" else str)
    return KfxSettings(**values)


def _error_dag(path: Path, error: KfxError) -> Any:
    from airflow.sdk import DAG

    from airflow_kfx.operators.control import KfxBrokenPipelineOperator

    dag_id = ERROR_DAG_PREFIX + re.sub(r"[^A-Za-z0-9_.]", "_", path.name)
    dag = DAG(
        dag_id=dag_id,
        schedule=None,
        tags=["kfp", "kfx-error"],
        description=f"cannot load: {error}"[:1000],
        doc_md=f"# This pipeline file could not be loaded\n\n```\n{error}\n```\n\nRun `kfx validate {path}` for details.",
        is_paused_upon_creation=True,
    )
    KfxBrokenPipelineOperator(task_id="load-error", message=str(error), dag=dag)
    return dag
