"""Servers and environment the transport and status-path tests share: forward proxies, no proxy variables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.proxy.forward_proxy import ForwardProxy

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable in either case, so each test sets exactly what it means."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    """A forwarding proxy on loopback that records what it was asked."""
    server = await ForwardProxy().start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def locked_proxy() -> AsyncIterator[ForwardProxy]:
    """The same, asking for ``Proxy-Authorization`` as alice:s3cret."""
    server = await ForwardProxy(auth="alice:s3cret").start()
    yield server
    await server.stop()
