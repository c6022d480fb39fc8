"""
The trigger that waits for a Pixazo request to finish, shared by the deferrable operators and the sensor.

It yields exactly one event, built by :func:`~airflow_provider_pixazo.events.make_event_payload`;
tasks resume with :func:`~airflow_provider_pixazo.events.result_from_event`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_pixazo.events import WaitOutcome, make_event_payload
from airflow_provider_pixazo.exceptions import (
    PixazoAPIError,
    PixazoAuthError,
    PixazoError,
    PixazoNotFoundError,
)
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import RequestResult, RequestStatus, validate_request_id
from airflow_provider_pixazo.waiting import non_negative_seconds, positive_seconds

__all__ = ["PixazoRequestTrigger"]

#: Factor by which the poll interval grows after each poll that saw no change.
BACKOFF_FACTOR = 1.25
#: However close the deadline, a poll (hook retries included) is allowed at least this long, so a
#: trigger restarted just before its deadline still gets one real answer.
MIN_POLL_BUDGET = 30.0


class PixazoRequestTrigger(BaseTrigger):
    """
    Poll Pixazo's status endpoint until a request is COMPLETED, FAILED or ERROR, or a deadline passes.

    Cheap while waiting: the status is read with the hook's async API, on the event loop's shared
    pooled client, and the connection is looked up once per trigger, not once per poll.
    Transient errors (5xx, 429, network), once the hook's own retries are spent, are logged and
    polling goes on: a network blip never fails the task.

    :param request_id: the Pixazo request id to wait for.
    :param pixazo_conn_id: the Airflow connection holding the Pixazo API key.
    :param poll_interval: seconds between the first polls.
    :param timeout: seconds to wait in all; used to compute ``end_time`` and in the timeout message.
    :param max_poll_interval: the poll interval grows by 25% after each unchanged poll, up to this.
    :param end_time: the absolute deadline (epoch seconds). Computed as now + ``timeout`` when not
        given, and always serialized, so a triggerer restart does not restart the clock.
    """

    def __init__(
        self,
        request_id: str,
        pixazo_conn_id: str = PixazoHook.default_conn_name,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        max_poll_interval: float = 60.0,
        end_time: float | None = None,
    ) -> None:
        super().__init__()
        self.request_id = validate_request_id(request_id)
        self.pixazo_conn_id = pixazo_conn_id
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.max_poll_interval = _positive("max_poll_interval", max_poll_interval)
        self.timeout = _non_negative("timeout", timeout)
        self.end_time = float(end_time) if end_time is not None else time.time() + self.timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-safe kwargs (the connection id only: never a key)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "pixazo_conn_id": self.pixazo_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "max_poll_interval": self.max_poll_interval,
                "end_time": self.end_time,
            },
        )

    def _make_hook(self) -> PixazoHook:
        return PixazoHook(pixazo_conn_id=self.pixazo_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the request ends or the deadline passes, then yield one event and return."""
        hook = self._make_hook()
        last_status: RequestStatus | None = None
        interval = self.poll_interval
        cap = max(self.poll_interval, self.max_poll_interval)
        while True:
            status: RequestStatus | None = None
            try:
                # asyncio.timeout, not wait_for: no extra task per poll.
                async with asyncio.timeout(max(self.end_time - time.time(), MIN_POLL_BUDGET)):
                    result = await hook.aget_status(self.request_id)
            except PixazoError as err:
                if err.transient:
                    self.log.warning("Polling Pixazo request %s failed; will poll again: %s", self.request_id, err)
                else:
                    yield TriggerEvent(self._error_event(err))
                    return
            except AirflowNotFoundException as err:
                yield TriggerEvent(
                    make_event_payload(
                        WaitOutcome.INVALID,
                        self.request_id,
                        message=f"Cannot wait for Pixazo request {self.request_id}: {err}",
                    )
                )
                return
            except TimeoutError:
                self.log.warning("Polling Pixazo request %s did not answer before the deadline", self.request_id)
            except ValueError as err:
                # A body we could not read (an HTML error page behind a 200, say): like a blip.
                self.log.warning("Pixazo sent an unreadable status for %s; will poll again: %s", self.request_id, err)
            else:
                status = result.status
                if status is not last_status:
                    self.log.info("Pixazo request %s is %s", self.request_id, status.value)
                if status.is_terminal:
                    yield TriggerEvent(self._terminal_event(result))
                    return

            remaining = self.end_time - time.time()
            if remaining <= 0:
                yield TriggerEvent(self._timeout_event(last_status if status is None else status))
                return
            await asyncio.sleep(min(interval, remaining))
            if status is None or status is last_status:
                interval = min(interval * BACKOFF_FACTOR, cap)
            if status is not None:
                last_status = status

    def _terminal_event(self, result: RequestResult) -> dict[str, Any]:
        if result.status is RequestStatus.COMPLETED:
            return make_event_payload(
                WaitOutcome.SUCCESS,
                self.request_id,
                result=result,
                message=f"Pixazo request {self.request_id} COMPLETED with {len(result.media_urls)} media file(s)",
            )
        if result.status is RequestStatus.FAILED:
            return make_event_payload(
                WaitOutcome.FAILED,
                self.request_id,
                result=result,
                message=f"Pixazo request {self.request_id} FAILED: {result.error or 'no reason given'}",
            )
        return make_event_payload(
            WaitOutcome.ERROR,
            self.request_id,
            result=result,
            message=f"Pixazo request {self.request_id} ended in ERROR: {result.error or 'no description given'}",
        )

    def _error_event(self, err: PixazoError) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if isinstance(err, PixazoAPIError):
            extra["http_status"] = err.http_status
        if isinstance(err, PixazoAuthError):
            outcome = WaitOutcome.AUTH
        elif isinstance(err, PixazoNotFoundError):
            outcome = WaitOutcome.NOT_FOUND
        else:
            # PixazoValidationError (unusable connection) and any other error retrying cannot fix.
            outcome = WaitOutcome.INVALID
        self.log.error("Stopped waiting for Pixazo request %s: %s", self.request_id, err)
        return make_event_payload(outcome, self.request_id, message=str(err), extra=extra)

    def _timeout_event(self, last_status: RequestStatus | None) -> dict[str, Any]:
        shown = last_status.value if last_status is not None else None
        return make_event_payload(
            WaitOutcome.TIMEOUT,
            self.request_id,
            message=(
                f"Pixazo request {self.request_id} did not finish within {self.timeout:g}s "
                f"(last status: {shown or 'unknown'}); it may still complete, check it later by its request_id"
            ),
            extra={"timeout": self.timeout, "last_status": shown},
        )


# The trigger's name for each shared validator (airflow_provider_pixazo.waiting): one rule for the
# seconds a task and its trigger take.
_positive = positive_seconds
_non_negative = non_negative_seconds
