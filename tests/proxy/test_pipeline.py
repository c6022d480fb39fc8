"""
The whole pipeline behind a proxy and over TLS: submit, deferred wait in the trigger, transfer.

Each run is a real ``dag.test()`` of ``tests/proxy/dags/pixazo_proxy_pipeline.py`` against the
emulator, with ``HTTP_PROXY`` / ``HTTPS_PROXY`` pointing at a real proxy process
(``tests/proxy/forward_proxy.py``). ``dag.test()`` runs the trigger inline, in this process, on the
triggers' own keep-alive transport: the path that used to bypass the proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import ThrowawayCA
from tests.proxy.conftest import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.dagrun]

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_FILE = Path(__file__).resolve().parent / "dags" / "pixazo_proxy_pipeline.py"
SUBMIT_PATH = "/gpt-image-2/v1/text-to-image"


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """``airflow db migrate`` and the ``pixazo`` pool (as the other dag.test() suites do)."""
    for command in (["db", "migrate"], ["pools", "set", "pixazo", "4", "Pixazo submits"]):
        subprocess.run([AIRFLOW, *command], env=dict(os.environ), check=True, capture_output=True, timeout=300)


@dataclass
class PipelineRun:
    """A finished run, and the emulator's calls made while ``dag.test()`` ran the trigger inline."""

    dag_run: Any
    trigger_calls: list[tuple[str, str]] = field(default_factory=list)


def _run_pipeline(destination: Path, monkeypatch: pytest.MonkeyPatch, emulator: PixazoEmulator) -> PipelineRun:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk.definitions import dag as dag_module

    run = PipelineRun(dag_run=None)
    real = dag_module._run_inline_trigger

    def recording(trigger: Any, ti: Any) -> Any:
        # Calls the gateway got while the trigger ran: its polls, on the triggers' own transport.
        before = len(emulator.calls)
        try:
            return real(trigger, ti)
        finally:
            run.trigger_calls.extend((c.method, c.path) for c in emulator.calls[before:])

    monkeypatch.setattr(dag_module, "_run_inline_trigger", recording)
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_PROXY_DESTINATION", destination.as_uri())
    bag = DagBag(str(DAG_FILE))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag("pixazo_proxy_pipeline")
    assert dag is not None
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    run.dag_run = dag.test()
    return run


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _kinds(calls: Counter[tuple[str, str]]) -> dict[str, int]:
    kinds = Counter[str]()
    for (method, path), count in calls.items():
        kind = "submit" if path == SUBMIT_PATH else "status" if "/requests/status/" in path else "media"
        kinds[f"{method} {kind}"] += count
    return dict(kinds)


def test_over_http_every_call_goes_through_the_proxy(
    airflow_db: None,
    pixazo_emulator_factory: Any,
    proxy_env: ProxyProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # PROCESSING for a while, so the trigger polls more than once before COMPLETED.
    emulator: PixazoEmulator = pixazo_emulator_factory(conn_id="pixazo_default", processing_seconds=0.6)

    run = _run_pipeline(tmp_path / "images", monkeypatch, emulator)

    assert str(run.dag_run.state) == "success", _states(run.dag_run)
    assert len(list((tmp_path / "images").rglob("*.png"))) == 2
    # Every request the gateway received came through the proxy, in absolute form, and vice versa.
    received = Counter((call.method, call.path) for call in emulator.calls)
    forwarded = Counter(
        (r["method"], r["target"].removeprefix(emulator.url))
        for r in proxy_env.records()
        if r["target"].startswith(emulator.url)
    )
    assert forwarded == received
    kinds = _kinds(received)
    assert kinds["POST submit"] == 1
    assert kinds["GET status"] >= 2  # the trigger's polls, then the transfer's own read
    assert kinds["GET media"] == 2
    assert all(r["method"] != "CONNECT" for r in proxy_env.records())
    # The trigger polled, and those polls are among what the proxy forwarded.
    assert run.trigger_calls
    assert {path for _, path in run.trigger_calls} <= {path for _, path in forwarded}
    assert set(_kinds(Counter(run.trigger_calls))) == {"GET status"}


def test_over_https_with_a_private_ca_every_connection_is_a_tunnel(
    airflow_db: None,
    pixazo_emulator_factory: Any,
    pixazo_tls_ca: ThrowawayCA,
    proxy_env: ProxyProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    emulator: PixazoEmulator = pixazo_emulator_factory(
        conn_id="pixazo_default",
        conn_extra={"verify": str(pixazo_tls_ca.bundle)},
        ssl_context=pixazo_tls_ca.server_context(),
        processing_seconds=0.6,
    )
    assert emulator.url.startswith("https://")

    run = _run_pipeline(tmp_path / "images", monkeypatch, emulator)

    assert str(run.dag_run.state) == "success", _states(run.dag_run)
    assert len(list((tmp_path / "images").rglob("*.png"))) == 2
    kinds = _kinds(Counter((call.method, call.path) for call in emulator.calls))
    assert kinds["POST submit"] == 1
    assert kinds["GET status"] >= 2
    assert kinds["GET media"] == 2
    assert run.trigger_calls  # the trigger polled over https, through a tunnel like the rest
    # The proxy cannot read inside TLS: what proves the route is that every TCP connection the
    # gateway accepted was a CONNECT tunnel the proxy opened (sync client, trigger, media client).
    hostport = emulator.url.removeprefix("https://")
    tunnels = [r for r in proxy_env.records() if r["method"] == "CONNECT" and r["target"] == hostport]
    assert len(tunnels) == emulator.connections_opened >= 3  # worker API client, trigger, media client
    assert emulator.tls_failures == 0
