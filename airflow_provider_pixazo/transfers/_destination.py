"""
Where the transfer writes: the destination and the path template, checked and rendered.

Pure checks and path arithmetic, no I/O: the destination becomes an ``ObjectStoragePath`` (its
connection must exist), the template a safe relative path per image, and no two files of one request
may land on the same path. Not for writing anything (``_staging``) nor for the sidecar's content
(``_provenance``).
"""

from __future__ import annotations

import os
import re
import string
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.media import EXTENSIONS
from airflow_provider_pixazo.storage import attach_local_filesystem, require_storage_connection

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = [
    "DEFAULT_PATH_TEMPLATE",
    "check_layout",
    "is_local",
    "render_path",
    "resolve_destination",
    "uri_of",
    "validate_path_template",
]

DEFAULT_PATH_TEMPLATE = "{request_id}/{index}.{ext}"
_PLACEHOLDERS = ("request_id", "index", "ext")
_LOCAL_PROTOCOLS = ("file", "local")
# A local URI with no host and an absolute path: three slashes, then a name.
_LOCAL_URI = re.compile(r"^[A-Za-z]+:///[^/]")


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
        sample = render_path(template, "request-id", 0, "png")
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


def render_path(template: str, request_id: str, index: int, ext: str) -> str:
    """One image's path under the destination (``template`` already validated)."""
    return template.format(request_id=request_id, index=index, ext=ext)


def check_layout(template: str, request_id: str, media_type: str | None, count: int, reserved: str | None) -> None:
    """
    Refuse a template under which two images, or an image and ``reserved`` (the sidecar), share a path.

    Every extension the images may get is tried when Pixazo announced a generic media type.

    :raises PixazoValidationError: naming ``path_template``.
    """
    exts = [EXTENSIONS[media_type]] if media_type in EXTENSIONS else sorted(set(EXTENSIONS.values()))
    seen: dict[str, int] = {}
    if reserved is not None:
        seen[reserved] = -1
    for index in range(count):
        for rel in {render_path(template, request_id, index, ext) for ext in exts}:
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


def resolve_destination(destination: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """
    Turn ``destination`` into an ``ObjectStoragePath``.

    Accepts a URI (``file://``, ``s3://bucket/prefix``, ``gs://``, ``abfs://``...), a bare local path
    (made absolute, as ``file://``) or an ``ObjectStoragePath``; ``conn_id``, when given, is the
    connection its credentials come from; it must exist (never a silent fall-back to default credentials),
    but None, ``""`` and ``"None"`` (what a template renders for "no value") mean the store's defaults.

    :raises PixazoValidationError: naming ``destination``, or ``dest_conn_id`` when no such connection exists.
    """
    from airflow.sdk import ObjectStoragePath

    conn_id = require_storage_connection("dest_conn_id", conn_id)
    if isinstance(destination, ObjectStoragePath):
        source: Any = destination
    elif isinstance(destination, str | os.PathLike):
        text = os.fspath(destination).strip()
        if not text:
            raise PixazoValidationError("destination", destination, "a local path or an object storage URI")
        if "://" not in text:
            # "//data" is "/data" to Linux, but a host to a URI parser: never let it become one.
            source = "file:///" + os.path.abspath(os.path.expanduser(text)).lstrip("/")
        elif text.split("://", 1)[0].lower() in _LOCAL_PROTOCOLS and not _LOCAL_URI.match(text):
            # file://host/x, file://./x, file:////x and file://~/x all resolve against the process's own
            # directory or home, a different place on each worker (and on the api-server's UI).
            raise PixazoValidationError("destination", text, "a local URI of the form file:///absolute/path")
        else:
            source = text
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
        attach_local_filesystem()  # before the path's first file-system use: no provider discovery
    elif not path.path.split("/", 1)[0] or (isinstance(source, str) and not _netloc(source)):
        raise PixazoValidationError("destination", str(destination), f"a {protocol}:// URI with a bucket/container")
    return path


def _netloc(uri: str) -> str:
    return urlsplit(uri).netloc.rpartition("@")[2]


def uri_of(path: ObjectStoragePath) -> str:
    """``protocol://path`` without the connection id that ``str(ObjectStoragePath)`` would add."""
    return f"{path.protocol}://{path.path}"


def is_local(path: ObjectStoragePath) -> bool:
    """True for a local-disk path, where a file is published by ``os.replace``."""
    return path.protocol in _LOCAL_PROTOCOLS
