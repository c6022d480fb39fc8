"""The Pixazo emulator, driven over real HTTP with httpx, and its pytest plugin."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from airflow_provider_pixazo.testing.emulator import FaultConfig, PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import (
    EmulatorFactory,
    connection_env_var,
    connection_json,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "pixazo-test-key"
GPT_1_5 = "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
TEXT_TO_IMAGE = "/gpt-image-2/v1/text-to-image"
EDIT = "/gpt-image-2/v1/image-to-image-edit"
HTTPS_IMAGE = "https://example.com/input.png"
INVALID_KEY_BODY = {
    "statusCode": 401,
    "message": "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription.",
}
STATUS_FIELDS = {"request_id", "status", "model_id", "error", "output", "created_at", "updated_at", "completed_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _png_data_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def emulator() -> Iterator[PixazoEmulator]:
    with PixazoEmulator(api_key=KEY, webhook_allow_http=True) as emu:
        yield emu


@pytest.fixture
def client(emulator: PixazoEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=10) as http:
        yield http


def _submit(client: httpx.Client, path: str = TEXT_TO_IMAGE, **body: Any) -> httpx.Response:
    return client.post(path, json={"prompt": "a red fox", **body})


class _Receiver:
    """A webhook target that stores the JSON bodies it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    target = _Receiver()
    yield target
    target.server.shutdown()
    target.server.server_close()


# -- submit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "model_id"),
    [
        (
            GPT_1_5,
            {"image_size": "1536x1024", "quality": "high", "num_images": 2, "output_format": "png"},
            "gpt-image-1-5-api-923",
        ),
        (TEXT_TO_IMAGE, {"n": 3, "size": "2048x1152", "format": "webp", "output_compression": 80}, "gpt-image-2"),
        (EDIT, {"image": HTTPS_IMAGE}, "gpt-image-2"),
    ],
)
def test_submit_accepted_with_documented_shape(
    emulator: PixazoEmulator, client: httpx.Client, path: str, body: dict[str, Any], model_id: str
) -> None:
    response = _submit(client, path, **body)

    assert response.status_code == 202
    payload = response.json()
    assert set(payload) == {"request_id", "status", "polling_url"}
    assert payload["status"] == "QUEUED"
    prefix, _, suffix = payload["request_id"].partition("_")
    assert prefix == model_id
    assert uuid.UUID(suffix).version == 7
    assert payload["polling_url"] == f"{emulator.url}/v2/requests/status/{payload['request_id']}"
    job = emulator.requests[payload["request_id"]]
    assert (job.model_id, job.path, job.body["prompt"]) == (model_id, path, "a red fox")
    assert emulator.submit_count() == 1
    assert emulator.submit_count("a red fox") == 1
    assert emulator.submit_count("another prompt") == 0


