"""
The Pixazo view's server side: a FastAPI app the api-server mounts under ``/pixazo``.

Every route that touches a DAG checks the caller with Airflow's own security dependencies
(:func:`airflow.api_fastapi.core_api.security.requires_access_dag`): the signed-in user's JWT, from
the ``Authorization: Bearer`` header or the UI's ``_token`` session cookie, validated by Airflow;
then Airflow's auth manager decides whether that user may read the DAG's runs, task instances and
XComs. No token, an expired or a forged one: 401/403 and no data. The pages are static shells that
fetch the JSON with the session cookie and render every prompt and URL as text (``textContent``).

One request reads a whole run in three queries (task instances, XComs, rendered fields), so a
gallery of many mapped instances costs one round trip. The images a transfer stored are served by
``.../tasks/{task_id}/stored/{position}`` (see :mod:`.stored`): same access checks, looked up by
position in that task instance's own ``pixazo_stored`` record, streamed. A batch task's items are paged
from its manifest by ``.../tasks/{task_id}/batch`` (see :mod:`.batch`).
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from airflow_provider_pixazo.plugins.records import xcom_value
from airflow_provider_pixazo.plugins.stored import find_stored, open_stored
from airflow_provider_pixazo.plugins.view_model import PIXAZO_XCOM_KEYS, TaskRecord, build_run_view, build_task_view

__all__ = ["ClosingStreamingResponse", "create_app"]

#: Read access to everything the view shows: the run, its task instances (rendered fields) and XComs.
READ_ACCESS = [
    Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN)),
    Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE)),
    Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM)),
]
#: A record lists a handful of files; nine digits is far beyond any real position.
_MAX_POSITION_DIGITS = 9
_STATIC = {"pixazo.js": "text/javascript; charset=utf-8", "pixazo.css": "text/css; charset=utf-8"}
# Pages and data are per user: never cached by a shared proxy, never framed by another site.
_PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# A stored image is bytes to show, nothing to run: no scripts, no loads, even if opened on its own.
_IMAGE = {**_PRIVATE, "Content-Security-Policy": "default-src 'none'; sandbox", "Content-Disposition": "inline"}
#: Registers the object-store file systems in the background once per process (see
#: :func:`~airflow_provider_pixazo.plugins.manifest.warm_up_object_storage`).
_warming: threading.Thread | None = None


class ClosingStreamingResponse(StreamingResponse):
    """
    A streamed body whose source is closed however the response ends: sent whole, client gone, or failed.

    Starlette leaves a half-read sync iterator to the garbage collector when the browser goes away
    (and skips ``background`` tasks when the server reports the disconnect as an error, ASGI 2.4), so
    an object store's file would stay open until then.
    """

    def __init__(self, content: Iterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._source = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Never mid-read here: Starlette's thread-pool reads are not abandoned on cancellation.
            close = getattr(self._source, "close", None)
            if close is not None:
                close()


def load_run(session: Any, dag_id: str, run_id: str) -> list[TaskRecord]:
    """
    Read the run's task instances with their Pixazo XComs and rendered fields, in three queries.

    :param session: a SQLAlchemy session on Airflow's metadata database.
    :param dag_id: the DAG.
    :param run_id: the DAG run (read whole: requests join across its tasks).
    """
    ti_rows = session.execute(
        select(
            TaskInstance.task_id,
            TaskInstance.map_index,
            TaskInstance.operator,
            TaskInstance.custom_operator_name,
            TaskInstance.state,
            TaskInstance.start_date,
            TaskInstance.end_date,
        ).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ).all()
    tasks = {
        (row.task_id, row.map_index): TaskRecord(
            task_id=row.task_id,
            map_index=row.map_index,
            operator=row.operator,
            state=str(row.state) if row.state is not None else None,
            start_date=row.start_date,
            end_date=row.end_date,
        )
        for row in ti_rows
    }
    xcom_rows = session.execute(
        select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key.in_(PIXAZO_XCOM_KEYS)
        )
    ).all()
    for row in xcom_rows:
        task = tasks.get((row.task_id, row.map_index))
        if task is not None:
            task.xcom[row.key] = xcom_value(row.value)
    rendered_rows = session.execute(
        select(
            RenderedTaskInstanceFields.task_id,
            RenderedTaskInstanceFields.map_index,
            RenderedTaskInstanceFields.rendered_fields,
        ).where(RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id)
    ).all()
    for row in rendered_rows:
        task = tasks.get((row.task_id, row.map_index))
        if task is not None and isinstance(row.rendered_fields, dict):
            task.rendered = row.rendered_fields
    return list(tasks.values())


def _parse_map_index(value: str | None) -> int | None:
    # The UI fills {MAP_INDEX} only on a mapped instance's page; elsewhere the literal stays.
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _is_position(value: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() refuses or reads as
    # another number; and a bounded length, since int() refuses a string of over 4300 digits.
    return value.isascii() and value.isdigit() and len(value) <= _MAX_POSITION_DIGITS


def _run_or_404(session: Any, dag_id: str, run_id: str) -> list[TaskRecord]:
    records = load_run(session, dag_id, run_id)
    if not records:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such DAG run, or it has no task instances")
    return records


def _page(request: Request, kind: str, data_path: str, **context: str) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    attributes = " ".join(
        f'data-{name.replace("_", "-")}="{html.escape(value, quote=True)}"'
        for name, value in {
            "view": kind,
            "api": f"{root}{data_path}",
            "base": root,
            "ui": _ui_root(request),
            **context,
        }.items()
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pixazo</title>
<link rel="stylesheet" href="{html.escape(root)}/static/pixazo.css">
</head><body {attributes}>
<main id="pixazo" aria-busy="true"><p class="muted">Loading…</p></main>
<script src="{html.escape(root)}/static/pixazo.js"></script>
</body></html>"""
    return HTMLResponse(body, headers=_PRIVATE)


