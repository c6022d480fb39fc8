"""``media.image_to_reference`` reads object storage only through a connection that exists."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.media import image_to_reference
from tests.transfers.conftest import AWS_CONN_ID, moto_endpoint, s3_bucket, s3_client  # noqa: F401 (fixtures)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (255, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def test_unknown_images_conn_id_is_refused_before_anything_is_read(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import ObjectStoragePath

    path = tmp_path / "in.png"
    path.write_bytes(_png())
    opened: list[Any] = []
    monkeypatch.setattr(ObjectStoragePath, "open", lambda self, *a, **k: opened.append(self))

    with pytest.raises(PixazoValidationError) as caught:
        image_to_reference(f"s3://bucket/{path.name}", parameter="images[0]", conn_id="aws_nope")
    assert caught.value.parameter == "images_conn_id"
    assert "images_conn_id='aws_nope'" in str(caught.value)
    # A local path with a named connection is refused the same way, never read with it ignored.
    with pytest.raises(PixazoValidationError, match="images_conn_id"):
        image_to_reference(str(path), parameter="images[0]", conn_id="aws_nope")
    assert opened == []


def test_the_caller_names_the_connection_parameter(tmp_path: Any) -> None:
    with pytest.raises(PixazoValidationError) as caught:
        image_to_reference("s3://bucket/a.png", parameter="mask", conn_id="nope", conn_parameter="mask_conn_id")
    assert caught.value.parameter == "mask_conn_id"


def test_https_urls_need_no_connection() -> None:
    # Pixazo fetches these itself; the connection is not used, so it is not looked up.
    assert image_to_reference("https://cdn.example/a.png", parameter="images[0]", conn_id="nope") == (
        "https://cdn.example/a.png"
    )


def test_s3_image_is_read_through_the_named_connection(
    s3_bucket: str,  # noqa: F811
    s3_client: Any,  # noqa: F811
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No default credentials anywhere: only the named connection reaches the (moto) bucket.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    data = _png()
    s3_client.put_object(Bucket=s3_bucket, Key="inputs/in.png", Body=data)

    reference = image_to_reference(f"s3://{s3_bucket}/inputs/in.png", parameter="images[0]", conn_id=AWS_CONN_ID)

    assert reference == "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize("nothing", ["", "None"])
def test_a_template_rendering_nothing_reads_without_a_connection(nothing: str, tmp_path: Any) -> None:
    path = tmp_path / "in.png"
    path.write_bytes(_png())
    assert image_to_reference(str(path), parameter="images[0]", conn_id=nothing).startswith("data:image/png;base64,")
