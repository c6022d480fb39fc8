"""PixazoRequestTrigger, driven against a respx-mocked gateway with a fake clock (no real sleeping)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx
import structlog.testing

from airflow_provider_pixazo.events import WaitOutcome, result_from_event
from airflow_provider_pixazo.exceptions import PixazoTimeoutError, PixazoValidationError
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.triggers import pixazo as trigger_module
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

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


class FakeClock:
    """Stands in for ``time`` and ``asyncio`` inside the trigger module: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []
        self.gate: asyncio.Event | None = None  # when set, sleep blocks until the event is set
        self.sleeping = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping.set()
        if self.gate is not None:
            await self.gate.wait()
        self.now += seconds
        await asyncio.sleep(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


class _TimeModule:
    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, no_sleep: list[float]) -> FakeClock:
    """A fake clock for the trigger module; the hook's own retry sleeps are instant too (``no_sleep``)."""
    fake = FakeClock()
    monkeypatch.setattr(trigger_module, "asyncio", fake)
    monkeypatch.setattr(trigger_module, "time", _TimeModule(fake))
    return fake


@pytest_asyncio.fixture
async def gateway(pixazo_conn: str) -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router
    await _clients.aclose_shared_clients()


async def collect(trigger: PixazoRequestTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


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
async def test_completed_yields_one_success_event(gateway: respx.MockRouter, clock: FakeClock) -> None:
    route = gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("PROCESSING"), status("COMPLETED")])

    events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1))

    assert len(events) == 1
    event = events[0]
    assert event["outcome"] == WaitOutcome.SUCCESS.value
    assert event["request_id"] == REQUEST_ID
    assert event["result"]["status"] == "COMPLETED"
    assert event["result"]["media_urls"] == [MEDIA_URL]
    assert result_from_event(event).media_urls == (MEDIA_URL,)
    assert route.call_count == 3
    assert route.calls.last.request.headers["Ocp-Apim-Subscription-Key"] == API_KEY
    json.dumps(event)


@pytest.mark.asyncio
@pytest.mark.parametrize(("remote", "outcome"), [("FAILED", WaitOutcome.FAILED), ("ERROR", WaitOutcome.ERROR)])
async def test_failed_and_error_carry_pixazo_text(
    gateway: respx.MockRouter, clock: FakeClock, remote: str, outcome: WaitOutcome
) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status(remote, error="content policy violation")])

    events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1))

    assert len(events) == 1
    assert events[0]["outcome"] == outcome.value
    assert events[0]["result"]["error"] == "content policy violation"
    assert "content policy violation" in events[0]["message"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "outcome"), [(401, WaitOutcome.AUTH), (403, WaitOutcome.AUTH), (404, WaitOutcome.NOT_FOUND)]
)
async def test_http_errors_end_the_wait_at_once(
    gateway: respx.MockRouter, clock: FakeClock, code: int, outcome: WaitOutcome
) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=httpx.Response(code, json={"message": "nope"}))

    events = await collect(PixazoRequestTrigger(REQUEST_ID))

    assert len(events) == 1
    assert events[0]["outcome"] == outcome.value
    assert events[0]["http_status"] == code
    assert API_KEY not in json.dumps(events[0])
    assert route.call_count == 1  # never retried
    assert clock.sleeps == []


@pytest.mark.asyncio
async def test_connection_without_key_is_invalid(
    monkeypatch: pytest.MonkeyPatch, gateway: respx.MockRouter, clock: FakeClock
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PIXAZO_NOKEY", json.dumps({"conn_type": "pixazo", "host": BASE_URL}))
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))

    events = await collect(PixazoRequestTrigger(REQUEST_ID, pixazo_conn_id="pixazo_nokey"))

    assert [e["outcome"] for e in events] == [WaitOutcome.INVALID.value]
    assert "password" in events[0]["message"]
    assert not route.called


@pytest.mark.asyncio
async def test_missing_connection_is_invalid(gateway: respx.MockRouter, clock: FakeClock) -> None:
    events = await collect(PixazoRequestTrigger(REQUEST_ID, pixazo_conn_id="pixazo_does_not_exist"))

    assert [e["outcome"] for e in events] == [WaitOutcome.INVALID.value]
    assert "pixazo_does_not_exist" in events[0]["message"]


@pytest.mark.asyncio
async def test_timeout_names_the_request_and_never_sleeps_past_the_deadline(
    gateway: respx.MockRouter, clock: FakeClock
) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))
    trigger = PixazoRequestTrigger(REQUEST_ID, poll_interval=2, timeout=5, max_poll_interval=60)
    deadline = trigger.end_time

    events = await collect(trigger)

    assert len(events) == 1
    event = events[0]
    assert event["outcome"] == WaitOutcome.TIMEOUT.value
    assert event["timeout"] == 5.0
    assert event["last_status"] == "QUEUED"
    assert REQUEST_ID in event["message"]
    assert sum(clock.sleeps) == pytest.approx(5.0)  # 2 + 2 + 1: the last sleep is cut to the deadline
    assert clock.sleeps[-1] == pytest.approx(1.0)
    assert clock.now == pytest.approx(deadline)
    assert route.call_count == len(clock.sleeps) + 1  # one last poll at the deadline
    with pytest.raises(PixazoTimeoutError, match=REQUEST_ID):
        result_from_event(event)


