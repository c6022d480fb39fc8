"""
Fixtures of the Pixazo view's server tests: a real run that stored images, and Airflow's real auth.

``run_stored_dag`` runs ``tests/plugins/dags/pixazo_ui_stored.py`` with ``dag.test()`` against the
local emulator (generate two images, store them), so the metadata DB holds exactly what a deployment
would: task instances, the ``pixazo_stored`` XCom and the rendered ``dest_conn_id``. ``run_batch_dag``
does the same with ``tests/plugins/dags/pixazo_ui_batch.py`` (a batch task's images and manifest, no
gateway) for the batch gallery. ``view_client``
is the plugin's FastAPI app behind Airflow's own security dependencies, with the simple auth manager
(one DAG refused to one user) and tokens signed the way Airflow signs them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The loopback moto server is the transfer suite's session fixture; one server serves every folder.
from tests.transfers.conftest import moto_endpoint, s3_bucket, s3_client  # noqa: F401 (fixtures)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = Path(__file__).resolve().parent / "dags"
STORED_DAG = "pixazo_ui_stored"
BATCH_DAG = "pixazo_ui_batch"
REAL_BATCH_DAG = "pixazo_ui_real_batch"
#: What ``outsider`` may not read.
HIDDEN_DAGS = frozenset({STORED_DAG, BATCH_DAG, REAL_BATCH_DAG})
READER, OUTSIDER = "reader", "outsider"


@dataclass
class StoredRun:
    """A finished run of the stored-images DAG."""

    dag_id: str
    run_id: str
    stored: dict[str, Any]
    api_key: str


@dataclass
class BatchRun:
    """A finished run of the batch DAG: what its ``batch`` task returned, and where it wrote."""

    dag_id: str
    run_id: str
    returned: dict[str, Any]
    destination: str


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """
    The metadata DB at Airflow's head revision (``dag.test()`` needs its tables).

    Checked in-process first: the example-DAG and reliability suites have usually migrated it
    already in this session, and a no-op ``airflow db migrate`` still costs a CLI start-up.
    """
    from airflow.utils.db import check_migrations

    try:
        check_migrations(timeout=1)
    except Exception:  # no DB yet, or behind: migrate it
        subprocess.run([AIRFLOW, "db", "migrate"], env=dict(os.environ), check=True, capture_output=True, timeout=300)


def _xcom(dag_run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        raw = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        )
    return json.loads(raw) if isinstance(raw, str) else raw


def _test_dag(dag_id: str, state: str = "success") -> Any:
    """Parse ``tests/plugins/dags/<dag_id>.py``, sync it to the DB, ``dag.test()`` it; the run must end ``state``."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(str(DAGS / f"{dag_id}.py"))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag_run = dag.test()
    assert str(dag_run.state) == state, dag_run.state
    return dag_run


def _run(destination: str, dest_conn_id: str, emulator: Any, env: pytest.MonkeyPatch) -> StoredRun:
    from airflow_provider_pixazo.testing.pytest_plugin import connection_env_var, connection_json

    env.setenv(connection_env_var(), connection_json(emulator))
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_DESTINATION", destination)
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_DEST_CONN_ID", dest_conn_id)
    dag_run = _test_dag(STORED_DAG)
    stored = _xcom(dag_run, "store", "pixazo_stored")
    assert isinstance(stored, dict), stored
    assert len(stored["files"]) == 2, stored
    return StoredRun(STORED_DAG, dag_run.run_id, stored, emulator.api_key)


@pytest.fixture(scope="module")
def local_run(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoredRun]:
    """One run that stored its two images on local disk, shared by a module's tests (which must not spoil it)."""
    from airflow_provider_pixazo.testing.emulator import PixazoEmulator

    destination = tmp_path_factory.mktemp("stored") / "images"
    with PixazoEmulator() as emulator, pytest.MonkeyPatch.context() as env:
        yield _run(destination.as_uri(), "", emulator, env)