def test_edit_accepts_lists_data_uris_masks_and_unknown_fields(client: httpx.Client) -> None:
    data_uri = _png_data_uri()
    response = _submit(
        client,
        EDIT,
        image=[HTTPS_IMAGE, data_uri],
        mask=data_uri,
        n=1,
        background="opaque",
        moderation="low",
        future_option={"anything": True},
    )

    assert response.status_code == 202


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        (TEXT_TO_IMAGE, {"prompt": ""}, "prompt"),
        (TEXT_TO_IMAGE, {"prompt": "   "}, "prompt"),
        (GPT_1_5, {"prompt": "x", "quality": "ultra"}, "quality"),
        (GPT_1_5, {"prompt": "x", "image_size": "640x480"}, "size"),
        (GPT_1_5, {"prompt": "x", "num_images": 11}, "num_images"),
        (GPT_1_5, {"prompt": "x", "output_format": "gif"}, "output_format"),
        (GPT_1_5, {"prompt": "x", "background": "transparent", "output_format": "jpeg"}, "transparent"),
        (TEXT_TO_IMAGE, {"prompt": "x", "n": 0}, "'n'"),
        (TEXT_TO_IMAGE, {"prompt": "x", "n": True}, "'n'"),
        (TEXT_TO_IMAGE, {"prompt": "x", "output_compression": 101}, "output_compression"),
        (TEXT_TO_IMAGE, {"prompt": "x", "background": "transparent"}, "not supported for gpt-image-2"),
        (TEXT_TO_IMAGE, {"prompt": "x", "size": "5000x100"}, "too large"),
        (TEXT_TO_IMAGE, {"prompt": "x", "moderation": "none"}, "moderation"),
        (EDIT, {"prompt": "x"}, "'image' is required"),
        (EDIT, {"prompt": "x", "image": "http://example.com/a.png"}, "https"),
        (EDIT, {"prompt": "x", "image": [HTTPS_IMAGE, "ftp://example.com/b.png"]}, "https"),
        (EDIT, {"prompt": "x", "image": HTTPS_IMAGE, "mask": "data:image/png;base64,@@@"}, "base64"),
        (TEXT_TO_IMAGE, ["not", "an", "object"], "JSON object"),
    ],
)
def test_invalid_bodies_answer_400_and_create_no_job(
    emulator: PixazoEmulator, client: httpx.Client, path: str, body: Any, fragment: str
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"
    assert fragment in response.json()["message"]
    assert emulator.requests == {}
    assert emulator.submit_count() == 0


def test_invalid_json_answers_400(client: httpx.Client) -> None:
    response = client.post(TEXT_TO_IMAGE, content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {"error": "Bad Request", "message": "Request body must be valid JSON"}


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 401, INVALID_KEY_BODY),
        ({"Ocp-Apim-Subscription-Key": "wrong"}, 401, INVALID_KEY_BODY),
        ({"Ocp-Apim-Subscription-Key": "banned"}, 403, None),
    ],
)
def test_key_checks(headers: dict[str, str], status: int, body: dict[str, Any] | None) -> None:
    with PixazoEmulator(api_key=KEY, forbidden_keys=("banned",)) as emu, httpx.Client(base_url=emu.url) as http:
        submit = http.post(TEXT_TO_IMAGE, json={"prompt": "x"}, headers=headers)
        poll = http.get("/v2/requests/status/gpt-image-2_x", headers=headers)

    assert submit.status_code == poll.status_code == status
    assert submit.json()["statusCode"] == status
    if body is not None:
        assert submit.json() == poll.json() == body
    assert emu.submit_count() == 0


def test_key_is_checked_before_the_body(client: httpx.Client) -> None:
    response = client.post(TEXT_TO_IMAGE, content=b"{broken", headers={"Ocp-Apim-Subscription-Key": "wrong"})

    assert response.status_code == 401


