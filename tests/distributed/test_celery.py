"""
The provider on a distributed Airflow: CeleryExecutor with a real Redis broker, PostgreSQL as the shared
metadata DB, two Celery workers and two triggerers (tests/distributed/_stack.py).

With the emulator's clock held (tests/_clock.py), so every Pixazo job stays PROCESSING however busy
the machine: the example DAGs, a mapped batch of 20 waits (spread over both triggerers) and one wait
polled on a worker (``deferrable=False``) run. The worker holding that wait is SIGKILLed: the scheduler
fails the silent try and retries it on the other worker, which reconnects to the request the first
try stored and polls it, still PROCESSING. Then one triggerer is SIGKILLed and the clock released: the
other takes the dead one's triggers over. Every run succeeds, with exactly one paid submit per task,
every image stored, and at most 5 % of status calls answered 429 while both triggerers poll one
connection against the gateway's rate limit. A deployment missing a connection on one role fails
the task naming it, while everything else waits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from tests._clock import HeldClock
from tests.distributed._stack import (
    TASK_HEARTBEAT_TIMEOUT,
    TRIGGERER_CAPACITY,
    TRIGGERER_THRESHOLD,
    TRIGGERERS,
    WORKERS,
    Deployment,
)

pytestmark = [pytest.mark.distributed, pytest.mark.integration, pytest.mark.timeout(1500)]

DAILY, ONE_TASK, EDIT = "pixazo_daily_content", "pixazo_one_task", "pixazo_edit_pipeline"
CONSUMER = "pixazo_images_consumer"
BATCH, HELD, MISCONFIG = "pixazo_distributed_batch", "pixazo_distributed_held", "pixazo_distributed_misconfig"
RUN_ID = "distributed"
SUCCEEDING = (DAILY, ONE_TASK, EDIT, BATCH, HELD)
#: Every wait deferred while the clock is held, as (dag_id, task_id, map_index).
WAITS = (
    [(DAILY, "one_image.wait", i) for i in range(4)]
    + [(BATCH, "one_image.wait", i) for i in range(20)]
    + [(ONE_TASK, "generate_and_wait", -1), (EDIT, "generate_base", -1)]
)
HELD_TASK = (HELD, "generate_and_poll", -1)
#: The gateway's status rate limit (token bucket): below what the waits would ask for together
#: (20 polled every second, 6 every 5 s, the worker's 1 a second), so both triggerers must pace.
STATUS_RATE = 10.0
PROCESSING_SECONDS = 1.0


# The test's many state checks read the shared metadata DB directly: through the REST API they
# would load the one api-server that also serves every task's execution API, and on a loaded 2-core
# machine a task whose start call to it timed out fails before it runs (seen at load 50).
_TIS = """
    SELECT ti.task_id, ti.map_index, ti.state, ti.try_number, ti.pid, tr.triggerer_id
    FROM task_instance ti LEFT JOIN trigger tr ON tr.id = ti.trigger_id
    WHERE ti.dag_id = %s AND ti.run_id = %s
