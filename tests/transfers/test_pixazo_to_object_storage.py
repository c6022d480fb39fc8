"""PixazoToObjectStorageOperator: local disk and real (moto) S3, over real HTTP and respx."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk import Asset, ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors
from PIL import Image

from airflow_provider_pixazo.exceptions import (
    PixazoDownloadError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.transfers import _downloads, _staging
from airflow_provider_pixazo.transfers._staging import CHUNK_SIZE
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import (
    PixazoDestinationConflictError,
    PixazoRequestNotCompletedError,
    PixazoToObjectStorageOperator,
)
from tests.transfers.conftest import AWS_CONN_ID, MediaServer

API_KEY = "sk-test-SECRET-123"
KEY_HEADER = "ocp-apim-subscription-key"
GATEWAY = "https://gateway.test"
CDN = "https://cdn.test"
RID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"
STATUS_URL = f"{GATEWAY}/v2/requests/status/{RID}"


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 90, 200)).save(out, format="JPEG")
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_op(**kwargs: Any) -> PixazoToObjectStorageOperator:
    kwargs.setdefault("task_id", "store")
    kwargs.setdefault("request_id", RID)
    return PixazoToObjectStorageOperator(**kwargs)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def status_body(
    status: str = "COMPLETED",
    urls: list[str] | None = None,
    media_type: str | None = "image/png",
    error: str | None = None,
) -> dict[str, Any]:
    done = status == "COMPLETED"
    return {
        "request_id": RID,
        "status": status,
        "model_id": "gpt-image-2",
        "error": error,
        "output": {"media_url": urls or [], "media_type": media_type} if done else None,
        "created_at": "2026-03-31T10:00:00.000Z",
        "updated_at": "2026-03-31T10:00:15.000Z",
        "completed_at": "2026-03-31T10:00:15.000Z" if status in ("COMPLETED", "FAILED", "ERROR") else None,
    }


@pytest.fixture
def gateway(pixazo_conn: str) -> Iterator[respx.MockRouter]:
    """respx in front of https://gateway.test and https://cdn.test; any other host is an error."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


def serve(router: respx.MockRouter, media: list[bytes], media_type: str | None = "image/png") -> list[str]:
    urls = [f"{CDN}/v1/{RID}/output-{i}.png?X-Amz-Signature=secret" for i in range(len(media))]
    router.get(STATUS_URL).respond(200, json=status_body(urls=urls, media_type=media_type))
    for url, body in zip(urls, media, strict=True):
        router.get(url).respond(200, content=body, headers={"Content-Type": media_type or "image/png"})
    return urls


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[PixazoEmulator]:
    with PixazoEmulator(api_key=API_KEY) as emu:
        monkeypatch.setenv(
            "AIRFLOW_CONN_PIXAZO_DEFAULT",
            json.dumps({"conn_type": "pixazo", "host": emu.url, "password": API_KEY}),
        )
        yield emu


def submit(n: int = 2, prompt: str = "a red fox in the snow") -> str:
    hook = PixazoHook()
    try:
        return hook.generate_image(prompt, n=n, size="1024x1024", quality="low").request_id
    finally:
        hook.close()


# -- real HTTP (emulator) to local disk -----------------------------------------------------------


