"""
Serving the copies a transfer stored: the bytes behind one entry of a task instance's ``pixazo_stored``.

The client names a task instance and a position in its record, never a path or a URI, so nothing a
browser sends can point the api-server at another object (no path traversal, no open proxy). What
the record itself may point at is narrowed too, because a task's XCom is written by DAG code: only
object-store schemes (never http, ftp...), and only bytes that start as a PNG, JPEG or WebP, so a
record aimed at a config file or a secret on the api-server yields a 404, not its content.

The object is read through ``ObjectStoragePath`` with the connection the transfer wrote with: its
rendered ``dest_conn_id`` (the record holds no connection id), looked up by the api-server in
Airflow's connections; an id that names none is refused, never replaced by default credentials.
Reading streams in fixed chunks, so serving an image costs constant memory whatever its size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.xcom import XComModel
from sqlalchemy import select

from airflow_provider_pixazo.plugins.records import STORED_XCOM_KEY

__all__ = ["CHUNK_BYTES", "READABLE_SCHEMES", "READ_BLOCK_BYTES", "StoredObject", "find_stored", "open_stored"]

log = logging.getLogger(__name__)

#: How much of an object is handed to the response at a time.
CHUNK_BYTES = 64 * 1024
#: How much an object store's file reads ahead. s3fs's default, 50 MiB, would hold a whole image in
#: memory on the first read; this bounds what one stream holds whatever the object's size.
READ_BLOCK_BYTES = 1024 * 1024
#: Object stores the view reads from. Not http(s), ftp and the like: the api-server is no proxy.
READABLE_SCHEMES = frozenset({"file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs"})


@dataclass(frozen=True)
class StoredObject:
    """One file a transfer recorded: where it is and the connection to read it with."""

    uri: str
    conn_id: str | None


def _decoded(raw: Any) -> Any:
    if isinstance(raw, str | bytes):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


def find_stored(
    session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, position: int
) -> StoredObject | None:
    """
    The ``position``-th file in the task instance's ``pixazo_stored`` record, or None.

    :param session: a SQLAlchemy session on Airflow's metadata database.
    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param task_id: the transfer task.
    :param map_index: its mapped instance (-1 when not mapped).
    :param position: the file's position in the record's ``files`` (0-based).
    """
    raw = session.execute(
        select(XComModel.value).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key == STORED_XCOM_KEY,
        )
    ).scalar()
    record = _decoded(raw)
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, list) or not 0 <= position < len(files):
        return None
    entry = files[position]
    uri = entry.get("uri") if isinstance(entry, dict) else None
    if not isinstance(uri, str) or not uri:
        return None
    rendered = session.execute(
        select(RenderedTaskInstanceFields.rendered_fields).where(
            RenderedTaskInstanceFields.dag_id == dag_id,
            RenderedTaskInstanceFields.run_id == run_id,
            RenderedTaskInstanceFields.task_id == task_id,
            RenderedTaskInstanceFields.map_index == map_index,
        )
    ).scalar()
    conn_id = rendered.get("dest_conn_id") if isinstance(rendered, dict) else None
    return StoredObject(uri=uri, conn_id=conn_id if isinstance(conn_id, str) else None)


def open_stored(stored: StoredObject) -> tuple[Iterator[bytes], str, int | None] | None:
    """
    Open a recorded object for streaming: ``(chunks, media type, size)``, or None when it cannot be served.

    None covers every way it can fail (a scheme not read here, no such connection, a deleted
    object, bytes that are not a PNG, JPEG or WebP); the reason is logged on the api-server only.
    The returned iterator closes the object when it ends or is closed.
    """
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_pixazo.media import SNIFF_BYTES, sniff_media_type
    from airflow_provider_pixazo.storage import require_storage_connection

    scheme = stored.uri.split("://", 1)[0].lower() if "://" in stored.uri else ""
    if scheme not in READABLE_SCHEMES:
        log.warning("Pixazo view: not serving a stored object with scheme %r", scheme)
        return None
    handle = None
    try:
        # As the transfer does: "" or "None" means none, and a named connection that is gone is an
        # error, never a fall-back to whatever credentials the api-server has.
        conn_id = require_storage_connection("dest_conn_id", stored.conn_id)
        path = ObjectStoragePath(stored.uri, conn_id=conn_id) if conn_id else ObjectStoragePath(stored.uri)
        handle = path.open("rb", block_size=READ_BLOCK_BYTES)
        head = handle.read(SNIFF_BYTES)
        size = getattr(handle, "size", None)
    except Exception as err:  # any failure to read is a 404 to the browser; the cause stays server-side
        if handle is not None:
            handle.close()
        log.info("Pixazo view: stored object %s cannot be read: %s", stored.uri, type(err).__name__)
        return None
    media_type = sniff_media_type(head)
    if media_type is None:
        handle.close()
        log.warning("Pixazo view: stored object %s is not a PNG, JPEG or WebP image; not serving it", stored.uri)
        return None
    return _chunks(handle, head), media_type, size if isinstance(size, int) else None


def _chunks(handle: Any, head: bytes) -> Iterator[bytes]:
    try:
        yield head
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()
