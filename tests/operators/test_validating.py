"""Bad input fails the task before any HTTP call, naming the parameter, the value and what is allowed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import respx
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_pixazo.exceptions import (
    PixazoValidationError,
)
from tests.conftest import FakeTaskStateStore, make_context
from tests.operators.conftest import (
    HTTPS_IMAGE,
    assert_no_http,
    edit,
    generate,
)

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
        pytest.param({"max_poll_interval": 0}, "max_poll_interval", id="max-poll-zero"),
        pytest.param({"max_poll_interval": float("inf")}, "max_poll_interval", id="max-poll-infinite"),
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
