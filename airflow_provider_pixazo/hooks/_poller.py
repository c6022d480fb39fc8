"""
One status poller per event loop and connection, shared by every waiting ``PixazoRequestTrigger``.

A triggerer may hold thousands of waits on one Pixazo key. Each polling on its own (own timer, own
connection lookup, own backoff) made the loop as a whole ignore the gateway's rate limit (about half
of all polls answered 429 at 500 waits against 100 calls/s) and spent most of a poll's CPU in
per-trigger machinery. Here one :class:`StatusPoller` serves them all:

* **One schedule.** A wait registers its request id, intervals and deadline and awaits one
  :class:`WaitEnd`. Due polls sit in one heap, earliest due first: a long wait is never starved by
  many short ones, and a wait's last poll is due at its deadline. A second heap holds deadlines, so a
  wait ends at most :data:`DEADLINE_GRACE` seconds after its deadline even when its poll is held back
  by the rate or the gateway does not answer.
* **One rate, learned from the gateway.** Polls are sent evenly spaced at the loop's current rate,
  never above the connection's ``max_polls_per_second``. A 429 pauses the whole loop once for its
  ``Retry-After`` (not once per trigger) and cuts the rate to 90 % of what the gateway accepted since
  the previous 429 (a halving the first time); the rate then grows back by 2 % a second (at least
  1 call/s) while polls go through, up to ``max_polls_per_second``.
* **One connection read.** The connection is read once and re-read every :data:`SETTINGS_TTL`
  seconds, so a rotated key takes effect within a minute; a 401/403 re-reads it at once, and fails
  the wait only if the key did not change. A re-read that fails keeps the last good settings.
* **A short poll path.** Each wait's status request is built once, from the connection's base URL
  (never from a response), with the key in a header object shared by all waits (so a rotated key
  reaches every prebuilt request at once), and sent straight through the shared keep-alive transport
  (:func:`~airflow_provider_pixazo.hooks._clients.shared_async_transport`, which also applies the
  connection's proxy and TLS settings). Only ``status`` is read from an answer until it is terminal.

Time comes from a :class:`Clock`, so tests drive the schedule without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_pixazo.error_mapping import error_from_exception, error_from_response
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoRateLimitError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._auth import API_KEY_HEADER
from airflow_provider_pixazo.hooks._settings import ConnectionSettings, origin_of, settings_from_connection
from airflow_provider_pixazo.models import STATUS_PATH, RequestResult, RequestStatus, validate_request_id

__all__ = ["Clock", "StatusPoller", "SystemClock", "WaitEnd", "forget_pollers", "status_poller"]

log = logging.getLogger(__name__)

#: Seconds a connection read is trusted; a rotated key takes effect within this (plus one poll).
SETTINGS_TTL = 30.0
#: A refused key re-reads the connection at most once in this many seconds (thousands of waits refused
#: one after the other cost a read every few seconds, not one each).
REREAD_AFTER_REFUSAL = 5.0
#: Factor by which a wait's poll interval grows after each poll that saw no change.
BACKOFF_FACTOR = 1.25
#: A wait registered after its deadline (a triggerer restarted late) gets this long for one answer.
MIN_POLL_BUDGET = 30.0
#: How late after its deadline a wait may end when its last poll is held back or unanswered.
DEADLINE_GRACE = 1.0
#: The rate never drops below this (one poll every 5 s); a 429 pause still stops everything.
MIN_RATE = 0.2
#: Share of the accepted rate kept after a 429 (multiplicative decrease toward what the gateway took).
DECREASE = 0.9
#: Relative growth of the rate per second while polls go through (additive at low rates: >= 1/s).
INCREASE = 0.02
#: Shortest time between two 429 episodes that tells the gateway's rate (else: halve).
EPISODE_MIN = 0.5
#: Retry-After assumed for a 429 without one, and the longest one honoured.
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 120.0
#: Polls a late timer may catch up at once, in seconds of schedule (at least one slot).
PACING_SLACK = 0.005

_STATUSES: dict[Any, RequestStatus] = {s.value: s for s in RequestStatus}


class Clock(Protocol):
    """Where the poller reads the time (epoch seconds) and schedules its one timer."""

    def time(self) -> float:
        """Seconds since the epoch (trigger deadlines are epoch times)."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        """Run ``callback`` on the loop at clock time ``when``; returns a handle with ``cancel()``."""
        ...


class SystemClock:
    """The real clock: ``time.time()`` and the running loop's timers."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Schedule ``callback`` on the running loop ``when - now`` seconds from now."""
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)