def test_file_destination_writes_valid_pngs_and_sidecar(emulator: PixazoEmulator, tmp_path: Path) -> None:
    request_id = submit(n=2)
    asset = Asset("pixazo://images/foxes")
    events = OutletEventAccessors()
    op = make_op(
        request_id=request_id,
        destination=f"file://{tmp_path}",
        provenance={"prompt": "a red fox in the snow", "n": 2},
        outlets=[asset],
    )

    uris = op.execute({"outlet_events": events})

    assert uris == [f"file://{tmp_path}/{request_id}/0.png", f"file://{tmp_path}/{request_id}/1.png"]
    assert all_files(tmp_path) == [f"{request_id}/0.png", f"{request_id}/1.png", f"{request_id}/provenance.json"]
    sidecar = json.loads((tmp_path / request_id / "provenance.json").read_text())
    for index, record in enumerate(sidecar["files"]):
        data = (tmp_path / request_id / f"{index}.png").read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            assert image.format == "PNG"
        assert record["uri"] == uris[index]
        assert record["sha256"] == sha256(data)
        assert record["size"] == len(data)
        assert record["source_url_host"] == "127.0.0.1"
    assert sidecar["request_id"] == request_id
    assert sidecar["model_id"] == "gpt-image-2"
    assert sidecar["status"] == "COMPLETED"
    assert sidecar["completed_at"]
    assert sidecar["media_type"] == "image/png"
    assert sidecar["provenance"] == {"prompt": "a red fox in the snow", "n": 2}
    assert sidecar["written_at"]
    # The asset event carries what was written.
    assert events[asset].extra == {
        "request_id": request_id,
        "uris": uris,
        "model_id": "gpt-image-2",
        "provenance_uri": f"file://{tmp_path}/{request_id}/provenance.json",
    }
    # The key went to the status call only, never to a media download.
    media_calls = [c for c in emulator.calls if c.kind == "media"]
    assert len(media_calls) == 2
    assert not any(c.sent_key for c in media_calls)
    assert all(c.sent_key for c in emulator.calls if c.kind == "status")


def test_rerun_is_idempotent(emulator: PixazoEmulator, tmp_path: Path) -> None:
    request_id = submit(n=2)
    first = make_op(request_id=request_id, destination=str(tmp_path)).execute({})
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in tmp_path.rglob("*") if p.is_file()}

    second = make_op(request_id=request_id, destination=str(tmp_path)).execute({})

    assert second == first
    after = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # not one file rewritten, sidecar included
    assert len(before) == 3


