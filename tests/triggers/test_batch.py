"""PixazoBatchTrigger: one trigger for a whole batch, on the loop's shared poller, in virtual time (no sleeping)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx
from airflow.sdk import BaseHook

from airflow_provider_pixazo.batch import _wait as wait_module
from airflow_provider_pixazo.batch._outcomes import ItemOutcome, Outcome
from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.hooks import _clients, _poller
from airflow_provider_pixazo.triggers import batch as trigger_module
from airflow_provider_pixazo.triggers.batch import PixazoBatchTrigger
from tests.triggers.virtual_time import VirtualClock

BASE_URL = "https://gateway.test"
API_KEY = "sk-test-SECRET-123"
CLASSPATH = "airflow_provider_pixazo.triggers.batch.PixazoBatchTrigger"


def rid(number: int) -> str:
    return f"gpt-image-2_019d0000-aaaa-bbbb-cccc-{number:012d}"


def status_url(number: int) -> str:
    return f"{BASE_URL}/v2/requests/status/{rid(number)}"


def status(number: int, value: str, *, error: str | None = None) -> httpx.Response:
    completed = value == "COMPLETED"
    output = {"media_url": [f"https://cdn.test/{number}.png"], "media_type": "image/png"}
    return httpx.Response(
        200,
        json={
            "request_id": rid(number),
            "status": value,
            "model_id": "gpt-image-2",
            "error": error,
            "output": output if completed else None,
        },
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Virtual time for the trigger's deadline, its progress lines and the loop's status poller."""
    fake = VirtualClock()
    monkeypatch.setattr(_poller, "default_clock", fake)
    monkeypatch.setattr(trigger_module, "time", fake)

    async def read_in_loop(conn_id: str) -> Any:
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


async def collect(trigger: PixazoBatchTrigger, clock: VirtualClock) -> list[dict[str, Any]]:
    async def consume() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await clock.run(consume())


def test_serialize_round_trip_keeps_the_deadline_and_holds_no_secret(pixazo_conn: str) -> None:
    trigger = PixazoBatchTrigger([rid(1), rid(2)], poll_interval=5, timeout=120, max_poll_interval=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "request_ids": [rid(1), rid(2)],
        "pixazo_conn_id": "pixazo_default",
        "poll_interval": 5.0,
        "timeout": 120.0,
        "max_poll_interval": 30.0,
        "end_time": pytest.approx(time.time() + 120, abs=5),
        "batch": {},
    }
    assert API_KEY not in json.dumps(kwargs)
    rebuilt = PixazoBatchTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.mark.parametrize("bad", [rid(1), [rid(1), "../x"], None, [None]])
def test_bad_request_ids_are_refused_at_construction(bad: Any) -> None:
    with pytest.raises(PixazoValidationError):
        PixazoBatchTrigger(bad)


