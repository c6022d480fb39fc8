"""
The stored-copy route: ``/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/stored/{position}``.

Against a real run (emulator → ``dag.test()`` → files on disk, or objects in a loopback moto bucket)
and Airflow's real security dependencies: only a user Airflow lets read the DAG gets bytes; only
objects the task instance's own ``pixazo_stored`` record lists are read, by position; the bytes are
the stored ones, streamed; anything gone, out of range or not an image is a bare 404.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_pixazo.plugins.records import STORED_XCOM_KEY
from airflow_provider_pixazo.plugins.stored import (
    CHUNK_BYTES,
    READ_BLOCK_BYTES,
    StoredObject,
    destination_root,
    open_stored,
    relative_under,
)
from tests.plugins.conftest import OUTSIDER, READER, StoredRun, token_for
from tests.transfers.conftest import AWS_CONN_ID

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_FOUND = {"detail": "Not Found"}


def stored_path(run: StoredRun, position: int | str, task_id: str = "store") -> str:
    return f"/api/dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}/tasks/{task_id}/stored/{position}"


def bearer(client: Any, user: str = READER, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, user, **kwargs)}"}


def assert_says_nothing(response: Any, run: StoredRun) -> None:
    assert PNG_MAGIC not in response.content
    for file in run.stored["files"]:
        assert file["uri"] not in response.text
        assert Path(file["uri"].removeprefix("file://")).name not in response.text
    assert run.api_key not in response.text


def test_stored_files_are_served_byte_exact(view_client: Any, local_run: StoredRun) -> None:
    headers = bearer(view_client)
    for position, file in enumerate(local_run.stored["files"]):
        response = view_client.get(stored_path(local_run, position), headers=headers)
        assert response.status_code == 200, response.text
        on_disk = Path(file["uri"].removeprefix("file://")).read_bytes()
        assert response.content == on_disk
        assert hashlib.sha256(response.content).hexdigest() == file["sha256"]
        assert int(response.headers["content-length"]) == file["size"] == len(on_disk)
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    # The UI's session cookie is accepted like a Bearer header (it is what the page's <img> sends).
    view_client.cookies.set("_token", token_for(view_client, READER))
    try:
        assert view_client.get(stored_path(local_run, 1)).content[:8] == PNG_MAGIC
    finally:
        view_client.cookies.clear()


def test_refused_callers_get_no_bytes(view_client: Any, local_run: StoredRun) -> None:
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    forged = JWTGenerator(secret_key="not-the-deployment-secret-" + "x" * 40, valid_for=600, audience="apache-airflow")
    cases = [
        ({}, 401),  # no token
        (bearer(view_client, expires_in=-3600), 401),  # expired
        ({"Authorization": f"Bearer {forged.generate(extras={'sub': READER, 'role': 'viewer'})}"}, 403),
        ({"Authorization": "Bearer not-a-jwt"}, 403),
        (bearer(view_client, OUTSIDER), 403),  # Airflow refuses this user the DAG
    ]
    for headers, expected in cases:
        response = view_client.get(stored_path(local_run, 0), headers=headers)
        assert response.status_code == expected, (headers, response.text)
        assert_says_nothing(response, local_run)


@pytest.mark.parametrize(
    ("position", "task_id", "query"),
    [
        pytest.param(2, "store", "", id="past-the-last-file"),
        pytest.param(10**6, "store", "", id="far-out"),
        pytest.param("-1", "store", "", id="negative"),
        pytest.param("..%2F..%2Fetc%2Fpasswd", "store", "", id="a-path"),
        # Not ASCII digits: int() refuses "²" (was a 500) and reads Arabic-Indic one (U+0661) as 1 (was file 1).
        pytest.param(quote("\u00b2"), "store", "", id="superscript-two"),
        pytest.param(quote("\u0661"), "store", "", id="arabic-indic-one"),
        pytest.param("1" * 5000, "store", "", id="more-digits-than-int-takes"),  # was a 500
        pytest.param("0" * 9 + "1", "store", "", id="ten-digits"),
        pytest.param("0", "store", "?map_index=3", id="no-such-mapped-instance"),
        pytest.param("0", "generate", "", id="a-task-that-stored-nothing"),
        pytest.param("0", "no_such_task", "", id="no-such-task"),
    ],
)
def test_anything_not_recorded_is_a_bare_404(
    view_client: Any, local_run: StoredRun, position: Any, task_id: str, query: str
) -> None:
    response = view_client.get(stored_path(local_run, position, task_id) + query, headers=bearer(view_client))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_deleted_or_replaced_object_is_a_bare_404(view_client: Any, local_run: StoredRun) -> None:
    first, second = (Path(f["uri"].removeprefix("file://")) for f in local_run.stored["files"])
    kept, original = first.with_suffix(".kept"), second.read_bytes()
    first.rename(kept)  # put back afterwards: the run is shared by this module's tests
    try:
        response = view_client.get(stored_path(local_run, 0), headers=bearer(view_client))
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
        # Bytes that are not an image (a record aimed at a config file, say) are not served either.
        second.write_text("[api_auth]\njwt_secret = do-not-show\n")
        response = view_client.get(stored_path(local_run, 1), headers=bearer(view_client))
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
        assert "do-not-show" not in response.text
    finally:
        kept.rename(first)
        second.write_bytes(original)


def test_s3_objects_are_read_with_the_transfers_connection(
    view_client: Any, run_stored_dag: Any, s3_bucket: str, s3_client: Any
) -> None:
    run = run_stored_dag(f"s3://{s3_bucket}/gallery", AWS_CONN_ID)
    headers = bearer(view_client)
    for position, file in enumerate(run.stored["files"]):
        assert file["uri"].startswith(f"s3://{s3_bucket}/gallery/")
        key = file["uri"].removeprefix(f"s3://{s3_bucket}/")
        in_bucket = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        response = view_client.get(stored_path(run, position), headers=headers)
        assert response.status_code == 200, response.text
        assert response.content == in_bucket
        assert hashlib.sha256(response.content).hexdigest() == file["sha256"]
        assert response.headers["content-type"] == "image/png"
    s3_client.delete_object(Bucket=s3_bucket, Key=run.stored["files"][0]["uri"].removeprefix(f"s3://{s3_bucket}/"))
    response = view_client.get(stored_path(run, 0), headers=headers)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


def _open_descriptors_of(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` (Linux's /proc)."""
    fd_dir = Path("/proc/self/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += Path(os.readlink(fd)) == path
        except OSError:  # closed while listing
            continue
    return count


def _get_raw(view_client: Any, run: StoredRun, *, gone_after_chunks: int | None) -> tuple[list[dict[str, Any]], Any]:
    """
    GET the first stored file over raw ASGI (as uvicorn would, ASGI 2.4), reading ``gone_after_chunks``.

    The TestClient always reads a body whole; here ``send`` raises OSError once the client has read
    that many body chunks, which is how the server reports a browser that went away mid-download.
    Returns what was sent and the exception the app ended with (kept: it holds the app's frames, so
    nothing is left for the garbage collector to close early).
    """
    import anyio

    path = f"/api/dags/{run.dag_id}/runs/{run.run_id}/tasks/store/stored/0"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": stored_path(run, 0).encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token_for(view_client, READER)}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []
    requested = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not requested.is_set():
            requested.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()  # the client says nothing more: its going away shows up in send()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        bodies = sum(m["type"] == "http.response.body" for m in sent)
        if message["type"] == "http.response.body" and gone_after_chunks is not None and bodies >= gone_after_chunks:
            raise OSError("client went away")
        sent.append(message)

    async def call() -> Any:
        try:
            await view_client.app(scope, receive, send)
        except Exception as err:  # what the app ended with, kept for its frames
            return err
        return None

    return sent, anyio.run(call)


@pytest.mark.parametrize("gone_after_chunks", [0, 1, None], ids=["before-any-byte", "after-one-chunk", "read-whole"])
def test_the_stored_object_is_closed_however_the_response_ends(
    view_client: Any, local_run: StoredRun, gone_after_chunks: int | None
) -> None:
    file = Path(local_run.stored["files"][0]["uri"].removeprefix("file://"))
    assert file.stat().st_size > 512, "the file must span more than one chunk (the sniffed head, then the rest)"
    assert _open_descriptors_of(file) == 0
    sent, ended_with = _get_raw(view_client, local_run, gone_after_chunks=gone_after_chunks)
    assert (sent[0]["type"], sent[0]["status"]) == ("http.response.start", 200), sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if gone_after_chunks is None:
        assert ended_with is None
        assert body == file.read_bytes()
    else:
        assert ended_with is not None  # the disconnect, still referenced: nothing was collected yet
        assert len(body) < file.stat().st_size
    assert _open_descriptors_of(file) == 0, "the stored object is still open after the response ended"


# -- what a record may point at ---------------------------------------------------------------------


@contextmanager
def edited_record(run: StoredRun, uris: list[str]) -> Iterator[None]:
    """
    The run's ``pixazo_stored`` rewritten to list ``uris``, as Airflow's REST API rewrites an XCom.

    ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/store/xcomEntries/pixazo_stored`` calls
    ``XComModel.set(..., serialize=False)`` for any user with XCom edit rights on the DAG; so does
    this. The record is put back afterwards (the run is shared by this module's tests).
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    def put(value: Any) -> None:
        with create_session() as session:
            XComModel.set(
                key=STORED_XCOM_KEY,
                value=value,
                dag_id=run.dag_id,
                task_id="store",
                run_id=run.run_id,
                map_index=-1,
                serialize=False,
                session=session,
            )

    files = [{**run.stored["files"][0], "uri": uri} for uri in uris]
    put({**run.stored, "files": files})
    try:
        yield
    finally:
        put(run.stored)


@contextmanager
def rendered_as(run: StoredRun, **fields: Any) -> Iterator[None]:
    """The store task's rendered fields with ``fields`` changed (what another transfer would have rendered)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    where = (RTIF.dag_id == run.dag_id, RTIF.run_id == run.run_id, RTIF.task_id == "store", RTIF.map_index == -1)
    with create_session() as session:
        original = session.scalar(select(RTIF.rendered_fields).where(*where))
        assert isinstance(original, dict), original
        session.execute(update(RTIF).where(*where).values(rendered_fields={**original, **fields}))
    try:
        yield
    finally:
        with create_session() as session:
            session.execute(update(RTIF).where(*where).values(rendered_fields=original))


def destination_of(run: StoredRun) -> str:
    """The transfer's destination, as its records' URIs start (``<destination>/<request id>/<n>.png``)."""
    suffix = f"/{run.stored['request_id']}/0.png"
    first = run.stored["files"][0]["uri"]
    assert first.endswith(suffix), first
    return first.removesuffix(suffix)


def test_a_record_rewritten_to_point_outside_the_destination_is_not_read(
    view_client: Any, local_run: StoredRun, tmp_path: Path
) -> None:
    root = destination_of(local_run)
    root_dir = Path(root.removeprefix("file://"))
    image = Path(local_run.stored["files"][0]["uri"].removeprefix("file://")).read_bytes()
    request_dir = local_run.stored["request_id"]
    # Real images where a rewritten record could aim: anywhere on the api-server's disk, and a
    # sibling whose name merely starts like the destination's.
    bait = image + b"BAIT-" + tmp_path.name.encode()
    (tmp_path / "outside.png").write_bytes(bait)
    sibling = root_dir.with_name(root_dir.name + "-evil")
    sibling.mkdir(exist_ok=True)
    (sibling / "0.png").write_bytes(bait)
    aimed = {
        "outside": (tmp_path / "outside.png").as_uri(),
        "sibling-prefix": f"{root}-evil/0.png",
        "dot-dot": f"{root}/{request_dir}/../../{sibling.name}/0.png",
        "dot-dot-at-the-root": f"{root}/../{sibling.name}/0.png",
        "dot": f"{root}/./{request_dir}/0.png",
        "empty-segment": f"{root}//{request_dir}/0.png",
        "percent-encoded-dot-dot": f"{root}/%2e%2e/{sibling.name}/0.png",
        "percent-encoded-slash": f"{root}/..%2F{sibling.name}%2F0.png",
        "backslash": f"{root}/..\\{sibling.name}\\0.png",
        "query": f"{root}/{request_dir}/0.png?x=1",
        "the-destination-itself": f"{root}/",
        "another-scheme": f"s3://{root_dir.name}/{request_dir}/0.png",
        "userinfo": root.replace("file://", "file://aws_test@", 1) + f"/{request_dir}/0.png",
        "upper-case-scheme": root.replace("file://", "FILE://", 1) + f"/{request_dir}/0.png",
    }
    headers = bearer(view_client)
    for name, uri in aimed.items():
        with edited_record(local_run, [uri]):
            response = view_client.get(stored_path(local_run, 0), headers=headers)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), name
        assert b"BAIT-" not in response.content, name
    # The legitimate record, put back, is served again.
    response = view_client.get(stored_path(local_run, 0), headers=headers)
    assert (response.status_code, response.content) == (200, image)


