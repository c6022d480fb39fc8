"""Large plain bodies are read straight from httpx's connection after their first piece (transfers/_downloads.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import ssl
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.exceptions import PixazoDownloadError
from airflow_provider_pixazo.transfers import _downloads
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator
from tests.transfers.conftest import MediaServer, Route

RID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-00000000d1ec"


def big_png(size: int) -> bytes:
    """A PNG signature and IHDR, then random filler (incompressible): ``size`` bytes."""
    ihdr = struct.pack(">IIBBBBB", 512, 512, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    head += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return head + os.urandom(size - len(head))


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> list[_downloads._Body]:
    """Every body read from now on; the direct path starts at 64 KiB and reads 16 KiB at a time."""
    monkeypatch.setattr(_downloads, "DIRECT_READ_MIN_BYTES", 64 * 1024)
    monkeypatch.setattr(_downloads, "DIRECT_READ_SIZE", 16 * 1024)
    made: list[_downloads._Body] = []

    class Recorded(_downloads._Body):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(_downloads, "_Body", Recorded)
    return made


def store(tmp_path: Path) -> list[str]:
    return PixazoToObjectStorageOperator(task_id="store", request_id=RID, destination=str(tmp_path)).execute({})  # type: ignore[arg-type]


def test_a_large_body_is_read_directly_and_stored_exactly(
    media_server: MediaServer, bodies: list[Any], tmp_path: Path
) -> None:
    data = big_png(1024 * 1024 + 12345)
    media_server.completed(RID, [data, data[:50_000]])  # the second is below the threshold

    store(tmp_path)

    assert (tmp_path / RID / "0.png").read_bytes() == data
    assert (tmp_path / RID / "1.png").read_bytes() == data[:50_000]
    sidecar = json.loads((tmp_path / RID / "provenance.json").read_text())
    assert [f["sha256"] for f in sidecar["files"]] == [
        hashlib.sha256(data).hexdigest(),
        hashlib.sha256(data[:50_000]).hexdigest(),
    ]
    large, small = sorted(bodies, key=lambda body: -body.received)
    assert large.received == len(data)
    # Most of it came off the socket directly; the first piece (what came with the headers) through h11.
    assert 0 < len(data) - large._direct < len(data) // 2
    assert small._direct == 0


def test_a_large_body_cut_short_leaves_nothing(media_server: MediaServer, bodies: list[Any], tmp_path: Path) -> None:
    data = big_png(1024 * 1024)
    media_server.completed(RID, [data], send_bytes=len(data) - 100_000)

    with pytest.raises(PixazoDownloadError, match="arrived short"):
        store(tmp_path)

    assert bodies[0]._direct > 0
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_coded_body_goes_through_httpx_which_decodes_it(
    media_server: MediaServer, bodies: list[Any], tmp_path: Path
) -> None:
    data = big_png(512 * 1024)
    coded = gzip.compress(data)
    media_server.completed(RID, [data])
    path = f"/media/{RID}/0.png?sig=secret-signature"
    media_server.routes[path] = Route(coded, headers={"Content-Type": "image/png", "Content-Encoding": "gzip"})

    store(tmp_path)

    assert (tmp_path / RID / "0.png").read_bytes() == data
    assert bodies[0]._direct == 0


def test_over_tls_the_direct_read_uses_the_verified_session(
    bodies: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = MediaServer()
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
        server.url = server.url.replace("http://", "https://")
        conn = {
            "conn_type": "pixazo",
            "host": server.url,
            "password": "sk-test-SECRET-123",
            "extra": {"verify": str(bundle)},
        }
        monkeypatch.setenv("AIRFLOW_CONN_PIXAZO_DEFAULT", json.dumps(conn))
        data = big_png(1024 * 1024 + 777)
        server.completed(RID, [data])

        store(tmp_path / "out")
    finally:
        server.stop()

    assert (tmp_path / "out" / RID / "0.png").read_bytes() == data
    assert bodies[0]._direct > len(data) // 2
