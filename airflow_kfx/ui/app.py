"""The plugin's FastAPI app, mounted by Airflow's api-server under ``/kfx``.

Airflow mounts a plugin's app without authenticating it (apache/airflow#72655), so every
route here declares Airflow's own access dependencies itself: reading a run's outputs
needs read access to that DAG's runs and XComs; uploading needs DAG edit access (and,
once the file names its DAG, edit access to that DAG).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_kfx.ui import pages
from airflow_kfx.ui.store import load_run, read_artifact
from airflow_kfx.ui.upload import DEFAULT_MAX_BYTES, UploadError, store, suffix_of, validate, writable_folder

URL_PREFIX = "/kfx"
MAX_ARTIFACT_BYTES = 50 * 1024 * 1024  # served through the view; bigger files: read the root directly

ReadOutputs = [Depends(requires_access_dag("GET", DagAccessEntity.RUN)),
               Depends(requires_access_dag("GET", DagAccessEntity.XCOM))]
EditDags = [Depends(requires_access_dag("PUT"))]


def create_app() -> FastAPI:
    app = FastAPI(title="airflow-kfx", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=ReadOutputs)
    def run_outputs(dag_id: str, run_id: str, request: Request, session: SessionDep) -> Response:
        data = _run(session, dag_id, run_id)
        note = "" if data.root_recorded else f"artifacts assumed under the configured pipeline root {data.pipeline_root}"
        return _html(pages.run_page(dag_id, run_id, data.state, data.tasks, base=_base(request),
                                    mlflow_url=data.mlflow_url, note=note))

    @app.get("/runs/{dag_id}/{run_id}/tasks/{task_id}", response_class=HTMLResponse, dependencies=ReadOutputs)
    def task_outputs(dag_id: str, run_id: str, task_id: str, request: Request, session: SessionDep,
                     map_index: Annotated[str, Query()] = "-1") -> Response:
        index = _map_index(map_index)
        data = _run(session, dag_id, run_id, task_id=task_id, map_index=index)
        task = next((t for t in data.tasks if t.task_id == task_id and (index is None or t.map_index == index)), None)
        return _html(pages.task_page(dag_id, run_id, task, base=_base(request), task_id=task_id))

    @app.get("/api/runs/{dag_id}/{run_id}", dependencies=ReadOutputs)
    def run_outputs_json(dag_id: str, run_id: str, session: SessionDep) -> dict[str, Any]:
        data = _run(session, dag_id, run_id)
        result = dataclasses.asdict(data)
        for task, view in zip(result["tasks"], data.tasks, strict=True):
            for artifact, artifact_view in zip(task["artifacts"], view.artifacts, strict=True):
                artifact["panels"] = [{"kind": type(p).__name__, **dataclasses.asdict(p)} for p in artifact_view.panels]
        return result

    @app.get("/runs/{dag_id}/{run_id}/artifact", dependencies=ReadOutputs)
    def artifact(dag_id: str, run_id: str, uri: str, session: SessionDep) -> Response:
        data = _run(session, dag_id, run_id, task_id="", map_index=None)  # the run's root only
        try:
            body = read_artifact(data.pipeline_root, uri, MAX_ARTIFACT_BYTES)
        except FileNotFoundError as err:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
        except Exception as err:  # outside the root, too large, unreadable
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from err
        media = "text/html" if uri.lower().endswith((".html", ".htm")) else "text/plain"
        return Response(body, media_type=f"{media}; charset=utf-8", headers={
            "Content-Security-Policy": pages.ARTIFACT_CSP, "X-Content-Type-Options": "nosniff"})

    @app.get("/upload", response_class=HTMLResponse, dependencies=EditDags)
    def upload_page(request: Request, session: SessionDep) -> Response:
        return _html(_upload_html(request, session))

    @app.post("/upload", dependencies=EditDags)
    async def upload(request: Request, user: GetUserDep, session: SessionDep,
                     file: Annotated[UploadFile, File()]) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        try:
            _same_origin(request)
            filename = file.filename or ""
            suffix_of(filename)
            folder = writable_folder(_setting("upload_folder"))
            data = await _read_limited(file, _max_bytes())
            error, dag_id = validate(filename, data)
            if error:
                raise UploadError(422, error)
            assert dag_id is not None
            _may_edit(user, dag_id, session)
            stored = store(folder, dag_id, filename, data)
            _request_parse(session, folder)
        except UploadError as err:
            if wants_json:
                return JSONResponse({"error": err.message}, status_code=err.status)
            return _html(_upload_html(request, session, error=err.message), status_code=err.status)
        message = (f"{filename} is pipeline '{stored.dag_id}', saved as {stored.path.name}"
                   + (" (a new version: the earlier file was replaced)" if stored.replaced else "")
                   + ". The DAG appears (or is updated) once the DAG processor has parsed it.")
        if wants_json:
            return JSONResponse({"dag_id": stored.dag_id, "file": str(stored.path), "replaced": bool(stored.replaced),
                                 "message": message})
        return _html(_upload_html(request, session, ok=message))

    return app


def _run(session: Any, dag_id: str, run_id: str, *, task_id: str | None = None, map_index: int | None = None) -> Any:
    data = load_run(session, dag_id, run_id, task_id=task_id, map_index=map_index)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"DAG {dag_id} has no run {run_id}")
    return data


def _map_index(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:  # the UI leaves {MAP_INDEX} in place for an unmapped task
        return None


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers={
        "Content-Security-Policy": pages.PAGE_CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin"})


def _base(request: Request) -> str:
    return str(request.scope.get("root_path") or URL_PREFIX).rstrip("/")


def _setting(key: str) -> str:
    from airflow_kfx.config import config_value

    return config_value(key)


def _max_bytes() -> int:
    text = _setting("upload_max_mb")
    try:
        return int(float(text) * 1024 * 1024)
    except ValueError:
        return DEFAULT_MAX_BYTES


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await file.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise UploadError(413, f"{file.filename} is larger than the {limit // (1024 * 1024)} MB "
                                   "upload limit ([kfx] upload_max_mb); nothing was written")
        chunks.append(chunk)
    return b"".join(chunks)


def _same_origin(request: Request) -> None:
    """A form posted from another site is refused (Airflow's cookie is SameSite=Lax, and
    this is a second lock on the door)."""
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise UploadError(403, f"refused an upload posted from another site ({origin})")


def _may_edit(user: Any, dag_id: str, session: Any) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id, session=session))
    if not get_auth_manager().is_authorized_dag(method="PUT", details=details, user=user):
        raise UploadError(403, f"you may not change DAG '{dag_id}'; nothing was written")


def _request_parse(session: Any, folder: Any) -> None:
    """Ask the DAG processor to parse the drop-ins that read ``folder`` now rather than
    at their next turn (the new or changed pipeline shows up sooner)."""
    import os

    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DagPriorityParsingRequest
    from sqlalchemy import select

    places = {os.path.realpath(folder), os.path.realpath(os.path.dirname(folder))}
    rows = session.execute(select(DagModel.bundle_name, DagModel.relative_fileloc, DagModel.fileloc)
                           .where(DagModel.is_stale.is_(False))).all()
    wanted = {(bundle, relative) for bundle, relative, fileloc in rows
              if fileloc and relative and fileloc.endswith(".py") and os.path.realpath(os.path.dirname(fileloc)) in places}
    for bundle, relative in sorted(wanted):
        session.add(DagPriorityParsingRequest(bundle_name=bundle, relative_fileloc=relative))


def _upload_html(request: Request, session: Any, *, error: str = "", ok: str = "") -> str:
    from airflow_kfx.ui.versions import uploaded_versions

    folder = _setting("upload_folder")
    return pages.upload_page(base=_base(request), folder=folder, error=error, ok=ok,
                             versions=uploaded_versions(session, folder) if folder else {},
                             limit_mb=_max_bytes() // (1024 * 1024))

