"""
The example DAGs on a real Airflow deployment: separate api-server, scheduler, dag-processor and
triggerer processes, LocalExecutor, runs started with ``airflow dags trigger``.

What ``dag.test()`` cannot show: the deferred waits live in a triggerer *process*. The test kills
that process with SIGKILL while every first-stage wait is deferred and its Pixazo job still
running, starts a new triggerer, and checks that the runs still succeed with exactly one paid
submit per task, every image stored, the asset-scheduled consumer run, and the API key in no log.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests._clock import HeldClock
from tests.system._stack import AIRFLOW, API_KEY, AirflowSystem

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(600)]

DAILY, ONE_TASK, EDIT, CONSUMER = (
    "pixazo_daily_content",
    "pixazo_one_task",
    "pixazo_edit_pipeline",
    "pixazo_images_consumer",
)
RUN_IDS = {DAILY: "system_daily", ONE_TASK: "system_one_task", EDIT: "system_edit"}
#: The first-stage waits, as (dag_id, task_id, map_index): all are deferred when the triggerer dies.
FIRST_WAITS = [(DAILY, "one_image.wait", i) for i in range(4)] + [
    (ONE_TASK, "generate_and_wait", -1),
    (EDIT, "generate_base", -1),
]
#: Seconds a job stays PROCESSING on the emulator's clock. The first-stage jobs are submitted while
#: that clock is held (tests/_clock.py) and it is released only after the kill, so each of their waits
#: is still deferred in the first triggerer when it dies however busy the machine, and nobody waits
#: out a fixed hold long enough for the slowest machine.
PROCESSING_SECONDS = 1.0


def _task_instances(system: AirflowSystem, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return system.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})["task_instances"]


def _first_waits(system: AirflowSystem) -> dict[tuple[str, str, int], dict[str, Any]]:
    found = {}
    for dag_id in (DAILY, ONE_TASK, EDIT):
        for ti in _task_instances(system, dag_id, RUN_IDS[dag_id]):
            key = (dag_id, ti["task_id"], ti["map_index"])
            if key in FIRST_WAITS:
                found[key] = ti
    return found


def _run_state(system: AirflowSystem, dag_id: str, run_id: str) -> str:
    return str(system.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])


def _png(path: Path) -> tuple[str | None, tuple[int, int]]:
    with Image.open(path) as picture:
        return picture.format, picture.size


def test_examples_survive_a_killed_triggerer(airflow_system: AirflowSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_pixazo.testing import emulator as emulator_module

    system, emulator = airflow_system, airflow_system.emulator
    clock = HeldClock(held=False)
    monkeypatch.setattr(emulator_module, "time", clock)
    started = time.monotonic()

    # The dag-processor has parsed every example (paused at creation).
    def parsed() -> bool:
        dag_ids = {dag["dag_id"] for dag in system.api("GET", "/dags", params={"tags": "example"})["dags"]}
        return {DAILY, ONE_TASK, EDIT, CONSUMER} <= dag_ids

    system.wait_for("the example DAGs to be parsed", parsed, timeout=120)
    assert system.api("GET", "/importErrors")["total_entries"] == 0
    print(f"[system] parsed at {time.monotonic() - started:.1f}s")
    system.api("POST", "/pools", json={"name": "pixazo", "slots": 4, "description": "Pixazo submits"})

    # Trigger today's run of the daily DAG (the logical date its schedule would use, so unpausing it
    # creates no second run), and one run of each other example.
    emulator.processing_seconds = PROCESSING_SECONDS
    clock.hold()
    logical_date = system.api("GET", f"/dags/{DAILY}")["next_dagrun_logical_date"]
    assert logical_date, "the daily DAG has no next run"
    triggers = {
        DAILY: ["--logical-date", logical_date],
        ONE_TASK: [],
        EDIT: [],
    }
    for dag_id, extra in triggers.items():
        system.procs.start(f"trigger-{dag_id}", AIRFLOW, "dags", "trigger", dag_id, "--run-id", RUN_IDS[dag_id], *extra)
    for dag_id in triggers:
        proc = system.procs.started[f"trigger-{dag_id}"]
        assert proc.wait(timeout=120) == 0, (system.logs / f"trigger-{dag_id}.log").read_text()
    print(f"[system] triggered at {time.monotonic() - started:.1f}s")
    for dag_id in (DAILY, ONE_TASK, EDIT, CONSUMER):
        system.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    # Every first-stage wait is deferred, its trigger running in the first triggerer.
    def all_deferred() -> dict[tuple[str, str, int], dict[str, Any]] | None:
        waits = _first_waits(system)
        if len(waits) == len(FIRST_WAITS) and all(
            ti["state"] == "deferred" and ti.get("triggerer_job") for ti in waits.values()
        ):
            return waits
        return None

    deferred = system.wait_for("the first-stage waits to be deferred", all_deferred, timeout=150)
    first_triggerer = {ti["triggerer_job"]["id"] for ti in deferred.values()}
    assert len(first_triggerer) == 1, first_triggerer
    first_jobs = emulator.requests
    assert len(first_jobs) == 6, sorted(first_jobs)
    now = clock.monotonic()
    running = {rid for rid, job in first_jobs.items() if not job.status_at(now).is_terminal}
    assert running == set(first_jobs), f"jobs finished before the kill: {set(first_jobs) - running}"

    print(f"[system] deferred at {time.monotonic() - started:.1f}s")
    system.procs.kill("triggerer")
    killed_at = clock.monotonic()  # the emulator's clock: RecordedCall.at is read from it
    deferred_at_kill = time.monotonic() - started
    # The held jobs now finish PROCESSING_SECONDS later, while the new triggerer starts.
    clock.release()
    system.start_triggerer("triggerer-2")

    # Every run finishes, each first-stage wait resumed by the new triggerer.
    runs = {dag_id: RUN_IDS[dag_id] for dag_id in (DAILY, ONE_TASK, EDIT)}

    def finished() -> bool:
        states = {dag_id: _run_state(system, dag_id, run_id) for dag_id, run_id in runs.items()}
        failed = [dag_id for dag_id, state in states.items() if state == "failed"]
        if failed:
            tis = {
                dag_id: [
                    (t["task_id"], t["map_index"], t["state"]) for t in _task_instances(system, dag_id, runs[dag_id])
                ]
                for dag_id in failed
            }
            pytest.fail(f"runs failed: {tis}")
        return all(state == "success" for state in states.values())

    system.wait_for("every triggered run to succeed", finished, timeout=240)
    print(f"[system] runs done at {time.monotonic() - started:.1f}s")
    # Each stored daily image is one asset event, with its URI in the extra; the consumer ran on them.
    # (Events of mapped tasks finishing together may only reach its next run: apache/airflow#54659.)
    consumer_runs = system.wait_for(
        "the asset-scheduled consumer run",
        lambda: [r for r in system.api("GET", f"/dags/{CONSUMER}/dagRuns")["dag_runs"] if r["state"] == "success"],
        timeout=90,
    )
    elapsed = time.monotonic() - started

    # Exactly one paid submit per task: 4 daily prompts, one_task, the edit pipeline's base and edit.
    submits = [call for call in emulator.calls if call.kind == "submit"]
    assert len(submits) == 7, [call.json.get("prompt") for call in submits]
    assert emulator.submit_count() == 7
    prompts = [call.json["prompt"] for call in submits]
    assert len(set(prompts)) == 7, prompts

    # The waits deferred at the kill were finished by the new triggerer: each request was polled
    # again after the old one died, and each wait then succeeded.
    polled_after = {c.path.rsplit("/", 1)[-1] for c in emulator.calls if c.kind == "status" and c.at > killed_at}
    assert set(first_jobs) <= polled_after
    final = _first_waits(system)
    assert {key: ti["state"] for key, ti in final.items()} == dict.fromkeys(FIRST_WAITS, "success")

    # Every image stored, whole, with its provenance: 4 daily + base + edit.
    stored = {rid: job for rid, job in emulator.requests.items() if job.body["prompt"] != _one_task_prompt(emulator)}
    assert len(stored) == 6
    for request_id, job in stored.items():
        folder = system.images / request_id
        files = sorted(folder.glob("*.png"))
        assert [f.name for f in files] == ["0.png"], (request_id, sorted(folder.iterdir()) if folder.exists() else [])
        assert _png(files[0]) == ("PNG", (job.spec.width, job.spec.height))
        sidecar = json.loads((folder / "provenance.json").read_text())
        assert sidecar["request_id"] == request_id
        digests = json.dumps(sidecar)
        assert hashlib.sha256(files[0].read_bytes()).hexdigest() in digests
    assert len(list(system.images.rglob("*.png"))) == 6

    daily_images = {
        (system.images / rid / "0.png").as_uri() for rid, job in stored.items() if job.body.get("quality") == "low"
    }
    assert len(daily_images) == 4
    events = system.api("GET", "/assets/events", params={"source_dag_id": DAILY, "limit": 100})["asset_events"]
    assert sorted(uri for event in events for uri in event["extra"]["uris"]) == sorted(daily_images)
    catalogued = _catalogued(system, consumer_runs)
    assert catalogued
    assert set(catalogued) <= daily_images

    # The key is in no process log, no task or trigger log, and nowhere in the metadata DB.
    logs = [*system.logs.glob("*.log"), *(system.home / "logs").rglob("*"), *system.home.glob("airflow.db*")]
    leaked = [str(path) for path in logs if path.is_file() and API_KEY.encode() in path.read_bytes()]
    assert leaked == []
    task_logs = [path for path in (system.home / "logs").rglob("*") if path.is_file()]
    assert task_logs, "no task logs were written"

    sys.stderr.write(
        f"\n[system] waits deferred and triggerer killed at {deferred_at_kill:.1f}s; "
        f"all runs done at {elapsed:.1f}s after the deployment was up\n"
    )


def _catalogued(system: AirflowSystem, runs: list[dict[str, Any]]) -> list[str]:
    """Every URI the consumer's finished runs returned."""
    uris: list[str] = []
    for run in runs:
        entry = system.api(
            "GET", f"/dags/{CONSUMER}/dagRuns/{run['dag_run_id']}/taskInstances/catalogue/xcomEntries/return_value"
        )
        value = entry["value"]
        uris.extend(value if isinstance(value, list) else json.loads(value))
    return uris


def _one_task_prompt(emulator: Any) -> str:
    return next(job.body["prompt"] for job in emulator.requests.values() if job.body.get("num_images") == 2)
