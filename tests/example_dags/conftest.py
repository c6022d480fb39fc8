"""Fixtures for real Airflow runs of the examples (the metadata DB is ``airflow_db``, in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests._net import free_port

# The loopback moto server is the transfer suite's session fixture; one server serves both folders.
from tests.transfers.conftest import moto_endpoint, s3_client  # noqa: F401 (fixtures, taken by name)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="session")
def dagbag(airflow_db: None) -> Any:
    """The example DAGs, parsed once."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(EXAMPLE_DAGS))


@pytest.fixture
def run_dag(dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run an example DAG with dag.test(), images going to a fresh local folder; returns the DagRun."""
    destination = tmp_path / "images"
    destination.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_DESTINATION", destination.as_uri())

    def run(dag_id: str, **kwargs: Any) -> Any:
        # A fresh parse per run: dag.test(run_conf=...) leaves the conf on the DAG object it ran.
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(EXAMPLE_DAGS / f"{dag_id}.py")).get_dag(dag_id)
        assert dag is not None, f"{dag_id} not in {sorted(dagbag.dag_ids)}"
        dag_run = dag.test(**kwargs)
        dag_run.destination = destination
        return dag_run

    return run


@pytest.fixture
def s3_only_through(
    moto_endpoint: str,  # noqa: F811 (the imported fixture, by name)
    s3_client: Any,  # noqa: F811 (the imported fixture, by name)
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str, str], Any]]:
    """
    ``s3_only_through(conn_id, bucket)``: a bucket on moto that only AWS connection ``conn_id`` reaches.

    The worker's default AWS identity is made unusable (made-up keys, an endpoint where nothing
    listens), so an upload that ignored the named connection fails instead of passing by luck.
    Returns a boto3 client on moto, to read what was written.
    """
    from airflow.sdk.io import store

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "DEFAULT-IDENTITY-MUST-NOT-BE-USED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "default-identity-must-not-be-used")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    client = s3_client
    buckets: list[str] = []

    def make(conn_id: str, bucket: str) -> Any:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": f"{conn_id}-key",
                    "password": f"{conn_id}-secret",
                    "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        client.create_bucket(Bucket=bucket)
        buckets.append(bucket)
        return client

    # ObjectStoragePath caches one filesystem per (protocol, conn_id) for the process.
    store._STORE_CACHE.clear()
    try:
        yield make
    finally:
        store._STORE_CACHE.clear()
        for bucket in buckets:
            for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)


def finish_job(emulator: PixazoEmulator, request_id: str) -> None:
    """The emulator's job ends now: the wait's first check (on the worker) saw it unfinished, so it deferred."""
    with emulator._lock:
        job = emulator._jobs[request_id]
        emulator._jobs[request_id] = dataclasses.replace(job, queued_seconds=0.0, processing_seconds=0.0)


@pytest.fixture
def as_the_triggerer(monkeypatch: pytest.MonkeyPatch, pixazo_emulator: PixazoEmulator) -> list[tuple[str, str]]:
    """
    Make dag.test() apply each trigger event as the triggerer does; returns ``(task_id, event type)`` per event.

    ``dag.test()`` runs a trigger inline and then resumes the task on its worker whatever the trigger
    yielded. Here each deferral goes the way the triggerer takes it instead: the trigger is rebuilt from
    its serialized kwargs and given its task instance (as ``create_triggers`` in Airflow's
    ``jobs/triggerer_job_runner.py`` does; ``dag.test()`` does not), so it pushes XComs itself through the
    Task SDK; its event crosses the triggerer's process boundary (the pydantic model the runner sends
    events in); and Airflow's own ``handle_event_submit`` applies it to the task instance in the metadata
    DB, ending the task or scheduling it to resume on a worker.

    Jobs stay PROCESSING until a trigger starts, however slow the machine: every wait defers.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.api.datamodels._generated import TaskInstance as TaskInstanceSDK
    from airflow.sdk.definitions import dag as dag_module
    from airflow.sdk.execution_time.comms import DeferTask
    from airflow.sdk.execution_time.supervisor import run_task_in_process
    from airflow.sdk.serde import deserialize
    from airflow.serialization.serialized_objects import create_scheduler_operator
    from airflow.triggers.base import DiscrimatedTriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from pydantic import TypeAdapter

    seen: list[tuple[str, str]] = []
    pixazo_emulator.processing_seconds = 3600.0
    adapter: TypeAdapter[Any] = TypeAdapter(DiscrimatedTriggerEvent)

    def run_task(*, ti: Any, task: Any, run_triggerer: bool = False) -> Any:
        while True:
            ti.set_state(TaskInstanceState.QUEUED)  # what the execution API expects of a task it starts
            sdk_ti = TaskInstanceSDK(
                id=ti.id,
                task_id=ti.task_id,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                try_number=ti.try_number,
                map_index=ti.map_index,
                dag_version_id=ti.dag_version_id,
            )
            outcome = run_task_in_process(ti=sdk_ti, task=task)
            ti.set_state(outcome.ti.state)
            ti.task = create_scheduler_operator(outcome.ti.task)
            msg = outcome.msg
            if ti.state != TaskInstanceState.DEFERRED or not isinstance(msg, DeferTask):
                return outcome
            trigger = import_string(msg.classpath)(**deserialize(msg.trigger_kwargs))
            trigger.task_instance = sdk_ti
            finish_job(pixazo_emulator, trigger.request_id)
            event = dag_module._run_inline_trigger(trigger, sdk_ti)
            received = adapter.validate_python(adapter.dump_python(event, mode="json"))
            seen.append((ti.task_id, type(received).__name__))
            with create_session() as session:
                row = session.get(TaskInstance, ti.id)
                # As the execution API's defer route left it (dag.test()'s own bookkeeping may not have).
                row.state = TaskInstanceState.DEFERRED
                row.next_method = msg.next_method
                row.next_kwargs = msg.next_kwargs
                handle_event_submit(received, task_instance=row, session=session)
            ti.refresh_from_db()
            if ti.state != TaskInstanceState.SCHEDULED:
                return None  # ended in the triggerer: no worker resumes it
            # A plain event: the task resumes on a worker, as after the triggerer.

    monkeypatch.setattr(dag_module, "_run_task", run_task)
    return seen
