"""Confusion matrices and ROC curves as inline SVG: no script, no image files, and
every label escaped (labels come from user code)."""

from __future__ import annotations

from html import escape

from airflow_kfx.ui.outputs import ConfusionMatrix, RocCurve

CELL = 56  # px per confusion-matrix cell
LABEL_WIDTH = 110
ROC_SIZE = 260


def confusion_matrix_svg(panel: ConfusionMatrix) -> str:
    n = len(panel.labels)
    peak = max((v for row in panel.matrix for v in row), default=0) or 1
    width, height = LABEL_WIDTH + n * CELL + 90, LABEL_WIDTH + n * CELL + 24
    parts = [
        f'<svg class="kfx-confusion" role="img" aria-label="confusion matrix" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<text x="{LABEL_WIDTH + n * CELL / 2}" y="{LABEL_WIDTH + n * CELL + 4}" text-anchor="middle" '
        f'dominant-baseline="hanging" font-weight="bold">{escape(panel.axes[1])}</text>',
        f'<text x="12" y="{LABEL_WIDTH + n * CELL / 2}" text-anchor="middle" font-weight="bold" '
        f'transform="rotate(-90 12 {LABEL_WIDTH + n * CELL / 2})">{escape(panel.axes[0])}</text>',
    ]
    for j, label in enumerate(panel.labels):  # predicted: column heads
        x = LABEL_WIDTH + j * CELL + CELL / 2
        parts.append(f'<text x="{x}" y="{LABEL_WIDTH - 6}" text-anchor="start" '
                     f'transform="rotate(-45 {x} {LABEL_WIDTH - 6})">{escape(_short(label))}</text>')
    for i, (label, row) in enumerate(zip(panel.labels, panel.matrix, strict=True)):
        y = LABEL_WIDTH + i * CELL
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + CELL / 2 + 4}" text-anchor="end">{escape(_short(label))}</text>')
        for j, value in enumerate(row):
            share = value / peak
            fill = f"rgb({int(255 - 200 * share)},{int(255 - 130 * share)},255)"
            ink = "#fff" if share > 0.6 else "#000"
            x = LABEL_WIDTH + j * CELL
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" stroke="#fff">'
                f'<title>{escape(panel.axes[0])} {escape(label)}, {escape(panel.axes[1])} '
                f'{escape(panel.labels[j])}: {_number(value)}</title></rect>'
                f'<text x="{x + CELL / 2}" y="{y + CELL / 2 + 4}" text-anchor="middle" fill="{ink}">{_number(value)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def roc_svg(panel: RocCurve) -> str:
    size, pad = ROC_SIZE, 36
    points = sorted(zip(panel.fpr, panel.tpr, strict=True))
    path = " ".join(f"{pad + fpr * size:.1f},{pad + (1 - tpr) * size:.1f}" for fpr, tpr in points)
    area = _auc(points)
    total = size + 2 * pad
    return (
        f'<svg class="kfx-roc" role="img" aria-label="ROC curve" xmlns="http://www.w3.org/2000/svg" '
        f'width="{total}" height="{total}" viewBox="0 0 {total} {total}" font-family="sans-serif" font-size="12">'
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#999"/>'
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#ccc" stroke-dasharray="4"/>'
        f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>'
        f'<text x="{pad + size / 2}" y="{total - 6}" text-anchor="middle">false positive rate</text>'
        f'<text x="12" y="{pad + size / 2}" text-anchor="middle" transform="rotate(-90 12 {pad + size / 2})">'
        f'true positive rate</text>'
        f'<text x="{pad + size - 6}" y="{pad + size - 8}" text-anchor="end">AUC {area:.3f}</text>'
        "</svg>"
    )


def _auc(points: list[tuple[float, float]]) -> float:
    """Trapezoidal area under the curve through (0,0) and (1,1)."""
    curve = [(0.0, 0.0), *points, (1.0, 1.0)]
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(curve, curve[1:]))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _short(label: str, limit: int = 14) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
