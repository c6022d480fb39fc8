"""
A batch task's manifest, as the batch gallery reads it: found, checked, parsed once, paged.

A batch task (``PixazoBatchGenerateOperator``) pushes ``pixazo_batch`` (whether it succeeds or fails)
and returns (when it succeeds) ``{"manifest": <uri>, "counts": {...}}``, and writes that
``manifest.jsonl`` under its ``destination``: one JSON object a line per item (``index``,
``key``, ``prompt``, ``request_id``, ``status``, ``error``, ``files``: each ``uri``, ``size``,
``sha256``); the contract is in :mod:`airflow_provider_pixazo.operators.batch`'s docstring. The XCom
only says where the manifest is; the view pages through the file.

Trusted as :mod:`.stored` trusts a ``pixazo_stored`` record, that is not at all: Airflow's REST API
lets anyone with XCom edit rights rewrite the XCom, so its manifest URI is read only if it is a
``.jsonl`` object under the destination the worker rendered (the same plain-segment check, scheme,
bucket and prefix), with the rendered ``dest_conn_id`` (a remote store is never read with the
api-server's own identity), and on local disk only if no link on the way leads out. Every image URI
the manifest lists is checked against that destination again before it is served; the browser names
an item by its ``index`` and a file by its position in that item, never by a path.

A manifest is parsed once per version (its ``info()``: size, mtime and inode on local disk, ETag and
last-modified on an object store), streamed line by line in bounded memory, and kept in a small LRU
cache, so the next page, the filter and every thumbnail cost one ``info()`` (a HEAD on S3), not another
read. The cache keeps what a page shows: prompts and errors cut to a few hundred characters (a prompt
may hold 32,000), so a 1,000-item batch takes well under a megabyte.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.xcom import XComModel
from sqlalchemy import select

from airflow_provider_pixazo.plugins.records import BATCH_XCOM_KEY, xcom_value
from airflow_provider_pixazo.plugins.stored import (
    LOCAL_SCHEMES,
    READ_BLOCK_BYTES,
    READABLE_SCHEMES,
    StoredObject,
    _inside_after_links,
    destination_root,
    relative_under,
)

__all__ = [
    "COMPLETED",
    "DEFAULT_PER_PAGE",
    "INCOMPLETE",
    "MANIFEST_MAX_BYTES",
    "MAX_PER_PAGE",
    "BatchItem",
    "BatchSource",
    "Manifest",
    "ManifestCache",
    "ManifestUnavailable",
    "find_batch",
    "item_file",
    "page_of",
    "parse_manifest",
    "warm_up_object_storage",
]

log = logging.getLogger(__name__)

#: The one outcome that means Pixazo made an item's images (compared without case: the batch writes
#: ``completed``, Pixazo's own status is ``COMPLETED``).
COMPLETED = "completed"
#: The filter that keeps the items that did not complete: any other status, and a completed item
#: whose images could not be stored (its ``error`` says why): either way its images are not there.
INCOMPLETE = "incomplete"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
#: A manifest larger than this is not shown: reading it would hold an api-server worker for seconds.
MANIFEST_MAX_BYTES = 256 * 1024 * 1024
#: One item's line: a 32,000-character prompt escaped as ``\\uXXXX`` is 192 KB; far beyond is no item.
LINE_MAX_BYTES = 1024 * 1024
#: What the cache keeps of a prompt and of an error (the page truncates them further).
PROMPT_CHARS = 400
ERROR_CHARS = 1000
#: Files listed per item (a request makes at most a handful of images).
MAX_FILES = 16
#: Manifests kept parsed; a 1,000-item one takes about 0.5 MB.
CACHED_MANIFESTS = 16


#: Where a batch task names its manifest, in order of preference.
_SUMMARY_KEYS = (BATCH_XCOM_KEY, "return_value")


class ManifestUnavailable(Exception):
    """The manifest cannot be read or shown (gone, too large, unreadable); the reason stays in the log."""


@dataclass(frozen=True)
class BatchFile:
    """One image an item stored, as its manifest line lists it."""

    uri: str | None
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class BatchItem:
    """One line of a manifest, as the page shows it (prompt and error cut; their full length kept)."""

    line: int
    index: int | None
    key: str | None
    prompt: str | None
    prompt_chars: int
    request_id: str | None
    status: str
    error: str | None
    files: tuple[BatchFile, ...]

    @property
    def complete(self) -> bool:
        """Completed, and nothing went wrong storing its images."""
        return self.status.lower() == COMPLETED and self.error is None

    def to_json(self) -> dict[str, Any]:
        """The item for the page; each file carries its position, which the image route takes."""
        return {
            "index": self.index,
            "key": self.key,
            "prompt": self.prompt,
            "prompt_chars": self.prompt_chars,
            "request_id": self.request_id,
            "status": self.status,
            "error": self.error,
            "files": [
                {"position": position, "uri": f.uri, "size": f.size, "sha256": f.sha256}
                for position, f in enumerate(self.files)
            ],
        }


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: its items in file order, the not-completed ones (see :data:`INCOMPLETE`), counts."""

    items: tuple[BatchItem, ...]
    incomplete: tuple[BatchItem, ...]
    by_index: Mapping[int, BatchItem]
    counts: Mapping[str, int]
    #: Line numbers (1-based) that were no JSON object, or too long: shown as a warning, not hidden.
    unreadable_lines: tuple[int, ...]


