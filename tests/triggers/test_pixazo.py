"""PixazoRequestTrigger on the loop's shared poller, against a respx-mocked gateway in virtual time (no sleeping)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx
import structlog.testing
from airflow.sdk import BaseHook

from airflow_provider_pixazo.events import WaitOutcome, result_from_event
from airflow_provider_pixazo.exceptions import PixazoTimeoutError, PixazoValidationError
from airflow_provider_pixazo.hooks import _clients, _poller
from airflow_provider_pixazo.triggers import pixazo as trigger_module
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.triggers.virtual_time import VirtualClock

BASE_URL = "https://gateway.test"
API_KEY = "sk-test-SECRET-123"
REQUEST_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"
STATUS_URL = f"{BASE_URL}/v2/requests/status/{REQUEST_ID}"
MEDIA_URL = f"https://pub-test.r2.dev/v1/{REQUEST_ID}/output.png"
CLASSPATH = "airflow_provider_pixazo.triggers.pixazo.PixazoRequestTrigger"


def status(value: str, *, error: str | None = None, code: int = 200) -> httpx.Response:
    body: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "status": value,
        "model_id": "gpt-image-2",
        "error": error,
        "output": {"media_url": [MEDIA_URL], "media_type": "image/png"} if value == "COMPLETED" else None,
        "created_at": "2026-03-31T10:00:00.000Z",
    }
    return httpx.Response(code, json=body)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Virtual time for the trigger (its default deadline) and the loop's status poller: nothing sleeps."""
    fake = VirtualClock()
    monkeypatch.setattr(_poller, "default_clock", fake)
    monkeypatch.setattr(trigger_module, "time", fake)

    async def read_in_loop(conn_id: str) -> Any:
        # Airflow's own lookup, minus the thread its async form uses for env connections: virtual
        # time cannot see a thread at work, and would jump past the deadline while it runs.
        return BaseHook.get_connection(conn_id)

    monkeypatch.setattr(_poller, "_read_connection", read_in_loop)
    return fake


