"""
The contract between the Pixazo trigger and the tasks that defer to it.

A trigger yields exactly one event, ``{"outcome": ..., "request_id": ..., "result": ..., "message": ...}``.
Tasks branch on ``outcome`` (a :class:`WaitOutcome`), never on the message text;
:func:`result_from_event` turns an event into the final result or the matching typed error, and
:func:`publish_result` is how every waiting task publishes a finished one.

A trigger asked to end its task on success pushes the XComs of :func:`task_end_xcoms` (what
:func:`publish_result`, the task's return value and Airflow's end-of-task link resolution would have
pushed on the worker) through the Task SDK, as the task would, then yields Airflow's
``TaskSuccessEvent`` instead, so no worker resumes it. Its payload is the success event above all
the same, for ``dag.test()``, which resumes every deferred task on its worker whatever the trigger yields.
Not here: the polling (the trigger) and the error classes (``exceptions``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoNotFoundError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoTimeoutError,
    PixazoWaitAbortedError,
)
from airflow_provider_pixazo.responses import RequestResult

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "RESULT_XCOM_KEY",
    "TaskReturn",
    "WaitOutcome",
    "make_event_payload",
    "publish_result",
    "published_xcoms",
    "result_from_event",
    "task_end_xcoms",
]

#: XCom key under which tasks that wait push the final result (``RequestResult.to_dict()``).
RESULT_XCOM_KEY = "pixazo_result"

# Airflow's XCOM_RETURN_KEY, written out: this module stays importable without the Task SDK's XCom machinery.
_RETURN_VALUE_KEY = "return_value"

# The payload Airflow gives a TaskSuccessEvent (str(TaskInstanceState.SUCCESS)); the trigger replaces
# it with its success event, so only a task resumed by something that dropped that arrives with this.
_BARE_TASK_SUCCESS = "success"


class TaskReturn(enum.StrEnum):
    """What a task whose trigger ends it returns (its ``return_value`` XCom)."""

    RESULT = "result"  # the result as a dict (the sensor)
    REQUEST_ID = "request_id"  # the request id (the submit operators)


class WaitOutcome(enum.StrEnum):
    """How a wait ended."""

    SUCCESS = "success"  # COMPLETED, result attached
    FAILED = "failed"  # the request ended FAILED (Pixazo's reason in the result's error)
    ERROR = "error"  # the request ended ERROR: a Pixazo system error, not charged
    TIMEOUT = "timeout"  # the deadline passed; the request may still finish
    AUTH = "auth"  # the API key was refused while waiting
    NOT_FOUND = "not_found"  # Pixazo does not know the request id
    INVALID = "invalid"  # waiting cannot go on (bad request id, unusable connection, 400/402)


def make_event_payload(
    outcome: WaitOutcome,
    request_id: str,
    *,
    result: RequestResult | None = None,
    message: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the JSON-safe payload of a trigger event."""
    payload: dict[str, Any] = {
        "outcome": outcome.value,
        "request_id": request_id,
        "result": result.to_dict() if result is not None else None,
        "message": message,
    }
    if extra:
        payload.update(extra)
    return payload


def published_xcoms(result: RequestResult) -> dict[str, Any]:
    """
    The XComs a finished result is published under, by key: the one rule for the worker and the triggerer.

    The result's dict under :data:`RESULT_XCOM_KEY`; its media URLs where the image links read them.
    """
    from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY

    return {RESULT_XCOM_KEY: result.to_dict(), MEDIA_URLS_XCOM_KEY: list(result.media_urls)}


def publish_result(context: Context, result: RequestResult) -> dict[str, Any]:
    """
    Push a finished result where tasks that wait publish it (:func:`published_xcoms`), and return it as a dict.

    The dict goes to XCom under :data:`RESULT_XCOM_KEY`; the media URLs go where the image links
    read them.
    """
    from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY, persist_media_urls

    for key, value in published_xcoms(result).items():
        if key == MEDIA_URLS_XCOM_KEY:
            persist_media_urls(context, value)  # also what the task's image links resolve from
        else:
            context["ti"].xcom_push(key=key, value=value)
    return result.to_dict()


def task_end_xcoms(
    result: RequestResult, *, task_return: TaskReturn, image_link_keys: Mapping[str, int]
) -> dict[str, Any]:
    """
    Every XCom a waiting task leaves when it succeeds, for a trigger that ends the task itself.

    That is :func:`published_xcoms`, the task's ``return_value`` (``task_return``) and, under the key
    of each link of ``image_link_keys`` that has an image, its URL (what Airflow's end-of-task link
    resolution would store on the worker, and what the UI's buttons read; a link without an image
    stores nothing there either: :class:`~airflow_provider_pixazo.links.pixazo.ImageLinks`).

    :param result: the COMPLETED result.
    :param task_return: what the task returns.
    :param image_link_keys: each image link's XCom key and the image index it opens.
    """
    from airflow_provider_pixazo.links.pixazo import image_url

    returned: Any = result.to_dict() if task_return is TaskReturn.RESULT else result.request_id
    xcoms = {_RETURN_VALUE_KEY: returned, **published_xcoms(result)}
    for key, index in image_link_keys.items():
        url = image_url(result.media_urls, index)
        if url:  # a link with no image stores nothing, as on a worker (links.pixazo.ImageLinks)
            xcoms[key] = url
    return xcoms


def result_from_event(event: Any) -> RequestResult:
    """
    Return the final result of a successful wait, or raise the typed error for any other outcome.

    :raises PixazoError: for a malformed event or any outcome but success (terminal ones fail the
        task without retries).
    """
    if event == _BARE_TASK_SUCCESS:
        raise PixazoError(
            "The Pixazo trigger ended this task in the triggerer, yet it was resumed on a worker without the "
            "result; set end_from_trigger=False on the task to resume it with the result instead"
        )
    if not isinstance(event, Mapping) or "outcome" not in event or "request_id" not in event:
        raise PixazoError(f"Pixazo trigger sent a malformed event: {event!r}")
    try:
        outcome = WaitOutcome(event["outcome"])
    except ValueError:
        raise PixazoError(f"Pixazo trigger sent an unknown outcome {event['outcome']!r}") from None
    request_id = str(event["request_id"])
    raw = event.get("result")
    try:
        result = RequestResult.from_dict(raw) if isinstance(raw, Mapping) else None
    except (KeyError, TypeError, ValueError) as err:
        raise PixazoError(f"Pixazo trigger sent a malformed result: {raw!r}") from err
    message = str(event.get("message") or "")

    if outcome is WaitOutcome.SUCCESS:
        if result is None:
            raise PixazoError(f"Pixazo trigger reported success for {request_id} without a result")
        return result
    if outcome is WaitOutcome.FAILED:
        raise PixazoRequestFailedError(request_id, result.error if result else message)
    if outcome is WaitOutcome.ERROR:
        raise PixazoRequestErroredError(request_id, result.error if result else message)
    if outcome is WaitOutcome.TIMEOUT:
        raise PixazoTimeoutError(request_id, float(event.get("timeout") or 0), event.get("last_status"))
    if outcome is WaitOutcome.AUTH:
        raise PixazoAuthError(message, http_status=int(event.get("http_status") or 401), request_id=request_id)
    if outcome is WaitOutcome.NOT_FOUND:
        raise PixazoNotFoundError(message, http_status=404, request_id=request_id)
    raise PixazoWaitAbortedError(request_id, message)
