"""With wait_for_completion the operators wait: deferred to the trigger, or polling in the worker."""

from __future__ import annotations

import importlib
import json
import time
from datetime import timedelta
from typing import Any

import pytest
import respx
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, WaitOutcome, make_event_payload
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoNotFoundError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoTimeoutError,
    PixazoWaitAbortedError,
)
from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY
from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.responses import RequestResult, RequestStatus
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.conftest import API_KEY, BASE_URL, FakeTaskStateStore, make_context
from tests.operators.conftest import (
    GEN2_URL,
    REQUEST_ID,
    STATUS_URL,
    STORE_KEY,
    FakeClock,
    edit,
    generate,
    status,
    submitted,
)

# -- deferrable wait --------------------------------------------------------------------------------


def test_deferrable_wait_defers_to_the_trigger(gateway: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIXAZO_ART",
        json.dumps({"conn_type": "pixazo", "host": BASE_URL, "password": API_KEY}),
    )
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    store = FakeTaskStateStore()
    context = make_context(store)
    op = generate(
        wait_for_completion=True,
        deferrable=True,
        poll_interval=7,
        timeout=timedelta(minutes=20),
        max_poll_interval=timedelta(minutes=2),
        pixazo_conn_id="pixazo_art",
    )
    context["task"] = op  # as the Task Runner gives it
    before = time.time()

    with pytest.raises(TaskDeferred) as info:
        op.execute(context)

    assert route.call_count == 1
    assert len(gateway.calls) == 1  # the worker does not poll when deferring
    assert info.value.method_name == "execute_complete"
    trigger = info.value.trigger
    assert isinstance(trigger, PixazoRequestTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_pixazo.triggers.pixazo.PixazoRequestTrigger"
    assert kwargs["request_id"] == REQUEST_ID
    assert kwargs["pixazo_conn_id"] == "pixazo_art"
    assert kwargs["poll_interval"] == 7.0
    assert kwargs["timeout"] == 1200.0
    assert kwargs["max_poll_interval"] == 120.0
    assert before + 1200 <= kwargs["end_time"] <= time.time() + 1200
    serialized = json.dumps(kwargs)  # JSON-safe
    assert API_KEY not in serialized
    assert API_KEY not in repr(trigger)
    # The trigger can be rebuilt from what was serialised.
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    # The request id was saved before deferring, so a retry of this try will not pay again.
    assert store.data[STORE_KEY]["request_id"] == REQUEST_ID
    # Nothing pushed while it waits (no API call), and no link stored when it defers.
    assert context["ti"].pushed == {}
    assert op.operator_extra_links == ()


@pytest.mark.parametrize("configured", [True, False])
def test_deferrable_defaults_to_the_config_read_when_the_task_is_made(
    monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    # The module was imported long before: the setting must be read when the task is made.
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", str(configured))
    assert generate(deferrable=None).deferrable is configured
    assert edit(deferrable=None).deferrable is configured
    assert generate(deferrable=not configured).deferrable is not configured


def test_deferrable_without_wait_does_not_defer(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    assert generate(deferrable=True).execute(make_context()) == REQUEST_ID
    assert route.call_count == 1


def failed_result(status_value: RequestStatus, error: str) -> RequestResult:
    return RequestResult(request_id=REQUEST_ID, status=status_value, error=error)


@pytest.mark.parametrize(
    ("event", "error_type", "text"),
    [
        pytest.param(
            make_event_payload(
                WaitOutcome.FAILED,
                REQUEST_ID,
                result=failed_result(RequestStatus.FAILED, "Rejected by the safety system"),
            ),
            PixazoRequestFailedError,
            "Rejected by the safety system",
            id="failed",
        ),
        pytest.param(
            make_event_payload(
                WaitOutcome.ERROR, REQUEST_ID, result=failed_result(RequestStatus.ERROR, "Internal model error")
            ),
            PixazoRequestErroredError,
            "Internal model error",
            id="error",
        ),
        pytest.param(
            make_event_payload(
                WaitOutcome.TIMEOUT,
                REQUEST_ID,
                message="too slow",
                extra={"timeout": 60.0, "last_status": "PROCESSING"},
            ),
            PixazoTimeoutError,
            "PROCESSING",
            id="timeout",
        ),
        pytest.param(
            make_event_payload(
                WaitOutcome.AUTH, REQUEST_ID, message="Pixazo refused the API key (401)", extra={"http_status": 401}
            ),
            PixazoAuthError,
            "refused the API key",
            id="auth",
        ),
        pytest.param(
            make_event_payload(WaitOutcome.NOT_FOUND, REQUEST_ID, message="not found (404)"),
            PixazoNotFoundError,
            "not found",
            id="not-found",
        ),
        pytest.param(
            make_event_payload(WaitOutcome.INVALID, REQUEST_ID, message="connection unusable"),
            PixazoWaitAbortedError,
            "connection unusable",
            id="invalid",
        ),
    ],
)
def test_execute_complete_raises_the_typed_error(
    gateway: respx.MockRouter, event: dict[str, Any], error_type: type[Exception], text: str
) -> None:
    context = make_context()
    with pytest.raises(error_type) as info:
        generate(wait_for_completion=True, deferrable=True).execute_complete(context, event)
    assert isinstance(info.value, AirflowFailException)
    assert text in str(info.value)
    assert RESULT_XCOM_KEY not in context["ti"].pushed
    assert len(gateway.calls) == 0


@pytest.mark.parametrize("outcome", [o for o in WaitOutcome if o is not WaitOutcome.SUCCESS])
def test_execute_complete_errors_name_the_paid_request(gateway: respx.MockRouter, outcome: WaitOutcome) -> None:
    """Whatever ended the wait, the error must name the (already paid) request so it can be looked up."""
    # The trigger sends str(err) as the message; for an unusable connection that text has no request id.
    message = "Invalid password='<empty>': connection 'pixazo_default' needs the Pixazo API key"
    event = make_event_payload(outcome, REQUEST_ID, message=message)
    with pytest.raises(PixazoError) as info:
        generate(wait_for_completion=True, deferrable=True).execute_complete(make_context(), event)
    assert isinstance(info.value, AirflowFailException)
    assert REQUEST_ID in str(info.value) or getattr(info.value, "request_id", None) == REQUEST_ID


def test_execute_complete_timeout_names_the_request(gateway: respx.MockRouter) -> None:
    event = make_event_payload(
        WaitOutcome.TIMEOUT, REQUEST_ID, message="slow", extra={"timeout": 90.0, "last_status": "QUEUED"}
    )
    with pytest.raises(PixazoTimeoutError) as info:
        generate(wait_for_completion=True, deferrable=True).execute_complete(make_context(), event)
    assert info.value.request_id == REQUEST_ID
    assert info.value.timeout == 90.0
    assert info.value.last_status == "QUEUED"
    assert REQUEST_ID in str(info.value)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(None, id="none"),
        pytest.param({"request_id": REQUEST_ID}, id="no-outcome"),
        pytest.param({"outcome": "exploded", "request_id": REQUEST_ID}, id="unknown-outcome"),
        pytest.param({"outcome": "success", "request_id": REQUEST_ID, "result": None}, id="success-without-result"),
    ],
)
def test_execute_complete_refuses_a_malformed_event(gateway: respx.MockRouter, event: Any) -> None:
    context = make_context()
    with pytest.raises(PixazoError):
        generate(wait_for_completion=True, deferrable=True).execute_complete(context, event)
    assert context["ti"].pushed == {}


# -- non-deferrable wait ----------------------------------------------------------------------------


def test_polling_wait_runs_to_completion(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    status_route = gateway.get(STATUS_URL).mock(
        side_effect=[status("QUEUED"), status("PROCESSING"), status("PROCESSING"), status("COMPLETED")]
    )
    context = make_context()
    op = generate(wait_for_completion=True, poll_interval=4, timeout=60)

    assert op.execute(context) == REQUEST_ID

    assert status_route.call_count == 4
    assert clock.sleeps == [4.0, 4.0, 4.0]
    assert context["ti"].pushed[RESULT_XCOM_KEY]["status"] == "COMPLETED"
    assert status_route.calls[0].request.headers["Ocp-Apim-Subscription-Key"] == API_KEY


@pytest.mark.parametrize(
    ("remote", "error_type"), [("FAILED", PixazoRequestFailedError), ("ERROR", PixazoRequestErroredError)]
)
def test_polling_wait_fails_with_pixazos_text(
    gateway: respx.MockRouter, clock: FakeClock, remote: str, error_type: type[Exception]
) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status(remote, error="Content policy: nope")])
    context = make_context()
    with pytest.raises(error_type, match="Content policy: nope") as info:
        generate(wait_for_completion=True, poll_interval=1).execute(context)
    assert isinstance(info.value, AirflowFailException)  # no task retry: it would pay again
    assert info.value.request_id == REQUEST_ID  # type: ignore[attr-defined]
    assert RESULT_XCOM_KEY not in context["ti"].pushed


