"""manifest.jsonl: one JSON line per item, published whole, replaced by each try."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from airflow_provider_pixazo.batch._manifest import MANIFEST_NAME, ManifestLine, read_manifest, write_manifest
from airflow_provider_pixazo.batch._store import file_template

log = logging.getLogger("test.manifest")


def test_one_line_per_item_in_order_and_replaced_by_the_next_try(tmp_path: Path) -> None:
    root = ObjectStoragePath(f"file://{tmp_path}")
    files = [{"uri": f"file://{tmp_path}/a.png", "size": 3, "sha256": "ab" * 32, "media_type": "image/png"}]
    first = [
        ManifestLine(0, "a", "un café, s'il vous plaît", "gpt-image-2_1", "completed", None, files),
        ManifestLine(1, "b", "x", None, "uncertain", "may have been accepted"),
    ]
    uri = write_manifest(root, first, log)
    assert uri == f"file://{tmp_path}/{MANIFEST_NAME}"
    text = (tmp_path / MANIFEST_NAME).read_text(encoding="utf-8")
    assert text.count("\n") == 2
    assert "café" in text  # UTF-8, not escaped
    assert json.loads(text.splitlines()[1]) == {
        "index": 1,
        "key": "b",
        "prompt": "x",
        "request_id": None,
        "status": "uncertain",
        "error": "may have been accepted",
        "files": [],
    }
    write_manifest(root, first[:1], log)
    assert [line["key"] for line in read_manifest(root / MANIFEST_NAME)] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]  # no temporary file left behind


def test_file_names_follow_the_key() -> None:
    assert file_template("sku-1", 1) == "sku-1.{ext}"
    assert file_template("sku-1", 3) == "sku-1-{index}.{ext}"
