from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoServerError,
    PixazoSubmitUncertainError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import RequestStatus, Submission
from airflow_provider_pixazo.retry import RetryPolicy
from tests.conftest import API_KEY, BASE_URL, CONN_ENV

RID = "gpt-image-2_019dabcd-1234-5678-9abc-def012345678"
RID15 = "gpt-image-1-5-api-923_019dabcd-1234-5678-9abc-def012345678"
STATUS_PATH = f"/v2/requests/status/{RID}"
PNG_URI = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"


def _queued(request_id: str = RID, polling_host: str = "https://gateway.pixazo.ai") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "status": "QUEUED",
        "polling_url": f"{polling_host}/v2/requests/status/{request_id}",
    }


def _status(status: str, request_id: str = RID) -> dict[str, Any]:
    completed = status == "COMPLETED"
    return {
        "request_id": request_id,
        "status": status,
        "model_id": "gpt-image-2",
        "error": "Description of the error" if status in ("FAILED", "ERROR") else None,
        "output": {"media_url": [f"https://pub-1.r2.dev/v1/{request_id}/output.png"], "media_type": "image/png"}
        if completed
        else None,
        "created_at": "2026-05-22T13:17:32.110Z",
        "updated_at": "2026-05-22 13:19:23",
        "completed_at": "2026-05-22 13:19:23" if status in ("COMPLETED", "FAILED", "ERROR") else None,
    }


@pytest.fixture
def gateway(pixazo_conn: str) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def hook(pixazo_conn: str) -> Iterator[PixazoHook]:
    h = PixazoHook(retry_policy=RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0))
    yield h
    h.close()


def _assert_api_headers(request: httpx.Request) -> None:
    assert request.headers["Ocp-Apim-Subscription-Key"] == API_KEY
    assert request.headers["Cache-Control"] == "no-cache"


# -- connection -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_env_connection_resolves_sync_and_async(pixazo_conn: str) -> None:
    conn = BaseHook.get_connection("pixazo_default")
    assert (conn.conn_type, conn.host, conn.password) == ("pixazo", BASE_URL, API_KEY)
    aconn = await BaseHook.aget_connection("pixazo_default")
    assert (aconn.host, aconn.password) == (BASE_URL, API_KEY)
    hook = PixazoHook()
    assert hook.settings.base_url == BASE_URL
    assert await hook.asettings() == hook.settings


def test_missing_password_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "pixazo", "host": BASE_URL}))
    with pytest.raises(PixazoValidationError) as info:
        PixazoHook().settings  # noqa: B018
    assert info.value.parameter == "password"
    assert "pixazo_default" in str(info.value)
    ok, message = PixazoHook().test_connection()
    assert ok is False
    assert "password" in message


@pytest.mark.parametrize(
    "bad_key", ["sk-QZ7caf\u00e9", "sk-QZ7\u043a\u043b\u044e\u0447", "sk-QZ7\r\nX-Evil: 1", "sk-QZ7\x00"]
)
def test_a_key_that_is_not_printable_ascii_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, bad_key: str
) -> None:
    conn = {"conn_type": "pixazo", "host": BASE_URL, "password": bad_key}
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PixazoValidationError) as info:
        PixazoHook().get_status("req-1")  # before any HTTP call: httpx would quote the bad character
    ok, message = PixazoHook().test_connection()
    assert info.value.parameter == "password"
    assert "printable ASCII" in str(info.value)
    assert ok is False
    assert "printable ASCII" in message
    shown = " ".join([str(info.value), repr(info.value), message, caplog.text])
    assert "QZ7" not in shown  # the key's own text ...
    assert [c for c in bad_key if not c.isascii() and c in shown] == []  # ... and its non-ASCII characters
    assert str(info.value).isprintable()  # ... and its CR, LF or NUL
    assert message.isprintable()


