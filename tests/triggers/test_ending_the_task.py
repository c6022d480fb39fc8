"""
PixazoRequestTrigger ending its task in the triggerer (``end_task_on_success``), in virtual time (no sleeping).

On COMPLETED it pushes exactly the XComs the resumed task would push, through the Task SDK's ``XCom.set``
(``SetXCom`` to the supervisor, faked here at that process boundary), then yields Airflow's
``TaskSuccessEvent`` with no XComs of its own; every other outcome still yields a plain event, so the
task resumes on a worker, fails there with Pixazo's reason and honours its retries.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest
import respx
from airflow.triggers.base import DiscrimatedTriggerEvent, TaskSuccessEvent, TriggerEvent
from pydantic import TypeAdapter

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, WaitOutcome, result_from_event
from airflow_provider_pixazo.exceptions import PixazoError, PixazoValidationError
from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY, image_link_keys, image_links
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.triggers.test_pixazo import (  # noqa: F401 (fixtures, taken by name)
    MEDIA_URL,
    REQUEST_ID,
    STATUS_URL,
    clock,
    gateway,
    status,
)
from tests.triggers.virtual_time import VirtualClock

LINK_KEYS = image_link_keys(image_links(3))


async def events_of(trigger: PixazoRequestTrigger, clock: VirtualClock) -> list[TriggerEvent]:  # noqa: F811
    async def consume() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return await clock.run(consume())


@dataclasses.dataclass
class TaskInstanceKeys:
    """What the triggerer sets as a trigger's ``task_instance`` offers to push with."""

    dag_id: str = "pixazo_dag"
    task_id: str = "wait"
    run_id: str = "manual__2027-01-15"
    map_index: int = 3


class SupervisorComms:
    """The trigger process's end of the socket to its supervisor: records each message, answers None."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[Any] = []
        self.fail_on = fail_on

    def send(self, msg: Any) -> None:
        if getattr(msg, "key", None) == self.fail_on:
            raise RuntimeError("API server error 500")
        self.sent.append(msg)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> SupervisorComms:
    from airflow.sdk.execution_time import task_runner

    fake = SupervisorComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", fake, raising=False)
    return fake


def ending(**kwargs: Any) -> PixazoRequestTrigger:
    trigger = PixazoRequestTrigger(
        REQUEST_ID, poll_interval=1, end_task_on_success=True, image_link_keys=LINK_KEYS, **kwargs
    )
    trigger.task_instance = TaskInstanceKeys()  # type: ignore[assignment]  # as the triggerer sets it
    return trigger


def across_the_triggerer(event: TriggerEvent) -> Any:
    """The event as the triggerer's main process receives it from the process that ran the trigger."""
    adapter: TypeAdapter[Any] = TypeAdapter(DiscrimatedTriggerEvent)
    return adapter.validate_python(adapter.dump_python(event, mode="json"))


@pytest.mark.asyncio
@pytest.mark.parametrize("task_return", ["result", "request_id"])
async def test_completed_pushes_exactly_the_xcoms_of_a_resumed_task_then_ends_it(
    gateway: respx.MockRouter,  # noqa: F811
    clock: VirtualClock,  # noqa: F811
    comms: SupervisorComms,
    task_return: str,
) -> None:
    from airflow.sdk.execution_time.comms import SetXCom

    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status("COMPLETED")])

    [event] = await events_of(ending(task_return=task_return), clock)

    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms is None  # Airflow would store those JSON-encoded twice
    result = result_from_event(event.payload)  # the plain success event, for dag.test()'s resume
    expected_return = result.to_dict() if task_return == "result" else REQUEST_ID
    assert all(type(msg) is SetXCom for msg in comms.sent)
    # As a task pushes them: the values themselves (not JSON text), for this task instance, no mapped length.
    assert {msg.key: msg.value for msg in comms.sent} == {
        "return_value": expected_return,
        RESULT_XCOM_KEY: result.to_dict(),
        MEDIA_URLS_XCOM_KEY: [MEDIA_URL],
        # The "Pixazo image N" buttons: the one image; buttons without one store nothing, as on a worker.
        "_link_PixazoImageLink_0": MEDIA_URL,
    }
    assert len(comms.sent) == 4  # each once
    assert {(m.dag_id, m.task_id, m.run_id, m.map_index, m.mapped_length) for m in comms.sent} == {
        ("pixazo_dag", "wait", "manual__2027-01-15", 3, None)
    }
    assert result.request_id == REQUEST_ID

    # What the triggerer hands Airflow's handle_event_submit: the state, and no XComs to store again.
    received = across_the_triggerer(event)
    assert isinstance(received, TaskSuccessEvent)
    assert received.xcoms is None


@pytest.mark.asyncio
async def test_completed_without_a_task_instance_resumes_the_task(
    gateway: respx.MockRouter,  # noqa: F811
    clock: VirtualClock,  # noqa: F811
    comms: SupervisorComms,
) -> None:
    # dag.test() runs a trigger without setting task_instance: nowhere to push, so the worker ends the task.
    gateway.get(STATUS_URL).mock(return_value=status("COMPLETED"))
    trigger = ending()
    trigger.task_instance = None  # type: ignore[assignment]
    [event] = await events_of(trigger, clock)
    assert type(event) is TriggerEvent
    assert event.payload["outcome"] == WaitOutcome.SUCCESS.value
    assert comms.sent == []


