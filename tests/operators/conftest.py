"""
Fakes and fixtures of the submit-operator tests: the gateway's answers, operator factories, a fake clock.

Only the network edge is faked: respx (the ``gateway`` fixture, in tests/conftest.py) for exact wire
control, or the real local emulator for end-to-end runs. The operator's own poll sleep is replaced by
:class:`FakeClock`, so no test waits for real.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from PIL import Image

from airflow_provider_pixazo.operators import pixazo as operator_module
from airflow_provider_pixazo.operators.pixazo import PixazoEditImageOperator, PixazoGenerateImageOperator
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.conftest import BASE_URL

GEN2_URL = f"{BASE_URL}/gpt-image-2/v1/text-to-image"
GEN15_URL = f"{BASE_URL}/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
EDIT_URL = f"{BASE_URL}/gpt-image-2/v1/image-to-image-edit"
REQUEST_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"
OTHER_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000002"
STATUS_URL = f"{BASE_URL}/v2/requests/status/{REQUEST_ID}"
MEDIA_URLS = [f"https://pub-test.r2.dev/v1/{REQUEST_ID}/0.png", f"https://pub-test.r2.dev/v1/{REQUEST_ID}/1.png"]
STORE_KEY = "pixazo_request"
HTTPS_IMAGE = "https://cdn.example.com/pool.png"


def submitted(request_id: str = REQUEST_ID) -> httpx.Response:
    """The gateway's 202 to a submit."""
    return httpx.Response(
        202,
        json={
            "request_id": request_id,
            "status": "QUEUED",
            "polling_url": f"https://gateway.pixazo.ai/v2/requests/status/{request_id}",
        },
    )


def status(value: str, *, request_id: str = REQUEST_ID, error: str | None = None) -> httpx.Response:
    """The gateway's answer to a status call; COMPLETED carries MEDIA_URLS."""
    completed = value == "COMPLETED"
    return httpx.Response(
        200,
        json={
            "request_id": request_id,
            "status": value,
            "model_id": "gpt-image-2",
            "error": error,
            "output": {"media_url": MEDIA_URLS, "media_type": "image/png"} if completed else None,
            "created_at": "2026-03-31T10:00:00.000Z",
            "updated_at": "2026-03-31T10:00:15.000Z",
            "completed_at": "2026-03-31T10:00:15.000Z" if completed else None,
        },
    )


def generate(**kwargs: Any) -> PixazoGenerateImageOperator:
    kwargs.setdefault("task_id", "generate")
    kwargs.setdefault("prompt", "A serene sunset over mountains")
    kwargs.setdefault("deferrable", False)
    return PixazoGenerateImageOperator(**kwargs)


def edit(**kwargs: Any) -> PixazoEditImageOperator:
    kwargs.setdefault("task_id", "edit")
    kwargs.setdefault("prompt", "Add a flamingo to the pool")
    kwargs.setdefault("images", HTTPS_IMAGE)
    kwargs.setdefault("deferrable", False)
    return PixazoEditImageOperator(**kwargs)


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def assert_no_http(router: respx.MockRouter) -> None:
    assert router.calls.call_count == 0, [call.request.url for call in router.calls]


def write_image(path: Path, fmt: str, size: tuple[int, int] = (8, 8)) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
    return path


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:(image/[a-z]+);base64,(.+)", uri, re.DOTALL)
    assert match, uri[:60]
    return match[1], base64.b64decode(match[2])


def submits(emulator: PixazoEmulator) -> list[Any]:
    return [call for call in emulator.calls if call.kind == "submit"]


class FakeClock:
    """Replaces ``time`` in the operator module: sleeping advances a fake monotonic clock at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(operator_module, "time", fake)
    return fake


@pytest.fixture
def emulator(pixazo_emulator: PixazoEmulator, no_sleep: list[float]) -> PixazoEmulator:
    """The plugin's emulator (pixazo_default points at it), with the transport's backoff made instant."""
    return pixazo_emulator


@pytest.fixture
def catch_all(gateway: respx.MockRouter) -> respx.MockRouter:
    """Every request would be answered 202: a validation test passes only if none is made."""
    gateway.route().mock(return_value=submitted())
    return gateway


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return {
        "png": write_image(tmp_path / "in.png", "PNG"),
        "jpeg": write_image(tmp_path / "in.jpg", "JPEG"),
        "webp": write_image(tmp_path / "in.webp", "WEBP"),
        "text": text,
        "empty": empty,
        "missing": tmp_path / "missing.png",
        "dir": tmp_path,
    }
