from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, WaitOutcome, make_event_payload, result_from_event
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoNotFoundError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoTimeoutError,
)
from airflow_provider_pixazo.models import RequestResult, RequestStatus

RID = "gpt-image-2_019dabcd-1234-5678-9abc-def012345678"


def _result(status: RequestStatus, error: str | None = None) -> RequestResult:
    urls = (f"https://cdn.example/{RID}/output.png",) if status is RequestStatus.COMPLETED else ()
    return RequestResult(RID, status, urls, "image/png" if urls else None, error, "gpt-image-2")


def _roundtrip(event: dict[str, Any]) -> dict[str, Any]:
    # Trigger events are serialized: everything must survive JSON.
    loaded: dict[str, Any] = json.loads(json.dumps(event))
    return loaded


def test_success_returns_the_result() -> None:
    result = _result(RequestStatus.COMPLETED)
    event = _roundtrip(make_event_payload(WaitOutcome.SUCCESS, RID, result=result, message="done"))
    assert event == {"outcome": "success", "request_id": RID, "result": result.to_dict(), "message": "done"}
    assert result_from_event(event) == result
    assert RESULT_XCOM_KEY == "pixazo_result"


def test_failed_carries_pixazos_text() -> None:
    result = _result(RequestStatus.FAILED, "Your request was rejected by the safety system")
    event = _roundtrip(make_event_payload(WaitOutcome.FAILED, RID, result=result))
    with pytest.raises(PixazoRequestFailedError) as info:
        result_from_event(event)
    assert info.value.request_id == RID
    assert info.value.error == "Your request was rejected by the safety system"
    assert "rejected by the safety system" in str(info.value)
    assert isinstance(info.value, AirflowFailException)


def test_failed_without_result_uses_the_message() -> None:
    with pytest.raises(PixazoRequestFailedError) as info:
        result_from_event(make_event_payload(WaitOutcome.FAILED, RID, message="bad prompt"))
    assert info.value.error == "bad prompt"


def test_error_outcome() -> None:
    event = _roundtrip(make_event_payload(WaitOutcome.ERROR, RID, result=_result(RequestStatus.ERROR, "GPU lost")))
    with pytest.raises(PixazoRequestErroredError) as info:
        result_from_event(event)
    assert info.value.error == "GPU lost"
    assert "not charged" in str(info.value)


def test_timeout_outcome() -> None:
    event = make_event_payload(WaitOutcome.TIMEOUT, RID, extra={"timeout": 900, "last_status": "PROCESSING"})
    with pytest.raises(PixazoTimeoutError) as info:
        result_from_event(_roundtrip(event))
    assert info.value.timeout == 900.0
    assert info.value.last_status == "PROCESSING"
    assert info.value.request_id == RID


@pytest.mark.parametrize(("extra", "status"), [(None, 401), ({"http_status": 403}, 403)])
def test_auth_outcome(extra: dict[str, Any] | None, status: int) -> None:
    event = make_event_payload(WaitOutcome.AUTH, RID, message="key refused", extra=extra)
    with pytest.raises(PixazoAuthError) as info:
        result_from_event(event)
    assert info.value.http_status == status
    assert info.value.request_id == RID
    assert str(info.value) == "key refused"


def test_not_found_outcome() -> None:
    with pytest.raises(PixazoNotFoundError) as info:
        result_from_event(make_event_payload(WaitOutcome.NOT_FOUND, RID, message="unknown id"))
    assert info.value.http_status == 404
    assert info.value.request_id == RID


def test_invalid_outcome() -> None:
    with pytest.raises(PixazoError, match="connection has no password"):
        result_from_event(make_event_payload(WaitOutcome.INVALID, RID, message="connection has no password"))
    with pytest.raises(PixazoError, match=f"{RID} could not go on") as info:
        result_from_event(make_event_payload(WaitOutcome.INVALID, RID))
    # Nothing that retrying could fix: the task must fail without spending its retries.
    assert isinstance(info.value, AirflowFailException)


@pytest.mark.parametrize(
    "event",
    [
        None,
        "success",
        [],
        {},
        {"outcome": "success"},
        {"request_id": RID},
        {"outcome": "finished", "request_id": RID},
        {"outcome": "success", "request_id": RID},
        {"outcome": "success", "request_id": RID, "result": None},
        {"outcome": "success", "request_id": RID, "result": "COMPLETED"},
    ],
    ids=lambda e: repr(e)[:50],
)
def test_malformed_events_are_refused(event: Any) -> None:
    with pytest.raises(PixazoError):
        result_from_event(event)


@pytest.mark.parametrize(
    "result",
    [
        {"status": "COMPLETED"},  # no request_id
        {"request_id": RID},  # no status
        {"request_id": RID, "status": "DONE"},  # unknown status
        {"request_id": "../../x", "status": "COMPLETED"},
    ],
    ids=["no-request-id", "no-status", "unknown-status", "bad-request-id"],
)
def test_malformed_result_in_event_is_a_pixazo_error(result: dict[str, Any]) -> None:
    # result_from_event documents PixazoError for any malformed event, not a bare KeyError/ValueError.
    with pytest.raises(PixazoError):
        result_from_event({"outcome": "success", "request_id": RID, "result": result, "message": ""})
