"""
The trigger that waits for every request of a batch at once (:class:`PixazoBatchTrigger`).

One trigger per batch task, however many prompts: each request id is one wait on the triggerer's shared
status poller (:mod:`airflow_provider_pixazo.hooks._poller`), so a thousand ids cost the triggerer a
thousand timers in one schedule, not a thousand triggers. It yields exactly one event:
``{"status": "done", "request_ids": [...], "results": [[outcome, media_urls, media_type, error,
model_id, pixazo_status], ...], "batch": {...}}``, the results in ``request_ids`` order (see
:class:`~airflow_provider_pixazo.batch._outcomes.ItemOutcome`) and ``batch`` as the task gave it.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.responses import validate_request_id
from airflow_provider_pixazo.waiting import non_negative_seconds, positive_seconds

__all__ = ["BATCH_EVENT_STATUS", "PixazoBatchTrigger"]

#: The ``status`` of the trigger's one event.
BATCH_EVENT_STATUS = "done"


class PixazoBatchTrigger(BaseTrigger):
    """
    Poll Pixazo until every request of a batch is COMPLETED, FAILED or ERROR, or a deadline passes.

    Progress goes to the trigger's log ("412/1000 completed, 3 failed") every tenth of the batch or
    every 30 seconds; each FAILED or ERROR request is logged with Pixazo's reason. Transient polling
    errors never end a wait.

    :param request_ids: the Pixazo request ids to wait for.
    :param pixazo_conn_id: the Airflow connection holding the Pixazo API key (never the key itself).
    :param poll_interval: seconds between the first polls of each request.
    :param timeout: seconds to wait in all; used to compute ``end_time``.
    :param max_poll_interval: each request's poll interval grows by 25% after each unchanged poll, up to this.
    :param end_time: the absolute deadline (epoch seconds), computed as now + ``timeout`` when not given
        and always serialized, so a triggerer restart does not restart the clock.
    :param batch: JSON-safe facts the task needs when it resumes (which item each id belongs to, the
        outcomes known before the wait), handed back as they are in the event. They travel with the
        trigger rather than in ``defer(kwargs=...)``: ``dag.test()`` of Airflow 3.3 replaces a deferred
        task's ``next_kwargs`` with the event alone when it runs the trigger inline
        (``airflow/sdk/definitions/dag.py``, ``ti.next_kwargs = {"event": ...}``).
    """

    def __init__(
        self,
        request_ids: Sequence[str],
        pixazo_conn_id: str = "pixazo_default",
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        max_poll_interval: float = 60.0,
        end_time: float | None = None,
        batch: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        if isinstance(request_ids, str) or not isinstance(request_ids, Sequence):
            raise PixazoValidationError("request_ids", request_ids, "a list of Pixazo request ids")
        self.request_ids = [validate_request_id(request_id) for request_id in request_ids]
        self.pixazo_conn_id = pixazo_conn_id
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)
        self.timeout = non_negative_seconds("timeout", timeout)
        self.end_time = float(end_time) if end_time is not None else time.time() + self.timeout
        self.batch = dict(batch) if batch is not None else {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-safe kwargs (the connection id only: never a key)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_ids": list(self.request_ids),
                "pixazo_conn_id": self.pixazo_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "max_poll_interval": self.max_poll_interval,
                "end_time": self.end_time,
                "batch": self.batch,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on every request at once; yield one event with each one's outcome."""
        from airflow_provider_pixazo.batch._wait import wait_all

        self.log.info(
            "Waiting for %d Pixazo request(s) until %s",
            len(self.request_ids),
            datetime.datetime.fromtimestamp(self.end_time, datetime.UTC).isoformat(timespec="seconds"),
        )
        outcomes = await wait_all(
            self.pixazo_conn_id,
            self.request_ids,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            end_time=self.end_time,
            log=self.log,
            clock=time.time,
        )
        yield TriggerEvent(
            {
                "status": BATCH_EVENT_STATUS,
                "request_ids": list(self.request_ids),
                "results": [outcome.to_wire() for outcome in outcomes],
                "batch": self.batch,
            }
        )