@pytest.mark.asyncio
async def test_completed_whose_xcoms_cannot_be_pushed_resumes_the_task(
    gateway: respx.MockRouter,  # noqa: F811
    clock: VirtualClock,  # noqa: F811
    comms: SupervisorComms,
) -> None:
    # The execution API failed midway: the worker resumes with the result and pushes every XCom again.
    comms.fail_on = MEDIA_URLS_XCOM_KEY
    gateway.get(STATUS_URL).mock(return_value=status("COMPLETED"))
    [event] = await events_of(ending(), clock)
    assert type(event) is TriggerEvent
    assert result_from_event(event.payload).request_id == REQUEST_ID


@pytest.mark.asyncio
@pytest.mark.parametrize(("remote", "outcome"), [("FAILED", WaitOutcome.FAILED), ("ERROR", WaitOutcome.ERROR)])
async def test_failed_and_error_still_resume_the_task_with_pixazo_reason(
    gateway: respx.MockRouter,  # noqa: F811
    clock: VirtualClock,  # noqa: F811
    remote: str,
    outcome: WaitOutcome,
) -> None:
    gateway.get(STATUS_URL).mock(side_effect=[status(remote, error="content policy violation")])

    [event] = await events_of(ending(), clock)

    received = across_the_triggerer(event)
    assert type(received) is TriggerEvent  # resumes the task: it fails there, recorded and retried
    assert received.payload["outcome"] == outcome.value
    assert received.payload["result"]["error"] == "content policy violation"


@pytest.mark.asyncio
async def test_refused_key_and_unknown_request_still_resume_the_task(
    gateway: respx.MockRouter,  # noqa: F811
    clock: VirtualClock,  # noqa: F811
) -> None:
    gateway.get(STATUS_URL).mock(return_value=httpx.Response(401, json={"message": "bad key"}))
    [event] = await events_of(ending(), clock)
    assert type(event) is TriggerEvent
    assert event.payload["outcome"] == WaitOutcome.AUTH.value


@pytest.mark.asyncio
async def test_timeout_still_resumes_the_task(gateway: respx.MockRouter, clock: VirtualClock) -> None:  # noqa: F811
    gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    [event] = await events_of(ending(timeout=5), clock)
    assert type(event) is TriggerEvent
    assert event.payload["outcome"] == WaitOutcome.TIMEOUT.value


@pytest.mark.asyncio
async def test_without_the_flag_completed_resumes_the_task_as_before(
    gateway: respx.MockRouter,  # noqa: F811
    clock: VirtualClock,  # noqa: F811
) -> None:
    gateway.get(STATUS_URL).mock(return_value=status("COMPLETED"))
    [event] = await events_of(PixazoRequestTrigger(REQUEST_ID, poll_interval=1), clock)
    assert type(event) is TriggerEvent
    assert event.payload["outcome"] == WaitOutcome.SUCCESS.value


def test_kwargs_serialized_before_the_flag_existed_resume_the_task() -> None:
    # A trigger deferred by the previous release, restarted by a triggerer running this one.
    old = {
        "request_id": REQUEST_ID,
        "pixazo_conn_id": "pixazo_default",
        "poll_interval": 5.0,
        "timeout": 120.0,
        "max_poll_interval": 30.0,
        "end_time": 1_800_000_000.0,
    }
    trigger = PixazoRequestTrigger(**old)
    assert trigger.end_task_on_success is False
    _, kwargs = trigger.serialize()
    assert {k: kwargs[k] for k in old} == old
    assert kwargs["end_task_on_success"] is False


def test_new_kwargs_round_trip_and_hold_no_secret(pixazo_conn: str) -> None:
    trigger = ending(task_return="request_id")
    classpath, kwargs = trigger.serialize()
    assert kwargs["end_task_on_success"] is True
    assert kwargs["task_return"] == "request_id"
    assert kwargs["image_link_keys"] == {f"_link_PixazoImageLink_{i}": i for i in range(3)}
    assert pixazo_conn not in json.dumps(kwargs)
    assert PixazoRequestTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("task_return", "everything"),
        ("task_return", None),
        ("end_task_on_success", "yes"),
        ("image_link_keys", ["_link_PixazoImageLink_0"]),
        ("image_link_keys", {"_link_PixazoImageLink_0": -1}),
        ("image_link_keys", {"": 0}),
        ("image_link_keys", {"_link_PixazoImageLink_0": True}),
    ],
)
def test_bad_new_kwargs_are_refused_naming_the_parameter(name: str, value: Any) -> None:
    with pytest.raises(PixazoValidationError, match=name):
        PixazoRequestTrigger(REQUEST_ID, **{name: value})


def test_a_bare_task_success_payload_is_refused_with_the_way_out() -> None:
    # What a resume would carry if something between the trigger and the task dropped our payload.
    with pytest.raises(PixazoError, match="end_from_trigger=False"):
        result_from_event("success")