def _ui_root(request: Request) -> str:
    # The plugin is mounted at <base>/pixazo; the UI lives at <base>/.
    root = request.scope.get("root_path", "").rstrip("/")
    return root.rsplit("/", 1)[0] if root else ""


def create_app() -> FastAPI:
    """The app Airflow mounts at ``/pixazo`` (see :class:`~airflow_provider_pixazo.plugins.plugin.PixazoUIPlugin`)."""
    app = FastAPI(title="Pixazo view", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        body = resources.files("airflow_provider_pixazo.plugins").joinpath("static", name).read_bytes()
        return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=300"})

    @app.get("/ui/dags/{dag_id}/runs/{run_id}", dependencies=READ_ACCESS, response_class=HTMLResponse)
    def run_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        return _page(request, "run", f"/api/dags/{dag_id}/runs/{run_id}", dag_id=dag_id, run_id=run_id)

    @app.get("/ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", dependencies=READ_ACCESS, response_class=HTMLResponse)
    def task_page(
        request: Request, dag_id: str, run_id: str, task_id: str, map_index: Annotated[str | None, Query()] = None
    ) -> HTMLResponse:
        index = _parse_map_index(map_index)
        path = f"/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}"
        return _page(
            request,
            "task",
            path if index is None else f"{path}?map_index={index}",
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
        )

    @app.get("/api/dags/{dag_id}/runs/{run_id}", dependencies=READ_ACCESS)
    def run_data(dag_id: str, run_id: str, session: SessionDep) -> Response:
        view = build_run_view(dag_id, run_id, _run_or_404(session, dag_id, run_id))
        return Response(json.dumps(view, default=str), media_type="application/json", headers=_PRIVATE)

    @app.get("/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", dependencies=READ_ACCESS)
    def task_data(
        dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: Annotated[str | None, Query()] = None
    ) -> Response:
        run_view = build_run_view(dag_id, run_id, _run_or_404(session, dag_id, run_id))
        view = build_task_view(run_view, task_id, _parse_map_index(map_index))
        return Response(json.dumps(view, default=str), media_type="application/json", headers=_PRIVATE)

    @app.get("/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/stored/{position}", dependencies=READ_ACCESS)
    def stored_file(
        dag_id: str,
        run_id: str,
        task_id: str,
        position: str,
        session: SessionDep,
        map_index: Annotated[str | None, Query()] = None,
    ) -> ClosingStreamingResponse:
        index = _parse_map_index(map_index)
        stored = (
            find_stored(session, dag_id, run_id, task_id, -1 if index is None else index, int(position))
            if _is_position(position)
            else None
        )
        # The metadata DB is done with; do not hold its transaction (a lock, on sqlite) while bytes stream.
        session.close()
        opened = open_stored(stored) if stored is not None else None
        if opened is None:  # no such record or file, or it is gone or unreadable: nothing more is said
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        chunks, media_type, size = opened
        headers = dict(_IMAGE)
        if size is not None:
            headers["Content-Length"] = str(size)
        return ClosingStreamingResponse(chunks, media_type=media_type, headers=headers)

    # Imported here: the batch routes reuse this module's access checks and responses.
    from airflow_provider_pixazo.plugins.batch import batch_router
    from airflow_provider_pixazo.plugins.manifest import ManifestCache, warm_up_object_storage

    app.state.batch_manifests = ManifestCache()
    app.include_router(batch_router(app.state.batch_manifests))
    global _warming
    if _warming is None:
        _warming = threading.Thread(target=warm_up_object_storage, name="pixazo-view-warm-up", daemon=True)
        _warming.start()
    return app
