"""The submit phase: bounded, intent durable before each submit, never resent when it may have been taken."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_pixazo.batch._items import BatchItem, build_items
from airflow_provider_pixazo.batch._ledger import HEADER_KEY, EntryState, Ledger
from airflow_provider_pixazo.batch._submit import WINDOW, submit_all
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from tests.conftest import BASE_URL, FakeTaskStateStore

GEN2_URL = f"{BASE_URL}/gpt-image-2/v1/text-to-image"
log = logging.getLogger("test.submit")


def accepted(request_id: str) -> httpx.Response:
    return httpx.Response(202, json={"request_id": request_id, "status": "QUEUED"})


def run(items: list[BatchItem], store: FakeTaskStateStore | None, max_in_flight: int = 4) -> tuple[Ledger, Any]:
    context = {"task_state_store": store} if store is not None else {}
    ledger = Ledger.open(context, items, log)
    hook = PixazoHook()
    try:
        report = submit_all(hook.submit, items, ledger, max_in_flight=max_in_flight, log=log)
    finally:
        hook.close()
    return ledger, report


def batch(count: int) -> list[BatchItem]:
    return build_items([f"prompt {i}" for i in range(count)], model="gpt-image-2", defaults={})


def stored_entry(store: FakeTaskStateStore, key: str) -> dict[str, Any] | None:
    snapshot = dict(store.data)  # one C-level copy: the ledger's writer thread may be storing meanwhile
    for chunk in (v for k, v in snapshot.items() if k.startswith(f"{HEADER_KEY}.")):
        for entry in chunk:
            if entry["k"] == key:
                return dict(entry)
    return None


def test_each_intent_is_in_the_store_before_its_submit_arrives(gateway: respx.MockRouter) -> None:
    store = FakeTaskStateStore()
    seen: list[dict[str, Any] | None] = []
    ids = itertools.count()
    lock = threading.Lock()

    open_intents: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        key = json.loads(request.content)["prompt"].split()[-1]
        with lock:
            seen.append(stored_entry(store, key))
            snapshot = dict(store.data)
            chunks = [v for k, v in snapshot.items() if k.startswith(f"{HEADER_KEY}.")]
            open_intents.append(sum(entry["s"] == "intent" for chunk in chunks for entry in chunk))
            return accepted(f"gpt-image-2_{next(ids)}")

    gateway.post(GEN2_URL).mock(side_effect=answer)
    items = batch(250)
    _, report = run(items, store, max_in_flight=4)
    assert report.submitted == 250
    assert len(seen) == 250
    assert all(entry is not None and entry["s"] == "intent" for entry in seen)
    # What a kill would leave uncertain is bounded: in flight, durable and waiting, being written.
    assert max(open_intents) <= (1 + 2 * WINDOW) * 4
    # Afterwards every item has its request id, durably.
    assert {stored_entry(store, str(i))["s"] for i in range(250)} == {"submitted"}
    assert len({stored_entry(store, str(i))["id"] for i in range(250)}) == 250


def test_at_most_max_in_flight_submits_at_once(gateway: respx.MockRouter) -> None:
    in_flight = 0
    highest = 0
    lock = threading.Lock()
    together = threading.Barrier(3, timeout=10)
    ids = itertools.count()

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, highest
        with lock:
            in_flight += 1
            highest = max(highest, in_flight)
            number = next(ids)
        if number < 3:
            together.wait()  # the first three are in flight together: the bound is reached
        with lock:
            in_flight -= 1
        return accepted(f"gpt-image-2_{number}")

    gateway.post(GEN2_URL).mock(side_effect=answer)
    _, report = run(batch(20), FakeTaskStateStore(), max_in_flight=3)
    assert report.submitted == 20
    assert highest == 3


def test_ledger_writes_are_coalesced(gateway: respx.MockRouter) -> None:
    ids = itertools.count()
    gateway.post(GEN2_URL).mock(side_effect=lambda request: accepted(f"gpt-image-2_{next(ids)}"))
    store = FakeTaskStateStore()
    _, report = run(batch(400), store, max_in_flight=8)
    sets = [key for op, key in store.ops if op == "set"]
    assert report.submitted == 400
    # One write per refill of half the slots (plus chunk boundaries and the last flush), not two per item.
    assert len(sets) <= 2 * 400 // 4 + 10
    assert report.ledger_writes == len(sets) - 1  # all but the header


def test_429_is_retried_and_paid_once(gateway: respx.MockRouter, no_sleep: list[float]) -> None:
    route = gateway.post(GEN2_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), accepted("gpt-image-2_x")]
    )
    ledger, report = run(batch(1), FakeTaskStateStore())
    assert (report.submitted, route.call_count) == (1, 2)
    assert no_sleep[0] >= 7
    assert ledger.get(0).request_id == "gpt-image-2_x"


def test_a_500_after_sending_is_uncertain_and_never_resent(gateway: respx.MockRouter) -> None:
    store = FakeTaskStateStore()

    def answer(request: httpx.Request) -> httpx.Response:
        if "prompt 1" in request.content.decode():
            return httpx.Response(500, json={"error": "boom"})
        return accepted(f"gpt-image-2_{request.content.decode()[-3]}")

    route = gateway.post(GEN2_URL).mock(side_effect=answer)
    ledger, report = run(batch(3), store)
    assert (report.submitted, report.uncertain, route.call_count) == (2, 1, 3)
    assert ledger.get(1).state is EntryState.INTENT
    assert "may have been accepted" in ledger.get(1).error
    assert stored_entry(store, "1")["s"] == "intent"


def test_a_400_is_refused_and_the_others_go_on(gateway: respx.MockRouter) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "prompt 0" in request.content.decode():
            return httpx.Response(400, json={"error": "Bad Request", "message": "prompt refused"})
        return accepted("gpt-image-2_ok")

    gateway.post(GEN2_URL).mock(side_effect=answer)
    ledger, report = run(batch(3), FakeTaskStateStore())
    assert (report.submitted, report.refused, report.stopped_by) == (2, 1, None)
    assert ledger.get(0).state is EntryState.REFUSED


def test_a_refused_key_stops_the_submits(gateway: respx.MockRouter) -> None:
    route = gateway.post(GEN2_URL).mock(return_value=httpx.Response(401, json={"statusCode": 401, "message": "no"}))
    ledger, report = run(batch(50), FakeTaskStateStore(), max_in_flight=2)
    assert report.stopped_by is not None
    assert "PixazoAuthError" in report.stopped_by
    assert route.call_count <= 2  # the wave already in flight, then nothing more
    assert report.not_sent == 50 - route.call_count
    assert all(ledger.get(i).state is EntryState.REFUSED for i in range(50))
    assert "not submitted: PixazoAuthError" in ledger.get(49).error


@pytest.mark.parametrize("durable", [True, False])
def test_without_a_store_everything_is_still_submitted_once(gateway: respx.MockRouter, durable: bool) -> None:
    ids = itertools.count()
    route = gateway.post(GEN2_URL).mock(side_effect=lambda request: accepted(f"gpt-image-2_{next(ids)}"))
    _, report = run(batch(25), FakeTaskStateStore() if durable else None)
    assert (report.submitted, route.call_count) == (25, 25)
