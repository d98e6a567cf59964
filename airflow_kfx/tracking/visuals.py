"""KFP classification visualisations → MLflow tables, figures and JSON files.

Turns the data behind KFP's confusion-matrix and ROC viewers (v2 artifact metadata and
v1 ``mlpipeline-ui-metadata`` outputs) into :class:`FileOp` s that
:mod:`airflow_kfx.tracking.outputs` logs. Parsing happens when the ops are built, so
malformed data raises ``ValueError`` there; payloads (figures in particular) are only
made when an op is logged. matplotlib is imported only then.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# KFP ROC point fields (``ClassificationMetrics.log_roc_data_point``) → table columns.
_ROC_COLUMNS = {"confidenceThreshold": "threshold", "falsePositiveRate": "fpr", "recall": "tpr"}
_ANNOTATE_UP_TO = 30  # cells are labelled with their counts up to this many classes


@dataclass(frozen=True)
class FileOp:
    """One file to log into the run: ``kind`` is ``table``, ``figure``, ``dict`` or ``text``."""

    kind: str
    path: str  # run-relative artifact path
    make: Callable[[], Any]  # the payload: column dict, matplotlib Figure, dict or str


def path_part(name: str) -> str:
    """``name`` as one artifact-path segment."""
    cleaned = re.sub(r"[^\w.\- ]", "_", str(name)).strip(" .")
    return cleaned or "_"


def unique(names: Iterable[str]) -> list[str]:
    """``names`` with repeats made distinct (``a``, ``a_2``, ...)."""
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        result.append(candidate)
    return result


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


# ---- confusion matrix ---------------------------------------------------------------


def parse_confusion_matrix(data: Mapping[str, Any]) -> tuple[list[str], list[list[int | float]]]:
    """Labels and rows of KFP's ``confusionMatrix`` metadata (``annotationSpecs``, ``rows``)."""
    labels = [str(spec["displayName"]) for spec in data["annotationSpecs"]]
    matrix = [[_number(v) for v in row["row"]] for row in data["rows"]]
    if not labels or len(matrix) != len(labels) or any(len(r) != len(labels) for r in matrix):
        raise ValueError(f"confusion matrix is not {len(labels)}x{len(labels)} for labels {labels}")
    return labels, matrix


def confusion_matrix_from_csv(
    text: str, labels: Sequence[str]
) -> tuple[list[str], list[list[int | float]]]:
    """KFP v1 ``confusion_matrix`` CSV rows ``target,predicted,count`` → labels and rows."""
    index = {str(label): i for i, label in enumerate(labels)}
    matrix: list[list[int | float]] = [[0] * len(index) for _ in index]
    for row in csv.reader(io.StringIO(text.strip())):
        if not row:
            continue
        target, predicted, count = (cell.strip() for cell in row[:3])
        if target not in index or predicted not in index:
            raise ValueError(f"confusion matrix row {row} names a label not in {list(labels)}")
        matrix[index[target]][index[predicted]] = _number(count)
    return [str(label) for label in labels], matrix


def confusion_matrix_ops(
    prefix: str,
    labels: list[str],
    matrix: list[list[int | float]],
    raw: Mapping[str, Any] | None = None,
    axes: tuple[str, str] = ("actual", "predicted"),
    figure: bool = True,
) -> list[FileOp]:
    """A table (one row per actual class), a heat-map PNG and the raw JSON."""
    columns = unique([axes[0], *labels])
    table = {columns[0]: list(labels)}
    for j, column in enumerate(columns[1:]):
        table[column] = [row[j] for row in matrix]
    ops = [FileOp("table", f"{prefix}confusion_matrix.json", lambda: table)]
    if figure:
        ops.append(FileOp("figure", f"{prefix}confusion_matrix.png", lambda: _heatmap(labels, matrix, axes)))
    if raw is not None:
        ops.append(FileOp("dict", f"{prefix}confusion_matrix_kfp.json", lambda: dict(raw)))
    return ops


# ---- ROC curve ----------------------------------------------------------------------


def parse_roc(points: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """KFP ``confidenceMetrics`` → columns ``threshold``, ``fpr``, ``tpr`` (+ any other fields)."""
    if not isinstance(points, list) or not points:
        raise ValueError("confidenceMetrics must be a non-empty list of points")
    keys: dict[str, None] = dict.fromkeys(_ROC_COLUMNS)
    for point in points:
        keys.update(dict.fromkeys(point))
    columns: dict[str, list[Any]] = {}
    for key in keys:
        values = [point.get(key) for point in points]
        columns[_ROC_COLUMNS.get(key, key)] = [None if v is None else _number(v) for v in values]
    if None in columns["fpr"] or None in columns["tpr"]:
        raise ValueError("every ROC point needs falsePositiveRate and recall")
    return columns


def roc_from_csv(text: str, schema: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """KFP v1 ``roc`` CSV (columns named by ``schema``: ``fpr``, ``tpr``, ``threshold*``)."""
    names = [str(field["name"]) for field in schema]
    if "fpr" not in names or "tpr" not in names:
        raise ValueError(f"ROC schema {names} needs 'fpr' and 'tpr' columns")
    rows = [row for row in csv.reader(io.StringIO(text.strip())) if row]
    columns: dict[str, list[Any]] = {}
    for i, name in enumerate(names):
        key = "threshold" if name.startswith("threshold") else name
        columns[key] = [_number(row[i].strip()) for row in rows]
    return columns


def roc_ops(prefix: str, columns: dict[str, list[Any]], raw: Mapping[str, Any] | None = None,
            figure: bool = True) -> list[FileOp]:
    """A table, a curve PNG and the raw JSON."""
    ops = [FileOp("table", f"{prefix}roc_curve.json", lambda: columns)]
    if figure:
        ops.append(FileOp("figure", f"{prefix}roc_curve.png", lambda: _roc_curve(columns)))
    if raw is not None:
        ops.append(FileOp("dict", f"{prefix}roc_curve_kfp.json", lambda: dict(raw)))
    return ops


# ---- generic CSV table (v1 ``table``) -------------------------------------------------


def table_from_csv(text: str, header: Sequence[str]) -> dict[str, list[str]]:
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text.strip())) if row]
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"table rows do not all have the {len(header)} columns of header {list(header)}")
    names = unique([str(h) for h in header])
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


