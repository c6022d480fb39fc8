"""
The batch gallery's routes: ``.../tasks/{task_id}/batch`` and ``.../batch/items/{index}/files/{position}``.

Against a real run (``dag.test()`` of ``tests/plugins/dags/pixazo_ui_batch.py``, whose batch task
writes images and ``manifest.jsonl`` under its destination, on local disk or in a loopback moto
bucket) and Airflow's real security dependencies: only a user Airflow lets read the DAG gets a page
or an image; a page of 1,000 items is answered in well under a second and the next page reads
nothing again; a manifest or an image the XCom or the manifest aims outside the destination is not
read; hostile prompts and keys come back as the data they are, for the page to show as text.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_pixazo.plugins import manifest as manifest_module
from airflow_provider_pixazo.plugins.manifest import MAX_PER_PAGE, parse_manifest
from tests.plugins.conftest import OUTSIDER, READER, BatchRun, token_for
from tests.plugins.dags.pixazo_ui_batch import HOSTILE_ERROR, HOSTILE_KEY, HOSTILE_PROMPT, STORE_ERROR, outcome_of
from tests.transfers.conftest import AWS_CONN_ID

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: The issue's bar: the first page of a 1,000-item batch in under a second.
FIRST_PAGE_BUDGET_S = 1.0
NO_MANIFEST = {"detail": "No batch manifest to show for this task instance"}
JS = Path(__file__).resolve().parents[2] / "airflow_provider_pixazo" / "plugins" / "static" / "pixazo.js"


def batch_path(run: BatchRun, task_id: str = "batch", suffix: str = "") -> str:
    return f"/api/dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}/tasks/{task_id}/batch{suffix}"


def file_path(run: BatchRun, index: int | str, position: int | str = 0, task_id: str = "batch") -> str:
    return batch_path(run, task_id, f"/items/{index}/files/{position}")


def bearer(client: Any, user: str = READER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, user)}"}


def expected_incomplete(total: int) -> list[int]:
    return [i for i in range(total) if outcome_of(i) != ("completed", None)]


def manifest_file(run: BatchRun) -> Path:
    return Path(run.returned["manifest"].removeprefix("file://"))


def image_of(run: BatchRun, index: int) -> Path:
    return manifest_file(run).parent / "images" / f"{index:05d}" / "0.png"


def reads(client: Any) -> int:
    return int(client.app.state.batch_manifests.reads)


# -- a page, its counts, its filter -----------------------------------------------------------------


def test_first_page_of_a_thousand_items_is_fast_and_the_next_reads_nothing_again(
    view_client: Any, batch_run: BatchRun
) -> None:
    from airflow_provider_pixazo.plugins import app as app_module

    headers = bearer(view_client)
    # A warm api-server: its object-store file systems registered (the app does it in the background
    # when built: importing boto3 and the like, seconds once per process), and one other batch's page
    # served. The 1,000-item manifest itself has not been read: its first page pays for the whole read.
    assert app_module._warming is not None
    app_module._warming.join(timeout=120)
    started = time.perf_counter()
    warm_up = view_client.get(batch_path(batch_run, "mapped_batch"), params={"map_index": 0}, headers=headers)
    warm_up_s = time.perf_counter() - started
    assert warm_up.status_code == 200, warm_up.text
    assert reads(view_client) == 1

    started = time.perf_counter()
    first = view_client.get(batch_path(batch_run), headers=headers)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = view_client.get(batch_path(batch_run), params={"page": 2}, headers=headers)
    second_s = time.perf_counter() - started
    print(
        f"\n[batch view] 1000 items: first page {first_s * 1000:.1f} ms (read + parse), page 2 {second_s * 1000:.1f} ms"
        f"; a 3-item page first {warm_up_s * 1000:.1f} ms"
    )

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert first_s < FIRST_PAGE_BUDGET_S, f"first page of 1000 items took {first_s:.3f}s"
    assert reads(view_client) == 2, "page 2 read the manifest again"
    page = first.json()
    assert (page["total"], page["matching"], page["page"], page["per_page"], page["pages"]) == (1000, 1000, 1, 50, 20)
    assert [item["index"] for item in page["items"]] == list(range(50))
    assert [item["index"] for item in second.json()["items"]] == list(range(50, 100))
    assert page["counts"] == batch_run.returned["counts"] == page["recorded_counts"]
    assert next(iter(page["counts"])) == "completed"  # completed first, then the rest by name
    assert page["manifest"] == batch_run.returned["manifest"]
    assert page["unreadable_count"] == 0
    item = page["items"][1]
    on_disk = image_of(batch_run, 1)
    assert item == {
        "index": 1,
        "key": "item-00001",
        "prompt": "Prompt 1: a watercolour of tile 1",
        "prompt_chars": len("Prompt 1: a watercolour of tile 1"),
        "request_id": "req-00001",
        "status": "completed",
        "error": None,
        "files": [
            {
                "position": 0,
                "uri": on_disk.as_uri(),
                "size": on_disk.stat().st_size,
                "sha256": hashlib.sha256(on_disk.read_bytes()).hexdigest(),
            }
        ],
    }


def test_pages_and_their_bounds(view_client: Any, batch_run: BatchRun) -> None:
    headers = bearer(view_client)

    def page(**params: Any) -> Any:
        return view_client.get(batch_path(batch_run), params=params, headers=headers)

    last = page(page=20).json()
    assert [i["index"] for i in last["items"]] == list(range(950, 1000))
    assert page(page=21).json()["items"] == []  # past the end: nothing, not the last page again
    widest = page(per_page=MAX_PER_PAGE, page=5).json()
    assert (widest["pages"], [i["index"] for i in widest["items"]]) == (5, list(range(800, 1000)))
    for bad in ({"page": 0}, {"page": -1}, {"page": "x"}, {"per_page": 0}, {"per_page": MAX_PER_PAGE + 1}):
        assert page(**bad).status_code == 422, bad
    assert page(status="x" * 41).status_code == 422
    assert reads(view_client) == 1


def test_the_not_completed_filter_and_one_status(view_client: Any, batch_run: BatchRun) -> None:
    headers = bearer(view_client)
    wanted = expected_incomplete(1000)
    pages = []
    for number in (1, 2, 3, 4):
        response = view_client.get(
            batch_path(batch_run), params={"status": "incomplete", "page": number}, headers=headers
        )
        pages.append(response.json())
    assert pages[0]["matching"] == len(wanted) == 1000 - batch_run.returned["counts"]["completed"] + 1
    assert pages[0]["pages"] == -(-len(wanted) // 50)
    assert [i["index"] for p in pages for i in p["items"]] == wanted
    # Item 11 completed at Pixazo but its image was not stored: it needs attention too.
    stored_failed = next(i for i in pages[0]["items"] if i["index"] == 11)
    assert (stored_failed["status"], stored_failed["error"], stored_failed["files"]) == ("completed", STORE_ERROR, [])
    assert all(i["status"] != "completed" or i["error"] for p in pages for i in p["items"])
    assert pages[0]["counts"] == batch_run.returned["counts"]  # counts stay the whole batch's

    failed = view_client.get(batch_path(batch_run), params={"status": "FAILED", "per_page": 200}, headers=headers)
    body = failed.json()
    assert body["matching"] == batch_run.returned["counts"]["failed"]
    assert {i["status"] for i in body["items"]} == {"failed"}
    assert reads(view_client) == 1


def test_hostile_keys_prompts_and_errors_come_back_as_data(view_client: Any, batch_run: BatchRun) -> None:
    response = view_client.get(batch_path(batch_run), headers=bearer(view_client))
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    items = {i["index"]: i for i in response.json()["items"]}
    # Verbatim, neither stripped nor HTML-escaped: the page puts them in as text (checked below and,
    # in a browser, by tests/e2e/test_batch_gallery.py).
    assert (items[0]["key"], items[0]["prompt"]) == (HOSTILE_KEY, HOSTILE_PROMPT)
    assert items[3]["error"] == HOSTILE_ERROR
    # The HTML shell carries no data at all.
    page = view_client.get(
        f"/ui/dags/{batch_run.dag_id}/runs/{quote(batch_run.run_id, safe='')}/tasks/batch", headers=bearer(view_client)
    )
    assert page.status_code == 200
    assert "onerror" not in page.text
    assert "<script>document" not in page.text


def test_the_page_script_never_parses_data_as_html() -> None:
    source = JS.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
    # The batch gallery builds every node through el(), which sets text with createTextNode.
    assert re.search(r"function batchItem\(task, item\)", source)
    assert "document.createTextNode(String(child))" in source


def test_the_task_tab_knows_a_batch_task(view_client: Any, batch_run: BatchRun) -> None:
    path = f"/api/dags/{batch_run.dag_id}/runs/{quote(batch_run.run_id, safe='')}/tasks/batch"
    view = view_client.get(path, headers=bearer(view_client)).json()
    assert [(t["kind"], t["batch"]) for t in view["tasks"]] == [("batch", batch_run.returned)]
    assert view["requests"] == []


def test_the_run_view_takes_a_batchs_summary_first_and_knows_a_subclass_by_it() -> None:
    from airflow_provider_pixazo.operators.batch import BATCH_XCOM_KEY as OPERATORS_KEY
    from airflow_provider_pixazo.plugins.records import BATCH_XCOM_KEY
    from airflow_provider_pixazo.plugins.view_model import TaskRecord, build_run_view

    assert BATCH_XCOM_KEY == OPERATORS_KEY  # the view reads what the operator pushes
    summary = {"manifest": "s3://b/x/manifest.jsonl", "counts": {"completed": 1, "failed": 3}, "total": 4}
    tasks = [
        TaskRecord("failed", -1, "PixazoBatchGenerateOperator", "failed", xcom={BATCH_XCOM_KEY: summary}),
        TaskRecord(
            "done",
            -1,
            "PixazoBatchGenerateOperator",
            "success",
            xcom={"return_value": {"manifest": "s3://b/y/manifest.jsonl", "counts": {"completed": 2}}},
        ),
        TaskRecord("mine", -1, "MyCatalogBatch", "failed", xcom={BATCH_XCOM_KEY: summary}),
        TaskRecord("running", -1, "PixazoBatchGenerateOperator", "running"),
        TaskRecord("generate", -1, "PixazoGenerateImageOperator", "success", xcom={"return_value": "req-1"}),
    ]
    view = {t["task_id"]: t for t in build_run_view("d", "r", tasks)["tasks"]}
    assert view["failed"]["batch"] == {"manifest": summary["manifest"], "counts": summary["counts"]}
    assert view["done"]["batch"] == {"manifest": "s3://b/y/manifest.jsonl", "counts": {"completed": 2}}
    assert (view["mine"]["kind"], view["mine"]["batch"]["manifest"]) == ("batch", summary["manifest"])
    assert view["running"]["batch"] == {"manifest": None, "counts": {}}
    assert (view["generate"]["batch"], view["generate"]["request_id"]) == (None, "req-1")
    assert all(view[t]["request_id"] is None for t in ("failed", "done", "mine", "running"))


# -- who may see it --------------------------------------------------------------------------------


def test_refused_callers_get_neither_pages_nor_images(view_client: Any, batch_run: BatchRun) -> None:
    for path in (batch_path(batch_run), file_path(batch_run, 1)):
        for headers, expected in (
            ({}, 401),
            ({"Authorization": "Bearer not-a-jwt"}, 403),
            (bearer(view_client, OUTSIDER), 403),
        ):
            response = view_client.get(path, headers=headers)
            assert response.status_code == expected, (path, headers, response.text)
            assert "watercolour" not in response.text
            assert PNG_MAGIC not in response.content
    assert reads(view_client) == 0  # refused before anything was read


# -- images ----------------------------------------------------------------------------------------


def test_an_items_image_is_served_by_index_and_position(view_client: Any, batch_run: BatchRun) -> None:
    headers = bearer(view_client)
    for index in (0, 1, 999):
        response = view_client.get(file_path(batch_run, index), headers=headers)
        assert response.status_code == 200, response.text
        assert response.content == image_of(batch_run, index).read_bytes()
        assert response.headers["content-type"] == "image/png"
        assert "sandbox" in response.headers["content-security-policy"]
    assert reads(view_client) == 1  # thumbnails reuse the parsed manifest
    for index, position in (
        (3, 0),  # failed: no image
        (11, 0),  # completed, not stored
        (1, 1),  # one image only
        (1000, 0),  # no such item
        ("-1", 0),
        ("..%2F..%2Fetc", 0),
        ("1" * 5000, 0),
        (1, "x"),
    ):
        response = view_client.get(file_path(batch_run, index, position), headers=headers)
        assert response.status_code == 404, (index, position)
        assert PNG_MAGIC not in response.content


def test_a_mapped_batch_is_read_per_map_index(view_client: Any, batch_run: BatchRun) -> None:
    headers = bearer(view_client)
    for map_index, total in ((0, 3), (1, 4)):
        params = {"map_index": map_index}
        page = view_client.get(batch_path(batch_run, "mapped_batch"), params=params, headers=headers).json()
        assert page["total"] == total
        assert f"/mapped-{map_index}/manifest.jsonl" in page["manifest"]
        image = view_client.get(file_path(batch_run, 1, task_id="mapped_batch"), params=params, headers=headers)
        assert image.content[:8] == PNG_MAGIC
    for path, params in (
        (batch_path(batch_run, "mapped_batch"), {"map_index": 2}),
        (batch_path(batch_run), {"map_index": 0}),
        (batch_path(batch_run, "no_such_task"), {}),
    ):
        response = view_client.get(path, params=params, headers=headers)
        assert (response.status_code, response.json()) == (404, NO_MANIFEST), (path, params)


# -- what the XCom and the manifest may point at ---------------------------------------------------


@contextmanager
def xcom_as(run: BatchRun, value: Any, key: str = "return_value") -> Iterator[None]:
    """
    The batch task's XCom ``key`` set to ``value``, as Airflow's REST API lets an XCom editor do.

    Afterwards ``return_value`` is put back, and a ``pixazo_batch`` the stand-in never pushed is deleted.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    def put(data: Any) -> None:
        with create_session() as session:
            XComModel.set(
                key=key,
                value=data,
                dag_id=run.dag_id,
                task_id="batch",
                run_id=run.run_id,
                map_index=-1,
                serialize=False,
                session=session,
            )

    put(value)
    try:
        yield
    finally:
        if key == "return_value":
            put(run.returned)
        else:
            with create_session() as session:
                session.execute(
                    delete(XComModel).where(
                        XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.key == key
                    )
                )