def test_balance_runs_out_with_402_and_rejected_bodies_are_free() -> None:
    with (
        PixazoEmulator(api_key=KEY, balance=1) as emu,
        httpx.Client(base_url=emu.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as http,
    ):
        invalid = http.post(TEXT_TO_IMAGE, json={"prompt": ""})
        accepted = http.post(TEXT_TO_IMAGE, json={"prompt": "x"})
        refused = http.post(TEXT_TO_IMAGE, json={"prompt": "x"})

    assert [invalid.status_code, accepted.status_code, refused.status_code] == [400, 202, 402]
    assert refused.json() == {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
    assert emu.balance == 0
    assert emu.submit_count() == 1


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"X-Webhook-URL": "http://127.0.0.1:1/hook"}, "https"),
        ({"X-Webhook-URL": "ftp://example.com/hook"}, "https"),
        ({"X-Webhook-URL": "https://127.0.0.1:1/hook", "X-Webhook-Mode": "always"}, "X-Webhook-Mode"),
    ],
)
def test_webhook_headers_are_validated(headers: dict[str, str], fragment: str) -> None:
    with (
        PixazoEmulator(api_key=KEY) as emu,
        httpx.Client(base_url=emu.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as http,
    ):
        response = http.post(TEXT_TO_IMAGE, json={"prompt": "x"}, headers=headers)

    assert response.status_code == 400
    assert fragment in response.json()["message"]
    assert emu.requests == {}


# -- status ---------------------------------------------------------------------------------------


def test_status_moves_through_the_flow_on_the_submit_clock() -> None:
    with (
        PixazoEmulator(api_key=KEY, queued_seconds=0.2, processing_seconds=0.2) as emu,
        httpx.Client(headers={"Ocp-Apim-Subscription-Key": KEY}) as http,
    ):
        submitted = time.monotonic()
        polling_url = http.post(f"{emu.url}{TEXT_TO_IMAGE}", json={"prompt": "x", "n": 2}).json()["polling_url"]
        seen = [http.get(polling_url).json()]
        time.sleep(max(0.0, submitted + 0.3 - time.monotonic()))
        seen.append(http.get(polling_url).json())
        time.sleep(max(0.0, submitted + 0.5 - time.monotonic()))
        seen.append(http.get(polling_url).json())

    assert [s["status"] for s in seen] == ["QUEUED", "PROCESSING", "COMPLETED"]
    assert all(set(s) == STATUS_FIELDS for s in seen)
    assert [s["completed_at"] for s in seen[:2]] == [None, None]
    assert [s["output"] for s in seen[:2]] == [None, None]
    done = seen[2]
    assert done["model_id"] == "gpt-image-2"
    assert done["error"] is None
    assert done["output"]["media_type"] == "image/png"
    assert len(done["output"]["media_url"]) == 2
    assert ISO_UTC.match(done["created_at"])
    assert ISO_UTC.match(done["completed_at"])
    assert done["created_at"] < done["completed_at"] == done["updated_at"]
    assert emu.status_count() == 3


def test_zero_timings_complete_on_the_first_poll(client: httpx.Client) -> None:
    polling_url = _submit(client).json()["polling_url"]

    assert client.get(polling_url).json()["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("prompt", "status", "error"),
    [
        ("a cat [fail]", "FAILED", "Your request was rejected by the safety system (emulated)."),
        ("a cat [error]", "ERROR", "Internal model error (emulated); you were not charged."),
    ],
)
def test_prompt_markers_choose_failed_and_error(
    emulator: PixazoEmulator, client: httpx.Client, prompt: str, status: str, error: str
) -> None:
    request_id = client.post(GPT_1_5, json={"prompt": prompt}).json()["request_id"]

    result = client.get(f"/v2/requests/status/{request_id}").json()

    assert (result["status"], result["error"], result["output"]) == (status, error, None)
    assert result["completed_at"] is not None
    assert httpx.get(f"{emulator.url}/media/{request_id}/0.png").status_code == 404


def test_unknown_request_and_unknown_path_answer_json_404(client: httpx.Client) -> None:
    unknown = client.get("/v2/requests/status/gpt-image-2_nope")
    no_route = client.get("/v1/nothing-here")
    wrong_method = client.get(TEXT_TO_IMAGE)

    assert unknown.status_code == no_route.status_code == wrong_method.status_code == 404
    assert "gpt-image-2_nope" in unknown.json()["message"]
    assert no_route.json() == {"statusCode": 404, "message": "Resource not found"}


# -- media ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "pil_format", "size"),
    [
        (GPT_1_5, {"image_size": "1024x1536", "output_format": "jpeg", "num_images": 2}, "JPEG", (1024, 1536)),
        (GPT_1_5, {"background": "transparent", "output_format": "webp"}, "WEBP", (1024, 1024)),
        (TEXT_TO_IMAGE, {"size": "320x200", "n": 2}, "PNG", (320, 200)),
        (EDIT, {"image": HTTPS_IMAGE, "format": "webp", "output_compression": 50}, "WEBP", (1024, 1024)),
    ],
)
def test_media_is_a_real_image_served_without_key(
    emulator: PixazoEmulator,
    client: httpx.Client,
    path: str,
    body: dict[str, Any],
    pil_format: str,
    size: tuple[int, int],
) -> None:
    request_id = _submit(client, path, **body).json()["request_id"]
    output = client.get(f"/v2/requests/status/{request_id}").json()["output"]

    with httpx.Client() as anonymous:
        downloads = [anonymous.get(url) for url in output["media_url"]]
        head = anonymous.head(output["media_url"][0])
        again = anonymous.get(output["media_url"][0])

    images = [Image.open(io.BytesIO(d.content)) for d in downloads]
    assert [(i.format, i.size) for i in images] == [(pil_format, size)] * len(output["media_url"])
    assert all(d.headers["content-type"] == output["media_type"] for d in downloads)
    assert all(int(d.headers["content-length"]) == len(d.content) for d in downloads)
    if len(downloads) > 1:
        assert downloads[0].content != downloads[1].content
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == downloads[0].headers["content-length"]
    assert again.content == downloads[0].content
    media_calls = [c for c in emulator.calls if c.kind == "media"]
    assert len(media_calls) == emulator.media_count() == len(downloads) + 2
    assert not any(c.sent_key for c in media_calls)