def test_bare_local_path_becomes_absolute_file_uri(
    emulator: PixazoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = submit(n=1)
    monkeypatch.chdir(tmp_path)
    uris = make_op(request_id=request_id, destination="out/images", write_provenance=False).execute({})
    assert uris == [f"file://{tmp_path}/out/images/{request_id}/0.png"]
    assert all_files(tmp_path) == [f"out/images/{request_id}/0.png"]


def test_custom_path_template_and_sidecar_beside_images(emulator: PixazoEmulator, tmp_path: Path) -> None:
    request_id = submit(n=2)
    uris = make_op(
        request_id=request_id, destination=str(tmp_path), path_template="gallery/{request_id}-{index:03d}.{ext}"
    ).execute({})
    assert uris == [
        f"file://{tmp_path}/gallery/{request_id}-000.png",
        f"file://{tmp_path}/gallery/{request_id}-001.png",
    ]
    assert (tmp_path / "gallery" / f"{request_id}.provenance.json").is_file()


# -- real S3 API (moto server) --------------------------------------------------------------------


def test_s3_destination_through_connection(
    emulator: PixazoEmulator, s3_bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = submit(n=2)
    op = make_op(
        request_id=request_id,
        destination=f"s3://{s3_bucket}/generated",
        dest_conn_id=AWS_CONN_ID,
        provenance={"prompt": "a red fox in the snow"},
    )

    uris = op.execute({})

    assert uris == [f"s3://{s3_bucket}/generated/{request_id}/{i}.png" for i in range(2)]
    sidecar = json.loads(
        s3_client.get_object(Bucket=s3_bucket, Key=f"generated/{request_id}/provenance.json")["Body"].read()
    )
    for index in range(2):
        obj = s3_client.get_object(Bucket=s3_bucket, Key=f"generated/{request_id}/{index}.png")
        data = obj["Body"].read()
        assert obj["ContentType"] == "image/png"
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        assert sidecar["files"][index]["sha256"] == sha256(data)
        assert sidecar["files"][index]["uri"] == uris[index]
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert len(listed) == 3

    # Second run: identical objects, so not a single upload.
    uploads: list[str] = []
    fs = ObjectStoragePath(f"s3://{s3_bucket}/", conn_id=AWS_CONN_ID).fs
    real_put_file = fs.put_file

    def spy(lpath: str, rpath: str, **kwargs: Any) -> Any:
        uploads.append(rpath)
        return real_put_file(lpath, rpath, **kwargs)

    monkeypatch.setattr(fs, "put_file", spy)
    assert (
        make_op(
            request_id=request_id,
            destination=f"s3://{s3_bucket}/generated",
            dest_conn_id=AWS_CONN_ID,
            provenance={"prompt": "a red fox in the snow"},
        ).execute({})
        == uris
    )
    assert uploads == []


def test_s3_conflict_then_overwrite(emulator: PixazoEmulator, s3_bucket: str, s3_client: Any) -> None:
    request_id = submit(n=1)
    key = f"{request_id}/0.png"
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"an older, different image")

    with pytest.raises(PixazoDestinationConflictError, match=f"s3://{s3_bucket}/{key}"):
        make_op(request_id=request_id, destination=f"s3://{s3_bucket}", dest_conn_id=AWS_CONN_ID).execute({})
    assert s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"an older, different image"

    make_op(request_id=request_id, destination=f"s3://{s3_bucket}", dest_conn_id=AWS_CONN_ID, overwrite=True).execute(
        {}
    )
    assert s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read().startswith(b"\x89PNG\r\n\x1a\n")


# -- overwrite rules (local) ----------------------------------------------------------------------


def test_different_content_fails_without_overwrite_and_is_replaced_with_it(
    gateway: respx.MockRouter, tmp_path: Path
) -> None:
    new = png_bytes((1, 2, 3))
    serve(gateway, [new])
    target = tmp_path / RID / "0.png"
    target.parent.mkdir()
    target.write_bytes(png_bytes((9, 9, 9)))
    old = target.read_bytes()

    with pytest.raises(PixazoDestinationConflictError) as caught:
        make_op(destination=str(tmp_path)).execute({})
    assert str(target) in str(caught.value)
    assert "overwrite=True" in str(caught.value)
    assert target.read_bytes() == old
    assert all_files(tmp_path) == [f"{RID}/0.png"]  # no temp file, no sidecar

    uris = make_op(destination=str(tmp_path), overwrite=True).execute({})
    assert uris == [f"file://{target}"]
    assert target.read_bytes() == new


# -- whole or nothing ----------------------------------------------------------------------------


def test_short_body_over_real_http_leaves_nothing(media_server: MediaServer, tmp_path: Path) -> None:
    good, big = png_bytes(), png_bytes((5, 5, 5), size=(600, 600)) + os.urandom(300_000)
    media_server.completed(RID, [good])
    # Image 1 announces its full length but the server hangs up half way.
    path = f"/media/{RID}/1.png?sig=secret-signature"
    media_server.routes[path] = type(media_server.routes[f"/media/{RID}/0.png"])(
        big, headers={"Content-Type": "image/png"}, send_bytes=len(big) // 2
    )
    urls = [f"{media_server.url}/media/{RID}/0.png?sig=secret-signature", f"{media_server.url}{path}"]
    media_server.status(RID, "COMPLETED", urls=urls, media_type="image/png")

    with pytest.raises(PixazoDownloadError, match="nothing was kept"):
        make_op(destination=str(tmp_path), max_concurrency=1).execute({})

    files = all_files(tmp_path)
    assert f"{RID}/1.png" not in files
    assert not [f for f in files if f.endswith(".part")]
    assert f"{RID}/provenance.json" not in files


def test_stream_error_midway_leaves_nothing(gateway: respx.MockRouter, tmp_path: Path) -> None:
    data = png_bytes() + b"\0" * (3 * CHUNK_SIZE)

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield data[:CHUNK_SIZE]
            yield data[CHUNK_SIZE : 2 * CHUNK_SIZE]
            raise httpx.ReadError("connection reset by peer")

    url = f"{CDN}/v1/{RID}/output.png"
    gateway.get(STATUS_URL).respond(200, json=status_body(urls=[url]))
    gateway.get(url).mock(return_value=httpx.Response(200, stream=Broken(), headers={"Content-Length": str(len(data))}))

    with pytest.raises(PixazoDownloadError, match="ReadError") as caught:
        make_op(destination=str(tmp_path)).execute({})
    assert isinstance(caught.value.__cause__, httpx.ReadError)
    assert all_files(tmp_path) == []


def test_content_length_mismatch_is_caught_by_the_operator(gateway: respx.MockRouter, tmp_path: Path) -> None:
    data = png_bytes()
    url = f"{CDN}/v1/{RID}/output.png"
    gateway.get(STATUS_URL).respond(200, json=status_body(urls=[url]))
    # respx, unlike a socket, does not police Content-Length: the operator must.
    gateway.get(url).mock(
        return_value=httpx.Response(200, stream=httpx.ByteStream(data), headers={"Content-Length": str(len(data) + 10)})
    )
    with pytest.raises(PixazoDownloadError, match=rf"{len(data)} of {len(data) + 10} bytes"):
        make_op(destination=str(tmp_path)).execute({})
    assert all_files(tmp_path) == []


@pytest.mark.parametrize(
    ("announced", "body", "message"),
    [
        ("image/png", jpeg_bytes(), "announced image/png but the bytes are image/jpeg"),
        ("image/webp", png_bytes(), "announced image/webp but the bytes are image/png"),
        ("application/octet-stream", b"<html>Access denied</html>", "not a PNG, JPEG or WebP"),
        ("image/png", b"", "not a PNG, JPEG or WebP"),
    ],
)
def test_magic_bytes_must_match(
    gateway: respx.MockRouter, tmp_path: Path, announced: str, body: bytes, message: str
) -> None:
    serve(gateway, [body], media_type=announced)
    with pytest.raises(PixazoDownloadError, match=message):
        make_op(destination=str(tmp_path)).execute({})
    assert all_files(tmp_path) == []


def test_generic_media_type_takes_extension_from_bytes(gateway: respx.MockRouter, tmp_path: Path) -> None:
    data = jpeg_bytes()
    serve(gateway, [data], media_type="application/octet-stream")
    uris = make_op(destination=str(tmp_path)).execute({})
    assert uris == [f"file://{tmp_path}/{RID}/0.jpg"]
    sidecar = json.loads((tmp_path / RID / "provenance.json").read_text())
    assert sidecar["files"][0]["media_type"] == "image/jpeg"
    assert (tmp_path / RID / "0.jpg").read_bytes() == data


# -- security -------------------------------------------------------------------------------------


def test_media_requests_carry_no_api_key_and_sidecar_drops_the_signature(
    gateway: respx.MockRouter, tmp_path: Path
) -> None:
    urls = serve(gateway, [png_bytes(), png_bytes((0, 0, 0))])
    make_op(destination=str(tmp_path)).execute({})

    sent = [call.request for call in gateway.calls]
    status_calls = [r for r in sent if r.url.host == "gateway.test"]
    media_calls = [r for r in sent if r.url.host == "cdn.test"]
    assert [r.headers.get(KEY_HEADER) for r in status_calls] == [API_KEY]
    assert len(media_calls) == 2
    assert all(KEY_HEADER not in r.headers for r in media_calls)
    text = (tmp_path / RID / "provenance.json").read_text()
    assert "secret" not in text  # neither the API key nor the URL's signature
    files = json.loads(text)["files"]
    assert [f["source_url"] for f in files] == [u.split("?")[0] for u in urls]
    assert {f["source_url_host"] for f in files} == {"cdn.test"}


def test_cross_origin_http_media_url_is_refused_before_any_download(gateway: respx.MockRouter, tmp_path: Path) -> None:
    good = f"{CDN}/v1/{RID}/output-0.png"
    evil = f"http://evil.test/{RID}/output-1.png"
    gateway.get(STATUS_URL).respond(200, json=status_body(urls=[good, evil]))
    good_route = gateway.get(good).respond(200, content=png_bytes())
    evil_route = gateway.get(evil).respond(200, content=png_bytes())

    with pytest.raises(PixazoValidationError, match="media_url"):
        make_op(destination=str(tmp_path)).execute({})
    assert not evil_route.called
    assert not good_route.called  # refused up front: nothing half-copied
    assert all_files(tmp_path) == []


# -- request status -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["QUEUED", "PROCESSING"])
def test_unfinished_request_fails_clearly(gateway: respx.MockRouter, tmp_path: Path, status: str) -> None:
    gateway.get(STATUS_URL).respond(200, json=status_body(status))
    with pytest.raises(PixazoRequestNotCompletedError) as caught:
        make_op(destination=str(tmp_path)).execute({})
    assert status in str(caught.value)
    assert RID in str(caught.value)
    assert caught.value.status == status
    assert all_files(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "error_type"), [("FAILED", PixazoRequestFailedError), ("ERROR", PixazoRequestErroredError)]
)
def test_failed_request_is_terminal(
    gateway: respx.MockRouter, tmp_path: Path, status: str, error_type: type[Exception]
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    gateway.get(STATUS_URL).respond(200, json=status_body(status, error="content policy violation"))
    with pytest.raises(error_type, match="content policy violation") as caught:
        make_op(destination=str(tmp_path)).execute({})
    assert isinstance(caught.value, AirflowFailException)
    assert RID in str(caught.value)
    assert all_files(tmp_path) == []


# -- validation before any HTTP -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"request_id": "../../admin"}, "request_id"),
        ({"path_template": "../{request_id}/{index}.{ext}"}, "path_template"),
        ({"path_template": "/etc/{index}.{ext}"}, "path_template"),
        ({"path_template": "{request_id}//{index}.{ext}"}, "path_template"),
        ({"path_template": "{request_id}/{index}.{ext}/"}, "path_template"),
        ({"path_template": "s3://other/{index}.{ext}"}, "path_template"),
        ({"path_template": "{prompt}/{index}.{ext}"}, "path_template"),
        ({"path_template": "{request_id.__class__}/{index}.{ext}"}, "path_template"),
        ({"path_template": "{index!r}.{ext}"}, "path_template"),
        ({"path_template": "{request_id:d}/{index}.{ext}"}, "path_template"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"provenance": ["not", "a", "dict"]}, "provenance"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], parameter: str, tmp_path: Path) -> None:
    with pytest.raises(PixazoValidationError) as caught:
        make_op(destination=str(tmp_path), **kwargs)
    assert caught.value.parameter == parameter


