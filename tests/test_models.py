from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.models import (
    MAX_EDIT_IMAGES,
    MAX_PROMPT_CHARS,
    MODELS,
    ModelSpec,
    build_edit_request,
    build_generate_request,
    get_model,
)

V15 = "gpt-image-1.5"
V2 = "gpt-image-2"
PNG_URI = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"
JPEG_URI = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ=="
WEBP_URI = "data:image/webp;base64,UklGRiQAAABXRUJQVlA4IBgAAAAw"

# -- the validation table ---------------------------------------------------------------------------
# Each valid row: (model, kwargs, the wire fields the body must hold besides the prompt).

VALID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # gpt-image-1.5: fixed sizes only
    *[(V15, {"size": s}, {"image_size": s}) for s in ("1024x1024", "1536x1024", "1024x1536", "auto")],
    *[(V15, {"quality": q}, {"quality": q}) for q in ("low", "medium", "high", "auto")],
    *[(V15, {"output_format": f}, {"output_format": f}) for f in ("png", "jpeg", "webp")],
    *[(V15, {"background": b}, {"background": b}) for b in ("transparent", "opaque", "auto")],
    (V15, {"background": "transparent", "output_format": "png"}, {"background": "transparent", "output_format": "png"}),
    (
        V15,
        {"background": "transparent", "output_format": "webp"},
        {"background": "transparent", "output_format": "webp"},
    ),
    (V15, {"background": "opaque", "output_format": "jpeg"}, {"background": "opaque", "output_format": "jpeg"}),
    (V15, {"n": 1}, {"num_images": 1}),
    (V15, {"n": 10}, {"num_images": 10}),
    # gpt-image-2: fixed sizes
    *[
        (V2, {"size": s}, {"size": s})
        for s in ("1024x1024", "1024x1536", "1536x1024", "2048x2048", "2048x1152", "2160x3840", "3840x2160", "auto")
    ],
    # gpt-image-2: custom sizes within OpenAI's limits (edges /16, max edge 3840, ratio <= 3, 655,360..8,294,400 px)
    (V2, {"size": "1280x720"}, {"size": "1280x720"}),  # 921,600 px, 16:9
    (V2, {"size": "1024x640"}, {"size": "1024x640"}),  # exactly 655,360 px
    (V2, {"size": "2880x2880"}, {"size": "2880x2880"}),  # exactly 8,294,400 px
    (V2, {"size": "3840x1280"}, {"size": "3840x1280"}),  # exactly 3:1, longest edge 3840
    (V2, {"size": "1024x3072"}, {"size": "1024x3072"}),  # exactly 1:3
    *[(V2, {"quality": q}, {"quality": q}) for q in ("low", "medium", "high", "auto")],
    *[(V2, {"output_format": f}, {"format": f}) for f in ("png", "jpeg", "webp")],
    *[(V2, {"background": b}, {"background": b}) for b in ("opaque", "auto")],
    (V2, {"n": 1}, {"n": 1}),
    (V2, {"n": 10}, {"n": 10}),
    (V2, {"output_format": "jpeg", "output_compression": 0}, {"format": "jpeg", "output_compression": 0}),
    (V2, {"output_format": "webp", "output_compression": 100}, {"format": "webp", "output_compression": 100}),
    (V2, {"moderation": "auto"}, {"moderation": "auto"}),
    (V2, {"moderation": "low"}, {"moderation": "low"}),
]


@pytest.mark.parametrize(("model", "kwargs", "wire"), VALID, ids=lambda v: json.dumps(v) if isinstance(v, dict) else v)
def test_valid_generate_requests(model: str, kwargs: dict[str, Any], wire: dict[str, Any]) -> None:
    request = build_generate_request("a red fox", model=model, **kwargs)
    assert request.body == {"prompt": "a red fox", **wire}
    assert request.path == MODELS[model].generate_path
    assert request.operation == "generate"
    assert request.headers == {}


