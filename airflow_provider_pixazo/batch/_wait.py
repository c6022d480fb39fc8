"""
Waiting on every request of the batch at once, on the event loop's shared status poller.

The same coroutine serves the trigger (deferrable) and the worker (``asyncio.run`` when not
deferrable): one wait per request id on :func:`airflow_provider_pixazo.hooks._poller.status_poller`,
which keeps one schedule for all of them, paces polls within the connection's rate and backs off
together on 429. Progress is logged every tenth of the batch or every :data:`PROGRESS_EVERY` seconds.
Not here: what the task does with the outcomes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_pixazo.batch._outcomes import ItemOutcome, Outcome, empty_counts
from airflow_provider_pixazo.exceptions import PixazoError
from airflow_provider_pixazo.hooks._waits import WaitEnd
from airflow_provider_pixazo.responses import RequestStatus

__all__ = ["PROGRESS_EVERY", "outcome_of", "wait_all"]

#: Seconds between two progress lines (there is also one every tenth of the batch).
PROGRESS_EVERY = 30.0

_OUTCOME_OF_STATUS = {
    RequestStatus.COMPLETED: Outcome.COMPLETED,
    RequestStatus.FAILED: Outcome.FAILED,
    RequestStatus.ERROR: Outcome.ERROR,
}


async def wait_all(
    conn_id: str,
    request_ids: Sequence[str],
    *,
    poll_interval: float,
    max_poll_interval: float,
    end_time: float,
    log: Any,
    clock: Callable[[], float] = time.time,
    on_end: Callable[[int, ItemOutcome], None] | None = None,
) -> list[ItemOutcome]:
    """
    Wait until every request ends or ``end_time`` (epoch seconds) passes; the outcomes, in ``request_ids`` order.

    A transient polling error never ends a wait (the poller retries); one that retrying cannot fix (an
    unknown id, a refused key) ends that item as ``error``.

    :param on_end: called on the loop with each request's position and outcome as it ends (the worker
        starts storing a completed item's images then); it must not block.
    """
    from airflow_provider_pixazo.hooks import _poller

    poller = _poller.status_poller(conn_id)
    progress = _Progress(len(request_ids), clock, log)

    def on_update(status: RequestStatus | None, error: PixazoError | None) -> None:
        if error is not None:
            progress.poll_failed(error)

    async def one(index: int, request_id: str) -> None:
        end = await poller.wait(
            request_id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            end_time=end_time,
            on_update=on_update,
        )
        outcome = outcome_of(request_id, end)
        results[index] = outcome
        progress.ended(request_id, outcome)
        if on_end is not None:
            on_end(index, outcome)

    async def ticker() -> None:
        # A line even while nothing ends, so a long wait shows it is alive.
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            if clock() >= progress.next_time:
                progress.log_line()

    results: list[ItemOutcome | None] = [None] * len(request_ids)
    ticking = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(one(index, request_id) for index, request_id in enumerate(request_ids)))
    finally:
        ticking.cancel()
    progress.log_line(final=True)
    return [outcome for outcome in results if outcome is not None]


def outcome_of(request_id: str, end: WaitEnd) -> ItemOutcome:
    """The item's outcome for how its wait ended."""
    if end.result is not None:
        result = end.result
        outcome = _OUTCOME_OF_STATUS[result.status]
        error = None
        if outcome is not Outcome.COMPLETED:
            error = f"Pixazo request {request_id} ended {result.status.value}: {result.error or 'no reason given'}"
        elif not result.media_urls:
            outcome, error = Outcome.ERROR, f"Pixazo request {request_id} is COMPLETED but lists no media URL"
        return ItemOutcome(outcome, result.media_urls, result.media_type, error, result.model_id, result.status.value)
    if end.error is not None:
        return ItemOutcome(Outcome.ERROR, error=f"Cannot wait for Pixazo request {request_id}: {end.error}")
    last = end.last_status.value if end.last_status is not None else "unknown"
    return ItemOutcome(
        Outcome.TIMED_OUT,
        error=f"Pixazo request {request_id} did not finish in time (last status: {last}); a retry waits on it again",
    )


class _Progress:
    """Counts of ended waits, logged every tenth of the batch or every :data:`PROGRESS_EVERY` seconds."""

    def __init__(self, total: int, clock: Callable[[], float], log: Any) -> None:
        self.total = total
        self.clock = clock
        self.log = log
        self.counts = empty_counts()
        self.ended_count = 0
        self.step = max(1, total // 10)
        self.next_count = self.step
        self.next_time = clock() + PROGRESS_EVERY
        self.poll_errors = 0

    def ended(self, request_id: str, outcome: ItemOutcome) -> None:
        self.counts[outcome.outcome.value] += 1
        self.ended_count += 1
        if outcome.outcome in (Outcome.FAILED, Outcome.ERROR):
            self.log.warning("%s", outcome.error)
        if self.ended_count >= self.next_count or self.clock() >= self.next_time:
            self.log_line()

    def poll_failed(self, error: PixazoError) -> None:
        # The first failure of each wait's run of failures: with a thousand waits on one gateway that is
        # down, one line here and a count on the progress line, not a thousand lines.
        if self.poll_errors == 0:
            self.log.warning("Polling Pixazo failed; polling goes on: %s", error)
        self.poll_errors += 1

    def log_line(self, *, final: bool = False) -> None:
        c = self.counts
        others = ", ".join(f"{c[name]} {name}" for name in ("error", "timed_out") if c[name])
        self.log.info(
            "%s%d/%d completed, %d failed%s%s",
            "Batch wait over: " if final else "",
            c["completed"],
            self.total,
            c["failed"],
            f", {others}" if others else "",
            f" ({self.poll_errors} failed poll run(s) so far)" if self.poll_errors else "",
        )
        self.next_count = self.ended_count + self.step
        self.next_time = self.clock() + PROGRESS_EVERY
