"""
Submitting the batch: at most ``max_in_flight`` submits at a time, each paid once across tries.

Submits go through the hook's sync :meth:`~airflow_provider_pixazo.hooks.pixazo.PixazoHook.submit` in
a thread pool (one pooled, kept-alive httpx client shared by the threads), so each honours 429 and
``Retry-After`` and is never resent when it may have been accepted (:mod:`airflow_provider_pixazo.retry`).

Before an item's submit is sent, its ``intent`` is durable in the ledger; its request id is recorded
after. Ledger writes are coalesced: when half the slots are free, one flush records the ids that came
back since the last flush *and* the intents of the items about to be sent (usually one key written),
so a 1 000-item batch costs about ``2 * 1000 / max_in_flight`` writes, not 2 000. Not here: choosing
which items to submit (the operator reads the ledger), waiting, storing.
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

__all__ = ["PROGRESS_EVERY", "SubmitReport", "submit_all"]

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
    writes_before = ledger.writes
    pending = deque(items)
    in_flight: dict[concurrent.futures.Future[Submission], BatchItem] = {}
    # With a durable ledger every refill costs a write: refill when half the slots are free.
    refill_at = max(1, max_in_flight // 2) if ledger.durable else 1
    progress = _Progress(len(items), clock, log)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="pixazo-submit") as pool:
        while pending or in_flight:
            free = max_in_flight - len(in_flight)
            if pending and report.stopped_by is None and (free >= refill_at or not in_flight):
                wave = [pending.popleft() for _ in range(min(free, len(pending)))]
                for item in wave:
                    ledger.mark(item, EntryState.INTENT)
                # The intents (and the ids that came back since the last flush) are durable before
                # any of these submits leaves this machine.
                ledger.flush()
                for item in wave:
                    in_flight[pool.submit(submit, item.request)] = item
            if not in_flight:
                break
            done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                item = in_flight.pop(future)
                _record(item, future, ledger, report, log)
            progress.maybe_log(report)
        for item in pending:
            ledger.mark(item, EntryState.REFUSED, error=f"not submitted: {report.stopped_by}")
            report.not_sent += 1
        ledger.flush()
    report.seconds = clock() - started
    report.ledger_writes = ledger.writes - writes_before
    log.info(
        "Submitted %d of %d item(s) in %.1fs: %d refused, %d uncertain, %d not sent (%d ledger write(s))",
        report.submitted,
        len(items),
        report.seconds,
        report.refused,
        report.uncertain,
        report.not_sent,
        report.ledger_writes,
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