def test_transparent_png_has_alpha(client: httpx.Client) -> None:
    request_id = client.post(GPT_1_5, json={"prompt": "x", "background": "transparent"}).json()["request_id"]
    url = client.get(f"/v2/requests/status/{request_id}").json()["output"]["media_url"][0]

    image = Image.open(io.BytesIO(httpx.get(url).content))

    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0


def test_large_media_renders_fast(client: httpx.Client) -> None:
    request_id = _submit(client, size="3840x2160").json()["request_id"]
    url = client.get(f"/v2/requests/status/{request_id}").json()["output"]["media_url"][0]

    started = time.perf_counter()
    response = httpx.get(url)
    elapsed = time.perf_counter() - started

    assert Image.open(io.BytesIO(response.content)).size == (3840, 2160)
    assert elapsed < 1.5


def test_media_that_does_not_exist_answers_404(emulator: PixazoEmulator, client: httpx.Client) -> None:
    request_id = _submit(client, n=1).json()["request_id"]
    emulator.queued_seconds = 30
    pending_id = _submit(client).json()["request_id"]

    paths = [
        f"/media/{request_id}/1.png",
        f"/media/{request_id}/0.jpeg",
        "/media/gpt-image-2_unknown/0.png",
        f"/media/{pending_id}/0.png",
        f"/media/{request_id}/zero.png",
    ]

    assert [httpx.get(emulator.url + p).status_code for p in paths] == [404] * len(paths)
    assert httpx.get(f"{emulator.url}/media/{request_id}/0.png").status_code == 200


# -- faults ---------------------------------------------------------------------------------------


def test_429_carries_retry_after_and_creates_no_job(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(rate_429=1.0, retry_after=7))

    response = _submit(client)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["statusCode"] == 429
    assert emulator.requests == {}
    assert emulator.submit_count() == 0
    assert emulator.calls[-1].status == 429


def test_500_fault_creates_no_job(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(rate_500=1.0))

    response = _submit(client)

    assert response.status_code == 500
    assert response.json()["error"] == "Internal Server Error"
    assert emulator.requests == {}


def test_dropped_connection_gives_no_answer_and_no_job(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(rate_drop=1.0))

    with pytest.raises(httpx.RemoteProtocolError):
        _submit(client)

    assert emulator.requests == {}
    assert emulator.calls[-1].status == 0
    emulator.set_faults(FaultConfig())
    assert _submit(client).status_code == 202


def test_faults_only_hit_the_chosen_endpoints(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(rate_500=1.0, endpoints=("status",)))

    submitted = _submit(client)
    polled = client.get(submitted.json()["polling_url"])
    media = httpx.get(f"{emulator.url}/media/{submitted.json()['request_id']}/0.png")

    assert (submitted.status_code, polled.status_code, media.status_code) == (202, 500, 200)


def test_first_n_submits_get_429(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(first_n_submits_429=2))

    codes = [_submit(client).status_code for _ in range(3)]

    assert codes == [429, 429, 202]
    assert emulator.submit_count() == 1
    assert len(emulator.requests) == 1


def test_every_other_status_call_fails(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(status_500_every_other=True))
    polling_url = _submit(client).json()["polling_url"]

    codes = [client.get(polling_url).status_code for _ in range(4)]

    assert codes == [500, 200, 500, 200]