# ---- whole artifacts -------------------------------------------------------------------

Warn = Callable[[str], None]


def classification_ops(prefix: str, metadata: Mapping[str, Any], warn: Warn, figures: bool = True) -> list[FileOp]:
    """``system.ClassificationMetrics`` metadata: its confusion matrix and ROC curve, each on its own."""
    ops: list[FileOp] = []
    if "confusionMatrix" in metadata:
        try:
            raw = metadata["confusionMatrix"]
            ops += confusion_matrix_ops(prefix, *parse_confusion_matrix(raw), raw=raw, figure=figures)
        except Exception as exc:
            warn(f"unreadable confusionMatrix ({exc!r})")
    if "confidenceMetrics" in metadata:
        try:
            raw = {"confidenceMetrics": metadata["confidenceMetrics"]}
            ops += roc_ops(prefix, parse_roc(metadata["confidenceMetrics"]), raw=raw, figure=figures)
        except Exception as exc:
            warn(f"unreadable confidenceMetrics ({exc!r})")
    return ops


def sliced_ops(prefix: str, metadata: Mapping[str, Any], warn: Warn) -> list[FileOp]:
    """``system.SlicedClassificationMetrics``: the JSON, and tables per slice under ``slices/<slice>/``."""
    ops = [FileOp("dict", f"{prefix}sliced_classification_metrics.json", lambda: dict(metadata))]
    slices = metadata.get("evaluationSlices")
    if not isinstance(slices, list):
        raise ValueError("evaluationSlices is not a list")
    names = unique(path_part(s.get("slice", "")) for s in slices)
    for name, entry in zip(names, slices):
        sub = f"{prefix}slices/{name}/"
        metrics = entry.get("sliceClassificationMetrics") or {}
        ops += classification_ops(sub, metrics, lambda m, s=name: warn(f"slice {s!r}: {m}"), figures=False)
    return ops


def ui_metadata_ops(prefix: str, document: Any, read_text: Callable[[str], str], warn: Warn) -> list[FileOp]:
    """KFP v1 ``mlpipeline-ui-metadata``: the JSON, then each viewer in ``outputs`` under ``<i>/``."""
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise ValueError("not a KFP UI metadata document: no 'outputs' list")
    ops = [FileOp("dict", f"{prefix}mlpipeline-ui-metadata.json", lambda: document)]
    for i, output in enumerate(document["outputs"]):
        try:
            ops += _viewer_ops(f"{prefix}{i}/", output, read_text)
        except Exception as exc:
            warn(f"outputs[{i}] ({output.get('type') if isinstance(output, dict) else output!r}): {exc!r}")
    return ops


def _viewer_ops(prefix: str, output: Mapping[str, Any], read_text: Callable[[str], str]) -> list[FileOp]:
    kind = output.get("type")
    if kind == "tensorboard":
        return []  # a log directory to serve, nothing to copy
    source = output["source"]
    content = source if output.get("storage") == "inline" else read_text(source)
    if kind == "markdown":
        return [FileOp("text", f"{prefix}markdown.md", lambda: content)]
    if kind == "web-app":
        return [FileOp("text", f"{prefix}web-app.html", lambda: content)]
    if output.get("format", "csv") != "csv":
        raise ValueError(f"unsupported format {output.get('format')!r}")
    if kind == "table":
        columns = table_from_csv(content, output["header"])
        return [FileOp("table", f"{prefix}table.json", lambda: columns)]
    if kind == "confusion_matrix":
        names = [str(field["name"]) for field in output.get("schema") or []]
        axes = (names[0], names[1]) if len(names) >= 2 else ("target", "predicted")
        labels, matrix = confusion_matrix_from_csv(content, output["labels"])
        return confusion_matrix_ops(prefix, labels, matrix, axes=axes)
    if kind == "roc":
        return roc_ops(prefix, roc_from_csv(content, output["schema"]))
    raise ValueError(f"unknown viewer type {kind!r}")


# ---- figures --------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _heatmap(labels: list[str], matrix: list[list[int | float]], axes: tuple[str, str]) -> Any:
    n = len(labels)
    side = min(4.0 + 0.45 * n, 24.0)
    fig = _figure(side + 1.2, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=labels)
    ax.set_xlabel(axes[1])
    ax.set_ylabel(axes[0])
    ax.set_title("Confusion matrix")
    if n <= _ANNOTATE_UP_TO:
        top = max((max(row) for row in matrix), default=0) or 1
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                colour = "white" if value > top / 2 else "black"
                ax.text(j, i, f"{value:g}", ha="center", va="center", color=colour)
    fig.tight_layout()
    return fig


def _roc_curve(columns: Mapping[str, list[Any]]) -> Any:
    points = sorted(zip(columns["fpr"], columns["tpr"]))
    fig = _figure(6.0, 5.0)
    ax = fig.subplots()
    marker = "o" if len(points) <= 50 else None
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, clip_on=False)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title("ROC curve")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
