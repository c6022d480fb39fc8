"""PixazoRequestSensor: poke mode against a respx-mocked gateway, deferral, and resuming from events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from airflow.sdk import BaseOperatorLink
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, TaskReturn, WaitOutcome, make_event_payload, task_end_xcoms
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoNotFoundError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoTimeoutError,
    PixazoValidationError,
)
from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY, image_url
from airflow_provider_pixazo.responses import RequestResult, RequestStatus
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.conftest import BASE_URL, make_context

REQUEST_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000002"
STATUS_URL = f"{BASE_URL}/v2/requests/status/{REQUEST_ID}"
MEDIA_URLS = [f"https://pub-test.r2.dev/v1/{REQUEST_ID}/0.png", f"https://pub-test.r2.dev/v1/{REQUEST_ID}/1.png"]
RESULT_KEYS = {"request_id", "status", "media_urls", "media_type"}


def status(value: str, *, error: str | None = None) -> httpx.Response:
    completed = value == "COMPLETED"
    return httpx.Response(
        200,
        json={
            "request_id": REQUEST_ID,
            "status": value,
            "model_id": "gpt-image-2",
            "error": error,
            "output": {"media_url": MEDIA_URLS, "media_type": "image/png"} if completed else None,
        },
    )


@pytest.fixture
def context() -> dict[str, Any]:
    return make_context()


def make_sensor(**kwargs: Any) -> PixazoRequestSensor:
    kwargs.setdefault("request_id", REQUEST_ID)
    kwargs.setdefault("deferrable", False)
    return PixazoRequestSensor(task_id="wait_for_image", **kwargs)


def assert_result_pushed(context: dict[str, Any], result: dict[str, Any]) -> None:
    assert result.keys() >= RESULT_KEYS
    assert result["request_id"] == REQUEST_ID
    assert result["status"] == "COMPLETED"
    assert result["media_urls"] == MEDIA_URLS
    assert result["media_type"] == "image/png"
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == MEDIA_URLS
    assert context["ti"].pushed[RESULT_XCOM_KEY] == result


# -- definition -----------------------------------------------------------------------------------


def test_request_id_and_connection_are_templated() -> None:
    sensor = make_sensor(request_id="{{ params.rid }}", pixazo_conn_id="{{ params.conn }}")
    sensor.render_template_fields({"params": {"rid": REQUEST_ID, "conn": "pixazo_art"}})
    assert sensor.request_id == REQUEST_ID
    assert sensor.hook.pixazo_conn_id == "pixazo_art"  # the hook is made from the rendered id


@pytest.mark.parametrize("configured", [True, False])
def test_deferrable_defaults_to_the_config_read_when_the_task_is_made(
    monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    """As the operators do: the module was imported long before, the setting is read now."""
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", str(configured))
    assert make_sensor(deferrable=None).deferrable is configured
    assert make_sensor(deferrable=not configured).deferrable is not configured


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "often"])
def test_max_poll_interval_is_checked_when_the_task_is_made(bad: Any) -> None:
    with pytest.raises(PixazoValidationError, match="max_poll_interval"):
        make_sensor(max_poll_interval=bad)


# -- poke -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["QUEUED", "PROCESSING"])
def test_poke_not_done_while_waiting(gateway: respx.MockRouter, context: dict[str, Any], remote: str) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=status(remote))
    assert make_sensor().poke(context) is False
    assert route.call_count == 1
    assert context["ti"].pushed == {}


def test_poke_completed_returns_result(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    gateway.get(STATUS_URL).mock(return_value=status("COMPLETED"))
    poked = make_sensor().poke(context)
    assert not isinstance(poked, bool)
    assert poked.is_done is True
    assert_result_pushed(context, poked.xcom_value)


@pytest.mark.parametrize(
    ("remote", "error_cls"), [("FAILED", PixazoRequestFailedError), ("ERROR", PixazoRequestErroredError)]
)
def test_poke_raises_with_pixazo_text(
    gateway: respx.MockRouter, context: dict[str, Any], remote: str, error_cls: type[PixazoError]
) -> None:
    gateway.get(STATUS_URL).mock(return_value=status(remote, error="moderation_blocked: unsafe prompt"))
    with pytest.raises(error_cls, match="moderation_blocked: unsafe prompt") as info:
        make_sensor().poke(context)
    assert info.value.request_id == REQUEST_ID  # type: ignore[attr-defined]
    # No result, no images: only the failure, recorded for the Pixazo view in the UI.
    assert set(context["ti"].pushed) == {"pixazo_failure"}
    assert context["ti"].pushed["pixazo_failure"]["error"] == "moderation_blocked: unsafe prompt"
    assert context["ti"].pushed["pixazo_failure"]["status"] == remote


def test_poke_treats_transient_errors_as_not_yet(
    gateway: respx.MockRouter, context: dict[str, Any], no_sleep: list[float]
) -> None:
    route = gateway.get(STATUS_URL).mock(return_value=httpx.Response(503))
    assert make_sensor().poke(context) is False
    assert route.call_count == 5  # the hook's own retries were spent first
    assert len(no_sleep) == 4


def test_poke_fails_on_auth_error(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    gateway.get(STATUS_URL).mock(return_value=httpx.Response(401, json={"message": "Access denied"}))
    with pytest.raises(PixazoAuthError):
        make_sensor().poke(context)


def test_execute_in_poke_mode_returns_result(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    route = gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("PROCESSING"), status("COMPLETED")])
    result = make_sensor(poke_interval=0).execute(context)
    assert route.call_count == 3
    assert_result_pushed(context, result)


@pytest.mark.parametrize("bad_id", ["../../v1/text-to-image", "abc def", ""])
@pytest.mark.parametrize("deferrable", [False, True])
def test_bad_request_id_fails_before_any_http(
    gateway: respx.MockRouter, context: dict[str, Any], bad_id: str, deferrable: bool
) -> None:
    route = gateway.route().mock(return_value=status("COMPLETED"))
    with pytest.raises(PixazoValidationError, match="request_id"):
        make_sensor(request_id=bad_id, deferrable=deferrable).execute(context)
    assert not route.called


# -- deferrable -----------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["QUEUED", "PROCESSING"])
def test_deferrable_defers_with_trigger(gateway: respx.MockRouter, context: dict[str, Any], remote: str) -> None:
    gateway.get(STATUS_URL).mock(return_value=status(remote))
    sensor = make_sensor(
        deferrable=True, pixazo_conn_id="pixazo_other", poke_interval=15, timeout=900, max_poll_interval=300
    )
    context["task"] = sensor  # as the Task Runner gives it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "AIRFLOW_CONN_PIXAZO_OTHER", '{"conn_type": "pixazo", "host": "https://gateway.test", "password": "k"}'
        )
        with pytest.raises(TaskDeferred) as info:
            sensor.execute(context)

    trigger = info.value.trigger
    assert isinstance(trigger, PixazoRequestTrigger)
    assert info.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["request_id"] == REQUEST_ID
    assert kwargs["pixazo_conn_id"] == "pixazo_other"
    assert kwargs["poll_interval"] == 15.0
    assert kwargs["timeout"] == 900.0
    assert kwargs["max_poll_interval"] == 300.0
    # Nothing pushed while it waits (no API call), and no link stored when it defers.
    assert context["ti"].pushed == {}
    assert sensor.operator_extra_links == ()


def test_deferrable_does_not_defer_when_already_completed(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    gateway.get(STATUS_URL).mock(return_value=status("COMPLETED"))
    result = make_sensor(deferrable=True).execute(context)
    assert_result_pushed(context, result)


def test_deferrable_fails_at_once_when_already_failed(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    gateway.get(STATUS_URL).mock(return_value=status("FAILED", error="bad prompt"))
    with pytest.raises(PixazoRequestFailedError, match="bad prompt"):
        make_sensor(deferrable=True).execute(context)


def test_deferrable_soft_fail_skips_when_already_failed(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    gateway.get(STATUS_URL).mock(return_value=status("ERROR", error="GPU on fire"))
    with pytest.raises(AirflowSkipException):
        make_sensor(deferrable=True, soft_fail=True).execute(context)


def test_deferrable_defers_after_a_transient_first_check(gateway: respx.MockRouter, context: dict[str, Any]) -> None:
    gateway.get(STATUS_URL).mock(return_value=httpx.Response(500))
    with pytest.raises(TaskDeferred):
        make_sensor(deferrable=True).execute(context)


# -- resuming -------------------------------------------------------------------------------------


def _completed() -> RequestResult:
    return RequestResult(
        request_id=REQUEST_ID, status=RequestStatus.COMPLETED, media_urls=tuple(MEDIA_URLS), media_type="image/png"
    )


def test_execute_complete_success(context: dict[str, Any]) -> None:
    event = make_event_payload(WaitOutcome.SUCCESS, REQUEST_ID, result=_completed())
    result = make_sensor().execute_complete(context, event)
    assert_result_pushed(context, result)


@pytest.mark.parametrize(
    ("event", "error_cls", "text"),
    [
        (
            make_event_payload(
                WaitOutcome.FAILED,
                REQUEST_ID,
                result=RequestResult(REQUEST_ID, RequestStatus.FAILED, error="content policy"),
            ),
            PixazoRequestFailedError,
            "content policy",
        ),
        (
            make_event_payload(
                WaitOutcome.TIMEOUT, REQUEST_ID, message="late", extra={"timeout": 900.0, "last_status": "QUEUED"}
            ),
            PixazoTimeoutError,
            "900s",
        ),
        (
            make_event_payload(WaitOutcome.AUTH, REQUEST_ID, message="key refused", extra={"http_status": 403}),
            PixazoAuthError,
            "key refused",
        ),
        (make_event_payload(WaitOutcome.NOT_FOUND, REQUEST_ID, message="unknown id"), PixazoNotFoundError, "unknown"),
        ({"nonsense": True}, PixazoError, "malformed"),
        (None, PixazoError, "malformed"),
    ],
)
def test_execute_complete_raises_typed_errors(
    context: dict[str, Any], event: Any, error_cls: type[PixazoError], text: str
) -> None:
    with pytest.raises(error_cls, match=text):
        make_sensor().execute_complete(context, event)
    # Nothing but, for a FAILED/ERROR result, the failure the Pixazo view in the UI shows.
    assert set(context["ti"].pushed) <= {"pixazo_failure"}
    if context["ti"].pushed:
        assert context["ti"].pushed["pixazo_failure"] == event["result"]


def test_auth_event_keeps_http_status(context: dict[str, Any]) -> None:
    event = make_event_payload(WaitOutcome.AUTH, REQUEST_ID, message="forbidden", extra={"http_status": 403})
    with pytest.raises(PixazoAuthError) as info:
        make_sensor().execute_complete(context, event)
    assert info.value.http_status == 403


def test_resume_with_soft_fail_skips_on_timeout(context: dict[str, Any]) -> None:
    event = make_event_payload(WaitOutcome.TIMEOUT, REQUEST_ID, extra={"timeout": 10.0, "last_status": None})
    sensor = make_sensor(soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event}, context)  # type: ignore[arg-type]


# -- ending in the triggerer ----------------------------------------------------------------------

ALL_IMAGE_LINKS = {f"_link_PixazoImageLink_{i}": i for i in range(10)}


def deferred_trigger_kwargs(sensor: PixazoRequestSensor, gateway: respx.MockRouter) -> dict[str, Any]:
    gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(make_context())
    return info.value.trigger.serialize()[1]


def test_deferred_sensor_lets_the_trigger_end_the_task(gateway: respx.MockRouter) -> None:
    kwargs = deferred_trigger_kwargs(make_sensor(deferrable=True), gateway)
    assert kwargs["end_task_on_success"] is True
    assert kwargs["task_return"] == "result"
    assert kwargs["image_link_keys"] == ALL_IMAGE_LINKS


def test_end_from_trigger_false_resumes_on_a_worker(gateway: respx.MockRouter) -> None:
    kwargs = deferred_trigger_kwargs(make_sensor(deferrable=True, end_from_trigger=False), gateway)
    assert kwargs["end_task_on_success"] is False


class _OwnResume(PixazoRequestSensor):
    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"mine": True}


class _OtherLink(BaseOperatorLink):
    name = "Elsewhere"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return "https://elsewhere.example/"


class _ExtraLink(PixazoRequestSensor):
    operator_extra_links = (*PixazoRequestSensor.operator_extra_links, _OtherLink())


@pytest.mark.parametrize("cls", [_OwnResume, _ExtraLink])
def test_subclass_whose_code_must_run_resumes_on_a_worker(gateway: respx.MockRouter, cls: type) -> None:
    kwargs = deferred_trigger_kwargs(cls(task_id="wait", request_id=REQUEST_ID, deferrable=True), gateway)
    assert kwargs["end_task_on_success"] is False


def test_trigger_pushes_exactly_what_the_resumed_sensor_pushes(gateway: respx.MockRouter) -> None:
    sensor = make_sensor(deferrable=True)
    kwargs = deferred_trigger_kwargs(sensor, gateway)
    result = _completed()

    context = {**make_context(), "task": sensor}
    returned = sensor.execute_complete(context, make_event_payload(WaitOutcome.SUCCESS, REQUEST_ID, result=result))
    pushed = context["ti"].pushed
    # What Airflow's end-of-task link resolution stores on the worker: each shown link's get_link answer.
    links = {link.xcom_key: image_url(pushed[MEDIA_URLS_XCOM_KEY], link.index) for link in sensor.operator_extra_links}
    on_the_worker = {"return_value": returned, **pushed, **links}

    from_the_trigger = task_end_xcoms(
        result, task_return=TaskReturn(kwargs["task_return"]), image_link_keys=kwargs["image_link_keys"]
    )
    assert from_the_trigger == on_the_worker
    assert from_the_trigger["_link_PixazoImageLink_1"] == MEDIA_URLS[1]
    assert "_link_PixazoImageLink_2" not in from_the_trigger  # no third image: nothing stored, both ways


def test_resumed_by_dag_test_the_success_end_event_publishes_the_result(context: dict[str, Any]) -> None:
    """dag.test() resumes the task with the end event's payload: the plain success event."""
    from airflow.triggers.base import TaskSuccessEvent

    trigger = PixazoRequestTrigger(REQUEST_ID, end_task_on_success=True, image_link_keys=ALL_IMAGE_LINKS)
    event = trigger._task_success_event(_completed())
    assert isinstance(event, TaskSuccessEvent)
    result = make_sensor().execute_complete(context, event.payload)
    assert_result_pushed(context, result)


