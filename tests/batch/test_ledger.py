"""The ledger: per-item intent, request id and outcome in the task state store, a hundred items to a key."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_pixazo.batch._items import build_items
from airflow_provider_pixazo.batch._ledger import CHUNK_SIZE, HEADER_KEY, EntryState, Ledger
from tests.conftest import FakeTaskStateStore

log = logging.getLogger("test.ledger")


def batch(count: int, prefix: str = "prompt") -> list:
    return build_items([f"{prefix} {i}" for i in range(count)], model="gpt-image-2", defaults={})


def test_entries_round_trip_through_the_store_by_key() -> None:
    store = FakeTaskStateStore()
    items = batch(2 * CHUNK_SIZE + 50)
    middle, last = CHUNK_SIZE + 20, 2 * CHUNK_SIZE + 49
    ledger = Ledger.open({"task_state_store": store}, items, log)
    ledger.mark(items[0], EntryState.INTENT)
    ledger.mark(items[middle], EntryState.SUBMITTED, request_id="gpt-image-2_a")
    ledger.mark(items[last], EntryState.REFUSED, error="HTTP 400")
    assert ledger.flush() == 3  # three chunks changed
    assert store.data[HEADER_KEY] == {"v": 1, "chunks": 3}

    again = Ledger.open({"task_state_store": store}, items, log)
    assert again.get(0).state is EntryState.INTENT
    assert (again.get(middle).state, again.get(middle).request_id) == (EntryState.SUBMITTED, "gpt-image-2_a")
    assert (again.get(last).state, again.get(last).error) == (EntryState.REFUSED, "HTTP 400")
    assert again.get(1) is None


def test_a_flush_writes_only_the_chunks_that_changed() -> None:
    store = FakeTaskStateStore()
    items = batch(1000)
    ledger = Ledger.open({"task_state_store": store}, items, log)
    writes = ledger.writes
    request_id = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"
    for item in items[:CHUNK_SIZE]:
        ledger.mark(item, EntryState.SUBMITTED, request_id=request_id)
    assert ledger.flush() == 1
    assert ledger.flush() == 0
    assert ledger.writes == writes + 1
    assert len(json.dumps(store.data[f"{HEADER_KEY}.0"])) < 32_000
    # Even a full chunk whose every entry carries a long error stays under the store's 64 KB per value.
    for item in items[:CHUNK_SIZE]:
        ledger.mark(item, EntryState.INTENT, error="x" * 5000)
    ledger.flush()
    assert len(json.dumps(store.data[f"{HEADER_KEY}.0"])) < 65_535


def test_an_entry_for_a_changed_request_is_not_reused() -> None:
    store = FakeTaskStateStore()
    ledger = Ledger.open({"task_state_store": store}, batch(3), log)
    for item in batch(3):
        ledger.mark(item, EntryState.SUBMITTED, request_id=f"gpt-image-2_{item.index}")
    ledger.flush()
    changed = build_items(["prompt 0", "a new prompt 1", "prompt 2"], model="gpt-image-2", defaults={})
    again = Ledger.open({"task_state_store": store}, changed, log)
    assert again.get(0) is not None
    assert again.get(1) is None  # same key "1", different request: submitted anew
    assert again.get(2) is not None


def test_entries_follow_their_key_when_items_move() -> None:
    store = FakeTaskStateStore()
    items = build_items([{"prompt": "p", "key": "a"}, {"prompt": "q", "key": "b"}], model="gpt-image-2", defaults={})
    ledger = Ledger.open({"task_state_store": store}, items, log)
    ledger.mark(items[1], EntryState.SUBMITTED, request_id="gpt-image-2_b")
    ledger.flush()
    moved = build_items([{"prompt": "q", "key": "b"}], model="gpt-image-2", defaults={})
    assert Ledger.open({"task_state_store": store}, moved, log).get(0).request_id == "gpt-image-2_b"


def test_an_unreadable_entry_counts_as_never_submitted() -> None:
    store = FakeTaskStateStore()
    store.data[HEADER_KEY] = {"v": 1, "chunks": 1}
    store.data[f"{HEADER_KEY}.0"] = [{"k": "0", "s": "nonsense"}, "junk"]
    assert Ledger.open({"task_state_store": store}, batch(1), log).get(0) is None


def test_without_a_task_state_store_it_warns_and_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    items = batch(2)
    with caplog.at_level(logging.WARNING, "test.ledger"):
        ledger = Ledger.open({}, items, log)
    assert "a retried try submits (and pays for) every item again" in caplog.text
    ledger.mark(items[0], EntryState.INTENT)
    assert ledger.flush() == 0
    assert not ledger.durable
    assert ledger.get(0).state is EntryState.INTENT  # still known for this try
