"""
A wait that ends FAILED or ERROR records Pixazo's reason under XCom ``pixazo_failure`` for the Pixazo view.

Both ways of waiting record the same thing: polling in the worker (``deferrable=False``) and resuming
after the trigger (``execute_complete``). The record is the request's result, never the API key.
"""

from __future__ import annotations

import json

import pytest
import respx

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, WaitOutcome, make_event_payload
from airflow_provider_pixazo.exceptions import PixazoRequestErroredError, PixazoRequestFailedError
from airflow_provider_pixazo.plugins.records import FAILURE_XCOM_KEY
from airflow_provider_pixazo.responses import RequestResult
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.conftest import API_KEY, FakeTaskStateStore, make_context
from tests.operators.conftest import GEN2_URL, REQUEST_ID, STATUS_URL, FakeClock, edit, generate, status, submitted

FAILURES = [("FAILED", PixazoRequestFailedError), ("ERROR", PixazoRequestErroredError)]


@pytest.mark.parametrize(("remote", "error_type"), FAILURES)
def test_polling_wait_records_the_failure_as_the_deferred_path_does(
    gateway: respx.MockRouter, clock: FakeClock, remote: str, error_type: type[Exception]
) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status(remote, error="Content policy: nope")])
    polled = make_context()

    with pytest.raises(error_type):
        generate(wait_for_completion=True, deferrable=False, poll_interval=1).execute(polled)

    record = polled["ti"].pushed[FAILURE_XCOM_KEY]
    assert record == {
        "request_id": REQUEST_ID,
        "status": remote,
        "error": "Content policy: nope",
        "media_urls": [],
        "media_type": None,
        "model_id": "gpt-image-2",
        "created_at": "2026-03-31T10:00:00.000Z",
        "updated_at": "2026-03-31T10:00:15.000Z",
        "completed_at": None,
    }
    assert set(polled["ti"].pushed) == {FAILURE_XCOM_KEY}  # no result claimed, no media URLs
    assert API_KEY not in json.dumps(polled["ti"].pushed)

    # The same result arriving through the trigger is recorded identically (same key, same shape).
    result = RequestResult.from_api(json.loads(status(remote, error="Content policy: nope").content))
    outcome = WaitOutcome.FAILED if remote == "FAILED" else WaitOutcome.ERROR
    deferred = make_context()
    with pytest.raises(error_type):
        generate(wait_for_completion=True, deferrable=True).execute_complete(
            deferred, make_event_payload(outcome, REQUEST_ID, result=result)
        )
    assert deferred["ti"].pushed[FAILURE_XCOM_KEY] == record


def test_polling_wait_that_completes_records_no_failure(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("COMPLETED")])
    context = make_context()
    generate(wait_for_completion=True, deferrable=False, poll_interval=1).execute(context)
    assert FAILURE_XCOM_KEY not in context["ti"].pushed
    assert context["ti"].pushed[RESULT_XCOM_KEY]["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("marker", "error_type"),
    [("[fail]", PixazoRequestFailedError), ("[error]", PixazoRequestErroredError)],
    ids=["failed", "error"],
)
@pytest.mark.parametrize("factory", [generate, edit], ids=["generate", "edit"])
def test_emulated_failure_is_recorded_by_the_polling_wait(
    emulator: PixazoEmulator, marker: str, error_type: type[Exception], factory: object
) -> None:
    context = make_context(FakeTaskStateStore())
    op = factory(prompt=f"A sunset {marker}", wait_for_completion=True, deferrable=False, poll_interval=0.05)  # type: ignore[operator]

    with pytest.raises(error_type, match="emulated"):
        op.execute(context)

    record = context["ti"].pushed[FAILURE_XCOM_KEY]
    (request_id,) = emulator.requests
    assert record["request_id"] == request_id
    assert record["status"] == ("FAILED" if marker == "[fail]" else "ERROR")
    assert record["error"] == emulator.requests[request_id].error
    assert "emulated" in record["error"]
    assert emulator.submit_count() == 1
    assert emulator.api_key not in json.dumps(context["ti"].pushed)