def test_schema_http_and_timeout_from_the_env_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "pixazo", "host": "127.0.0.1", "schema": "http", "port": 9999, "password": API_KEY}
    monkeypatch.setenv(CONN_ENV, json.dumps({**conn, "extra": {"timeout": 5}}))
    settings = PixazoHook().settings
    assert (settings.base_url, settings.timeout) == ("http://127.0.0.1:9999", 5.0)
    monkeypatch.setenv(CONN_ENV, json.dumps({**conn, "extra": {"timeout": "forever"}}))
    with pytest.raises(PixazoValidationError) as info:
        PixazoHook().settings  # noqa: B018
    assert info.value.parameter == "timeout"


# -- submits ----------------------------------------------------------------------------------------

SUBMITS = [
    pytest.param(
        "generate_image",
        {"prompt": "a fox", "model": "gpt-image-1.5", "size": "1536x1024", "n": 2, "output_format": "webp"},
        "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request",
        {"prompt": "a fox", "image_size": "1536x1024", "num_images": 2, "output_format": "webp"},
        {},
        RID15,
        id="generate-gpt-image-1.5",
    ),
    pytest.param(
        "generate_image",
        {
            "prompt": "a fox",
            "size": "1280x720",
            "n": 3,
            "output_format": "jpeg",
            "output_compression": 70,
            "webhook_url": "https://hooks.example/cb",
            "webhook_mode": "sync",
        },
        "/gpt-image-2/v1/text-to-image",
        {"prompt": "a fox", "size": "1280x720", "n": 3, "format": "jpeg", "output_compression": 70},
        {"X-Webhook-URL": "https://hooks.example/cb", "X-Webhook-Mode": "sync"},
        RID,
        id="generate-gpt-image-2-webhook",
    ),
    pytest.param(
        "edit_image",
        {
            "prompt": "add a hat",
            "images": ["https://cdn.example/a.png", PNG_URI],
            "mask": PNG_URI,
            "quality": "high",
            "webhook_url": "https://hooks.example/cb",
        },
        "/gpt-image-2/v1/image-to-image-edit",
        {"prompt": "add a hat", "image": ["https://cdn.example/a.png", PNG_URI], "mask": PNG_URI, "quality": "high"},
        {"X-Webhook-URL": "https://hooks.example/cb"},
        RID,
        id="edit-gpt-image-2",
    ),
]


@pytest.mark.parametrize(("method", "kwargs", "path", "body", "webhook", "request_id"), SUBMITS)
def test_submit_endpoints(
    gateway: respx.MockRouter,
    hook: PixazoHook,
    method: str,
    kwargs: dict[str, Any],
    path: str,
    body: dict[str, Any],
    webhook: dict[str, str],
    request_id: str,
) -> None:
    route = gateway.post(path).respond(202, json=_queued(request_id))
    submission = getattr(hook, method)(**kwargs)
    assert submission == Submission(request_id, RequestStatus.QUEUED, _queued(request_id)["polling_url"])
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.url == f"{BASE_URL}{path}"
    assert json.loads(request.content) == body
    assert request.headers["Content-Type"] == "application/json"
    _assert_api_headers(request)
    for name in ("X-Webhook-URL", "X-Webhook-Mode"):
        assert request.headers.get(name) == webhook.get(name)


def test_invalid_submit_makes_no_http_call(gateway: respx.MockRouter, hook: PixazoHook) -> None:
    with pytest.raises(PixazoValidationError):
        hook.generate_image("a fox", model="gpt-image-1.5", moderation="low")
    assert gateway.calls.call_count == 0


def test_post_is_not_retried_on_read_timeout(
    gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]
) -> None:
    route = gateway.post("/gpt-image-2/v1/text-to-image").mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(PixazoSubmitUncertainError) as info:
        hook.generate_image("a fox")
    assert route.call_count == 1
    assert no_sleep == []
    assert isinstance(info.value, AirflowFailException)
    assert "NOT sent again" in str(info.value)
    assert isinstance(info.value.__cause__, PixazoError)


