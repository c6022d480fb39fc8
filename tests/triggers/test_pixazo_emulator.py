"""Many PixazoRequestTriggers on the real poll path (shared poller, keep-alive transport) against the emulator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_pixazo.events import WaitOutcome
from airflow_provider_pixazo.hooks import _clients, _poller
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import build_generate_request
from airflow_provider_pixazo.testing._faults import FaultConfig
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

CONN_ID = "pixazo_limited"


async def _wait_all(triggers: list[PixazoRequestTrigger]) -> list[dict[str, Any]]:
    async def first(trigger: PixazoRequestTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    try:
        return await asyncio.wait_for(asyncio.gather(*(first(t) for t in triggers)), timeout=60)
    finally:
        await _clients.aclose_shared_clients()
        _poller.forget_pollers()


def test_waits_share_one_poller_and_learn_the_gateways_rate_limit(
    pixazo_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = pixazo_emulator_factory(processing_seconds=0.3, conn_id="pixazo_default")
    hook = PixazoHook()
    ids = [hook.submit(build_generate_request("a lighthouse", n=1)).request_id for _ in range(20)]
    hook.close()
    # The gateway allows 10 status calls a second, below the poller's starting 20 (at 20 it may never
    # refuse one: the ramp waits for answers); the connection would allow 200.
    emulator.set_faults(FaultConfig(status_calls_per_second=10, status_burst=5, retry_after=1))
    conn = {"conn_type": "pixazo", "host": emulator.url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_PIXAZO_LIMITED", json.dumps({**conn, "extra": {"max_polls_per_second": 200}}))

    events = asyncio.run(_wait_all([PixazoRequestTrigger(i, pixazo_conn_id=CONN_ID, poll_interval=0.2) for i in ids]))

    assert [e["outcome"] for e in events] == [WaitOutcome.SUCCESS.value] * 20
    assert all(e["result"]["media_urls"] for e in events)
    statuses = [c for c in emulator.calls if c.kind == "status"]
    refused = [c for c in statuses if c.status == 429]
    assert all(c.headers["ocp-apim-subscription-key"] == emulator.api_key for c in statuses)
    # The first 429 pauses the whole loop for Retry-After and cuts the rate: a handful, not one per wait.
    assert 1 <= len(refused) <= 5, [c.status for c in statuses]
    assert len(refused) / len(statuses) <= 0.2
