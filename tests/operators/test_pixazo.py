"""
PixazoGenerateImageOperator and PixazoEditImageOperator, through execute / execute_complete.

Only the network edge is faked: respx for exact wire control, or the real local emulator
(``pixazo_emulator``) for end-to-end runs. The operator's own poll sleep is replaced by a fake clock
where a test would otherwise wait; the emulator cases use tiny real timings.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from PIL import Image

from airflow_provider_pixazo.events import RESULT_XCOM_KEY, WaitOutcome, make_event_payload
from airflow_provider_pixazo.exceptions import (
    PixazoAuthError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoSubmitUncertainError,
    PixazoTimeoutError,
    PixazoValidationError,
    PixazoWaitAbortedError,
)
from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY, PixazoImageLink
from airflow_provider_pixazo.models import RequestResult, RequestStatus
from airflow_provider_pixazo.operators import pixazo as operator_module
from airflow_provider_pixazo.operators.pixazo import PixazoEditImageOperator, PixazoGenerateImageOperator
from airflow_provider_pixazo.testing.emulator import FaultConfig, PixazoEmulator
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from tests.conftest import API_KEY, BASE_URL

GEN2_URL = f"{BASE_URL}/gpt-image-2/v1/text-to-image"
GEN15_URL = f"{BASE_URL}/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
EDIT_URL = f"{BASE_URL}/gpt-image-2/v1/image-to-image-edit"
REQUEST_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"
OTHER_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000002"
STATUS_URL = f"{BASE_URL}/v2/requests/status/{REQUEST_ID}"
MEDIA_URLS = [f"https://pub-test.r2.dev/v1/{REQUEST_ID}/0.png", f"https://pub-test.r2.dev/v1/{REQUEST_ID}/1.png"]
STORE_KEY = "pixazo_request"
HTTPS_IMAGE = "https://cdn.example.com/pool.png"


# -- fakes and helpers ------------------------------------------------------------------------------


class FakeTI:
    """What the operators use of a task instance: xcom_push, and stats_tags for ResumableJobMixin."""

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
    context: dict[str, Any] = {"ti": FakeTI()}
    if store is not None:
        context["task_state_store"] = store
    return context


def submitted(request_id: str = REQUEST_ID) -> httpx.Response:
    return httpx.Response(
        202,
        json={
            "request_id": request_id,
            "status": "QUEUED",
            "polling_url": f"https://gateway.pixazo.ai/v2/requests/status/{request_id}",
        },
    )


def status(value: str, *, request_id: str = REQUEST_ID, error: str | None = None) -> httpx.Response:
    completed = value == "COMPLETED"
    return httpx.Response(
        200,
        json={
            "request_id": request_id,
            "status": value,
            "model_id": "gpt-image-2",
            "error": error,
            "output": {"media_url": MEDIA_URLS, "media_type": "image/png"} if completed else None,
            "created_at": "2026-03-31T10:00:00.000Z",
            "updated_at": "2026-03-31T10:00:15.000Z",
            "completed_at": "2026-03-31T10:00:15.000Z" if completed else None,
        },
    )


def generate(**kwargs: Any) -> PixazoGenerateImageOperator:
    kwargs.setdefault("task_id", "generate")
    kwargs.setdefault("prompt", "A serene sunset over mountains")
    kwargs.setdefault("deferrable", False)
    return PixazoGenerateImageOperator(**kwargs)


def edit(**kwargs: Any) -> PixazoEditImageOperator:
    kwargs.setdefault("task_id", "edit")
    kwargs.setdefault("prompt", "Add a flamingo to the pool")
    kwargs.setdefault("images", HTTPS_IMAGE)
    kwargs.setdefault("deferrable", False)
    return PixazoEditImageOperator(**kwargs)


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def write_image(path: Path, fmt: str, size: tuple[int, int] = (8, 8)) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
    return path


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:(image/[a-z]+);base64,(.+)", uri, re.DOTALL)
    assert match, uri[:60]
    return match[1], base64.b64decode(match[2])


class FakeClock:
    """Replaces ``time`` in the operator module: sleeping advances a fake monotonic clock at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(operator_module, "time", fake)
    return fake


@pytest.fixture
def gateway(pixazo_conn: str, no_sleep: list[float]) -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def emulator(pixazo_emulator: PixazoEmulator, no_sleep: list[float]) -> PixazoEmulator:
    """The plugin's emulator (pixazo_default points at it), with the transport's backoff made instant."""
    return pixazo_emulator


def submits(emulator: PixazoEmulator) -> list[Any]:
    return [call for call in emulator.calls if call.kind == "submit"]


# -- definition and templating ----------------------------------------------------------------------

COMMON_TEMPLATE_FIELDS = {
    "prompt",
    "model",
    "size",
    "quality",
    "background",
    "n",
    "output_format",
    "output_compression",
    "moderation",
    "extra_params",
    "webhook_url",
    "webhook_mode",
    "pixazo_conn_id",
}


def test_generate_definition() -> None:
    op = generate(deferrable=None, timeout=timedelta(minutes=5), poll_interval=3)
    assert set(op.template_fields) == COMMON_TEMPLATE_FIELDS
    assert op.template_fields_renderers == {"extra_params": "json"}
    assert op.deferrable is False  # [operators] default_deferrable is off by default
    assert op.timeout == 300.0
    assert op.poll_interval == 3.0
    assert op.wait_for_completion is False
    assert op.model == "gpt-image-2"
    assert op.durable is True
    assert op.hook is op.hook
    assert op.hook.pixazo_conn_id == "pixazo_default"
    assert all(isinstance(link, PixazoImageLink) for link in op.operator_extra_links)
    assert [link.name for link in op.operator_extra_links][:2] == ["Pixazo image 1", "Pixazo image 2"]


def test_edit_definition() -> None:
    op = edit(images=[HTTPS_IMAGE], mask="mask.png", images_conn_id="aws_default")
    assert set(op.template_fields) == COMMON_TEMPLATE_FIELDS | {"images", "mask"}
    assert op.images == [HTTPS_IMAGE]
    assert op.mask == "mask.png"
    assert op.images_conn_id == "aws_default"


def test_default_deferrable_follows_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert generate(deferrable=None).deferrable is True
    assert generate(deferrable=False).deferrable is False


