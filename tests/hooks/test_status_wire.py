"""The status poll's wire format: the prebuilt GET's bytes and the strict response-head reader (no I/O)."""

from __future__ import annotations

import gzip

import h11
import httpx
import pytest

from airflow_provider_pixazo.error_mapping import error_from_response
from airflow_provider_pixazo.exceptions import PixazoRateLimitError
from airflow_provider_pixazo.hooks._status_wire import StatusAnswer, StatusHead, StatusTemplate, parse_head

KEY = "sk-wire-key"
HEADERS = {"Cache-Control": "no-cache", "User-Agent": "airflow-provider-pixazo", "Ocp-Apim-Subscription-Key": KEY}
TIMEOUTS: dict[str, float | None] = {"connect": 10.0, "read": 30.0, "write": 30.0, "pool": None}


def _server_view(wire: bytes) -> h11.Request:
    """The GET as a server's h11 reads it: proves the bytes are valid HTTP/1.1 with nothing after them."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(wire)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    assert server.next_event() is h11.NEED_DATA
    return request


def test_the_prebuilt_get_is_what_httpx_would_send() -> None:
    template = StatusTemplate("https://gateway.test:8443/prefix/", HEADERS, TIMEOUTS)
    get = template.get("/v2/requests/status/gpt-image-2_1")

    request = _server_view(get.wire(False, b""))

    assert request.method == b"GET"
    assert request.target == b"/prefix/v2/requests/status/gpt-image-2_1"
    assert list(request.headers) == [
        (b"host", b"gateway.test:8443"),
        (b"cache-control", b"no-cache"),
        (b"user-agent", b"airflow-provider-pixazo"),
        (b"ocp-apim-subscription-key", KEY.encode()),
    ]
    assert get.origin == (b"https", b"gateway.test", 8443)
    assert template.timeouts is TIMEOUTS


def test_default_ports_are_left_out_of_host_as_httpx_does() -> None:
    get = StatusTemplate("https://gateway.pixazo.ai", HEADERS, TIMEOUTS).get("/v2/requests/status/x")
    assert dict(_server_view(get.wire(False, b"")).headers)[b"host"] == b"gateway.pixazo.ai"
    assert get.origin == (b"https", b"gateway.pixazo.ai", 443)


def test_absolute_form_and_proxy_headers_for_a_forwarding_proxy() -> None:
    get = StatusTemplate("http://127.0.0.1:8080", HEADERS, TIMEOUTS).get("/v2/requests/status/x")

    request = _server_view(get.wire(True, b"Proxy-Authorization: Basic YTpi\r\n"))

    assert request.target == b"http://127.0.0.1:8080/v2/requests/status/x"
    assert dict(request.headers)[b"proxy-authorization"] == b"Basic YTpi"


def test_the_error_view_names_the_url_never_the_key() -> None:
    get = StatusTemplate("http://127.0.0.1:8080", HEADERS, TIMEOUTS).get("/v2/requests/status/x")

    plain = get.as_request()
    sendable = get.as_request(sendable=True)

    assert str(plain.url) == "http://127.0.0.1:8080/v2/requests/status/x"
    assert KEY not in repr(plain.headers)
    assert "ocp-apim-subscription-key" not in plain.headers
    assert sendable.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert sendable.extensions["timeout"] is TIMEOUTS


def test_a_header_that_could_split_the_request_is_refused_when_the_template_is_built() -> None:
    with pytest.raises(h11.LocalProtocolError):
        StatusTemplate("http://127.0.0.1:8080", {**HEADERS, "Ocp-Apim-Subscription-Key": "k\r\nX-Evil: 1"}, TIMEOUTS)


@pytest.mark.parametrize("base", ["http://127.0.0.1:8080", "https://gw.test/pre%20fix/", "https://gw.test/a/b"])
@pytest.mark.parametrize(
    "path",
    ["/v2/requests/status/gpt-image-2_ab-CD", "/v2/requests/status/x.y", "/v2/./x", "/v2/../x", "/a b", "/é", "/x?y"],
)
def test_the_path_is_the_one_httpx_would_send(base: str, path: str) -> None:
    get = StatusTemplate(base, HEADERS, TIMEOUTS).get(path)
    assert get.path == httpx.URL(base.rstrip("/") + path).raw_path


def test_a_path_leaving_the_origin_is_refused() -> None:
    template = StatusTemplate("http://127.0.0.1:8080", HEADERS, TIMEOUTS)
    with pytest.raises(ValueError, match="origin"):
        template.get("@evil.test/x")


# -- the head reader -----------------------------------------------------------------------------------


def test_the_usual_head_is_read() -> None:
    head = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After:  2 \r\nContent-Length: 17"
    assert parse_head(head) == StatusHead(
        429,
        b"Too Many Requests",
        [(b"content-type", b"application/json"), (b"retry-after", b"2"), (b"content-length", b"17")],
        17,
    )
    assert parse_head(b"HTTP/1.1 200\r\nContent-Length: 0") == StatusHead(200, b"", [(b"content-length", b"0")], 0)
    # A repeated, equal length is one length (h11 agrees).
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2") is not None


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", id="chunked"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close", id="connection-close"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain", id="no-length"),
        pytest.param(b"HTTP/1.1 100 Continue", id="1xx"),
        pytest.param(b"HTTP/1.1 204 No Content\r\nContent-Length: 0", id="204"),
        pytest.param(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5", id="304"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2", id="http-1.0"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3", id="two-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -1", id="negative-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded", id="obs-fold"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2", id="space-in-name"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2", id="nul-in-value"),
        pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 2", id="bare-lf"),
        pytest.param(b"garbage", id="garbage"),
        pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 2", id="bad-code"),
    ],
)
def test_anything_unusual_is_left_to_h11(head: bytes) -> None:
    assert parse_head(head) is None


def test_an_answer_converts_for_the_error_mapping_with_retry_after() -> None:
    get = StatusTemplate("http://127.0.0.1:8080", HEADERS, TIMEOUTS).get("/v2/requests/status/x")
    answer = StatusAnswer(429, [(b"retry-after", b"3"), (b"content-type", b"application/json")], b'{"statusCode": 429}')

    error = error_from_response(answer.to_response(get.as_request()), request_id="x")

    assert isinstance(error, PixazoRateLimitError)
    assert error.retry_after == 3.0
    assert "GET /v2/requests/status/x" in str(error)


def test_an_encoded_body_is_decoded_as_httpx_would() -> None:
    body = gzip.compress(b'{"status": "QUEUED"}')
    assert StatusAnswer(200, [(b"content-encoding", b"gzip")], body).content() == b'{"status": "QUEUED"}'
    assert StatusAnswer(200, [(b"content-encoding", b"identity")], b"plain").content() == b"plain"
    with pytest.raises(httpx.DecodingError):
        StatusAnswer(200, [(b"content-encoding", b"gzip")], b"not gzip").content()