@pytest.mark.asyncio
async def test_one_event_with_every_outcome_in_order(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    gateway.get(status_url(0)).mock(side_effect=[status(0, "QUEUED"), status(0, "COMPLETED")])
    gateway.get(status_url(1)).mock(return_value=status(1, "FAILED", error="content policy"))
    gateway.get(status_url(2)).mock(return_value=status(2, "ERROR"))
    gateway.get(status_url(3)).mock(return_value=status(3, "PROCESSING"))
    gateway.get(status_url(4)).mock(return_value=httpx.Response(404, json={"error": "Not Found"}))

    trigger = PixazoBatchTrigger([rid(n) for n in range(5)], poll_interval=2, timeout=60, batch={"waiting": [7]})
    events = await collect(trigger, clock)

    assert len(events) == 1
    event = events[0]
    json.dumps(event)
    assert event["status"] == "done"
    assert event["request_ids"] == [rid(n) for n in range(5)]
    assert event["batch"] == {"waiting": [7]}  # handed back as given
    outcomes = [ItemOutcome.from_wire(data) for data in event["results"]]
    assert [o.outcome for o in outcomes] == [
        Outcome.COMPLETED,
        Outcome.FAILED,
        Outcome.ERROR,
        Outcome.TIMED_OUT,
        Outcome.ERROR,
    ]
    assert outcomes[0].media_urls == ("https://cdn.test/0.png",)
    assert (outcomes[0].media_type, outcomes[0].status) == ("image/png", "COMPLETED")
    assert "content policy" in outcomes[1].error
    assert outcomes[2].status == "ERROR"
    assert "last status: PROCESSING" in outcomes[3].error
    assert outcomes[3].status is None  # nothing terminal is known: a retry waits on it again
    assert outcomes[4].status is None  # the wait could not go on; Pixazo said nothing of the request
    # The deadline held: the processing one was given up at the end time, not before.
    assert clock.now == pytest.approx(trigger.end_time, abs=1.5)


@pytest.mark.asyncio
async def test_a_restart_after_the_deadline_still_polls_once(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    gateway.get(status_url(0)).mock(return_value=status(0, "COMPLETED"))
    gateway.get(status_url(1)).mock(return_value=status(1, "QUEUED"))
    # Serialized before a triggerer restart, run again after its deadline.
    trigger = PixazoBatchTrigger([rid(0), rid(1)], timeout=60, end_time=clock.now - 10)
    (event,) = await collect(trigger, clock)
    outcomes = [ItemOutcome.from_wire(data).outcome for data in event["results"]]
    assert outcomes == [Outcome.COMPLETED, Outcome.TIMED_OUT]


@pytest.mark.asyncio
async def test_progress_is_logged_every_tenth(
    gateway: respx.MockRouter, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(40):
        answers = [status(n, "PROCESSING")] * (n % 5) + [status(n, "FAILED" if n % 20 == 7 else "COMPLETED")]
        gateway.get(status_url(n)).mock(side_effect=answers)
    log = logging.getLogger("test.batch.trigger")
    with caplog.at_level(logging.INFO, "test.batch.trigger"):
        outcomes = await clock.run(
            wait_module.wait_all(
                "pixazo_default",
                [rid(n) for n in range(40)],
                poll_interval=1,
                max_poll_interval=5,
                end_time=clock.now + 600,
                log=log,
                clock=clock.time,
            )
        )
    assert sum(o.outcome is Outcome.COMPLETED for o in outcomes) == 38
    lines = [r.getMessage() for r in caplog.records if re.search(r"\d+/40 completed", r.getMessage())]
    assert 10 <= len(lines) <= 11  # every 4 of 40, and the final line
    assert lines[-1] == "Batch wait over: 38/40 completed, 2 failed"
    assert sum("ended FAILED" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.asyncio
async def test_each_end_is_reported_as_it_happens(gateway: respx.MockRouter, clock: VirtualClock) -> None:
    # What the worker's own wait uses to store a completed item while the others are still waited on.
    gateway.get(status_url(0)).mock(side_effect=[status(0, "PROCESSING")] * 3 + [status(0, "COMPLETED")])
    gateway.get(status_url(1)).mock(return_value=status(1, "COMPLETED"))
    gateway.get(status_url(2)).mock(side_effect=[status(2, "QUEUED"), status(2, "FAILED")])
    ends: list[tuple[int, Outcome, float]] = []

    await clock.run(
        wait_module.wait_all(
            "pixazo_default",
            [rid(0), rid(1), rid(2)],
            poll_interval=1,
            max_poll_interval=1,
            end_time=clock.now + 600,
            log=logging.getLogger("test.batch.trigger"),
            clock=clock.time,
            on_end=lambda position, outcome: ends.append((position, outcome.outcome, clock.now)),
        )
    )
    assert [(position, outcome) for position, outcome, _ in ends] == [
        (1, Outcome.COMPLETED),
        (2, Outcome.FAILED),
        (0, Outcome.COMPLETED),
    ]
    assert ends[0][2] < ends[2][2]  # the first was reported before the last one ended
