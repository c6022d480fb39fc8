"""
The contract between the Pixazo trigger and the tasks that defer to it.

A trigger yields exactly one event, ``{"outcome": ..., "request_id": ..., "result": ..., "message": ...}``.
Tasks branch on ``outcome`` (a :class:`WaitOutcome`), never on the message text;
:func:`result_from_event` turns an event into the final result or the matching typed error, and
:func:`publish_result` is how every waiting task publishes a finished one. Not here: the polling
(the trigger) and the error classes (``exceptions``).
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

__all__ = ["RESULT_XCOM_KEY", "WaitOutcome", "make_event_payload", "publish_result", "result_from_event"]

#: XCom key under which tasks that wait push the final result (``RequestResult.to_dict()``).
RESULT_XCOM_KEY = "pixazo_result"


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


def publish_result(context: Context, result: RequestResult) -> dict[str, Any]:
    """
    Push a finished result where tasks that wait publish it, and return it as a dict.

    The dict goes to XCom under :data:`RESULT_XCOM_KEY`; the media URLs go where the image links
    read them.
    """
    # Imported here: the trigger imports this module in the triggerer, which never needs the links.
    from airflow_provider_pixazo.links.pixazo import persist_media_urls

    data = result.to_dict()
    context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=data)
    persist_media_urls(context, list(result.media_urls))
    return data


def result_from_event(event: Any) -> RequestResult:
    """
    Return the final result of a successful wait, or raise the typed error for any other outcome.

    :raises PixazoError: for a malformed event or any outcome but success (terminal ones fail the
        task without retries).
    """
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