"""


def _tis(system: Deployment, dag_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(system.servers.sql_alchemy_conn) as db:
        rows = db.execute(_TIS, (dag_id, RUN_ID)).fetchall()
    return [
        {
            "task_id": task_id,
            "map_index": map_index,
            "state": state,
            "try_number": try_number,
            "pid": pid,
            "triggerer_job": {"id": triggerer} if triggerer is not None else None,
        }
        for task_id, map_index, state, try_number, pid, triggerer in rows
    ]


def _by_key(system: Deployment, dag_ids: tuple[str, ...]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(d, ti["task_id"], ti["map_index"]): ti for d in dag_ids for ti in _tis(system, d)}


def _run_state(system: Deployment, dag_id: str) -> str:
    with psycopg.connect(system.servers.sql_alchemy_conn) as db:
        row = db.execute("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, RUN_ID)).fetchone()
    return str(row[0]) if row else "none"


def _worker_of(pid: int, system: Deployment) -> str | None:
    """Which worker process ``pid`` descends from (its task runner is a child of a Celery pool process)."""
    workers = {system.procs.started[name].pid: name for name in WORKERS}
    while pid > 1:
        if pid in workers:
            return workers[pid]
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_machine(system: Deployment, name: str) -> None:
    """
    ``kill -9`` a worker as if its machine died: its process group, and the task runners, which Airflow
    puts in process groups of their own (task SDK supervisor: ``os.setpgid``) so it can signal a task's
    whole tree; killing only the worker's group would leave them polling on as orphans.
    """
    proc = system.procs.started[name]
    tree = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.1)


def _triggerer_heartbeats(system: Deployment) -> dict[int, Any]:
    with psycopg.connect(system.servers.sql_alchemy_conn) as db:
        rows = db.execute(
            "SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running'"
        ).fetchall()
    return dict(rows)


def _status_calls(system: Deployment, since: int = 0) -> list[Any]:
    return [call for call in system.emulator.calls[since:] if call.kind == "status"]


def _task_log(system: Deployment, dag_id: str, task_id: str) -> str:
    folder = system.home / "logs" / f"dag_id={dag_id}" / f"run_id={RUN_ID}" / f"task_id={task_id}"
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.rglob("*.log")))


def test_celery_workers_and_triggerers_survive_kills(distributed: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_pixazo.testing import emulator as emulator_module
    from airflow_provider_pixazo.testing.emulator import FaultConfig

    system, emulator = distributed, distributed.emulator
    clock = HeldClock(held=False)
    monkeypatch.setattr(emulator_module, "time", clock)
    emulator.set_faults(FaultConfig(status_calls_per_second=STATUS_RATE))
    started = time.monotonic()

    def parsed() -> bool:
        dag_ids = {dag["dag_id"] for dag in system.api("GET", "/dags", params={"limit": 100})["dags"]}
        return {*SUCCEEDING, CONSUMER, MISCONFIG} <= dag_ids

    system.wait_for("every DAG to be parsed", parsed, timeout=120)
    assert system.api("GET", "/importErrors")["total_entries"] == 0
    system.api("POST", "/pools", json={"name": "pixazo", "slots": 4, "description": "Pixazo submits"})

    # Every job submitted from now on stays PROCESSING until the clock is released.
    emulator.processing_seconds = PROCESSING_SECONDS
    clock.hold()
    daily_date = system.api("GET", f"/dags/{DAILY}")["next_dagrun_logical_date"]
    for dag_id in (*SUCCEEDING, MISCONFIG):
        logical_date = daily_date if dag_id == DAILY else None  # the daily's own schedule makes no second run
        system.api("POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": RUN_ID, "logical_date": logical_date})
    for dag_id in (*SUCCEEDING, CONSUMER, MISCONFIG):
        system.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    print(f"[distributed] triggered at {time.monotonic() - started:.1f}s")

    # A misconfigured role fails its task at once, naming the connection, while the other waits hold.
    system.wait_for("the misconfigured run to fail", lambda: _run_state(system, MISCONFIG) == "failed", timeout=400)
    misconfig = _by_key(system, (MISCONFIG,))
    assert {key[1]: ti["state"] for key, ti in misconfig.items()} == {
        "no_connection_on_worker": "failed",
        "no_connection_on_triggerer": "failed",
    }
    worker_log = _task_log(system, MISCONFIG, "no_connection_on_worker")
    assert "pixazo_triggerer_only" in worker_log, worker_log[-3000:]
    assert "isn't defined" in worker_log, worker_log[-3000:]
    triggerer_log = _task_log(system, MISCONFIG, "no_connection_on_triggerer")
    assert "Cannot wait for Pixazo request" in triggerer_log, triggerer_log[-3000:]
    assert "pixazo_workers_only" in triggerer_log, triggerer_log[-3000:]

    # Every wait deferred (in either triggerer), and the held task polling on a worker.
    def ready() -> tuple[dict[tuple[str, str, int], dict[str, Any]], dict[str, Any]] | None:
        tis = _by_key(system, (DAILY, ONE_TASK, EDIT, BATCH, HELD))
        waits = {key: tis.get(key) for key in WAITS}
        held = tis.get(HELD_TASK)
        if not all(ti and ti["state"] == "deferred" and ti.get("triggerer_job") for ti in waits.values()):
            return None
        if not (held and held["state"] == "running" and held["pid"]):
            return None
        held_rid = _prompt_of(emulator, "tram in the rain")
        if not held_rid or not any(c.path.rsplit("/", 1)[-1] in held_rid for c in _status_calls(system)):
            return None
        return waits, held  # type: ignore[return-value]

    waits, held = system.wait_for("every wait deferred and the held task polling", ready, timeout=600)
    per_triggerer = Counter(ti["triggerer_job"]["id"] for ti in waits.values())
    print(f"[distributed] all waiting at {time.monotonic() - started:.1f}s; per triggerer job: {dict(per_triggerer)}")
    # Both triggerers poll: neither can hold more than TRIGGERER_CAPACITY of the 26 waits.
    assert len(per_triggerer) == 2, f"both triggerers should hold waits: {dict(per_triggerer)}"
    assert max(per_triggerer.values()) <= TRIGGERER_CAPACITY
    now = clock.monotonic()
    assert all(not job.status_at(now).is_terminal for job in emulator.requests.values())

    # 1. Kill -9 the worker running the held task (its whole process group: the Celery pool and the
    # task runner). The scheduler fails the silent try after its heartbeat timeout and retries it on
    # the other worker, which reconnects to the stored request and polls it: still PROCESSING, as
    # the clock is held, so the retry waits on the same paid job instead of submitting again.
    held_worker = _worker_of(held["pid"], system)
    assert held_worker, f"task pid {held['pid']} is in no worker's process tree"
    (held_rid,) = _prompt_of(emulator, "tram in the rain")
    worker_kill_index = len(emulator.calls)
    worker_killed_at = time.monotonic()
    _kill_machine(system, held_worker)
    assert not _alive(held["pid"]), f"the held task's process {held['pid']} outlived its worker"
    print(f"[distributed] killed {held_worker} at {worker_killed_at - started:.1f}s")

    def retried() -> dict[str, Any] | None:
        ti = _by_key(system, (HELD,))[HELD_TASK]
        if ti["state"] != "running" or ti["try_number"] != 2 or not ti["pid"]:
            return None
        polled = any(c.path.endswith(held_rid) for c in _status_calls(system, worker_kill_index))
        return ti if polled and _worker_of(ti["pid"], system) else None

    retry_ti = system.wait_for(
        "the held task's retry to poll its request", retried, timeout=TASK_HEARTBEAT_TIMEOUT + 240
    )
    retried_after = time.monotonic() - worker_killed_at
    assert _worker_of(retry_ti["pid"], system) not in (None, held_worker)
    assert emulator.requests[held_rid].status_at(clock.monotonic()).value == "PROCESSING"
    print(f"[distributed] held task retried on the other worker {retried_after:.1f}s after the kill")

    # 2. Kill -9 a triggerer while every wait is deferred, and let the jobs finish: the other
    # triggerer takes the dead one's triggers once its heartbeat is TRIGGERER_THRESHOLD s old.
    before = _triggerer_heartbeats(system)
    kill_index = len(emulator.calls)
    killed_at = time.monotonic()
    system.procs.kill(TRIGGERERS[0])
    clock.release()
    print(f"[distributed] killed {TRIGGERERS[0]} at {killed_at - started:.1f}s")

    # Which triggerer job died: the one whose heartbeat stops (the other's moves on every second).
    def survivor() -> int | None:
        moved = [job for job, beat in _triggerer_heartbeats(system).items() if job in before and beat != before[job]]
        return moved[0] if len(moved) == 1 else None

    alive_job = system.wait_for("the surviving triggerer's heartbeat", survivor, timeout=30)
    dead_waits = [key for key, ti in waits.items() if ti["triggerer_job"]["id"] != alive_job]
    assert dead_waits, f"the killed triggerer held no waits: {dict(per_triggerer)}"

    # Taken over: every waited job polled again since the kill (the dead triggerer's only by the survivor).
    def taken_over() -> bool:
        polled = {call.path.rsplit("/", 1)[-1] for call in _status_calls(system, kill_index)}
        return set(emulator.requests) - _not_waited(emulator) <= polled

    system.wait_for("the surviving triggerer to take over", taken_over, timeout=300, interval=0.25)
    takeover = time.monotonic() - killed_at
    print(f"[distributed] {len(dead_waits)} waits taken over {takeover:.1f}s after the kill")

    def finished() -> dict[str, str] | None:
        states = {dag_id: _run_state(system, dag_id) for dag_id in SUCCEEDING}
        return states if all(state in ("success", "failed") for state in states.values()) else None

    states = system.wait_for("every run to finish", finished, timeout=600)
    elapsed = time.monotonic() - started
    submits = [call.json["prompt"] for call in emulator.calls if call.kind == "submit" and call.status == 202]
    statuses = Counter(call.status for call in _status_calls(system))
    total = sum(statuses.values())
    share = statuses[429] / total
    sys.stderr.write(
        f"\n[distributed] runs {states}; misconfigured run failed clearly; submits {len(submits)}; "
        f"images {len(list(system.images.rglob('*.png')))}; 429 share {share:.1%} of {total} status calls "
        f"(gateway limit {STATUS_RATE:g}/s); takeover {takeover:.1f}s of {len(dead_waits)} waits (health "
        f"threshold {TRIGGERER_THRESHOLD}s); held task retried on the other worker {retried_after:.1f}s after "
        f"its worker died (heartbeat timeout {TASK_HEARTBEAT_TIMEOUT}s); all runs done {elapsed:.1f}s after "
        f"the deployment was up ({system.startup_seconds:.1f}s, db migrate {system.migrate_seconds:.1f}s)\n"
    )
    failed = {
        dag_id: [(t["task_id"], t["map_index"], t["state"]) for t in _tis(system, dag_id) if t["state"] != "success"]
        for dag_id, state in states.items()
        if state != "success"
    }
    assert not failed, f"runs failed: {failed}"
    system.wait_for(
        "the asset-scheduled consumer run",
        lambda: [r for r in system.api("GET", f"/dags/{CONSUMER}/dagRuns")["dag_runs"] if r["state"] == "success"],
        timeout=300,
    )

    # Exactly one paid submit per task: none twice across the worker kill, none for the task whose
    # worker had no connection.
    expected = 4 + 1 + 2 + 20 + 1 + 1  # daily, one_task, edit (base + edit), batch, held, misconfig's wait
    assert len(submits) == expected, Counter(submits).most_common(3)
    assert max(Counter(submits).values()) == 1
    assert emulator.submit_count() == expected
    assert emulator.submit_count("Distributed misconfig: never submitted") == 0

    # Every image stored: the daily 4, the batch 20, the edit pipeline's base and edit.
    stored = set(emulator.requests) - _not_stored(emulator)
    assert len(stored) == 26
    for request_id in stored:
        job = emulator.requests[request_id]
        path = system.images / request_id / "0.png"
        assert path.is_file(), request_id
        with Image.open(path) as picture:
            assert (picture.format, picture.size) == ("PNG", (job.spec.width, job.spec.height))
    assert len(list(system.images.rglob("*.png"))) == 26

    # Two triggerers polling one connection against the gateway's rate limit.
    assert share <= 0.05, f"{statuses[429]} of {total} status calls answered 429 ({share:.1%})"

    # The key is in no process or task log.
    from tests.system._stack import API_KEY

    logs = [*system.logs.glob("*.log"), *(system.home / "logs").rglob("*.log")]
    assert [str(p) for p in logs if API_KEY.encode() in p.read_bytes()] == []


def _prompt_of(emulator: Any, needle: str) -> set[str]:
    return {rid for rid, job in emulator.requests.items() if needle in job.body["prompt"]}


def _not_waited(emulator: Any) -> set[str]:
    """Requests no triggerer waits on: the held task's (polled on a worker) and the misconfigured one."""
    return _prompt_of(emulator, "tram in the rain") | _prompt_of(emulator, "Distributed misconfig")


def _not_stored(emulator: Any) -> set[str]:
    """Requests with no store task: the two above, and one_task's (it only waits)."""
    one_task = {rid for rid, job in emulator.requests.items() if job.body.get("num_images") == 2}
    return _not_waited(emulator) | one_task
