"""
OpenLineage of the transfer and edit operators.

Unit: dataset names per the OpenLineage naming spec. Real: ``airflow dags test pixazo_edit_pipeline``
with the OpenLineage provider (installed from requirements/ci.txt) writing its events to a file;
the COMPLETE events of ``store_base``, ``edit`` and ``store_edit`` carry the datasets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.lineage import dataset_name, edit_lineage, transfer_lineage
from airflow_provider_pixazo.testing.emulator import PixazoEmulator

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/images/a/0.png", ("s3://bucket", "images/a/0.png")),
        ("s3a://bucket/k.png", ("s3://bucket", "k.png")),
        ("gs://bucket/k.png", ("gs://bucket", "k.png")),
        ("gcs://bucket/k.png", ("gs://bucket", "k.png")),
        ("file:///data/images/0.png", ("file", "/data/images/0.png")),
        ("/data/images/0.png", ("file", "/data/images/0.png")),
        ("https://cdn.pixazo.ai/media/x.png?sig=SECRET", ("https://cdn.pixazo.ai", "/media/x.png")),
        ("http://127.0.0.1:8080/media/x.png", ("http://127.0.0.1:8080", "/media/x.png")),
        ("s3://bucket", ("s3://bucket", "/")),
        ("data:image/png;base64,AAAA", None),
        ("", None),
    ],
)
def test_dataset_names_follow_the_naming_spec(uri: str, expected: tuple[str, str] | None) -> None:
    assert dataset_name(uri) == expected


def test_transfer_lineage_from_the_recorded_summary() -> None:
    summary = {
        "request_id": "gpt-image-2_1",
        "files": [{"index": 0, "uri": "s3://b/p/0.png"}, {"index": 1, "uri": "s3://b/p/1.png"}],
        "provenance_uri": "s3://b/p/provenance.json",
        "sources": ["https://cdn.pixazo.ai/m/0.png", "https://cdn.pixazo.ai/m/1.png"],
    }
    lineage = transfer_lineage(summary)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("https://cdn.pixazo.ai", "/m/0.png"),
        ("https://cdn.pixazo.ai", "/m/1.png"),
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("s3://b", "p/0.png"),
        ("s3://b", "p/1.png"),
        ("s3://b", "p/provenance.json"),
    ]
    empty = transfer_lineage(None)
    assert (empty.inputs, empty.outputs) == ([], [])


def test_edit_lineage_reports_stored_and_https_inputs_only() -> None:
    lineage = edit_lineage(["s3://b/in.png", "https://x.test/a.png", "data:image/png;base64,AAAA"], "/tmp/mask.png")
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("s3://b", "in.png"),
        ("https://x.test", "/a.png"),
        ("file", "/tmp/mask.png"),
    ]
    assert lineage.outputs == []


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _complete(events: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    found = [
        e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"pixazo_edit_pipeline.{task_id}"
    ]
    assert len(found) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    return found[0]


def _names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


@pytest.mark.dagrun
def test_real_run_emits_complete_events_with_datasets(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    home, images, events = tmp_path / "home", tmp_path / "images", tmp_path / "openlineage.jsonl"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__") and k != "AIRFLOW_HOME"}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_VAR_PIXAZO_DESTINATION": images.as_uri(),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "pixazo-test",
        }
    )
    for args in (["db", "migrate"], ["dags", "test", "pixazo_edit_pipeline"]):
        done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    emitted = _events(events)
    media = f"http://127.0.0.1:{pixazo_emulator.url.rsplit(':', 1)[1].rstrip('/')}"
    for task_id in ("store_base", "store_edit"):
        event = _complete(emitted, task_id)
        sidecars = sorted(images.glob("*/provenance.json"))
        written = {(("file", str(p))) for p in images.rglob("*") if p.is_file()}
        outputs = _names(event["outputs"])
        assert len(outputs) == 2  # one image and its provenance sidecar
        assert set(outputs) <= written
        assert outputs[1][1].endswith("/provenance.json")
        assert ("file", str(Path(outputs[0][1]).with_name("provenance.json"))) == outputs[1]
        assert any(str(s) == outputs[1][1] for s in sidecars)
        inputs = _names(event["inputs"])
        assert len(inputs) == 1
        assert inputs[0][0] == media
        assert inputs[0][1].startswith("/media/")

    edit = _complete(emitted, "edit")
    stored_base = _names(_complete(emitted, "store_base")["outputs"])[0]
    edit_inputs = _names(edit["inputs"])
    assert edit_inputs[0] == stored_base  # the stored image it edited
    assert edit_inputs[1][0] == "file"
    assert edit_inputs[1][1].endswith(".png")  # the mask make_mask wrote
    assert "pixazo-mask-" in edit_inputs[1][1]
