"""Fixtures shared by the whole suite: a hermetic Pixazo connection and sleepless retries."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

# Before anything imports Airflow: a throwaway, git-ignored Airflow home and the example DAGs folder,
# so the suite never reads or writes ~/airflow and dag.test() finds the examples.
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-home" / "test"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "example_dags"))

import pytest  # noqa: E402
import respx.mocks  # noqa: E402

# respx mocks at the client's transport selection rather than inside httpcore, so the triggers'
# own keep-alive transport (hooks/_transport.py) is replaced at the network edge like the default one.
respx.mocks.DEFAULT_MOCKER = "httpx"

from airflow_provider_pixazo import retry  # noqa: E402

# Airflow 3.3's task SDK resolves AIRFLOW_CONN_* variables in BaseHook.get_connection and
# aget_connection outside a running task with no further setup (checked in
# tests/hooks/test_pixazo.py::test_env_connection_resolves_sync_and_async), so no extra env is set here.

API_KEY = "sk-test-SECRET-123"
BASE_URL = "https://gateway.test"
CONN_ENV = "AIRFLOW_CONN_PIXAZO_DEFAULT"


@pytest.fixture
def pixazo_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the ``pixazo_default`` connection at a fake gateway; returns the API key."""
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "pixazo", "host": BASE_URL, "password": API_KEY}))
    return API_KEY


class _SleeplessModule:
    """Stands in for ``time`` / ``asyncio`` inside ``retry`` only: every attribute but ``sleep`` is real."""

    def __init__(self, module: Any, sleep: Any) -> None:
        self._module = module
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make the transport's sync and async sleeps instant; returns the list of delays asked for."""
    delays: list[float] = []
    real_async_sleep = asyncio.sleep

    def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def fake_async_sleep(seconds: float) -> None:
        delays.append(seconds)
        await real_async_sleep(0)

    monkeypatch.setattr(retry, "time", _SleeplessModule(time, fake_sleep))
    monkeypatch.setattr(retry, "asyncio", _SleeplessModule(asyncio, fake_async_sleep))
    return delays
