"""
The trigger that waits for a Pixazo request to finish, shared by the deferrable operators and the sensor.

It yields exactly one event, built by :func:`~airflow_provider_pixazo.events.make_event_payload`;
tasks resume with :func:`~airflow_provider_pixazo.events.result_from_event`. Asked to
(``end_task_on_success``), it ends a task whose request COMPLETED itself: it pushes every XCom the
resumed task would have pushed, through the Task SDK as the task would (:mod:`._task_xcoms`, not
``TaskSuccessEvent(xcoms=...)``, which Airflow stores JSON-encoded twice), then yields Airflow's
``TaskSuccessEvent``. No worker is started for it, and so Airflow's stale-success race
(apache/airflow#66374) cannot strike it.

Upgrading: the kwargs ``end_task_on_success``, ``task_return`` and ``image_link_keys`` are new. A
triggerer still running an older release of this provider cannot build a trigger deferred with them
(the task fails with "Trigger failed to inflate"): upgrade the triggerers first, then the workers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_pixazo.events import TaskReturn, WaitOutcome, make_event_payload, task_end_xcoms
from airflow_provider_pixazo.exceptions import (
    PixazoAPIError,
    PixazoAuthError,
    PixazoError,
    PixazoNotFoundError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks import _poller
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import RequestResult, RequestStatus, validate_request_id
from airflow_provider_pixazo.triggers._task_xcoms import push_xcoms
from airflow_provider_pixazo.waiting import non_negative_seconds, positive_seconds

__all__ = ["PixazoRequestTrigger"]

#: Factor by which the poll interval grows after each poll that saw no change.
BACKOFF_FACTOR = _poller.BACKOFF_FACTOR
#: A trigger restarted after its deadline still polls once, and is allowed this long for the answer.
MIN_POLL_BUDGET = _poller.MIN_POLL_BUDGET

# Outcome and message of each terminal status; the message gets the request id and the details.
_TERMINAL: dict[RequestStatus, tuple[WaitOutcome, str]] = {
    RequestStatus.COMPLETED: (WaitOutcome.SUCCESS, "Pixazo request {id} COMPLETED with {media} media file(s)"),
    RequestStatus.FAILED: (WaitOutcome.FAILED, "Pixazo request {id} FAILED: {error}"),
    RequestStatus.ERROR: (WaitOutcome.ERROR, "Pixazo request {id} ended in ERROR: {error}"),
}
_NO_ERROR_TEXT = {RequestStatus.FAILED: "no reason given", RequestStatus.ERROR: "no description given"}


class PixazoRequestTrigger(BaseTrigger):
    """
    Poll Pixazo's status endpoint until a request is COMPLETED, FAILED or ERROR, or a deadline passes.

    Cheap while waiting: every trigger of a triggerer that waits on the same connection is served by
    one shared status poller (:mod:`airflow_provider_pixazo.hooks._poller`), which reads the
    connection once (re-reading it every 30 s, so a rotated key takes effect within a minute),
    keeps one schedule for all of them, stays within the connection's ``max_polls_per_second``
    extra and slows the whole triggerer down when Pixazo answers 429. Transient errors (5xx, 429,
    network, unreadable answers) are logged once per run of failures and polling goes on: a network
    blip never fails the task. Each status change is logged once.

    :param request_id: the Pixazo request id to wait for.
    :param pixazo_conn_id: the Airflow connection holding the Pixazo API key.
    :param poll_interval: seconds between the first polls.
    :param timeout: seconds to wait in all; used to compute ``end_time`` and in the timeout message.
    :param max_poll_interval: the poll interval grows by 25% after each unchanged poll, up to this.
    :param end_time: the absolute deadline (epoch seconds). Computed as now + ``timeout`` when not
        given, and always serialized, so a triggerer restart does not restart the clock. The wait
        ends at most a second after it (a poll is sent at the deadline itself).
    :param end_task_on_success: when the request COMPLETED, end the task here with Airflow's
        ``TaskSuccessEvent`` instead of resuming it on a worker, after pushing its XComs as the task
        would. Every other outcome (FAILED, ERROR, timeout, refused key...) still resumes it, so it
        fails there with Pixazo's reason, records it and honours the task's ``retries``; so does a
        success whose XComs cannot be pushed from here (no task instance, as under ``dag.test()``,
        or an XCom backend or API error): the worker then pushes them. Default False: kwargs
        serialized before it existed behave as they did. A triggerer of an older release cannot
        take this kwarg (nor the two below): upgrade triggerers before workers.
    :param task_return: with ``end_task_on_success``, what the task returns (its ``return_value``
        XCom): ``"result"`` (the result as a dict, as the sensor does) or ``"request_id"`` (as the
        submit operators do).
    :param image_link_keys: with ``end_task_on_success``, each image link's XCom key and the image
        index it opens (:func:`~airflow_provider_pixazo.links.pixazo.image_link_keys`), so the task's
        "Pixazo image N" buttons are stored as Airflow would store them at the end of a worker's run.
    """

    def __init__(
        self,
        request_id: str,
        pixazo_conn_id: str = PixazoHook.default_conn_name,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        max_poll_interval: float = 60.0,
        end_time: float | None = None,
        end_task_on_success: bool = False,
        task_return: str = TaskReturn.RESULT.value,
        image_link_keys: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.request_id = validate_request_id(request_id)
        self.pixazo_conn_id = pixazo_conn_id
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.max_poll_interval = _positive("max_poll_interval", max_poll_interval)
        self.timeout = _non_negative("timeout", timeout)
        self.end_time = float(end_time) if end_time is not None else time.time() + self.timeout
        if not isinstance(end_task_on_success, bool):
            raise PixazoValidationError("end_task_on_success", end_task_on_success, "True or False")
        self.end_task_on_success = end_task_on_success
        self.task_return = _task_return(task_return)
        self.image_link_keys = _link_keys(image_link_keys)

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
                "end_task_on_success": self.end_task_on_success,
                "task_return": self.task_return.value,
                "image_link_keys": dict(self.image_link_keys),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on the loop's shared poller until the request ends or the deadline passes; yield one event."""
        poller = _poller.status_poller(self.pixazo_conn_id)
        end = await poller.wait(
            self.request_id,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            end_time=self.end_time,
            on_update=self._on_update,
        )
        if (
            end.result is not None
            and end.result.status is RequestStatus.COMPLETED
            and self.end_task_on_success
            and await self._push_task_xcoms(end.result)
        ):
            yield self._task_success_event(end.result)
        elif end.result is not None:
            yield TriggerEvent(self._terminal_event(end.result))
        elif end.error is not None:
            yield TriggerEvent(self._error_event(end.error))
        else:
            yield TriggerEvent(self._timeout_event(end.last_status))

    def _on_update(self, status: RequestStatus | None, error: PixazoError | None) -> None:
        if status is not None:
            self.log.info("Pixazo request %s is %s", self.request_id, status.value)
        else:
            self.log.warning("Polling Pixazo request %s failed; will poll again: %s", self.request_id, error)

    async def _push_task_xcoms(self, result: RequestResult) -> bool:
        """
        Push every XCom the resumed task would push, as the task itself would; False: let a worker do it.

        Through the Task SDK's ``XCom.set`` (the configured ``[core] xcom_backend``, then the
        execution API), never through ``TaskSuccessEvent(xcoms=...)``: Airflow stores those with
        ``TaskInstance.xcom_push``, JSON-encoding them once more than a task's own push, so a
        downstream task would read ``'"<request id>"'`` and strings for dicts (see the module docs).
        """
        ti = self.task_instance
        if ti is None:
            # Not run by a triggerer (dag.test() runs triggers without a task instance): nowhere to push to,
            # and the task resumes on its worker with the plain event anyway.
            self.log.info("No task instance given to the trigger: the task resumes on a worker to end")
            return False
        xcoms = task_end_xcoms(result, task_return=self.task_return, image_link_keys=self.image_link_keys)
        try:
            await push_xcoms(ti, xcoms)
        except Exception as err:  # any failure: the worker pushes them all again, nothing is lost
            self.log.warning(
                "Could not push the XComs of Pixazo request %s from the triggerer (%s: %s); "
                "the task resumes on a worker to push them",
                self.request_id,
                type(err).__name__,
                err,
            )
            return False
        return True

    def _task_success_event(self, result: RequestResult) -> TaskSuccessEvent:
        """The event that ends the task, once :meth:`_push_task_xcoms` stored its XComs."""
        # The task's log gets the line its resumed execute_complete would have written.
        self.log.info(
            "Pixazo request %s COMPLETED with %d %s file(s): %s; the task ends here, in the triggerer",
            self.request_id,
            len(result.media_urls),
            result.media_type or "media",
            ", ".join(result.media_urls),
        )
        event = TaskSuccessEvent()
        # Airflow's triggerer passes on only an end event's state (its payload is never read), but a
        # runner that resumes the task with the payload whatever the event (dag.test() does) gets the
        # plain success event, so the task publishes the same result itself.
        event.payload = self._terminal_event(result)
        return event

    def _terminal_event(self, result: RequestResult) -> dict[str, Any]:
        outcome, template = _TERMINAL[result.status]
        message = template.format(
            id=self.request_id,
            media=len(result.media_urls),
            error=result.error or _NO_ERROR_TEXT.get(result.status, ""),
        )
        return make_event_payload(outcome, self.request_id, result=result, message=message)

    def _error_event(self, err: Exception) -> dict[str, Any]:
        if isinstance(err, AirflowNotFoundException):
            return make_event_payload(
                WaitOutcome.INVALID,
                self.request_id,
                message=f"Cannot wait for Pixazo request {self.request_id}: {err}",
            )
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


def _task_return(value: Any) -> TaskReturn:
    try:
        return TaskReturn(value)
    except ValueError:
        allowed = " or ".join(repr(choice.value) for choice in TaskReturn)
        raise PixazoValidationError("task_return", value, allowed) from None


def _link_keys(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, Mapping) and all(
        isinstance(key, str) and key and isinstance(index, int) and not isinstance(index, bool) and index >= 0
        for key, index in value.items()
    ):
        return dict(value)
    raise PixazoValidationError("image_link_keys", value, "a mapping of XCom keys to image indexes (integers >= 0)")


# The trigger's name for each shared validator (airflow_provider_pixazo.waiting): one rule for the
# seconds a task and its trigger take.
_positive = positive_seconds
_non_negative = non_negative_seconds
