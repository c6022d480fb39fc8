"""Fixtures for real Airflow runs of the examples (the metadata DB is ``airflow_db``, in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
