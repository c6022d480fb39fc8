"""The Pixazo view's data: task instances of a run joined on the Pixazo request id."""

from __future__ import annotations

import datetime
from typing import Any

from airflow_provider_pixazo.plugins.view_model import TaskRecord, build_run_view, build_task_view

HOSTILE = "<script>alert(1)</script>"


def _result(request_id: str, urls: list[str], status: str = "COMPLETED", error: str | None = None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "status": status,
        "media_urls": urls,
        "media_type": "image/png",
        "error": error,
        "model_id": "gpt-image-2",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:12Z",
        "completed_at": "2026-01-01T00:00:12.5Z",
    }


def _daily_run(mapped: int) -> list[TaskRecord]:
    tasks = []
    for i in range(mapped):
        rid = f"gpt-image-2_{i}"
        prompt = HOSTILE if i == 0 else f"prompt {i}"
        tasks += [
            TaskRecord(
                "one_image.generate",
                i,
                "PixazoGenerateImageOperator",
                "success",
                xcom={"return_value": rid},
                rendered={"prompt": prompt, "model": "gpt-image-2", "size": "1024x1024", "quality": "low", "n": 1},
            ),
            TaskRecord(
                "one_image.wait",
                i,
                "PixazoRequestSensor",
                "success",
                xcom={
                    "return_value": _result(rid, [f"https://cdn/{i}.png"]),
                    "pixazo_result": _result(rid, [f"https://cdn/{i}.png"]),
                },
                rendered={"request_id": rid},
            ),
            TaskRecord(
                "one_image.store",
                i,
                "PixazoToObjectStorageOperator",
                "success",
                xcom={
                    "return_value": [f"file:///img/{rid}/0.png"],
                    "pixazo_stored": {
                        "request_id": rid,
                        "files": [{"index": 0, "uri": f"file:///img/{rid}/0.png", "size": 10, "sha256": "ab"}],
                        "provenance_uri": f"file:///img/{rid}/provenance.json",
                        "sources": [f"https://cdn/{i}.png"],
                    },
                },
                rendered={"request_id": rid, "provenance": {"prompt": prompt, "model": "gpt-image-2"}},
            ),
        ]
    tasks.append(TaskRecord("unrelated", -1, "PythonOperator", "success", xcom={"return_value": "x"}))
    return tasks


def test_run_view_joins_mapped_tasks_on_the_request_id() -> None:
    tasks = _daily_run(3)
    # The sensor's pixazo_result wins over its return value: make them differ to prove it.
    for t in tasks:
        if t.task_id == "one_image.wait":
            t.xcom["pixazo_result"] = _result(t.xcom["return_value"]["request_id"], [f"https://cdn/r{t.map_index}.png"])
    view = build_run_view("d", "r", tasks)
    assert [(i["task_id"], i["map_index"], i["prompt"], i["url"]) for i in view["images"]] == [
        ("one_image.generate", 0, HOSTILE, "https://cdn/r0.png"),
        ("one_image.generate", 1, "prompt 1", "https://cdn/r1.png"),
        ("one_image.generate", 2, "prompt 2", "https://cdn/r2.png"),
    ]
    assert view["images"][1]["stored_uri"] == "file:///img/gpt-image-2_1/0.png"
    assert "unrelated" not in {t["task_id"] for t in view["tasks"]}
    request = view["requests"]["gpt-image-2_1"]
    assert request["params"] == {
        "prompt": "prompt 1",
        "model": "gpt-image-2",
        "size": "1024x1024",
        "quality": "low",
        "n": 1,
    }
    assert request["result"]["duration_seconds"] == 12.5
    assert request["stored"]["provenance_uri"] == "file:///img/gpt-image-2_1/provenance.json"
    assert request["submitter"] == {"task_id": "one_image.generate", "map_index": 1}


def test_task_view_shows_the_joined_request_on_every_task() -> None:
    view = build_run_view("d", "r", _daily_run(2))
    for task_id in ("one_image.generate", "one_image.wait", "one_image.store"):
        task = build_task_view(view, task_id, 1)
        assert [r["request_id"] for r in task["requests"]] == ["gpt-image-2_1"]
        assert task["requests"][0]["params"]["prompt"] == "prompt 1"
        assert task["requests"][0]["result"]["media_urls"] == ["https://cdn/1.png"]
    every = build_task_view(view, "one_image.store", None)
    assert [r["request_id"] for r in every["requests"]] == ["gpt-image-2_0", "gpt-image-2_1"]
    assert build_task_view(view, "unrelated", None)["requests"] == []


