"""
Fetching a request's images: concurrent, streamed, checked, each staged and published on its own.

Each download streams the media URL (no API key: the hook's media client), checks the magic bytes
against the media type Pixazo announced and the length against ``Content-Length``, and hands the
bytes to a :class:`~airflow_provider_pixazo.transfers._staging.StagedFile`. The first failure stops
the others at their next chunk. Not for choosing paths (``_destination``) nor for the sidecar
(``_provenance``).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from airflow_provider_pixazo.exceptions import PixazoDownloadError
from airflow_provider_pixazo.media import EXTENSIONS, SNIFF_BYTES, sniff_media_type
from airflow_provider_pixazo.transfers._destination import render_path, uri_of
from airflow_provider_pixazo.transfers._staging import CHUNK_SIZE, StagedFile

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_pixazo.hooks.pixazo import PixazoHook
    from airflow_provider_pixazo.models import RequestResult

__all__ = ["FileRecord", "download_all", "strip_query"]

#: Bodies at least this large are read from the connection directly after their first piece (see _Body).
DIRECT_READ_MIN_BYTES = 8 * 1024 * 1024
#: The most asked of the socket at once (httpcore asks 64 KiB).
DIRECT_READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class FileRecord:
    """One image as published: where, what, and from which URL."""

    index: int
    uri: str
    sha256: str
    size: int
    media_type: str
    source_url: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's entry for this file (the URL without its signature)."""
        entry: dict[str, Any] = {name: getattr(self, name) for name in ("index", "uri", "sha256", "size", "media_type")}
        entry["source_url"] = strip_query(self.source_url)
        entry["source_url_host"] = urlsplit(self.source_url).hostname
        return entry


class _Aborted(Exception):
    """Raised inside a download thread when another download already failed."""