def test_post_is_not_retried_on_500(gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]) -> None:
    route = gateway.post("/gpt-image-2/v1/text-to-image").respond(500, json={"error": "boom"})
    with pytest.raises(PixazoSubmitUncertainError) as info:
        hook.generate_image("a fox")
    assert route.call_count == 1
    assert no_sleep == []
    assert "(500)" in str(info.value)


def test_post_is_retried_on_429_honouring_retry_after(
    gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]
) -> None:
    route = gateway.post("/gpt-image-2/v1/text-to-image").mock(
        side_effect=[
            httpx.Response(429, json={"error": "Too Many Requests"}, headers={"Retry-After": "7"}),
            httpx.Response(202, json=_queued()),
        ]
    )
    assert hook.generate_image("a fox").request_id == RID
    assert route.call_count == 2
    assert len(no_sleep) == 1
    assert no_sleep[0] >= 7.0
    assert json.loads(route.calls[1].request.content) == json.loads(route.calls[0].request.content)


def test_post_is_retried_on_connect_error(gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]) -> None:
    route = gateway.post("/gpt-image-2/v1/text-to-image").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(202, json=_queued())]
    )
    assert hook.generate_image("a fox").request_id == RID
    assert route.call_count == 2
    assert len(no_sleep) == 1
    assert 0.5 <= no_sleep[0] <= 1.0


@pytest.mark.parametrize(
    ("status", "cls"), [(401, PixazoAuthError), (403, PixazoAuthError), (402, PixazoInsufficientBalanceError)]
)
def test_auth_and_balance_errors_fail_at_once(
    gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float], status: int, cls: type[PixazoError]
) -> None:
    body = {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
    post = gateway.post("/gpt-image-2/v1/text-to-image").respond(status, json=body)
    get = gateway.get(STATUS_PATH).respond(status, json=body)
    with pytest.raises(cls) as submit_info:
        hook.generate_image("a fox")
    with pytest.raises(cls) as get_info:
        hook.get_status(RID)
    assert (post.call_count, get.call_count) == (1, 1)
    assert no_sleep == []
    for err in (submit_info.value, get_info.value):
        assert isinstance(err, AirflowFailException)
        assert err.http_status == status  # type: ignore[attr-defined]
    assert get_info.value.request_id == RID  # type: ignore[attr-defined]


# -- status -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [s.value for s in RequestStatus])
def test_get_status_parses_every_status(gateway: respx.MockRouter, hook: PixazoHook, status: str) -> None:
    route = gateway.get(STATUS_PATH).respond(200, json=_status(status))
    result = hook.get_status(RID)
    assert result.status is RequestStatus(status)
    assert result.request_id == RID
    if status == "COMPLETED":
        assert result.media_urls == (f"https://pub-1.r2.dev/v1/{RID}/output.png",)
    if status in ("FAILED", "ERROR"):
        assert result.error == "Description of the error"
    _assert_api_headers(route.calls.last.request)


def test_status_url_comes_from_the_connection_not_the_polling_url(gateway: respx.MockRouter, hook: PixazoHook) -> None:
    gateway.post("/gpt-image-2/v1/text-to-image").respond(202, json=_queued(polling_host="https://evil.example"))
    status = gateway.get(STATUS_PATH).respond(200, json=_status("QUEUED"))
    submission = hook.generate_image("a fox")
    assert submission.polling_url == f"https://evil.example{STATUS_PATH}"
    hook.get_status(submission.request_id)
    assert status.call_count == 1
    assert [str(c.request.url) for c in gateway.calls][-1] == f"{BASE_URL}{STATUS_PATH}"
    assert all(c.request.url.host == "gateway.test" for c in gateway.calls)


@pytest.mark.parametrize("bad", ["../x", "../../gpt-image-2/v1/text-to-image", "a/b", "a?b", "%2F", ""])
def test_bad_request_id_is_refused_before_http(gateway: respx.MockRouter, hook: PixazoHook, bad: str) -> None:
    with pytest.raises(PixazoValidationError) as info:
        hook.get_status(bad)
    assert info.value.parameter == "request_id"
    assert gateway.calls.call_count == 0


def test_get_is_retried_on_500_with_backoff(gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]) -> None:
    route = gateway.get(STATUS_PATH).mock(
        side_effect=[httpx.Response(500), httpx.Response(503), httpx.Response(200, json=_status("PROCESSING"))]
    )
    assert hook.get_status(RID).status is RequestStatus.PROCESSING
    assert route.call_count == 3
    assert len(no_sleep) == 2
    assert 0.5 <= no_sleep[0] <= 1.0
    assert 1.0 <= no_sleep[1] <= 2.0