def test_seeded_faults_are_reproducible() -> None:
    def codes() -> list[int]:
        faults = FaultConfig(rate_429=0.5, seed=42)
        with (
            PixazoEmulator(api_key=KEY, faults=faults) as emu,
            httpx.Client(base_url=emu.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as http,
        ):
            return [http.get("/v2/requests/status/gpt-image-2_x").status_code for _ in range(12)]

    first, second = codes(), codes()

    assert first == second
    assert set(first) == {404, 429}


def test_latency_is_added(emulator: PixazoEmulator, client: httpx.Client) -> None:
    emulator.set_faults(FaultConfig(latency_seconds=0.2))

    started = time.perf_counter()
    response = _submit(client)

    assert response.status_code == 202
    assert time.perf_counter() - started >= 0.2


def test_fault_config_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="rates"):
        FaultConfig(rate_429=0.7, rate_500=0.7)
    with pytest.raises(ValueError, match="endpoint"):
        FaultConfig(endpoints=("upload",))


# -- connections, lifecycle -----------------------------------------------------------------------


def test_one_client_reuses_one_connection(emulator: PixazoEmulator, client: httpx.Client) -> None:
    accepted = _submit(client)
    missing = client.get("/nowhere")

    assert accepted.headers["content-length"] == str(len(accepted.content))
    assert missing.headers["content-length"] == str(len(missing.content))
    assert emulator.connections_opened == 1


def test_reset_forgets_calls_and_jobs(emulator: PixazoEmulator, client: httpx.Client) -> None:
    polling_url = _submit(client).json()["polling_url"]

    emulator.reset()

    assert emulator.calls == []
    assert emulator.requests == {}
    assert client.get(polling_url).status_code == 404


def test_stop_closes_the_port_and_is_idempotent() -> None:
    emu = PixazoEmulator(api_key=KEY).start()
    url = emu.url
    with httpx.Client() as http:
        assert http.get(f"{url}/x").status_code == 404
        emu.stop()
        emu.stop()
        with pytest.raises(httpx.TransportError):
            http.get(f"{url}/x")
    assert emu.is_running is False
    assert emu.connections_opened == 1


def test_missing_pillow_is_reported_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)

    with pytest.raises(ImportError, match=re.escape("pip install 'airflow-provider-pixazo[emulator]'")):
        PixazoEmulator().start()


# -- webhooks -------------------------------------------------------------------------------------


