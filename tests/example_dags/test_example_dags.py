"""
Every example DAG parses, and runs end to end under a real ``dag.test()`` against the local emulator.

These are the proof of the whole path: operators, the deferrable trigger (run inline by dag.test),
the sensor, the transfer, XCom, pools and mapping, with real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.example_dags.test_ending_in_the_triggerer import link_urls, xcoms

pytestmark = [pytest.mark.dagrun, pytest.mark.integration]

EXAMPLES = ["pixazo_daily_content", "pixazo_one_task", "pixazo_edit_pipeline", "pixazo_images_consumer"]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".png", ".jpg", ".webp"})


def _states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def test_every_example_dag_parses(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(EXAMPLES) <= set(dagbag.dag_ids)


def test_every_wait_and_transfer_retries(dagbag: Any) -> None:
    """They cost nothing to retry, and Airflow can fail a healthy one (apache/airflow#66374): see the README."""
    from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
    from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

    checked = []
    for dag_id in EXAMPLES:
        for task in dagbag.get_dag(dag_id).tasks:
            waits = getattr(task, "wait_for_completion", False)
            if waits or isinstance(task, PixazoRequestSensor | PixazoToObjectStorageOperator):
                assert task.retries >= 2, f"{dag_id}.{task.task_id}"
                checked.append(task.task_id)
    # daily: wait, store; edit: generate_base, store_base, edit, store_edit; one task.
    assert len(checked) == 7, checked


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-1.5"])
def test_daily_content_runs_end_to_end(run_dag: Any, pixazo_emulator: PixazoEmulator, model: str) -> None:
    dag_run = run_dag("pixazo_daily_content", run_conf={"model": model})

    assert str(dag_run.state) == "success", _states(dag_run)
    # A 4-way mapped pipeline; one paid submit per prompt, never more.
    assert pixazo_emulator.submit_count() == 4
    images = _images(dag_run.destination)
    assert len(images) == 4
    for image in images:
        with Image.open(image) as picture:
            assert picture.format == "PNG"
            assert picture.size == (1024, 1024)
        sidecar = json.loads((image.parent / "provenance.json").read_text())
        assert sidecar["request_id"] == image.parent.name
        assert sidecar["provenance"]["model"] == model
    expected_path = {"gpt-image-2": "/gpt-image-2/v1/text-to-image"}.get(
        model, "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
    )
    assert {job.path for job in pixazo_emulator.requests.values()} == {expected_path}
    # Media downloads never carry the key.
    media = [call for call in pixazo_emulator.calls if call.path.startswith("/media/")]
    assert media
    assert not any(call.sent_key for call in media)


def test_one_task_waits_in_the_triggerer(run_dag: Any, pixazo_emulator: PixazoEmulator) -> None:
    dag_run = run_dag("pixazo_one_task")

    assert str(dag_run.state) == "success", _states(dag_run)
    assert pixazo_emulator.submit_count() == 1
    assert [ti.task_id for ti in dag_run.get_task_instances()] == ["generate_and_wait"]
    job = next(iter(pixazo_emulator.requests.values()))
    # gpt-image-1.5 wire names, rendered from params.
    assert job.body["num_images"] == 2
    assert job.body["image_size"] == "1536x1024"
    assert job.body["background"] == "transparent"
    # dag.test() resumes the task on its worker: Airflow's end-of-task link resolution stored a URL
    # for each of the two images and nothing for the eight buttons without one.
    media_urls = list(job.media_urls)
    found = xcoms(dag_run, "generate_and_wait")
    assert {key for key in found if key.startswith("_link_")} == {"_link_PixazoImageLink_0", "_link_PixazoImageLink_1"}
    links = link_urls(dag_run, "generate_and_wait")
    assert [links[f"Pixazo image {n}"] for n in range(1, 11)] == [*media_urls, *[None] * 8]


def test_edit_pipeline_sends_stored_image_and_mask_as_data_uris(run_dag: Any, pixazo_emulator: PixazoEmulator) -> None:
    dag_run = run_dag("pixazo_edit_pipeline")

    assert str(dag_run.state) == "success", _states(dag_run)
    assert pixazo_emulator.submit_count() == 2
    edit = next(job for job in pixazo_emulator.requests.values() if "mask" in job.body)
    assert edit.body["image"].startswith("data:image/png;base64,")
    assert edit.body["mask"].startswith("data:image/png;base64,")
    assert len(_images(dag_run.destination)) == 2


def test_remote_failed_fails_the_run_with_pixazos_reason(
    run_dag: Any, pixazo_emulator: PixazoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = run_dag("pixazo_one_task", run_conf={"prompt": "a forbidden thing [fail]"})

    assert str(dag_run.state) == "failed"
    assert pixazo_emulator.submit_count() == 1  # FAILED is terminal: no retry paid for it
    out = capfd.readouterr()
    assert "rejected by the safety system" in out.out + out.err


def test_bad_input_fails_before_any_http(run_dag: Any, pixazo_emulator: PixazoEmulator) -> None:
    dag_run = run_dag("pixazo_one_task", run_conf={"prompt": "   "})

    assert str(dag_run.state) == "failed"
    assert pixazo_emulator.calls == []


def test_insufficient_balance_fails_at_once(
    run_dag: Any, pixazo_emulator: PixazoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    pixazo_emulator.balance = 0

    dag_run = run_dag("pixazo_one_task")

    assert str(dag_run.state) == "failed"
    submits = [call for call in pixazo_emulator.calls if call.method == "POST"]
    assert len(submits) == 1
    out = capfd.readouterr()
    assert "insufficient balance" in (out.out + out.err).lower()


def test_no_xcom_misses_are_logged(
    run_dag: Any, pixazo_emulator: PixazoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """Image links resolve at the end of every task; a missing XCom would log an error per link."""
    dag_run = run_dag("pixazo_daily_content")

    assert str(dag_run.state) == "success"
    out = capfd.readouterr()
    assert "XCom not found" not in out.out + out.err


def test_api_key_never_printed(
    run_dag: Any, pixazo_emulator: PixazoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = run_dag("pixazo_daily_content")

    assert str(dag_run.state) == "success"
    out = capfd.readouterr()
    assert pixazo_emulator.api_key not in out.out + out.err
