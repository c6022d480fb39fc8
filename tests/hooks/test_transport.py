from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk import Connection

from airflow_provider_pixazo.exceptions import (
    PixazoAPIError,
    PixazoAuthError,
    PixazoBadRequestError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoRateLimitError,
    PixazoServerError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks._transport import (
    API_KEY_HEADER,
    DEFAULT_BASE_URL,
    ConnectionSettings,
    PixazoAuth,
    check_media_url,
    client_kwargs,
    drive_sync,
    error_from_exception,
    error_from_response,
    exchange,
    settings_from_connection,
)
from airflow_provider_pixazo.retry import RetryPolicy
from tests.conftest import API_KEY


def _conn(**kwargs: Any) -> Connection:
    extra = kwargs.pop("extra", None)
    return Connection(
        conn_id="pixazo_x",
        conn_type="pixazo",
        password=kwargs.pop("password", API_KEY),
        extra=json.dumps(extra) if extra is not None else None,
        **kwargs,
    )


# -- connection settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "base_url"),
    [
        ({}, DEFAULT_BASE_URL),
        ({"host": ""}, DEFAULT_BASE_URL),
        ({"host": "  "}, DEFAULT_BASE_URL),
        ({"host": "gw.example.com"}, "https://gw.example.com"),
        ({"host": "gw.example.com", "port": 8443}, "https://gw.example.com:8443"),
        ({"host": "gw.example.com", "schema": "http"}, "http://gw.example.com"),
        ({"host": "127.0.0.1", "schema": "http", "port": 9999}, "http://127.0.0.1:9999"),
        ({"host": "gw.example.com", "schema": "public"}, "https://gw.example.com"),
        ({"host": "https://gw.example.com"}, "https://gw.example.com"),
        ({"host": "https://gw.example.com/"}, "https://gw.example.com"),
        ({"host": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
        ({"host": "https://gw.example.com/prefix/"}, "https://gw.example.com/prefix"),
        # A separate port fills in a URL that has none (the UI's Test button needs the port field) ...
        ({"host": "http://127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
        ({"host": "https://gw.example.com/prefix", "port": 443}, "https://gw.example.com/prefix"),
        # ... but never overrides the URL's own.
        ({"host": "http://127.0.0.1:8080", "port": 9999}, "http://127.0.0.1:8080"),
    ],
)
def test_host_parsing(fields: dict[str, Any], base_url: str) -> None:
    settings = settings_from_connection(_conn(**fields))
    assert settings.base_url == base_url
    assert settings.api_key == API_KEY
    assert settings.timeout == 30.0


@pytest.mark.parametrize("host", ["ftp://gw.example.com", "file:///etc/passwd", "https://"])
def test_bad_host_is_refused(host: str) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(host=host))
    assert info.value.parameter == "host"


@pytest.mark.parametrize(
    ("extra", "timeout"),
    [
        ({"timeout": 12.5}, 12.5),
        ({"timeout": "45"}, 45.0),
        ({"extra__pixazo__timeout": 7}, 7.0),
        ({"timeout": ""}, 30.0),
    ],
)
def test_timeout_extra(extra: dict[str, Any], timeout: float) -> None:
    settings = settings_from_connection(_conn(extra=extra))
    assert settings.timeout == timeout
    assert settings.httpx_timeout.read == timeout
    assert settings.httpx_timeout.connect == min(10.0, timeout)


@pytest.mark.parametrize("bad", ["soon", 0, -5, [1], "nan"])
def test_bad_timeout_is_refused(bad: Any) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(extra={"timeout": bad}))
    assert info.value.parameter == "timeout"
    assert "positive number of seconds" in str(info.value)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_password_is_refused(password: str | None) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(password=password))
    assert info.value.parameter == "password"
    assert "'pixazo_x'" in str(info.value)
    assert "API key in its password" in str(info.value)


def test_plain_http_to_a_remote_host_warns_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings_from_connection(_conn(host="http://gw.example.com"))
    assert "plain http" in caplog.text
    assert API_KEY not in caplog.text


def test_settings_hide_the_key() -> None:
    settings = settings_from_connection(_conn(host="gw.example.com"))
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings.cache_key)
    assert settings.origin == ("https", "gw.example.com", 443)
    other = ConnectionSettings("https://gw.example.com", "another-key")
    assert other.cache_key != settings.cache_key


