"""Logging one finished task's KFP outputs into its MLflow run.

What each output becomes (``<name>`` is the output's name; ``kfp/<name>/`` gains an
``<i>/`` level when an output holds several artifacts):

- output parameter: param ``output.<name>`` (non-strings JSON-encoded, long values truncated).
- every output artifact: tag ``kfx.artifact.<name>`` = its URI (a JSON list if several).
- ``system.Metrics``: a metric per numeric metadata entry, keyed by its name; a name that
  several artifacts share becomes ``<artifact name>/<metric>``.
- ``system.ClassificationMetrics``: ``kfp/<name>/confusion_matrix.json`` (an MLflow table),
  ``confusion_matrix.png`` (heat map), ``confusion_matrix_kfp.json`` (the metadata as KFP
  wrote it), and ``roc_curve.json`` / ``.png`` / ``_kfp.json`` likewise.
- ``system.SlicedClassificationMetrics``: ``kfp/<name>/sliced_classification_metrics.json``
  and per slice ``kfp/<name>/slices/<slice>/confusion_matrix.json`` / ``roc_curve.json`` tables.
- ``system.HTML`` / ``system.Markdown``: the file, as ``kfp/<name>/<name>.html`` / ``.md``.
- KFP v1 ``mlpipeline-metrics``: a metric per ``metrics[]`` entry (its ``numberValue``).
- KFP v1 ``mlpipeline-ui-metadata``: ``kfp/<name>/mlpipeline-ui-metadata.json``, and per
  viewer ``kfp/<name>/<i>/``: ``markdown.md``, ``web-app.html``, ``table.json``, or the
  confusion-matrix / ROC tables and figures as above.

A malformed artifact, or one whose file cannot be read, is logged as a warning and
skipped; so is anything the tracking server refuses as invalid. Any other MLflow error
(an unreachable server, a failing artifact store) propagates: the caller decides what an
outage means. mlflow and matplotlib are imported only when logging, as this module is
reachable from DAG-parse-time code.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_kfx.tracking import visuals
from airflow_kfx.tracking.visuals import FileOp, path_part

if TYPE_CHECKING:
    import mlflow

log = logging.getLogger("airflow_kfx.tracking")

PARAM_PREFIX = "output."
ARTIFACT_TAG_PREFIX = "kfx.artifact."
ARTIFACT_ROOT = "kfp"

# MLflow's limits (mlflow.utils.validation), fixed here so the server's are respected too.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_BYTES = 900_000  # a tracking server refuses log-batch requests over 1 MB

_DOCUMENTS = {"system.HTML": ".html", "system.Markdown": ".md"}


def log_task_outputs(
    client: mlflow.MlflowClient,
    run_id: str,
    outputs: Mapping[str, Any],
    read_text: Callable[[str], str],
    read_bytes: Callable[[str], bytes] | None = None,
) -> None:
    """Log a task's outputs (``{"parameters": {...}, "artifacts": {name: [descriptor]}}``,
    descriptors as KFP's executor output has them) into the MLflow run ``run_id``.

    ``read_text`` / ``read_bytes`` read an artifact's file from its URI (local path or
    object store); without ``read_bytes``, HTML and Markdown files are read as text.
    """
    params = {
        mlflow_key(PARAM_PREFIX + str(name)): truncate(_param_value(value), MAX_PARAM_VALUE_LENGTH)
        for name, value in (outputs.get("parameters") or {}).items()
    }
    tags: dict[str, str] = {}
    metric_sources: list[tuple[str, dict[str, float]]] = []
    files: list[FileOp] = []
    for name, entries in (outputs.get("artifacts") or {}).items():
        entries = [entries] if isinstance(entries, Mapping) else list(entries or [])
        uris = [str(e["uri"]) for e in entries if isinstance(e, Mapping) and e.get("uri")]
        if uris:
            value = uris[0] if len(uris) == 1 else json.dumps(uris)
            tags[mlflow_key(ARTIFACT_TAG_PREFIX + str(name))] = truncate(value, MAX_TAG_VALUE_LENGTH)
        for i, entry in enumerate(entries):
            several = len(entries) > 1
            label = f"{name}/{i}" if several else str(name)
            prefix = f"{ARTIFACT_ROOT}/{path_part(name)}/" + (f"{i}/" if several else "")
            metrics, ops = _plan(str(name), label, prefix, entry, read_text, read_bytes)
            if metrics:
                metric_sources.append((label, metrics))
            files += ops
    _log_scalars(client, run_id, _metric_keys(metric_sources), params, tags)
    for op in files:
        _log_file(client, run_id, op)


# ---- keys and values -------------------------------------------------------------------


def mlflow_key(name: str) -> str:
    """``name`` as a valid MLflow param/metric/tag key (allowed characters, ≤ 250, no ``..``)."""
    cleaned = re.sub(r"[^\w.\- /]", "_", name)[:MAX_KEY_LENGTH]
    return "/".join(p for p in cleaned.split("/") if p not in ("", ".", "..")) or "_"


def truncate(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, ending in a marker saying it was."""
    if len(value) <= limit:
        return value
    marker = f"...[truncated, {len(value)} chars]"
    return value[: limit - len(marker)] + marker


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _metric_keys(sources: list[tuple[str, dict[str, float]]]) -> dict[str, float]:
    """Metrics keyed by name; a name several artifacts share is prefixed with each one's name."""
    counts = Counter(key for _, metrics in sources for key in metrics)
    return {
        (key if counts[key] == 1 else mlflow_key(f"{label}/{key}")): value
        for label, metrics in sources
        for key, value in metrics.items()
    }


