"""A submit costs money: never twice for one set of parameters, never resent when it may have been taken."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_pixazo.events import RESULT_XCOM_KEY
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoInsufficientBalanceError,
    PixazoSubmitUncertainError,
)
from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY
from airflow_provider_pixazo.testing.emulator import FaultConfig, PixazoEmulator
from tests.conftest import FakeTaskStateStore, make_context
from tests.operators.conftest import (
    GEN2_URL,
    OTHER_ID,
    REQUEST_ID,
    STATUS_URL,
    STORE_KEY,
    FakeClock,
    edit,
    generate,
    status,
    submits,
    submitted,
    write_image,
)

# -- retry safety: one payment per set of parameters ------------------------------------------------


def test_first_try_submits_once_and_stores_the_request(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    request_id = generate().execute(make_context(store))
    assert emulator.submit_count() == 1
    stored = store.data[STORE_KEY]
    assert set(stored) == {"request_id", "fingerprint"}
    assert stored["request_id"] == request_id
    assert re.fullmatch(r"[0-9a-f]{64}", stored["fingerprint"])
    assert ("set", STORE_KEY) in store.ops


@pytest.mark.parametrize("queued_or_processing", ["queued", "processing"])
def test_retry_while_active_reuses_the_request(emulator: PixazoEmulator, queued_or_processing: str) -> None:
    if queued_or_processing == "queued":
        emulator.queued_seconds = 60
    else:
        emulator.processing_seconds = 60
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    stored = dict(store.data[STORE_KEY])

    # A retried try runs a fresh operator instance with the same parameters and the same store.
    second = generate().execute(make_context(store))

    assert second == first
    assert emulator.submit_count() == 1
    assert store.data[STORE_KEY] == stored
    assert emulator.status_count() == 1  # one look at the old request, no more


def test_retry_while_active_defers_on_the_old_request(emulator: PixazoEmulator) -> None:
    emulator.processing_seconds = 60
    store = FakeTaskStateStore()
    with pytest.raises(TaskDeferred) as first:
        generate(wait_for_completion=True, deferrable=True).execute(make_context(store))
    first_id = first.value.trigger.serialize()[1]["request_id"]

    with pytest.raises(TaskDeferred) as second:
        generate(wait_for_completion=True, deferrable=True).execute(make_context(store))

    assert second.value.trigger.serialize()[1]["request_id"] == first_id
    assert second.value.method_name == "execute_complete"
    assert emulator.submit_count() == 1


def test_retry_while_active_polls_the_old_request(gateway: respx.MockRouter, clock: FakeClock) -> None:
    submit_route = gateway.post(GEN2_URL).mock(return_value=submitted())
    # The second try's first look finds the request PROCESSING; its polls then see it finish.
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status("PROCESSING"), status("COMPLETED")])
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    context = make_context(store)

    second = generate(wait_for_completion=True, poll_interval=5).execute(context)

    assert second == first == REQUEST_ID
    assert submit_route.call_count == 1
    assert clock.sleeps == [5.0]
    assert context["ti"].pushed[RESULT_XCOM_KEY]["request_id"] == first


@pytest.mark.parametrize("wait", [False, True], ids=["no-wait", "wait"])
def test_retry_after_completion_does_not_submit(emulator: PixazoEmulator, wait: bool) -> None:
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    context = make_context(store)

    second = generate(wait_for_completion=wait, deferrable=True).execute(context)

    assert second == first
    assert emulator.submit_count() == 1
    if wait:
        # Already done: published at once, no deferral.
        result = context["ti"].pushed[RESULT_XCOM_KEY]
        assert result["request_id"] == first
        assert result["media_urls"] == list(emulator.requests[first].media_urls)
        assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == result["media_urls"]
    else:
        assert RESULT_XCOM_KEY not in context["ti"].pushed


@pytest.mark.parametrize("marker", ["[fail]", "[error]"])
def test_retry_after_failure_submits_anew(emulator: PixazoEmulator, marker: str) -> None:
    store = FakeTaskStateStore()
    prompt = f"A sunset {marker}"
    first = generate(prompt=prompt).execute(make_context(store))

    second = generate(prompt=prompt).execute(make_context(store))

    assert second != first
    assert emulator.submit_count() == 2
    assert store.data[STORE_KEY]["request_id"] == second


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"prompt": "A sunrise over mountains"}, id="prompt"),
        pytest.param({"size": "1536x1024"}, id="size"),
        pytest.param({"n": 2}, id="n"),
        pytest.param({"extra_params": {"user": "someone"}}, id="extra-params"),
    ],
)
def test_retry_with_changed_parameters_submits_anew(emulator: PixazoEmulator, change: dict[str, Any]) -> None:
    emulator.queued_seconds = 60  # the old request is still active: only the change justifies paying again
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    first_fingerprint = store.data[STORE_KEY]["fingerprint"]

    second = generate(**change).execute(make_context(store))

    assert second != first
    assert emulator.submit_count() == 2
    assert store.data[STORE_KEY]["request_id"] == second
    assert store.data[STORE_KEY]["fingerprint"] != first_fingerprint


def test_edit_retry_with_same_local_file_reuses_the_request(emulator: PixazoEmulator, files: dict[str, Path]) -> None:
    emulator.queued_seconds = 60
    store = FakeTaskStateStore()
    first = edit(images=str(files["png"])).execute(make_context(store))
    second = edit(images=str(files["png"])).execute(make_context(store))
    assert second == first
    assert emulator.submit_count() == 1
    # The file changed between tries: a different request.
    write_image(files["png"], "PNG", size=(16, 16))
    third = edit(images=str(files["png"])).execute(make_context(store))
    assert third != first
    assert emulator.submit_count() == 2


def test_store_without_the_key_submits(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    store.data["something_else"] = {"request_id": OTHER_ID}
    request_id = generate().execute(make_context(store))
    assert emulator.submit_count() == 1
    assert store.data[STORE_KEY]["request_id"] == request_id
    assert store.data["something_else"] == {"request_id": OTHER_ID}


def test_stored_request_unknown_to_pixazo_submits_anew(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    emulator.reset()  # Pixazo forgets the request: its status now answers 404

    second = generate().execute(make_context(store))

    assert second != first
    assert emulator.submit_count() == 1  # counted since the reset
    assert store.data[STORE_KEY]["request_id"] == second


def test_stored_bare_request_id_is_not_trusted(gateway: respx.MockRouter) -> None:
    """A value without a fingerprint cannot prove it was for these parameters: submit anew."""
    route = gateway.post(GEN2_URL).mock(return_value=submitted(OTHER_ID))
    status_route = gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    store = FakeTaskStateStore()
    store.data[STORE_KEY] = REQUEST_ID
    assert generate().execute(make_context(store)) == OTHER_ID
    assert route.call_count == 1
    assert status_route.call_count == 0
    assert store.data[STORE_KEY]["request_id"] == OTHER_ID


def test_without_task_state_store_every_try_submits(
    emulator: PixazoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Airflow 3.2 has no task state store: each try pays, and the log says crash recovery is off."""
    emulator.queued_seconds = 60
    first = generate().execute(make_context())
    second = generate().execute(make_context())
    assert first != second
    assert emulator.submit_count() == 2
    captured = capsys.readouterr()
    assert "task_state_store not available" in captured.out + captured.err