# Each invalid row: (model, kwargs, the parameter named, fragments the message must hold).
# The message must also hold repr(value) of the offending value (checked in the test).
INVALID: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    # sizes
    (V15, {"size": "2048x2048"}, "size", ("1024x1024", "1536x1024", "1024x1536", "auto")),
    (V15, {"size": "1280x720"}, "size", ("gpt-image-1.5 takes one of",)),
    (V2, {"size": "big"}, "size", ("3840x2160", "custom WIDTHxHEIGHT")),
    (V2, {"size": "1280x720x2"}, "size", ("custom WIDTHxHEIGHT",)),
    (V2, {"size": "4096x1024"}, "size", ("at most 3840", "3:1")),
    (V2, {"size": "1000x1000"}, "size", ("multiples of 16",)),
    (V2, {"size": "3840x1024"}, "size", ("3:1",)),
    (V2, {"size": "1024x624"}, "size", ("655,360",)),  # 638,976 px
    (V2, {"size": "2896x2880"}, "size", ("8,294,400",)),  # 8,340,480 px
    (V2, {"size": "512x512"}, "size", ("655,360",)),
    # quality / format / background / moderation choices
    *[(m, {"quality": "ultra"}, "quality", ("low, medium, high, auto",)) for m in (V15, V2)],
    *[(m, {"output_format": "gif"}, "output_format", ("png, jpeg, webp",)) for m in (V15, V2)],
    (V15, {"background": "none"}, "background", ("transparent, opaque, auto",)),
    (V2, {"background": "none"}, "background", ("opaque, auto",)),
    (V2, {"background": "transparent"}, "background", ("no transparent", "opaque or auto")),
    (V2, {"background": "transparent", "output_format": "png"}, "background", ("no transparent",)),
    (V15, {"background": "transparent", "output_format": "jpeg"}, "background", ("png or webp",)),
    (V2, {"moderation": "high"}, "moderation", ("auto, low",)),
    # n
    *[(m, {"n": bad}, "n", ("integer from 1 to 10",)) for m in (V15, V2) for bad in (0, 11, True, "2", 2.0, -1)],
    # output_compression
    *[
        (V2, {"output_format": "jpeg", "output_compression": bad}, "output_compression", ("0 to 100",))
        for bad in (-1, 101, True, "50", 50.5)
    ],
    (V2, {"output_format": "png", "output_compression": 50}, "output_compression", ("jpeg or webp", "png")),
    (V2, {"output_compression": 50}, "output_compression", ("jpeg or webp", "png")),
    # parameters gpt-image-1.5 does not take
    (V15, {"output_compression": 50, "output_format": "jpeg"}, "output_compression", ("does not take",)),
    (V15, {"moderation": "low"}, "moderation", ("does not take", "size, quality, background, n, output_format")),
    # prompt
    *[(m, {"prompt": bad}, "prompt", ("non-empty",)) for m in (V15, V2) for bad in ("", "   ", None, 42)],
    # extra_params
    (V2, {"quality": "high", "extra_params": {"quality": "low"}}, "extra_params", ("quality", "set each field once")),
    (V2, {"extra_params": {"prompt": "other"}}, "extra_params", ("prompt", "already set")),
    (V15, {"n": 2, "extra_params": {"num_images": 3}}, "extra_params", ("num_images", "already set")),
    (V2, {"extra_params": ["seed"]}, "extra_params", ("a dict",)),
    # webhooks
    (V2, {"webhook_url": "http://hooks.example/cb"}, "webhook_url", ("https://",)),
    (V2, {"webhook_url": "https://"}, "webhook_url", ("https://",)),
    (V2, {"webhook_url": "https://hooks.example/a b"}, "webhook_url", ("https://",)),
    (V2, {"webhook_mode": "terminal"}, "webhook_mode", ("webhook_url",)),
    (V2, {"webhook_url": "https://hooks.example/cb", "webhook_mode": "always"}, "webhook_mode", ("terminal, sync",)),
]


@pytest.mark.parametrize(
    ("model", "kwargs", "parameter", "fragments"),
    INVALID,
    ids=lambda v: json.dumps(v, default=repr) if isinstance(v, dict) else str(v),
)
def test_invalid_generate_requests(
    model: str, kwargs: dict[str, Any], parameter: str, fragments: tuple[str, ...]
) -> None:
    kwargs = dict(kwargs)
    prompt = kwargs.pop("prompt", "a red fox")
    with pytest.raises(PixazoValidationError) as info:
        build_generate_request(prompt, model=model, **kwargs)
    err = info.value
    assert err.parameter == parameter
    value = prompt if parameter == "prompt" else kwargs[parameter]
    assert err.value == value
    message = str(err)
    assert f"Invalid {parameter}={value!r}" in message
    for fragment in fragments:
        assert fragment in message


