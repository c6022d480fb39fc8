"""
Publishing one file whole or not at all: stage it, hash it, then put it under its final name.

A :class:`StagedFile` takes the bytes, counts and hashes them, flushes them to disk, and becomes the
target only in :meth:`StagedFile.commit`: an atomic ``os.replace`` on local disk, one upload of the
finished file to an object store. An identical target is left untouched; a different one is replaced
only when overwriting is allowed. Not for fetching bytes (``_downloads``) nor choosing paths
(``_destination``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import queue
import secrets
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_pixazo.exceptions import PixazoDestinationConflictError, PixazoValidationError
from airflow_provider_pixazo.transfers._destination import is_local, uri_of

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = ["CHUNK_SIZE", "UPLOAD_PART_SIZE", "StagedFile", "existing_size"]

#: The largest piece of a download handed on at a time (network reads are usually 64 KiB).
CHUNK_SIZE = 1024 * 1024
#: Part size for object-store uploads: what s3fs/gcsfs read into memory at a time (S3's minimum is 5 MiB).
UPLOAD_PART_SIZE = 5 * 1024 * 1024
#: Bytes gathered before the writer thread takes them (one ``writev``); at most ``_QUEUED_BATCHES`` wait.
BATCH_BYTES = 512 * 1024
_BATCH_BUFFERS = 64  # well under IOV_MAX (1024 on Linux)
_QUEUED_BATCHES = 2
#: Written bytes after which the kernel is asked to start writing them back (so the last fsync waits less).
WRITEBACK_WINDOW = 8 * 1024 * 1024
_S3_MAX_PARTS = 10_000
_S3_PROTOCOLS = ("s3", "s3a", "s3n")
_HAS_WRITEV = hasattr(os, "writev")
_HAS_FADVISE = hasattr(os, "posix_fadvise") and sys.platform.startswith("linux")
_GCS_PROTOCOLS = ("gs", "gcs")

Buffer = bytes | memoryview


class StagedFile:
    """
    A temporary file that becomes ``target`` only through :meth:`commit`, hashing what is written.

    Local targets are staged in the target's own directory (so ``os.replace`` is atomic) and made
    durable by one ``fsync`` before they are published; remote ones are staged in the system temp
    directory, then uploaded in one call (the upload is what makes them durable).

    :meth:`write` only gathers the caller's buffers into batches of ``BATCH_BYTES``; two threads take
    each batch, one writing it (one ``writev``), one hashing it. Both calls release the GIL, so the
    network, the disk and SHA-256 (the largest CPU cost) run side by side on as many cores as are free.
    At most ``BATCH_BYTES * (2 * _QUEUED_BATCHES + 3)`` bytes are held, however large the file.
    """

    def __init__(self, target: ObjectStoragePath, content_type: str) -> None:
        self.target = target
        self.content_type = content_type
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._local = is_local(target)
        name = target.name
        if self._local:
            directory = os.path.dirname(target.path)
            os.makedirs(directory, exist_ok=True)
            self.name = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
        else:
            # Keep the extension: s3fs guesses the Content-Type from the local name.
            self.name = os.path.join(tempfile.gettempdir(), f"pixazo-{secrets.token_hex(8)}-{name}")
        # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask permissions.
        self._fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self._closed = False
        self._batch: list[Buffer] = []
        self._batch_bytes = 0
        self._written = 0  # bytes the writing thread has written (its own counter)
        self._advised = 0  # bytes already handed to the kernel's write-back
        self._workers: list[tuple[queue.Queue[list[Buffer] | None], threading.Thread]] = []
        self._error: BaseException | None = None

    def write(self, chunk: Buffer) -> None:
        """Take ``chunk`` (it must not change afterwards); written and hashed off the caller's thread."""
        if self._error is not None:
            raise self._error
        if not chunk:
            return
        self._batch.append(chunk)
        self._batch_bytes += len(chunk)
        self.size += len(chunk)
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= _BATCH_BUFFERS:
            self._hand_over()

    def _hand_over(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if not self._workers:
            # Small files (a sidecar, a thumbnail) never start a thread: finish() handles them inline.
            for work, name in ((self._write_batch, "pixazo-write"), (self._hash_batch, "pixazo-hash")):
                source: queue.Queue[list[Buffer] | None] = queue.Queue(maxsize=_QUEUED_BATCHES)
                worker = threading.Thread(target=self._drain, args=(source, work), name=name, daemon=True)
                worker.start()
                self._workers.append((source, worker))
        for source, _ in self._workers:
            source.put(batch)

    def _drain(self, source: queue.Queue[list[Buffer] | None], work: Callable[[list[Buffer]], None]) -> None:
        while (batch := source.get()) is not None:
            if self._error is None:
                try:
                    work(batch)
                except BaseException as err:  # kept for the caller; keep draining so put() never blocks
                    self._error = err

    def _write_batch(self, batch: list[Buffer]) -> None:
        # The pieces as they came: no joined copy, the bytes are copied once, into the page cache.
        _write_all(self._fd, batch)
        self._written += sum(len(buffer) for buffer in batch)
        if self._local and self._written - self._advised >= WRITEBACK_WINDOW:
            _start_writeback(self._fd, self._advised, self._written - self._advised)
            self._advised = self._written

    def _hash_batch(self, batch: list[Buffer]) -> None:
        for buffer in batch:
            self.sha256.update(buffer)

    def _stop_workers(self) -> None:
        workers, self._workers = self._workers, []
        for source, _ in workers:
            source.put(None)
        for _, worker in workers:
            worker.join()

    def finish(self) -> None:
        """Write and hash what is left, flush a local file to disk (one fsync); the file is complete."""
        if self._closed:
            return
        try:
            if self._batch:
                if self._workers:
                    self._hand_over()
                else:
                    self._write_batch(self._batch)
                    self._hash_batch(self._batch)
                self._batch = []
            self._stop_workers()
            if self._error is not None:
                raise self._error
            if self._local:
                os.fsync(self._fd)
        finally:
            self._close()

    def _close(self) -> None:
        self._stop_workers()
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def discard(self) -> None:
        """Remove the temporary file, if it is still there."""
        self._batch = []
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name)

    def commit(self, *, overwrite: bool, log: Any) -> str:
        """
        Put the staged bytes under the target name, unless it already holds them.

        :return: ``"written"``, ``"replaced"`` or ``"unchanged"``.
        :raises PixazoDestinationConflictError: different content exists and ``overwrite`` is False.
        """
        self.finish()
        target, fs = self.target, self.target.fs
        digest = self.sha256.hexdigest()
        existing = existing_size(target)
        outcome = "written"
        if existing is not None:
            if existing == self.size and _sha256_of(target) == digest:
                log.info("%s unchanged (same size and sha256); not rewritten", uri_of(target))
                return "unchanged"
            if not overwrite:
                raise PixazoDestinationConflictError(
                    uri_of(target), existing_size=existing, new_size=self.size, new_sha256=digest
                )
            outcome = "replaced"
        if is_local(target):
            os.replace(self.name, target.path)
        else:
            fs.put_file(self.name, target.path, **_upload_options(target.protocol, self.size, self.content_type))
            with contextlib.suppress(Exception):
                fs.invalidate_cache(target.path)
        return outcome


