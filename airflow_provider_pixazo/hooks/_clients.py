"""
The hook's httpx clients: how they are configured, and one shared async client per event loop.

The sync API client is made per hook (:class:`~airflow_provider_pixazo.hooks.pixazo.PixazoHook`);
the async one is shared by every trigger waiting in a triggerer loop, on the keep-alive transport
of :mod:`._transport`. All of them, and the hook's media client, take proxies and TLS from the same
settings: :func:`network_kwargs` for the plain httpx clients, the transport's own arguments for the
async one (httpx would ignore a ``proxy=`` given next to a custom transport).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx

from airflow_provider_pixazo.hooks._auth import PixazoAuth
from airflow_provider_pixazo.hooks._settings import ConnectionSettings
from airflow_provider_pixazo.hooks._tls import deferred_ssl_context
from airflow_provider_pixazo.hooks._transport import KeepAliveTransport

__all__ = [
    "POOL_LIMITS",
    "USER_AGENT",
    "aclose_shared_clients",
    "client_kwargs",
    "network_kwargs",
    "shared_async_client",
    "shared_async_transport",
]

USER_AGENT = "airflow-provider-pixazo"

# A poll every few seconds must reuse its TCP connection: httpx's default 5 s keep-alive expiry
# would make every poll of a slow job open a new one.
KEEPALIVE_EXPIRY = 120.0
# The sync client's pool (the async one runs on hooks/_transport.py's transport, which has its own bound).
POOL_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_EXPIRY)

# Requests in flight at once from one triggerer loop to one gateway; more would only queue on the server.
ASYNC_MAX_CONNECTIONS = 16


def client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """Arguments shared by the sync and async API clients."""
    return {
        "base_url": settings.base_url,
        "auth": PixazoAuth(settings.api_key, settings.origin),
        "timeout": settings.httpx_timeout,
        "headers": {"Cache-Control": "no-cache", "User-Agent": USER_AGENT},
        # Never follow a redirect with the key: Pixazo's API does not redirect.
        "follow_redirects": False,
    }


def network_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """
    Proxy and TLS arguments of a plain ``httpx.Client`` (the sync API client and the media client).

    ``proxy=None`` leaves httpx to read ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``;
    ``verify`` is always a context (httpx 0.28 deprecates a path there): the process's shared one for
    this setting, fetched only when the client opens its first TLS connection (:mod:`._tls`).
    """
    return {"proxy": settings.proxy, "verify": deferred_ssl_context(settings.verify)}


# One pooled AsyncClient per event loop and connection: every trigger waiting in a triggerer's loop
# shares it, so a poll costs one request on a warm connection, not a TLS handshake. The loop is a
# weak key, so a finished loop (a test's, say) takes its clients with it. The key holds proxy and
# verify too, so two connections with different network settings never share a transport; the
# environment's proxies are read once, when the loop's transport is made (as httpx reads them once
# per client).
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], tuple[httpx.AsyncClient, KeepAliveTransport]]
]
_ASYNC_CLIENTS = weakref.WeakKeyDictionary()


def shared_async_client(settings: ConnectionSettings) -> httpx.AsyncClient:
    """The pooled client of the running loop for these settings, made on first use."""
    return _shared(settings)[0]


def shared_async_transport(settings: ConnectionSettings) -> KeepAliveTransport:
    """The keep-alive transport under :func:`shared_async_client`, for callers that send prebuilt requests."""
    return _shared(settings)[1]


def _shared(settings: ConnectionSettings) -> tuple[httpx.AsyncClient, KeepAliveTransport]:
    clients = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
    pair = clients.get(settings.cache_key)
    if pair is None or pair[0].is_closed:
        transport = KeepAliveTransport(
            max_connections=ASYNC_MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
            verify=settings.verify,
            proxy=settings.proxy,
        )
        client = httpx.AsyncClient(**client_kwargs(settings), transport=transport)
        pair = clients[settings.cache_key] = (client, transport)
    return pair


async def aclose_shared_clients() -> None:
    """Close the running loop's pooled clients (for tests and orderly shutdowns)."""
    clients = _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {})
    for client, _transport in clients.values():
        await client.aclose()