def test_client_kwargs_always_time_out_and_never_redirect() -> None:
    kwargs = client_kwargs(ConnectionSettings("https://gateway.test", API_KEY, 12.0))
    assert kwargs["timeout"].read == 12.0
    assert kwargs["timeout"].connect == 10.0
    assert kwargs["follow_redirects"] is False
    assert kwargs["headers"]["Cache-Control"] == "no-cache"
    assert API_KEY_HEADER not in kwargs["headers"]


# -- auth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "gets_key"),
    [
        ("https://gateway.test/v2/requests/status/x", True),
        ("https://gateway.test:443/x", True),
        ("https://evil.example/v2/requests/status/x", False),
        ("http://gateway.test/x", False),  # same host, other scheme
        ("https://gateway.test:8443/x", False),  # same host, other port
        ("https://gateway.test.evil.example/x", False),
        ("https://pub-1.r2.dev/v1/x/output.png", False),
    ],
)
def test_auth_attaches_the_key_only_to_the_gateway_origin(url: str, gets_key: bool) -> None:
    auth = PixazoAuth(API_KEY, ConnectionSettings("https://gateway.test", API_KEY).origin)
    # A key already on a foreign request (copied from another one, say) is stripped too.
    request = httpx.Request("GET", url, headers={API_KEY_HEADER: API_KEY})
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    assert (sent.headers.get(API_KEY_HEADER) == API_KEY) is gets_key
    if not gets_key:
        assert API_KEY_HEADER not in sent.headers
    assert API_KEY not in repr(auth)


def test_api_client_does_not_follow_a_redirect_to_another_host() -> None:
    # httpx copies custom headers onto a redirect hop (it strips only Authorization), so the real
    # guard against leaking the key through a redirect is follow_redirects=False on the API client.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "gateway.test":
            return httpx.Response(302, headers={"Location": "https://evil.example/steal"})
        return httpx.Response(200)

    settings = ConnectionSettings("https://gateway.test", API_KEY)
    with httpx.Client(**client_kwargs(settings), transport=httpx.MockTransport(handler)) as client:
        response = client.get("/v2/requests/status/x")
    assert response.status_code == 302
    assert [r.url.host for r in seen] == ["gateway.test"]
    assert seen[0].headers[API_KEY_HEADER] == API_KEY


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


# -- the retry loop ---------------------------------------------------------------------------------


def test_integer_retry_after_cap_does_not_break_the_loop(no_sleep: list[float]) -> None:
    # RetryPolicy(max_retry_after=5) is a natural thing to write; the capped delay must still be slept.
    policy = RetryPolicy(max_retry_after=5)  # type: ignore[arg-type]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://gateway.test/x").mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "100"}), httpx.Response(200, json={})]
        )
        with httpx.Client() as client:
            response = drive_sync(exchange(client.build_request("GET", "https://gateway.test/x"), policy), client)
    assert response.status_code == 200
    assert route.call_count == 2
    assert no_sleep == [5.0]


# -- media URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://pub-582b.r2.dev/v1/x/output.png", True),
        ("https://gateway.test/media/x.png", True),
        ("http://127.0.0.1:9999/media/x.png", True),
        ("http://127.0.0.1:9998/media/x.png", False),
        ("http://localhost:9999/media/x.png", False),
        ("http://other.example/x.png", False),
        ("ftp://127.0.0.1:9999/x.png", False),
        ("/media/x.png", False),
        ("https://", False),
        ("", False),
        (None, False),
    ],
)
def test_check_media_url(url: Any, ok: bool) -> None:
    settings = ConnectionSettings("http://127.0.0.1:9999", API_KEY)
    if ok:
        assert str(check_media_url(url, settings)) == url
    else:
        with pytest.raises(PixazoValidationError) as info:
            check_media_url(url, settings)
        assert info.value.parameter == "media_url"
        assert "http://127.0.0.1:9999" in str(info.value)