# ---- what each artifact becomes ----------------------------------------------------------


def _plan(
    name: str,
    label: str,
    prefix: str,
    artifact: Any,
    read_text: Callable[[str], str],
    read_bytes: Callable[[str], bytes] | None,
) -> tuple[dict[str, float], list[FileOp]]:
    """The metrics and files one artifact gives; nothing (and a warning) if it is malformed."""

    def warn(message: str) -> None:
        log.warning("Not logging part of output artifact %r to MLflow: %s", label, message)

    try:
        title = artifact.get("schemaTitle")
        metadata = artifact.get("metadata") or {}
        uri = str(artifact.get("uri") or "")
        v1_kind = re.sub(r"[^a-z]", "", name.lower())  # "MLPipeline Metrics", "mlpipeline_metrics", ...
        metrics: dict[str, float] = {}
        if title == "system.Metrics":
            metrics.update(
                (mlflow_key(str(k)), float(v))
                for k, v in metadata.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            )
        if v1_kind == "mlpipelinemetrics":
            metrics.update(_v1_metrics(json.loads(read_text(uri)), warn))
            return metrics, []
        if v1_kind == "mlpipelineuimetadata":
            return metrics, visuals.ui_metadata_ops(prefix, json.loads(read_text(uri)), read_text, warn)
        if title == "system.ClassificationMetrics":
            return metrics, visuals.classification_ops(prefix, metadata, warn)
        if title == "system.SlicedClassificationMetrics":
            return metrics, visuals.sliced_ops(prefix, metadata, warn)
        if title in _DOCUMENTS:
            path = f"{prefix}{path_part(name)}{_DOCUMENTS[title]}"
            if read_bytes is not None:
                return metrics, [FileOp("bytes", path, lambda: read_bytes(uri))]
            return metrics, [FileOp("text", path, lambda: read_text(uri))]
        return metrics, []
    except Exception as exc:
        log.warning("Not logging output artifact %r to MLflow: %r", label, exc)
        return {}, []


def _v1_metrics(document: Any, warn: Callable[[str], None]) -> dict[str, float]:
    """KFP v1 ``{"metrics": [{"name", "numberValue", "format"}]}`` (values as given, also for
    ``format: PERCENTAGE``, which only changes how KFP displays them)."""
    entries = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a KFP v1 metrics file: no 'metrics' list")
    metrics = {}
    for entry in entries:
        try:
            value = entry["numberValue"]
            if isinstance(value, bool):
                raise TypeError("a boolean")
            metrics[mlflow_key(str(entry["name"]))] = float(value)
        except (KeyError, TypeError, ValueError) as exc:
            warn(f"metric {entry!r} skipped ({exc!r})")
    return metrics