@pytest.mark.parametrize(
    ("attribute", "value", "parameter"),
    [
        ("request_id", "abc/../../x", "request_id"),
        ("path_template", "{request_id}/../../{index}.{ext}", "path_template"),
        ("destination", "file:///tmp/../etc", "destination"),
        ("destination", "", "destination"),
        ("destination", "nosuchscheme://bucket/x", "destination"),
        ("destination", 42, "destination"),
        ("provenance", {"when": object()}, "provenance"),
    ],
)
def test_rendered_values_are_checked_before_any_http(
    gateway: respx.MockRouter, tmp_path: Path, attribute: str, value: Any, parameter: str
) -> None:
    op = make_op(destination=str(tmp_path))
    setattr(op, attribute, value)  # as if a template had rendered it
    with pytest.raises(PixazoValidationError) as caught:
        op.execute({})
    assert caught.value.parameter == parameter
    assert gateway.calls.call_count == 0


def test_paths_without_index_cannot_collide(gateway: respx.MockRouter, tmp_path: Path) -> None:
    serve(gateway, [png_bytes(), png_bytes()])
    with pytest.raises(PixazoValidationError, match="add \\{index\\}"):
        make_op(destination=str(tmp_path), path_template="{request_id}.{ext}").execute({})
    assert [c.request.url.host for c in gateway.calls] == ["gateway.test"]  # status only, no download