def test_too_long_prompt_is_refused_with_a_short_value() -> None:
    with pytest.raises(PixazoValidationError) as info:
        build_generate_request("x" * (MAX_PROMPT_CHARS + 1))
    assert info.value.parameter == "prompt"
    assert f"at most {MAX_PROMPT_CHARS} characters" in str(info.value)
    assert len(str(info.value)) < 400
    assert build_generate_request("x" * MAX_PROMPT_CHARS).body["prompt"] == "x" * MAX_PROMPT_CHARS


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(PixazoValidationError) as info:
        build_generate_request("a fox", model="dall-e-3")
    assert info.value.parameter == "model"
    assert "'dall-e-3'" in str(info.value)
    assert "gpt-image-1.5" in str(info.value)
    assert "gpt-image-2" in str(info.value)
    with pytest.raises(PixazoValidationError):
        get_model(None)  # type: ignore[arg-type]


def test_wire_names_are_mapped_per_model() -> None:
    common = {"size": "1024x1024", "quality": "high", "background": "opaque", "n": 2, "output_format": "jpeg"}
    old = build_generate_request("p", model=V15, **common)
    assert old.body == {
        "prompt": "p",
        "image_size": "1024x1024",
        "quality": "high",
        "background": "opaque",
        "num_images": 2,
        "output_format": "jpeg",
    }
    assert old.path == "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
    new = build_generate_request("p", model=V2, output_compression=80, moderation="low", **common)
    assert new.body == {
        "prompt": "p",
        "size": "1024x1024",
        "quality": "high",
        "background": "opaque",
        "n": 2,
        "format": "jpeg",
        "output_compression": 80,
        "moderation": "low",
    }
    assert new.path == "/gpt-image-2/v1/text-to-image"


def test_unset_parameters_are_not_sent() -> None:
    assert build_generate_request("p").body == {"prompt": "p"}
    assert build_generate_request("p").model == "gpt-image-2"


def test_extra_params_pass_through_untouched() -> None:
    nested = {"a": [1, 2, {"b": None}]}
    extra = {"seed": 7, "style": nested, "user": "me"}
    request = build_generate_request("p", model=V2, quality="low", extra_params=extra)
    assert request.body == {"prompt": "p", "quality": "low", "seed": 7, "style": nested, "user": "me"}
    assert request.body["style"] is nested
    assert extra == {"seed": 7, "style": nested, "user": "me"}  # the caller's dict is not changed


# -- edits ------------------------------------------------------------------------------------------


def test_edit_single_image_is_sent_as_a_string() -> None:
    for images in ("https://cdn.example/a.png", ["https://cdn.example/a.png"]):
        request = build_edit_request("add a hat", images)
        assert request.body == {"prompt": "add a hat", "image": "https://cdn.example/a.png"}
        assert request.path == "/gpt-image-2/v1/image-to-image-edit"
        assert request.operation == "edit"


def test_edit_several_images_mask_and_options() -> None:
    images = ["https://cdn.example/a.png", PNG_URI, JPEG_URI, WEBP_URI]
    request = build_edit_request(
        "combine",
        images,
        mask=PNG_URI,
        size="1024x1024",
        output_format="webp",
        output_compression=90,
        webhook_url="https://hooks.example/cb",
        webhook_mode="sync",
    )
    assert request.body == {
        "prompt": "combine",
        "image": images,
        "mask": PNG_URI,
        "size": "1024x1024",
        "format": "webp",
        "output_compression": 90,
    }
    assert request.headers == {"X-Webhook-URL": "https://hooks.example/cb", "X-Webhook-Mode": "sync"}


def test_edit_accepts_https_mask_and_max_images() -> None:
    images = [f"https://cdn.example/{i}.png" for i in range(MAX_EDIT_IMAGES)]
    request = build_edit_request("p", images, mask="https://cdn.example/mask.png")
    assert request.body["image"] == images
    assert request.body["mask"] == "https://cdn.example/mask.png"


