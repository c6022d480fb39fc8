"""
Fixtures of the Pixazo view's server tests: a real run that stored images, and Airflow's real auth.

``run_stored_dag`` runs ``tests/plugins/dags/pixazo_ui_stored.py`` with ``dag.test()`` against the
local emulator (generate two images, store them), so the metadata DB holds exactly what a deployment
would: task instances, the ``pixazo_stored`` XCom and the rendered ``dest_conn_id``. ``view_client``
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
READER, OUTSIDER = "reader", "outsider"


@dataclass
class StoredRun:
    """A finished run of the stored-images DAG."""

    dag_id: str
    run_id: str
    stored: dict[str, Any]
    api_key: str


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


def _run(destination: str, dest_conn_id: str, emulator: Any, env: pytest.MonkeyPatch) -> StoredRun:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from airflow_provider_pixazo.testing.pytest_plugin import connection_env_var, connection_json

    env.setenv(connection_env_var(), connection_json(emulator))
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_DESTINATION", destination)
    env.setenv("AIRFLOW_VAR_PIXAZO_UI_DEST_CONN_ID", dest_conn_id)
    bag = DagBag(str(DAGS / f"{STORED_DAG}.py"))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(STORED_DAG)
    assert dag is not None
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag_run = dag.test()
    assert str(dag_run.state) == "success", dag_run.state
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


@pytest.fixture
def view_client(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The plugin's app under Airflow's simple auth manager; ``outsider`` is refused the stored-images DAG."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from fastapi.testclient import TestClient

    from airflow_provider_pixazo.plugins.app import create_app

    class OneDagHidden(SimpleAuthManager):  # type: ignore[misc]
        def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
            if user.get_name() == OUTSIDER and details is not None and details.id == STORED_DAG:
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