def test_a_local_destination_given_as_a_bare_path_is_served(
    view_client: Any, run_stored_dag: Any, tmp_path: Path
) -> None:
    # The transfer turns an absolute path into file://; the route resolves it the same way.
    run = run_stored_dag(f"{tmp_path}/plain/../images/")
    assert destination_of(run) == (tmp_path / "images").as_uri()
    response = view_client.get(stored_path(run, 1), headers=bearer(view_client))
    assert response.status_code == 200, response.text
    assert response.content == Path(run.stored["files"][1]["uri"].removeprefix("file://")).read_bytes()
    # A destination the worker resolved against its own working directory is not guessed at here.
    with rendered_as(run, destination="plain/images"):
        response = view_client.get(stored_path(run, 1), headers=bearer(view_client))
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("destination", "dest_conn_id", "expected"),
    [
        pytest.param("s3://b/images/", "view_dest", ("s3://b/images", "view_dest"), id="uri-trailing-slash"),
        pytest.param("s3://view_dest@b/images", "", ("s3://b/images", "view_dest"), id="connection-in-the-uri"),
        pytest.param(
            {"path": "s3://view_dest@b/images", "conn_id": "view_dest", "kwargs": {}},
            None,
            ("s3://b/images", "view_dest"),
            id="a-serialised-ObjectStoragePath",
        ),
        pytest.param(
            "/data/x/../images", "", ("file:///data/images", None), id="absolute-path-as-the-worker-resolves-it"
        ),
        pytest.param("s3://b/images", "", None, id="remote-without-connection"),
        pytest.param("s3://b/images", "None", None, id="remote-with-None-rendered"),
        pytest.param("s3://b/images", "no_such_connection", None, id="connection-gone"),
        pytest.param("images", "", None, id="relative-to-the-worker"),
        pytest.param("~/images", "", None, id="the-workers-home"),
        pytest.param("//data/images", "", None, id="double-slash-resolves-against-the-cwd"),
        pytest.param("file://localhost/data", "", None, id="file-host-resolves-against-the-cwd"),
        pytest.param("file://./data", "", None, id="file-dot"),
        pytest.param("file:////data", "", None, id="file-four-slashes"),
        pytest.param("file://~/images", "", None, id="file-home"),
        pytest.param("file:///data/images/", "", ("file:///data/images", None), id="file-absolute"),
        pytest.param(
            "Truncated. You can change this behaviour in [core]max_templated_field_length. 's3://b/im",
            "view_dest",
            None,
            id="truncated-rendering",
        ),
        pytest.param(["s3://b/images"], "view_dest", None, id="not-a-destination"),
    ],
)
def test_the_destination_is_resolved_as_the_transfer_resolved_it(
    destination: Any, dest_conn_id: Any, expected: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VIEW_DEST", '{"conn_type": "aws"}')
    assert destination_root(destination, dest_conn_id) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/images/r/0.png", "r/0.png"),
        ("s3://b/images-evil/0.png", None),
        ("s3://b/images", None),
        ("s3://b/images/", None),
        ("s3://c/images/r/0.png", None),
        ("gs://b/images/r/0.png", None),
        ("s3://b/images/r/../../x.png", None),
        ("s3://b/images/r/%2E%2E/x.png", None),
        ("s3://b/images/r/0.png\n", None),
        ("s3://b/images/r/0.png::s3://c/x.png", None),
        ("s3://b/images/2026-01-01T00:00:00+00:00/0.png", "2026-01-01T00:00:00+00:00/0.png"),
    ],
)
def test_under_the_destination_means_inside_its_prefix_by_plain_segments(uri: str, expected: str | None) -> None:
    assert relative_under(uri, "s3://b/images") == expected
    assert relative_under(uri, "s3://b/images/") == expected


