"""
Image bytes: recognising PNG, JPEG and WebP by their magic bytes, and turning inputs into data URIs.

The edit operator reads local files and object-storage URIs through here; the transfer checks every
download against the media type Pixazo announced.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.hooks._settings import origin_of
from airflow_provider_pixazo.storage import attach_local_filesystem, require_storage_connection

if TYPE_CHECKING:
    from airflow_provider_pixazo.hooks._settings import ConnectionSettings

__all__ = [
    "EXTENSIONS",
    "MAX_INPUT_IMAGE_BYTES",
    "check_media_url",
    "extension_for",
    "image_to_reference",
    "sniff_media_type",
]

#: File extension written for each media type Pixazo returns.
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

# OpenAI's image edit endpoint takes input images under 50 MB each; Pixazo is silent and
# forwards them, so we refuse larger ones before paying for a doomed request.
MAX_INPUT_IMAGE_BYTES = 50 * 1024 * 1024

#: Bytes needed to recognise any supported format.
SNIFF_BYTES = 12


def sniff_media_type(head: bytes) -> str | None:
    """The media type that ``head`` (the first bytes of a file) starts, or None if not an image we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def extension_for(media_type: str | None, head: bytes = b"") -> str:
    """The file extension for ``media_type``, falling back to the bytes when the type is generic."""
    if media_type in EXTENSIONS:
        return EXTENSIONS[media_type]
    sniffed = sniff_media_type(head)
    return EXTENSIONS[sniffed] if sniffed else "bin"


def image_to_reference(
    source: Any,
    *,
    parameter: str,
    conn_id: str | None = None,
    max_bytes: int = MAX_INPUT_IMAGE_BYTES,
    conn_parameter: str = "images_conn_id",
) -> str:
    """
    Turn one input image into what Pixazo accepts: an https URL or a ``data:image/...;base64`` URI.

    https URLs and data URIs pass through (Pixazo fetches or decodes them). Anything else (a local
    path, ``file://``, ``s3://``, ``gs://``... or an ``ObjectStoragePath``) is read through Airflow's
    ``ObjectStoragePath``, checked for size and PNG/JPEG/WebP magic bytes, and encoded.

    :param source: the image reference given by the user.
    :param parameter: the parameter name to use in errors (``images[0]``, ``mask``).
    :param conn_id: the Airflow connection for object-storage URIs (an AWS one for ``s3://``...).
    :param max_bytes: the largest file accepted.
    :param conn_parameter: the parameter ``conn_id`` came from, for the error when it names no connection.
    :raises PixazoValidationError: for http URLs, unreadable paths, files too big or not images, and for a
        ``conn_id`` that names no Airflow connection (checked before anything is read).
    """
    if isinstance(source, str):
        source = text = source.strip()
        if text.startswith(("https://", "data:")):
            return text
        if text.startswith("http://"):
            raise PixazoValidationError(parameter, source, "Pixazo fetches input images over https only")
        if not text:
            raise PixazoValidationError(parameter, source, "a path, an object storage URI or an https URL")
    # A named connection that does not exist must not turn into the store's default credentials.
    conn_id = require_storage_connection(conn_parameter, conn_id)
    # Imported here: ObjectStoragePath pulls in fsspec, which a DAG file parse should not pay for.
    from airflow.sdk import ObjectStoragePath

    attach_local_filesystem()  # a local image is read without Airflow importing every provider's file system

    try:
        path = source if isinstance(source, ObjectStoragePath) else ObjectStoragePath(_as_uri(source), conn_id=conn_id)
        if not path.is_file():
            raise FileNotFoundError(str(source))
        size = path.stat().st_size
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise PixazoValidationError(parameter, str(source), "a file that exists") from None
    except Exception as err:
        raise PixazoValidationError(parameter, str(source), f"a readable image ({type(err).__name__}: {err})") from None
    if size > max_bytes:
        raise PixazoValidationError(
            parameter, str(source), f"images up to {max_bytes:,} bytes (this one is {size:,} bytes)"
        )
    if size == 0:
        raise PixazoValidationError(parameter, str(source), "a non-empty PNG, JPEG or WebP file")
    with path.fs.open(path.path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    media_type = sniff_media_type(data[:SNIFF_BYTES])
    if media_type is None:
        raise PixazoValidationError(parameter, str(source), "a PNG, JPEG or WebP image (checked by its first bytes)")
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _as_uri(source: Any) -> str:
    text = str(source)
    # A bare path is a local file; ObjectStoragePath needs a scheme to pick the file system.
    return text if "://" in text else f"file://{os.path.abspath(os.path.expanduser(text))}"


def check_media_url(url: Any, settings: ConnectionSettings) -> httpx.URL:
    """
    Accept a media URL only over https, or from the gateway's own origin (the local emulator).

    :raises PixazoValidationError: for any other URL.
    """
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is not None and parsed.host and (parsed.scheme == "https" or origin_of(parsed) == settings.origin):
        return parsed
    raise PixazoValidationError(
        "media_url",
        url,
        f"media is downloaded only over https or from the connection's own {settings.base_url}",
    )