@dataclass(frozen=True, slots=True)
class WaitEnd:
    """
    How one wait ended: a terminal result, a terminal error, or (neither) the deadline.

    :param result: the terminal answer (COMPLETED, FAILED or ERROR).
    :param error: why waiting cannot go on (401/403, 404, an unusable or missing connection...).
    :param last_status: the last status seen, for a wait that reached its deadline.
    """

    result: RequestResult | None = None
    error: Exception | None = None
    last_status: RequestStatus | None = None


#: Called with a new status (once per change), or with the first error of a run of failed polls.
UpdateCallback = Callable[[RequestStatus | None, PixazoError | None], None]


class _Wait:
    """One registered request id: its schedule, its prebuilt request, and the future it ends with."""

    __slots__ = (
        "answered",
        "built_gen",
        "cap",
        "done",
        "due",
        "end_time",
        "failing",
        "future",
        "interval",
        "last_status",
        "on_update",
        "registered_at",
        "request",
        "request_id",
    )

    def __init__(
        self,
        request_id: str,
        interval: float,
        cap: float,
        end_time: float,
        now: float,
        future: asyncio.Future[WaitEnd],
        on_update: UpdateCallback | None,
    ) -> None:
        self.request_id = request_id
        self.interval = interval
        self.cap = cap
        self.end_time = end_time
        self.registered_at = now
        self.future = future
        self.on_update = on_update
        self.due = now
        self.last_status: RequestStatus | None = None
        self.request: httpx.Request | None = None
        self.built_gen = -1
        self.answered = False  # some poll got an answer (or a definite failure)
        self.failing = False  # the last poll failed; the next failure is not reported again
        self.done = False

    def notify(self, status: RequestStatus | None, error: PixazoError | None) -> None:
        if self.on_update is not None:
            try:
                self.on_update(status, error)
            except Exception:  # a logging callback must never stop the loop's poller
                log.exception("Status callback for Pixazo request %s failed", self.request_id)


