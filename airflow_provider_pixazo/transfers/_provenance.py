"""
The provenance sidecar: one JSON file per request saying what was stored, from where, and why.

It records the request (id, model, status, timestamps), every file with its SHA-256, the user's
``provenance`` facts and the task that wrote it; it is rewritten only when something other than the
write time changed. Not for the images themselves (``_downloads``) nor for asset events (``_assets``).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.transfers._destination import render_path, uri_of
from airflow_provider_pixazo.transfers._staging import StagedFile, existing_size

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_pixazo.models import RequestResult
    from airflow_provider_pixazo.transfers._downloads import FileRecord

__all__ = ["PROVENANCE_FILE_NAME", "sidecar_relative_path", "validated_provenance", "write_sidecar"]

PROVENANCE_FILE_NAME = "provenance.json"
_MAX_SIDECAR_BYTES = 16 * 1024 * 1024
# Keys of the sidecar that change on every run; ignored when deciding whether it changed.
_VOLATILE_SIDECAR_KEYS = ("written_at", "airflow")


def validated_provenance(provenance: Any) -> dict[str, Any]:
    """The user's ``provenance`` facts as a JSON-safe dict ({} for None)."""
    if provenance is None:
        return {}
    if not isinstance(provenance, Mapping):
        raise PixazoValidationError("provenance", provenance, "a dict of JSON-safe values, or None")
    value = dict(provenance)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise PixazoValidationError("provenance", value, f"JSON-serialisable values ({err})") from None
    return value


def sidecar_relative_path(template: str, request_id: str) -> str:
    """
    Where the provenance sidecar goes, relative to the destination.

    Beside the images when every image of a request shares one directory: ``provenance.json`` if that
    directory is per request (default: ``{request_id}/provenance.json``), else
    ``{request_id}.provenance.json``. When the directory varies per image, ``{request_id}/provenance.json``.
    """
    directory, _, _ = template.rpartition("/")
    if "{index" in directory or "{ext" in directory:
        return f"{request_id}/{PROVENANCE_FILE_NAME}"
    rendered = render_path(directory, request_id, 0, "png") if directory else ""
    name = PROVENANCE_FILE_NAME if "{request_id" in directory else f"{request_id}.{PROVENANCE_FILE_NAME}"
    return f"{rendered}/{name}" if rendered else name


def write_sidecar(
    target: ObjectStoragePath,
    result: RequestResult,
    records: list[FileRecord],
    provenance: dict[str, Any],
    context: Mapping[str, Any],
    log: Any,
) -> str:
    """Publish the sidecar at ``target`` (atomically, like an image) unless it says the same; return its URI."""
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
        log.info("%s unchanged; not rewritten", uri)
        return uri
    staged = StagedFile(target, "application/json")
    try:
        staged.write(json.dumps(document, indent=2, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
        staged.commit(overwrite=True, log=log)
    finally:
        staged.discard()
    log.info("Wrote provenance %s", uri)
    return uri


def _same_sidecar(target: ObjectStoragePath, document: Mapping[str, Any]) -> bool:
    size = existing_size(target)
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

    return bool(stable(existing) == json.loads(json.dumps(stable(document), default=str)))


def _task_identity(context: Mapping[str, Any]) -> dict[str, Any] | None:
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    return {
        name: getattr(ti, name, None)
        for name in ("dag_id", "task_id", "run_id", "map_index", "try_number")
        if isinstance(getattr(ti, name, None), str | int)
    }
