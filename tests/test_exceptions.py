from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_pixazo import exceptions
from airflow_provider_pixazo.exceptions import (
    PixazoAPIError,
    PixazoAuthError,
    PixazoBadRequestError,
    PixazoDestinationConflictError,
    PixazoDownloadError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoRateLimitError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoRequestNotCompletedError,
    PixazoServerError,
    PixazoSubmitUncertainError,
    PixazoTimeoutError,
    PixazoTLSError,
    PixazoTransportError,
    PixazoValidationError,
    PixazoWaitAbortedError,
)

TERMINAL = [
    PixazoDestinationConflictError,
    PixazoWaitAbortedError,
    PixazoValidationError,
    PixazoBadRequestError,
    PixazoAuthError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoSubmitUncertainError,
    PixazoRequestFailedError,
    PixazoRequestErroredError,
    PixazoTimeoutError,
    PixazoTLSError,
]
TRANSIENT = [
    PixazoRateLimitError,
    PixazoServerError,
    PixazoTransportError,
    PixazoDownloadError,
    PixazoRequestNotCompletedError,
]


@pytest.mark.parametrize("cls", TERMINAL, ids=lambda c: c.__name__)
def test_terminal_errors_fail_the_task(cls: type[PixazoError]) -> None:
    assert issubclass(cls, PixazoError)
    assert issubclass(cls, AirflowFailException)
    assert cls.transient is False


@pytest.mark.parametrize("cls", TRANSIENT, ids=lambda c: c.__name__)
def test_transient_errors_leave_retries_to_airflow(cls: type[PixazoError]) -> None:
    assert issubclass(cls, PixazoError)
    assert not issubclass(cls, AirflowFailException)
    assert cls.transient is True


def test_base_classes() -> None:
    assert issubclass(PixazoError, AirflowException)
    assert not issubclass(PixazoError, AirflowFailException)
    assert issubclass(PixazoValidationError, ValueError)
    for cls in (PixazoBadRequestError, PixazoAuthError, PixazoInsufficientBalanceError, PixazoNotFoundError):
        assert issubclass(cls, PixazoAPIError)
    assert issubclass(PixazoRateLimitError, PixazoAPIError)
    assert issubclass(PixazoServerError, PixazoAPIError)


def test_every_exported_name_is_an_error() -> None:
    names = {n for n in dir(exceptions) if n.startswith("Pixazo")}
    assert set(exceptions.__all__) == names
    assert set(TERMINAL + TRANSIENT + [PixazoError, PixazoAPIError]) == {getattr(exceptions, n) for n in names}


def test_validation_error_message_and_attributes() -> None:
    err = PixazoValidationError("size", "9x9", "one of 1024x1024, auto")
    assert (err.parameter, err.value, err.allowed) == ("size", "9x9", "one of 1024x1024, auto")
    assert str(err) == "Invalid size='9x9': one of 1024x1024, auto"
    long = PixazoValidationError("prompt", "y" * 1000, "short")
    assert len(str(long)) < 250
    assert str(long).endswith("…: short")


def test_api_error_attributes() -> None:
    body = {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
    err = PixazoInsufficientBalanceError("no money", http_status=402, request_id="r1", body=body)
    assert (err.http_status, err.request_id, err.body, str(err)) == (402, "r1", body, "no money")
    limited = PixazoRateLimitError("slow down", retry_after=3.0, http_status=429)
    assert limited.retry_after == 3.0
    assert limited.http_status == 429


def test_transport_error_remembers_whether_sent() -> None:
    assert PixazoTransportError("x", request_sent=False).request_sent is False
    assert PixazoTransportError("x", request_sent=True).request_sent is True


def test_request_outcome_messages() -> None:
    failed = PixazoRequestFailedError("gpt-image-2_abc", "content policy violation")
    assert failed.error == "content policy violation"
    assert str(failed) == "Pixazo request gpt-image-2_abc FAILED: content policy violation"
    assert "no reason given" in str(PixazoRequestFailedError("r", None))
    errored = PixazoRequestErroredError("gpt-image-2_abc", "worker crashed")
    assert "not charged" in str(errored)
    assert "worker crashed" in str(errored)
    assert "no description given" in str(PixazoRequestErroredError("r", ""))


def test_timeout_message_says_how_to_check_later() -> None:
    err = PixazoTimeoutError("gpt-image-2_abc", 600.0, "PROCESSING")
    assert (err.request_id, err.timeout, err.last_status) == ("gpt-image-2_abc", 600.0, "PROCESSING")
    message = str(err)
    assert "within 600s" in message
    assert "last status: PROCESSING" in message
    assert "PixazoRequestSensor(request_id='gpt-image-2_abc')" in message
    assert "/v2/requests/status/gpt-image-2_abc" in message
    assert "last status: unknown" in str(PixazoTimeoutError("r", 1.5))