@contextmanager
def rendered_as(run: BatchRun, **fields: Any) -> Iterator[None]:
    """The batch task's rendered fields with ``fields`` changed; put back after."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    where = (RTIF.dag_id == run.dag_id, RTIF.run_id == run.run_id, RTIF.task_id == "batch", RTIF.map_index == -1)
    with create_session() as session:
        original = session.scalar(select(RTIF.rendered_fields).where(*where))
        assert isinstance(original, dict), original
        session.execute(update(RTIF).where(*where).values(rendered_fields={**original, **fields}))
    try:
        yield
    finally:
        with create_session() as session:
            session.execute(update(RTIF).where(*where).values(rendered_fields=original))


def write_manifest(path: Path, lines: list[Any]) -> None:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


@pytest.mark.parametrize("key", ["return_value", "pixazo_batch"])
def test_a_manifest_outside_the_destination_is_never_read(
    view_client: Any, batch_run: BatchRun, tmp_path: Path, key: str
) -> None:
    root = manifest_file(batch_run).parent
    bait_image = PNG_MAGIC + b"BAIT-IMAGE"
    (tmp_path / "bait.png").write_bytes(bait_image)
    bait = [
        {"index": 0, "key": "BAIT-KEY", "status": "completed", "files": [{"uri": (tmp_path / "bait.png").as_uri()}]}
    ]
    write_manifest(tmp_path / "manifest.jsonl", bait)
    sibling = root.with_name(root.name + "-evil")
    sibling.mkdir(exist_ok=True)
    write_manifest(sibling / "manifest.jsonl", bait)
    (root / "link.jsonl").symlink_to(tmp_path / "manifest.jsonl")
    base = root.as_uri()
    aimed = {
        "elsewhere": (tmp_path / "manifest.jsonl").as_uri(),
        "sibling-prefix": f"{base}-evil/manifest.jsonl",
        "dot-dot": f"{base}/../{sibling.name}/manifest.jsonl",
        "percent-encoded": f"{base}/%2e%2e/{sibling.name}/manifest.jsonl",
        "a-link-leading-out": f"{base}/link.jsonl",
        "not-a-manifest": image_of(batch_run, 1).as_uri(),
        "another-scheme": f"s3://{root.name}/manifest.jsonl",
        "not-a-string": ["x"],
    }
    headers = bearer(view_client)
    try:
        for name, uri in aimed.items():
            with xcom_as(batch_run, {"manifest": uri, "counts": {}}, key):
                for path in (batch_path(batch_run), file_path(batch_run, 0)):
                    response = view_client.get(path, headers=headers)
                    assert (response.status_code, response.json()) == (404, NO_MANIFEST), (name, path)
                    assert b"BAIT" not in response.content, name
        if key == "return_value":  # (a summary that is no mapping is passed over for the return value)
            with xcom_as(batch_run, "not a mapping", key):
                assert view_client.get(batch_path(batch_run), headers=headers).status_code == 404
        assert reads(view_client) == 0
    finally:
        (root / "link.jsonl").unlink()
    assert view_client.get(batch_path(batch_run), headers=headers).json()["total"] == 1000  # put back: read again


def test_an_image_the_manifest_aims_outside_the_destination_is_not_served(
    view_client: Any, batch_run: BatchRun, tmp_path: Path
) -> None:
    root = manifest_file(batch_run).parent
    (tmp_path / "bait.png").write_bytes(PNG_MAGIC + b"BAIT")
    good = image_of(batch_run, 1).as_uri()
    files = [
        good,
        (tmp_path / "bait.png").as_uri(),
        f"{root.as_uri()}/../{tmp_path.name}/bait.png",
        f"{root.as_uri()}-evil/0.png",
        "http://127.0.0.1:9/x.png",
        f"{root.as_uri()}/manifest.jsonl",  # under the destination, but no image
    ]
    other = root / "other.jsonl"
    write_manifest(other, [{"index": 7, "status": "completed", "files": [{"uri": uri} for uri in files]}])
    headers = bearer(view_client)
    try:
        with xcom_as(batch_run, {"manifest": other.as_uri(), "counts": {"completed": 1}}):
            page = view_client.get(batch_path(batch_run), headers=headers).json()
            assert [f["uri"] for f in page["items"][0]["files"]] == files  # listed as recorded
            assert view_client.get(file_path(batch_run, 7, 0), headers=headers).content[:8] == PNG_MAGIC
            for position in range(1, len(files)):
                response = view_client.get(file_path(batch_run, 7, position), headers=headers)
                assert (response.status_code, b"BAIT" in response.content) == (404, False), files[position]
    finally:
        other.unlink()


def test_a_rewritten_manifest_is_read_again_and_bad_lines_are_named(view_client: Any, batch_run: BatchRun) -> None:
    other = manifest_file(batch_run).parent / "rewritten.jsonl"
    write_manifest(other, [{"index": 0, "status": "completed"}])
    headers = bearer(view_client)
    try:
        with xcom_as(batch_run, {"manifest": other.as_uri(), "counts": {}}):
            assert view_client.get(batch_path(batch_run), headers=headers).json()["total"] == 1
            assert view_client.get(batch_path(batch_run), headers=headers).json()["total"] == 1
            assert reads(view_client) == 1
            # Replaced as a writer publishes (a new file renamed over it): a new version, read again.
            staged = other.with_suffix(".tmp")
            write_manifest(staged, [{"index": 0, "status": "failed"}, "not json", "[1, 2]", "", {"index": 1}])
            os.replace(staged, other)
            page = view_client.get(batch_path(batch_run), headers=headers).json()
            assert reads(view_client) == 2
            assert (page["total"], page["counts"]) == (2, {"failed": 1, "unknown": 1})
            assert (page["unreadable_count"], page["unreadable_lines"]) == (2, [2, 3])
    finally:
        other.unlink()


def test_a_manifest_over_the_size_limit_is_not_read(
    view_client: Any, batch_run: BatchRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest_module, "MANIFEST_MAX_BYTES", manifest_file(batch_run).stat().st_size - 1)
    response = view_client.get(batch_path(batch_run), headers=bearer(view_client))
    assert (response.status_code, response.json()) == (404, NO_MANIFEST)
    assert reads(view_client) == 0


def test_lines_are_parsed_across_blocks_and_an_overlong_line_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(manifest_module, "READ_BLOCK_BYTES", 7)  # lines straddle many reads
    monkeypatch.setattr(manifest_module, "LINE_MAX_BYTES", 64)
    long_prompt = "x" * 200
    lines = [
        json.dumps({"index": 0, "status": "completed", "key": "a"}),
        json.dumps({"index": 1, "status": "failed", "prompt": long_prompt}),  # over 64 bytes: dropped
        json.dumps({"index": 2, "status": "error", "key": "c"}),
        json.dumps({"index": 3, "status": "completed"}),  # no newline at the end
    ]
    parsed = parse_manifest(io.BytesIO("\n".join(lines).encode()))
    assert [(i.line, i.index, i.status) for i in parsed.items] == [
        (1, 0, "completed"),
        (3, 2, "error"),
        (4, 3, "completed"),
    ]
    assert parsed.unreadable_lines == (2,)
    assert [i.index for i in parsed.incomplete] == [2]


def test_prompts_and_errors_are_cut_for_the_page_with_their_length_kept() -> None:
    import io

    line = {"index": 0, "status": "failed", "prompt": "p" * 32000, "error": "e" * 5000, "files": [{}] * 40}
    item = parse_manifest(io.BytesIO(json.dumps(line).encode())).items[0]
    assert (len(item.prompt or ""), item.prompt_chars) == (manifest_module.PROMPT_CHARS, 32000)
    assert len(item.error or "") == manifest_module.ERROR_CHARS
    assert len(item.files) == manifest_module.MAX_FILES


# -- S3 --------------------------------------------------------------------------------------------


def test_an_s3_batch_is_paged_and_its_images_served_with_the_tasks_connection(
    view_client: Any, run_batch_dag: Any, s3_bucket: str, s3_client: Any
) -> None:
    run = run_batch_dag(f"s3://{s3_bucket}/batches", AWS_CONN_ID, items=120)
    assert run.returned["manifest"] == f"s3://{s3_bucket}/batches/manifest.jsonl"
    headers = bearer(view_client)
    started = time.perf_counter()
    first = view_client.get(batch_path(run), headers=headers)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = view_client.get(batch_path(run), params={"page": 2}, headers=headers)
    second_s = time.perf_counter() - started
    print(f"\n[batch view] S3 (moto), 120 items: first page {first_s * 1000:.1f} ms, page 2 {second_s * 1000:.1f} ms")
    assert first.status_code == 200, first.text
    assert [i["index"] for i in second.json()["items"]] == list(range(50, 100))
    assert reads(view_client) == 1
    item = first.json()["items"][1]
    key = item["files"][0]["uri"].removeprefix(f"s3://{s3_bucket}/")
    in_bucket = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    image = view_client.get(file_path(run, 1), headers=headers)
    assert image.status_code == 200, image.text
    assert image.content == in_bucket
    assert hashlib.sha256(image.content).hexdigest() == item["files"][0]["sha256"]

    # The manifest replaced in the bucket: a new ETag, read again.
    s3_client.put_object(Bucket=s3_bucket, Key="batches/manifest.jsonl", Body=b'{"index": 0, "status": "failed"}\n')
    assert view_client.get(batch_path(run), headers=headers).json()["total"] == 1
    assert reads(view_client) == 2


def test_an_s3_manifest_is_read_only_under_the_destination_and_with_its_connection(
    view_client: Any, run_batch_dag: Any, s3_bucket: str, s3_client: Any
) -> None:
    run = run_batch_dag(f"s3://{s3_bucket}/batches", AWS_CONN_ID, items=12)
    other = f"{s3_bucket}-other"
    s3_client.create_bucket(Bucket=other)
    bait = b'{"index": 0, "key": "BAIT", "status": "completed"}\n'
    s3_client.put_object(Bucket=other, Key="batches/manifest.jsonl", Body=bait)
    s3_client.put_object(Bucket=s3_bucket, Key="batches-evil/manifest.jsonl", Body=bait)
    headers = bearer(view_client)
    for uri in (
        f"s3://{other}/batches/manifest.jsonl",
        f"s3://{s3_bucket}/batches-evil/manifest.jsonl",
        f"s3://{s3_bucket}/batches/../batches-evil/manifest.jsonl",
        f"s3a://{s3_bucket}/batches/manifest.jsonl",
    ):
        with xcom_as(run, {"manifest": uri, "counts": {}}):
            response = view_client.get(batch_path(run), headers=headers)
        assert (response.status_code, response.json()) == (404, NO_MANIFEST), uri
    # Without the task's connection the api-server does not read with an identity of its own.
    for no_connection in ("", "None"):
        with rendered_as(run, dest_conn_id=no_connection):
            response = view_client.get(batch_path(run), headers=headers)
        assert (response.status_code, response.json()) == (404, NO_MANIFEST), no_connection
    assert reads(view_client) == 0
    assert view_client.get(batch_path(run), headers=headers).json()["total"] == 12


# -- the real operator's output --------------------------------------------------------------------


def test_the_real_operators_failed_batch_is_shown_from_its_summary(
    view_client: Any, run_real_batch_dag: Any, tmp_path: Path
) -> None:
    from tests.plugins.dags.pixazo_ui_real_batch import HOSTILE_PROMPT, PROMPTS

    run = run_real_batch_dag((tmp_path / "real").as_uri())
    headers = bearer(view_client)
    page = view_client.get(batch_path(run), headers=headers).json()
    assert page["manifest"] == run.returned["manifest"]
    assert page["total"] == len(PROMPTS)
    assert page["counts"] == {"completed": 7, "error": 1, "failed": 2}
    assert page["recorded_counts"] == run.returned["counts"]
    assert page["items"][0]["prompt"] == HOSTILE_PROMPT
    incomplete = view_client.get(batch_path(run), params={"status": "incomplete"}, headers=headers).json()
    assert [(i["index"], i["status"]) for i in incomplete["items"]] == [(7, "failed"), (8, "error"), (9, "failed")]
    assert all(i["error"] and i["files"] == [] for i in incomplete["items"])
    for item in page["items"][:7]:
        (file,) = item["files"]
        response = view_client.get(file_path(run, item["index"]), headers=headers)
        assert response.status_code == 200, (item, response.text)
        assert (len(response.content), hashlib.sha256(response.content).hexdigest()) == (file["size"], file["sha256"])
    # The task tab knows it for a batch, failed as it is.
    view = view_client.get(
        f"/api/dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}/tasks/batch", headers=headers
    ).json()
    assert [(t["kind"], t["state"], t["batch"]["manifest"]) for t in view["tasks"]] == [
        ("batch", "failed", run.returned["manifest"])
    ]