async def _read_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return await BaseHook.aget_connection(conn_id)


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
        self._load_connection = load_connection or _read_connection
        # Connection
        self._settings: ConnectionSettings | None = None
        self._settings_at = float("-inf")
        self._gen = 0
        self._headers: httpx.Headers | None = None
        self._extensions: dict[str, Any] = {}
        self._loading: asyncio.Future[ConnectionSettings] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._reread_at = float("-inf")
        # Schedule
        self._live: set[_Wait] = set()
        self._schedule: list[tuple[float, int, _Wait]] = []
        self._deadlines: list[tuple[float, int, _Wait]] = []
        self._seq = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timer: Any = None
        self._timer_at = float("inf")
        # Rate
        #: Status calls per second currently allowed (learned; at most ``max_polls_per_second``).
        self.rate = 0.0
        self._max_rate = 0.0
        self._next_slot = float("-inf")
        #: No poll is sent before this time (the last 429's Retry-After, for the whole loop).
        self.paused_until = float("-inf")
        self._decreased_at = float("-inf")
        self._resumed_at = float("-inf")
        self._last_growth = float("-inf")
        self._episode_ok = 0
        #: Polls sent and polls answered 429 (for tests, benchmarks and logs).
        self.polls_sent = 0
        self.rate_limited = 0

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
            if self._settings is None:
                await self._load()
        except (AirflowNotFoundException, PixazoError) as err:
            return WaitEnd(error=err)
        now = self._clock.time()
        future: asyncio.Future[WaitEnd] = asyncio.get_running_loop().create_future()
        wait = _Wait(
            request_id,
            poll_interval,
            max(poll_interval, max_poll_interval),
            end_time,
            now,
            future,
            on_update,
        )
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

    def _push(self, wait: _Wait, due: float) -> None:
        wait.due = due
        heapq.heappush(self._schedule, (due, next(self._seq), wait))

    def _end(self, wait: _Wait, end: WaitEnd | None) -> None:
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
            # Ended waits leave their entries behind (removing from a heap is O(n)); sweep them now
            # and then, so thousands of waits coming and going leave nothing.
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
            at = max(schedule[0][0], self._next_slot, self.paused_until)
        if deadlines:
            at = min(at, deadlines[0][0])
        if self._live and self._refreshing is None:
            at = min(at, self._settings_at + SETTINGS_TTL)
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
        if self._live and self._refreshing is None and now >= self._settings_at + SETTINGS_TTL:
            self._refreshing = asyncio.ensure_future(self._refresh())
        if not self.rate:
            return
        schedule = self._schedule
        while schedule and self._settings is not None:
            due, _, wait = schedule[0]
            if wait.done:
                heapq.heappop(schedule)
                continue
            if due > now or self.paused_until > now:
                break
            # A timer that fired a little late may catch up a slot or so; after a quiet spell the
            # schedule starts afresh at now (no burst of the slots nobody used).
            slot = self._next_slot
            if slot < now - max(PACING_SLACK, 1.0 / self.rate):
                slot = now
            elif slot > now:
                break
            heapq.heappop(schedule)
            self._next_slot = slot + 1.0 / self.rate
            self._send(wait, now)
        self._arm(now)

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

    def _send(self, wait: _Wait, now: float) -> None:
        request = wait.request
        if request is None or wait.built_gen != self._gen:
            request = wait.request = self._build(wait.request_id)
            wait.built_gen = self._gen
        elif request.headers is not self._headers:
            request.headers = self._headers  # type: ignore[assignment]
        self._grow(now)
        self.polls_sent += 1
        task = asyncio.get_running_loop().create_task(self._poll(wait, request, now, self._settings))  # type: ignore[arg-type]
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _build(self, request_id: str) -> httpx.Request:
        settings = self._settings
        assert settings is not None
        assert self._headers is not None
        # From the connection's base URL and a validated id: never a URL from a response.
        request = httpx.Request("GET", settings.base_url + STATUS_PATH.format(request_id=request_id))
        if origin_of(request.url) != settings.origin:  # pragma: no cover - guards the key, cannot happen
            raise PixazoValidationError("request_id", request_id, "an id that keeps the status URL on the gateway")
        # Shared by every wait: one object to swap when the key rotates, and no copy per request.
        request.headers = self._headers
        request.extensions = self._extensions
        return request

    async def _poll(self, wait: _Wait, request: httpx.Request, sent_at: float, settings: ConnectionSettings) -> None:
        try:
            await self._exchange(wait, request, sent_at, settings)
        except Exception as err:
            # A bug, not a gateway answer: the waiting trigger raises it, so the task fails with it.
            if not wait.done:
                log.exception("Polling Pixazo request %s failed unexpectedly", wait.request_id)
                self._end(wait, None)
                if not wait.future.done():
                    wait.future.set_exception(err)

    async def _exchange(
        self, wait: _Wait, request: httpx.Request, sent_at: float, settings: ConnectionSettings
    ) -> None:
        try:
            response = await _clients.shared_async_transport(settings).handle_async_request(request)
            response.request = request  # as AsyncClient.send does: error messages name the call
            body = await response.aread()
        except httpx.TransportError as exc:
            if not wait.done:
                self._failed(wait, error_from_exception(exc))
            return
        code = response.status_code
        if code == 429:
            self._rate_limited(wait, response, sent_at)
            return
        self._episode_ok += 1  # the gateway took this call: it counts toward the rate it allows
        if wait.done:
            return
        if 200 <= code < 300:
            self._answered(wait, body)
            return
        error = error_from_response(response, request_id=wait.request_id)
        if error.transient:
            self._failed(wait, error)
        elif isinstance(error, PixazoAuthError):
            await self._refused(wait, error, settings)
        else:
            self._end(wait, WaitEnd(error=error))

    def _answered(self, wait: _Wait, body: bytes) -> None:
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

    def _failed(self, wait: _Wait, error: PixazoError) -> None:
        wait.answered = True
        if not wait.failing:
            wait.failing = True
            wait.notify(None, error)
        self._next(wait, self._clock.time(), grow=True)

    def _next(self, wait: _Wait, now: float, *, grow: bool) -> None:
        if now >= wait.end_time:
            self._end(wait, WaitEnd(last_status=wait.last_status))
            return
        delay = wait.interval
        if grow:
            wait.interval = min(wait.interval * BACKOFF_FACTOR, wait.cap)
        self._push(wait, min(now + delay, wait.end_time))
        self._arm(now)

    async def _refused(self, wait: _Wait, error: PixazoAuthError, used: ConnectionSettings) -> None:
        # The key may have been rotated at Pixazo before our next re-read: read the connection now,
        # and poll again only if it holds another key.
        current = self._settings
        now = self._clock.time()
        if current is not None and current.api_key == used.api_key and now >= self._reread_at + REREAD_AFTER_REFUSAL:
            self._reread_at = now
            try:
                current = await self._load()
            except Exception as err:  # the read failed: the refusal stands
                log.warning("Could not re-read connection %s after a refused key: %s", self.conn_id, err)
        if wait.done:
            return
        if current is not None and current.api_key != used.api_key:
            now = self._clock.time()
            self._push(wait, now)
            self._arm(now)
        else:
            self._end(wait, WaitEnd(error=error))

    # -- the loop-wide rate -------------------------------------------------------------------------

    def _rate_limited(self, wait: _Wait, response: httpx.Response, sent_at: float) -> None:
        self.rate_limited += 1
        error = error_from_response(response, request_id=wait.request_id)
        assert isinstance(error, PixazoRateLimitError)
        now = self._clock.time()
        retry_after = min(MAX_RETRY_AFTER, DEFAULT_RETRY_AFTER if error.retry_after is None else error.retry_after)
        # Once for the whole loop: the pause covers every wait, later 429s only extend it.
        self.paused_until = max(self.paused_until, now + retry_after)
        if sent_at > self._decreased_at:
            # The first 429 of an episode (polls sent before the last cut do not cut again). Since
            # the end of the previous pause the gateway's allowance went from what it saved during
            # the pause to nothing, so the calls it took over that time is the rate it allows, plus
            # the little it saved (for a token bucket with this loop as its only client; less when
            # others share the key). The first time nothing is known yet: halve.
            span = now - self._resumed_at
            allowed = self._episode_ok / span if EPISODE_MIN <= span < float("inf") else self.rate / 2
            self.rate = max(MIN_RATE, min(self.rate, allowed) * DECREASE)
            self._decreased_at = now
            self._episode_ok = 0
            self._last_growth = self.paused_until
            log.warning(
                "Pixazo answered 429 on connection %s: pausing every status poll of this triggerer for %.1fs, "
                "then polling at %.1f calls/s at most",
                self.conn_id,
                retry_after,
                self.rate,
            )
        self._resumed_at = self.paused_until
        if not wait.done:
            # Keep its place: it was due first, it goes first after the pause.
            self._push(wait, wait.due)
            self._arm(now)

    def _grow(self, now: float) -> None:
        if now <= self._last_growth:
            return
        if self._last_growth > float("-inf"):
            elapsed = min(now - self._last_growth, 1.0)
            self.rate = min(self._max_rate, self.rate + max(1.0, self.rate * INCREASE) * elapsed)
        self._last_growth = now

    # -- the connection -----------------------------------------------------------------------------

    async def _load(self) -> ConnectionSettings:
        """Read the connection (one read shared by every caller meanwhile) and apply it."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._read())
        loading = self._loading
        try:
            return await asyncio.shield(loading)
        finally:
            if loading.done() and self._loading is loading:
                self._loading = None

    async def _read(self) -> ConnectionSettings:
        conn = await self._load_connection(self.conn_id)
        settings = settings_from_connection(conn)
        self._apply(settings)
        return settings

    async def _refresh(self) -> None:
        try:
            await self._load()
        except Exception as err:
            # Keep polling with the last good settings; a refused key still ends waits (401/403).
            log.warning("Could not re-read Pixazo connection %s, keeping its previous settings: %s", self.conn_id, err)
            self._settings_at = self._clock.time()
        finally:
            self._refreshing = None
        if self._live:
            self._arm(self._clock.time())

    def _apply(self, settings: ConnectionSettings) -> None:
        self._settings_at = self._clock.time()
        if settings == self._settings:
            return
        self._settings = settings
        self._gen += 1
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
        self._headers = template.headers
        # No pool timeout: a poll waiting for a connection slot is bounded by the slots' own read
        # timeouts and by its wait's deadline, and the transport then sets no timer per poll for it.
        self._extensions = {"timeout": {**settings.httpx_timeout.as_dict(), "pool": None}}
        self._max_rate = settings.max_polls_per_second
        self.rate = self._max_rate if self.rate == 0.0 else min(self.rate, self._max_rate)


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