def test_durable_false_never_touches_the_store(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    generate(durable=False).execute(make_context(store))
    generate(durable=False).execute(make_context(store))
    assert emulator.submit_count() == 2
    assert store.ops == []


# -- submit errors ----------------------------------------------------------------------------------


def test_submit_answered_500_is_uncertain_and_not_resent(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=httpx.Response(500, json={"error": "Internal Server Error"}))
    store = FakeTaskStateStore()
    with pytest.raises(PixazoSubmitUncertainError) as info:
        generate().execute(make_context(store))
    assert isinstance(info.value, AirflowFailException)
    assert route.call_count == 1
    assert STORE_KEY not in store.data
    assert "NOT sent again" in str(info.value)


def test_submit_dropped_connection_is_uncertain(emulator: PixazoEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_drop=1.0, endpoints=("submit",)))
    with pytest.raises(PixazoSubmitUncertainError):
        generate().execute(make_context(FakeTaskStateStore()))
    assert len(submits(emulator)) == 1


def test_submit_answered_402_fails_at_once(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(
        return_value=httpx.Response(
            402, json={"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
        )
    )
    with pytest.raises(PixazoInsufficientBalanceError) as info:
        generate().execute(make_context(FakeTaskStateStore()))
    assert isinstance(info.value, AirflowFailException)
    assert info.value.http_status == 402
    assert "Your wallet does not have enough balance." in str(info.value)
    assert route.call_count == 1


def test_submit_429_then_202_succeeds_once(gateway: respx.MockRouter, no_sleep: list[float]) -> None:
    route = gateway.post(GEN2_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "slow down"}), submitted()]
    )
    store = FakeTaskStateStore()
    assert generate().execute(make_context(store)) == REQUEST_ID
    assert route.call_count == 2
    assert [call.response.status_code for call in route.calls] == [429, 202]
    assert no_sleep  # the backoff was asked for...
    assert no_sleep[0] >= 3.0  # ...honouring Retry-After, without really sleeping
    assert store.data[STORE_KEY]["request_id"] == REQUEST_ID


def test_submit_with_a_wrong_key_fails_without_leaking_it(
    emulator: PixazoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-KEY-987"
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIXAZO_DEFAULT", json.dumps({"conn_type": "pixazo", "host": emulator.url, "password": wrong})
    )
    with pytest.raises(PixazoAuthError) as info:
        generate().execute(make_context(FakeTaskStateStore()))
    assert isinstance(info.value, AirflowFailException)
    assert info.value.http_status == 401
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert len(submits(emulator)) == 1
