"""
What fails, and how, when the network settings are wrong: an https gateway whose certificate is not
trusted, and malformed ``proxy`` / ``verify`` extras.

Each case names what to fix (the ``verify`` or ``proxy`` extra) and leaves the gateway untouched:
``emulator.calls == []`` proves nothing was submitted or even read. In the trigger, an untrusted
certificate ends the wait at once with an ``invalid`` event instead of polling until the timeout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_pixazo.exceptions import PixazoTLSError, PixazoValidationError
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import ThrowawayCA
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.proxy.conftest import ProxyProcess

pytestmark = pytest.mark.integration


class _TaskInstance:
    """Just enough of a task instance for ``execute``."""

    stats_tags: dict[str, str] = {}

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _generate() -> Any:
    operator = PixazoGenerateImageOperator(task_id="generate", prompt="a gull", quality="low")
    return operator.execute({"ti": _TaskInstance()})


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    """A second throwaway CA: a bundle that is valid, but not the one that signed the gateway."""
    pytest.importorskip("trustme")
    return ThrowawayCA(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(params=["system CAs", "wrong CA bundle", "wrong CA bundle, through the proxy"])
def untrusted_gateway(
    request: pytest.FixtureRequest,
    pixazo_emulator_factory: Any,
    pixazo_tls_ca: ThrowawayCA,
    other_ca: ThrowawayCA,
    forward_proxy: ProxyProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> PixazoEmulator:
    """An https emulator whose certificate the ``pixazo_default`` connection does not trust."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    extra = {} if request.param == "system CAs" else {"verify": str(other_ca.bundle)}
    if request.param.endswith("proxy"):
        monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    return pixazo_emulator_factory(
        conn_id="pixazo_default", conn_extra=extra, ssl_context=pixazo_tls_ca.server_context()
    )


def _assert_untrusted(error: BaseException, emulator: PixazoEmulator) -> None:
    message = str(error)
    assert "not trusted" in message
    assert "certificate verify failed" in message
    assert "'verify'" in message  # names the connection extra that fixes it
    assert emulator.calls == []


def test_submit_to_an_untrusted_gateway_fails_and_submits_nothing(untrusted_gateway: PixazoEmulator) -> None:
    with pytest.raises(PixazoTLSError) as info:
        _generate()
    _assert_untrusted(info.value, untrusted_gateway)
    assert isinstance(info.value, AirflowFailException)  # no task retry would fix it
    assert info.value.parameter == "verify"
    deadline = time.monotonic() + 5  # the emulator counts a refused handshake in its own thread
    while untrusted_gateway.tls_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert untrusted_gateway.tls_failures >= 1


def test_the_trigger_stops_at_once_with_an_invalid_event(untrusted_gateway: PixazoEmulator) -> None:
    trigger = PixazoRequestTrigger(request_id="req-untrusted-1", poll_interval=0.1, timeout=600)

    async def first_event() -> dict[str, Any]:
        async with asyncio.timeout(20):  # far below the 600 s the wait would otherwise take
            async for event in trigger.run():
                return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    payload = asyncio.run(first_event())
    assert payload["outcome"] == "invalid"
    _assert_untrusted(Exception(payload["message"]), untrusted_gateway)


def test_the_connection_test_button_says_why(untrusted_gateway: PixazoEmulator) -> None:
    ok, message = PixazoHook().test_connection()
    assert ok is False
    _assert_untrusted(Exception(message), untrusted_gateway)


BAD_EXTRAS = [
    ("proxy", "proxy.corp:3128"),
    ("proxy", "socks5://proxy.corp:1080"),
    ("proxy", "http://proxy.corp:notaport"),
    ("proxy", 3128),
    ("verify", "/no/such/ca-bundle.pem"),
    ("verify", "yes please"),
    ("verify", 1),
]


@pytest.mark.parametrize(("parameter", "value"), BAD_EXTRAS)
def test_a_bad_network_extra_fails_before_any_call(
    parameter: str, value: Any, pixazo_emulator_factory: Any, tmp_path: Path
) -> None:
    emulator: PixazoEmulator = pixazo_emulator_factory(conn_id="pixazo_default", conn_extra={parameter: value})
    with pytest.raises(PixazoValidationError) as submit:
        _generate()
    assert submit.value.parameter == parameter
    assert f"Invalid {parameter}=" in str(submit.value)
    with pytest.raises(PixazoValidationError) as wait:
        PixazoRequestSensor(task_id="wait", request_id="req-1", deferrable=False).execute({"ti": _TaskInstance()})
    assert wait.value.parameter == parameter
    assert emulator.calls == []
