"""
The API key never shows up where it should not: logs (with httpx/httpcore DEBUG on), errors, XCom,
trigger kwargs and events, rendered template fields, the serialized DAG, and the reprs of the objects.

The hook-level flows run outside any Airflow task, so Airflow's secrets masker is not there to hide
a leak: what is checked is what the provider itself writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoServerError,
    PixazoSubmitUncertainError,
    PixazoTransportError,
)
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import build_generate_request
from airflow_provider_pixazo.operators.pixazo import PixazoEditImageOperator, PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.testing.emulator import FaultConfig, PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import connection_env_var
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.reliability.conftest import (
    CANARY_KEY,
    InlineTriggers,
    count_in,
    scan_metadata_db,
    serialized_dag_text,
    states,
)

pytestmark = pytest.mark.integration

CONN_ENV = connection_env_var("pixazo_default")
LOGGERS = ("httpx", "httpcore", "airflow_provider_pixazo", "airflow")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(text)


@pytest.fixture
def debug_logs() -> Iterator[_Capture]:
    """httpx, httpcore, the provider and Airflow logging at DEBUG, every record kept."""
    handler = _Capture()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)


def _connect(monkeypatch: pytest.MonkeyPatch, emulator: PixazoEmulator, **extra: Any) -> None:
    """Point pixazo_default at ``emulator`` with the canary key (whatever key the emulator accepts)."""
    conn = {"conn_type": "pixazo", "host": emulator.url, "password": CANARY_KEY}
    if extra:
        conn["extra"] = json.dumps(extra)
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))


def _error_text(error: BaseException) -> str:
    """str and repr of the error and of every error in its chain, plus the formatted traceback."""
    parts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(vars(current))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _submit(hook: PixazoHook) -> Any:
    return hook.submit(build_generate_request("a lighthouse", n=1))


def _status(hook: PixazoHook) -> Any:
    return hook.get_status("gpt-image-2_0000")


def _astatus(hook: PixazoHook) -> Any:
    return asyncio.run(hook.aget_status("gpt-image-2_0000"))


# (id, emulator options, connection extra, call, expected error)
FLOWS: list[tuple[str, dict[str, Any], dict[str, Any], Callable[[PixazoHook], Any], type[PixazoError]]] = [
    ("401-submit", {"api_key": "another-key"}, {}, _submit, PixazoAuthError),
    ("401-status", {"api_key": "another-key"}, {}, _status, PixazoAuthError),
    ("401-status-async", {"api_key": "another-key"}, {}, _astatus, PixazoAuthError),
    ("403-submit", {"api_key": "another-key", "forbidden_keys": [CANARY_KEY]}, {}, _submit, PixazoAuthError),
    ("402-submit", {"api_key": CANARY_KEY, "balance": 0}, {}, _submit, PixazoInsufficientBalanceError),
    (
        "500-submit",
        {"api_key": CANARY_KEY, "faults": FaultConfig(rate_500=1.0)},
        {},
        _submit,
        PixazoSubmitUncertainError,
    ),
    ("500-status", {"api_key": CANARY_KEY, "faults": FaultConfig(rate_500=1.0)}, {}, _status, PixazoServerError),
    ("500-status-async", {"api_key": CANARY_KEY, "faults": FaultConfig(rate_500=1.0)}, {}, _astatus, PixazoServerError),
    (
        "drop-submit",
        {"api_key": CANARY_KEY, "faults": FaultConfig(rate_drop=1.0)},
        {},
        _submit,
        PixazoSubmitUncertainError,
    ),
    (
        "timeout-submit",
        {"api_key": CANARY_KEY, "faults": FaultConfig(latency_seconds=0.5)},
        {"timeout": 0.1},
        _submit,
        PixazoSubmitUncertainError,
    ),
    (
        "timeout-status",
        {"api_key": CANARY_KEY, "faults": FaultConfig(latency_seconds=0.5)},
        {"timeout": 0.1},
        _status,
        PixazoTransportError,
    ),
]


@pytest.mark.parametrize(
    ("options", "extra", "call", "expected"), [flow[1:] for flow in FLOWS], ids=[flow[0] for flow in FLOWS]
)
def test_key_absent_from_errors_and_debug_logs(
    options: dict[str, Any],
    extra: dict[str, Any],
    call: Callable[[PixazoHook], Any],
    expected: type[PixazoError],
    pixazo_emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: _Capture,
    no_sleep: list[float],
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator = pixazo_emulator_factory(**options)
    _connect(monkeypatch, emulator, **extra)
    hook = PixazoHook()

    with pytest.raises(expected) as caught:
        call(hook)
    hook.close()

    deadline = time.monotonic() + 5
    while not emulator.calls and time.monotonic() < deadline:  # a slow answer is recorded once it is sent
        time.sleep(0.05)
    out = capfd.readouterr()
    # The key did go to the gateway (the test would prove nothing otherwise) ...
    assert emulator.calls
    assert all(c.headers.get("ocp-apim-subscription-key") == CANARY_KEY for c in emulator.calls if c.status != 0)
    # ... and DEBUG logging was really on (httpcore's for the sync client; the triggers' async
    # transport is ours, so there httpx's own request log is what shows).
    assert any(line.startswith(("httpcore", "httpx")) for line in debug_logs.lines)
    assert count_in([_error_text(caught.value)]) == 0
    assert count_in(debug_logs.lines) == 0
    assert count_in([out.out, out.err]) == 0


def test_happy_path_with_debug_logs_leaks_nothing(
    pixazo_emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: _Capture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    emulator = pixazo_emulator_factory(api_key=CANARY_KEY)
    _connect(monkeypatch, emulator)
    hook = PixazoHook()

    submission = _submit(hook)
    result = hook.get_status(submission.request_id)
    async_result = asyncio.run(hook.aget_status(submission.request_id))
    with hook.stream_media(result.media_urls[0]) as response:
        body = response.read()
    hook.close()

    assert body.startswith(b"\x89PNG")
    assert async_result.status is result.status
    media = [c for c in emulator.calls if c.kind == "media"]
    assert media
    assert not any(c.sent_key for c in media)
    out = capfd.readouterr()
    assert any(line.startswith("httpx") for line in debug_logs.lines)
    assert count_in(debug_logs.lines) == 0
    assert count_in([out.out, out.err, repr(submission), repr(result), result.to_dict()]) == 0


def test_reprs_and_serialized_forms_hold_no_key(pixazo_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = pixazo_emulator_factory(api_key=CANARY_KEY)
    _connect(monkeypatch, emulator)
    hook = PixazoHook()
    settings = hook.settings
    client = hook.get_conn()
    trigger = PixazoRequestTrigger(request_id="gpt-image-2_0000", poll_interval=1, timeout=10)
    operators = [
        PixazoGenerateImageOperator(task_id="g", prompt="x"),
        PixazoEditImageOperator(task_id="e", prompt="x", images="https://cdn.example.com/a.png"),
        PixazoRequestSensor(task_id="s", request_id="gpt-image-2_0000"),
        PixazoToObjectStorageOperator(task_id="t", request_id="gpt-image-2_0000", destination="/tmp/x"),
    ]

    assert settings.api_key == CANARY_KEY  # the hook does hold it ...
    texts = [
        repr(hook),
        str(hook),
        repr(settings),
        str(settings),
        repr(client),
        repr(client.auth),
        repr(dict(client.headers)),
        repr(trigger),
        trigger.serialize(),
        *(repr(op) for op in operators),
        *({f: getattr(op, f) for f in op.template_fields} for op in operators),
    ]
    hook.close()
    assert count_in(texts) == 0  # ... but shows it nowhere


def test_dag_run_leaks_nothing(
    run_reliability_dag: Callable[..., Any],
    pixazo_emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    inline_triggers: InlineTriggers,
    debug_logs: _Capture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A deferrable generate (trigger run inline) and a transfer, with DEBUG logs on: scan everything."""
    from tests.reliability.dags.pixazo_reliability_secrets import dag

    emulator = pixazo_emulator_factory(api_key=CANARY_KEY, processing_seconds=1.0)
    _connect(monkeypatch, emulator)
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_RELIABILITY_DESTINATION", tmp_path.as_uri())

    dag_run = run_reliability_dag("pixazo_reliability_secrets")

    assert str(dag_run.state) == "success", states(dag_run)
    assert inline_triggers.serialized, "the generate task did not defer"
    out = capfd.readouterr()
    db = scan_metadata_db(dag_run.dag_id, dag_run.run_id)
    assert db.rows["xcom"] > 0
    assert db.rows["rendered_fields"] > 0
    assert db.rows["trigger"] > 0
    assert db.hits == dict.fromkeys(db.hits, 0), db.hits
    assert count_in(inline_triggers.serialized + inline_triggers.reprs + inline_triggers.events) == 0
    assert count_in([serialized_dag_text(dag)]) == 0
    assert count_in([out.out, out.err, *debug_logs.lines]) == 0