def test_terminal_webhook_is_sent_once(receiver: _Receiver) -> None:
    with (
        PixazoEmulator(api_key=KEY, processing_seconds=0.1, webhook_allow_http=True) as emu,
        httpx.Client(base_url=emu.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as http,
    ):
        request_id = http.post(TEXT_TO_IMAGE, json={"prompt": "x"}, headers={"X-Webhook-URL": receiver.url}).json()[
            "request_id"
        ]
        deliveries = emu.wait_for_webhooks(1)
        late = emu.wait_for_webhooks(2, timeout=0.3)

    assert len(deliveries) == len(late) == 1
    assert deliveries[0].ok
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert set(body) == STATUS_FIELDS
    assert (body["request_id"], body["status"]) == (request_id, "COMPLETED")
    assert len(body["output"]["media_url"]) == 1


def test_sync_webhook_follows_every_status(receiver: _Receiver) -> None:
    with (
        PixazoEmulator(api_key=KEY, queued_seconds=0.05, processing_seconds=0.05, webhook_allow_http=True) as emu,
        httpx.Client(base_url=emu.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as http,
    ):
        http.post(
            GPT_1_5,
            json={"prompt": "x [fail]"},
            headers={"X-Webhook-URL": receiver.url, "X-Webhook-Mode": "sync"},
        )
        deliveries = emu.wait_for_webhooks(3)

    assert [d.status for d in deliveries] == ["QUEUED", "PROCESSING", "FAILED"]
    assert [b["status"] for b in receiver.bodies] == ["QUEUED", "PROCESSING", "FAILED"]
    assert receiver.bodies[-1]["error"] == "Your request was rejected by the safety system (emulated)."


def test_unreachable_webhook_is_recorded_not_raised(emulator: PixazoEmulator, client: httpx.Client) -> None:
    response = client.post(TEXT_TO_IMAGE, json={"prompt": "x"}, headers={"X-Webhook-URL": "https://127.0.0.1:1/hook"})

    deliveries = emulator.wait_for_webhooks(1)

    assert response.status_code == 202
    assert len(deliveries) == 1
    assert deliveries[0].http_status is None
    assert deliveries[0].error
    assert not deliveries[0].ok
    assert client.get(response.json()["polling_url"]).status_code == 200


# -- command line ---------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def test_cli_prints_url_first_and_stops_on_sigterm(tmp_path: Path) -> None:
    url_file = tmp_path / "url.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_pixazo.testing.emulator", "--port", "0", "--url-file", str(url_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(PIXAZO_EMULATOR_API_KEY="cli-secret-key"),
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the emulator printed nothing"
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert url_file.read_text().strip() == url
        assert httpx.get(f"{url}/no/such/path").status_code == 404
        polled = httpx.get(f"{url}/v2/requests/status/x", headers={"Ocp-Apim-Subscription-Key": "cli-secret-key"})
        assert polled.status_code == 404
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "cli-secret-key" not in stderr


# -- pytest plugin --------------------------------------------------------------------------------


def test_connection_helpers(emulator: PixazoEmulator) -> None:
    assert connection_env_var() == "AIRFLOW_CONN_PIXAZO_DEFAULT"
    assert json.loads(connection_json(emulator)) == {"conn_type": "pixazo", "host": emulator.url, "password": KEY}


def test_factory_sets_connection_and_stops_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = EmulatorFactory(monkeypatch)
    poor = factory(api_key="other-key", balance=0, conn_id="pixazo_poor")
    plain = factory()

    conn = json.loads(os.environ["AIRFLOW_CONN_PIXAZO_POOR"])
    assert conn == {"conn_type": "pixazo", "host": poor.url, "password": "other-key"}
    assert poor.balance == 0
    assert poor.url != plain.url
    factory.close()
    assert not poor.is_running
    assert not plain.is_running


def test_plugin_fixtures_inside_pytest(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_uses_plugin.py").write_text(
        textwrap.dedent(
            """
            import json, os
            import httpx

            seen = []

            def test_default(pixazo_emulator):
                seen.append(pixazo_emulator)
                conn = json.loads(os.environ["AIRFLOW_CONN_PIXAZO_DEFAULT"])
                assert conn == {"conn_type": "pixazo", "host": pixazo_emulator.url,
                                "password": pixazo_emulator.api_key}
                answer = httpx.post(conn["host"] + "/gpt-image-2/v1/text-to-image", json={"prompt": "x"},
                                    headers={"Ocp-Apim-Subscription-Key": conn["password"]})
                assert answer.status_code == 202

            def test_factory(pixazo_emulator_factory):
                emu = pixazo_emulator_factory(balance=0)
                seen.append(emu)
                assert emu.balance == 0 and emu.is_running

            def test_all_stopped_and_env_restored():
                assert len(seen) == 2 and not any(emu.is_running for emu in seen)
                assert "AIRFLOW_CONN_PIXAZO_DEFAULT" not in os.environ
            """
        )
    )
    env = _env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("AIRFLOW_CONN_PIXAZO_DEFAULT", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "airflow_provider_pixazo.testing.pytest_plugin",
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, airflow_provider_pixazo.testing.pytest_plugin\n"
        "heavy = {'PIL', 'airflow', 'airflow_provider_pixazo.testing.emulator'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)

    assert result.returncode == 0, result.stderr


# -- https ----------------------------------------------------------------------------------------


def test_cli_serves_https_with_a_given_certificate(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_pixazo.testing.emulator", "--tls-cert", str(cert)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(PIXAZO_EMULATOR_API_KEY="tls-cli-key"),
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the emulator printed nothing"
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", url)
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        headers = {"Ocp-Apim-Subscription-Key": "tls-cli-key"}
        assert httpx.get(f"{url}/v2/requests/status/x", headers=headers, verify=trusted).status_code == 404
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/v2/requests/status/x", verify=ssl.create_default_context())
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0


def test_https_emulator_fixture_points_the_connection_at_it(pixazo_https_emulator: PixazoEmulator) -> None:
    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

    assert pixazo_https_emulator.url.startswith("https://127.0.0.1:")
    hook = PixazoHook()
    try:
        assert isinstance(hook.settings.verify, str)  # the CA bundle path, not the default
        ok, message = hook.test_connection()
    finally:
        hook.close()
    assert ok, message
    assert pixazo_https_emulator.tls_failures == 0
