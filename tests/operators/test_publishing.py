"""What a task that waited publishes: the result under XCom ``pixazo_result`` and the media URLs for the image links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import respx

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, WaitOutcome, make_event_payload
from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY
from airflow_provider_pixazo.responses import RequestResult, RequestStatus
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.conftest import FakeTaskStateStore, make_context
from tests.operators.conftest import (
    GEN2_URL,
    MEDIA_URLS,
    REQUEST_ID,
    STATUS_URL,
    FakeClock,
    edit,
    generate,
    status,
    submitted,
)


def success_event(request_id: str = REQUEST_ID) -> dict[str, Any]:
    result = RequestResult(
        request_id=request_id,
        status=RequestStatus.COMPLETED,
        media_urls=tuple(MEDIA_URLS),
        media_type="image/png",
        model_id="gpt-image-2",
        completed_at="2026-03-31T10:00:15.000Z",
    )
    return make_event_payload(WaitOutcome.SUCCESS, request_id, result=result, message="done")


@pytest.mark.parametrize("factory", [generate, edit], ids=["generate", "edit"])
def test_execute_complete_success_publishes_the_result(gateway: respx.MockRouter, factory: Any) -> None:
    context = make_context()
    op = factory(wait_for_completion=True, deferrable=True)

    assert op.execute_complete(context, success_event()) == REQUEST_ID

    result = context["ti"].pushed[RESULT_XCOM_KEY]
    assert result["request_id"] == REQUEST_ID
    assert result["status"] == "COMPLETED"
    assert result["media_urls"] == MEDIA_URLS
    assert result["media_type"] == "image/png"
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == MEDIA_URLS
    assert len(gateway.calls) == 0  # resuming makes no HTTP call


def test_polling_wait_publishes_the_result(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status("COMPLETED")])
    context = make_context()

    assert generate(wait_for_completion=True).execute(context) == REQUEST_ID

    result = context["ti"].pushed[RESULT_XCOM_KEY]
    assert result == {
        "request_id": REQUEST_ID,
        "status": "COMPLETED",
        "media_urls": MEDIA_URLS,
        "media_type": "image/png",
        "error": None,
        "model_id": "gpt-image-2",
        "created_at": "2026-03-31T10:00:00.000Z",
        "updated_at": "2026-03-31T10:00:15.000Z",
        "completed_at": "2026-03-31T10:00:15.000Z",
    }
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == MEDIA_URLS


def test_without_waiting_nothing_is_published_and_no_link_is_shown(gateway: respx.MockRouter) -> None:
    """No result is claimed, and the task stores no link (no API call per link, no XCom miss logged)."""
    gateway.post(GEN2_URL).mock(return_value=submitted())
    task = generate()
    context = {**make_context(), "task": task}  # as the Task Runner gives it
    task.execute(context)
    assert context["ti"].pushed == {}
    assert task.operator_extra_links == ()  # what Airflow resolves and stores when the try ends
    assert len(type(task).operator_extra_links) == 10  # the class (DAG, UI) still offers ten


def test_a_finished_wait_publishes_the_real_media_urls(emulator: PixazoEmulator, files: dict[str, Path]) -> None:
    # The emulator finishes at once (no queued or processing time): the first poll sees COMPLETED.
    context = make_context(FakeTaskStateStore())
    request_id = edit(images=str(files["png"]), wait_for_completion=True).execute(context)
    job = emulator.requests[request_id]
    result = context["ti"].pushed[RESULT_XCOM_KEY]
    assert result["request_id"] == request_id
    assert result["status"] == "COMPLETED"
    assert result["media_type"] == job.media_type
    assert result["media_urls"] == list(job.media_urls)
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == list(emulator.requests[request_id].media_urls)
    assert emulator.submit_count() == 1
