"""httpx answers and failures mapped to the provider's typed errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_pixazo.error_mapping import error_from_exception, error_from_response
from airflow_provider_pixazo.exceptions import (
    PixazoAPIError,
    PixazoAuthError,
    PixazoBadRequestError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoRateLimitError,
    PixazoServerError,
)

# -- error mapping ----------------------------------------------------------------------------------


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://gateway.test/gpt-image-2/v1/text-to-image")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=body or "", headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, PixazoBadRequestError),
        (401, PixazoAuthError),
        (403, PixazoAuthError),
        (402, PixazoInsufficientBalanceError),
        (404, PixazoNotFoundError),
        (429, PixazoRateLimitError),
        (500, PixazoServerError),
        (503, PixazoServerError),
        (409, PixazoAPIError),
    ],
)
def test_error_from_response(status: int, cls: type[PixazoAPIError]) -> None:
    body = {"error": "Some Error", "message": "Details here."}
    err = error_from_response(_response(status, body), request_id="r-1")
    assert type(err) is cls
    assert err.http_status == status
    assert err.request_id == "r-1"
    assert err.body == body
    assert "Some Error: Details here." in str(err)
    assert "POST /gpt-image-2/v1/text-to-image" in str(err)


def test_error_from_response_quotes_the_seed_402_and_non_json_bodies() -> None:
    seed = {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
    assert "Your wallet does not have enough balance." in str(error_from_response(_response(402, seed)))
    html = error_from_response(_response(502, "<html>Bad gateway</html>"))
    assert html.body == "<html>Bad gateway</html>"
    assert "<html>Bad gateway</html>" in str(html)
    assert "no details" in str(error_from_response(_response(500)))


def test_rate_limit_reads_retry_after() -> None:
    err = error_from_response(_response(429, {"error": "Too Many Requests"}, {"Retry-After": "12"}))
    assert isinstance(err, PixazoRateLimitError)
    assert err.retry_after == 12.0


@pytest.mark.parametrize(
    ("exc", "sent"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.RemoteProtocolError, True),
        (httpx.ReadError, True),
    ],
)
def test_error_from_exception_knows_if_the_request_left(exc: type[httpx.TransportError], sent: bool) -> None:
    request = httpx.Request("POST", "https://gateway.test/gpt-image-2/v1/text-to-image")
    err = error_from_exception(exc("boom", request=request))
    assert err.request_sent is sent
    assert exc.__name__ in str(err)
    assert "POST /gpt-image-2/v1/text-to-image" in str(err)
    assert "Network error" in str(error_from_exception(exc("no request attached")))