def test_template_fields_render_and_reach_the_wire(gateway: respx.MockRouter, tmp_path: Path) -> None:
    image = write_image(tmp_path / "pool.png", "PNG")
    mask = write_image(tmp_path / "mask.png", "PNG")
    op = edit(
        prompt="Add a {{ params.animal }} on {{ ds }}",
        images=["{{ params.first }}", str(tmp_path) + "/{{ params.local }}"],
        mask=str(tmp_path) + "/{{ params.mask }}",
        size="{{ params.size }}",
        quality="{{ params.quality }}",
        extra_params={"style": "{{ params.style }}"},
        pixazo_conn_id="{{ params.conn }}",
    )
    jinja_context = {
        "ds": "2026-05-22",
        "params": {
            "animal": "flamingo",
            "first": HTTPS_IMAGE,
            "local": "pool.png",
            "mask": "mask.png",
            "size": "1536x1024",
            "quality": "high",
            "style": "vivid",
            "conn": "pixazo_default",
        },
    }
    op.render_template_fields(jinja_context)
    assert op.prompt == "Add a flamingo on 2026-05-22"
    assert op.images == [HTTPS_IMAGE, str(image)]
    assert op.mask == str(mask)
    assert op.size == "1536x1024"
    assert op.extra_params == {"style": "vivid"}
    assert op.pixazo_conn_id == "pixazo_default"

    route = gateway.post(EDIT_URL).mock(return_value=submitted())
    assert op.execute(make_context()) == REQUEST_ID
    body = sent_json(route)
    assert body["prompt"] == "Add a flamingo on 2026-05-22"
    assert body["size"] == "1536x1024"
    assert body["quality"] == "high"
    assert body["style"] == "vivid"
    assert body["image"][0] == HTTPS_IMAGE
    assert decode_data_uri(body["image"][1]) == ("image/png", image.read_bytes())
    assert decode_data_uri(body["mask"]) == ("image/png", mask.read_bytes())


def test_native_rendering_gives_integers(gateway: respx.MockRouter) -> None:
    """With render_template_as_native_obj the integer fields render to ints the validation accepts."""
    with DAG("pixazo_native", schedule=None, render_template_as_native_obj=True):
        op = generate(n="{{ params.n }}", output_format="webp", output_compression="{{ params.c }}")
    op.render_template_fields({"params": {"n": 3, "c": 80}})
    assert op.n == 3
    assert op.output_compression == 80
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    op.execute(make_context())
    assert sent_json(route) == {
        "prompt": "A serene sunset over mountains",
        "n": 3,
        "format": "webp",
        "output_compression": 80,
    }


