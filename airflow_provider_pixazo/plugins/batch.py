"""
The batch gallery's routes: one page of a batch task's items, and each item's stored images.

``GET .../tasks/{task_id}/batch?page=&per_page=&status=[&map_index=]`` answers one page of the task
instance's manifest (see :mod:`.manifest`) with the counts of the whole batch; ``status=incomplete``
keeps the items that did not complete, any other value one status. ``GET .../tasks/{task_id}/batch/
items/{index}/files/{position}`` streams the ``position``-th image of the item whose ``index`` is
``index``, as the stored-copy route streams a transfer's (no path from the browser; the URI must lie
under the task's destination; only PNG, JPEG or WebP bytes). Both take the same access checks as every
other route of the view. Errors say only that there is nothing to show; the reason is logged.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from airflow.api_fastapi.common.db.common import SessionDep
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response

from airflow_provider_pixazo.plugins.app import (
    _IMAGE,
    _PRIVATE,
    READ_ACCESS,
    ClosingStreamingResponse,
    _is_position,
    _parse_map_index,
)
from airflow_provider_pixazo.plugins.manifest import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    BatchSource,
    Manifest,
    ManifestCache,
    ManifestUnavailable,
    find_batch,
    item_file,
    page_of,
)
from airflow_provider_pixazo.plugins.stored import open_stored

__all__ = ["batch_router"]

log = logging.getLogger(__name__)

_TASK = "/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/batch"
#: Far past any real page; bounds the arithmetic on what a browser sends.
_MAX_PAGE = 10**6
#: A status is a short word (COMPLETED, FAILED, timed_out...); longer is no status.
_MAX_STATUS_CHARS = 40
_NO_MANIFEST = "No batch manifest to show for this task instance"


def _load(
    cache: ManifestCache, session: Any, dag_id: str, run_id: str, task_id: str, map_index: str | None
) -> tuple[BatchSource, Manifest]:
    index = _parse_map_index(map_index)
    source = find_batch(session, dag_id, run_id, task_id, -1 if index is None else index)
    # The metadata DB is done with; do not hold its transaction (a lock, on sqlite) while a store is read.
    session.close()
    if source is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NO_MANIFEST)
    try:
        return source, cache.get(source)
    except ManifestUnavailable as err:
        log.info("Pixazo view: %s.%s[%s]: manifest not shown: %s", dag_id, task_id, map_index, err)
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NO_MANIFEST) from None


def batch_router(cache: ManifestCache) -> APIRouter:
    """
    The two routes, reading manifests through ``cache``.

    :param cache: parsed manifests, shared by every request of the app.
    """
    router = APIRouter()

    @router.get(_TASK, dependencies=READ_ACCESS)
    def batch_page(
        dag_id: str,
        run_id: str,
        task_id: str,
        session: SessionDep,
        map_index: Annotated[str | None, Query()] = None,
        page: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
        status: Annotated[str | None, Query(max_length=_MAX_STATUS_CHARS)] = None,
    ) -> Response:
        source, manifest = _load(cache, session, dag_id, run_id, task_id, map_index)
        view = page_of(manifest, page, per_page, status or None)
        view["recorded_counts"] = dict(source.recorded_counts)
        view["manifest"] = source.manifest.uri
        return Response(json.dumps(view, default=str), media_type="application/json", headers=_PRIVATE)

    @router.get(_TASK + "/items/{index}/files/{position}", dependencies=READ_ACCESS)
    def batch_file(
        dag_id: str,
        run_id: str,
        task_id: str,
        index: str,
        position: str,
        session: SessionDep,
        map_index: Annotated[str | None, Query()] = None,
    ) -> ClosingStreamingResponse:
        if not (_is_position(index) and _is_position(position)):
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        source, manifest = _load(cache, session, dag_id, run_id, task_id, map_index)
        stored = item_file(source, manifest, int(index), int(position))
        opened = open_stored(stored) if stored is not None else None
        if opened is None:  # no such item or file, not under the destination, gone, or no image
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        chunks, media_type, size = opened
        headers = dict(_IMAGE)
        if size is not None:
            headers["Content-Length"] = str(size)
        return ClosingStreamingResponse(chunks, media_type=media_type, headers=headers)

    return router
