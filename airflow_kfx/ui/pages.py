"""HTML of the plugin's pages. Everything that came from a run or a user is escaped;
Markdown is rendered with raw HTML off; HTML documents only ever appear inside a
sandboxed frame (no scripts, no same-origin access). The pages have no script."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from airflow_kfx.ui.charts import confusion_matrix_svg, roc_svg
from airflow_kfx.ui.outputs import (
    ArtifactView,
    ConfusionMatrix,
    Html,
    Markdown,
    Metrics,
    Panel,
    Problem,
    RocCurve,
    Table,
    TaskView,
)

# No script anywhere; frames only from this origin (artifact documents, themselves
# served with a sandbox CSP); inline SVG and styles.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
# An artifact document (a user's HTML): no script, no forms, no same-origin access.
ARTIFACT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#1b1b1b}
h1{font-size:20px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f6f9}.muted{color:#666}.problem{color:#b71c1c}.uri{font-family:monospace;font-size:12px}
iframe.kfx-html{width:100%;height:360px;border:1px solid #ccc}.markdown{border-left:3px solid #ddd;padding-left:12px}
.errors{background:#fff3f3;border:1px solid #e57373;padding:8px;white-space:pre-wrap}
.ok{background:#f1f8e9;border:1px solid #8bc34a;padding:8px}
"""


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def run_page(dag_id: str, run_id: str, state: str, tasks: Sequence[TaskView], *, base: str,
             mlflow_url: str = "", note: str = "") -> str:
    """A DAG run's outputs, task by task (tasks without outputs listed at the end)."""
    head = (f"<h1>Run outputs: {escape(dag_id)}</h1><p class='muted'>run {escape(run_id)} · {escape(state)}"
            + (f" · <a href='{escape(mlflow_url)}' target='_blank' rel='noopener'>MLflow run</a>" if mlflow_url else "")
            + "</p>")
    if note:
        head += f"<p class='muted'>{escape(note)}</p>"
    with_outputs = [t for t in tasks if t.parameters or t.artifacts]
    without = [t for t in tasks if not (t.parameters or t.artifacts)]
    sections = [task_section(t, dag_id=dag_id, run_id=run_id, base=base) for t in with_outputs]
    if not with_outputs:
        sections.append("<p>No task of this run has outputs (yet).</p>")
    if without:
        sections.append("<h2>Tasks without outputs</h2><table><tr><th>task</th><th>state</th></tr>" + "".join(
            f"<tr><td>{escape(t.label)}</td><td>{escape(t.state)}</td></tr>" for t in without) + "</table>")
    return page(f"{dag_id} · {run_id}", head + "".join(sections))


def task_page(dag_id: str, run_id: str, task: TaskView | None, *, base: str, task_id: str) -> str:
    if task is None:
        return page(task_id, f"<h1>{escape(task_id)}</h1><p>This task instance has no KFP outputs.</p>")
    return page(task.label, task_section(task, dag_id=dag_id, run_id=run_id, base=base, level=1))


def task_section(task: TaskView, *, dag_id: str, run_id: str, base: str, level: int = 2) -> str:
    h = f"h{level}"
    parts = [f"<section class='kfx-task' data-task='{escape(task.label)}'><{h}>{escape(task.label)}</{h}>",
             f"<p class='muted'>{escape(task.state)}" + (" · from the cache" if task.cache_hit else "")
             + (f" · <a href='{escape(task.mlflow_url)}' target='_blank' rel='noopener'>MLflow run</a>"
                if task.mlflow_url else "") + "</p>"]
    if task.parameters:
        parts.append("<h3>Output parameters</h3><table class='kfx-parameters'><tr><th>name</th><th>value</th></tr>"
                     + "".join(f"<tr><td>{escape(k)}</td><td>{escape(_text(v))}</td></tr>" for k, v in task.parameters)
                     + "</table>")
    if task.artifacts:
        parts.append("<h3>Artifacts</h3><table class='kfx-artifacts'><tr><th>name</th><th>type</th><th>URI</th></tr>"
                     + "".join(_artifact_row(a, dag_id, run_id, base) for a in task.artifacts) + "</table>")
        for artifact in task.artifacts:
            if artifact.panels:
                parts.append(f"<h3>{escape(artifact.name)}</h3>")
                parts += [panel_html(p, dag_id=dag_id, run_id=run_id, base=base) for p in artifact.panels]
    parts.append("</section>")
    return "".join(parts)


