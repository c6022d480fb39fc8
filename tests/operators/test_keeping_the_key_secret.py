"""The API key never appears in logs, XCom, the task state store, trigger kwargs or errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_pixazo.exceptions import (
    PixazoError,
    PixazoRequestFailedError,
    PixazoTimeoutError,
)
from tests.conftest import API_KEY, FakeTaskStateStore, make_context
from tests.operators.conftest import (
    EDIT_URL,
    GEN2_URL,
    STATUS_URL,
    FakeClock,
    edit,
    generate,
    status,
    submitted,
)

# -- the API key stays secret -----------------------------------------------------------------------


def test_api_key_never_leaks(
    gateway: respx.MockRouter, clock: FakeClock, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.post(EDIT_URL).mock(return_value=httpx.Response(500, json={"error": "boom"}))
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status("COMPLETED")])
    leaks: list[str] = []

    # Rendered templates.
    op = generate(prompt="{{ params.p }}", wait_for_completion=True, poll_interval=1, timeout=60)
    op.render_template_fields({"params": {"p": "A sunset"}})
    leaks += [repr(op), str(op)]
    leaks += [repr(getattr(op, field)) for field in op.template_fields]
    leaks.append(repr(op.hook))

    # Polling run: XCom values and return value.
    context = make_context(FakeTaskStateStore())
    leaks.append(op.execute(context))
    leaks.append(json.dumps(context["ti"].pushed))
    leaks.append(json.dumps(context["task_state_store"].data))

    # Deferral: trigger kwargs.
    gateway.get(STATUS_URL).mock(return_value=status("FAILED", error="nope"))
    with pytest.raises(TaskDeferred) as deferred:
        generate(prompt="Another", wait_for_completion=True, deferrable=True).execute(make_context())
    leaks.append(json.dumps(deferred.value.trigger.serialize()))
    leaks.append(repr(deferred.value))

    # Errors: validation, uncertain submit, timeout, failed.
    errors: list[BaseException] = []
    for bad in (generate(n=0), edit(images=str(files["png"]))):
        with pytest.raises(PixazoError) as info:
            bad.execute(make_context())
        errors.append(info.value)
    gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    with pytest.raises(PixazoTimeoutError) as timeout_info:
        generate(prompt="Third", wait_for_completion=True, poll_interval=1, timeout=2).execute(make_context())
    errors.append(timeout_info.value)
    gateway.get(STATUS_URL).mock(return_value=status("FAILED", error="nope"))
    with pytest.raises(PixazoRequestFailedError) as failed_info:
        generate(prompt="Fourth", wait_for_completion=True).execute(make_context())
    errors.append(failed_info.value)
    for error in errors:
        leaks += [str(error), repr(error), repr(error.args), repr(vars(error))]

    captured = capsys.readouterr()
    leaks += [captured.out, captured.err]
    for text in leaks:
        assert API_KEY not in text
