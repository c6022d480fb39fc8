"""
One status poller per event loop and connection, shared by every waiting ``PixazoRequestTrigger``.

A triggerer may hold thousands of waits on one Pixazo key; polling each on its own ignored the
gateway's rate limit and wasted CPU. One :class:`StatusPoller` keeps **one schedule** for them all:
due polls in one heap, earliest first (a long wait is never starved by many short ones; a wait's
last poll is due at its deadline), deadlines in a second heap, so a wait ends at most
:data:`DEADLINE_GRACE` seconds after its deadline even when its poll is held back or unanswered.
Polls go as prebuilt status GETs (:mod:`._status_wire`) through the shared transport's ``get_status``
(the connection's proxy and TLS, no httpx request objects); only ``status`` is read until terminal.

Not here: the rate learned from 429s (:mod:`._pacing`), the connection read, its re-reads and the
prebuilt requests (:mod:`._poll_connection`), the clock and the wait records (:mod:`._waits`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_pixazo.error_mapping import error_from_exception, error_from_response
from airflow_provider_pixazo.exceptions import PixazoAuthError, PixazoError, PixazoRateLimitError
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._pacing import Pacing
from airflow_provider_pixazo.hooks._poll_connection import REREAD_AFTER_REFUSAL, SETTINGS_TTL, PolledConnection
from airflow_provider_pixazo.hooks._poll_connection import read_connection as _read_connection  # tests patch it here
from airflow_provider_pixazo.hooks._settings import ConnectionSettings
from airflow_provider_pixazo.hooks._status_wire import StatusGet, send_by_httpx
from airflow_provider_pixazo.hooks._waits import BACKOFF_FACTOR, Clock, SystemClock, UpdateCallback, Wait, WaitEnd
from airflow_provider_pixazo.responses import RequestResult, RequestStatus, validate_request_id

# Clock, SystemClock, WaitEnd and the tunables live with their idea; callers meet them here.
__all__ = ["Clock", "StatusPoller", "SystemClock", "WaitEnd", "forget_pollers", "status_poller"]
__all__ += ["BACKOFF_FACTOR", "REREAD_AFTER_REFUSAL", "SETTINGS_TTL", "UpdateCallback"]

log = logging.getLogger(__name__)

#: A wait registered after its deadline (a triggerer restarted late) gets this long for one answer.
MIN_POLL_BUDGET = 30.0
#: How late after its deadline a wait may end when its last poll is held back or unanswered.
DEADLINE_GRACE = 1.0

_STATUSES: dict[Any, RequestStatus] = {s.value: s for s in RequestStatus}


class StatusPoller:
    """
    Polls the status of every waiting request of one connection in one event loop.

    Get the loop's instance with :func:`status_poller`; waits go through :meth:`wait`.

    :param conn_id: the Airflow connection (type ``pixazo``).
    :param clock: where time comes from (tests pass a virtual clock).
    :param load_connection: async ``conn_id -> Connection``; Airflow's async lookup by default.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        clock: Clock | None = None,
        load_connection: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        self.conn_id = conn_id
        self._clock: Clock = clock or SystemClock()
        self._pacing = Pacing()
        self._conn = PolledConnection(
            conn_id,
            self._clock,
            load_connection or _read_connection,
            lambda settings: self._pacing.set_ceiling(settings.max_polls_per_second),
        )
        self._refreshing: asyncio.Task[None] | None = None
        self._live: set[Wait] = set()
        self._schedule: list[tuple[float, int, Wait]] = []
        self._deadlines: list[tuple[float, int, Wait]] = []
        self._seq = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timer: Any = None
        self._timer_at = float("inf")
        #: Polls sent and polls answered 429 (for tests, benchmarks and logs).
        self.polls_sent = 0
        self.rate_limited = 0

    @property
    def rate(self) -> float:
        """Status calls per second currently allowed (learned; at most ``max_polls_per_second`` if set)."""
        return self._pacing.rate

    @property
    def learned_limit(self) -> float | None:
        """The gateway's rate for this loop as its last 429 told it; None before any 429."""
        return self._pacing.learned

    @property
    def paused_until(self) -> float:
        """No poll is sent before this time (the last 429's Retry-After, for the whole loop)."""
        return self._pacing.paused_until

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r}, waiting={len(self._live)}, rate={self.rate:.1f}/s)"

    # -- the waits' side ----------------------------------------------------------------------------

    async def wait(
        self,
        request_id: str,
        *,
        poll_interval: float,
        max_poll_interval: float,
        end_time: float,
        on_update: UpdateCallback | None = None,
    ) -> WaitEnd:
        """
        Poll ``request_id`` until it ends, fails for good, or ``end_time`` (epoch seconds) passes.

        The first poll goes out at once (paced with the others); each later one ``poll_interval``
        after the previous answer, growing by :data:`BACKOFF_FACTOR` while nothing changes, up to
        ``max_poll_interval``; the last one at ``end_time``. Transient errors (5xx, 429, network,
        unreadable bodies) never end the wait. Cancelling the awaiting task unregisters the wait.

        :param on_update: called with each new status, and with the first error of each run of
            failed polls (so the caller can log each once).
        """
        validate_request_id(request_id)
        try:
            if self._conn.settings is None:
                await self._conn.load()
        except (AirflowNotFoundException, PixazoError) as err:
            return WaitEnd(error=err)
        now = self._clock.time()
        future: asyncio.Future[WaitEnd] = asyncio.get_running_loop().create_future()
        wait = Wait(request_id, poll_interval, max(poll_interval, max_poll_interval), end_time, now, future, on_update)
        self._live.add(wait)
        self._push(wait, now)
        heapq.heappush(self._deadlines, (end_time + DEADLINE_GRACE, next(self._seq), wait))
        self._arm(now)
        try:
            return await future
        finally:
            if not wait.done:
                self._end(wait, None)

    def stats(self) -> dict[str, int]:
        """Sizes of the internal structures (all zero when nothing waits and nothing is in flight)."""
        return {
            "waiting": len(self._live),
            "scheduled": len(self._schedule),
            "deadlines": len(self._deadlines),
            "in_flight": len(self._in_flight),
            "timers": int(self._timer is not None),
        }

    # -- schedule -----------------------------------------------------------------------------------

    def _push(self, wait: Wait, due: float) -> None:
        wait.due = due
        heapq.heappush(self._schedule, (due, next(self._seq), wait))

    def _end(self, wait: Wait, end: WaitEnd | None) -> None:
        wait.done = True
        wait.request = None
        self._live.discard(wait)
        if end is not None and not wait.future.done():
            wait.future.set_result(end)
        if not self._live:
            # Fresh containers: a set keeps its peak capacity, so a burst would hold its memory.
            self._live = set()
            self._schedule = []
            self._deadlines = []
            self._cancel_timer()
        elif len(self._schedule) > 2 * len(self._live) + 64 or len(self._deadlines) > 2 * len(self._live) + 64:
            # Ended waits leave entries behind (removing from a heap is O(n)): swept now and then, so none pile up.
            self._schedule = [e for e in self._schedule if not e[2].done]
            heapq.heapify(self._schedule)
            self._deadlines = [e for e in self._deadlines if not e[2].done]
            heapq.heapify(self._deadlines)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = float("inf")

    def _arm(self, now: float) -> None:
        """Set the one timer for the next thing to do: a poll, a deadline or a connection re-read."""
        schedule, deadlines = self._schedule, self._deadlines
        while schedule and schedule[0][2].done:
            heapq.heappop(schedule)
        while deadlines and deadlines[0][2].done:
            heapq.heappop(deadlines)
        at = float("inf")
        if schedule:
            at = self._pacing.earliest(schedule[0][0])
        if deadlines:
            at = min(at, deadlines[0][0])
        if self._live and self._refreshing is None:
            at = min(at, self._conn.stale_at())
        if at == float("inf"):
            self._cancel_timer()
            return
        if self._timer is not None:
            if self._timer_at <= at:
                return  # it fires first, and re-arms
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._clock.call_at(max(at, now), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        now = self._clock.time()
        self._expire(now)
        if self._live and self._refreshing is None and now >= self._conn.stale_at():
            self._refreshing = asyncio.ensure_future(self._refresh())
        if not self.rate:
            return
        schedule = self._schedule
        while schedule and self._conn.settings is not None:
            due, _, wait = schedule[0]
            if wait.done:
                heapq.heappop(schedule)
                continue
            if due > now or self._pacing.paused_until > now or not self._pacing.take_slot(now):
                break
            heapq.heappop(schedule)
            self._send(wait, now)
        self._arm(now)

    async def _refresh(self) -> None:
        try:
            await self._conn.refresh()
        finally:
            self._refreshing = None
        if self._live:
            self._arm(self._clock.time())

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, wait = heapq.heappop(deadlines)
            if wait.done:
                continue
            if not wait.answered and wait.registered_at >= wait.end_time and now < wait.registered_at + MIN_POLL_BUDGET:
                # Restarted after its deadline: one real answer first, as the trigger promises.
                heapq.heappush(deadlines, (wait.registered_at + MIN_POLL_BUDGET, next(self._seq), wait))
                continue
            self._end(wait, WaitEnd(last_status=wait.last_status))

    # -- one poll -----------------------------------------------------------------------------------

    def _send(self, wait: Wait, now: float) -> None:
        request = self._conn.request_for(wait)
        self._pacing.grow(now)
        self.polls_sent += 1
        task = asyncio.get_running_loop().create_task(self._poll(wait, request, now, self._conn.settings))  # type: ignore[arg-type]
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _poll(self, wait: Wait, request: StatusGet, sent_at: float, settings: ConnectionSettings) -> None:
        try:
            await self._exchange(wait, request, sent_at, settings)
        except Exception as err:
            # A bug, not a gateway answer: the waiting trigger raises it, so the task fails with it.
            if not wait.done:
                log.exception("Polling Pixazo request %s failed unexpectedly", wait.request_id)
                self._end(wait, None)
                if not wait.future.done():
                    wait.future.set_exception(err)

    async def _exchange(self, wait: Wait, request: StatusGet, sent_at: float, settings: ConnectionSettings) -> None:
        try:
            transport = _clients.shared_async_transport(settings)
            get_status = getattr(transport, "get_status", None)  # KeepAliveTransport's fast path
            answer = await (send_by_httpx(transport, request) if get_status is None else get_status(request))
        except httpx.TransportError as exc:
            if not wait.done:  # an untrusted certificate (PixazoTLSError) is terminal: it ends the wait
                self._settle(wait, error_from_exception(exc))
            return
        code = answer.status_code
        if code == 429:
            self._rate_limited(wait, answer.to_response(request.as_request()), sent_at)
            return
        self._pacing.accepted(self._clock.time())  # the gateway took this call: it counts toward the rate it allows
        if wait.done:
            return
        if 200 <= code < 300:
            try:
                body = answer.content()
            except httpx.DecodingError as exc:
                self._failed(wait, PixazoError(f"Pixazo sent an undecodable status for {wait.request_id}: {exc}"))
                return
            self._answered(wait, body)
            return
        error = error_from_response(answer.to_response(request.as_request()), request_id=wait.request_id)
        if isinstance(error, PixazoAuthError):
            await self._refused(wait, error, settings)
        else:
            self._settle(wait, error)

    def _settle(self, wait: Wait, error: PixazoError) -> None:
        # A transient error is a blip: poll again. Any other ends the wait with it.
        if error.transient:
            self._failed(wait, error)
        else:
            self._end(wait, WaitEnd(error=error))

    def _answered(self, wait: Wait, body: bytes) -> None:
        now = self._clock.time()
        try:
            payload = json.loads(body)
            status = _STATUSES[payload["status"]]
            result = RequestResult.from_api(payload) if status.is_terminal else None
        except (ValueError, KeyError, TypeError) as err:
            # A body we cannot read (an HTML page behind a 200, an unknown status): like a blip.
            self._failed(wait, PixazoError(f"Pixazo sent an unreadable status for {wait.request_id}: {err!r}"))
            return
        wait.answered = True
        wait.failing = False
        changed = status is not wait.last_status
        if changed:
            wait.notify(status, None)
        if result is not None:
            self._end(wait, WaitEnd(result=result))
            return
        wait.last_status = status
        self._next(wait, now, grow=not changed)

    def _failed(self, wait: Wait, error: PixazoError) -> None:
        wait.answered = True
        if not wait.failing:
            wait.failing = True
            wait.notify(None, error)
        self._next(wait, self._clock.time(), grow=True)

    def _next(self, wait: Wait, now: float, *, grow: bool) -> None:
        if now >= wait.end_time:
            self._end(wait, WaitEnd(last_status=wait.last_status))
            return
        self._push(wait, wait.next_due(now, grow=grow))
        self._arm(now)

    async def _refused(self, wait: Wait, error: PixazoAuthError, used: ConnectionSettings) -> None:
        # The key may have been rotated at Pixazo since our last read: re-read now, poll on only with a new key.
        current = await self._conn.after_refusal(used)
        if wait.done:
            return
        if current is not None and current.api_key != used.api_key:
            now = self._clock.time()
            self._push(wait, now)
            self._arm(now)
        else:
            self._end(wait, WaitEnd(error=error))

    # -- the loop-wide rate -------------------------------------------------------------------------

    def _rate_limited(self, wait: Wait, response: httpx.Response, sent_at: float) -> None:
        self.rate_limited += 1
        error = error_from_response(response, request_id=wait.request_id)
        assert isinstance(error, PixazoRateLimitError)
        now = self._clock.time()
        retry_after = self._pacing.rate_limited(now, error.retry_after, sent_at)
        if retry_after is not None:
            log.warning(
                "Pixazo answered 429 on connection %s: pausing every status poll of this triggerer for %.1fs, "
                "then polling at %.1f calls/s, growing slowly",
                self.conn_id,
                retry_after,
                self.rate,
            )
        if not wait.done:
            # Keep its place: it was due first, it goes first after the pause.
            self._push(wait, wait.due)
            self._arm(now)


# One poller per event loop and connection id. The loop is a weak key, so a finished loop (a test's,
# or dag.test()'s per-trigger loop) takes its pollers with it.
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, StatusPoller]] = weakref.WeakKeyDictionary()

#: The clock new pollers use (tests swap in a virtual one).
default_clock: Clock = SystemClock()


def status_poller(conn_id: str) -> StatusPoller:
    """The running loop's poller for ``conn_id``, made on first use."""
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(conn_id)
    if poller is None:
        poller = pollers[conn_id] = StatusPoller(conn_id, clock=default_clock)
    return poller


def forget_pollers() -> None:
    """Drop the running loop's pollers (for tests and orderly shutdowns); their waits go on by themselves."""
    _POLLERS.pop(asyncio.get_running_loop(), None)
