"""Fixtures and fakes shared by the whole suite: a hermetic Pixazo connection, sleepless retries, the
respx gateway, and the task instance / task state store a task sees (the only Airflow parts faked)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

# Before anything imports Airflow: a throwaway, git-ignored Airflow home and the example DAGs folder,
# so the suite never reads or writes ~/airflow and dag.test() finds the examples.
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-home" / "test"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "example_dags"))

import pytest  # noqa: E402
import respx  # noqa: E402
import respx.mocks  # noqa: E402

# respx mocks at the client's transport selection rather than inside httpcore, so the triggers'
# own keep-alive transport (hooks/_transport.py) is replaced at the network edge like the default one.
respx.mocks.DEFAULT_MOCKER = "httpx"

from airflow_provider_pixazo import retry  # noqa: E402
from tests._airflow_db import AIRFLOW, copy_db, migrate_template  # noqa: E402

# Airflow 3.3's task SDK resolves AIRFLOW_CONN_* variables in BaseHook.get_connection and
# aget_connection outside a running task with no further setup (checked in
# tests/hooks/test_pixazo.py::test_env_connection_resolves_sync_and_async), so no extra env is set here.

API_KEY = "sk-test-SECRET-123"
BASE_URL = "https://gateway.test"
CONN_ENV = "AIRFLOW_CONN_PIXAZO_DEFAULT"


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite metadata DB, made once per session; copy it (``tests._airflow_db.copy_db``)."""
    return migrate_template(tmp_path_factory.mktemp("migrated-db"))


@pytest.fixture(scope="session")
def airflow_db(migrated_db: Path) -> None:
    """
    The suite's own metadata DB ready for ``dag.test()``: migrated, with the ``pixazo`` pool the
    examples submit through. A home with no DB yet gets a copy of ``migrated_db``; an existing one
    (a developer's, maybe from an older Airflow) or a non-default database is migrated in place.
    """
    from airflow.configuration import conf
    from airflow.models.pool import Pool

    target = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    if conf.get("database", "sql_alchemy_conn") == f"sqlite:///{target}" and not target.exists():
        copy_db(migrated_db, target.parent)
    else:
        done = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"`airflow db migrate` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    Pool.create_or_update_pool("pixazo", 4, "Pixazo submits", include_deferred=False)


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


@pytest.fixture
def gateway(pixazo_conn: str, no_sleep: list[float]) -> Iterator[respx.MockRouter]:
    """A respx router standing in for the gateway ``pixazo_default`` points at; unmocked calls fail."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


class FakeTI:
    """What the tasks use of a task instance: xcom_push, and stats_tags for ResumableJobMixin."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        # Values must survive XCom's JSON serialisation.
        self.pushed[key] = json.loads(json.dumps(value))


class FakeTaskStateStore:
    """In-memory stand-in for TaskStateStoreAccessor (get / set / delete, JSON values only)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.ops: list[tuple[str, str]] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.ops.append(("get", key))
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        self.ops.append(("set", key))
        if value is None:
            raise ValueError("Cannot set value as None")
        self.data[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.ops.append(("delete", key))
        self.data.pop(key, None)


def make_context(store: FakeTaskStateStore | None = None) -> dict[str, Any]:
    """A task context with a fresh FakeTI, and the task state store when given (Airflow >= 3.3)."""
    context: dict[str, Any] = {"ti": FakeTI()}
    if store is not None:
        context["task_state_store"] = store
    return context