# -- submitting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "url", "expected_body"),
    [
        pytest.param(
            "gpt-image-2",
            GEN2_URL,
            {
                "prompt": "A fjord",
                "size": "2048x1152",
                "quality": "high",
                "background": "opaque",
                "n": 4,
                "format": "webp",
                "output_compression": 80,
                "moderation": "low",
            },
            id="gpt-image-2",
        ),
        pytest.param(
            "gpt-image-1.5",
            GEN15_URL,
            {
                "prompt": "A fjord",
                "image_size": "1536x1024",
                "quality": "high",
                "background": "transparent",
                "num_images": 4,
                "output_format": "webp",
            },
            id="gpt-image-1.5",
        ),
    ],
)
def test_generate_submits_once_with_the_models_wire_body(
    gateway: respx.MockRouter, model: str, url: str, expected_body: dict[str, Any]
) -> None:
    route = gateway.post(url).mock(return_value=submitted())
    params: dict[str, Any] = {
        "size": "2048x1152",
        "background": "opaque",
        "output_compression": 80,
        "moderation": "low",
    }
    if model == "gpt-image-1.5":
        params = {"size": "1536x1024", "background": "transparent"}
    op = generate(model=model, prompt="A fjord", quality="high", n=4, output_format="webp", **params)
    context = make_context()

    assert op.execute(context) == REQUEST_ID

    assert route.call_count == 1
    assert len(gateway.calls) == 1  # no status call when not waiting
    request = route.calls[0].request
    assert json.loads(request.content) == expected_body
    assert request.headers["Ocp-Apim-Subscription-Key"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Cache-Control"] == "no-cache"
    assert "X-Webhook-URL" not in request.headers
    # Not waiting: no result, an empty media list for the image links.
    assert context["ti"].pushed == {MEDIA_URLS_XCOM_KEY: []}


def test_unset_parameters_are_not_sent(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    generate().execute(make_context())
    assert sent_json(route) == {"prompt": "A serene sunset over mountains"}


def test_webhook_headers_and_extra_params_are_sent(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    op = generate(
        webhook_url="https://hooks.example.com/pixazo?x=1",
        webhook_mode="sync",
        extra_params={"user": "airflow"},
    )
    op.execute(make_context())
    request = route.calls[0].request
    assert request.headers["X-Webhook-URL"] == "https://hooks.example.com/pixazo?x=1"
    assert request.headers["X-Webhook-Mode"] == "sync"
    assert json.loads(request.content) == {"prompt": "A serene sunset over mountains", "user": "airflow"}


def test_generate_against_the_emulator(emulator: PixazoEmulator) -> None:
    context = make_context(FakeTaskStateStore())
    request_id = generate(size="1024x1024", n=2).execute(context)
    assert request_id.startswith("gpt-image-2_")
    assert request_id in emulator.requests
    assert emulator.submit_count() == 1
    assert emulator.status_count() == 0
    call = submits(emulator)[0]
    assert call.json == {"prompt": "A serene sunset over mountains", "size": "1024x1024", "n": 2}
    assert call.headers["ocp-apim-subscription-key"] == emulator.api_key


# -- validation before any HTTP ---------------------------------------------------------------------

GENERATE_BAD_INPUTS = [
    pytest.param({"size": "999x999"}, "size", id="size-custom-off-grid"),
    pytest.param({"size": "huge"}, "size", id="size-word"),
    pytest.param({"size": "4096x4096"}, "size", id="size-too-large"),
    pytest.param({"model": "gpt-image-1.5", "size": "2048x2048"}, "size", id="size-not-on-1.5"),
    pytest.param({"n": 0}, "n", id="n-zero"),
    pytest.param({"n": 11}, "n", id="n-eleven"),
    pytest.param({"n": True}, "n", id="n-bool"),
    pytest.param({"n": "two"}, "n", id="n-string"),
    pytest.param({"output_compression": "80%"}, "output_compression", id="compression-string"),
    pytest.param({"output_compression": 50}, "output_compression", id="compression-default-png"),
    pytest.param({"output_compression": 50, "output_format": "png"}, "output_compression", id="compression-png"),
    pytest.param({"output_compression": 101, "output_format": "jpeg"}, "output_compression", id="compression-101"),
    pytest.param(
        {"model": "gpt-image-1.5", "output_compression": 50, "output_format": "jpeg"},
        "output_compression",
        id="compression-on-1.5",
    ),
    pytest.param({"background": "transparent"}, "background", id="transparent-gpt-image-2"),
    pytest.param(
        {"model": "gpt-image-1.5", "background": "transparent", "output_format": "jpeg"},
        "background",
        id="transparent-jpeg-1.5",
    ),
    pytest.param({"background": "black"}, "background", id="background-unknown"),
    pytest.param({"prompt": ""}, "prompt", id="prompt-empty"),
    pytest.param({"prompt": "   \n"}, "prompt", id="prompt-blank"),
    pytest.param({"prompt": None}, "prompt", id="prompt-none"),
    pytest.param({"prompt": "x" * 32_001}, "prompt", id="prompt-too-long"),
    pytest.param({"model": "dall-e-3"}, "model", id="model-unknown"),
    pytest.param({"quality": "ultra"}, "quality", id="quality"),
    pytest.param({"output_format": "gif"}, "output_format", id="format"),
    pytest.param({"moderation": "off"}, "moderation", id="moderation"),
    pytest.param({"model": "gpt-image-1.5", "moderation": "low"}, "moderation", id="moderation-on-1.5"),
    pytest.param({"webhook_url": "http://hooks.example.com/cb"}, "webhook_url", id="webhook-http"),
    pytest.param({"webhook_url": "hooks.example.com"}, "webhook_url", id="webhook-no-scheme"),
    pytest.param({"webhook_mode": "sync"}, "webhook_mode", id="webhook-mode-without-url"),
    pytest.param(
        {"webhook_url": "https://hooks.example.com/cb", "webhook_mode": "often"}, "webhook_mode", id="webhook-mode"
    ),
    pytest.param({"extra_params": {"prompt": "other"}}, "extra_params", id="extra-params-clash"),
    pytest.param({"extra_params": ["a"]}, "extra_params", id="extra-params-not-dict"),
]


def assert_no_http(router: respx.MockRouter) -> None:
    assert router.calls.call_count == 0, [call.request.url for call in router.calls]


@pytest.fixture
def catch_all(gateway: respx.MockRouter) -> respx.MockRouter:
    """Every request would be answered 202: a validation test passes only if none is made."""
    gateway.route().mock(return_value=submitted())
    return gateway


@pytest.mark.parametrize(("kwargs", "parameter"), GENERATE_BAD_INPUTS)
def test_generate_validation_fails_before_any_http(
    catch_all: respx.MockRouter, kwargs: dict[str, Any], parameter: str
) -> None:
    store = FakeTaskStateStore()
    op = generate(**kwargs)
    with pytest.raises(PixazoValidationError) as info:
        op.execute(make_context(store))
    assert info.value.parameter == parameter
    assert isinstance(info.value, AirflowFailException)  # no retries for bad input
    assert parameter in str(info.value)
    assert_no_http(catch_all)
    assert store.ops == []  # the store is not even read


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return {
        "png": write_image(tmp_path / "in.png", "PNG"),
        "jpeg": write_image(tmp_path / "in.jpg", "JPEG"),
        "webp": write_image(tmp_path / "in.webp", "WEBP"),
        "text": text,
        "empty": empty,
        "missing": tmp_path / "missing.png",
        "dir": tmp_path,
    }


EDIT_BAD_INPUTS = [
    pytest.param({"images": "{missing}"}, "images[0]", id="image-missing-file"),
    pytest.param({"images": "{text}"}, "images[0]", id="image-not-an-image"),
    pytest.param({"images": "{empty}"}, "images[0]", id="image-empty-file"),
    pytest.param({"images": "{dir}"}, "images[0]", id="image-directory"),
    pytest.param({"images": "file://{missing}"}, "images[0]", id="image-missing-file-uri"),
    pytest.param({"images": [HTTPS_IMAGE, "{missing}"]}, "images[1]", id="second-image-missing"),
    pytest.param({"images": "http://cdn.example.com/a.png"}, "images[0]", id="image-http"),
    pytest.param({"images": "   "}, "images[0]", id="image-blank"),
    pytest.param({"images": "data:text/plain;base64,aGVsbG8="}, "images[0]", id="image-data-not-image"),
    pytest.param({"images": []}, "images", id="no-images"),
    pytest.param({"images": [HTTPS_IMAGE] * 17}, "images", id="too-many-images"),
    pytest.param({"mask": "{jpeg}"}, "mask", id="mask-jpeg"),
    pytest.param({"mask": "{webp}"}, "mask", id="mask-webp"),
    pytest.param({"mask": "{missing}"}, "mask", id="mask-missing"),
    pytest.param({"mask": "http://cdn.example.com/m.png"}, "mask", id="mask-http"),
    pytest.param({"model": "gpt-image-1.5"}, "model", id="edit-on-gpt-image-1.5"),
    pytest.param({"model": "nope"}, "model", id="edit-model-unknown"),
    pytest.param({"background": "transparent"}, "background", id="edit-transparent"),
    pytest.param({"prompt": ""}, "prompt", id="edit-prompt-empty"),
    pytest.param({"n": 0}, "n", id="edit-n-zero"),
]


def _fill(value: Any, files: dict[str, Path]) -> Any:
    if isinstance(value, list):
        return [_fill(v, files) for v in value]
    if isinstance(value, str):
        return value.format(**files)
    return value


@pytest.mark.parametrize(("kwargs", "parameter"), EDIT_BAD_INPUTS)
def test_edit_validation_fails_before_any_http(
    catch_all: respx.MockRouter, files: dict[str, Path], kwargs: dict[str, Any], parameter: str
) -> None:
    store = FakeTaskStateStore()
    op = edit(**{key: _fill(value, files) for key, value in kwargs.items()})
    with pytest.raises(PixazoValidationError) as info:
        op.execute(make_context(store))
    assert info.value.parameter == parameter
    assert isinstance(info.value, AirflowFailException)
    assert_no_http(catch_all)
    assert store.ops == []


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        pytest.param({"poll_interval": 0}, "poll_interval", id="poll-zero"),
        pytest.param({"poll_interval": -1}, "poll_interval", id="poll-negative"),
        pytest.param({"timeout": 0}, "timeout", id="timeout-zero"),
        pytest.param({"timeout": -5.0}, "timeout", id="timeout-negative"),
        pytest.param({"timeout": timedelta(0)}, "timeout", id="timeout-timedelta-zero"),
        pytest.param({"timeout": float("nan")}, "timeout", id="timeout-nan"),
        pytest.param({"poll_interval": float("nan")}, "poll_interval", id="poll-nan"),
        pytest.param({"poll_interval": "often"}, "poll_interval", id="poll-not-a-number"),
    ],
)
@pytest.mark.parametrize("factory", [generate, edit], ids=["generate", "edit"])
def test_wait_settings_are_validated_when_the_task_is_defined(
    catch_all: respx.MockRouter, factory: Any, kwargs: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(PixazoValidationError) as info:
        factory(wait_for_completion=True, **kwargs)
    assert info.value.parameter == parameter
    assert_no_http(catch_all)


def test_validation_makes_no_call_to_the_emulator(emulator: PixazoEmulator, files: dict[str, Path]) -> None:
    bad = [
        generate(size="123x45"),
        generate(n=0),
        generate(model="gpt-image-1.5", moderation="low"),
        edit(images=str(files["text"])),
        edit(images=HTTPS_IMAGE, mask=str(files["jpeg"])),
        edit(model="gpt-image-1.5"),
    ]
    for op in bad:
        with pytest.raises(PixazoValidationError):
            op.execute(make_context(FakeTaskStateStore()))
    assert emulator.submit_count() == 0
    assert emulator.calls == []


# -- deferrable wait --------------------------------------------------------------------------------


def test_deferrable_wait_defers_to_the_trigger(gateway: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIXAZO_ART",
        json.dumps({"conn_type": "pixazo", "host": BASE_URL, "password": API_KEY}),
    )
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    store = FakeTaskStateStore()
    context = make_context(store)
    op = generate(
        wait_for_completion=True,
        deferrable=True,
        poll_interval=7,
        timeout=timedelta(minutes=20),
        pixazo_conn_id="pixazo_art",
    )
    before = time.time()

    with pytest.raises(TaskDeferred) as info:
        op.execute(context)

    assert route.call_count == 1
    assert len(gateway.calls) == 1  # the worker does not poll when deferring
    assert info.value.method_name == "execute_complete"
    trigger = info.value.trigger
    assert isinstance(trigger, PixazoRequestTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_pixazo.triggers.pixazo.PixazoRequestTrigger"
    assert kwargs["request_id"] == REQUEST_ID
    assert kwargs["pixazo_conn_id"] == "pixazo_art"
    assert kwargs["poll_interval"] == 7.0
    assert kwargs["timeout"] == 1200.0
    assert before + 1200 <= kwargs["end_time"] <= time.time() + 1200
    serialized = json.dumps(kwargs)  # JSON-safe
    assert API_KEY not in serialized
    assert API_KEY not in repr(trigger)
    # The trigger can be rebuilt from what was serialised.
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    # The request id was saved before deferring, so a retry of this try will not pay again.
    assert store.data[STORE_KEY]["request_id"] == REQUEST_ID
    # Only the empty image list, so the links answer "none" while it waits.
    assert context["ti"].pushed == {MEDIA_URLS_XCOM_KEY: []}


def test_deferrable_without_wait_does_not_defer(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    assert generate(deferrable=True).execute(make_context()) == REQUEST_ID
    assert route.call_count == 1


def success_event(request_id: str = REQUEST_ID) -> dict[str, Any]:
    result = RequestResult(
        request_id=request_id,
        status=RequestStatus.COMPLETED,
        media_urls=tuple(MEDIA_URLS),
        media_type="image/png",
        model_id="gpt-image-2",
        completed_at="2026-03-31T10:00:15.000Z",
    )
    return make_event_payload(WaitOutcome.SUCCESS, request_id, result=result, message="done")


@pytest.mark.parametrize("factory", [generate, edit], ids=["generate", "edit"])
def test_execute_complete_success_publishes_the_result(gateway: respx.MockRouter, factory: Any) -> None:
    context = make_context()
    op = factory(wait_for_completion=True, deferrable=True)

    assert op.execute_complete(context, success_event()) == REQUEST_ID

    result = context["ti"].pushed[RESULT_XCOM_KEY]
    assert result["request_id"] == REQUEST_ID
    assert result["status"] == "COMPLETED"
    assert result["media_urls"] == MEDIA_URLS
    assert result["media_type"] == "image/png"
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == MEDIA_URLS
    assert len(gateway.calls) == 0  # resuming makes no HTTP call


def failed_result(status_value: RequestStatus, error: str) -> RequestResult:
    return RequestResult(request_id=REQUEST_ID, status=status_value, error=error)


@pytest.mark.parametrize(
    ("event", "error_type", "text"),
    [
        pytest.param(
            make_event_payload(
                WaitOutcome.FAILED,
                REQUEST_ID,
                result=failed_result(RequestStatus.FAILED, "Rejected by the safety system"),
            ),
            PixazoRequestFailedError,
            "Rejected by the safety system",
            id="failed",
        ),
        pytest.param(
            make_event_payload(
                WaitOutcome.ERROR, REQUEST_ID, result=failed_result(RequestStatus.ERROR, "Internal model error")
            ),
            PixazoRequestErroredError,
            "Internal model error",
            id="error",
        ),
        pytest.param(
            make_event_payload(
                WaitOutcome.TIMEOUT,
                REQUEST_ID,
                message="too slow",
                extra={"timeout": 60.0, "last_status": "PROCESSING"},
            ),
            PixazoTimeoutError,
            "PROCESSING",
            id="timeout",
        ),
        pytest.param(
            make_event_payload(
                WaitOutcome.AUTH, REQUEST_ID, message="Pixazo refused the API key (401)", extra={"http_status": 401}
            ),
            PixazoAuthError,
            "refused the API key",
            id="auth",
        ),
        pytest.param(
            make_event_payload(WaitOutcome.NOT_FOUND, REQUEST_ID, message="not found (404)"),
            PixazoNotFoundError,
            "not found",
            id="not-found",
        ),
        pytest.param(
            make_event_payload(WaitOutcome.INVALID, REQUEST_ID, message="connection unusable"),
            PixazoWaitAbortedError,
            "connection unusable",
            id="invalid",
        ),
    ],
)
def test_execute_complete_raises_the_typed_error(
    gateway: respx.MockRouter, event: dict[str, Any], error_type: type[Exception], text: str
) -> None:
    context = make_context()
    with pytest.raises(error_type) as info:
        generate(wait_for_completion=True, deferrable=True).execute_complete(context, event)
    assert isinstance(info.value, AirflowFailException)
    assert text in str(info.value)
    assert RESULT_XCOM_KEY not in context["ti"].pushed
    assert len(gateway.calls) == 0


@pytest.mark.parametrize("outcome", [o for o in WaitOutcome if o is not WaitOutcome.SUCCESS])
def test_execute_complete_errors_name_the_paid_request(gateway: respx.MockRouter, outcome: WaitOutcome) -> None:
    """Whatever ended the wait, the error must name the (already paid) request so it can be looked up."""
    # The trigger sends str(err) as the message; for an unusable connection that text has no request id.
    message = "Invalid password='<empty>': connection 'pixazo_default' needs the Pixazo API key"
    event = make_event_payload(outcome, REQUEST_ID, message=message)
    with pytest.raises(PixazoError) as info:
        generate(wait_for_completion=True, deferrable=True).execute_complete(make_context(), event)
    assert isinstance(info.value, AirflowFailException)
    assert REQUEST_ID in str(info.value) or getattr(info.value, "request_id", None) == REQUEST_ID


def test_execute_complete_timeout_names_the_request(gateway: respx.MockRouter) -> None:
    event = make_event_payload(
        WaitOutcome.TIMEOUT, REQUEST_ID, message="slow", extra={"timeout": 90.0, "last_status": "QUEUED"}
    )
    with pytest.raises(PixazoTimeoutError) as info:
        generate(wait_for_completion=True, deferrable=True).execute_complete(make_context(), event)
    assert info.value.request_id == REQUEST_ID
    assert info.value.timeout == 90.0
    assert info.value.last_status == "QUEUED"
    assert REQUEST_ID in str(info.value)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(None, id="none"),
        pytest.param({"request_id": REQUEST_ID}, id="no-outcome"),
        pytest.param({"outcome": "exploded", "request_id": REQUEST_ID}, id="unknown-outcome"),
        pytest.param({"outcome": "success", "request_id": REQUEST_ID, "result": None}, id="success-without-result"),
    ],
)
def test_execute_complete_refuses_a_malformed_event(gateway: respx.MockRouter, event: Any) -> None:
    context = make_context()
    with pytest.raises(PixazoError):
        generate(wait_for_completion=True, deferrable=True).execute_complete(context, event)
    assert context["ti"].pushed == {}


# -- non-deferrable wait ----------------------------------------------------------------------------


def test_polling_wait_runs_to_completion(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    status_route = gateway.get(STATUS_URL).mock(
        side_effect=[status("QUEUED"), status("PROCESSING"), status("PROCESSING"), status("COMPLETED")]
    )
    context = make_context()
    op = generate(wait_for_completion=True, poll_interval=4, timeout=60)

    assert op.execute(context) == REQUEST_ID

    assert status_route.call_count == 4
    assert clock.sleeps == [4.0, 4.0, 4.0]
    result = context["ti"].pushed[RESULT_XCOM_KEY]
    assert result["status"] == "COMPLETED"
    assert result["media_urls"] == MEDIA_URLS
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == MEDIA_URLS
    assert status_route.calls[0].request.headers["Ocp-Apim-Subscription-Key"] == API_KEY


def test_polling_wait_against_the_emulator(emulator: PixazoEmulator) -> None:
    emulator.processing_seconds = 0.05
    context = make_context(FakeTaskStateStore())
    op = generate(wait_for_completion=True, poll_interval=0.01, timeout=10, n=2, output_format="jpeg")

    request_id = op.execute(context)

    job = emulator.requests[request_id]
    assert emulator.submit_count() == 1
    assert emulator.status_count() >= 2
    result = context["ti"].pushed[RESULT_XCOM_KEY]
    assert result["request_id"] == request_id
    assert result["status"] == "COMPLETED"
    assert result["media_type"] == "image/jpeg"
    assert result["media_urls"] == list(job.media_urls)
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == list(job.media_urls)


@pytest.mark.parametrize(
    ("marker", "error_type", "text"),
    [
        ("[fail]", PixazoRequestFailedError, "rejected by the safety system"),
        ("[error]", PixazoRequestErroredError, "Internal model error"),
    ],
)
def test_polling_wait_fails_with_pixazos_text(
    emulator: PixazoEmulator, marker: str, error_type: type[Exception], text: str
) -> None:
    emulator.processing_seconds = 0.02
    context = make_context(FakeTaskStateStore())
    op = generate(prompt=f"A sunset {marker}", wait_for_completion=True, poll_interval=0.01, timeout=10)
    with pytest.raises(error_type) as info:
        op.execute(context)
    assert isinstance(info.value, AirflowFailException)
    assert text in str(info.value)
    (request_id,) = emulator.requests
    assert info.value.request_id == request_id
    assert RESULT_XCOM_KEY not in context["ti"].pushed
    assert emulator.submit_count() == 1


@pytest.mark.parametrize(
    ("remote", "error_type"), [("FAILED", PixazoRequestFailedError), ("ERROR", PixazoRequestErroredError)]
)
def test_polling_wait_failure_via_respx(
    gateway: respx.MockRouter, clock: FakeClock, remote: str, error_type: type[Exception]
) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status(remote, error="Content policy: nope")])
    with pytest.raises(error_type, match="Content policy: nope"):
        generate(wait_for_completion=True, poll_interval=1).execute(make_context())


def test_polling_wait_times_out_naming_the_request(gateway: respx.MockRouter, clock: FakeClock) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    status_route = gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    context = make_context()
    with pytest.raises(PixazoTimeoutError) as info:
        generate(wait_for_completion=True, poll_interval=10, timeout=25).execute(context)
    err = info.value
    assert isinstance(err, AirflowFailException)
    assert err.request_id == REQUEST_ID
    assert err.timeout == 25.0
    assert err.last_status == "PROCESSING"
    assert REQUEST_ID in str(err)
    # Sleeps never overshoot the deadline: 10, 10, then the 5 s left.
    assert clock.sleeps == [10.0, 10.0, 5.0]
    assert status_route.call_count == 4
    assert RESULT_XCOM_KEY not in context["ti"].pushed


def test_polling_wait_times_out_against_the_emulator(emulator: PixazoEmulator) -> None:
    emulator.queued_seconds = 60
    op = generate(wait_for_completion=True, poll_interval=0.01, timeout=0.05)
    with pytest.raises(PixazoTimeoutError) as info:
        op.execute(make_context(FakeTaskStateStore()))
    (request_id,) = emulator.requests
    assert info.value.request_id == request_id
    assert info.value.last_status == "QUEUED"
    assert request_id in str(info.value)
    assert emulator.submit_count() == 1


# -- retry safety: one payment per set of parameters ------------------------------------------------


def test_first_try_submits_once_and_stores_the_request(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    request_id = generate().execute(make_context(store))
    assert emulator.submit_count() == 1
    stored = store.data[STORE_KEY]
    assert set(stored) == {"request_id", "fingerprint"}
    assert stored["request_id"] == request_id
    assert re.fullmatch(r"[0-9a-f]{64}", stored["fingerprint"])
    assert ("set", STORE_KEY) in store.ops


@pytest.mark.parametrize("queued_or_processing", ["queued", "processing"])
def test_retry_while_active_reuses_the_request(emulator: PixazoEmulator, queued_or_processing: str) -> None:
    if queued_or_processing == "queued":
        emulator.queued_seconds = 60
    else:
        emulator.processing_seconds = 60
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    stored = dict(store.data[STORE_KEY])

    # A retried try runs a fresh operator instance with the same parameters and the same store.
    second = generate().execute(make_context(store))

    assert second == first
    assert emulator.submit_count() == 1
    assert store.data[STORE_KEY] == stored
    assert emulator.status_count() == 1  # one look at the old request, no more


def test_retry_while_active_defers_on_the_old_request(emulator: PixazoEmulator) -> None:
    emulator.processing_seconds = 60
    store = FakeTaskStateStore()
    with pytest.raises(TaskDeferred) as first:
        generate(wait_for_completion=True, deferrable=True).execute(make_context(store))
    first_id = first.value.trigger.serialize()[1]["request_id"]

    with pytest.raises(TaskDeferred) as second:
        generate(wait_for_completion=True, deferrable=True).execute(make_context(store))

    assert second.value.trigger.serialize()[1]["request_id"] == first_id
    assert second.value.method_name == "execute_complete"
    assert emulator.submit_count() == 1


def test_retry_while_active_polls_the_old_request(emulator: PixazoEmulator) -> None:
    emulator.processing_seconds = 0.05
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    context = make_context(store)

    second = generate(wait_for_completion=True, poll_interval=0.01, timeout=10).execute(context)

    assert second == first
    assert emulator.submit_count() == 1
    assert context["ti"].pushed[RESULT_XCOM_KEY]["request_id"] == first
    assert context["ti"].pushed[RESULT_XCOM_KEY]["status"] == "COMPLETED"


@pytest.mark.parametrize("wait", [False, True], ids=["no-wait", "wait"])
def test_retry_after_completion_does_not_submit(emulator: PixazoEmulator, wait: bool) -> None:
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    context = make_context(store)

    second = generate(wait_for_completion=wait, deferrable=True).execute(context)

    assert second == first
    assert emulator.submit_count() == 1
    if wait:
        # Already done: published at once, no deferral.
        result = context["ti"].pushed[RESULT_XCOM_KEY]
        assert result["request_id"] == first
        assert result["media_urls"] == list(emulator.requests[first].media_urls)
        assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == result["media_urls"]
    else:
        assert RESULT_XCOM_KEY not in context["ti"].pushed


@pytest.mark.parametrize("marker", ["[fail]", "[error]"])
def test_retry_after_failure_submits_anew(emulator: PixazoEmulator, marker: str) -> None:
    store = FakeTaskStateStore()
    prompt = f"A sunset {marker}"
    first = generate(prompt=prompt).execute(make_context(store))

    second = generate(prompt=prompt).execute(make_context(store))

    assert second != first
    assert emulator.submit_count() == 2
    assert store.data[STORE_KEY]["request_id"] == second


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"prompt": "A sunrise over mountains"}, id="prompt"),
        pytest.param({"size": "1536x1024"}, id="size"),
        pytest.param({"n": 2}, id="n"),
        pytest.param({"extra_params": {"user": "someone"}}, id="extra-params"),
    ],
)
def test_retry_with_changed_parameters_submits_anew(emulator: PixazoEmulator, change: dict[str, Any]) -> None:
    emulator.queued_seconds = 60  # the old request is still active: only the change justifies paying again
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    first_fingerprint = store.data[STORE_KEY]["fingerprint"]

    second = generate(**change).execute(make_context(store))

    assert second != first
    assert emulator.submit_count() == 2
    assert store.data[STORE_KEY]["request_id"] == second
    assert store.data[STORE_KEY]["fingerprint"] != first_fingerprint


