"""Render cheap but real images for the emulator's media endpoint.

Pillow is imported lazily so that importing the emulator (and the pytest plugin) stays cheap and
works without the ``emulator`` extra; only rendering needs it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from typing import Any

PILLOW_HINT = "pip install 'airflow-provider-pixazo[emulator]'"

#: File extension (as served in media URLs) and MIME type per output format.
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def require_pillow() -> None:
    """Fail early, with the install hint, when Pillow is not installed.

    :raises ImportError: Pillow is missing.
    """
    if importlib.util.find_spec("PIL") is None:
        raise ImportError(f"The Pixazo emulator needs Pillow to render images: {PILLOW_HINT}")


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise ImportError(f"The Pixazo emulator needs Pillow to render images: {PILLOW_HINT}") from exc
    return Image, ImageDraw, ImageFont


def _palette(seed: str) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(seed.encode()).digest()
    return [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 15, 3)]


def render_image(
    *,
    width: int,
    height: int,
    fmt: str,
    index: int,
    seed: str,
    transparent: bool = False,
    compression: int | None = None,
) -> bytes:
    """Encode a deterministic picture: a two-colour gradient, a few shapes and the image index.

    :param width: Width in pixels.
    :param height: Height in pixels.
    :param fmt: ``png``, ``jpeg`` or ``webp``.
    :param index: Position of the image in its request; drawn on the picture so images differ.
    :param seed: Chooses the colours, so the same request and index always give the same bytes.
    :param transparent: Leave the corners transparent (png/webp only).
    :param compression: ``output_compression`` of the request (0-100), used as lossy quality.
    :return: The encoded file.
    """
    image_mod, draw_mod, font_mod = _pil()
    colours = _palette(f"{seed}/{index}")
    # Blend the gradient at 256x256 and scale it up: blending at 3840x2160 costs several times
    # more and nobody looks at these pixels closely.
    ramp = image_mod.linear_gradient("L")
    start = image_mod.new("RGB", ramp.size, colours[0])
    end = image_mod.new("RGB", ramp.size, colours[1])
    picture = image_mod.composite(end, start, ramp).resize((width, height), image_mod.Resampling.BILINEAR)
    draw = draw_mod.Draw(picture)
    short = min(width, height)
    draw.ellipse(
        (width * 0.1, height * 0.1, width * 0.1 + short * 0.5, height * 0.1 + short * 0.5),
        fill=colours[2],
        outline=colours[3],
        width=max(1, short // 100),
    )
    draw.rectangle((width * 0.55, height * 0.55, width * 0.9, height * 0.9), fill=colours[3])
    draw.line((0, height - 1, width - 1, 0), fill=colours[4], width=max(1, short // 80))
    try:
        font = font_mod.load_default(size=max(10, short // 5))
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        font = font_mod.load_default()
    draw.text((width * 0.6, height * 0.1), str(index), fill=(255, 255, 255), font=font)
    if transparent:
        alpha = image_mod.new("L", (width, height), 255)
        alpha_draw = draw_mod.Draw(alpha)
        corner = max(1, short // 8)
        alpha_draw.rectangle((0, 0, corner, corner), fill=0)
        alpha_draw.rectangle((width - corner, height - corner, width, height), fill=0)
        picture.putalpha(alpha)
    out = io.BytesIO()
    lossy_quality = 85 if compression is None else max(1, min(95, compression))
    if fmt == "png":
        # Level 1: these images exist to be downloaded in tests, not stored; speed wins.
        picture.save(out, format="PNG", compress_level=1)
    elif fmt == "jpeg":
        picture.convert("RGB").save(out, format="JPEG", quality=lossy_quality)
    elif fmt == "webp":
        picture.save(out, format="WEBP", quality=lossy_quality, method=0)
    else:
        raise ValueError(f"unsupported image format {fmt!r}")
    return out.getvalue()
