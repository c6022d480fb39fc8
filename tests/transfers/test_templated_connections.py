"""
The transfer's connection ids are templated, and a named connection must exist: never default credentials.

The docstring example runs under a real ``dag.test()``: ``dest_conn_id`` rendered from a Variable to a
named AWS connection pointing at the loopback moto server, in an environment where the default
credential chain has nothing to offer (so an upload that fell back to it would fail).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import connection_env_var, connection_json
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import (
    PixazoToObjectStorageOperator,
    resolve_destination,
)
from tests.transfers.conftest import _forget_cached_store
from tests.transfers.dags.pixazo_transfer_docstring_example import DAG_ID, PROMPT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = Path(__file__).resolve().parent / "dags"
#: The docstring example writes here, through the connection the ``images_conn_id`` Variable names.
BUCKET = "my-bucket"
NAMED_CONN = "aws_images"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` (``dag.test()`` needs the tables), once per session."""
    subprocess.run([AIRFLOW, "db", "migrate"], env=dict(os.environ), check=True, capture_output=True, timeout=300)


@pytest.fixture
def no_default_aws_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment where boto's default credential chain finds nothing at all."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def named_aws_connection(moto_endpoint: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``aws_images``: the only way to the moto server, where ``my-bucket`` exists."""
    monkeypatch.setenv(
        connection_env_var(NAMED_CONN),
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    with contextlib.suppress(s3_client.exceptions.BucketAlreadyOwnedByYou):
        s3_client.create_bucket(Bucket=BUCKET)
    _forget_cached_store(NAMED_CONN)
    yield NAMED_CONN
    _forget_cached_store(NAMED_CONN)
    # The moto server serves the whole session, and the README example test lists this bucket whole.
    for item in s3_client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3_client.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[PixazoEmulator]:
    with PixazoEmulator() as emu:
        monkeypatch.setenv(connection_env_var("pixazo_default"), connection_json(emu))
        yield emu


@pytest.fixture
def example_run(
    airflow_db: None, emulator: PixazoEmulator, no_default_aws_credentials: None, named_aws_connection: str
) -> PixazoEmulator:
    """Everything the docstring example needs but the Variable naming its connection; returns the emulator."""
    return emulator


def _run_docstring_example(monkeypatch: pytest.MonkeyPatch, *, images_conn_id: str) -> Any:
    """``dag.test()`` of the example, with the ``images_conn_id`` Variable its ``dest_conn_id`` renders from."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(str(DAGS / f"{DAG_ID}.py"))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(DAG_ID)
    assert dag is not None
    monkeypatch.setenv("AIRFLOW_VAR_IMAGES_CONN_ID", images_conn_id)
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return dag.test()


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


@pytest.mark.integration
@pytest.mark.dagrun
def test_docstring_example_uploads_through_the_rendered_named_connection(
    example_run: PixazoEmulator, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag_run = _run_docstring_example(monkeypatch, images_conn_id=NAMED_CONN)

    assert _states(dag_run) == {"generate": "success", "store": "success"}
    (job,) = example_run.requests.values()
    assert job.body["prompt"] == PROMPT  # params rendered into the generate task
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix=f"images/{job.request_id}/")["Contents"]}
    assert keys == {f"images/{job.request_id}/0.png", f"images/{job.request_id}/provenance.json"}
    stored = s3_client.get_object(Bucket=BUCKET, Key=f"images/{job.request_id}/0.png")["Body"].read()
    served = httpx.get(job.media_urls[0]).content
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(served).hexdigest()
    sidecar = json.loads(
        s3_client.get_object(Bucket=BUCKET, Key=f"images/{job.request_id}/provenance.json")["Body"].read()
    )
    assert sidecar["provenance"] == {"prompt": PROMPT}  # rendered too


@pytest.mark.integration
@pytest.mark.dagrun
def test_docstring_example_with_an_unknown_connection_fails_before_any_download(
    example_run: PixazoEmulator, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag_run = _run_docstring_example(monkeypatch, images_conn_id="aws_typo")

    assert _states(dag_run) == {"generate": "success", "store": "failed"}
    (job,) = example_run.requests.values()
    assert not [c for c in example_run.calls if c.kind == "media"]
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=f"images/{job.request_id}/")
    assert listed.get("KeyCount", 0) == 0


def test_default_credentials_would_have_failed(no_default_aws_credentials: None, moto_endpoint: str) -> None:
    """The control for the test above: without the named connection, this environment cannot write to S3."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import store

    store._STORE_CACHE.pop("s3", None)
    try:
        with pytest.raises(Exception, match=r"(?i)credentials"):
            ObjectStoragePath(f"s3://{BUCKET}/images/probe.txt").write_bytes(b"probe")
    finally:
        store._STORE_CACHE.pop("s3", None)


def test_unknown_dest_conn_id_names_the_parameter_and_id_before_any_http(pixazo_conn: str, tmp_path: Path) -> None:
    op = PixazoToObjectStorageOperator(
        task_id="store",
        request_id="gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001",
        destination="s3://my-bucket/images",
        dest_conn_id="aws_does_not_exist",
    )
    with respx.mock(assert_all_mocked=True) as router, pytest.raises(PixazoValidationError) as caught:
        op.execute({})
    assert caught.value.parameter == "dest_conn_id"
    assert caught.value.value == "aws_does_not_exist"
    assert "dest_conn_id='aws_does_not_exist'" in str(caught.value)
    assert router.calls.call_count == 0
    # The same for a local destination: a named connection is never silently ignored.
    with pytest.raises(PixazoValidationError, match="dest_conn_id"):
        resolve_destination(str(tmp_path), "aws_does_not_exist")


@pytest.mark.parametrize("bad", [42, ["aws_images"]])
def test_malformed_dest_conn_id_is_refused(bad: Any) -> None:
    with pytest.raises(PixazoValidationError) as caught:
        resolve_destination("s3://my-bucket/images", bad)
    assert caught.value.parameter == "dest_conn_id"


@pytest.mark.parametrize("nothing", [None, "", "  ", "None"])
def test_a_template_rendering_nothing_means_the_default_credentials(nothing: Any, tmp_path: Path) -> None:
    # "{{ var.value.get('conn', '') }}" renders "", "{{ ... or None }}" renders "None" (no native rendering).
    path = resolve_destination(str(tmp_path), nothing)
    assert path.path == str(tmp_path)
    s3 = resolve_destination("s3://my-bucket/images", nothing)
    assert s3.conn_id is None


def test_both_connection_ids_render_from_a_template(tmp_path: Path) -> None:
    op = PixazoToObjectStorageOperator(
        task_id="store",
        request_id="{{ params.rid }}",
        destination=str(tmp_path),
        dest_conn_id="{{ params.dest }}",
        pixazo_conn_id="{{ params.pixazo }}",
        params={"rid": "gpt-image-2_x", "dest": "aws_images", "pixazo": "pixazo_prod"},
    )
    op.render_template_fields({"params": op.params})  # type: ignore[arg-type]
    assert (op.dest_conn_id, op.pixazo_conn_id) == ("aws_images", "pixazo_prod")
    assert op.hook.pixazo_conn_id == "pixazo_prod"
