"""What a run's outputs view shows, from what the run stored (pure: no Airflow, no I/O).

A KFP task's XCom is ``{"parameters": {...}, "artifacts": {name: [descriptor, ...]}}``
(see :func:`airflow_kfx.runtime.invocation.artifact_descriptor`). This module turns one
into the panels KFP's run page draws: output parameters, artifacts with their URIs,
metrics tables, confusion matrices, ROC curves, Markdown and HTML documents, and v1
``mlpipeline-ui-metadata`` viewers. Every file it needs is read through ``read_text``,
which the caller confines to the run's pipeline root: the data was written by user
code. Unreadable data becomes a :class:`Problem` panel, never an error page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_kfx.tracking.visuals import (
    confusion_matrix_from_csv,
    parse_confusion_matrix,
    parse_roc,
    roc_from_csv,
    table_from_csv,
)

# Files larger than this are linked, not inlined into the page.
MAX_INLINE_BYTES = 1_000_000
# What a run page shows first: numbers, then charts, then documents, then the rest.
_ORDER = {"system.Metrics": 0, "system.ClassificationMetrics": 1, "system.SlicedClassificationMetrics": 1,
          "system.Markdown": 2, "system.HTML": 2}


@dataclass(frozen=True)
class Metrics:
    rows: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ConfusionMatrix:
    labels: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]
    axes: tuple[str, str] = ("actual", "predicted")


@dataclass(frozen=True)
class RocCurve:
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    threshold: tuple[float, ...] = ()


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Html:
    """Shown in a sandboxed frame: from ``uri`` (a file) or ``text`` (inline v1 web-app)."""

    uri: str = ""
    text: str = ""


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Problem:
    message: str


Panel = Metrics | ConfusionMatrix | RocCurve | Markdown | Html | Table | Problem


@dataclass(frozen=True)
class ArtifactView:
    name: str
    schema_title: str
    uri: str
    readable: bool  # under the run's pipeline root: the view may serve it
    panels: tuple[Panel, ...] = ()


@dataclass(frozen=True)
class TaskView:
    task_id: str
    map_index: int
    state: str
    parameters: tuple[tuple[str, Any], ...] = ()
    artifacts: tuple[ArtifactView, ...] = ()
    mlflow_url: str = ""
    cache_hit: bool = False

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id} [{self.map_index}]"


ReadText = Callable[[str], str]
Readable = Callable[[str], bool]


def is_kfp_outputs(value: Any) -> bool:
    """Whether an XCom value is a KFP task's outputs."""
    return isinstance(value, Mapping) and isinstance(value.get("parameters"), Mapping) and "artifacts" in value


def task_view(
    task_id: str,
    map_index: int,
    state: str,
    outputs: Mapping[str, Any] | None,
    *,
    read_text: ReadText,
    readable: Readable,
    mlflow_url: str = "",
) -> TaskView:
    """One task instance's outputs as panels."""
    if not is_kfp_outputs(outputs):
        return TaskView(task_id, map_index, state, mlflow_url=_http_only(mlflow_url))
    assert outputs is not None
    parameters = tuple((str(k), v) for k, v in sorted(outputs["parameters"].items()))
    artifacts = []
    for name, entries in sorted((outputs.get("artifacts") or {}).items()):
        entries = [entries] if isinstance(entries, Mapping) else list(entries or [])
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            label = f"{name}[{i}]" if len(entries) > 1 else str(name)
            artifacts.append(artifact_view(label, entry, read_text=read_text, readable=readable))
    artifacts.sort(key=lambda a: (_ORDER.get(a.schema_title, len(_ORDER)), a.name))
    return TaskView(task_id, map_index, state, parameters, tuple(artifacts), _http_only(mlflow_url),
                    cache_hit=bool(outputs.get("cache_hit")))


def artifact_view(name: str, entry: Mapping[str, Any], *, read_text: ReadText, readable: Readable) -> ArtifactView:
    title = str(entry.get("schemaTitle") or "")
    uri = str(entry.get("uri") or "")
    ok = bool(uri) and readable(uri)
    try:
        panels = _panels(name, title, entry.get("metadata") or {}, uri if ok else "", read_text)
    except Exception as exc:  # noqa: BLE001 - user data: say what is wrong, show the rest
        panels = [Problem(f"cannot show {name}: {exc}")]
    return ArtifactView(name, title, uri, ok, tuple(panels))