# ---- logging -------------------------------------------------------------------------------


def _rejected(exc: Exception) -> bool:
    """Whether MLflow refused the data itself (as opposed to being unreachable or failing)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code == "INVALID_PARAMETER_VALUE"
    return isinstance(exc, (TypeError, ValueError))


def _batches(*groups: tuple[str, list[Any], int]) -> Iterator[dict[str, list[Any]]]:
    """``log_batch`` keyword arguments within MLflow's per-request limits."""
    batch: dict[str, list[Any]] = {kind: [] for kind, _, _ in groups}
    size = 0
    for kind, entries, limit in groups:
        for entry in entries:
            entry_size = len(entry.key) + len(str(entry.value)) + 64
            total = sum(map(len, batch.values()))
            full = len(batch[kind]) >= limit or total >= MAX_ENTITIES_PER_BATCH
            if total and (full or size + entry_size > MAX_BATCH_BYTES):
                yield batch
                batch, size = {k: [] for k, _, _ in groups}, 0
            batch[kind].append(entry)
            size += entry_size
    if any(batch.values()):
        yield batch


def _log_scalars(
    client: Any, run_id: str, metrics: dict[str, float], params: dict[str, str], tags: dict[str, str]
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    for batch in _batches(
        ("params", [Param(k, v) for k, v in params.items()], MAX_PARAMS_TAGS_PER_BATCH),
        ("tags", [RunTag(k, v) for k, v in tags.items()], MAX_PARAMS_TAGS_PER_BATCH),
        ("metrics", [Metric(k, v, now, 0) for k, v in metrics.items()], MAX_METRICS_PER_BATCH),
    ):
        try:
            client.log_batch(run_id, **batch)
        except Exception as exc:
            if not _rejected(exc):
                raise
            # e.g. a param already logged with another value: keep every entry MLflow accepts
            for kind, entries in batch.items():
                for entry in entries:
                    try:
                        client.log_batch(run_id, **{kind: [entry]})
                    except Exception as single:
                        if not _rejected(single):
                            raise
                        log.warning("MLflow rejected %s %r: %s", kind[:-1], entry.key, single)


def _log_file(client: Any, run_id: str, op: FileOp) -> None:
    try:
        payload = op.make()
    except Exception as exc:
        log.warning("Not logging %s to MLflow: %r", op.path, exc)
        return
    try:
        if op.kind == "table":
            _log_table(client, run_id, payload, op.path)
        elif op.kind == "figure":
            client.log_figure(run_id, payload, op.path)
        elif op.kind == "dict":
            client.log_dict(run_id, payload, op.path)
        elif op.kind == "text":
            client.log_text(run_id, payload, op.path)
        else:  # bytes
            with tempfile.TemporaryDirectory(prefix="kfx-mlflow-") as folder:
                local = os.path.join(folder, posixpath.basename(op.path))
                with open(local, "wb") as handle:
                    handle.write(payload)
                client.log_artifact(run_id, local, posixpath.dirname(op.path) or None)
    except Exception as exc:
        if not _rejected(exc):
            raise
        log.warning("MLflow rejected %s: %s", op.path, exc)


def _log_table(client: Any, run_id: str, columns: dict[str, list[Any]], path: str) -> None:
    """``client.log_table``, except that logging a table again replaces it (``log_table``
    appends to an existing file: a retried task would double its rows)."""
    folder = posixpath.dirname(path) or None
    if any(f.path == path for f in client.list_artifacts(run_id, folder)):
        rows = [list(row) for row in zip(*columns.values())]
        client.log_dict(run_id, {"columns": list(columns), "data": rows}, path)  # log_table's layout
    else:
        client.log_table(run_id, columns, path)