# -- templating, concurrency, assets --------------------------------------------------------------


def test_template_fields_render_from_context(tmp_path: Path) -> None:
    op = make_op(
        request_id="{{ params.rid }}",
        destination="{{ params.root }}",
        path_template="{{ params.folder }}/{index}.{ext}",
        provenance={"prompt": "{{ params.prompt }}"},
        params={"rid": RID, "root": str(tmp_path), "folder": "imgs", "prompt": "a fox"},
    )
    assert {"request_id", "destination", "path_template", "provenance"} <= set(op.template_fields)
    context: Any = {"params": op.params}
    op.render_template_fields(context)
    assert (op.request_id, op.destination, op.path_template) == (RID, str(tmp_path), "imgs/{index}.{ext}")
    assert op.provenance == {"prompt": "a fox"}


def test_downloads_run_concurrently_but_bounded(
    gateway: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(gateway, [png_bytes((i, i, i)) for i in range(6)])
    lock = threading.Lock()
    active, peak = 0, 0
    # The first two downloads must be in flight together, or this barrier times out.
    both_started = threading.Barrier(2, timeout=10)
    real = PixazoHook.stream_media
    seen = 0

    from contextlib import contextmanager

    @contextmanager
    def counting(self: PixazoHook, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        nonlocal active, peak, seen
        with lock:
            active += 1
            seen += 1
            peak = max(peak, active)
            first_two = seen <= 2
        if first_two:
            both_started.wait()
        try:
            with real(self, url, **kwargs) as response:
                yield response
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(PixazoHook, "stream_media", counting)
    uris = make_op(destination=str(tmp_path), max_concurrency=2).execute({})
    assert len(uris) == 6
    assert peak == 2


def test_no_outlets_emits_nothing(gateway: respx.MockRouter, tmp_path: Path) -> None:
    serve(gateway, [png_bytes()])
    events = OutletEventAccessors()
    make_op(destination=str(tmp_path), write_provenance=False).execute({"outlet_events": events})
    assert len(events) == 0
    assert all_files(tmp_path) == [f"{RID}/0.png"]


def test_streams_in_bounded_chunks(gateway: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_bytes() + os.urandom(5 * CHUNK_SIZE + 123)
    serve(gateway, [data])
    writes: list[int] = []
    real_write = _staging.StagedFile.write

    def spy(self: Any, chunk: bytes) -> None:
        writes.append(len(chunk))
        real_write(self, chunk)

    monkeypatch.setattr(_staging.StagedFile, "write", spy)
    make_op(destination=str(tmp_path), write_provenance=False).execute({})
    assert max(writes) <= CHUNK_SIZE
    assert sum(writes) == len(data)
    assert (tmp_path / RID / "0.png").read_bytes() == data


def test_one_failure_aborts_the_other_downloads(
    gateway: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class CapturingThreading:
        """``threading`` for the downloads module, remembering the abort event it creates."""

        def __init__(self) -> None:
            self.events: list[threading.Event] = []

        def Event(self) -> threading.Event:
            event = threading.Event()
            self.events.append(event)
            return event

        def __getattr__(self, name: str) -> Any:
            return getattr(threading, name)

    fake = CapturingThreading()
    monkeypatch.setattr(_downloads, "threading", fake)
    served_chunks = 0

    class Endless(httpx.SyncByteStream):
        """Image 1: a valid start, then more chunks only once the transfer has decided to abort."""

        def __iter__(self) -> Iterator[bytes]:
            nonlocal served_chunks
            yield png_bytes()
            assert fake.events[0].wait(timeout=10)
            for _ in range(64):
                served_chunks += 1
                yield b"\0" * CHUNK_SIZE

    bad = f"{CDN}/v1/{RID}/output-0.png"
    good = f"{CDN}/v1/{RID}/output-1.png"
    gateway.get(STATUS_URL).respond(200, json=status_body(urls=[bad, good]))
    gateway.get(bad).respond(200, content=b"<html>nope</html>")
    gateway.get(good).mock(return_value=httpx.Response(200, stream=Endless()))

    with pytest.raises(PixazoDownloadError, match="not a PNG"):
        make_op(destination=str(tmp_path)).execute({})
    assert served_chunks <= 1  # image 1 stopped at its next chunk (or before it) instead of finishing
    assert all_files(tmp_path) == []