@pytest_asyncio.fixture
async def gateway(pixazo_conn: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[respx.MockRouter]:
    """A respx router at the network edge: the shared keep-alive transport the poller sends on."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        transport = httpx.MockTransport(router.async_handler)
        monkeypatch.setattr(_clients, "shared_async_transport", lambda settings: transport)
        yield router
    for poller in list(_poller._POLLERS.get(asyncio.get_running_loop(), {}).values()):
        for task in list(poller._in_flight):
            task.cancel()
    _poller.forget_pollers()
    await _clients.aclose_shared_clients()


def poll_times(route: respx.Route, clock: VirtualClock) -> list[float]:
    """Seconds between consecutive polls, as the gateway saw them (recorded by ``timed``)."""
    times = route.times  # type: ignore[attr-defined]
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


def timed(route: respx.Route, clock: VirtualClock) -> respx.Route:
    """Record the virtual time of each call of ``route`` in ``route.times``."""
    route.times = []  # type: ignore[attr-defined]
    inner = route.side_effect
    answers = iter(inner) if inner is not None else None
    fixed = route.return_value

    def effect(request: httpx.Request) -> Any:
        route.times.append(clock.now)  # type: ignore[attr-defined]
        answer = next(answers) if answers is not None else fixed
        if isinstance(answer, Exception):
            raise answer
        return answer

    route.side_effect = effect
    return route


async def collect(trigger: PixazoRequestTrigger, clock: VirtualClock) -> list[dict[str, Any]]:
    async def consume() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await clock.run(consume())


def poller_stats() -> dict[str, int]:
    return _poller.status_poller("pixazo_default").stats()


# -- construction and serialization ---------------------------------------------------------------


def test_serialize_round_trip_keeps_deadline_and_holds_no_secret(pixazo_conn: str) -> None:
    trigger = PixazoRequestTrigger(REQUEST_ID, poll_interval=5, timeout=120, max_poll_interval=30)
    classpath, kwargs = trigger.serialize()

    assert classpath == CLASSPATH
    assert kwargs == {
        "request_id": REQUEST_ID,
        "pixazo_conn_id": "pixazo_default",
        "poll_interval": 5.0,
        "timeout": 120.0,
        "max_poll_interval": 30.0,
        "end_time": pytest.approx(time.time() + 120, abs=5),
        "end_task_on_success": False,
        "task_return": "result",
        "image_link_keys": {},
    }
    json.dumps(kwargs)  # JSON-safe
    assert API_KEY not in json.dumps(kwargs)
    assert API_KEY not in repr(trigger)

    rebuilt = PixazoRequestTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.end_time == trigger.end_time


def test_end_time_defaults_to_now_plus_timeout() -> None:
    before = time.time()
    trigger = PixazoRequestTrigger(REQUEST_ID, timeout=60)
    assert before + 60 <= trigger.end_time <= time.time() + 60


@pytest.mark.parametrize("bad_id", ["", "../etc/passwd", "abc/def", "id?x=1", None, 42])
def test_bad_request_id_is_refused_at_construction(bad_id: Any) -> None:
    with pytest.raises(PixazoValidationError, match="request_id"):
        PixazoRequestTrigger(bad_id)


@pytest.mark.parametrize(("name", "value"), [("poll_interval", 0), ("max_poll_interval", -1), ("timeout", -5)])
def test_bad_intervals_are_refused(name: str, value: float) -> None:
    with pytest.raises(PixazoValidationError, match=name):
        PixazoRequestTrigger(REQUEST_ID, **{name: value})


# -- terminal outcomes ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_completed_yields_one_success_event(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    route = gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("PROCESSING"), status("COMPLETED")])

    events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1), clock)

    assert len(events) == 1
    event = events[0]
    assert event["outcome"] == WaitOutcome.SUCCESS.value
    assert event["request_id"] == REQUEST_ID
    assert event["result"]["status"] == "COMPLETED"
    assert event["result"]["media_urls"] == [MEDIA_URL]
    assert event["message"] == f"Pixazo request {REQUEST_ID} COMPLETED with 1 media file(s)"
    assert result_from_event(event).media_urls == (MEDIA_URL,)
    assert route.call_count == 3
    for call in route.calls:
        assert call.request.headers["Ocp-Apim-Subscription-Key"] == API_KEY
        assert call.request.url == STATUS_URL  # built from the connection, never from an answer
    json.dumps(event)
    assert poller_stats() == dict.fromkeys(poller_stats(), 0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("remote", "outcome", "text", "fallback"),
    [
        ("FAILED", WaitOutcome.FAILED, "FAILED: ", "no reason given"),
        ("ERROR", WaitOutcome.ERROR, "ended in ERROR: ", "no description given"),
    ],
)
@pytest.mark.parametrize("error", ["content policy violation", None])
async def test_failed_and_error_carry_pixazo_text(
    gateway: respx.MockRouter,
    clock: VirtualClock,
    remote: str,
    outcome: WaitOutcome,
    text: str,
    fallback: str,
    error: str | None,
) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status(remote, error=error)])

    events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1), clock)

    assert len(events) == 1
    assert events[0]["outcome"] == outcome.value
    assert events[0]["result"]["error"] == error
    assert events[0]["message"] == f"Pixazo request {REQUEST_ID} {text}{error or fallback}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "outcome"),
    [(400, WaitOutcome.INVALID), (401, WaitOutcome.AUTH), (403, WaitOutcome.AUTH), (404, WaitOutcome.NOT_FOUND)],
)
async def test_http_errors_end_the_wait_at_once(
    gateway: respx.MockRouter, clock: VirtualClock, code: int, outcome: WaitOutcome
) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=httpx.Response(code, json={"message": "nope"}))
    started = clock.now

    events = await collect(PixazoRequestTrigger(REQUEST_ID), clock)

    assert len(events) == 1
    assert events[0]["outcome"] == outcome.value
    assert events[0]["http_status"] == code
    assert API_KEY not in json.dumps(events[0])
    assert route.call_count == 1  # never retried (a refused key re-reads the connection, which holds the same key)
    assert clock.now == started


@pytest.mark.asyncio
async def test_connection_without_key_is_invalid(
    monkeypatch: pytest.MonkeyPatch, gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PIXAZO_NOKEY", json.dumps({"conn_type": "pixazo", "host": BASE_URL}))
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))

    events = await collect(PixazoRequestTrigger(REQUEST_ID, pixazo_conn_id="pixazo_nokey"), clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.INVALID.value]
    assert "password" in events[0]["message"]
    assert not route.called


@pytest.mark.asyncio
async def test_bad_max_polls_per_second_is_invalid(
    monkeypatch: pytest.MonkeyPatch, gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    conn = {"conn_type": "pixazo", "host": BASE_URL, "password": API_KEY, "extra": {"max_polls_per_second": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_PIXAZO_BADRATE", json.dumps(conn))
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))

    events = await collect(PixazoRequestTrigger(REQUEST_ID, pixazo_conn_id="pixazo_badrate"), clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.INVALID.value]
    assert "max_polls_per_second" in events[0]["message"]
    assert not route.called


@pytest.mark.asyncio
async def test_missing_connection_is_invalid(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    events = await collect(PixazoRequestTrigger(REQUEST_ID, pixazo_conn_id="pixazo_does_not_exist"), clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.INVALID.value]
    assert "pixazo_does_not_exist" in events[0]["message"]


@pytest.mark.asyncio
async def test_timeout_names_the_request_and_never_polls_past_the_deadline(
    gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    route = timed(gateway.get(STATUS_URL).mock(return_value=status("QUEUED")), clock)
    trigger = PixazoRequestTrigger(REQUEST_ID, poll_interval=2, timeout=5, max_poll_interval=60)
    deadline = trigger.end_time

    events = await collect(trigger, clock)

    assert len(events) == 1
    event = events[0]
    assert event["outcome"] == WaitOutcome.TIMEOUT.value
    assert event["timeout"] == 5.0
    assert event["last_status"] == "QUEUED"
    assert REQUEST_ID in event["message"]
    assert poll_times(route, clock) == pytest.approx([2, 2, 1])  # the last wait is cut to the deadline
    assert route.times[-1] == pytest.approx(deadline)  # type: ignore[attr-defined]  # one last poll at it
    assert clock.now == pytest.approx(deadline)
    with pytest.raises(PixazoTimeoutError, match=REQUEST_ID):
        result_from_event(event)


@pytest.mark.asyncio
async def test_deadline_is_kept_to_the_second_when_the_gateway_hangs(
    gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    hang = asyncio.Event()
    answers = iter([status("PROCESSING")])

    async def slow(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        if answer is None:
            await hang.wait()  # never answers (the read timeout is far away)
        assert answer is not None
        return answer

    gateway.get(STATUS_URL).mock(side_effect=slow)
    trigger = PixazoRequestTrigger(REQUEST_ID, poll_interval=10, timeout=25)

    events = await collect(trigger, clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.TIMEOUT.value]
    assert events[0]["last_status"] == "PROCESSING"
    assert trigger.end_time < clock.now <= trigger.end_time + 1.0


# -- resilience ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_transient_errors_do_not_fail_the_wait(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    route = gateway.get(STATUS_URL).mock(
        side_effect=[
            status("QUEUED"),
            *[httpx.Response(500, json={"error": "boom"})] * 4,
            httpx.Response(503),
            httpx.ConnectError("connection refused"),
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(502),
            status("PROCESSING"),
            httpx.Response(502),
            status("COMPLETED"),
        ]
    )

    with structlog.testing.capture_logs() as logs:
        events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1), clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value]
    assert route.call_count == 12
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    # One warning per run of failures (not one per failed poll); the 429 is the loop's business.
    assert len(warnings) == 2, warnings
    assert all("will poll again" in w for w in warnings)
    assert "500" in warnings[0]
    assert "502" in warnings[1]


@pytest.mark.asyncio
async def test_unreadable_status_body_is_retried(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    gateway.get(STATUS_URL).mock(
        side_effect=[
            httpx.Response(200, text="<html>oops</html>"),
            httpx.Response(200, json={"request_id": REQUEST_ID, "status": "SOMETHING_NEW"}),
            status("COMPLETED"),
        ]
    )

    events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1), clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value]


@pytest.mark.asyncio
async def test_each_status_change_is_logged_once(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    gateway.get(STATUS_URL).mock(
        side_effect=[status("QUEUED")] * 3 + [status("PROCESSING")] * 3 + [status("COMPLETED")]
    )

    with structlog.testing.capture_logs() as logs:
        events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1), clock)

    assert events[0]["outcome"] == WaitOutcome.SUCCESS.value
    changes = [entry["event"] for entry in logs if entry["log_level"] == "info"]
    assert changes == [
        f"Pixazo request {REQUEST_ID} is QUEUED",
        f"Pixazo request {REQUEST_ID} is PROCESSING",
        f"Pixazo request {REQUEST_ID} is COMPLETED",
    ]


@pytest.mark.asyncio
async def test_poll_interval_grows_gently_and_is_bounded(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    route = timed(gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED")] * 8 + [status("COMPLETED")]), clock)

    await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1, max_poll_interval=2), clock)

    assert poll_times(route, clock) == pytest.approx([1, 1, 1.25, 1.5625, 1.953125, 2, 2, 2])


@pytest.mark.asyncio
async def test_max_poll_interval_below_poll_interval_keeps_poll_interval(
    gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    route = timed(gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED")] * 4 + [status("COMPLETED")]), clock)

    await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=5, max_poll_interval=1), clock)

    assert poll_times(route, clock) == [5, 5, 5, 5]


@pytest.mark.asyncio
async def test_restart_mid_wait_keeps_the_deadline(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))
    first = PixazoRequestTrigger(REQUEST_ID, poll_interval=1, timeout=600)

    task = asyncio.ensure_future(_first(first))
    await _until_polled(route, clock)
    await clock.advance(0.5)  # mid-wait: the next poll is due at +1 s
    task.cancel()  # the triggerer goes away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert route.call_count == 1
    assert poller_stats()["waiting"] == 0

    clock.now += 300  # the new triggerer starts five minutes later
    _, kwargs = first.serialize()
    second = PixazoRequestTrigger(**kwargs)
    assert second.end_time == first.end_time
    route.mock(side_effect=[status("PROCESSING"), status("COMPLETED")])

    events = await collect(second, clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value]
    assert events[0]["result"]["media_urls"] == [MEDIA_URL]


@pytest.mark.asyncio
async def test_restart_after_the_deadline_polls_once_then_times_out(
    gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    _, kwargs = PixazoRequestTrigger(REQUEST_ID, timeout=60).serialize()
    clock.now += 61
    started = clock.now

    events = await collect(PixazoRequestTrigger(**kwargs), clock)

    assert [e["outcome"] for e in events] == [WaitOutcome.TIMEOUT.value]
    assert events[0]["last_status"] == "PROCESSING"
    assert route.call_count == 1
    assert clock.now == started


@pytest.mark.asyncio
async def test_cancelled_trigger_unregisters_and_is_polled_no_more(
    gateway: respx.MockRouter, clock: VirtualClock
) -> None:
    other_id = REQUEST_ID.replace("0001", "0002")
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))
    other = gateway.get(STATUS_URL.replace(REQUEST_ID, other_id)).mock(
        side_effect=[status("QUEUED")] * 5 + [status("COMPLETED")]
    )
    cancelled = asyncio.ensure_future(_first(PixazoRequestTrigger(REQUEST_ID, poll_interval=1)))
    await _until_polled(route, clock)
    await clock.advance(3)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    polls_before = route.call_count

    events = await collect(PixazoRequestTrigger(other_id, poll_interval=1), clock)

    assert events[0]["outcome"] == WaitOutcome.SUCCESS.value
    assert other.call_count == 6
    assert route.call_count == polls_before  # the cancelled wait was never polled again
    assert poller_stats() == dict.fromkeys(poller_stats(), 0)


@pytest.mark.asyncio
async def test_triggers_share_one_poller_and_one_connection_read(
    gateway: respx.MockRouter, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("QUEUED"), status("COMPLETED")] * 2)
    reads: list[str] = []
    real = _poller._read_connection

    async def counting(conn_id: str) -> Any:
        reads.append(conn_id)
        return await real(conn_id)

    monkeypatch.setattr(_poller, "_read_connection", counting)
    triggers = [PixazoRequestTrigger(REQUEST_ID, poll_interval=1) for _ in range(2)]

    results = await clock.run(asyncio.gather(*(_first(t) for t in triggers)))

    assert [r["outcome"] for r in results] == [WaitOutcome.SUCCESS.value] * 2
    assert reads == ["pixazo_default"]
    assert list(_poller._POLLERS[asyncio.get_running_loop()]) == ["pixazo_default"]


async def _first(trigger: PixazoRequestTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


async def _until_polled(route: respx.Route, clock: VirtualClock) -> None:
    for _ in range(2000):
        await clock.advance(0)
        if route.called:
            return
        await asyncio.sleep(0.001)  # the connection is read in a thread first
    raise AssertionError("never polled")