# -- resilience ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_transient_errors_do_not_fail_the_wait(
    gateway: respx.MockRouter, clock: FakeClock, no_sleep: list[float]
) -> None:
    route = gateway.get(STATUS_URL).mock(
        side_effect=[
            status("QUEUED"),
            # five 5xx in a row exhaust the hook's retries, so the trigger itself sees the error
            *[httpx.Response(500, json={"error": "boom"})] * 4,
            httpx.Response(503),
            # a blip the hook's retries absorb
            httpx.ConnectError("connection refused"),
            httpx.Response(502),
            status("PROCESSING"),
            status("COMPLETED"),
        ]
    )

    with structlog.testing.capture_logs() as logs:
        events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1))

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value]
    assert route.call_count == 10
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    assert "will poll again" in warnings[0]
    assert "503" in warnings[0]
    assert len(no_sleep) == 6  # the hook backed off before each of its retries


@pytest.mark.asyncio
async def test_unreadable_status_body_is_retried(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[httpx.Response(200, text="<html>oops</html>"), status("COMPLETED")])

    events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1))

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value]


@pytest.mark.asyncio
async def test_each_status_change_is_logged_once(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.get(STATUS_URL).mock(
        side_effect=[status("QUEUED")] * 3 + [status("PROCESSING")] * 3 + [status("COMPLETED")]
    )

    with structlog.testing.capture_logs() as logs:
        events = await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1))

    assert events[0]["outcome"] == WaitOutcome.SUCCESS.value
    changes = [entry["event"] for entry in logs if entry["log_level"] == "info"]
    assert changes == [
        f"Pixazo request {REQUEST_ID} is QUEUED",
        f"Pixazo request {REQUEST_ID} is PROCESSING",
        f"Pixazo request {REQUEST_ID} is COMPLETED",
    ]


@pytest.mark.asyncio
async def test_poll_interval_grows_gently_and_is_bounded(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED")] * 8 + [status("COMPLETED")])

    await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=1, max_poll_interval=2))

    assert clock.sleeps == pytest.approx([1, 1, 1.25, 1.5625, 1.953125, 2, 2, 2])
    assert max(clock.sleeps) == 2


@pytest.mark.asyncio
async def test_max_poll_interval_below_poll_interval_keeps_poll_interval(
    gateway: respx.MockRouter, clock: FakeClock
) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED")] * 4 + [status("COMPLETED")])

    await collect(PixazoRequestTrigger(REQUEST_ID, poll_interval=5, max_poll_interval=1))

    assert clock.sleeps == [5, 5, 5, 5]


@pytest.mark.asyncio
async def test_restart_mid_wait_keeps_the_deadline(gateway: respx.MockRouter, clock: FakeClock) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=status("QUEUED"))
    first = PixazoRequestTrigger(REQUEST_ID, poll_interval=1, timeout=600)
    clock.gate = asyncio.Event()  # the first trigger blocks in its first sleep

    task = asyncio.create_task(collect(first))
    await asyncio.wait_for(clock.sleeping.wait(), timeout=5)
    assert route.call_count == 1
    task.cancel()  # the triggerer goes away
    with pytest.raises(asyncio.CancelledError):
        await task

    clock.now += 300  # the new triggerer starts five minutes later
    clock.gate = None
    _, kwargs = first.serialize()
    second = PixazoRequestTrigger(**kwargs)
    assert second.end_time == first.end_time
    route.mock(side_effect=[status("PROCESSING"), status("COMPLETED")])

    events = await collect(second)

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value]
    assert events[0]["result"]["media_urls"] == [MEDIA_URL]


@pytest.mark.asyncio
async def test_restart_after_the_deadline_polls_once_then_times_out(
    gateway: respx.MockRouter, clock: FakeClock
) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    _, kwargs = PixazoRequestTrigger(REQUEST_ID, timeout=60).serialize()
    clock.now += 61

    events = await collect(PixazoRequestTrigger(**kwargs))

    assert [e["outcome"] for e in events] == [WaitOutcome.TIMEOUT.value]
    assert events[0]["last_status"] == "PROCESSING"
    assert route.call_count == 1
    assert clock.sleeps == []


@pytest.mark.asyncio
async def test_polls_share_the_loops_pooled_client(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("COMPLETED")] * 2)
    created: list[httpx.AsyncClient] = []
    real = _clients.shared_async_client

    def spy(settings: _clients.ConnectionSettings) -> httpx.AsyncClient:
        client = real(settings)
        created.append(client)
        return client

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_clients, "shared_async_client", spy)
        await asyncio.gather(collect(PixazoRequestTrigger(REQUEST_ID)), collect(PixazoRequestTrigger(REQUEST_ID)))

    assert len(created) == 4
    assert len({id(c) for c in created}) == 1
