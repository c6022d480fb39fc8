"""
The connection as the status poller uses it: read once, shared by every wait, re-read on a timer.

The connection is read once and re-read every :data:`SETTINGS_TTL` seconds, so a rotated key takes
effect within a minute; a 401/403 re-reads it at once (at most every :data:`REREAD_AFTER_REFUSAL`
seconds). Each wait's status GET is built from the connection's base URL (never
from a response) on one :class:`~._status_wire.StatusTemplate` per read, which holds the header
block with the key; a changed read (a rotated key) makes a new template, and each wait's GET is
rebuilt on it. Not for scheduling or sending (:mod:`._poller`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._auth import API_KEY_HEADER
from airflow_provider_pixazo.hooks._settings import ConnectionSettings, settings_from_connection
from airflow_provider_pixazo.hooks._status_wire import StatusGet, StatusTemplate
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
        #: The shared part of every status GET (header block with the key, origin, timeouts).
        self.template: StatusTemplate | None = None
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

    def request_for(self, wait: Wait) -> StatusGet:
        """The wait's status GET: built once, rebuilt when the settings (and so the key) change."""
        request = wait.request
        if request is None or wait.built_gen != self.gen:
            request = wait.request = self.build(wait.request_id)
            wait.built_gen = self.gen
        return request

    def build(self, request_id: str) -> StatusGet:
        """The status GET for ``request_id`` (a validated id), on the shared template of these settings."""
        assert self.template is not None
        # From the connection's base URL and a validated id: never a URL from a response.
        try:
            return self.template.get(STATUS_PATH.format(request_id=request_id))
        except ValueError as err:  # pragma: no cover - guards the key, cannot happen with a validated id
            raise PixazoValidationError(
                "request_id", request_id, "an id that keeps the status URL on the gateway"
            ) from err

    async def _read(self) -> ConnectionSettings:
        conn = await self._load_connection(self.conn_id)
        settings = settings_from_connection(conn)
        self._apply(settings)
        return settings

    def _apply(self, settings: ConnectionSettings) -> None:
        self.read_at = self._clock.time()
        if settings == self.settings:
            return
        # One header block (with the key) for every status GET of these settings: a rotated key bumps
        # gen, so each wait's GET is rebuilt on its next poll. No pool timeout: a poll waiting for a
        # connection slot is bounded by the slots' own read timeouts and by its wait's deadline.
        # The key is printable ASCII (settings_from_connection refuses anything else, unseen), so the
        # header block cannot fail h11's checks here.
        self.template = StatusTemplate(
            settings.base_url,
            {"Cache-Control": "no-cache", "User-Agent": _clients.USER_AGENT, API_KEY_HEADER: settings.api_key},
            {**settings.httpx_timeout.as_dict(), "pool": None},
        )
        self.settings = settings
        self.gen += 1
        self._on_change(settings)