def test_polling_wait_times_out_naming_the_request(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    status_route = gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    context = make_context()
    with pytest.raises(PixazoTimeoutError) as info:
        generate(wait_for_completion=True, poll_interval=10, timeout=25).execute(context)
    err = info.value
    assert isinstance(err, AirflowFailException)
    assert err.request_id == REQUEST_ID
    assert err.timeout == 25.0
    assert err.last_status == "PROCESSING"
    assert REQUEST_ID in str(err)
    # Sleeps never overshoot the deadline: 10, 10, then the 5 s left.
    assert clock.sleeps == [10.0, 10.0, 5.0]
    assert status_route.call_count == 4
    assert RESULT_XCOM_KEY not in context["ti"].pushed


# -- ending in the triggerer ----------------------------------------------------------------------

ALL_IMAGE_LINKS = {f"_link_PixazoImageLink_{i}": i for i in range(10)}


def deferred_trigger_kwargs(op: Any, gateway: respx.MockRouter, store: FakeTaskStateStore | None = None) -> Any:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    with pytest.raises(TaskDeferred) as info:
        op.execute(make_context(store or FakeTaskStateStore()))
    return info.value.trigger.serialize()[1]


def test_deferred_wait_lets_the_trigger_end_the_task_returning_the_request_id(gateway: respx.MockRouter) -> None:
    kwargs = deferred_trigger_kwargs(generate(wait_for_completion=True, deferrable=True), gateway)
    assert kwargs["end_task_on_success"] is True
    assert kwargs["task_return"] == "request_id"
    assert kwargs["image_link_keys"] == ALL_IMAGE_LINKS


def test_end_from_trigger_false_resumes_on_a_worker(gateway: respx.MockRouter) -> None:
    op = generate(wait_for_completion=True, deferrable=True, end_from_trigger=False)
    assert deferred_trigger_kwargs(op, gateway)["end_task_on_success"] is False


def test_clear_on_success_resumes_on_a_worker_so_the_store_is_cleared(
    gateway: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API server clears the task state store only when a worker reports success.
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    op = generate(wait_for_completion=True, deferrable=True)
    assert deferred_trigger_kwargs(op, gateway)["end_task_on_success"] is False


def test_trigger_pushes_exactly_what_the_resumed_operator_pushes(gateway: respx.MockRouter) -> None:
    from airflow_provider_pixazo.events import TaskReturn, task_end_xcoms
    from airflow_provider_pixazo.links.pixazo import image_url

    op = generate(wait_for_completion=True, deferrable=True)
    kwargs = deferred_trigger_kwargs(op, gateway)
    result = RequestResult(REQUEST_ID, RequestStatus.COMPLETED, media_urls=("https://cdn.test/a.png",))

    context = {**make_context(), "task": op}
    returned = op.execute_complete(context, make_event_payload(WaitOutcome.SUCCESS, REQUEST_ID, result=result))
    pushed = context["ti"].pushed
    links = {link.xcom_key: image_url(pushed[MEDIA_URLS_XCOM_KEY], link.index) for link in op.operator_extra_links}
    on_the_worker = {"return_value": returned, **pushed, **links}

    from_the_trigger = task_end_xcoms(
        result, task_return=TaskReturn(kwargs["task_return"]), image_link_keys=kwargs["image_link_keys"]
    )
    assert from_the_trigger == on_the_worker
    assert from_the_trigger["return_value"] == REQUEST_ID
    assert from_the_trigger[RESULT_XCOM_KEY]["media_urls"] == ["https://cdn.test/a.png"]


def test_retry_reusing_a_completed_request_does_not_defer(gateway: respx.MockRouter) -> None:
    """A retry that finds its stored request already done publishes it at once: nothing to race."""
    store = FakeTaskStateStore()
    deferred_trigger_kwargs(generate(wait_for_completion=True, deferrable=True), gateway, store)
    gateway.get(STATUS_URL).mock(return_value=status("COMPLETED"))
    context = make_context(store)

    assert generate(wait_for_completion=True, deferrable=True).execute(context) == REQUEST_ID

    assert gateway.routes[0].call_count == 1  # paid once, for the first try
    assert context["ti"].pushed[RESULT_XCOM_KEY]["status"] == "COMPLETED"


@pytest.mark.parametrize(("choice", "ends_there"), [(None, False), (True, True), (False, False)])
def test_with_listeners_registered_the_default_resumes_on_a_worker(
    gateway: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, choice: bool | None, ends_there: bool
) -> None:
    from airflow_provider_pixazo import waiting

    monkeypatch.setattr(waiting, "_has_listeners", lambda: True)
    op = generate(wait_for_completion=True, deferrable=True, end_from_trigger=choice)
    assert deferred_trigger_kwargs(op, gateway)["end_task_on_success"] is ends_there
    # Airflow's DAG parser refuses a truthy end_from_trigger beside listeners: the default is not.
    assert op.end_from_trigger is choice


class _OwnResume(PixazoGenerateImageOperator):
    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        return "mine"


def test_subclass_with_its_own_execute_complete_resumes_on_a_worker(gateway: respx.MockRouter) -> None:
    op = _OwnResume(task_id="g", prompt="a fox", wait_for_completion=True, deferrable=True)
    assert deferred_trigger_kwargs(op, gateway)["end_task_on_success"] is False
