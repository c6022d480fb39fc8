"""
Copy the images of a finished Pixazo request to any storage Airflow's ``ObjectStoragePath`` reaches.

Every file is whole or absent: it is streamed (1 MiB chunks, constant memory) into a temporary file
while its size and SHA-256 are computed, checked against ``Content-Length`` and against the image type
Pixazo announced (by its magic bytes), and only then put under its final name, by an atomic
``os.replace`` on a local disk or by one upload of the finished file to an object store. Re-running is
free of side effects: a target that already holds the same bytes is left untouched.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import hashlib
import itertools
import json
import math
import os
import secrets
import string
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from airflow.sdk import BaseOperator

from airflow_provider_pixazo.exceptions import (
    PixazoDestinationConflictError,
    PixazoDownloadError,
    PixazoRequestNotCompletedError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.media import EXTENSIONS, SNIFF_BYTES, sniff_media_type
from airflow_provider_pixazo.models import RequestResult, RequestStatus, validate_request_id

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

__all__ = [
    "DEFAULT_PATH_TEMPLATE",
    "PROVENANCE_FILE_NAME",
    "PixazoDestinationConflictError",
    "PixazoRequestNotCompletedError",
    "PixazoToObjectStorageOperator",
    "resolve_destination",
    "validate_path_template",
]

DEFAULT_PATH_TEMPLATE = "{request_id}/{index}.{ext}"
PROVENANCE_FILE_NAME = "provenance.json"

#: Bytes read from the network and hashed at a time; the only buffer a download holds.
CHUNK_SIZE = 1024 * 1024
#: Part size for object-store uploads: what s3fs/gcsfs read into memory at a time (S3's minimum is 5 MiB).
UPLOAD_PART_SIZE = 5 * 1024 * 1024
_S3_MAX_PARTS = 10_000
_S3_PROTOCOLS = ("s3", "s3a", "s3n")
_GCS_PROTOCOLS = ("gs", "gcs")
_LOCAL_PROTOCOLS = ("file", "local")
_PLACEHOLDERS = ("request_id", "index", "ext")
_MAX_SIDECAR_BYTES = 16 * 1024 * 1024
# Keys of the sidecar that change on every run; ignored when deciding whether it changed.
_VOLATILE_SIDECAR_KEYS = ("written_at", "airflow")


class _Aborted(Exception):
    """Raised inside a download thread when another download already failed."""


# -- validation (pure, no I/O) --------------------------------------------------------------------


def validate_path_template(template: Any) -> str:
    """
    Return ``template`` if it is a safe relative path pattern; refuse anything else.

    Only the placeholders ``{request_id}``, ``{index}`` and ``{ext}`` are allowed (a format spec
    such as ``{index:03d}`` is fine); the rendered path must stay inside the destination: no
    absolute path, no scheme, no ``..``, ``.`` or empty segment, no backslash.

    :raises PixazoValidationError: naming ``path_template``.
    """
    allowed = "a relative path using only {request_id}, {index} and {ext}, e.g. '" + DEFAULT_PATH_TEMPLATE + "'"
    if not isinstance(template, str) or not template.strip():
        raise PixazoValidationError("path_template", template, allowed)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as err:
        raise PixazoValidationError("path_template", template, f"{allowed} ({err})") from None
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in _PLACEHOLDERS:
            raise PixazoValidationError("path_template", template, f"{allowed}; {{{name}}} is not one of them")
        if conversion or (spec and ("{" in spec or "}" in spec)):
            raise PixazoValidationError("path_template", template, f"{allowed}; no !conversions or nested fields")
    try:
        sample = template.format(request_id="request-id", index=0, ext="png")
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise PixazoValidationError("path_template", template, f"{allowed} ({err})") from None
    _check_relative_path("path_template", template, sample)
    return template


def _check_relative_path(parameter: str, value: Any, rendered: str) -> None:
    problem = None
    if "\\" in rendered or "\x00" in rendered:
        problem = "backslashes and NUL characters are not allowed"
    elif rendered.startswith("/") or "://" in rendered or (len(rendered) > 1 and rendered[1] == ":"):
        problem = "the path must be relative to the destination"
    elif any(part in ("", ".", "..") for part in rendered.split("/")):
        problem = "no '..', '.' or empty path segments (the files must stay inside the destination)"
    if problem:
        raise PixazoValidationError(parameter, value, f"{problem}; it renders to {rendered!r}")


def resolve_destination(destination: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """
    Turn ``destination`` into an ``ObjectStoragePath``.

    Accepts a URI (``file://``, ``s3://bucket/prefix``, ``gs://``, ``abfs://``...), a bare local path
    (made absolute, as ``file://``) or an ``ObjectStoragePath``; ``conn_id``, when given, is the
    connection its credentials come from.

    :raises PixazoValidationError: naming ``destination``.
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        source: Any = destination
    elif isinstance(destination, str | os.PathLike):
        text = os.fspath(destination).strip()
        if not text:
            raise PixazoValidationError("destination", destination, "a local path or an object storage URI")
        source = text if "://" in text else "file://" + os.path.abspath(os.path.expanduser(text))
    else:
        raise PixazoValidationError(
            "destination", destination, "a local path, an object storage URI or an ObjectStoragePath"
        )
    try:
        path = ObjectStoragePath(source, conn_id=conn_id) if conn_id else ObjectStoragePath(source)
    except Exception as err:
        raise PixazoValidationError("destination", str(destination), f"a supported storage URI ({err})") from None
    protocol = path.protocol
    if not protocol:
        raise PixazoValidationError("destination", str(destination), "a URI with a scheme, or a local path")
    if ".." in path.path.split("/"):
        raise PixazoValidationError("destination", str(destination), "a path without '..' segments")
    if protocol in _LOCAL_PROTOCOLS:
        if not path.path.startswith("/"):
            raise PixazoValidationError("destination", str(destination), "an absolute local path")
    elif not path.path.split("/", 1)[0] or (isinstance(source, str) and not _netloc(source)):
        raise PixazoValidationError("destination", str(destination), f"a {protocol}:// URI with a bucket/container")
    return path


def _netloc(uri: str) -> str:
    return urlsplit(uri).netloc.rpartition("@")[2]


def uri_of(path: ObjectStoragePath) -> str:
    """``protocol://path`` without the connection id that ``str(ObjectStoragePath)`` would add."""
    return f"{path.protocol}://{path.path}"


def _render(template: str, request_id: str, index: int, ext: str) -> str:
    return template.format(request_id=request_id, index=index, ext=ext)


def _strip_query(url: str) -> str:
    """The URL without query string or fragment: signed CDN URLs carry their credentials there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _sidecar_relative_path(template: str, request_id: str) -> str:
    """
    Where the provenance sidecar goes, relative to the destination.

    Beside the images when every image of a request shares one directory: ``provenance.json`` if that
    directory is per request (default: ``{request_id}/provenance.json``), else
    ``{request_id}.provenance.json``. When the directory varies per image, ``{request_id}/provenance.json``.
    """
    directory, _, _ = template.rpartition("/")
    if "{index" in directory or "{ext" in directory:
        return f"{request_id}/{PROVENANCE_FILE_NAME}"
    rendered = _render(directory, request_id, 0, "png") if directory else ""
    name = PROVENANCE_FILE_NAME if "{request_id" in directory else f"{request_id}.{PROVENANCE_FILE_NAME}"
    return f"{rendered}/{name}" if rendered else name


# -- staging and committing one file --------------------------------------------------------------


def _is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


class _StagedFile:
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
        if _is_local(target):
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
        existing = _existing_size(target)
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
        if _is_local(target):
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


def _existing_size(target: ObjectStoragePath) -> int | None:
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


@dataclass(frozen=True)
class _FileRecord:
    index: int
    uri: str
    sha256: str
    size: int
    media_type: str
    source_url: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uri": self.uri,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "source_url": _strip_query(self.source_url),
            "source_url_host": urlsplit(self.source_url).hostname,
        }


# -- the operator ---------------------------------------------------------------------------------


class PixazoToObjectStorageOperator(BaseOperator):
    """
    Copy the images of a COMPLETED Pixazo request to a local directory or an object store.

    Each image is streamed (constant memory) and verified (``Content-Length``; PNG/JPEG/WebP magic
    bytes against the announced media type) before it appears under its final name; nothing partial
    is ever left there. Downloads run concurrently and carry no API key. A target that already holds
    identical bytes (same size and SHA-256) is not rewritten, so re-runs are idempotent. A JSON
    provenance sidecar records the request, the files with their SHA-256, and the ``provenance``
    you pass (the prompt and parameters, say). Every Asset in ``outlets`` gets an event whose
    ``extra`` holds ``request_id``, ``uris``, ``model_id`` and ``provenance_uri``.

    Returns (and pushes to XCom) the list of the images' URIs, in Pixazo's order.

    .. code-block:: python

        PixazoToObjectStorageOperator(
            task_id="store",
            request_id="{{ ti.xcom_pull(task_ids='generate')['request_id'] }}",
            destination="s3://my-bucket/images",
            dest_conn_id="aws_default",
            provenance={"prompt": "{{ params.prompt }}"},
            outlets=[Asset("s3://my-bucket/images")],
        )

    :param request_id: the Pixazo request id (templated). The request must be COMPLETED.
    :param destination: where to write (templated): a local path, a ``file://``, ``s3://bucket/prefix``,
        ``gs://``, ``abfs://``... URI, or an ``ObjectStoragePath``.
    :param dest_conn_id: the Airflow connection holding the destination's credentials (for object
        stores); None uses the store's default credential chain.
    :param pixazo_conn_id: the Pixazo connection (only the status call uses the API key).
    :param overwrite: replace an existing file whose content differs. When False (the default) such a
        file fails the task with :class:`PixazoDestinationConflictError`; identical files never fail.
    :param path_template: each image's path under ``destination`` (templated), built from
        ``{request_id}``, ``{index}`` (0-based) and ``{ext}`` (``png``, ``jpg`` or ``webp``).
    :param write_provenance: write the JSON sidecar (``{request_id}/provenance.json`` by default;
        beside the images when they share a directory).
    :param max_concurrency: how many images are downloaded at once, each on its own connection.
    :param provenance: JSON-safe facts to record in the sidecar (templated), e.g. the prompt and
        the generation parameters.
    :param kwargs: passed to :class:`~airflow.sdk.BaseOperator` (``task_id``, ``outlets``...).
    """

    template_fields: Sequence[str] = ("request_id", "destination", "path_template", "provenance")
    ui_color = "#d6eaf8"
    ui_fgcolor = "#1b2631"

    def __init__(
        self,
        *,
        request_id: str,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        dest_conn_id: str | None = None,
        pixazo_conn_id: str = PixazoHook.default_conn_name,
        overwrite: bool = False,
        path_template: str = DEFAULT_PATH_TEMPLATE,
        write_provenance: bool = True,
        max_concurrency: int = 4,
        provenance: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.pixazo_conn_id = pixazo_conn_id
        self.overwrite = overwrite
        self.path_template = path_template
        self.write_provenance = write_provenance
        self.max_concurrency = max_concurrency
        self.provenance = provenance
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise PixazoValidationError("max_concurrency", max_concurrency, "a whole number of at least 1")
        # Fail at DAG parse time when the values are plain; templated ones are checked in execute.
        if isinstance(request_id, str) and not _is_jinja(request_id):
            validate_request_id(request_id)
        if isinstance(path_template, str) and not _is_jinja(path_template):
            validate_path_template(path_template)
        if provenance is not None and not isinstance(provenance, Mapping):
            raise PixazoValidationError("provenance", provenance, "a dict of JSON-safe values, or None")

    @cached_property
    def hook(self) -> PixazoHook:
        """The Pixazo hook, made once per task."""
        return PixazoHook(pixazo_conn_id=self.pixazo_conn_id)

    def execute(self, context: Context) -> list[str]:
        """Check the request, copy its images, write the sidecar, emit asset events; return the URIs."""
        # Everything the user gave is checked before the first HTTP call.
        request_id = validate_request_id(self.request_id)
        template = validate_path_template(self.path_template)
        provenance = self._validated_provenance()
        root = resolve_destination(self.destination, self.dest_conn_id)

        hook = self.hook
        try:
            result = hook.get_status(request_id)
            self._check_completed(result)
            # Refuse every unusable media URL before the first byte is written anywhere.
            for url in result.media_urls:
                hook.check_media_url(url)
            sidecar_rel = _sidecar_relative_path(template, request_id)
            self._check_layout(template, request_id, result, sidecar_rel)
            self.log.info(
                "Copying %d image(s) of Pixazo request %s to %s (up to %d at a time)",
                len(result.media_urls),
                request_id,
                uri_of(root),
                self.max_concurrency,
            )
            records = self._download_all(hook, result, root, template)
        finally:
            hook.close()

        uris = [record.uri for record in records]
        provenance_uri = None
        if self.write_provenance:
            provenance_uri = self._write_sidecar(root / sidecar_rel, result, records, provenance, context)
        self._emit_asset_events(context, request_id, uris, result.model_id, provenance_uri)
        # For the Pixazo view and OpenLineage: what was written where, with sizes and checksums.
        from airflow_provider_pixazo.plugins import records as ui_records

        sources = [_strip_query(url) for url in result.media_urls]
        self._pixazo_stored = ui_records.stored_summary(
            request_id, [r.to_dict() for r in records], provenance_uri, sources
        )
        ui_records.record_stored(context, self._pixazo_stored)
        written = sum(record.outcome != "unchanged" for record in records)
        self.log.info("Done: %d image(s) written, %d unchanged", written, len(records) - written)
        return uris

    # -- checks -----------------------------------------------------------------------------------

    def _validated_provenance(self) -> dict[str, Any]:
        if self.provenance is None:
            return {}
        if not isinstance(self.provenance, Mapping):
            raise PixazoValidationError("provenance", self.provenance, "a dict of JSON-safe values, or None")
        value = dict(self.provenance)
        try:
            json.dumps(value)
        except (TypeError, ValueError) as err:
            raise PixazoValidationError("provenance", value, f"JSON-serialisable values ({err})") from None
        return value

    @staticmethod
    def _check_completed(result: RequestResult) -> None:
        result.raise_for_failure()
        if result.status is not RequestStatus.COMPLETED:
            raise PixazoRequestNotCompletedError(result.request_id, result.status)
        if not result.media_urls:
            raise PixazoDownloadError(f"Pixazo request {result.request_id} is COMPLETED but lists no media URL")

    def _check_layout(self, template: str, request_id: str, result: RequestResult, sidecar_rel: str) -> None:
        """No two images, nor an image and the sidecar, may map to the same path."""
        announced = result.media_type
        exts = [EXTENSIONS[announced]] if announced in EXTENSIONS else sorted(set(EXTENSIONS.values()))
        seen: dict[str, int] = {}
        if self.write_provenance:
            seen[sidecar_rel] = -1
        for index in range(len(result.media_urls)):
            for rel in {_render(template, request_id, index, ext) for ext in exts}:
                _check_relative_path("path_template", template, rel)
                other = seen.setdefault(rel, index)
                if other != index:
                    what = "the provenance sidecar" if other < 0 else f"image {other}"
                    raise PixazoValidationError(
                        "path_template",
                        template,
                        f"a pattern giving every image its own path (image {index} and {what} both map to "
                        f"{rel!r}; add {{index}})",
                    )

    # -- downloads --------------------------------------------------------------------------------

    def _download_all(
        self, hook: PixazoHook, result: RequestResult, root: ObjectStoragePath, template: str
    ) -> list[_FileRecord]:
        abort = threading.Event()
        urls = result.media_urls
        workers = min(self.max_concurrency, len(urls))

        def job(index: int, url: str) -> _FileRecord:
            def target_for(ext: str) -> ObjectStoragePath:
                return root / _render(template, result.request_id, index, ext)

            return self._download_one(hook, index, url, result.media_type, target_for, abort)

        records: dict[int, _FileRecord] = {}
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
                self.log.error("Image %d also failed: %s", index, other_error)
            raise real[0][1]
        return [records[index] for index in range(len(urls))]

    def _download_one(
        self,
        hook: PixazoHook,
        index: int,
        url: str,
        announced: str | None,
        target_for: Callable[[str], ObjectStoragePath],
        abort: threading.Event,
    ) -> _FileRecord:
        started = time.monotonic()
        staged: _StagedFile | None = None
        try:
            with hook.stream_media(url) as response:
                declared = _declared_length(response)
                chunks = response.iter_bytes(chunk_size=CHUNK_SIZE)
                head, pending = _read_head(chunks)
                media_type = _check_magic(head, announced, index, url)
                target = target_for(EXTENSIONS[media_type])
                staged = _StagedFile(target, media_type)
                chunk = b""
                for chunk in itertools.chain(pending, chunks):
                    if abort.is_set():
                        raise _Aborted
                    staged.write(chunk)
                # The upload below reads its own parts: hold no download buffer while it runs.
                del head, pending, chunk
                received = response.num_bytes_downloaded
                if declared is not None and received != declared:
                    raise PixazoDownloadError(
                        f"Image {index} ({_strip_query(url)}) arrived short: {received} of {declared} bytes "
                        "announced by Content-Length; nothing was kept"
                    )
            outcome = staged.commit(overwrite=self.overwrite, log=self.log)
        except httpx.HTTPError as err:
            raise PixazoDownloadError(
                f"Image {index} ({_strip_query(url)}) failed mid-download ({type(err).__name__}: {err}); "
                "nothing was kept"
            ) from err
        finally:
            if staged is not None:
                staged.discard()
        elapsed = max(time.monotonic() - started, 1e-6)
        record = _FileRecord(
            index=index,
            uri=uri_of(staged.target),
            sha256=staged.sha256.hexdigest(),
            size=staged.size,
            media_type=media_type,
            source_url=url,
            outcome=outcome,
        )
        if outcome != "unchanged":
            self.log.info(
                "%s %s: %d bytes, sha256 %s (%.1f MB/s)",
                outcome.capitalize(),
                record.uri,
                record.size,
                record.sha256,
                record.size / elapsed / 1e6,
            )
        return record

    # -- provenance and assets --------------------------------------------------------------------

    def _write_sidecar(
        self,
        target: ObjectStoragePath,
        result: RequestResult,
        records: list[_FileRecord],
        provenance: dict[str, Any],
        context: Context,
    ) -> str:
        document: dict[str, Any] = {
            "request_id": result.request_id,
            "model_id": result.model_id,
            "status": result.status.value,
            "created_at": result.created_at,
            "updated_at": result.updated_at,
            "completed_at": result.completed_at,
            "media_type": result.media_type,
            "provenance": provenance,
            "files": [record.to_dict() for record in records],
            "written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "airflow": _task_identity(context),
        }
        uri = uri_of(target)
        if _same_sidecar(target, document):
            self.log.info("%s unchanged; not rewritten", uri)
            return uri
        staged = _StagedFile(target, "application/json")
        try:
            staged.write(json.dumps(document, indent=2, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
            staged.commit(overwrite=True, log=self.log)
        finally:
            staged.discard()
        self.log.info("Wrote provenance %s", uri)
        return uri

    def _emit_asset_events(
        self,
        context: Context,
        request_id: str,
        uris: list[str],
        model_id: str | None,
        provenance_uri: str | None,
    ) -> None:
        if not self.outlets:
            return
        from airflow.sdk import Asset
        from airflow.sdk.definitions.asset import AssetRef

        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            self.log.warning("No outlet_events in the task context; asset event metadata not set")
            return
        extra: dict[str, Any] = {
            "request_id": request_id,
            "uris": uris,
            "model_id": model_id,
            "provenance_uri": provenance_uri,
        }
        for outlet in self.outlets:
            if isinstance(outlet, Asset | AssetRef):
                outlet_events[outlet].extra.update(extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the media URLs read in; every written image and the provenance sidecar out."""
        from airflow_provider_pixazo.lineage import transfer_lineage

        return transfer_lineage(getattr(self, "_pixazo_stored", None))


# -- helpers --------------------------------------------------------------------------------------


def _is_jinja(value: str) -> bool:
    return "{{" in value or "{%" in value


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _read_head(chunks: Iterator[bytes]) -> tuple[bytes, list[bytes]]:
    """Read until the magic bytes are known (or the body ends); return them and the chunks read."""
    pending: list[bytes] = []
    head = b""
    for chunk in chunks:
        pending.append(chunk)
        head += chunk[: SNIFF_BYTES - len(head)]
        if len(head) >= SNIFF_BYTES:
            break
    return head, pending


def _check_magic(head: bytes, announced: str | None, index: int, url: str) -> str:
    """The media type the bytes start, if it is what Pixazo announced (or any image when it was generic)."""
    sniffed = sniff_media_type(head)
    where = f"Image {index} ({_strip_query(url)})"
    if sniffed is None:
        raise PixazoDownloadError(
            f"{where} is not a PNG, JPEG or WebP image (it starts {head[:SNIFF_BYTES]!r}); nothing was kept"
        )
    if announced in EXTENSIONS and sniffed != announced:
        raise PixazoDownloadError(
            f"{where}: Pixazo announced {announced} but the bytes are {sniffed}; nothing was kept"
        )
    return sniffed


def _same_sidecar(target: ObjectStoragePath, document: Mapping[str, Any]) -> bool:
    size = _existing_size(target)
    if size is None or size > _MAX_SIDECAR_BYTES:
        return False
    try:
        existing = json.loads(target.fs.cat_file(target.path))
    except (ValueError, OSError):
        return False
    if not isinstance(existing, dict):
        return False

    def stable(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in _VOLATILE_SIDECAR_KEYS}

    return stable(existing) == json.loads(json.dumps(stable(document), default=str))


def _task_identity(context: Mapping[str, Any]) -> dict[str, Any] | None:
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    return {
        name: getattr(ti, name, None)
        for name in ("dag_id", "task_id", "run_id", "map_index", "try_number")
        if isinstance(getattr(ti, name, None), str | int)
    }