def test_a_failed_request_shows_pixazo_error() -> None:
    failure = _result("gpt-image-2_9", [], status="FAILED", error="moderation_blocked: unsafe prompt")
    tasks = [
        TaskRecord(
            "generate",
            -1,
            "PixazoGenerateImageOperator",
            "failed",
            xcom={"return_value": "gpt-image-2_9", "pixazo_failure": failure},
            rendered={"prompt": "p"},
        )
    ]
    view = build_run_view("d", "r", tasks)
    result = view["requests"]["gpt-image-2_9"]["result"]
    assert (result["status"], result["error"]) == ("FAILED", "moderation_blocked: unsafe prompt")
    assert view["images"] == []


def test_transfer_without_summary_lists_its_returned_uris() -> None:
    tasks = [
        TaskRecord(
            "store",
            -1,
            "PixazoToObjectStorageOperator",
            "success",
            xcom={"return_value": ["s3://b/0.png", "s3://b/1.png"]},
            rendered={"request_id": "gpt-image-2_5"},
            start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        )
    ]
    view = build_run_view("d", "r", tasks)
    stored = view["requests"]["gpt-image-2_5"]["stored"]
    assert [f["uri"] for f in stored["files"]] == ["s3://b/0.png", "s3://b/1.png"]
    assert view["tasks"][0]["start_date"] == "2026-01-01T00:00:00+00:00"
    # No pixazo_stored record to look the files up in: listed, never served, so no image to show.
    assert stored["task"] is None
    assert view["images"] == []


def test_images_prefer_the_stored_copy_by_task_instance_and_position() -> None:
    view = build_run_view("d", "r", _daily_run(2))
    assert [(i["url"], i["stored"]) for i in view["images"]] == [
        ("https://cdn/0.png", {"task_id": "one_image.store", "map_index": 0, "position": 0}),
        ("https://cdn/1.png", {"task_id": "one_image.store", "map_index": 1, "position": 0}),
    ]
    stored = view["requests"]["gpt-image-2_1"]["stored"]
    assert stored["task"] == {"task_id": "one_image.store", "map_index": 1}
    assert [(f["index"], f["position"], f["uri"]) for f in stored["files"]] == [
        (0, 0, "file:///img/gpt-image-2_1/0.png")
    ]


def test_a_transfer_alone_in_its_run_shows_its_stored_copies() -> None:
    """No task of the run waited for the result (the id came from elsewhere): the stored files are the images."""
    files = [{"index": i, "uri": f"s3://b/{i}.png", "size": 9, "sha256": "cd"} for i in (1, 0)]
    tasks = [
        TaskRecord(
            "store",
            -1,
            "PixazoToObjectStorageOperator",
            "success",
            xcom={"pixazo_stored": {"request_id": "gpt-image-2_6", "files": files, "provenance_uri": None}},
            rendered={"request_id": "gpt-image-2_6", "provenance": {"prompt": "from elsewhere"}},
        )
    ]
    images = build_run_view("d", "r", tasks)["images"]
    assert [(i["index"], i["url"], i["stored_uri"], i["stored"], i["prompt"]) for i in images] == [
        (0, None, "s3://b/0.png", {"task_id": "store", "map_index": -1, "position": 1}, "from elsewhere"),
        (1, None, "s3://b/1.png", {"task_id": "store", "map_index": -1, "position": 0}, "from elsewhere"),
    ]


def test_unrendered_template_is_not_a_request_id() -> None:
    tasks = [
        TaskRecord("wait", -1, "PixazoRequestSensor", "scheduled", rendered={"request_id": "{{ ti.xcom_pull() }}"})
    ]
    view = build_run_view("d", "r", tasks)
    assert view["requests"] == {}
    assert view["tasks"][0]["request_id"] is None


def test_edit_inputs_are_listed_and_inline_images_named_not_shipped() -> None:
    inline = "data:image/png;base64," + "A" * 5000
    tasks = [
        TaskRecord(
            "edit",
            -1,
            "PixazoEditImageOperator",
            "success",
            xcom={"return_value": "gpt-image-2_7"},
            rendered={"prompt": "p", "images": ["s3://b/in.png", inline]},
        )
    ]
    params = build_run_view("d", "r", tasks)["requests"]["gpt-image-2_7"]["params"]
    assert params["images"] == ["s3://b/in.png", "data:image/png;base64,… (5022 characters)"]
