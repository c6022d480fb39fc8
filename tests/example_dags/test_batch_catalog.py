"""
``pixazo_batch_catalog`` under a real ``dag.test()``, in every configuration its docstring describes.

Prompts from the upstream task or from a JSONL file; images to local disk or to S3 (a moto server on
127.0.0.1 that only the named AWS connection reaches). The batch's trigger runs inline in dag.test().
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = [pytest.mark.dagrun, pytest.mark.integration]

DAG_ID = "pixazo_batch_catalog"
AWS_CONN_ID = "aws_pixazo_catalog"


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _run_folder(destination: Path) -> Path:
    (folder,) = (destination / "catalog").iterdir()
    return folder


def _manifest(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_prompts_from_the_upstream_task_to_local_disk(run_dag: Any, pixazo_emulator: PixazoEmulator) -> None:
    dag_run = run_dag(DAG_ID, run_conf={"count": 5, "quality": "medium"})

    assert str(dag_run.state) == "success", _states(dag_run)
    assert pixazo_emulator.submit_count() == 5
    assert {job.body["quality"] for job in pixazo_emulator.requests.values()} == {"medium"}
    folder = _run_folder(dag_run.destination)
    lines = _manifest(folder)
    assert [line["key"] for line in lines] == [f"sku-{n:04d}" for n in range(5)]
    assert {line["status"] for line in lines} == {"completed"}
    assert sorted(p.name for p in folder.glob("*.png")) == [f"sku-{n:04d}.png" for n in range(5)]
    for line in lines:
        (file,) = line["files"]
        assert file["uri"] == f"file://{folder}/{line['key']}.png"
        assert file["size"] == (folder / f"{line['key']}.png").stat().st_size


def test_prompts_from_a_jsonl_file_to_local_disk(
    run_dag: Any, pixazo_emulator: PixazoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"key": "hero", "prompt": "A hero banner of a mountain lake", "size": "1536x1024"}\n'
        '{"key": "thumb", "prompt": "A small icon of a pine tree"}\n'
        '{"key": "bad", "prompt": "A [fail] picture"}\n'
    )
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_BATCH_PROMPTS_URI", prompts.as_uri())

    dag_run = run_dag(DAG_ID)

    # One failure is within max_failed=2: the task succeeds and says so in its counts.
    assert str(dag_run.state) == "success", _states(dag_run)
    assert pixazo_emulator.submit_count() == 3
    folder = _run_folder(dag_run.destination)
    assert [(line["key"], line["status"]) for line in _manifest(folder)] == [
        ("hero", "completed"),
        ("thumb", "completed"),
        ("bad", "failed"),
    ]
    assert sorted(p.name for p in folder.glob("*.png")) == ["hero.png", "thumb.png"]
    sizes = {job.body["size"] for job in pixazo_emulator.requests.values()}
    assert sizes == {"1536x1024", "1024x1024"}


def test_prompts_from_s3_to_s3_through_the_named_connection(
    run_dag: Any, pixazo_emulator: PixazoEmulator, s3_only_through: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = s3_only_through(AWS_CONN_ID, "pixazo-catalog")
    lines = [json.dumps({"key": f"p{n}", "prompt": f"A paper crane, number {n}"}) for n in range(4)]
    s3.put_object(Bucket="pixazo-catalog", Key="in/prompts.jsonl", Body="\n".join(lines).encode())
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_BATCH_PROMPTS_URI", "s3://pixazo-catalog/in/prompts.jsonl")
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_BATCH_PROMPTS_CONN_ID", AWS_CONN_ID)
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_DESTINATION", "s3://pixazo-catalog/out")
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_DESTINATION_CONN_ID", AWS_CONN_ID)

    dag_run = run_dag(DAG_ID)

    assert str(dag_run.state) == "success", _states(dag_run)
    assert pixazo_emulator.submit_count() == 4
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="pixazo-catalog", Prefix="out/")["Contents"])
    (run_prefix,) = {key.rsplit("/", 1)[0] for key in keys}
    assert keys == sorted([f"{run_prefix}/p{n}.png" for n in range(4)] + [f"{run_prefix}/manifest.jsonl"])
    manifest = s3.get_object(Bucket="pixazo-catalog", Key=f"{run_prefix}/manifest.jsonl")["Body"].read()
    entries = [json.loads(line) for line in manifest.decode().splitlines()]
    uris = [entry["files"][0]["uri"] for entry in entries]
    assert uris == [f"s3://pixazo-catalog/{run_prefix}/p{n}.png" for n in range(4)]
    body = s3.get_object(Bucket="pixazo-catalog", Key=f"{run_prefix}/p0.png")["Body"].read()
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    assert not any(Path(dag_run.destination).iterdir())  # nothing went to local disk


def test_two_hundred_prompts_in_one_task(run_dag: Any, pixazo_emulator: PixazoEmulator) -> None:
    started = time.monotonic()
    dag_run = run_dag(DAG_ID, run_conf={"count": 200})
    elapsed = time.monotonic() - started

    assert str(dag_run.state) == "success", _states(dag_run)
    assert pixazo_emulator.submit_count() == 200
    prompts = [call.json["prompt"] for call in pixazo_emulator.calls if call.method == "POST"]
    assert len(set(prompts)) == 200  # no duplicate submit
    folder = _run_folder(dag_run.destination)
    assert len(list(folder.glob("*.png"))) == 200
    assert len(_manifest(folder)) == 200
    print(f"200 prompts via dag.test(): {elapsed:.1f}s")
