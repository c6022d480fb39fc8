"""
Serving the copies a transfer stored: the bytes behind one entry of a task instance's ``pixazo_stored``.

The client names a task instance and a position in its record, never a path or a URI, so nothing a
browser sends can point the api-server at another object (no path traversal, no open proxy).

The record itself is not trusted either: it is an XCom, and Airflow's REST API lets anyone with XCom
edit rights on the DAG rewrite it. So a URI is served only if it lies under the destination the
transfer wrote to, as the worker rendered it into the task instance's rendered fields (which no API
edits): same scheme, same bucket or container, inside the destination's prefix, every segment a plain
name (no ``..``, ``.`` or empty segment, no ``%``, backslash, ``?``, ``#`` or control character), so
``s3://bucket/images-evil/x.png`` is not under ``s3://bucket/images``. The destination is resolved as the
transfer resolves it; a bare relative or ``~`` path (resolved against the worker's directory and user) is
not served. Only object-store schemes are read (never http, ftp...), and only bytes that start as a PNG,
JPEG or WebP, so even a stored object that is no image yields a 404, not its content.

The object is read through ``ObjectStoragePath`` with the connection the transfer wrote with: its
rendered ``dest_conn_id`` (or one named in the destination URI), looked up by the api-server in
Airflow's connections; an id that names none is refused, never replaced by default credentials. A
remote object (anything but ``file://``) is read only with such a connection: when the transfer had
none, the api-server does not lend it its own ambient identity (instance role, ADC...), and the view
falls back to the CDN URL. Rendered fields are kept for the last
``[core] max_num_rendered_ti_fields_per_task`` runs of a task; older runs' copies are not served.
Reading streams in fixed chunks, so serving an image costs constant memory whatever its size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.xcom import XComModel
from sqlalchemy import select

from airflow_provider_pixazo.plugins.records import STORED_XCOM_KEY, xcom_value

__all__ = [
    "CHUNK_BYTES",
    "LOCAL_SCHEMES",
    "READABLE_SCHEMES",
    "READ_BLOCK_BYTES",
    "StoredObject",
    "destination_root",
    "find_stored",
    "open_stored",
    "relative_under",
]

log = logging.getLogger(__name__)

#: How much of an object is handed to the response at a time.
CHUNK_BYTES = 64 * 1024
#: How much an object store's file reads ahead. s3fs's default, 50 MiB, would hold a whole image in
#: memory on the first read; this bounds what one stream holds whatever the object's size.
READ_BLOCK_BYTES = 1024 * 1024
#: Schemes read from the api-server's own disk: no credentials involved.
LOCAL_SCHEMES = frozenset({"file"})
#: Object stores the view reads from. Not http(s), ftp and the like: the api-server is no proxy.
READABLE_SCHEMES = frozenset({"file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs"})


@dataclass(frozen=True)
class StoredObject:
    """One file a transfer recorded: where it is and the connection to read it with."""

    uri: str
    conn_id: str | None
    #: The destination it must stay under once links are followed (local files only; None: not checked).
    root: str | None = None


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
    record = xcom_value(raw)
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
    if not isinstance(rendered, dict):
        log.info("Pixazo view: %s.%s[%s] has no rendered destination; not serving", dag_id, task_id, map_index)
        return None
    root = destination_root(rendered.get("destination"), rendered.get("dest_conn_id"))
    if root is None:
        return None
    prefix, conn_id = root
    if relative_under(uri, prefix) is None:
        log.warning(
            "Pixazo view: %s.%s[%s] records %r, which is not under its destination %r; not serving it",
            dag_id,
            task_id,
            map_index,
            uri,
            prefix,
        )
        return None
    return StoredObject(uri=uri, conn_id=conn_id, root=prefix)


def destination_root(destination: Any, dest_conn_id: Any) -> tuple[str, str | None] | None:
    """
    The transfer's destination as it wrote its URIs (``protocol://path``), with its connection id; or None.

    Resolved as :meth:`PixazoToObjectStorageOperator.execute` resolves it, from the rendered fields: a
    URI, an absolute local path, or a serialised ``ObjectStoragePath`` (``{"path": ..., "conn_id": ...}``).
    None when it cannot be trusted to mean here what it meant on the worker (a relative or ``~`` path),
    when it is no valid destination (truncated or redacted, say), when its connection does not exist,
    or when it is remote and has no connection (the api-server's ambient credentials are never used).

    :param destination: the rendered ``destination`` field.
    :param dest_conn_id: the rendered ``dest_conn_id`` field.
    """
    from airflow_provider_pixazo.transfers._destination import resolve_destination, uri_of

    if isinstance(destination, dict):  # an ObjectStoragePath, serialised with its connection in the URI
        destination = destination.get("path")
    if not isinstance(destination, str) or not (text := destination.strip()):
        return None
    if dest_conn_id is not None and not isinstance(dest_conn_id, str):
        return None
    if "://" not in text and not os.path.isabs(text):
        log.info("Pixazo view: destination %r is relative to the worker; not serving its copies", text)
        return None
    try:
        root = resolve_destination(text, dest_conn_id)
    except Exception as err:  # not a destination the transfer could have written to: nothing is served
        log.info("Pixazo view: destination %r cannot be resolved here: %s", text, type(err).__name__)
        return None
    scheme = root.protocol if isinstance(root.protocol, str) else ""
    if scheme in LOCAL_SCHEMES and not _plain_absolute(text, uri_of(root)):
        log.info("Pixazo view: destination %r is not a plain absolute path; not serving its copies", text)
        return None
    if scheme not in LOCAL_SCHEMES and not root.conn_id:
        log.info("Pixazo view: not reading %s copies without a dest_conn_id (no ambient credentials)", scheme)
        return None
    return uri_of(root), root.conn_id


def _plain_absolute(text: str, resolved: str) -> bool:
    """
    True if a local destination is ``/path`` or ``file:///path`` and resolved to exactly that path.

    ``//data``, ``file://localhost/data``, ``file://./data`` or ``file://~/x`` resolve against the
    process's own directory or home, which on the api-server is not where the worker wrote.
    """
    raw = text[len("file://") :] if text.lower().startswith("file://") else text
    if not raw.startswith("/") or raw.startswith("//"):
        return False
    return resolved.rstrip("/") == ("file://" + os.path.normpath(raw)).rstrip("/")


def _inside_after_links(uri: str, root: str) -> bool:
    """True if local ``uri`` is still under ``root`` once every symbolic link on the way is followed."""
    target = os.path.realpath(uri[len("file://") :])
    base = os.path.realpath(root[len("file://") :])
    return os.path.commonpath([target, base]) == base


#: Never in a segment of a served URI: escapes some layer may decode, separators and queries.
_UNSAFE = frozenset("%\\?#") | frozenset(chr(c) for c in (*range(0x20), 0x7F))


def relative_under(uri: str, prefix: str) -> str | None:
    """
    ``uri``'s path below ``prefix`` if it is one, made only of plain segments; else None.

    A plain string comparison after the prefix's separator, so ``s3://b/images-evil/x`` is not under
    ``s3://b/images``, another scheme or bucket never is, and nothing is normalised that a file system
    could later read differently: a ``..``, ``.`` or empty segment, or a ``%``, backslash, ``?``, ``#`` or
    control character, refuses the URI instead.

    :param uri: a URI from a ``pixazo_stored`` record.
    :param prefix: the destination, as :func:`destination_root` returns it.
    """
    base = prefix if prefix.endswith("/") else prefix + "/"
    if not uri.startswith(base):
        return None
    rest = uri[len(base) :]
    # "::" chains filesystems in fsspec; a lone ":" may come from a templated path (``{{ ts }}``).
    if not rest or "::" in rest or any(char in _UNSAFE for char in rest):
        return None
    if any(segment in ("", ".", "..") for segment in rest.split("/")):
        return None
    return rest


def open_stored(stored: StoredObject) -> tuple[Iterator[bytes], str, int | None] | None:
    """
    Open a recorded object for streaming: ``(chunks, media type, size)``, or None when it cannot be served.

    None covers every way it can fail (a scheme not read here, no such connection, a remote object
    and no connection to read it with (never the api-server's own credentials), a deleted
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
        if conn_id is None and scheme not in LOCAL_SCHEMES:
            # No connection: the store's default chain would be the api-server's own identity.
            raise PermissionError(f"no connection to read {scheme}:// with")
        if scheme in LOCAL_SCHEMES and stored.root is not None and not _inside_after_links(stored.uri, stored.root):
            # A link under the destination that leads out of it (a shared folder others can write to).
            raise PermissionError("a symbolic link leads outside the destination")
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
