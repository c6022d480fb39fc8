"""
The connection's ``proxy`` extra, with credentials, on every path of the hook: it wins over the
environment, authenticates to the proxy, and its password appears in no log line.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.proxy.conftest import PROXY_VARS, ProxyProcess, start_proxy

pytestmark = pytest.mark.integration

PASSWORD = "pr0xy-S3CRET"


@pytest.fixture
def locked_proxy(tmp_path: Path) -> Iterator[ProxyProcess]:
    """A proxy process that answers 407 unless it gets ``alice:<PASSWORD>``."""
    proxy = start_proxy(tmp_path / "seen.jsonl", auth=f"alice:{PASSWORD}")
    try:
        yield proxy
    finally:
        proxy.stop()


def test_proxy_extra_carries_every_call_and_never_logs_its_password(
    locked_proxy: ProxyProcess,
    pixazo_emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name.lower(), raising=False)
    # The environment names a proxy nobody listens on: only the extra can make this work.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    proxy_url = f"http://alice:{PASSWORD}@127.0.0.1:{locked_proxy.port}"
    emulator: PixazoEmulator = pixazo_emulator_factory(conn_id="pixazo_default", conn_extra={"proxy": proxy_url})
    caplog.set_level(logging.DEBUG)

    hook = PixazoHook()
    submission = hook.generate_image("a lighthouse", quality="low", n=1)

    async def poll_async() -> str:
        try:
            return (await PixazoHook().aget_status(submission.request_id)).status.value
        finally:
            await _clients.aclose_shared_clients()

    assert asyncio.run(poll_async()) == "COMPLETED"
    result = hook.get_status(submission.request_id)
    with hook.stream_media(result.media_urls[0]) as response:
        assert len(response.read()) > 0
    hook.close()

    seen = locked_proxy.records()
    assert [(r["method"], r["target"].removeprefix(emulator.url).split("/")[1]) for r in seen] == [
        ("POST", "gpt-image-2"),
        ("GET", "v2"),  # the trigger's path: the async client on the keep-alive transport
        ("GET", "v2"),
        ("GET", "media"),
    ]
    assert all(r["auth_ok"] for r in seen)
    assert len(emulator.calls) == 4
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert PASSWORD not in caplog.text
    assert token not in caplog.text
    assert PASSWORD not in repr(hook.settings)
