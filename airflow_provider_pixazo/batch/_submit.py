"""
Submitting the batch: at most ``max_in_flight`` submits at a time, each paid once across tries.

Submits go through the hook's sync :meth:`~airflow_provider_pixazo.hooks.pixazo.PixazoHook.submit` in
a thread pool (one pooled, kept-alive httpx client shared by the threads), so each honours 429 and
``Retry-After`` and is never resent when it may have been accepted (:mod:`airflow_provider_pixazo.retry`).

Before an item's submit is sent, its ``intent`` is durable in the ledger; its request id is recorded
after. Each ledger write is a round trip from the worker to the API server (66-76 ms each measured
under ``dag.test()`` on a 2-core machine at load 20-28), so writes are pipelined and coalesced: one
writer thread keeps the intents of up to :data:`WINDOW` x ``max_in_flight`` upcoming items durable
ahead of the senders, and each write carries every id and intent gathered while the previous one was in
flight (usually one key); ids alone never take a write the senders are waiting for. Measured for 1 000
items, ``max_in_flight=8``, against the emulator at load 38: a 70 ms store, 79 writes and 6.3 s; a
10 ms store, 124 writes and 2.8 s; an instant one, 2.6 s. A killed try leaves at most
``(1 + 2 * WINDOW) * max_in_flight`` items ``uncertain`` (in flight, durable and waiting, being
written): the price of never paying twice.
Not here: choosing which items to submit (the operator reads the ledger), waiting, storing.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_pixazo.batch._ledger import EntryState
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoSubmitUncertainError,
    PixazoTLSError,
    PixazoValidationError,
)

if TYPE_CHECKING:
    from airflow_provider_pixazo.batch._items import BatchItem
    from airflow_provider_pixazo.batch._ledger import Ledger
    from airflow_provider_pixazo.models import SubmitRequest
    from airflow_provider_pixazo.responses import Submission

__all__ = ["PROGRESS_EVERY", "WINDOW", "SubmitReport", "submit_all"]

#: Intents kept durable ahead of the senders, in multiples of ``max_in_flight``: items per ledger write.
WINDOW = 3
#: Seconds between two progress lines (also one every tenth of the items).
PROGRESS_EVERY = 30.0
# Refused submits after which nothing else can succeed: the key, the wallet, the TLS set-up.
_STOP_ALL = (PixazoAuthError, PixazoInsufficientBalanceError, PixazoTLSError, PixazoValidationError)


@dataclass
class SubmitReport:
    """What one submit phase did."""

    submitted: int = 0
    refused: int = 0
    uncertain: int = 0
    not_sent: int = 0
    stopped_by: str | None = None
    seconds: float = 0.0
    ledger_writes: int = 0
    ledger_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def submit_all(
    submit: Callable[[SubmitRequest], Submission],
    items: Sequence[BatchItem],
    ledger: Ledger,
    *,
    max_in_flight: int,
    log: Any,
    clock: Callable[[], float] = time.monotonic,
) -> SubmitReport:
    """
    Submit ``items``, recording each one's intent before and its request id (or refusal) after, in ``ledger``.

    An error that may mean Pixazo took the request leaves the item at ``intent`` (reported ``uncertain``,
    never resent); an error that proves it did not (400, 401/403, 402, 429 after the hook's retries, a
    connection never made) marks it ``refused``. A refusal that no other submit can overcome (a bad key,
    an empty wallet) stops the phase: the items not yet sent are ``refused`` without being sent.
    """
    report = SubmitReport()
    if not items:
        return report
    started = clock()
    writes_before, write_seconds_before = ledger.writes, ledger.write_seconds
    pending = deque(items)  # no intent yet
    ready: deque[BatchItem] = deque()  # intent durable, not sent yet
    writing: list[BatchItem] = []  # intent in the write under way
    in_flight: dict[concurrent.futures.Future[Any], BatchItem] = {}
    write: concurrent.futures.Future[int] | None = None
    progress = _Progress(len(items), clock, log)
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="pixazo-submit") as pool,
        concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixazo-ledger") as writer,
    ):
        while True:
            while ready and len(in_flight) < max_in_flight and report.stopped_by is None:
                item = ready.popleft()
                in_flight[pool.submit(submit, item.request)] = item
            if write is None:
                # The next items' intents, and every id recorded since the last write, in one write.
                room = WINDOW * max_in_flight - len(ready) if report.stopped_by is None else 0
                writing = [pending.popleft() for _ in range(min(max(room, 0), len(pending)))]
                for item in writing:
                    ledger.mark(item, EntryState.INTENT)
                # Ids alone wait for the next intents (or the end): a write that carries no intent
                # would only delay the one the senders need.
                snapshots = ledger.take_dirty() if writing or not pending or report.stopped_by else []
                if snapshots:
                    write = writer.submit(ledger.write, snapshots)
                else:  # nothing to make durable (Airflow 3.2: no store): the intents are ready as they are
                    ready.extend(writing)
                    writing = []
                    if ready and len(in_flight) < max_in_flight and report.stopped_by is None:
                        continue
            waiting_on: set[concurrent.futures.Future[Any]] = set(in_flight)
            if write is not None:
                waiting_on.add(write)
            if not waiting_on:
                break
            done, _ = concurrent.futures.wait(waiting_on, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                if future is write:
                    write.result()  # a failed write fails the task: its items were never sent
                    write = None
                    ready.extend(writing)
                    writing = []
                else:
                    _record(in_flight.pop(future), future, ledger, report, log)
            progress.maybe_log(report)
        for item in [*ready, *pending]:
            ledger.mark(item, EntryState.REFUSED, error=f"not submitted: {report.stopped_by}")
            report.not_sent += 1
        ledger.flush()
    report.seconds = clock() - started
    report.ledger_writes = ledger.writes - writes_before
    report.ledger_seconds = ledger.write_seconds - write_seconds_before
    log.info(
        "Submitted %d of %d item(s) in %.1fs: %d refused, %d uncertain, %d not sent "
        "(%d ledger write(s) to the task state store, %.2fs)",
        report.submitted,
        len(items),
        report.seconds,
        report.refused,
        report.uncertain,
        report.not_sent,
        report.ledger_writes,
        report.ledger_seconds,
    )
    return report


def _record(
    item: BatchItem, future: concurrent.futures.Future[Submission], ledger: Ledger, report: SubmitReport, log: Any
) -> None:
    try:
        submission = future.result()
    except PixazoError as err:
        if err.may_have_been_accepted or isinstance(err, PixazoSubmitUncertainError):
            ledger.mark(item, EntryState.INTENT, error=str(err))
            report.uncertain += 1
            log.error("Item %d (key %s) is uncertain, not resent: %s", item.index, item.key, err)
        else:
            ledger.mark(item, EntryState.REFUSED, error=str(err))
            report.refused += 1
            log.error("Item %d (key %s) was refused: %s", item.index, item.key, err)
            if isinstance(err, _STOP_ALL) and report.stopped_by is None:
                report.stopped_by = f"{type(err).__name__}: {err}"
                log.error("Stopping the submits: no other item can succeed (%s)", err)
        report.errors.append(str(err))
        return
    except Exception as err:  # an unreadable 2xx answer, say: the request may well have been taken
        ledger.mark(item, EntryState.INTENT, error=f"{type(err).__name__}: {err}")
        report.uncertain += 1
        log.error("Item %d (key %s) is uncertain, not resent: %s", item.index, item.key, err)
        return
    ledger.mark(item, EntryState.SUBMITTED, request_id=submission.request_id)
    report.submitted += 1


class _Progress:
    """A progress line every tenth of the items or every :data:`PROGRESS_EVERY` seconds, whichever first."""

    def __init__(self, total: int, clock: Callable[[], float], log: Any) -> None:
        self.total = total
        self.clock = clock
        self.log = log
        self.step = max(1, total // 10)
        self.next_count = self.step
        self.next_time = clock() + PROGRESS_EVERY

    def maybe_log(self, report: SubmitReport) -> None:
        done = report.submitted + report.refused + report.uncertain
        now = self.clock()
        if done >= self.total or (done < self.next_count and now < self.next_time):
            return
        self.log.info(
            "%d/%d submitted (%d refused, %d uncertain)", report.submitted, self.total, report.refused, report.uncertain
        )
        self.next_count = done + self.step
        self.next_time = now + PROGRESS_EVERY
