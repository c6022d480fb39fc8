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
import secrets
import tempfile
from typing import TYPE_CHECKING, Any

from airflow_provider_pixazo.exceptions import PixazoDestinationConflictError, PixazoValidationError
from airflow_provider_pixazo.transfers._destination import is_local, uri_of

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = ["CHUNK_SIZE", "UPLOAD_PART_SIZE", "StagedFile", "existing_size"]

#: Bytes read from the network and hashed at a time; the only buffer a download holds.
CHUNK_SIZE = 1024 * 1024
#: Part size for object-store uploads: what s3fs/gcsfs read into memory at a time (S3's minimum is 5 MiB).
UPLOAD_PART_SIZE = 5 * 1024 * 1024
_S3_MAX_PARTS = 10_000
_S3_PROTOCOLS = ("s3", "s3a", "s3n")
_GCS_PROTOCOLS = ("gs", "gcs")


class StagedFile:
    """
    A temporary file that becomes ``target`` only through :meth:`commit`, hashing what is written.

    Local targets are staged in the target's own directory (so ``os.replace`` is atomic); remote
    ones in the system temp directory, then uploaded in one call.
    """

    def __init__(self, target: ObjectStoragePath, content_type: str) -> None:
        self.target = target
        self.content_type = content_type
        self.sha256 = hashlib.sha256()
        self.size = 0
        name = target.name
        if is_local(target):
            directory = os.path.dirname(target.path)
            os.makedirs(directory, exist_ok=True)
            self.name = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
        else:
            # Keep the extension: s3fs guesses the Content-Type from the local name.
            self.name = os.path.join(tempfile.gettempdir(), f"pixazo-{secrets.token_hex(8)}-{name}")
        # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask permissions.
        fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self._handle = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """Flush the bytes to disk; the file is complete."""
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def discard(self) -> None:
        """Remove the temporary file, if it is still there."""
        self._handle.close()
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