@dataclass(frozen=True)
class BatchSource:
    """A batch task instance's manifest, checked to lie under its destination, and what its XCom counted."""

    manifest: StoredObject
    recorded_counts: Mapping[str, Any]


def find_batch(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> BatchSource | None:
    """
    The manifest the task instance's ``pixazo_batch`` (else ``return_value``) names, if under its destination.

    :param session: a SQLAlchemy session on Airflow's metadata database.
    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param task_id: the batch task.
    :param map_index: its mapped instance (-1 when not mapped).
    :return: None when there is no such XCom (the task has not got that far), it names no manifest, or the
        manifest is not a ``.jsonl`` object under the destination (see the module's docstring).
    """
    rows = session.execute(
        select(XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key.in_(_SUMMARY_KEYS),
        )
    ).all()
    recorded = {row.key: xcom_value(row.value) for row in rows}
    # The summary first: it is pushed when the task fails too, and a failed batch is the one to look at.
    summary = next((recorded[key] for key in _SUMMARY_KEYS if isinstance(recorded.get(key), dict)), None)
    uri = summary.get("manifest") if summary is not None else None
    if summary is None or not isinstance(uri, str) or not uri:
        return None
    counts = summary.get("counts")
    rendered = session.execute(
        select(RenderedTaskInstanceFields.rendered_fields).where(
            RenderedTaskInstanceFields.dag_id == dag_id,
            RenderedTaskInstanceFields.run_id == run_id,
            RenderedTaskInstanceFields.task_id == task_id,
            RenderedTaskInstanceFields.map_index == map_index,
        )
    ).scalar()
    if not isinstance(rendered, dict):
        log.info(
            "Pixazo view: %s.%s[%s] has no rendered destination; not reading its manifest", dag_id, task_id, map_index
        )
        return None
    root = destination_root(rendered.get("destination"), rendered.get("dest_conn_id"))
    if root is None:
        return None
    prefix, conn_id = root
    relative = relative_under(uri, prefix)
    if relative is None or not relative.endswith(".jsonl"):
        log.warning(
            "Pixazo view: %s.%s[%s] names manifest %r, which is no .jsonl under its destination %r; not reading it",
            dag_id,
            task_id,
            map_index,
            uri,
            prefix,
        )
        return None
    return BatchSource(
        manifest=StoredObject(uri=uri, conn_id=conn_id, root=prefix),
        recorded_counts=counts if isinstance(counts, dict) else {},
    )


def item_file(source: BatchSource, manifest: Manifest, index: int, position: int) -> StoredObject | None:
    """
    The ``position``-th file of the item whose ``index`` is ``index``, if it lies under the destination.

    :param source: where the manifest was found (its destination is the bound).
    :param manifest: the parsed manifest.
    :param index: the item's ``index``.
    :param position: the file's place in the item's ``files`` (0-based).
    """
    item = manifest.by_index.get(index)
    if item is None or not 0 <= position < len(item.files):
        return None
    uri = item.files[position].uri
    root = source.manifest.root
    if uri is None or root is None or relative_under(uri, root) is None:
        log.warning("Pixazo view: batch item %s lists %r, which is not under %r; not serving it", index, uri, root)
        return None
    return StoredObject(uri=uri, conn_id=source.manifest.conn_id, root=root)


def page_of(manifest: Manifest, page: int, per_page: int, status: str | None) -> dict[str, Any]:
    """
    One page of the manifest's items, with the counts of the whole batch.

    :param manifest: the parsed manifest.
    :param page: 1-based; past the last page, no items.
    :param per_page: items a page.
    :param status: None for every item, :data:`INCOMPLETE` for those not completed, else one status
        (without case).
    """
    if status is None:
        chosen: tuple[BatchItem, ...] = manifest.items
    elif status == INCOMPLETE:
        chosen = manifest.incomplete
    else:
        wanted = status.lower()
        chosen = tuple(item for item in manifest.items if item.status.lower() == wanted)
    start = (page - 1) * per_page
    return {
        "total": len(manifest.items),
        "counts": dict(manifest.counts),
        "unreadable_lines": list(manifest.unreadable_lines[:20]),
        "unreadable_count": len(manifest.unreadable_lines),
        "status": status,
        "matching": len(chosen),
        "page": page,
        "per_page": per_page,
        "pages": max(1, -(-len(chosen) // per_page)),
        "items": [item.to_json() for item in chosen[start : start + per_page]],
    }


class ManifestCache:
    """
    Parsed manifests by URI and connection, each kept while its ``info()`` is unchanged (LRU, bounded).

    Access is checked before the cache is asked (the route's dependencies, then :func:`find_batch`), so
    two task instances naming one manifest may share its entry. Two first requests at once may both
    parse it; the later one's result is kept: cheaper than making every reader wait on a lock.
    """

    def __init__(self, max_entries: int = CACHED_MANIFESTS) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str | None], tuple[str, Manifest]] = OrderedDict()
        self._lock = threading.Lock()
        #: How many times a manifest was read and parsed (the tests check page 2 reads nothing).
        self.reads = 0

    def get(self, source: BatchSource) -> Manifest:
        """
        The parsed manifest, read again only when the object changed.

        :raises ManifestUnavailable: it cannot be read (gone, a link out, no connection, too large).
        """
        key = (source.manifest.uri, source.manifest.conn_id)
        path = _open_path(source.manifest)
        try:
            # An object store's file system caches listings; the version must be the object's own.
            path.fs.invalidate_cache(path.path)
            info = path.fs.info(path.path)
        except Exception as err:
            raise ManifestUnavailable(f"cannot stat {source.manifest.uri}: {type(err).__name__}") from err
        version = repr(sorted((str(k), str(v)) for k, v in info.items()))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == version:
                self._entries.move_to_end(key)
                return hit[1]
        size = info.get("size")
        if isinstance(size, int) and size > MANIFEST_MAX_BYTES:
            raise ManifestUnavailable(f"{source.manifest.uri} is {size} bytes, over {MANIFEST_MAX_BYTES}")
        try:
            with path.open("rb", block_size=READ_BLOCK_BYTES) as handle:
                manifest = parse_manifest(handle)
        except ManifestUnavailable:
            raise
        except Exception as err:
            raise ManifestUnavailable(f"cannot read {source.manifest.uri}: {type(err).__name__}") from err
        with self._lock:
            self.reads += 1
            self._entries[key] = (version, manifest)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return manifest


def warm_up_object_storage() -> None:
    """
    Register Airflow's object-store file systems now, off any request.

    The first ``ObjectStoragePath.fs`` in a process imports every installed provider's file system
    (the amazon provider's pulls in boto3): seconds on a small machine, which would otherwise fall on
    the first gallery page or image someone opens after the api-server starts. ``has_fs`` registers
    them whatever store is already attached: a local path's ``.fs`` may not, once
    :func:`~airflow_provider_pixazo.storage.attach_local_filesystem` has run.
    """
    try:
        from airflow.sdk.io import has_fs

        has_fs("file")
    except Exception as err:  # the routes then pay it themselves, and report what fails there
        log.info("Pixazo view: object storage not warmed up: %s", type(err).__name__)


def _open_path(manifest: StoredObject) -> Any:
    """An ``ObjectStoragePath`` for the manifest, on the same terms as :func:`.stored.open_stored`."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_pixazo.storage import require_storage_connection

    scheme = manifest.uri.split("://", 1)[0].lower() if "://" in manifest.uri else ""
    if scheme not in READABLE_SCHEMES:
        raise ManifestUnavailable(f"scheme {scheme!r} is not read")
    try:
        conn_id = require_storage_connection("dest_conn_id", manifest.conn_id)
    except Exception as err:
        raise ManifestUnavailable(f"connection {manifest.conn_id!r}: {type(err).__name__}") from err
    if conn_id is None and scheme not in LOCAL_SCHEMES:
        raise ManifestUnavailable(f"no connection to read {scheme}:// with")
    if scheme in LOCAL_SCHEMES and manifest.root is not None and not _inside_after_links(manifest.uri, manifest.root):
        raise ManifestUnavailable("a symbolic link leads outside the destination")
    return ObjectStoragePath(manifest.uri, conn_id=conn_id) if conn_id else ObjectStoragePath(manifest.uri)


def parse_manifest(handle: Any) -> Manifest:
    """
    Parse a manifest from a binary file, one line at a time, never holding more than one line.

    A line that is no JSON object, or longer than :data:`LINE_MAX_BYTES`, is counted by its number,
    not guessed at; blank lines are skipped.

    :param handle: an open binary file (``read(size)``).
    :raises ManifestUnavailable: over :data:`MANIFEST_MAX_BYTES`.
    """
    items: list[BatchItem] = []
    unreadable: list[int] = []
    for number, line in _lines(handle):
        if line is None:
            unreadable.append(number)
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            unreadable.append(number)
            continue
        if not isinstance(data, dict):
            unreadable.append(number)
            continue
        items.append(_item(number, data))
    by_index: dict[int, BatchItem] = {}
    counts: dict[str, int] = {}
    for item in items:
        if item.index is not None:
            by_index.setdefault(item.index, item)
        counts[item.status] = counts.get(item.status, 0) + 1
    # Completed first, then the rest by name: the order the page shows them in.
    ordered = dict(sorted(counts.items(), key=lambda kv: (kv[0].lower() != COMPLETED, kv[0])))
    return Manifest(
        items=tuple(items),
        incomplete=tuple(item for item in items if not item.complete),
        by_index=by_index,
        counts=ordered,
        unreadable_lines=tuple(unreadable),
    )


def _lines(handle: Any) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` for each line; ``None`` for a line over :data:`LINE_MAX_BYTES` (dropped)."""
    number, buffer, total, too_long = 1, b"", 0, False
    while block := handle.read(READ_BLOCK_BYTES):
        total += len(block)
        if total > MANIFEST_MAX_BYTES:
            raise ManifestUnavailable(f"over {MANIFEST_MAX_BYTES} bytes")
        buffer += block
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield number, None if too_long else line
            number, too_long = number + 1, False
        if len(buffer) > LINE_MAX_BYTES:
            buffer, too_long = b"", True
    if buffer or too_long:
        yield number, None if too_long else buffer


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit] if limit is not None else text


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _item(line: int, data: Mapping[str, Any]) -> BatchItem:
    prompt = data.get("prompt")
    prompt_text = prompt if isinstance(prompt, str) else _text(prompt)
    files = data.get("files")
    return BatchItem(
        line=line,
        index=_int(data.get("index")),
        key=_text(data.get("key")),
        prompt=prompt_text[:PROMPT_CHARS] if prompt_text else None,
        prompt_chars=len(prompt_text or ""),
        request_id=_text(data.get("request_id")),
        status=_text(data.get("status"), 40) or "unknown",
        error=_text(data.get("error"), ERROR_CHARS),
        files=tuple(
            BatchFile(uri=_text(f.get("uri")), size=_int(f.get("size")), sha256=_text(f.get("sha256"), 64))
            for f in (files if isinstance(files, list) else [])[:MAX_FILES]
            if isinstance(f, dict)
        ),
    )
