"""Validation of submit requests, following the limits Pixazo documents for each model.

Unknown fields are accepted (the real gateway forwards them), and ``null`` counts as "not given".
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

QUALITIES = ("low", "medium", "high", "auto")
FORMATS = ("png", "jpeg", "webp")
WEBHOOK_MODES = ("terminal", "sync")
SIZES_1_5 = ("1024x1024", "1536x1024", "1024x1536", "auto")
BACKGROUNDS_1_5 = ("transparent", "opaque", "auto")
SIZES_2 = (
    "1024x1024",
    "1024x1536",
    "1536x1024",
    "2048x2048",
    "2048x1152",
    "2160x3840",
    "3840x2160",
    "auto",
)
BACKGROUNDS_2 = ("opaque", "auto")
MODERATIONS = ("auto", "low")
#: Longest side accepted for a custom ``WxH`` size (the largest documented preset).
MAX_SIDE = 3840
AUTO_SIZE = (1024, 1024)

_CUSTOM_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")
_DATA_URI = re.compile(r"^data:image/(png|jpeg|jpg|webp);base64,(.+)$", re.DOTALL)


class BadRequest(Exception):
    """The request is invalid; the message is what the 400 answer says."""


@dataclass(frozen=True)
class JobSpec:
    """What a valid submit asks the emulator to produce.

    :param n: Number of images.
    :param width: Width of each image in pixels.
    :param height: Height of each image in pixels.
    :param fmt: ``png``, ``jpeg`` or ``webp``.
    :param transparent: Whether a transparent background was asked for.
    :param compression: ``output_compression`` (0-100), when given.
    """

    n: int
    width: int
    height: int
    fmt: str
    transparent: bool = False
    compression: int | None = None


def _get(body: Mapping[str, Any], name: str, default: Any) -> Any:
    value = body.get(name)
    return default if value is None else value


def _prompt(body: Mapping[str, Any]) -> None:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("'prompt' is required and must be a non-empty string")


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _get(body, name, default)
    if value not in allowed:
        raise BadRequest(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _integer(body: Mapping[str, Any], name: str, low: int, high: int, default: int | None) -> int | None:
    value = _get(body, name, default)
    if value is None:
        return None
    # bool is an int in Python but not in JSON Schema: true must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be an integer from {low} to {high}; got {value!r}")
    return value


def _size(value: str, presets: tuple[str, ...], custom: bool) -> tuple[int, int]:
    if value == "auto":
        return AUTO_SIZE
    if value in presets:
        preset_width, preset_height = value.split("x")
        return int(preset_width), int(preset_height)
    match = _CUSTOM_SIZE.match(value) if custom else None
    if match is None:
        allowed = ", ".join(presets) + (" or a custom WxH" if custom else "")
        raise BadRequest(f"size must be one of {allowed}; got {value!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if width > MAX_SIDE or height > MAX_SIDE:
        raise BadRequest(f"custom size {value!r} is too large: each side must be at most {MAX_SIDE}")
    return width, height


def parse_gpt_image_1_5(body: Mapping[str, Any]) -> JobSpec:
    """Validate a GPT Image 1.5 generate request.

    :param body: The decoded JSON body.
    :return: What to produce.
    :raises BadRequest: The body breaks a documented rule.
    """
    _prompt(body)
    size = _choice(body, "image_size", SIZES_1_5, "1024x1024")
    _choice(body, "quality", QUALITIES, "auto")
    background = _choice(body, "background", BACKGROUNDS_1_5, "auto")
    n = _integer(body, "num_images", 1, 10, 1)
    fmt = _choice(body, "output_format", FORMATS, "png")
    if background == "transparent" and fmt == "jpeg":
        raise BadRequest("background 'transparent' requires output_format png or webp")
    width, height = _size(size, SIZES_1_5, custom=False)
    return JobSpec(n=n or 1, width=width, height=height, fmt=fmt, transparent=background == "transparent")


def _image_ref(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' entries must be strings (https URL or data:image URI)")
    if value.startswith("data:"):
        match = _DATA_URI.match(value)
        if match is None:
            raise BadRequest(f"'{name}' data URI must look like data:image/png;base64,...")
        try:
            base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"'{name}' data URI is not valid base64") from exc
        return
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise BadRequest(f"'{name}' must be an https URL or a data:image/...;base64 URI")


def parse_gpt_image_2(body: Mapping[str, Any], *, edit: bool) -> JobSpec:
    """Validate a GPT Image 2 text-to-image or image-edit request.

    :param body: The decoded JSON body.
    :param edit: Whether this is ``image-to-image-edit`` (``image`` required, ``mask`` allowed).
    :return: What to produce.
    :raises BadRequest: The body breaks a documented rule.
    """
    _prompt(body)
    if edit:
        image = body.get("image")
        images = image if isinstance(image, list) else [image] if image is not None else []
        if not images or image == "":
            raise BadRequest("'image' is required: an https URL, a data URI or a list of them")
        for entry in images:
            _image_ref(entry, "image")
        if body.get("mask") is not None:
            _image_ref(body["mask"], "mask")
    n = _integer(body, "n", 1, 10, 1)
    size = _get(body, "size", "auto")
    if not isinstance(size, str):
        raise BadRequest(f"'size' must be a string; got {size!r}")
    width, height = _size(size, SIZES_2, custom=True)
    _choice(body, "quality", QUALITIES, "auto")
    fmt = _choice(body, "format", FORMATS, "png")
    compression = _integer(body, "output_compression", 0, 100, None)
    if _get(body, "background", "auto") == "transparent":
        raise BadRequest("background 'transparent' is not supported for gpt-image-2 (use opaque or auto)")
    _choice(body, "background", BACKGROUNDS_2, "auto")
    _choice(body, "moderation", MODERATIONS, "auto")
    return JobSpec(n=n or 1, width=width, height=height, fmt=fmt, compression=compression)


def parse_webhook(url: str | None, mode: str | None, *, allow_http: bool) -> tuple[str | None, str]:
    """Validate the ``X-Webhook-URL`` and ``X-Webhook-Mode`` headers.

    :param url: ``X-Webhook-URL``, if sent.
    :param mode: ``X-Webhook-Mode``, if sent.
    :param allow_http: Accept ``http://`` targets too (local tests only).
    :return: The URL (or ``None``) and the mode (``terminal`` by default).
    :raises BadRequest: The URL is not https (or http when allowed), or the mode is unknown.
    """
    mode = (mode or "terminal").strip().lower()
    if mode not in WEBHOOK_MODES:
        raise BadRequest(f"X-Webhook-Mode must be terminal or sync; got {mode!r}")
    if not url:
        return None, mode
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed or not parts.netloc:
        raise BadRequest("X-Webhook-URL must be an https URL; plain http:// URLs are rejected")
    return url, mode