def test_edit_retry_with_same_local_file_reuses_the_request(emulator: PixazoEmulator, files: dict[str, Path]) -> None:
    emulator.queued_seconds = 60
    store = FakeTaskStateStore()
    first = edit(images=str(files["png"])).execute(make_context(store))
    second = edit(images=str(files["png"])).execute(make_context(store))
    assert second == first
    assert emulator.submit_count() == 1
    # The file changed between tries: a different request.
    write_image(files["png"], "PNG", size=(16, 16))
    third = edit(images=str(files["png"])).execute(make_context(store))
    assert third != first
    assert emulator.submit_count() == 2


def test_store_without_the_key_submits(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    store.data["something_else"] = {"request_id": OTHER_ID}
    request_id = generate().execute(make_context(store))
    assert emulator.submit_count() == 1
    assert store.data[STORE_KEY]["request_id"] == request_id
    assert store.data["something_else"] == {"request_id": OTHER_ID}


def test_stored_request_unknown_to_pixazo_submits_anew(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    first = generate().execute(make_context(store))
    emulator.reset()  # Pixazo forgets the request: its status now answers 404

    second = generate().execute(make_context(store))

    assert second != first
    assert emulator.submit_count() == 1  # counted since the reset
    assert store.data[STORE_KEY]["request_id"] == second


def test_stored_bare_request_id_is_not_trusted(gateway: respx.MockRouter) -> None:
    """A value without a fingerprint cannot prove it was for these parameters: submit anew."""
    route = gateway.post(GEN2_URL).mock(return_value=submitted(OTHER_ID))
    status_route = gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    store = FakeTaskStateStore()
    store.data[STORE_KEY] = REQUEST_ID
    assert generate().execute(make_context(store)) == OTHER_ID
    assert route.call_count == 1
    assert status_route.call_count == 0
    assert store.data[STORE_KEY]["request_id"] == OTHER_ID


def test_retry_safety_counts_via_respx(gateway: respx.MockRouter) -> None:
    """The same rule seen on the wire: QUEUED reuses, FAILED pays again."""
    submit_route = gateway.post(GEN2_URL).mock(side_effect=[submitted(REQUEST_ID), submitted(OTHER_ID)])
    status_route = gateway.get(STATUS_URL).mock(side_effect=[status("QUEUED"), status("FAILED", error="bad")])
    store = FakeTaskStateStore()
    assert generate().execute(make_context(store)) == REQUEST_ID
    assert generate().execute(make_context(store)) == REQUEST_ID
    assert submit_route.call_count == 1
    assert generate().execute(make_context(store)) == OTHER_ID
    assert submit_route.call_count == 2
    assert status_route.call_count == 2


def test_without_task_state_store_every_try_submits(
    emulator: PixazoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Airflow 3.2 has no task state store: each try pays, and the log says crash recovery is off."""
    emulator.queued_seconds = 60
    first = generate().execute(make_context())
    second = generate().execute(make_context())
    assert first != second
    assert emulator.submit_count() == 2
    captured = capsys.readouterr()
    assert "task_state_store not available" in captured.out + captured.err


def test_durable_false_never_touches_the_store(emulator: PixazoEmulator) -> None:
    store = FakeTaskStateStore()
    generate(durable=False).execute(make_context(store))
    generate(durable=False).execute(make_context(store))
    assert emulator.submit_count() == 2
    assert store.ops == []


# -- submit errors ----------------------------------------------------------------------------------


def test_submit_answered_500_is_uncertain_and_not_resent(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=httpx.Response(500, json={"error": "Internal Server Error"}))
    store = FakeTaskStateStore()
    with pytest.raises(PixazoSubmitUncertainError) as info:
        generate().execute(make_context(store))
    assert isinstance(info.value, AirflowFailException)
    assert route.call_count == 1
    assert STORE_KEY not in store.data
    assert "NOT sent again" in str(info.value)


def test_submit_dropped_connection_is_uncertain(emulator: PixazoEmulator) -> None:
    emulator.set_faults(FaultConfig(rate_drop=1.0, endpoints=("submit",)))
    with pytest.raises(PixazoSubmitUncertainError):
        generate().execute(make_context(FakeTaskStateStore()))
    assert len(submits(emulator)) == 1


def test_submit_answered_402_fails_at_once(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(
        return_value=httpx.Response(
            402, json={"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
        )
    )
    with pytest.raises(PixazoInsufficientBalanceError) as info:
        generate().execute(make_context(FakeTaskStateStore()))
    assert isinstance(info.value, AirflowFailException)
    assert info.value.http_status == 402
    assert "Your wallet does not have enough balance." in str(info.value)
    assert route.call_count == 1


def test_submit_402_from_the_emulator(pixazo_emulator_factory: Any) -> None:
    emulator = pixazo_emulator_factory(conn_id="pixazo_default", balance=0)
    with pytest.raises(PixazoInsufficientBalanceError):
        generate().execute(make_context(FakeTaskStateStore()))
    assert len(submits(emulator)) == 1
    assert emulator.submit_count() == 0


def test_submit_429_then_202_succeeds_once(gateway: respx.MockRouter, no_sleep: list[float]) -> None:
    route = gateway.post(GEN2_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "slow down"}), submitted()]
    )
    store = FakeTaskStateStore()
    assert generate().execute(make_context(store)) == REQUEST_ID
    assert route.call_count == 2
    assert [call.response.status_code for call in route.calls] == [429, 202]
    assert no_sleep  # the backoff was asked for...
    assert no_sleep[0] >= 3.0  # ...honouring Retry-After, without really sleeping
    assert store.data[STORE_KEY]["request_id"] == REQUEST_ID


def test_submit_429_then_202_against_the_emulator(emulator: PixazoEmulator) -> None:
    emulator.set_faults(FaultConfig(first_n_submits_429=1))
    request_id = generate().execute(make_context(FakeTaskStateStore()))
    assert [call.status for call in submits(emulator)] == [429, 202]
    assert emulator.submit_count() == 1
    assert list(emulator.requests) == [request_id]


def test_submit_with_a_wrong_key_fails_without_leaking_it(
    emulator: PixazoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-KEY-987"
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIXAZO_DEFAULT", json.dumps({"conn_type": "pixazo", "host": emulator.url, "password": wrong})
    )
    with pytest.raises(PixazoAuthError) as info:
        generate().execute(make_context(FakeTaskStateStore()))
    assert isinstance(info.value, AirflowFailException)
    assert info.value.http_status == 401
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert len(submits(emulator)) == 1


# -- edit inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file-uri", "relative-path"])
def test_edit_sends_a_local_png_as_a_data_uri(
    emulator: PixazoEmulator, files: dict[str, Path], form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = files["png"]
    if form == "path":
        image = str(png)
    elif form == "file-uri":
        image = png.as_uri()
    else:
        monkeypatch.chdir(png.parent)
        image = png.name
    request_id = edit(images=image).execute(make_context(FakeTaskStateStore()))

    (call,) = submits(emulator)
    assert call.path == "/gpt-image-2/v1/image-to-image-edit"
    assert call.status == 202
    assert decode_data_uri(call.json["image"]) == ("image/png", png.read_bytes())
    assert "mask" not in call.json
    assert emulator.requests[request_id].path == "/gpt-image-2/v1/image-to-image-edit"


def test_edit_passes_https_and_data_uris_through(gateway: respx.MockRouter) -> None:
    data_uri = "data:image/png;base64,iVBORw0KGgo="
    route = gateway.post(EDIT_URL).mock(return_value=submitted())
    edit(images=[HTTPS_IMAGE, data_uri], mask="https://cdn.example.com/mask.png").execute(make_context())
    body = sent_json(route)
    assert body == {
        "prompt": "Add a flamingo to the pool",
        "image": [HTTPS_IMAGE, data_uri],
        "mask": "https://cdn.example.com/mask.png",
    }


def test_edit_single_https_image_is_sent_as_a_string(gateway: respx.MockRouter) -> None:
    route = gateway.post(EDIT_URL).mock(return_value=submitted())
    edit(images=HTTPS_IMAGE).execute(make_context())
    assert sent_json(route) == {"prompt": "Add a flamingo to the pool", "image": HTTPS_IMAGE}


def test_edit_list_of_images_and_mask_against_the_emulator(emulator: PixazoEmulator, files: dict[str, Path]) -> None:
    mask = write_image(files["dir"] / "mask.png", "PNG")
    op = edit(
        images=[HTTPS_IMAGE, str(files["jpeg"]), files["webp"].as_uri(), str(files["png"])],
        mask=str(mask),
        size="1024x1024",
        quality="high",
        output_format="png",
        background="opaque",
    )
    op.execute(make_context(FakeTaskStateStore()))

    (call,) = submits(emulator)
    assert call.status == 202
    body = call.json
    assert body["image"][0] == HTTPS_IMAGE
    assert decode_data_uri(body["image"][1]) == ("image/jpeg", files["jpeg"].read_bytes())
    assert decode_data_uri(body["image"][2]) == ("image/webp", files["webp"].read_bytes())
    assert decode_data_uri(body["image"][3]) == ("image/png", files["png"].read_bytes())
    assert decode_data_uri(body["mask"]) == ("image/png", mask.read_bytes())
    assert {k: body[k] for k in ("size", "quality", "format", "background")} == {
        "size": "1024x1024",
        "quality": "high",
        "format": "png",
        "background": "opaque",
    }


def test_edit_waits_to_completion_against_the_emulator(emulator: PixazoEmulator, files: dict[str, Path]) -> None:
    emulator.processing_seconds = 0.03
    context = make_context(FakeTaskStateStore())
    request_id = edit(images=str(files["png"]), wait_for_completion=True, poll_interval=0.01).execute(context)
    assert context["ti"].pushed[RESULT_XCOM_KEY]["request_id"] == request_id
    assert context["ti"].pushed[MEDIA_URLS_XCOM_KEY] == list(emulator.requests[request_id].media_urls)
    assert emulator.submit_count() == 1


# -- the API key stays secret -----------------------------------------------------------------------


def test_api_key_never_leaks(
    gateway: respx.MockRouter, clock: FakeClock, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway.post(GEN2_URL).mock(return_value=submitted())
    gateway.post(EDIT_URL).mock(return_value=httpx.Response(500, json={"error": "boom"}))
    gateway.get(STATUS_URL).mock(side_effect=[status("PROCESSING"), status("COMPLETED")])
    leaks: list[str] = []

    # Rendered templates.
    op = generate(prompt="{{ params.p }}", wait_for_completion=True, poll_interval=1, timeout=60)
    op.render_template_fields({"params": {"p": "A sunset"}})
    leaks += [repr(op), str(op)]
    leaks += [repr(getattr(op, field)) for field in op.template_fields]
    leaks.append(repr(op.hook))

    # Polling run: XCom values and return value.
    context = make_context(FakeTaskStateStore())
    leaks.append(op.execute(context))
    leaks.append(json.dumps(context["ti"].pushed))
    leaks.append(json.dumps(context["task_state_store"].data))

    # Deferral: trigger kwargs.
    gateway.get(STATUS_URL).mock(return_value=status("FAILED", error="nope"))
    with pytest.raises(TaskDeferred) as deferred:
        generate(prompt="Another", wait_for_completion=True, deferrable=True).execute(make_context())
    leaks.append(json.dumps(deferred.value.trigger.serialize()))
    leaks.append(repr(deferred.value))

    # Errors: validation, uncertain submit, timeout, failed.
    errors: list[BaseException] = []
    for bad in (generate(n=0), edit(images=str(files["png"]))):
        with pytest.raises(PixazoError) as info:
            bad.execute(make_context())
        errors.append(info.value)
    gateway.get(STATUS_URL).mock(return_value=status("PROCESSING"))
    with pytest.raises(PixazoTimeoutError) as timeout_info:
        generate(prompt="Third", wait_for_completion=True, poll_interval=1, timeout=2).execute(make_context())
    errors.append(timeout_info.value)
    gateway.get(STATUS_URL).mock(return_value=status("FAILED", error="nope"))
    with pytest.raises(PixazoRequestFailedError) as failed_info:
        generate(prompt="Fourth", wait_for_completion=True).execute(make_context())
    errors.append(failed_info.value)
    for error in errors:
        leaks += [str(error), repr(error), repr(error.args), repr(vars(error))]

    captured = capsys.readouterr()
    leaks += [captured.out, captured.err]
    for text in leaks:
        assert API_KEY not in text


def test_api_key_does_not_leak_into_logs_or_xcom_with_the_emulator(
    emulator: PixazoEmulator, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    emulator.processing_seconds = 0.02
    context = make_context(FakeTaskStateStore())
    edit(images=str(files["png"]), wait_for_completion=True, poll_interval=0.01).execute(context)
    captured = capsys.readouterr()
    assert emulator.api_key not in captured.out + captured.err
    assert emulator.api_key not in json.dumps(context["ti"].pushed)
    assert emulator.api_key not in json.dumps(context["task_state_store"].data)
    # The key went to the gateway, and only there: media URLs were never fetched here.
    assert all(call.sent_key for call in emulator.calls if call.kind in ("submit", "status"))
    assert os.environ["AIRFLOW_CONN_PIXAZO_DEFAULT"]  # the plugin set the connection


def test_templated_integer_strings_are_sent_as_integers(pixazo_conn: str) -> None:
    """Jinja renders "{{ params.n }}" to "3" unless the DAG renders native objects; that must still work."""
    op = PixazoGenerateImageOperator(task_id="gen", prompt="p", n="3", output_format="webp", output_compression=" 80 ")

    request = op.build_request()

    assert request.body["n"] == 3
    assert request.body["output_compression"] == 80
