"""
The connection as the status poller uses it: read once, shared by every wait, re-read on a timer.

The connection is read once and re-read every :data:`SETTINGS_TTL` seconds, so a rotated key takes
effect within a minute; a 401/403 re-reads it at once (at most every :data:`REREAD_AFTER_REFUSAL`
seconds). Each wait's status request is built from the connection's base URL (never from a
response), with the key in one header object shared by all waits, so a rotated key reaches every
prebuilt request at once. Not for scheduling or sending (:mod:`._poller`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._auth import API_KEY_HEADER
from airflow_provider_pixazo.hooks._settings import ConnectionSettings, origin_of, settings_from_connection
from airflow_provider_pixazo.hooks._waits import Clock, Wait
from airflow_provider_pixazo.responses import STATUS_PATH

__all__ = ["PolledConnection", "read_connection"]

log = logging.getLogger(__name__)

#: Seconds a connection read is trusted; a rotated key takes effect within this (plus one poll).
SETTINGS_TTL = 30.0
#: A refused key re-reads the connection at most once in this many seconds (thousands of waits refused
#: one after the other cost a read every few seconds, not one each).
REREAD_AFTER_REFUSAL = 5.0


async def read_connection(conn_id: str) -> Any:
    """Airflow's async connection lookup: the poller's default way to read its connection."""
    from airflow.sdk import BaseHook

    return await BaseHook.aget_connection(conn_id)


class PolledConnection:
    """
    One connection's settings for the poller, with the header set and request extensions built from them.

    :param conn_id: the Airflow connection (type ``pixazo``).
    :param clock: where the read times come from.
    :param load_connection: async ``conn_id -> Connection``.
    :param on_change: called with new settings each time a read finds them changed.
    """

    def __init__(
        self,
        conn_id: str,
        clock: Clock,
        load_connection: Callable[[str], Awaitable[Any]],
        on_change: Callable[[ConnectionSettings], None],
    ) -> None:
        self.conn_id = conn_id
        self._clock = clock
        self._load_connection = load_connection
        self._on_change = on_change
        #: The last good settings (None before the first read).
        self.settings: ConnectionSettings | None = None
        #: When the settings were last read (or a re-read last failed).
        self.read_at = float("-inf")
        #: Bumped on each change: a request built under an older generation is rebuilt.
        self.gen = 0
        self.headers: httpx.Headers | None = None
        self._extensions: dict[str, Any] = {}
        self._loading: asyncio.Future[ConnectionSettings] | None = None
        self._reread_at = float("-inf")

    def stale_at(self) -> float:
        """When the settings are due for a re-read."""
        return self.read_at + SETTINGS_TTL

    async def load(self) -> ConnectionSettings:
        """Read the connection (one read shared by every caller meanwhile) and apply it."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._read())
        loading = self._loading
        try:
            return await asyncio.shield(loading)
        finally:
            if loading.done() and self._loading is loading:
                self._loading = None

    async def refresh(self) -> None:
        """Re-read the connection; a failed read keeps the last good settings until the next TTL."""
        try:
            await self.load()
        except Exception as err:
            # Keep polling with the last good settings; a refused key still ends waits (401/403).
            log.warning("Could not re-read Pixazo connection %s, keeping its previous settings: %s", self.conn_id, err)
            self.read_at = self._clock.time()

    async def after_refusal(self, used: ConnectionSettings) -> ConnectionSettings | None:
        """
        The settings to judge a 401/403 by: re-read at once if they still hold the refused key.

        The key may have been rotated at Pixazo before the next timed re-read.
        """
        current = self.settings
        now = self._clock.time()
        if current is not None and current.api_key == used.api_key and now >= self._reread_at + REREAD_AFTER_REFUSAL:
            self._reread_at = now
            try:
                current = await self.load()
            except Exception as err:  # the read failed: the refusal stands
                log.warning("Could not re-read connection %s after a refused key: %s", self.conn_id, err)
        return current

    def request_for(self, wait: Wait) -> httpx.Request:
        """The wait's status request: built once, rebuilt when the settings change, given the current headers."""
        request = wait.request
        if request is None or wait.built_gen != self.gen:
            request = wait.request = self.build(wait.request_id)
            wait.built_gen = self.gen
        elif request.headers is not self.headers:
            request.headers = self.headers  # type: ignore[assignment]
        return request

    def build(self, request_id: str) -> httpx.Request:
        """The status request for ``request_id`` (a validated id), sharing the header set and extensions."""
        settings = self.settings
        assert settings is not None
        assert self.headers is not None
        # From the connection's base URL and a validated id: never a URL from a response.
        request = httpx.Request("GET", settings.base_url + STATUS_PATH.format(request_id=request_id))
        if origin_of(request.url) != settings.origin:  # pragma: no cover - guards the key, cannot happen
            raise PixazoValidationError("request_id", request_id, "an id that keeps the status URL on the gateway")
        # Shared by every wait: one object to swap when the key rotates, and no copy per request.
        request.headers = self.headers
        request.extensions = self._extensions
        return request

    async def _read(self) -> ConnectionSettings:
        conn = await self._load_connection(self.conn_id)
        settings = settings_from_connection(conn)
        self._apply(settings)
        return settings

    def _apply(self, settings: ConnectionSettings) -> None:
        self.read_at = self._clock.time()
        if settings == self.settings:
            return
        self.settings = settings
        self.gen += 1
        # httpx computes Host for the gateway; this one header set is shared by every status request.
        template = httpx.Request(
            "GET",
            settings.base_url + "/",
            headers={
                "Cache-Control": "no-cache",
                "User-Agent": _clients.USER_AGENT,
                API_KEY_HEADER: settings.api_key,
            },
        )
        self.headers = template.headers
        # No pool timeout: a poll waiting for a connection slot is bounded by the slots' own read
        # timeouts and by its wait's deadline, and the transport then sets no timer per poll for it.
        self._extensions = {"timeout": {**settings.httpx_timeout.as_dict(), "pool": None}}
        self._on_change(settings)