@pytest.fixture
def run_stored_dag(
    airflow_db: None,
    pixazo_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., StoredRun]:
    """Run the stored-images DAG into ``destination`` (with ``dest_conn_id``); return what it recorded."""

    def run(destination: str, dest_conn_id: str = "") -> StoredRun:
        return _run(destination, dest_conn_id, pixazo_emulator, monkeypatch)

    return run


def _run_batch(destination: str, dest_conn_id: str, items: int, env: pytest.MonkeyPatch) -> BatchRun:
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_BATCH_DESTINATION", destination)
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_BATCH_DEST_CONN_ID", dest_conn_id)
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_BATCH_ITEMS", str(items))
    dag_run = _test_dag(BATCH_DAG)
    returned = _xcom(dag_run, "batch", "return_value")
    assert isinstance(returned, dict), returned
    assert sum(returned["counts"].values()) == items, returned
    return BatchRun(BATCH_DAG, dag_run.run_id, returned, destination)


@pytest.fixture(scope="module")
def batch_run(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchRun]:
    """A run whose batch task wrote 1,000 items on local disk, shared by a module's tests (which must not spoil it)."""
    destination = tmp_path_factory.mktemp("batch") / "out"
    with pytest.MonkeyPatch.context() as env:
        yield _run_batch(destination.as_uri(), "", 1000, env)


@pytest.fixture
def run_batch_dag(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., BatchRun]:
    """Run the batch DAG into ``destination`` (with ``dest_conn_id``) with ``items`` items; return what it recorded."""

    def run(destination: str, dest_conn_id: str = "", items: int = 30) -> BatchRun:
        return _run_batch(destination, dest_conn_id, items, monkeypatch)

    return run


@pytest.fixture
def run_real_batch_dag(
    airflow_db: None, pixazo_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., BatchRun]:
    """
    Run ``pixazo_ui_real_batch`` (the real batch operator, against the emulator) into ``destination``.

    Its task fails on ``max_failed``: ``returned`` is its ``pixazo_batch`` summary, there being no return value.
    """

    def run(destination: str, dest_conn_id: str = "") -> BatchRun:
        from airflow_provider_pixazo.testing.pytest_plugin import connection_env_var, connection_json

        monkeypatch.setenv(connection_env_var(), connection_json(pixazo_emulator))
        monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_UI_BATCH_DESTINATION", destination)
        monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_UI_BATCH_DEST_CONN_ID", dest_conn_id)
        dag_run = _test_dag(REAL_BATCH_DAG, state="failed")
        assert _xcom(dag_run, "batch", "return_value") is None
        summary = _xcom(dag_run, "batch", "pixazo_batch")
        assert isinstance(summary, dict), summary
        return BatchRun(REAL_BATCH_DAG, dag_run.run_id, summary, destination)

    return run


@pytest.fixture
def view_client(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The plugin's app under Airflow's simple auth manager; ``outsider`` is refused :data:`HIDDEN_DAGS`."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from fastapi.testclient import TestClient

    from airflow_provider_pixazo.plugins.app import create_app

    class OneDagHidden(SimpleAuthManager):  # type: ignore[misc]
        def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
            if user.get_name() == OUTSIDER and details is not None and details.id in HIDDEN_DAGS:
                return False
            return bool(
                super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
            )

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    # A deployment's secret is long enough for HS512; Airflow's stand-in for an empty one is not.
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(64))
    previous = api_app._AuthManagerState.instance
    manager = OneDagHidden()
    manager.init()
    api_app._AuthManagerState.instance = manager
    try:
        with TestClient(create_app(), base_url="http://127.0.0.1") as client:
            client.manager = manager
            yield client
    finally:
        api_app._AuthManagerState.instance = previous


def token_for(client: Any, username: str, *, expires_in: int = 600) -> str:
    """A JWT for ``username`` (a viewer), signed as Airflow signs the UI's tokens."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=username, role="viewer")
    return str(client.manager.generate_jwt(user, expiration_time_in_seconds=expires_in))