def strip_query(url: str) -> str:
    """The URL without query string or fragment: signed CDN URLs carry their credentials there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def download_all(
    hook: PixazoHook,
    result: RequestResult,
    root: ObjectStoragePath,
    template: str,
    *,
    max_concurrency: int,
    overwrite: bool,
    log: Any,
) -> list[FileRecord]:
    """
    Publish every image of ``result`` under ``root``, ``max_concurrency`` at a time; in Pixazo's order.

    :raises PixazoDownloadError: the first real failure (the others are logged).
    """
    abort = threading.Event()
    urls = result.media_urls
    workers = min(max_concurrency, len(urls))

    def job(index: int, url: str) -> FileRecord:
        def target_for(ext: str) -> ObjectStoragePath:
            return root / render_path(template, result.request_id, index, ext)

        return _download_one(hook, index, url, result.media_type, target_for, abort, overwrite, log)

    records: dict[int, FileRecord] = {}
    errors: list[tuple[int, BaseException]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixazo-dl") as pool:
        futures = {pool.submit(job, index, url): index for index, url in enumerate(urls)}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                records[index] = future.result()
            except BaseException as err:
                if not errors:
                    # Stop the others at their next chunk; unstarted ones never start.
                    abort.set()
                    for other in futures:
                        other.cancel()
                errors.append((index, err))
    real = [(i, e) for i, e in errors if not isinstance(e, _Aborted | concurrent.futures.CancelledError)]
    if real:
        for index, other_error in real[1:]:
            log.error("Image %d also failed: %s", index, other_error)
        raise real[0][1]
    return [records[index] for index in range(len(urls))]


def _download_one(
    hook: PixazoHook,
    index: int,
    url: str,
    announced: str | None,
    target_for: Callable[[str], ObjectStoragePath],
    abort: threading.Event,
    overwrite: bool,
    log: Any,
) -> FileRecord:
    started = time.monotonic()
    staged: StagedFile | None = None
    try:
        with hook.stream_media(url) as response:
            declared = _declared_length(response)
            body = _Body(response, declared)
            chunks = _pieces(iter(body))
            head, pending = _read_head(chunks)
            media_type = _check_magic(head, announced, index, url)
            target = target_for(EXTENSIONS[media_type])
            staged = StagedFile(target, media_type)
            chunk: bytes | memoryview = b""
            for chunk in itertools.chain(pending, chunks):
                if abort.is_set():
                    raise _Aborted
                staged.write(chunk)
            # The upload below reads its own parts: hold no download buffer while it runs.
            del head, pending, chunk
            received = body.received
            if declared is not None and received != declared:
                raise PixazoDownloadError(
                    f"Image {index} ({strip_query(url)}) arrived short: {received} of {declared} bytes "
                    "announced by Content-Length; nothing was kept"
                )
        outcome = staged.commit(overwrite=overwrite, log=log)
    except httpx.HTTPError as err:
        raise PixazoDownloadError(
            f"Image {index} ({strip_query(url)}) failed mid-download ({type(err).__name__}: {err}); nothing was kept"
        ) from err
    finally:
        if staged is not None:
            staged.discard()
    elapsed = max(time.monotonic() - started, 1e-6)
    record = FileRecord(
        index=index,
        uri=uri_of(staged.target),
        sha256=staged.sha256.hexdigest(),
        size=staged.size,
        media_type=media_type,
        source_url=url,
        outcome=outcome,
    )
    if outcome != "unchanged":
        log.info(
            "%s %s: %d bytes, sha256 %s (%.1f MB/s)",
            outcome.capitalize(),
            record.uri,
            record.size,
            record.sha256,
            record.size / elapsed / 1e6,
        )
    return record


class _Body:
    """
    The bytes of one media response, as they arrive; :attr:`received` counts them.

    A large plain body (``Content-Length`` of at least ``DIRECT_READ_MIN_BYTES``, no content coding,
    HTTP/1.1) is read, after its first piece, straight from the connection httpx opened for it (the
    ``network_stream`` response extension): the same verified TLS session, proxy tunnel and read
    timeout, without h11 copying every byte three times on the way (a quarter of the CPU of a large
    download). The connection is then closed rather than reused, since h11 never saw the body end.
    Anything else, and every small image, goes through ``iter_bytes()``.
    """

    def __init__(self, response: httpx.Response, declared: int | None) -> None:
        self._response = response
        self._declared = declared
        self._direct = 0

    @property
    def received(self) -> int:
        """Bytes of the body received so far."""
        return self._response.num_bytes_downloaded + self._direct

    def __iter__(self) -> Iterator[bytes]:
        response, declared = self._response, self._declared
        chunks = response.iter_bytes()
        stream = response.extensions.get("network_stream")
        if (
            declared is None
            or declared < DIRECT_READ_MIN_BYTES
            or stream is None
            or response.http_version != "HTTP/1.1"
            or response.headers.get("Content-Encoding", "identity").strip().lower() != "identity"
            or "Transfer-Encoding" in response.headers
        ):
            yield from chunks
            return
        # One piece through h11 first: what arrived with the headers. After a body piece h11 holds
        # nothing more of the body (it hands over all it has), so the rest is on the socket.
        first = next(chunks, b"")
        if first:
            yield first
        timeout = response.request.extensions.get("timeout", {}).get("read")
        left = declared - response.num_bytes_downloaded
        while left > 0:
            try:
                data = stream.read(min(left, DIRECT_READ_SIZE), timeout)
            except httpcore.TimeoutException as err:
                raise httpx.ReadTimeout(str(err) or "timed out", request=response.request) from err
            except httpcore.NetworkError as err:
                raise httpx.ReadError(str(err), request=response.request) from err
            if not data:
                return  # the server closed early: the length check reports it
            left -= len(data)
            self._direct += len(data)
            yield data


def _pieces(chunks: Iterator[bytes]) -> Iterator[bytes | memoryview]:
    """
    The body as it arrives, no piece over ``CHUNK_SIZE``.

    Not ``iter_bytes(chunk_size=...)``: its re-chunking copies every byte twice, which halved the
    throughput; network reads are 64 KiB anyway, and a larger piece is cut without copying.
    """
    for chunk in chunks:
        if len(chunk) <= CHUNK_SIZE:
            yield chunk
        else:
            view = memoryview(chunk)
            for start in range(0, len(chunk), CHUNK_SIZE):
                yield view[start : start + CHUNK_SIZE]


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _read_head(chunks: Iterator[bytes | memoryview]) -> tuple[bytes, list[bytes | memoryview]]:
    """Read until the magic bytes are known (or the body ends); return them and the chunks read."""
    pending: list[bytes | memoryview] = []
    head = b""
    for chunk in chunks:
        pending.append(chunk)
        head += bytes(chunk[: SNIFF_BYTES - len(head)])
        if len(head) >= SNIFF_BYTES:
            break
    return head, pending


def _check_magic(head: bytes, announced: str | None, index: int, url: str) -> str:
    """The media type the bytes start, if it is what Pixazo announced (or any image when it was generic)."""
    sniffed = sniff_media_type(head)
    where = f"Image {index} ({strip_query(url)})"
    if sniffed is None:
        raise PixazoDownloadError(
            f"{where} is not a PNG, JPEG or WebP image (it starts {head[:SNIFF_BYTES]!r}); nothing was kept"
        )
    if announced in EXTENSIONS and sniffed != announced:
        raise PixazoDownloadError(
            f"{where}: Pixazo announced {announced} but the bytes are {sniffed}; nothing was kept"
        )
    return sniffed
