"""
The hook's httpx clients: how they are configured, and one shared async client per event loop.

The sync API client is made per hook (:class:`~airflow_provider_pixazo.hooks.pixazo.PixazoHook`);
the async one is shared by every trigger waiting in a triggerer loop, on the keep-alive transport
of :mod:`._transport`, and closed when that loop is shut down (``asyncio.run()``, as in the
triggerer and ``dag.test()``), so no kept-alive socket outlives its loop. All of them, and the
hook's media client, take proxies and TLS from the same settings: :func:`network_kwargs` for the
plain httpx clients, the transport's own arguments for the async one (httpx would ignore a
``proxy=`` given next to a custom transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator
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
# shares it, so a poll costs one request on a warm connection, not a TLS handshake. The key holds
# proxy and verify too, so two connections with different network settings never share a transport;
# the environment's proxies are read once, when the loop's transport is made (as httpx reads them
# once per client).
#
# A loop that ends must close its clients first: dag.test() runs each trigger in its own short
# asyncio.run() loop, and a kept-alive socket left open when that loop closes can only be reclaimed
# by the garbage collector (a ResourceWarning, "loop is closed" at exit). asyncio.run() -- which
# Airflow's triggerer and dag.test() both use -- calls loop.shutdown_asyncgens() after cancelling
# every task and before closing the loop; it aclose()s each live async generator of the loop, on the
# loop. So each loop's entry holds one such generator, _close_at_loop_end, whose ``finally`` closes
# the loop's clients. A long-lived triggerer loop just keeps it suspended until its own shutdown.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients]
_ASYNC_CLIENTS = weakref.WeakKeyDictionary()

log = logging.getLogger(__name__)


class _LoopClients:
    """The shared clients of one event loop, and the generator that closes them when the loop ends."""

    __slots__ = ("closer", "pairs")

    def __init__(self) -> None:
        self.pairs: dict[tuple[Any, ...], tuple[httpx.AsyncClient, KeepAliveTransport]] = {}
        # The suspended generator references the loop (through the loop's finalizer hook), so the
        # weak key lives while it does; it is dropped once the clients are closed.
        self.closer: AsyncGenerator[None, None] | None = None

    def start_closer(self) -> None:
        """Register :func:`_close_at_loop_end` with the running loop (its first step runs now, synchronously)."""
        closer = _close_at_loop_end(self)
        # Creating the first asend() awaitable runs the loop's firstiter hook (the loop now tracks
        # the generator); send(None) runs it up to its yield, which ends the step with StopIteration.
        with contextlib.suppress(StopIteration):
            closer.asend(None).send(None)
        self.closer = closer

    async def aclose(self) -> None:
        """Close every client (and so its transport); never raises, as it runs at loop shutdown."""
        pairs, self.pairs = self.pairs, {}
        self.closer = None
        for client, _transport in pairs.values():
            try:
                await client.aclose()
            except Exception:
                log.warning("Closing a shared Pixazo client failed", exc_info=True)


async def _close_at_loop_end(clients: _LoopClients) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await clients.aclose()


def shared_async_client(settings: ConnectionSettings) -> httpx.AsyncClient:
    """The pooled client of the running loop for these settings, made on first use."""
    return _shared(settings)[0]


def shared_async_transport(settings: ConnectionSettings) -> KeepAliveTransport:
    """The keep-alive transport under :func:`shared_async_client`, for callers that send prebuilt requests."""
    return _shared(settings)[1]


def _shared(settings: ConnectionSettings) -> tuple[httpx.AsyncClient, KeepAliveTransport]:
    loop = asyncio.get_running_loop()
    entry = _ASYNC_CLIENTS.get(loop)
    if entry is None:
        _forget_closed_loops()
        entry = _ASYNC_CLIENTS[loop] = _LoopClients()
        entry.start_closer()
    pair = entry.pairs.get(settings.cache_key)
    if pair is None or pair[0].is_closed:
        transport = KeepAliveTransport(
            max_connections=ASYNC_MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
            verify=settings.verify,
            proxy=settings.proxy,
        )
        client = httpx.AsyncClient(**client_kwargs(settings), transport=transport)
        pair = entry.pairs[settings.cache_key] = (client, transport)
    return pair


def _forget_closed_loops() -> None:
    # A loop closed without shutdown_asyncgens() (run_until_complete() then close()) never ran its
    # closer, which keeps the loop alive: drop such entries when the next loop makes its own. Its
    # sockets are then left to the garbage collector, as they would be without this module.
    for loop in [loop for loop in _ASYNC_CLIENTS if loop.is_closed()]:
        _ASYNC_CLIENTS.pop(loop, None)


async def aclose_shared_clients() -> None:
    """Close the running loop's pooled clients now (for tests and orderly shutdowns); later calls make new ones."""
    entry = _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        closer = entry.closer
        await (closer.aclose() if closer is not None else entry.aclose())
