"""The loop's shared clients close with the loop: no kept-alive socket outlives a short asyncio.run() loop.

dag.test() and Airflow's triggerer run triggers in ``asyncio.run()``; these run the real poll path
(shared poller, keep-alive transport) against the emulator on 127.0.0.1 and never call
``aclose_shared_clients``, so only the loop's own shutdown can close the sockets.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
import weakref
from typing import Any

import psutil
import pytest

from airflow_provider_pixazo.events import WaitOutcome
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.models import build_generate_request
from airflow_provider_pixazo.testing._faults import FaultConfig
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger


def _sockets_to(emulator: PixazoEmulator) -> list[Any]:
    """This process's client-side TCP sockets to the emulator (the server's own ends excluded)."""
    port = int(emulator.url.rsplit(":", 1)[1])
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port and c.fd != -1]


def _submit(emulator: PixazoEmulator) -> str:
    hook = PixazoHook()
    try:
        return hook.submit(build_generate_request("a lighthouse", n=1)).request_id
    finally:
        hook.close()


def _leaks_after_collect() -> list[str]:
    """What the garbage collector reports when it reclaims what the loop left behind."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.fixture(params=["http", "https"])
def emulator(request: pytest.FixtureRequest, pixazo_emulator_factory: Any) -> PixazoEmulator:
    if request.param == "http":
        return pixazo_emulator_factory(conn_id="pixazo_default")
    ca = request.getfixturevalue("pixazo_tls_ca")
    return pixazo_emulator_factory(
        conn_id="pixazo_default", conn_extra={"verify": str(ca.bundle)}, ssl_context=ca.server_context()
    )


def test_asyncio_run_closes_the_loops_kept_alive_sockets(emulator: PixazoEmulator) -> None:
    request_id = _submit(emulator)
    before = emulator.connections_opened  # the sync submit's own
    seen: dict[str, Any] = {}

    async def main() -> None:
        for _ in range(2):  # two waits in one loop: they share one warm connection
            trigger = PixazoRequestTrigger(request_id, poll_interval=0.05)
            event = await anext(trigger.run())
            assert event.payload["outcome"] == WaitOutcome.SUCCESS.value
        # While the loop lives, its connection stays open for the next poll.
        seen["open_in_loop"] = len(_sockets_to(emulator))
        transport = _clients.shared_async_transport(await PixazoHook().asettings())
        assert transport.connections_opened == 1  # the one the waits polled on
        seen["transport"] = weakref.ref(transport)
        del transport

    asyncio.run(main())

    assert seen["open_in_loop"] == 1
    assert emulator.connections_opened - before == 1
    assert _sockets_to(emulator) == []
    assert _leaks_after_collect() == []
    # Nothing keeps the finished loop's transport alive (the registry held it, with its sockets).
    assert seen["transport"]() is None


def test_a_poll_in_flight_when_the_loop_ends_is_closed_quietly(
    pixazo_emulator_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = pixazo_emulator_factory(conn_id="pixazo_default", processing_seconds=60)
    request_id = _submit(emulator)
    before = emulator.connections_opened  # the sync submit's own

    async def main() -> None:
        # Two connections left idle by concurrent one-off calls on the loop's shared client...
        hook = PixazoHook()
        # Slow answers keep both calls in flight at once, so each needs a connection of its own even
        # when a loaded machine would otherwise let the first finish before the second starts.
        emulator.set_faults(FaultConfig(latency_seconds=0.3, endpoints=("status",)))
        await asyncio.gather(hook.aget_status(request_id), hook.aget_status(request_id))
        assert len(_sockets_to(emulator)) == 2
        # ...then a wait whose poll is still unanswered when main returns: asyncio.run cancels it
        # (its poll closes the connection it holds), then the loop's closer closes the idle one.
        emulator.set_faults(FaultConfig(latency_seconds=1.0, endpoints=("status",)))
        waiting = asyncio.create_task(anext(PixazoRequestTrigger(request_id, poll_interval=5).run()))
        await asyncio.sleep(0.2)
        assert not waiting.done()

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        asyncio.run(main())

    assert emulator.connections_opened - before == 2
    assert emulator.status_count() == 2  # the third poll was sent, never answered
    assert _sockets_to(emulator) == []
    assert _leaks_after_collect() == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_clients_closed_early_are_remade_and_closed_again_at_loop_end(emulator: PixazoEmulator) -> None:
    request_id = _submit(emulator)
    before = emulator.connections_opened  # the sync submit's own

    async def main() -> None:
        hook = PixazoHook()
        await hook.aget_status(request_id)
        await _clients.aclose_shared_clients()
        assert _sockets_to(emulator) == []
        await hook.aget_status(request_id)  # a fresh client, and a fresh closer for it
        assert len(_sockets_to(emulator)) == 1

    asyncio.run(main())

    assert emulator.connections_opened - before == 2
    assert _sockets_to(emulator) == []
    assert _leaks_after_collect() == []


def test_a_loop_closed_without_shutdown_asyncgens_is_not_kept(pixazo_emulator: PixazoEmulator) -> None:
    settings_of = PixazoHook().asettings

    async def make_client() -> weakref.ref[asyncio.AbstractEventLoop]:
        _clients.shared_async_client(await settings_of())
        return weakref.ref(asyncio.get_running_loop())

    # run_until_complete() then close(): the loop never runs its closer (no socket was opened).
    loop = asyncio.new_event_loop()
    old = loop.run_until_complete(make_client())
    loop.close()
    del loop

    # The next loop's first client drops the closed loop's entry, which held it.
    asyncio.run(make_client())
    gc.collect()
    assert old() is None
