from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.media import extension_for, image_to_reference, sniff_media_type

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01"
WEBP_HEAD = b"RIFF\x24\x00\x00\x00WEBPVP8 "


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG_HEAD, "image/png"),
        (JPEG_HEAD, "image/jpeg"),
        (WEBP_HEAD, "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF, but audio
        (b"RIFF\x24\x00\x00\x00WEB", None),  # too short
        (b"GIF89a\x01\x00\x01\x00", None),
        (b"<html>", None),
        (b"", None),
    ],
    ids=["png", "jpeg", "webp", "riff-wave", "short-webp", "gif", "html", "empty"],
)
def test_sniff_media_type(head: bytes, expected: str | None) -> None:
    assert sniff_media_type(head) == expected


def test_extension_for() -> None:
    assert extension_for("image/jpeg") == "jpg"
    assert extension_for("application/octet-stream", WEBP_HEAD) == "webp"
    assert extension_for(None, b"garbage") == "bin"


def _png(path: Path, fmt: str = "PNG") -> Path:
    Image.new("RGB", (4, 3), (255, 0, 0)).save(path, format=fmt)
    return path


def test_https_and_data_uris_pass_through() -> None:
    assert image_to_reference("https://cdn.example/a.png", parameter="images[0]") == "https://cdn.example/a.png"
    assert image_to_reference("  https://cdn.example/a.png\n", parameter="images[0]") == "https://cdn.example/a.png"
    uri = "data:image/png;base64,iVBORw0KGgo="
    assert image_to_reference(uri, parameter="mask") == uri


def test_http_url_is_refused() -> None:
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference("http://cdn.example/a.png", parameter="images[2]")
    assert info.value.parameter == "images[2]"
    assert "https only" in str(info.value)
    assert "http://cdn.example/a.png" in str(info.value)


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_source_is_refused(blank: str) -> None:
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference(blank, parameter="mask")
    assert info.value.parameter == "mask"


def test_local_png_becomes_a_data_uri(tmp_path: Path) -> None:
    path = _png(tmp_path / "in.png")
    reference = image_to_reference(str(path), parameter="images[0]")
    assert reference.startswith("data:image/png;base64,")
    assert base64.b64decode(reference.split(",", 1)[1]) == path.read_bytes()


def test_file_uri_and_path_object(tmp_path: Path) -> None:
    path = _png(tmp_path / "in.jpg", fmt="JPEG")
    by_uri = image_to_reference(path.as_uri(), parameter="images[0]")
    assert by_uri.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(by_uri.split(",", 1)[1]) == path.read_bytes()
    assert image_to_reference(path, parameter="images[0]") == by_uri


def test_webp_file(tmp_path: Path) -> None:
    path = _png(tmp_path / "in.webp", fmt="WEBP")
    assert image_to_reference(str(path), parameter="images[0]").startswith("data:image/webp;base64,")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference(str(missing), parameter="images[1]")
    assert info.value.parameter == "images[1]"
    assert "exists" in str(info.value)
    assert "nope.png" in str(info.value)


def test_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image at all")
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference(str(path), parameter="mask")
    assert info.value.parameter == "mask"
    assert "PNG, JPEG or WebP" in str(info.value)


def test_too_big_file(tmp_path: Path) -> None:
    path = _png(tmp_path / "big.png")
    size = path.stat().st_size
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference(str(path), parameter="images[0]", max_bytes=size - 1)
    assert info.value.parameter == "images[0]"
    assert f"{size:,} bytes" in str(info.value)
    # exactly at the limit is fine
    assert image_to_reference(str(path), parameter="images[0]", max_bytes=size).startswith("data:image/png")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference(str(path), parameter="images[0]")
    assert info.value.parameter == "images[0]"
    assert "non-empty" in str(info.value)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PixazoValidationError) as info:
        image_to_reference(str(tmp_path), parameter="images[0]")
    assert info.value.parameter == "images[0]"


_FRESH_INTERPRETER_READ = """
import sys
from airflow_provider_pixazo.media import image_to_reference
reference = image_to_reference(sys.argv[1], parameter="images[0]")
print(reference.split(",", 1)[0], "airflow.providers.amazon.aws.fs.s3" in sys.modules)
"""


def test_a_local_image_is_read_without_importing_every_providers_file_system(tmp_path: Path) -> None:
    """Airflow's ``get_fs`` imports every provider's file system first (boto3 with the amazon one)."""
    import subprocess
    import sys

    pytest.importorskip("airflow.providers.amazon")  # the module that would be imported
    path = _png(tmp_path / "in.png")
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_INTERPRETER_READ, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # The last line: Airflow 3.2 logs to stdout on the way.
    assert done.stdout.splitlines()[-1:] == ["data:image/png;base64 False"], (done.stdout[-2000:], done.stderr[-2000:])
