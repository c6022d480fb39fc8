"""Where the transfer writes: path templates, destinations and layouts, checked without any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.transfers._destination import check_layout, is_local, uri_of
from airflow_provider_pixazo.transfers._provenance import sidecar_relative_path
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import resolve_destination, validate_path_template

RID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"


def test_validate_path_template_accepts_safe_patterns() -> None:
    assert validate_path_template("{request_id}/{index}.{ext}") == "{request_id}/{index}.{ext}"
    assert validate_path_template("a/b/{request_id}_{index:04d}.{ext}")


def test_resolve_destination_forms(tmp_path: Path) -> None:
    assert resolve_destination(str(tmp_path)).path == str(tmp_path)
    assert resolve_destination(tmp_path).protocol == "file"
    s3 = resolve_destination("s3://bucket/prefix")
    assert (s3.protocol, s3.path) == ("s3", "bucket/prefix")
    assert uri_of(s3) == "s3://bucket/prefix"
    assert not is_local(s3)
    given = ObjectStoragePath(f"file://{tmp_path}")
    assert resolve_destination(given).path == str(tmp_path)
    assert is_local(given)
    with pytest.raises(PixazoValidationError, match="bucket"):
        resolve_destination("s3://")


def test_a_double_slash_local_path_is_the_absolute_path(tmp_path: Path) -> None:
    assert resolve_destination("/" + str(tmp_path)).path == str(tmp_path)
    assert resolve_destination(f"file://{tmp_path}").path == str(tmp_path)


@pytest.mark.parametrize(
    "uri", ["file://localhost/data", "file://./data", "file:////data", "file://~/x", "local://data"]
)
def test_a_local_uri_that_would_resolve_against_the_process_is_refused(uri: str) -> None:
    with pytest.raises(PixazoValidationError, match=r"destination.*file:///absolute/path"):
        resolve_destination(uri)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{request_id}/{index}.{ext}", f"{RID}/provenance.json"),
        ("gallery/{request_id}-{index:03d}.{ext}", f"gallery/{RID}.provenance.json"),
        ("{index}/{request_id}.{ext}", f"{RID}/provenance.json"),
        ("{request_id}_{index}.{ext}", f"{RID}.provenance.json"),
    ],
)
def test_sidecar_goes_beside_the_images_when_they_share_a_directory(template: str, expected: str) -> None:
    assert sidecar_relative_path(template, RID) == expected


def test_layout_refuses_two_images_on_one_path() -> None:
    check_layout("{request_id}/{index}.{ext}", RID, "image/png", 3, f"{RID}/provenance.json")
    with pytest.raises(PixazoValidationError, match=r"image 1 and image 0 both map to"):
        check_layout("{request_id}.{ext}", RID, "image/png", 2, None)


def test_layout_refuses_an_image_on_the_sidecar() -> None:
    with pytest.raises(PixazoValidationError, match="the provenance sidecar"):
        check_layout("{request_id}/provenance.json", RID, "image/png", 1, f"{RID}/provenance.json")
    # Without a sidecar that path is free.
    check_layout("{request_id}/provenance.json", RID, "image/png", 1, None)


def test_layout_with_a_generic_media_type_checks_every_extension() -> None:
    # Image 0 as .jpg and image 1 as .png cannot collide, but {index} is still needed for two images.
    with pytest.raises(PixazoValidationError, match="add \\{index\\}"):
        check_layout("{request_id}.{ext}", RID, "application/octet-stream", 2, None)


_FRESH_INTERPRETER_WRITE = """
import sys
from airflow_provider_pixazo.transfers._destination import resolve_destination
path = resolve_destination(sys.argv[1]) / "a.png"
path.write_bytes(b"x")
print(type(path.fs).__name__, path.read_bytes().decode(), "airflow.providers.amazon.aws.fs.s3" in sys.modules)
"""


def test_a_local_destination_writes_without_importing_every_providers_file_system(tmp_path: Path) -> None:
    """Airflow's ``get_fs`` imports every provider's file system first (boto3 with the amazon one)."""
    import subprocess
    import sys

    pytest.importorskip("airflow.providers.amazon")  # the module that would be imported
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_INTERPRETER_WRITE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["LocalFileSystem", "x", "False"], done.stderr[-2000:]
    assert (tmp_path / "a.png").read_bytes() == b"x"


def test_a_file_store_the_dag_attached_is_kept(tmp_path: Path) -> None:
    from airflow.sdk.io import attach
    from airflow.sdk.io.store import _STORE_CACHE
    from fsspec.implementations.local import LocalFileSystem

    class Traced(LocalFileSystem):
        pass

    saved = {alias: _STORE_CACHE.pop(alias, None) for alias in ("file", "local")}
    try:
        attach("file", fs=Traced())
        assert isinstance(resolve_destination(str(tmp_path)).fs, Traced)
    finally:
        for alias, store in saved.items():
            _STORE_CACHE.pop(alias, None)
            if store is not None:
                _STORE_CACHE[alias] = store


_FRESH_INTERPRETER_WARM_UP = """
import sys
from airflow_provider_pixazo.plugins.manifest import warm_up_object_storage
from airflow_provider_pixazo.storage import attach_local_filesystem
attach_local_filesystem()  # a request that resolved a local destination first
warm_up_object_storage()
print("airflow.providers.amazon.aws.fs.s3" in sys.modules)
"""


def test_the_view_warm_up_still_registers_every_file_system_after_a_local_attach() -> None:
    """The api-server's warm-up runs beside its first requests: a local attach must not make it a no-op."""
    import subprocess
    import sys

    pytest.importorskip("airflow.providers.amazon")
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_INTERPRETER_WARM_UP], capture_output=True, text=True, timeout=120, check=True
    )
    # The last line: Airflow 3.2 logs to stdout on the way.
    assert done.stdout.splitlines()[-1:] == ["True"], (done.stdout[-2000:], done.stderr[-2000:])