def test_get_is_retried_on_read_timeout(gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]) -> None:
    route = gateway.get(STATUS_PATH).mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=_status("QUEUED"))]
    )
    assert hook.get_status(RID).status is RequestStatus.QUEUED
    assert route.call_count == 2
    assert len(no_sleep) == 1


def test_get_gives_up_after_max_attempts(gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float]) -> None:
    route = gateway.get(STATUS_PATH).respond(502, json={"error": "Bad Gateway"})
    with pytest.raises(PixazoServerError) as info:
        hook.get_status(RID)
    assert route.call_count == 4
    assert len(no_sleep) == 3
    assert info.value.http_status == 502
    assert info.value.request_id == RID
    assert not isinstance(info.value, AirflowFailException)


# -- async ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_aget_status_shares_one_async_client(gateway: respx.MockRouter, pixazo_conn: str) -> None:
    route = gateway.get(STATUS_PATH).mock(
        side_effect=[httpx.Response(200, json=_status(s)) for s in ("QUEUED", "PROCESSING", "COMPLETED")]
    )
    first, second = PixazoHook(), PixazoHook()
    try:
        assert (await first.aget_status(RID)).status is RequestStatus.QUEUED
        client = _clients.shared_async_client(await first.asettings())
        assert (await first.aget_status(RID)).status is RequestStatus.PROCESSING
        assert (await second.aget_status(RID)).status is RequestStatus.COMPLETED
        assert _clients.shared_async_client(await second.asettings()) is client
        assert not client.is_closed
        assert route.call_count == 3
        for call in route.calls:
            _assert_api_headers(call.request)
    finally:
        await _clients.aclose_shared_clients()
    assert client.is_closed


@pytest.mark.asyncio
async def test_aget_status_retries_and_refuses_bad_ids(
    gateway: respx.MockRouter, pixazo_conn: str, no_sleep: list[float]
) -> None:
    route = gateway.get(STATUS_PATH).mock(
        side_effect=[httpx.Response(500), httpx.ConnectError("refused"), httpx.Response(200, json=_status("FAILED"))]
    )
    hook = PixazoHook(retry_policy=RetryPolicy(max_attempts=3))
    try:
        result = await hook.aget_status(RID)
        assert result.status is RequestStatus.FAILED
        assert route.call_count == 3
        assert len(no_sleep) == 2
        with pytest.raises(PixazoValidationError):
            await hook.aget_status("../x")
        assert gateway.calls.call_count == 3
    finally:
        await _clients.aclose_shared_clients()


# -- test_connection --------------------------------------------------------------------------------

PROBE = "/v2/requests/status/airflow-connection-test"


def test_test_connection_ok_on_404(gateway: respx.MockRouter, hook: PixazoHook) -> None:
    route = gateway.get(PROBE).respond(404, json={"error": "Not found"})
    ok, message = hook.test_connection()
    assert ok is True
    assert BASE_URL in message
    assert route.call_count == 1
    _assert_api_headers(route.calls.last.request)


def test_test_connection_refused_key(gateway: respx.MockRouter, hook: PixazoHook) -> None:
    gateway.get(PROBE).respond(401, json={"error": "Unauthorized"})
    ok, message = hook.test_connection()
    assert ok is False
    assert "API key" in message
    assert "401" in message


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.Response(503)], ids=["connect", "503"])
def test_test_connection_unreachable(
    gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float], failure: Any
) -> None:
    route = gateway.get(PROBE).mock(side_effect=[failure])
    ok, message = hook.test_connection()
    assert ok is False
    assert BASE_URL in message
    assert route.call_count == 1  # no retries behind a Test button
    assert no_sleep == []