@pytest.mark.parametrize(("choice", "ends_there"), [(None, False), (True, True), (False, False)])
def test_with_listeners_registered_the_default_resumes_on_a_worker(
    gateway: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, choice: bool | None, ends_there: bool
) -> None:
    # Airflow tells listeners (OpenLineage...) nothing of a task that ends in the triggerer.
    from airflow_provider_pixazo import waiting

    monkeypatch.setattr(waiting, "_has_listeners", lambda: True)
    kwargs = deferred_trigger_kwargs(make_sensor(deferrable=True, end_from_trigger=choice), gateway)
    assert kwargs["end_task_on_success"] is ends_there


@pytest.mark.parametrize("bad", ["yes", 1, "True"])
def test_end_from_trigger_is_checked_when_the_task_is_made(bad: Any) -> None:
    with pytest.raises(PixazoValidationError, match="end_from_trigger"):
        make_sensor(end_from_trigger=bad)


def test_the_default_passes_airflows_listener_guard() -> None:
    # Airflow's DAG parser refuses a task whose end_from_trigger is truthy beside listeners: the
    # default must not be, or every DAG using the sensor would break where OpenLineage is on.
    assert not make_sensor(deferrable=True).end_from_trigger


def test_a_sensor_with_outlets_resumes_on_a_worker(gateway: respx.MockRouter) -> None:
    # Airflow records asset events only when a worker ends the task.
    from airflow.sdk import Asset

    sensor = make_sensor(deferrable=True, outlets=[Asset(name="images", uri="file:///images")])
    assert deferred_trigger_kwargs(sensor, gateway)["end_task_on_success"] is False