def _panels(name: str, title: str, metadata: Mapping[str, Any], uri: str, read_text: ReadText) -> list[Panel]:
    v1_kind = re.sub(r"[^a-z]", "", name.lower().split("[")[0])
    panels: list[Panel] = []
    if title == "system.Metrics":
        rows = tuple((str(k), v) for k, v in sorted(metadata.items()) if _is_number(v))
        if rows:
            panels.append(Metrics(rows))
    elif title == "system.ClassificationMetrics":
        panels += _classification(metadata)
    elif title == "system.SlicedClassificationMetrics":
        for entry in metadata.get("evaluationSlices") or []:
            panels += _classification(entry.get("sliceClassificationMetrics") or {})
    if not uri:
        return panels
    if v1_kind == "mlpipelinemetrics":
        panels.append(_v1_metrics(json.loads(read_text(uri))))
    elif v1_kind == "mlpipelineuimetadata":
        panels += ui_metadata_panels(json.loads(read_text(uri)), read_text)
    elif title == "system.Markdown":
        panels.append(Markdown(read_text(uri)))
    elif title == "system.HTML":
        panels.append(Html(uri=uri))
    return panels


def _classification(metadata: Mapping[str, Any]) -> list[Panel]:
    panels: list[Panel] = []
    if "confusionMatrix" in metadata:
        labels, matrix = parse_confusion_matrix(metadata["confusionMatrix"])
        panels.append(ConfusionMatrix(tuple(labels), tuple(tuple(map(float, r)) for r in matrix)))
    if "confidenceMetrics" in metadata:
        panels.append(_roc(parse_roc(metadata["confidenceMetrics"])))
    return panels


def _roc(columns: Mapping[str, Sequence[Any]]) -> RocCurve:
    return RocCurve(tuple(map(float, columns["fpr"])), tuple(map(float, columns["tpr"])),
                    tuple(float(t) for t in columns.get("threshold") or () if t is not None))


def _v1_metrics(document: Any) -> Panel:
    entries = document.get("metrics") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        return Problem("not a KFP v1 metrics file: no 'metrics' list")
    rows = tuple((str(e.get("name")), e.get("numberValue")) for e in entries
                 if isinstance(e, Mapping) and _is_number(e.get("numberValue")))
    return Metrics(rows)


def ui_metadata_panels(document: Any, read_text: ReadText) -> list[Panel]:
    """KFP v1 ``mlpipeline-ui-metadata``: one panel per viewer in ``outputs``."""
    if not isinstance(document, Mapping) or not isinstance(document.get("outputs"), list):
        return [Problem("not a KFP UI metadata document: no 'outputs' list")]
    panels: list[Panel] = []
    for i, output in enumerate(document["outputs"]):
        try:
            panels.append(_viewer(output, read_text))
        except Exception as exc:  # noqa: BLE001 - one bad viewer never hides the others
            kind = output.get("type") if isinstance(output, Mapping) else None
            panels.append(Problem(f"outputs[{i}] ({kind}): {exc}"))
    return panels


def _viewer(output: Mapping[str, Any], read_text: ReadText) -> Panel:
    kind = output.get("type")
    if kind == "tensorboard":
        return Problem(f"TensorBoard logs at {output.get('source')}: open them with TensorBoard")
    source = str(output["source"])
    content = source if output.get("storage") == "inline" else read_text(source)
    if kind == "markdown":
        return Markdown(content)
    if kind == "web-app":
        return Html(text=content)
    if output.get("format", "csv") != "csv":
        raise ValueError(f"unsupported format {output.get('format')!r}")
    if kind == "table":
        columns = table_from_csv(content, output["header"])
        header = tuple(columns)
        return Table(header, tuple(zip(*columns.values(), strict=True)) if header else ())
    if kind == "confusion_matrix":
        names = [str(field["name"]) for field in output.get("schema") or []]
        axes = (names[0], names[1]) if len(names) >= 2 else ("target", "predicted")
        labels, matrix = confusion_matrix_from_csv(content, output["labels"])
        return ConfusionMatrix(tuple(labels), tuple(tuple(map(float, r)) for r in matrix), axes)
    if kind == "roc":
        return _roc(roc_from_csv(content, output["schema"]))
    raise ValueError(f"unknown viewer type {kind!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _http_only(url: str) -> str:
    """A link the page may show: http(s) only (a ``javascript:`` URL is no link)."""
    return url if isinstance(url, str) and re.match(r"https?://", url) else ""
