"""PixazoBatchGenerateOperator against the local emulator: bad input, the failure mix, paying once across tries."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from airflow.sdk import Asset
from airflow.sdk.exceptions import TaskDeferred
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_pixazo.batch._items import build_items
from airflow_provider_pixazo.batch._ledger import EntryState, Ledger
from airflow_provider_pixazo.batch._manifest import MANIFEST_NAME
from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import build_generate_request
from airflow_provider_pixazo.operators.batch import BATCH_XCOM_KEY, PixazoBatchFailedError, PixazoBatchGenerateOperator
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.triggers.batch import PixazoBatchTrigger
from tests.conftest import FakeTaskStateStore, make_context

pytestmark = pytest.mark.integration

MIX = [f"a lighthouse at dusk, study {i}" for i in range(7)] + [
    "a [fail] lighthouse",
    {"prompt": "an [error] lighthouse", "key": "broken"},
    {"prompt": "another [fail] one", "key": "refused-twice"},
]


def batch_op(tmp_path: Path, **kwargs: Any) -> PixazoBatchGenerateOperator:
    kwargs.setdefault("task_id", "batch")
    kwargs.setdefault("destination", str(tmp_path / "out"))
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("max_poll_interval", 0.2)
    return PixazoBatchGenerateOperator(**kwargs)


def manifest_of(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "out" / MANIFEST_NAME).read_text()
    return [json.loads(line) for line in text.splitlines()]


# -- bad input: a clear error before any submit ---------------------------------------------------


def _jsonl(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text(text)
    return path.as_uri()


@pytest.mark.parametrize(
    ("make_kwargs", "parameter", "in_message"),
    [
        (lambda tmp: {"prompts": []}, "prompts", "at least one prompt"),
        (lambda tmp: {}, "prompts/prompts_uri", "neither was given"),
        (lambda tmp: {"prompts": ["a"], "prompts_uri": _jsonl(tmp, '"b"\n')}, "prompts/prompts_uri", "both"),
        (lambda tmp: {"prompts_uri": _jsonl(tmp, '"a"\n"b"\n{"prompt": \n')}, "prompts_uri", "line 3 is not JSON"),
        (lambda tmp: {"prompts": ["a", {"prompt": "b", "style": "noir"}]}, "prompts[1].style", "an item sets only"),
        (lambda tmp: {"prompts": ["a"] * 6, "n": 2, "max_images": 10}, "max_images", "ask for 12 image(s)"),
        (lambda tmp: {"prompts": ["a", "a"], "size": "17x17"}, "size", "multiples of 16; the total"),
        (lambda tmp: {"prompts": ["a", "b"], "model": "dall-e"}, "model", "known models"),
        (lambda tmp: {"prompts": ["a"], "destination": "file://host/x"}, "destination", "file:///absolute/path"),
        (lambda tmp: {"prompts": ["a"], "dest_conn_id": "missing_conn"}, "dest_conn_id", "existing Airflow conn"),
    ],
)
def test_bad_input_fails_before_any_request(
    pixazo_emulator: PixazoEmulator, tmp_path: Path, make_kwargs: Any, parameter: str, in_message: str
) -> None:
    store = FakeTaskStateStore()
    op = batch_op(tmp_path, **make_kwargs(tmp_path))
    with pytest.raises(PixazoValidationError) as err:
        op.execute(make_context(store))
    assert err.value.parameter == parameter
    assert in_message in str(err.value)
    assert pixazo_emulator.calls == []
    assert store.ops == []  # nothing recorded either


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 65}, "max_in_flight"),
        ({"max_failed": -1}, "max_failed"),
        ({"max_images": 0}, "max_images"),
        ({"store_concurrency": True}, "store_concurrency"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_settings_fail_when_the_dag_is_parsed(tmp_path: Path, kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(PixazoValidationError) as err:
        batch_op(tmp_path, prompts=["a"], **kwargs)
    assert err.value.parameter == parameter


def test_templated_fields_and_deferrable_default(tmp_path: Path) -> None:
    op = batch_op(tmp_path, prompts=["a"], deferrable=None)
    for name in ("prompts", "prompts_uri", "prompts_conn_id", "destination", "dest_conn_id", "pixazo_conn_id"):
        assert name in op.template_fields
    assert {"model", "size", "n", "quality"} <= set(op.template_fields)
    assert op.deferrable is False  # [operators] default_deferrable's default
    assert ":param size:" in (PixazoBatchGenerateOperator.__doc__ or "")


# -- the failure mix ------------------------------------------------------------------------------


def test_failure_mix_within_max_failed_stores_everything_that_completed(
    pixazo_emulator: PixazoEmulator, tmp_path: Path
) -> None:
    asset = Asset("pixazo://catalog")
    context = make_context(FakeTaskStateStore())
    context["outlet_events"] = OutletEventAccessors()
    result = batch_op(tmp_path, prompts=MIX, max_failed=3, outlets=[asset]).execute(context)

    counts = {"completed": 7, "failed": 2, "error": 1, "timed_out": 0, "uncertain": 0}
    assert result == {"manifest": f"file://{tmp_path}/out/{MANIFEST_NAME}", "counts": counts}
    assert pixazo_emulator.submit_count() == 10
    lines = manifest_of(tmp_path)
    assert [line["index"] for line in lines] == list(range(10))
    assert [line["key"] for line in lines] == [*map(str, range(8)), "broken", "refused-twice"]
    assert [line["status"] for line in lines] == ["completed"] * 7 + ["failed", "error", "failed"]
    assert set(pixazo_emulator.requests) == {line["request_id"] for line in lines}
    for line in lines[:7]:
        assert line["error"] is None
        (file,) = line["files"]
        data = (tmp_path / "out" / f"{line['key']}.png").read_bytes()
        assert file == {
            "uri": f"file://{tmp_path}/out/{line['key']}.png",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "media_type": "image/png",
        }
    assert "safety system" in lines[7]["error"]
    assert lines[8]["files"] == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{i}.png" for i in range(7)] + [MANIFEST_NAME]
    )
    summary = context["ti"].pushed[BATCH_XCOM_KEY]
    assert summary["counts"] == counts
    assert (summary["total"], summary["images"], summary["store_failed"]) == (10, 7, 0)
    assert [item["key"] for item in summary["not_completed"]] == ["7", "broken", "refused-twice"]
    assert context["outlet_events"][asset].extra == {
        "manifest": result["manifest"],
        "destination": f"file://{tmp_path}/out",
        "counts": counts,
        "total": 10,
    }


def test_past_max_failed_the_task_fails_after_storing_and_its_retry_pays_only_for_the_failed(
    pixazo_emulator: PixazoEmulator, tmp_path: Path
) -> None:
    store = FakeTaskStateStore()
    first = make_context(store)
    with pytest.raises(PixazoBatchFailedError) as err:
        batch_op(tmp_path, prompts=MIX, max_failed=2).execute(first)
    assert "3 of 10 item(s) did not complete" in str(err.value)
    assert "max_failed=2" in str(err.value)
    assert err.value.counts["completed"] == 7
    # Everything that completed is stored, and the manifest and summary are there despite the failure.
    assert len(list((tmp_path / "out").glob("*.png"))) == 7
    assert [line["status"] for line in manifest_of(tmp_path)].count("completed") == 7
    assert first["ti"].pushed[BATCH_XCOM_KEY]["counts"]["failed"] == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png")}
    first_ids = {line["key"]: line["request_id"] for line in manifest_of(tmp_path)}

    # The retry: a new try of the same task instance (same state store).
    with pytest.raises(PixazoBatchFailedError):
        batch_op(tmp_path, prompts=MIX, max_failed=2).execute(make_context(store))
    assert pixazo_emulator.submit_count() == 13  # 10, then only the 3 FAILED/ERROR items again
    second_ids = {line["key"]: line["request_id"] for line in manifest_of(tmp_path)}
    assert {k for k in first_ids if first_ids[k] != second_ids[k]} == {"7", "broken", "refused-twice"}
    # The completed images were reused, verified identical and not rewritten.
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png")} == stamps


def test_several_images_per_item_are_named_by_key_and_index(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    prompts = [{"prompt": "a fox", "key": "fox", "n": 2}, {"prompt": "a jay", "key": "jay"}]
    batch_op(tmp_path, prompts=prompts).execute(make_context(FakeTaskStateStore()))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["fox-0.png", "fox-1.png", "jay.png", MANIFEST_NAME]
    assert [len(line["files"]) for line in manifest_of(tmp_path)] == [2, 1]


def test_prompts_from_a_jsonl_file_with_per_item_options(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    uri = _jsonl(tmp_path, '{"prompt": "a", "key": "a", "quality": "high"}\n"b"\n')
    batch_op(tmp_path, prompts_uri=uri, quality="low").execute(make_context(FakeTaskStateStore()))
    bodies = [call.json for call in pixazo_emulator.calls if call.method == "POST"]
    assert sorted((b["prompt"], b["quality"]) for b in bodies) == [("a", "high"), ("b", "low")]


def test_a_completed_item_that_cannot_be_stored_fails_the_task_after_the_rest(
    pixazo_emulator: PixazoEmulator, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "1.png").write_bytes(b"someone else's file")
    context = make_context(FakeTaskStateStore())
    with pytest.raises(PixazoBatchFailedError) as err:
        batch_op(tmp_path, prompts=["a", "b", "c"]).execute(context)
    assert "1 completed item(s) could not be stored" in str(err.value)
    lines = manifest_of(tmp_path)
    assert [line["status"] for line in lines] == ["completed"] * 3
    assert "already exists with different content" in lines[1]["error"]
    assert (lines[1]["files"], len(lines[0]["files"]), len(lines[2]["files"])) == ([], 1, 1)
    assert context["ti"].pushed[BATCH_XCOM_KEY]["store_failed"] == 1
    assert (tmp_path / "out" / "1.png").read_bytes() == b"someone else's file"


# -- paying once across tries ---------------------------------------------------------------------


def _earlier_try(store: FakeTaskStateStore, prompts: list[Any], submitted: dict[int, str], intents: list[int]) -> None:
    """Leave the ledger as a try killed mid-batch would: some ids recorded, some intents without an id."""
    items = build_items(prompts, model="gpt-image-2", defaults={})
    ledger = Ledger.open({"task_state_store": store}, items, logging.getLogger("test"))
    for index, request_id in submitted.items():
        ledger.mark(items[index], EntryState.SUBMITTED, request_id=request_id)
    for index in intents:
        ledger.mark(items[index], EntryState.INTENT)
    ledger.flush()


def test_a_retry_after_a_crash_submits_only_what_was_never_sent(
    pixazo_emulator: PixazoEmulator, tmp_path: Path
) -> None:
    prompts = [f"harbour {i}" for i in range(6)] + ["harbour [fail]"]
    hook = PixazoHook()
    try:
        paid = {i: hook.submit(build_generate_request(prompts[i])).request_id for i in (0, 1, 6)}
    finally:
        hook.close()
    store = FakeTaskStateStore()
    _earlier_try(store, prompts, paid, intents=[2, 3])

    context = make_context(store)
    result = batch_op(tmp_path, prompts=prompts, max_failed=3).execute(context)

    # 3 paid before the crash; now: 4 and 5 (never sent) and 6 (its request ended FAILED): 6 in all.
    assert pixazo_emulator.submit_count() == 6
    assert result["counts"] == {"completed": 4, "failed": 1, "error": 0, "timed_out": 0, "uncertain": 2}
    lines = manifest_of(tmp_path)
    assert [line["request_id"] for line in lines[:2]] == [paid[0], paid[1]]
    assert [line["status"] for line in lines[2:4]] == ["uncertain", "uncertain"]
    assert all("not resubmitted" in line["error"] for line in lines[2:4])
    assert lines[6]["request_id"] != paid[6]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0.png", "1.png", "4.png", "5.png"]


def test_resubmit_uncertain_pays_for_them_on_purpose(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    store = FakeTaskStateStore()
    _earlier_try(store, ["x", "y"], {}, intents=[0, 1])
    result = batch_op(tmp_path, prompts=["x", "y"], resubmit_uncertain=True).execute(make_context(store))
    assert pixazo_emulator.submit_count() == 2
    assert result["counts"]["completed"] == 2


def test_a_request_still_running_is_waited_on_not_paid_again(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    pixazo_emulator.processing_seconds = 0.5
    hook = PixazoHook()
    try:
        running = hook.submit(build_generate_request("a slow one")).request_id
    finally:
        hook.close()
    store = FakeTaskStateStore()
    _earlier_try(store, ["a slow one"], {0: running}, intents=[])
    result = batch_op(tmp_path, prompts=["a slow one"]).execute(make_context(store))
    assert pixazo_emulator.submit_count() == 1
    assert manifest_of(tmp_path)[0]["request_id"] == running
    assert result["counts"]["completed"] == 1


def test_without_a_task_state_store_it_works_and_says_a_retry_pays_again(
    pixazo_emulator: PixazoEmulator, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        result = batch_op(tmp_path, prompts=["a", "b"]).execute(make_context(None))
    assert result["counts"]["completed"] == 2
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert any("a retried try submits (and pays for) every item again" in text for text in warnings)


# -- deferring ------------------------------------------------------------------------------------


def test_deferrable_waits_in_one_trigger_and_resumes(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    store = FakeTaskStateStore()
    prompts = ["a", "b [fail]", "c"]
    op = batch_op(tmp_path, prompts=prompts, deferrable=True, max_failed=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(make_context(store))
    trigger = deferred.value.trigger
    assert isinstance(trigger, PixazoBatchTrigger)
    assert len(trigger.request_ids) == 3
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert pixazo_emulator.api_key not in json.dumps(kwargs)
    assert kwargs["batch"]["waiting"] == [0, 1, 2]

    async def events() -> list[Any]:
        return [event.payload async for event in PixazoBatchTrigger(**kwargs).run()]

    (event,) = asyncio.run(events())
    json.dumps(event)
    resumed = batch_op(tmp_path, prompts=prompts, deferrable=True, max_failed=1)
    result = resumed.execute_complete(make_context(store), event=event)
    assert result["counts"] == {"completed": 2, "failed": 1, "error": 0, "timed_out": 0, "uncertain": 0}
    assert pixazo_emulator.submit_count() == 3
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0.png", "2.png"]


def test_resuming_with_changed_prompts_is_refused(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    op = batch_op(tmp_path, prompts=["a"], deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(make_context(FakeTaskStateStore()))
    trigger = deferred.value.trigger
    event = {"status": "done", "request_ids": trigger.request_ids, "results": [], "batch": trigger.batch}
    with pytest.raises(PixazoValidationError, match="changed while it waited"):
        batch_op(tmp_path, prompts=["b"], deferrable=True).execute_complete(make_context(FakeTaskStateStore()), event)


def test_timed_out_items_are_waited_on_again_by_the_retry_not_paid_again(
    pixazo_emulator: PixazoEmulator, tmp_path: Path
) -> None:
    pixazo_emulator.processing_seconds = 1.0
    store = FakeTaskStateStore()
    with pytest.raises(PixazoBatchFailedError) as err:
        batch_op(tmp_path, prompts=["slow a", "slow b"], timeout=0.2).execute(make_context(store))
    assert err.value.counts["timed_out"] == 2
    assert [line["status"] for line in manifest_of(tmp_path)] == ["timed_out", "timed_out"]
    assert "a retry waits on it again" in manifest_of(tmp_path)[0]["error"]

    result = batch_op(tmp_path, prompts=["slow a", "slow b"], timeout=30).execute(make_context(store))
    assert result["counts"]["completed"] == 2
    assert pixazo_emulator.submit_count() == 2  # the retry waited on the same two requests


def test_a_request_pixazo_no_longer_knows_is_submitted_anew(pixazo_emulator: PixazoEmulator, tmp_path: Path) -> None:
    store = FakeTaskStateStore()
    _earlier_try(store, ["forgotten"], {0: "gpt-image-2_019d0000-aaaa-bbbb-cccc-00000000dead"}, intents=[])
    result = batch_op(tmp_path, prompts=["forgotten"]).execute(make_context(store))
    assert pixazo_emulator.submit_count() == 1
    assert result["counts"]["completed"] == 1
    assert manifest_of(tmp_path)[0]["request_id"] in pixazo_emulator.requests
