"""
A table of invalid inputs: each fails with an error naming the input, and the gateway hears nothing.

Every row runs the real component (operator ``execute``, sensor ``execute``, trigger construction,
transfer construction or ``execute``) against a running emulator and asserts ``emulator.calls == []``:
a bad input never costs a request, let alone a paid submit.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
import pytest
from PIL import Image

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.media import MAX_INPUT_IMAGE_BYTES
from airflow_provider_pixazo.operators.pixazo import PixazoEditImageOperator, PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

pytestmark = pytest.mark.integration

HTTPS_IMAGE = "https://cdn.example.com/input.png"


def _png(size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Input files, good and bad; the 51 MB one is sparse (a PNG header, then a hole), so it costs nothing."""
    png = tmp_path / "good.png"
    png.write_bytes(_png())
    jpeg = tmp_path / "photo.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "black").save(buffer, format="JPEG")
    jpeg.write_bytes(buffer.getvalue())
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    big = tmp_path / "huge.png"
    with big.open("wb") as handle:
        handle.write(_png()[:64])
        handle.truncate(MAX_INPUT_IMAGE_BYTES + 1024 * 1024)
    directory = tmp_path / "a-folder.png"
    directory.mkdir()
    dangling = tmp_path / "dangling.png"
    os.symlink(tmp_path / "gone.png", dangling)
    return {
        "png": str(png),
        "jpeg": str(jpeg),
        "text": str(text),
        "empty": str(empty),
        "big": str(big),
        "dir": str(directory),
        "dangling": str(dangling),
        "missing": str(tmp_path / "missing.png"),
        "through_a_file": str(png) + "/inside.png",
        "dest": str(tmp_path / "out"),
    }


@dataclass(frozen=True)
class Row:
    """One invalid input: how to hit it, and the parameter the error must name."""

    id: str
    parameter: str
    run: Callable[[dict[str, str]], Any]


