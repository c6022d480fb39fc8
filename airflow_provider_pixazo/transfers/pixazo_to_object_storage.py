"""
The operator that copies the images of a finished Pixazo request to any storage ``ObjectStoragePath`` reaches.

This module is about the operator: its parameters, checks in order, and what it returns. The work is
done next door: ``_destination`` (path template and destination checks), ``_downloads`` (concurrent,
streamed, verified downloads), ``_staging`` (whole-or-nothing publishing of one file), ``_provenance``
(the JSON sidecar) and ``_assets`` (asset events).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_pixazo.exceptions import (
    PixazoDestinationConflictError,
    PixazoDownloadError,
    PixazoRequestNotCompletedError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import RequestResult, RequestStatus, validate_request_id
from airflow_provider_pixazo.transfers._assets import emit_asset_events
from airflow_provider_pixazo.transfers._destination import (
    DEFAULT_PATH_TEMPLATE,
    check_layout,
    resolve_destination,
    uri_of,
    validate_path_template,
)
from airflow_provider_pixazo.transfers._downloads import download_all, strip_query
from airflow_provider_pixazo.transfers._provenance import (
    PROVENANCE_FILE_NAME,
    sidecar_relative_path,
    validated_provenance,
    write_sidecar,
)

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

        generate = PixazoGenerateImageOperator(
            task_id="generate", prompt="{{ params.prompt }}", wait_for_completion=True
        )
        store = PixazoToObjectStorageOperator(
            task_id="store",
            request_id="{{ ti.xcom_pull(task_ids='generate') }}",
            destination="s3://my-bucket/images",
            dest_conn_id="{{ var.value.images_conn_id }}",
            provenance={"prompt": "{{ params.prompt }}"},
            outlets=[Asset("s3://my-bucket/images")],
        )
        generate >> store

    :param request_id: the Pixazo request id (templated). The request must be COMPLETED.
    :param destination: where to write (templated): a local path, a ``file://``, ``s3://bucket/prefix``,
        ``gs://``, ``abfs://``... URI, or an ``ObjectStoragePath``.
    :param dest_conn_id: the Airflow connection holding the destination's credentials (templated; for
        object stores). None (or a template rendering ``""`` or ``"None"``) uses the store's default
        credential chain; an id naming no connection fails the task with :class:`PixazoValidationError`
        before anything is downloaded or written.
    :param pixazo_conn_id: the Pixazo connection (templated; only the status call uses the API key).
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

    template_fields: Sequence[str] = (
        "request_id",
        "destination",
        "dest_conn_id",
        "pixazo_conn_id",
        "path_template",
        "provenance",
    )
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
        provenance = validated_provenance(self.provenance)
        root = resolve_destination(self.destination, self.dest_conn_id)

        hook = self.hook
        try:
            result = hook.get_status(request_id)
            self._check_completed(result)
            # Refuse every unusable media URL before the first byte is written anywhere.
            for url in result.media_urls:
                hook.check_media_url(url)
            sidecar_rel = sidecar_relative_path(template, request_id)
            check_layout(
                template,
                request_id,
                result.media_type,
                len(result.media_urls),
                sidecar_rel if self.write_provenance else None,
            )
            self.log.info(
                "Copying %d image(s) of Pixazo request %s to %s (up to %d at a time)",
                len(result.media_urls),
                request_id,
                uri_of(root),
                self.max_concurrency,
            )
            records = download_all(
                hook,
                result,
                root,
                template,
                max_concurrency=self.max_concurrency,
                overwrite=self.overwrite,
                log=self.log,
            )
        finally:
            hook.close()

        uris = [record.uri for record in records]
        provenance_uri = None
        if self.write_provenance:
            provenance_uri = write_sidecar(root / sidecar_rel, result, records, provenance, context, self.log)
        emit_asset_events(
            self.outlets,
            context,
            {"request_id": request_id, "uris": uris, "model_id": result.model_id, "provenance_uri": provenance_uri},
            self.log,
        )
        # For the Pixazo view and OpenLineage: what was written where, with sizes and checksums.
        from airflow_provider_pixazo.plugins import records as ui_records

        sources = [strip_query(url) for url in result.media_urls]
        self._pixazo_stored = ui_records.stored_summary(
            request_id, [r.to_dict() for r in records], provenance_uri, sources
        )
        ui_records.record_stored(context, self._pixazo_stored)
        written = sum(record.outcome != "unchanged" for record in records)
        self.log.info("Done: %d image(s) written, %d unchanged", written, len(records) - written)
        return uris

    @staticmethod
    def _check_completed(result: RequestResult) -> None:
        result.raise_for_failure()
        if result.status is not RequestStatus.COMPLETED:
            raise PixazoRequestNotCompletedError(result.request_id, result.status)
        if not result.media_urls:
            raise PixazoDownloadError(f"Pixazo request {result.request_id} is COMPLETED but lists no media URL")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the media URLs read in; every written image and the provenance sidecar out."""
        from airflow_provider_pixazo.lineage import transfer_lineage

        return transfer_lineage(getattr(self, "_pixazo_stored", None))


def _is_jinja(value: str) -> bool:
    return "{{" in value or "{%" in value