def _upload_options(protocol: str, size: int, content_type: str) -> dict[str, Any]:
    """Per-store arguments of ``put_file`` that cap the memory an upload holds and set the type."""
    if protocol in _S3_PROTOCOLS:
        # s3fs reads a whole file below 2 parts, else `max_concurrency` parts at a time.
        part = max(UPLOAD_PART_SIZE, math.ceil(size / _S3_MAX_PARTS))
        return {"ContentType": content_type, "chunksize": part, "max_concurrency": 1}
    if protocol in _GCS_PROTOCOLS:
        return {"content_type": content_type, "chunksize": UPLOAD_PART_SIZE}
    return {}


def _write_all(fd: int, buffers: list[Buffer]) -> None:
    """Write every buffer, in order: one ``writev`` where the platform has it, finishing a short write."""
    done = os.writev(fd, buffers) if _HAS_WRITEV else 0
    for buffer in buffers:
        if done >= len(buffer):
            done -= len(buffer)
            continue
        view = memoryview(buffer)[done:]
        done = 0
        while view:
            view = view[os.write(fd, view) :]


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """
    Ask the kernel to start writing this range to disk now (Linux; elsewhere a no-op).

    POSIX_FADV_DONTNEED starts an asynchronous write-back of dirty pages (and drops only pages already
    clean), so the final fsync finds most of the file on disk already. It is advice: failures are ignored.
    """
    if _HAS_FADVISE:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def existing_size(target: ObjectStoragePath) -> int | None:
    """The size of what ``target`` holds now (-1 if the store does not say), None if nothing."""
    fs = target.fs
    with contextlib.suppress(Exception):
        fs.invalidate_cache(target.path)
    try:
        info = fs.info(target.path)
    except FileNotFoundError:
        return None
    if info.get("type") == "directory":
        raise PixazoValidationError("path_template", uri_of(target), "a file path, but a directory is in the way")
    size = info.get("size")
    return int(size) if size is not None else -1


def _sha256_of(target: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with target.fs.open(target.path, "rb", block_size=CHUNK_SIZE) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
