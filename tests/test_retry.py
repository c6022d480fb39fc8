from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from airflow_provider_pixazo.error_mapping import error_from_exception
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoBadRequestError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoRateLimitError,
    PixazoServerError,
)
from airflow_provider_pixazo.retry import RetryPolicy, parse_retry_after, should_retry


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 8, 20])
def test_delay_is_exponential_with_equal_jitter(attempt: int) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0)
    step = min(30.0, 2.0 ** (attempt - 1))
    delays = [policy.delay(attempt) for _ in range(200)]
    assert all(step / 2 <= d <= step for d in delays)
    assert max(delays) - min(delays) > 0  # really jittered


def test_delay_grows_then_caps() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=10.0)
    assert 1.0 <= policy.delay(1) <= 2.0
    assert 2.0 <= policy.delay(2) <= 4.0
    assert 5.0 <= policy.delay(4) <= 10.0
    assert 5.0 <= policy.delay(50) <= 10.0


def test_retry_after_is_a_floor_capped_by_max_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, max_retry_after=60.0)
    assert policy.delay(1, retry_after=7.0) == 7.0  # step 1 s: Retry-After wins
    assert policy.delay(1, retry_after=500.0) == 60.0  # capped
    assert 0.5 <= policy.delay(1, retry_after=0.0) <= 1.0  # an early Retry-After never shortens backoff
    assert 8.0 <= policy.delay(5, retry_after=3.0) <= 16.0


def test_delay_is_always_a_float() -> None:
    # The transport tells "sleep" steps from requests by type; an int delay must not slip through.
    policy = RetryPolicy(base_delay=1, max_delay=30, max_retry_after=5)  # type: ignore[arg-type]
    assert isinstance(policy.delay(1), float)
    assert isinstance(policy.delay(1, retry_after=100.0), float)
    assert policy.delay(1, retry_after=100.0) == 5.0


def test_policy_refuses_zero_attempts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), (None, None), ("", None), ("soon", None), ("5 s", None)],
)
def test_parse_retry_after_seconds_and_garbage(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27.0 <= parse_retry_after(future) <= 31.0  # type: ignore[operator]
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert parse_retry_after(past) == 0.0


def _api(cls: type[PixazoError], status: int) -> PixazoError:
    return cls("x", http_status=status)  # type: ignore[call-arg]


_REQ = httpx.Request("POST", "https://gateway.test/x")
ERRORS = {
    "429": _api(PixazoRateLimitError, 429),
    "500": _api(PixazoServerError, 500),
    "503": _api(PixazoServerError, 503),
    "connect-error": error_from_exception(httpx.ConnectError("refused", request=_REQ)),
    "connect-timeout": error_from_exception(httpx.ConnectTimeout("slow", request=_REQ)),
    "read-timeout": error_from_exception(httpx.ReadTimeout("slow", request=_REQ)),
    "remote-protocol": error_from_exception(httpx.RemoteProtocolError("dropped", request=_REQ)),
    "400": _api(PixazoBadRequestError, 400),
    "401": _api(PixazoAuthError, 401),
    "402": _api(PixazoInsufficientBalanceError, 402),
    "404": _api(PixazoNotFoundError, 404),
}

# error -> (retried for a submit POST, retried for a status GET)
TABLE = {
    "429": (True, True),
    "500": (False, True),
    "503": (False, True),
    "connect-error": (True, True),
    "connect-timeout": (True, True),
    "read-timeout": (False, True),
    "remote-protocol": (False, True),
    "400": (False, False),
    "401": (False, False),
    "402": (False, False),
    "404": (False, False),
}


@pytest.mark.parametrize("submit", [True, False], ids=["submit", "get"])
@pytest.mark.parametrize("name", list(TABLE))
def test_should_retry_table(name: str, submit: bool) -> None:
    expected = TABLE[name][0 if submit else 1]
    assert should_retry(ERRORS[name], submit=submit) is expected


@pytest.mark.parametrize("name", list(TABLE))
def test_should_retry_derives_from_the_errors_own_attributes(name: str) -> None:
    """One rule: a status GET is retried exactly when the error is transient; a submit also needs proof
    that Pixazo did not take it."""
    error = ERRORS[name]
    assert should_retry(error, submit=False) is error.transient
    assert should_retry(error, submit=True) is (error.transient and not error.may_have_been_accepted)


def test_only_a_request_that_never_left_is_safe_to_resend() -> None:
    never_left = error_from_exception(httpx.ConnectError("refused", request=_REQ))
    may_have_arrived = error_from_exception(httpx.ReadTimeout("slow", request=_REQ))
    assert (never_left.may_have_been_accepted, may_have_arrived.may_have_been_accepted) == (False, True)
    assert _api(PixazoServerError, 502).may_have_been_accepted is True
    assert _api(PixazoRateLimitError, 429).may_have_been_accepted is False  # 429 proves it was refused