def artifact_url(base: str, dag_id: str, run_id: str, uri: str) -> str:
    return f"{base}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/artifact?" + urlencode({"uri": uri})


def _artifact_row(artifact: ArtifactView, dag_id: str, run_id: str, base: str) -> str:
    uri = escape(artifact.uri)
    if artifact.readable:
        uri = f"<a href='{escape(artifact_url(base, dag_id, run_id, artifact.uri))}' target='_blank'>{uri}</a>"
    return (f"<tr><td>{escape(artifact.name)}</td><td>{escape(artifact.schema_title)}</td>"
            f"<td class='uri'>{uri}</td></tr>")


def panel_html(panel: Panel, *, dag_id: str, run_id: str, base: str) -> str:
    if isinstance(panel, Metrics):
        return ("<table class='kfx-metrics'><tr><th>metric</th><th>value</th></tr>"
                + "".join(f"<tr><td>{escape(k)}</td><td>{escape(_text(v))}</td></tr>" for k, v in panel.rows)
                + "</table>")
    if isinstance(panel, ConfusionMatrix):
        return f"<div class='kfx-figure'>{confusion_matrix_svg(panel)}</div>"
    if isinstance(panel, RocCurve):
        return f"<div class='kfx-figure'>{roc_svg(panel)}</div>"
    if isinstance(panel, Markdown):
        return f"<div class='markdown kfx-markdown'>{render_markdown(panel.text)}</div>"
    if isinstance(panel, Html):
        if panel.uri:
            return (f"<iframe class='kfx-html' sandbox title='HTML output' "
                    f"src='{escape(artifact_url(base, dag_id, run_id, panel.uri))}'></iframe>")
        return f"<iframe class='kfx-html' sandbox title='HTML output' srcdoc='{escape(panel.text)}'></iframe>"
    if isinstance(panel, Table):
        return ("<table class='kfx-table'><tr>" + "".join(f"<th>{escape(h)}</th>" for h in panel.header) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in panel.rows)
                + "</table>")
    if isinstance(panel, Problem):
        return f"<p class='problem'>{escape(panel.message)}</p>"
    raise TypeError(f"no HTML for {type(panel).__name__}")


def render_markdown(text: str) -> str:
    """CommonMark + tables; raw HTML in the text is shown as text, and only safe link
    schemes survive (markdown-it's own link validation)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def upload_page(*, base: str, folder: str, versions: dict[str, list[tuple[int, str]]], limit_mb: int,
                error: str = "", ok: str = "") -> str:
    """The upload form, what the last upload did, and the versions of each uploaded pipeline."""
    body = ["<h1>Upload a pipeline</h1>",
            "<p>A compiled KFP pipeline (<code>.yaml</code>, <code>.json</code>, <code>.zip</code>, "
            f"<code>.tar.gz</code>, up to {limit_mb} MB). It is checked as <code>kfx validate</code> checks it "
            "before anything is written; uploading a pipeline of the same name again makes a new version.</p>"]
    if error:
        body.append(f"<div class='errors kfx-upload-error'>{escape(error)}</div>")
    if ok:
        body.append(f"<div class='ok kfx-upload-ok'>{escape(ok)}</div>")
    if folder:
        body.append(f"<form method='post' action='{escape(base)}/upload' enctype='multipart/form-data'>"
                    "<input type='file' name='file' required accept='.yaml,.yml,.json,.zip,.tar.gz,.tgz'> "
                    "<button type='submit'>Upload</button></form>"
                    f"<p class='muted'>Pipelines folder: <code>{escape(folder)}</code></p>")
    if versions:
        body.append("<h2>Uploaded pipelines</h2><table class='kfx-versions'><tr><th>DAG</th><th>versions</th></tr>")
        for dag_id, known in versions.items():
            listed = ", ".join(f"v{number} ({created})" for number, created in known) or "not parsed yet"
            body.append(f"<tr><td>{escape(dag_id)}</td><td>{escape(listed)}</td></tr>")
        body.append("</table>")
    return page("Upload a pipeline", "".join(body))
