"""
The status poller's clock and the records of its waits (:mod:`._poller` schedules them).

:class:`Clock` is where the poller reads the time and sets its one timer (tests pass a virtual
one); :class:`WaitEnd` is how a wait ends; :class:`Wait` is one registered request id. No
scheduling, rate or connection logic here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_pixazo.exceptions import PixazoError
from airflow_provider_pixazo.hooks._status_wire import StatusGet
from airflow_provider_pixazo.responses import RequestResult, RequestStatus

__all__ = ["Clock", "SystemClock", "UpdateCallback", "Wait", "WaitEnd"]

log = logging.getLogger(__name__)

#: Factor by which a wait's poll interval grows after each poll that saw no change.
BACKOFF_FACTOR = 1.25


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


class Wait:
    """
    One registered request id: its schedule, its prebuilt status GET, and the future it ends with.

    :param request_id: the Pixazo request id waited on.
    :param interval: seconds to the next poll after an answer (grows while nothing changes).
    :param cap: the longest ``interval`` grows to.
    :param end_time: the deadline, in clock seconds.
    :param now: when the wait registered.
    :param future: resolved with the wait's :class:`WaitEnd`.
    :param on_update: told of each new status and of the first error of each run of failures.
    """

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
        self.request: StatusGet | None = None
        self.built_gen = -1
        self.answered = False  # some poll got an answer (or a definite failure)
        self.failing = False  # the last poll failed; the next failure is not reported again
        self.done = False

    def next_due(self, now: float, *, grow: bool) -> float:
        """When to poll next after a poll at ``now``; ``grow`` backs the interval off after it."""
        delay = self.interval
        if grow:
            self.interval = min(self.interval * BACKOFF_FACTOR, self.cap)
        return min(now + delay, self.end_time)

    def notify(self, status: RequestStatus | None, error: PixazoError | None) -> None:
        if self.on_update is not None:
            try:
                self.on_update(status, error)
            except Exception:  # a logging callback must never stop the loop's poller
                log.exception("Status callback for Pixazo request %s failed", self.request_id)