@pytest.fixture
def ambient_aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Default AWS credentials on the api-server (as an instance role would give), aimed at moto.

    So that, were the route to read without a connection, it would succeed on loopback rather than
    try the real AWS: the tests prove it does not.
    """
    from airflow.sdk.io import store

    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    store._STORE_CACHE.pop("s3", None)
    try:
        yield
    finally:
        store._STORE_CACHE.pop("s3", None)


def test_s3_records_are_read_only_under_the_destination_and_with_its_connection(
    view_client: Any, run_stored_dag: Any, s3_bucket: str, s3_client: Any, ambient_aws: None
) -> None:
    run = run_stored_dag(f"s3://{s3_bucket}/gallery", AWS_CONN_ID)
    headers = bearer(view_client)
    key = run.stored["files"][0]["uri"].removeprefix(f"s3://{s3_bucket}/")
    image = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    bait = image + b"BAIT-S3"
    other_bucket = f"{s3_bucket}-other"
    s3_client.create_bucket(Bucket=other_bucket)
    s3_client.put_object(Bucket=other_bucket, Key="gallery/0.png", Body=bait)
    s3_client.put_object(Bucket=s3_bucket, Key="gallery-evil/0.png", Body=bait)
    s3_client.put_object(Bucket=s3_bucket, Key="elsewhere/0.png", Body=bait)
    for uri in (
        f"s3://{other_bucket}/gallery/0.png",  # another bucket, with the transfer's connection
        f"s3://{s3_bucket}/gallery-evil/0.png",  # a sibling prefix
        f"s3://{s3_bucket}/elsewhere/0.png",
        f"s3://{s3_bucket}/gallery/../elsewhere/0.png",
        f"s3://{AWS_CONN_ID}@{other_bucket}/gallery/0.png",
        f"s3a://{s3_bucket}/gallery/{key.rsplit('/', 2)[-2]}/0.png",
    ):
        with edited_record(run, [uri]):
            response = view_client.get(stored_path(run, 0), headers=headers)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), uri
        assert b"BAIT-S3" not in response.content, uri
    assert view_client.get(stored_path(run, 0), headers=headers).content == image
    # A transfer without dest_conn_id wrote with the worker's ambient identity; the api-server does
    # not read with its own (it would have worked here: see ambient_aws).
    for no_connection in ("", "None", None):
        with rendered_as(run, dest_conn_id=no_connection):
            response = view_client.get(stored_path(run, 0), headers=headers)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), no_connection


def test_a_remote_object_is_never_read_without_a_connection(
    s3_bucket: str, s3_client: Any, ambient_aws: None, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="x/0.png", Body=PNG_MAGIC + b"\0" * 64)
    for conn_id in (None, "", "None"):
        assert open_stored(StoredObject(uri=f"s3://{s3_bucket}/x/0.png", conn_id=conn_id)) is None
    opened = open_stored(StoredObject(uri=f"s3://{s3_bucket}/x/0.png", conn_id=AWS_CONN_ID))
    assert opened is not None
    assert b"".join(opened[0]) == PNG_MAGIC + b"\0" * 64


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9/secret.png",  # the api-server is no proxy
        "https://example.invalid/a.png",
        "ftp://127.0.0.1/a.png",
        "/etc/hostname",  # no scheme
    ],
)
def test_records_pointing_off_object_storage_are_not_read(uri: str) -> None:
    assert open_stored(StoredObject(uri=uri, conn_id=None)) is None


def test_a_named_connection_that_is_gone_is_never_replaced_by_default_credentials(tmp_path: Path) -> None:
    image = tmp_path / "0.png"
    image.write_bytes(PNG_MAGIC + b"\0" * 64)
    assert open_stored(StoredObject(uri=image.as_uri(), conn_id="no_such_connection")) is None
    opened = open_stored(StoredObject(uri=image.as_uri(), conn_id="None"))  # what a template renders for none
    assert opened is not None
    chunks, media_type, size = opened
    assert (b"".join(chunks), media_type, size) == (image.read_bytes(), "image/png", 72)


def _streamed(stored: StoredObject) -> tuple[str, int | None, int]:
    """Stream ``stored`` as the route does: its SHA-256, announced size, and the peak memory it took."""
    tracemalloc.start()
    try:
        opened = open_stored(stored)
        assert opened is not None
        chunks, _, size = opened
        digest = hashlib.sha256()
        for chunk in chunks:
            assert len(chunk) <= CHUNK_BYTES
            digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return digest.hexdigest(), size, peak


def _big_png(mib: int) -> bytes:
    return PNG_MAGIC + b"\0" * (mib * 1024 * 1024)


def test_streaming_a_local_file_holds_one_chunk_at_a_time(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(_big_png(64))
    digest, size, peak = _streamed(StoredObject(uri=big.as_uri(), conn_id=None))
    assert size == big.stat().st_size
    assert digest == hashlib.sha256(big.read_bytes()).hexdigest()
    assert peak < 4 * CHUNK_BYTES, f"{peak} bytes held to stream 64 MiB"


def test_an_s3_object_larger_than_a_read_block_streams_whole(s3_bucket: str, s3_client: Any) -> None:
    # Memory is not measured here: the moto server runs in this process, so tracemalloc would count
    # its copy of the object too. The read block (READ_BLOCK_BYTES) bounds what s3fs fetches per GET.
    body = _big_png(3 * READ_BLOCK_BYTES // (1024 * 1024) + 1)
    s3_client.put_object(Bucket=s3_bucket, Key="big/0.png", Body=body)
    digest, size, _ = _streamed(StoredObject(uri=f"s3://{s3_bucket}/big/0.png", conn_id=AWS_CONN_ID))
    assert (digest, size) == (hashlib.sha256(body).hexdigest(), len(body))


def test_a_link_under_the_destination_that_leads_outside_is_not_followed(tmp_path: Path) -> None:
    destination, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    destination.mkdir()
    elsewhere.mkdir()
    (elsewhere / "secret.png").write_bytes(_big_png(1))
    (destination / "inside.png").write_bytes(_big_png(1))
    (destination / "link.png").symlink_to(elsewhere / "secret.png")
    root = destination.as_uri()

    assert open_stored(StoredObject(uri=(destination / "link.png").as_uri(), conn_id=None, root=root)) is None
    opened = open_stored(StoredObject(uri=(destination / "inside.png").as_uri(), conn_id=None, root=root))
    assert opened is not None
    opened[0].close()  # type: ignore[attr-defined]