# -- media ------------------------------------------------------------------------------------------


@pytest.fixture
def local_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    conn = {"conn_type": "pixazo", "host": "http://127.0.0.1:9999", "password": API_KEY}
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    return "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9999/media/out.png", "https://pub-1.r2.dev/v1/x/output.png"], ids=["own-http", "cdn"]
)
def test_stream_media_sends_no_key(local_conn: str, url: str) -> None:
    payload = b"\x89PNG\r\n\x1a\n" + b"x" * 5000
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(url).respond(200, content=payload, headers={"Content-Type": "image/png"})
        hook = PixazoHook()
        with hook.stream_media(url) as response:
            assert b"".join(response.iter_bytes()) == payload
    request = route.calls.last.request
    assert "Ocp-Apim-Subscription-Key" not in request.headers
    assert API_KEY not in str(request.headers)


def test_stream_media_sends_no_key_even_to_the_gateway_itself(gateway: respx.MockRouter, hook: PixazoHook) -> None:
    route = gateway.get("/media/out.png").respond(200, content=b"\x89PNG\r\n\x1a\n")
    with hook.stream_media(f"{BASE_URL}/media/out.png") as response:
        response.read()
    assert "Ocp-Apim-Subscription-Key" not in route.calls.last.request.headers


@pytest.mark.parametrize(
    "url", ["http://other-host/media/out.png", "http://127.0.0.1:9998/out.png", "file:///etc/passwd", "out.png"]
)
def test_stream_media_refuses_foreign_http(local_conn: str, url: str) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        with pytest.raises(PixazoValidationError) as info, PixazoHook().stream_media(url):
            pass
        assert mock.calls.call_count == 0
    assert info.value.parameter == "media_url"


def test_stream_media_retries_5xx(local_conn: str, no_sleep: list[float]) -> None:
    url = "http://127.0.0.1:9999/media/out.png"
    with respx.mock() as mock:
        route = mock.get(url).mock(side_effect=[httpx.Response(503), httpx.Response(200, content=b"img")])
        with PixazoHook().stream_media(url) as response:
            assert response.read() == b"img"
    assert route.call_count == 2
    assert len(no_sleep) == 1


# -- the key stays secret ---------------------------------------------------------------------------


def test_api_key_never_leaks(
    gateway: respx.MockRouter, hook: PixazoHook, no_sleep: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "airflow_provider_pixazo", "airflow"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[BaseException] = []
    gateway.post("/gpt-image-2/v1/text-to-image").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(202, json=_queued()),
            httpx.Response(500, json={"error": "boom"}),
            httpx.ReadTimeout("slow"),
            httpx.Response(401, json={"error": "Unauthorized"}),
        ]
    )
    gateway.get(STATUS_PATH).mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json=_status("COMPLETED")), httpx.Response(402)]
    )
    gateway.get(PROBE).respond(401)

    hook.generate_image("a fox")
    for _ in range(3):
        try:
            hook.generate_image("a fox")
        except PixazoError as err:
            errors.append(err)
    hook.get_status(RID)
    try:
        hook.get_status(RID)
    except PixazoError as err:
        errors.append(err)
    ok, message = hook.test_connection()
    for bad in ({"n": 0}, {"webhook_url": "http://x"}):
        try:
            hook.generate_image("a fox", **bad)
        except PixazoError as err:
            errors.append(err)

    assert len(errors) == 6
    assert not ok
    assert "retrying in" in caplog.text  # the capture works: the retry warnings are in it
    assert API_KEY not in caplog.text
    assert API_KEY not in message
    for err in errors:
        assert API_KEY not in str(err)
        assert API_KEY not in repr(err)
        assert API_KEY not in str(getattr(err, "body", ""))
    for thing in (hook, hook.settings, hook.get_conn(), hook.get_conn().auth):
        assert API_KEY not in repr(thing)
