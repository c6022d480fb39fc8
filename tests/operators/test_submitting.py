"""The submit operators send what the DAG author asked for: templated, mapped to the model, once."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import respx
from airflow.sdk import DAG

from airflow_provider_pixazo.options import IMAGE_OPTIONS
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.conftest import API_KEY, BASE_URL, FakeTaskStateStore, make_context
from tests.operators.conftest import (
    EDIT_URL,
    GEN2_URL,
    GEN15_URL,
    HTTPS_IMAGE,
    REQUEST_ID,
    decode_data_uri,
    edit,
    generate,
    sent_json,
    submits,
    submitted,
    write_image,
)

# -- definition and templating ----------------------------------------------------------------------

# One valid rendering of each image option, and where gpt-image-2 puts it on the wire.
RENDERED_OPTIONS = {
    "size": ("1536x1024", "size", "1536x1024"),
    "quality": ("high", "quality", "high"),
    "background": ("opaque", "background", "opaque"),
    "n": ("2", "n", 2),
    "output_format": ("jpeg", "format", "jpeg"),
    "output_compression": ("80", "output_compression", 80),
    "moderation": ("low", "moderation", "low"),
}


@pytest.mark.parametrize("factory", [generate, edit], ids=["generate", "edit"])
def test_every_image_option_is_a_templated_keyword_that_reaches_the_wire(
    gateway: respx.MockRouter, factory: Any
) -> None:
    assert set(RENDERED_OPTIONS) == set(IMAGE_OPTIONS)  # a new option needs a row here
    op = factory(**{name: f"{{{{ params.{name} }}}}" for name in IMAGE_OPTIONS})
    op.render_template_fields({"params": {name: rendered for name, (rendered, _, _) in RENDERED_OPTIONS.items()}})
    route = gateway.post(url=re.compile(f"{BASE_URL}/gpt-image-2/.*")).mock(return_value=submitted())

    op.execute(make_context())

    body = sent_json(route)
    assert {wire: body[wire] for _, wire, _ in RENDERED_OPTIONS.values()} == {
        wire: value for _, wire, value in RENDERED_OPTIONS.values()
    }


def test_image_options_fill_from_default_args(gateway: respx.MockRouter) -> None:
    """Options are plain keyword arguments, so a DAG's default_args set them for every Pixazo task."""
    with DAG("pixazo_defaults", schedule=None, default_args={"quality": "low", "n": 2}):
        op = generate(task_id="from_defaults")
    route = gateway.post(GEN2_URL).mock(return_value=submitted())
    op.execute(make_context())
    assert sent_json(route) == {"prompt": "A serene sunset over mountains", "quality": "low", "n": 2}


def test_connection_ids_are_templated() -> None:
    op = edit(pixazo_conn_id="{{ params.pixazo }}", images_conn_id="{{ params.storage }}")
    op.render_template_fields({"params": {"pixazo": "pixazo_art", "storage": "aws_images"}})
    assert (op.pixazo_conn_id, op.images_conn_id) == ("pixazo_art", "aws_images")
    assert op.hook.pixazo_conn_id == "pixazo_art"  # the hook is made from the rendered id


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


def test_templated_integer_strings_are_sent_as_integers(pixazo_conn: str) -> None:
    """Jinja renders "{{ params.n }}" to "3" unless the DAG renders native objects; that must still work."""
    op = generate(n="3", output_format="webp", output_compression=" 80 ")

    request = op.build_request()

    assert request.body["n"] == 3
    assert request.body["output_compression"] == 80


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
    # Not waiting: no result, nothing pushed for the image links (they answer "none").
    assert context["ti"].pushed == {}


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