class _TaskInstance:
    """Just enough of a task instance for ``execute`` (operators push an empty image list first)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _context() -> dict[str, Any]:
    return {"ti": _TaskInstance()}


def _generate(**kwargs: Any) -> Callable[[dict[str, str]], Any]:
    def run(files: dict[str, str]) -> Any:
        kwargs.setdefault("prompt", "a lighthouse")
        return PixazoGenerateImageOperator(task_id="generate", **kwargs).execute(_context())

    return run


def _edit(**kwargs: Any) -> Callable[[dict[str, str]], Any]:
    def run(files: dict[str, str]) -> Any:
        resolved = {k: _resolve(v, files) for k, v in kwargs.items()}
        resolved.setdefault("prompt", "add a flamingo")
        resolved.setdefault("images", HTTPS_IMAGE)
        return PixazoEditImageOperator(task_id="edit", **resolved).execute(_context())

    return run


def _resolve(value: Any, files: dict[str, str]) -> Any:
    """``"@name"`` stands for a path from the ``files`` fixture."""
    if isinstance(value, str) and value.startswith("@"):
        return files[value[1:]]
    if isinstance(value, list):
        return [_resolve(v, files) for v in value]
    return value


def _sensor(request_id: Any) -> Callable[[dict[str, str]], Any]:
    def run(files: dict[str, str]) -> Any:
        return PixazoRequestSensor(task_id="wait", request_id=request_id, deferrable=True).execute(_context())

    return run


def _poke_sensor(request_id: Any) -> Callable[[dict[str, str]], Any]:
    def run(files: dict[str, str]) -> Any:
        return PixazoRequestSensor(task_id="wait", request_id=request_id, deferrable=False).execute(_context())

    return run


def _trigger(**kwargs: Any) -> Callable[[dict[str, str]], Any]:
    def run(files: dict[str, str]) -> Any:
        kwargs.setdefault("request_id", "gpt-image-2_0000")
        return PixazoRequestTrigger(**kwargs)

    return run


def _transfer(*, execute: bool = False, **kwargs: Any) -> Callable[[dict[str, str]], Any]:
    def run(files: dict[str, str]) -> Any:
        resolved = {k: _resolve(v, files) for k, v in kwargs.items()}
        resolved.setdefault("request_id", "gpt-image-2_0000")
        resolved.setdefault("destination", files["dest"])
        operator = PixazoToObjectStorageOperator(task_id="store", **resolved)
        return operator.execute(_context()) if execute else operator

    return run


def _templated(operator_class: type, field_values: dict[str, Any], params: dict[str, Any]) -> Callable[..., Any]:
    """Build the task in a DAG, render its templates with ``params`` as a run would, then execute it."""

    def run(files: dict[str, str]) -> Any:
        from airflow.sdk import DAG

        with DAG("bad_inputs", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
            task = operator_class(task_id="templated", **field_values)
        task.render_template_fields({"params": params, "var": {}, "ti": _TaskInstance()})
        return task.execute(_context())

    return run


ROWS = [
    # -- generate: the prompt
    Row("generate-prompt-empty", "prompt", _generate(prompt="")),
    Row("generate-prompt-blank", "prompt", _generate(prompt="  \n\t ")),
    Row("generate-prompt-none", "prompt", _generate(prompt=None)),
    Row("generate-prompt-not-text", "prompt", _generate(prompt=12345)),
    Row("generate-prompt-over-32000-chars", "prompt", _generate(prompt="x" * 32_001)),
    # -- generate: model and output parameters
    Row("generate-model-unknown", "model", _generate(model="dall-e-3")),
    Row("generate-size-word", "size", _generate(size="big")),
    Row("generate-size-not-multiple-of-16", "size", _generate(size="1000x1000")),
    Row("generate-size-edge-over-3840", "size", _generate(size="4096x1024")),
    Row("generate-size-ratio-over-3-to-1", "size", _generate(size="3840x1024")),
    Row("generate-size-2048-on-gpt-image-1.5", "size", _generate(model="gpt-image-1.5", size="2048x2048")),
    Row("generate-quality-unknown", "quality", _generate(quality="ultra")),
    Row("generate-background-transparent-gpt-image-2", "background", _generate(background="transparent")),
    Row(
        "generate-background-transparent-with-jpeg",
        "background",
        _generate(model="gpt-image-1.5", background="transparent", output_format="jpeg"),
    ),
    Row("generate-n-zero", "n", _generate(n=0)),
    Row("generate-n-eleven", "n", _generate(n=11)),
    Row("generate-n-bool", "n", _generate(n=True)),
    Row("generate-n-word", "n", _generate(n="three")),
    Row("generate-format-gif", "output_format", _generate(output_format="gif")),
    Row("generate-compression-101", "output_compression", _generate(output_format="jpeg", output_compression=101)),
    Row("generate-compression-with-png", "output_compression", _generate(output_compression=50)),
    Row(
        "generate-compression-on-gpt-image-1.5",
        "output_compression",
        _generate(model="gpt-image-1.5", output_compression=5),
    ),
    Row("generate-moderation-unknown", "moderation", _generate(moderation="none")),
    Row("generate-moderation-on-gpt-image-1.5", "moderation", _generate(model="gpt-image-1.5", moderation="low")),
    Row("generate-extra-params-clash", "extra_params", _generate(extra_params={"prompt": "other"})),
    Row("generate-extra-params-not-a-dict", "extra_params", _generate(extra_params="size=big")),
    # -- generate: webhook and wait settings
    Row("generate-webhook-plain-http", "webhook_url", _generate(webhook_url="http://hooks.example.com/pixazo")),
    Row("generate-webhook-ftp", "webhook_url", _generate(webhook_url="ftp://hooks.example.com/pixazo")),
    Row(
        "generate-webhook-mode-unknown",
        "webhook_mode",
        _generate(webhook_url="https://h.example.com/x", webhook_mode="always"),
    ),
    Row("generate-webhook-mode-without-url", "webhook_mode", _generate(webhook_mode="sync")),
    Row("generate-poll-interval-zero", "poll_interval", _generate(poll_interval=0)),
    Row("generate-poll-interval-nan", "poll_interval", _generate(poll_interval=float("nan"))),
    Row("generate-timeout-negative", "timeout", _generate(timeout=-1)),
    # -- edit: images and masks
    Row("edit-images-empty-list", "images", _edit(images=[])),
    Row("edit-images-17", "images", _edit(images=[HTTPS_IMAGE] * 17)),
    Row("edit-image-plain-http", "images[0]", _edit(images="http://cdn.example.com/a.png")),
    Row("edit-image-missing-path", "images[0]", _edit(images="@missing")),
    Row("edit-image-directory", "images[0]", _edit(images="@dir")),
    Row("edit-image-dangling-symlink", "images[0]", _edit(images="@dangling")),
    Row("edit-image-path-through-a-file", "images[0]", _edit(images="@through_a_file")),
    Row("edit-image-not-an-image", "images[0]", _edit(images="@text")),
    Row("edit-image-empty-file", "images[0]", _edit(images="@empty")),
    Row("edit-image-over-50MB", "images[0]", _edit(images="@big")),
    Row("edit-image-blank-string", "images[0]", _edit(images="   ")),
    Row("edit-second-image-bad", "images[1]", _edit(images=["@png", "@text"])),
    Row("edit-image-text-data-uri", "images[0]", _edit(images="data:text/plain;base64,aGVsbG8=")),
    Row("edit-mask-plain-http", "mask", _edit(mask="http://cdn.example.com/mask.png")),
    Row("edit-mask-jpeg-file", "mask", _edit(mask="@jpeg")),
    Row("edit-mask-jpeg-data-uri", "mask", _edit(mask="data:image/jpeg;base64,/9j/4AAQ")),
    Row("edit-mask-missing-path", "mask", _edit(mask="@missing")),
    Row("edit-model-cannot-edit", "model", _edit(model="gpt-image-1.5")),
    # -- request ids: sensor (deferrable and poke), trigger, transfer
    Row("sensor-request-id-dot-dot", "request_id", _sensor("../../v1/admin")),
    Row("sensor-request-id-slash", "request_id", _sensor("gpt-image-2_abc/../../x")),
    Row("sensor-request-id-query", "request_id", _sensor("gpt-image-2_abc?status=COMPLETED")),
    Row("sensor-request-id-encoded-slash", "request_id", _sensor("..%2F..%2Fadmin")),
    Row("sensor-request-id-empty", "request_id", _sensor("")),
    Row("sensor-request-id-none", "request_id", _sensor(None)),
    Row("poke-sensor-request-id-space", "request_id", _poke_sensor("gpt-image-2 abc")),
    Row("trigger-request-id-dot-dot", "request_id", _trigger(request_id="../x")),
    Row("trigger-poll-interval-zero", "poll_interval", _trigger(poll_interval=0)),
    Row("trigger-max-poll-interval-text", "max_poll_interval", _trigger(max_poll_interval="60")),
    Row("trigger-timeout-negative", "timeout", _trigger(timeout=-5)),
    Row("transfer-request-id-slash", "request_id", _transfer(request_id="a/b")),
    # -- transfer: destinations, layouts, provenance
    Row("transfer-destination-empty", "destination", _transfer(destination="", execute=True)),
    Row("transfer-destination-not-a-path", "destination", _transfer(destination=42, execute=True)),
    Row("transfer-destination-s3-without-bucket", "destination", _transfer(destination="s3://", execute=True)),
    Row("transfer-destination-dot-dot", "destination", _transfer(destination="file:///tmp/x/../../etc", execute=True)),
    Row("transfer-path-template-escapes", "path_template", _transfer(path_template="../{request_id}/{index}.{ext}")),
    Row("transfer-path-template-absolute", "path_template", _transfer(path_template="/etc/{index}.{ext}")),
    Row(
        "transfer-path-template-unknown-field", "path_template", _transfer(path_template="{request_id}/{secret}.{ext}")
    ),
    Row("transfer-path-template-backslash", "path_template", _transfer(path_template="{request_id}\\{index}.{ext}")),
    Row("transfer-max-concurrency-zero", "max_concurrency", _transfer(max_concurrency=0)),
    Row("transfer-provenance-not-a-dict", "provenance", _transfer(provenance="prompt=x")),
    Row("transfer-provenance-not-json", "provenance", _transfer(provenance={"when": object()}, execute=True)),
    # -- templated values, checked once rendered (as in a run), before any HTTP
    Row(
        "templated-prompt-renders-empty",
        "prompt",
        _templated(PixazoGenerateImageOperator, {"prompt": "{{ params.prompt }}"}, {"prompt": ""}),
    ),
    Row(
        "templated-prompt-renders-blank",
        "prompt",
        _templated(PixazoGenerateImageOperator, {"prompt": "{{ params.prompt }}"}, {"prompt": "   "}),
    ),
    Row(
        "templated-n-renders-zero",
        "n",
        _templated(PixazoGenerateImageOperator, {"prompt": "x", "n": "{{ params.n }}"}, {"n": 0}),
    ),
    Row(
        "templated-webhook-renders-http",
        "webhook_url",
        _templated(
            PixazoGenerateImageOperator, {"prompt": "x", "webhook_url": "{{ params.hook }}"}, {"hook": "http://h/x"}
        ),
    ),
    Row(
        "templated-sensor-request-id-renders-path",
        "request_id",
        _templated(PixazoRequestSensor, {"request_id": "{{ params.rid }}", "deferrable": True}, {"rid": "../../x"}),
    ),
    Row(
        "templated-transfer-request-id-renders-path",
        "request_id",
        _templated(
            PixazoToObjectStorageOperator,
            {"request_id": "{{ params.rid }}", "destination": "/tmp/pixazo-bad-inputs"},
            {"rid": "a/../../b"},
        ),
    ),
    Row(
        "templated-transfer-path-template-renders-escape",
        "path_template",
        _templated(
            PixazoToObjectStorageOperator,
            {
                "request_id": "gpt-image-2_0000",
                "destination": "/tmp/pixazo-bad-inputs",
                "path_template": "{{ params.t }}",
            },
            {"t": "../{index}.{ext}"},
        ),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_is_named_and_costs_no_request(
    row: Row, files: dict[str, str], pixazo_emulator: PixazoEmulator
) -> None:
    with pytest.raises(PixazoValidationError) as caught:
        row.run(files)

    error = caught.value
    assert error.parameter == row.parameter, str(error)
    assert str(error).startswith(f"Invalid {row.parameter}="), str(error)
    assert pixazo_emulator.calls == []


def test_the_table_is_large_enough() -> None:
    components = {row.id.split("-")[0] for row in ROWS}
    assert len(ROWS) >= 40
    assert {"generate", "edit", "sensor", "trigger", "transfer", "templated"} <= components
    assert len({row.id for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("images", [42, 3.5], ids=["int", "float"])
def test_edit_images_of_the_wrong_type_are_named(
    images: Any, files: dict[str, str], pixazo_emulator: PixazoEmulator
) -> None:
    with pytest.raises(PixazoValidationError) as caught:
        PixazoEditImageOperator(task_id="edit", prompt="x", images=images).execute(_context())
    assert caught.value.parameter == "images"
    assert pixazo_emulator.calls == []