EDIT_INVALID: list[Any] = [
    ({"images": []}, "images", ("at least one",)),
    ({"images": None}, "images", ("at least one",)),
    ({"images": [f"https://cdn.example/{i}.png" for i in range(MAX_EDIT_IMAGES + 1)]}, "images", ("at most 16",)),
    ({"images": "http://cdn.example/a.png"}, "images[0]", ("https://", "data:image")),
    ({"images": ["https://cdn.example/a.png", "http://cdn.example/b.png"]}, "images[1]", ("https://",)),
    ({"images": "data:text/plain;base64,aGVsbG8="}, "images[0]", ("data:image",)),
    ({"images": "/tmp/local.png"}, "images[0]", ("https://",)),
    ({"images": "https://cdn.example/a.png", "mask": JPEG_URI}, "mask", ("PNG",)),
    ({"images": "https://cdn.example/a.png", "mask": WEBP_URI}, "mask", ("PNG",)),
    pytest.param(
        {"images": "https://cdn.example/a.png", "mask": "DATA:IMAGE/JPEG;BASE64,/9j/4AAQ"},
        "mask",
        ("PNG",),
        id="mask-uppercase-jpeg-data-uri",
    ),
    ({"images": "https://cdn.example/a.png", "mask": "http://cdn.example/m.png"}, "mask", ("https://",)),
    ({"images": "https://cdn.example/a.png", "background": "transparent"}, "background", ("no transparent",)),
    ({"images": "https://cdn.example/a.png", "model": V15}, "model", ("gpt-image-2",)),
    ({"images": "https://cdn.example/a.png", "webhook_url": "http://hooks.example"}, "webhook_url", ("https",)),
]


@pytest.mark.parametrize(("kwargs", "parameter", "fragments"), EDIT_INVALID, ids=lambda v: str(v)[:60])
def test_invalid_edit_requests(kwargs: dict[str, Any], parameter: str, fragments: tuple[str, ...]) -> None:
    kwargs = dict(kwargs)
    images = kwargs.pop("images")
    with pytest.raises(PixazoValidationError) as info:
        build_edit_request("edit it", images, **kwargs)
    assert info.value.parameter == parameter
    message = str(info.value)
    assert message.startswith(f"Invalid {parameter}=")
    for fragment in fragments:
        assert fragment in message


def test_edit_error_names_the_offending_image_value() -> None:
    with pytest.raises(PixazoValidationError) as info:
        build_edit_request("p", ["https://ok.example/a.png", "ftp://nope.example/b.png"])
    assert "ftp://nope.example/b.png" in str(info.value)


def test_huge_data_uri_is_shortened_in_errors() -> None:
    huge = "data:image/jpeg;base64," + "A" * 100_000
    with pytest.raises(PixazoValidationError) as info:
        build_edit_request("p", "https://cdn.example/a.png", mask=huge)
    assert len(str(info.value)) < 500
    assert "100023 chars" in str(info.value)


# -- webhooks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [V15, V2])
def test_webhook_headers(model: str) -> None:
    plain = build_generate_request("p", model=model, webhook_url="https://hooks.example/cb?x=1")
    assert plain.headers == {"X-Webhook-URL": "https://hooks.example/cb?x=1"}
    for mode in ("terminal", "sync"):
        request = build_generate_request("p", model=model, webhook_url="https://hooks.example/cb", webhook_mode=mode)
        assert request.headers == {"X-Webhook-URL": "https://hooks.example/cb", "X-Webhook-Mode": mode}
        assert "X-Webhook-URL" not in request.body


# -- models.py still answers for the names that moved to responses.py ------------------------------


def test_response_names_stay_importable_from_models() -> None:
    from airflow_provider_pixazo import models, responses

    for name in ("RequestResult", "RequestStatus", "Submission", "validate_request_id", "STATUS_PATH"):
        assert getattr(models, name) is getattr(responses, name)
        assert name in models.__all__


def test_a_new_model_is_one_registry_entry() -> None:
    """Wire names, sizes and backgrounds come from the ModelSpec alone: nothing else names a model."""
    spec = ModelSpec(
        name="toy",
        model_id="toy",
        generate_path="/toy/v1/generate",
        edit_path=None,
        wire_names={"prompt": "text", "size": "dimensions", "n": "count"},
        sizes=("512x512",),
        custom_sizes=False,
        backgrounds=(),
    )
    options = spec.check_options({"size": "512x512", "n": 3, "quality": None})
    assert spec.wire_body(options) == {"dimensions": "512x512", "count": 3}
    with pytest.raises(PixazoValidationError, match="toy does not take quality"):
        spec.check_options({"quality": "high"})
    with pytest.raises(PixazoValidationError, match="toy takes one of 512x512"):
        spec.check_options({"size": "1024x1024"})


def test_an_unknown_option_name_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown image options sise"):
        build_generate_request("p", sise="1024x1024")
