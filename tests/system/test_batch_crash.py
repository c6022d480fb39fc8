"""
The batch operator survives ``kill -9`` on real processes (issue #18): separate api-server, scheduler,
dag-processor and triggerer, LocalExecutor, sqlite, the emulator in this process.

- **The worker, in the middle of the submits.** The emulator answers the first submits, then holds the
  next ones unanswered (``hold_submits``); once no more submits arrive (every slot the task refills is
  waiting on the emulator), the test SIGKILLs
  the task's supervisor (the LocalExecutor worker process titled with the task instance's id) and the task
  process's own group, then lets the held submits through: Pixazo took them, the dead task never heard
  their ids. Airflow 3.3 notices a SIGKILLed LocalExecutor task only by its missing heartbeats: the
  scheduler fails it after ``[scheduler] task_instance_heartbeat_timeout`` (300 s by default; 45 s here,
  checked every 5 s: ``task_instance_heartbeat_timeout_detection_interval``), and ``retries=1`` starts
  try 2. Try 2 must submit exactly the items no try had recorded an intent for, report the rest of what
  try 1 left without a request id ``uncertain`` (the held ones, which Pixazo did take, and the ones whose
  intent the operator had written ahead of its senders) without paying again, reuse every request id try
  1 recorded, and store every image of the others once.
- **The triggerer, in the middle of the wait.** Jobs are held PROCESSING by the emulator's clock
  (``tests/_clock.py``) while the batch's one trigger runs in the first triggerer; it is SIGKILLed, the
  clock released, a second triggerer started: the batch completes, every image stored once, and the
  trigger's deadline is the one set at deferral (both triggerers log the same one).

Each test counts submits per prompt from the emulator's own records, reads ``manifest.jsonl`` and checks
every file on disk against it. Jobs are held unfinished (the emulator's clock) until the task's deferral
has settled in the scheduler: a trigger firing before the deferring workload's exit report is read makes
Airflow fail the resumed task (the stale-success race, apache/airflow#66374; it failed try 2 here mid-store
before the hold).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image

from airflow_provider_pixazo.batch._submit import WINDOW
from tests._clock import HeldClock
from tests.system._stack import AirflowSystem, start_system

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(900)]

BATCH_DAGS = Path(__file__).resolve().parent / "batch_dags"
DAG_ID, TASK_ID = "pixazo_batch_system", "batch"
#: Submits answered before the emulator starts holding them (the kill then lands mid-submits).
LET_THROUGH = 20
#: The operator's default: how many submits one batch task has in flight.
IN_FLIGHT = 8
#: Enough that try 2 has items to send however far the operator writes intents ahead of its senders:
#: the kill leaves the held submits and up to ``WINDOW`` x ``max_in_flight`` written intents ``uncertain``.
N = LET_THROUGH + IN_FLIGHT * (WINDOW + 1) + 16
PROMPTS = [f"Batch prompt {i}: a lighthouse on a basalt cliff at dawn, watercolour" for i in range(N)]
#: Seconds without a heartbeat after which the scheduler fails a task (the default, 300, makes a
#: crash test wait five minutes; the supervisor heartbeats every 5 s, so 45 s is 9 missed beats, and
#: three of its slowest API calls, 15 s each).
HEARTBEAT_TIMEOUT = 45
DEADLINE_LINE = re.compile(r"Waiting for (\d+) Pixazo request\(s\) until ([0-9T:+-]+)")


@pytest.fixture(scope="module")
def batch_system(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[AirflowSystem]:
    """One deployment for both tests: the batch DAG over ``N`` prompts, ``retries=1``, polls from 1 s."""
    extra = {
        "PIXAZO_BATCH_PROMPTS": str(N),
        "PIXAZO_BATCH_RETRIES": "1",
        "PIXAZO_BATCH_POLL_INTERVAL": "1",
        "PIXAZO_BATCH_TIMEOUT": "900",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # The supervisor's calls to the API server give up after 5 s (x5 tries) by default; on the shared,
        # overloaded test machine (load 50) that failed a try before it ran. Not a limit the tests measure.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "15",
    }
    workdir = tmp_path_factory.mktemp("batch-crash")
    deployment = contextmanager(start_system)(
        workdir, migrated_db, dags_folder=BATCH_DAGS, extra_env=extra, health_timeout=300
    )
    with deployment as system:
        system.emulator.processing_seconds = 1.0

        def parsed() -> bool:
            return any(dag["dag_id"] == DAG_ID for dag in system.api("GET", "/dags")["dags"])

        system.wait_for("the batch DAG to be parsed", parsed, timeout=180)
        assert system.api("GET", "/importErrors")["total_entries"] == 0
        system.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        yield system


@pytest.fixture
def submits_released(batch_system: AirflowSystem) -> Iterator[None]:
    """However the test ends, no submit stays held for the next test (its emulator is shared)."""
    yield
    batch_system.emulator.release_submits()


# -- helpers ---------------------------------------------------------------------------------------


def _trigger(system: AirflowSystem, run_id: str) -> None:
    system.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})


def _ti(system: AirflowSystem, run_id: str) -> dict[str, Any]:
    return dict(system.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}"))


def _run_state(system: AirflowSystem, run_id: str) -> str:
    return str(system.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"])


def _xcom(system: AirflowSystem, run_id: str, key: str) -> Any:
    entry = system.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/{key}")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def _deferral_settled(system: AirflowSystem, run_id: str, try_number: int) -> bool:
    """
    Whether the task is deferred and the scheduler has taken the exit report of the workload that deferred it.

    A trigger that fires before that report is read makes the scheduler take the late "success" for a
    task whose state changed under it and fail the resumed task (apache/airflow#66374, #67287, #71580,
    #72716, as ``tests/system/_scale.py`` logs it): the tests hold the emulator's jobs until then.
    """
    ti = _ti(system, run_id)
    if ti["state"] != "deferred" or ti["try_number"] != try_number or not ti.get("triggerer_job"):
        return False
    report = (
        "Received executor event with state success for task instance TaskInstanceKey("
        f"dag_id='{DAG_ID}', task_id='{TASK_ID}', run_id='{run_id}', try_number={try_number},"
    )
    return report in (system.logs / "scheduler.log").read_text(errors="replace")


def _recorded_ids(system: AirflowSystem, run_id: str) -> dict[str, str]:
    """
    The request ids the batch's ledger holds for ``run_id`` (prompt -> id), read from the metadata DB.

    The ledger lives in Airflow's task state store (``airflow_provider_pixazo/batch/_ledger.py``): one row
    per chunk key, each a JSON list of entries ``{"k", "f", "s", "id"}``; an item's key is its prompt's index.
    """
    with closing(sqlite3.connect(f"file:{system.home / 'airflow.db'}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT value FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key LIKE ?",
            (DAG_ID, run_id, TASK_ID, "pixazo_batch.%"),
        ).fetchall()
    ids = {}
    for (value,) in rows:
        for entry in json.loads(value):
            if entry.get("id"):
                ids[PROMPTS[int(entry["k"])]] = entry["id"]
    return ids


def _accepted_prompts(calls: list[Any]) -> list[str]:
    return [c.json["prompt"] for c in calls if c.kind == "submit" and c.status == 202 and isinstance(c.json, dict)]


def _kill_task_worker(ti_id: str) -> list[int]:
    """
    ``kill -9`` the LocalExecutor worker running the task instance ``ti_id`` (its supervisor) and the task
    process's group; the pids killed.

    The worker's title is ``airflow worker -- LocalExecutor: <ti id>``; the task process it forks is titled
    ``airflow worker -- <ti id>`` and leads a process group of its own. The supervisor goes first, so nobody
    is left to report the task's death: the deployment learns it only from the missing heartbeats, as after
    a lost machine.
    """
    supervisors = [p for p in psutil.process_iter(["pid"]) if _title(p) == f"airflow worker -- LocalExecutor: {ti_id}"]
    assert len(supervisors) == 1, f"processes titled for {ti_id}: {[p.pid for p in supervisors]}"
    supervisor = supervisors[0]
    tasks = [p for p in supervisor.children() if _title(p) == f"airflow worker -- {ti_id}"]
    assert len(tasks) == 1, [(p.pid, p.cmdline()) for p in supervisor.children()]
    task_group = os.getpgid(tasks[0].pid)
    assert task_group == tasks[0].pid  # its own group: killing it spares the rest of the deployment
    os.kill(supervisor.pid, signal.SIGKILL)
    os.killpg(task_group, signal.SIGKILL)  # the task and anything it started
    found = [supervisor, *tasks]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in found):  # a zombie is dead: its parent reaps it when it gets to it
        assert time.monotonic() < deadline, [p.pid for p in found if _alive(p)]
        time.sleep(0.1)
    return [p.pid for p in found]


def _title(process: psutil.Process) -> str:
    """A process's title as ``setproctitle`` wrote it (argv padded with empty strings), or ``""`` if gone."""
    try:
        return " ".join(process.cmdline()).strip()
    except psutil.Error:
        return ""


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _manifest(system: AirflowSystem, run_id: str) -> list[dict[str, Any]]:
    path = system.images / run_id / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_stored(system: AirflowSystem, run_id: str, lines: list[dict[str, Any]]) -> None:
    """Every completed item's one file is on disk as the manifest says; nothing else is."""
    folder = system.images / run_id
    expected = set()
    for line in lines:
        if line["status"] != "completed":
            assert line["files"] == [], line
            continue
        assert line["error"] is None, line
        assert len(line["files"]) == 1, line
        record = line["files"][0]
        path = Path(record["uri"].removeprefix("file://"))
        assert path.parent == folder, record
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (record["size"], record["sha256"]), path
        with Image.open(path) as picture:
            assert (picture.format, picture.size) == ("PNG", (1024, 1024)), path
        expected.add(path.name)
    on_disk = {p.name for p in folder.iterdir() if p.name != "manifest.jsonl"}
    assert on_disk == expected  # no stray, partial or duplicate file


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("submits_released")
def test_worker_killed_mid_submits_retry_pays_only_for_the_unsent(
    batch_system: AirflowSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_pixazo.testing import emulator as emulator_module

    system, emulator = batch_system, batch_system.emulator
    run_id = "crash_worker"
    clock = HeldClock(held=True)  # every job stays unfinished until try 2 is settled in its deferral
    monkeypatch.setattr(emulator_module, "time", clock)
    calls0, jobs0, submits0 = len(emulator.calls), set(emulator.requests), emulator.submit_count()
    emulator.hold_submits(after=LET_THROUGH)
    _trigger(system, run_id)

    # LET_THROUGH submits answered, the next IN_FLIGHT held unanswered (every slot busy: the task sends no
    # more), and the answered ones' request ids durable in the ledger (a write under way when the task
    # dies is lost). Waited for, not timed: on a loaded machine each ledger write can take seconds, and
    # the senders wait for the intents' writes (the hook's read timeout, 30 s, is still far).
    def held_and_recorded() -> bool:
        return emulator.held_submits == IN_FLIGHT and len(_recorded_ids(system, run_id)) == LET_THROUGH

    system.wait_for("every slot's submit held and the answered ids recorded", held_and_recorded, timeout=300)
    recorded = _recorded_ids(system, run_id)
    assert emulator.submit_count() - submits0 == LET_THROUGH
    ti = _ti(system, run_id)
    assert (ti["state"], ti["try_number"]) == ("running", 1), f"try 1 is not the one submitting: {ti}"
    killed = _kill_task_worker(ti["id"])
    before_kill = _accepted_prompts(emulator.calls[calls0:])
    assert len(before_kill) == LET_THROUGH
    # The held submits reach Pixazo now and are taken; the killed task never hears their ids.
    emulator.release_submits()
    # Taken means answered and recorded: a released handler leaves the hold before it records its call.
    system.wait_for(
        "the held submits to be taken",
        lambda: len(_accepted_prompts(emulator.calls[calls0:])) == LET_THROUGH + IN_FLIGHT,
        timeout=30,
    )
    sent_before_retry = _accepted_prompts(emulator.calls[calls0:])
    held = sent_before_retry[LET_THROUGH:]
    assert len(held) == IN_FLIGHT
    assert set(recorded) == set(before_kill)  # the ledger had the id of every submit Pixazo answered
    killed_at = time.monotonic()

    # The scheduler fails try 1 on its missing heartbeats; try 2 submits what was never sent and defers.
    system.wait_for(
        "try 2 to defer", lambda: _deferral_settled(system, run_id, 2), timeout=HEARTBEAT_TIMEOUT + 300, interval=1.0
    )
    clock.release()

    def ended() -> str | None:
        state = _run_state(system, run_id)
        return state if state in ("success", "failed") else None

    state = system.wait_for("the retried batch to end", ended, timeout=300, interval=1.0)
    ended_after = time.monotonic() - killed_at
    ti = _ti(system, run_id)
    summary = _xcom(system, run_id, "pixazo_batch")
    sys.stderr.write(
        f"\n[batch-crash] killed {killed}; try 2 ended {ti['state']} {ended_after:.0f}s later; "
        f"counts {summary['counts']}\n"
    )

    # Pay once: every prompt submitted exactly once across both tries; try 2 sent exactly the unsent ones.
    accepted = _accepted_prompts(emulator.calls[calls0:])
    assert max(Counter(accepted).values()) == 1, Counter(accepted).most_common(3)
    retried = accepted[len(sent_before_retry) :]
    assert retried, "try 2 submitted nothing"

    # Honest: the items whose submits were in flight at the kill are uncertain, not resubmitted, and the
    # task does not call that a success (max_failed=0).
    assert ti["try_number"] == 2
    assert (state, ti["state"]) == ("failed", "failed")
    lines = _manifest(system, run_id)
    assert [line["index"] for line in lines] == list(range(N))
    assert [line["prompt"] for line in lines] == PROMPTS
    uncertain = {line["prompt"] for line in lines if line["status"] == "uncertain"}
    # Held at the kill (taken by Pixazo, never heard of by the task): uncertain. So may be a submit
    # answered after the task's last ledger write, or one whose intent was written but never sent. Try 2
    # sent exactly the items of which no try had recorded an intent.
    assert set(held) <= uncertain
    assert not uncertain & set(retried)
    assert set(retried) == set(PROMPTS) - set(sent_before_retry) - uncertain
    # Try 1's requests whose ids it recorded: waited on, not paid again, none of them uncertain.
    assert not uncertain & set(before_kill)
    never_sent = uncertain - set(sent_before_retry)  # intents written ahead of the senders
    assert uncertain == set(held) | never_sent
    sys.stderr.write(
        f"[batch-crash] uncertain {len(uncertain)}: {len(held)} held (taken by Pixazo, id never heard), "
        f"{len(uncertain - set(held) - never_sent)} answered after try 1's last ledger write, "
        f"{len(never_sent)} never sent (intent written ahead); try 2 sent {len(retried)}\n"
    )
    for line in lines:
        if line["status"] == "uncertain":
            assert line["request_id"] is None, line
            assert "not resubmitted" in line["error"], line
    assert {line["status"] for line in lines} == {"completed", "uncertain"}
    completed = [line for line in lines if line["status"] == "completed"]
    assert len(completed) == N - len(uncertain)
    # Each completed item is the one request Pixazo made for its prompt.
    jobs_by_prompt = {job.body["prompt"]: rid for rid, job in emulator.requests.items() if rid not in jobs0}
    assert all(line["request_id"] == jobs_by_prompt[line["prompt"]] for line in completed)
    assert all(recorded[prompt] == jobs_by_prompt[prompt] for prompt in recorded)  # the ids try 2 waited on
    _check_stored(system, run_id, lines)
    assert summary["counts"] == {
        "completed": N - len(uncertain),
        "failed": 0,
        "error": 0,
        "timed_out": 0,
        "uncertain": len(uncertain),
    }
    assert summary["images"] == N - len(uncertain)


def test_triggerer_killed_mid_wait_batch_completes_with_its_deadline(
    batch_system: AirflowSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_pixazo.testing import emulator as emulator_module

    system, emulator = batch_system, batch_system.emulator
    run_id = "crash_triggerer"
    calls0, jobs0 = len(emulator.calls), set(emulator.requests)
    clock = HeldClock(held=True)  # every job of this run stays QUEUED/PROCESSING until released
    monkeypatch.setattr(emulator_module, "time", clock)
    _trigger(system, run_id)

    # The batch's one trigger runs in the first triggerer, which has polled every request.
    system.wait_for("the batch to defer", lambda: _deferral_settled(system, run_id, 1), timeout=300, interval=1.0)
    first_triggerer = _ti(system, run_id)["triggerer_job"]["id"]
    mine = set(emulator.requests) - jobs0
    assert len(mine) == N

    def polled_all() -> bool:
        polled = {c.path.rsplit("/", 1)[-1] for c in emulator.calls[calls0:] if c.kind == "status"}
        return mine <= polled

    system.wait_for("the first triggerer to poll every request", polled_all, timeout=120)
    now = clock.monotonic()
    assert all(not emulator.requests[rid].status_at(now).is_terminal for rid in mine)

    system.procs.kill("triggerer")
    killed_at = clock.monotonic()
    clock.release()
    system.start_triggerer("triggerer-2")

    def ended() -> str | None:
        state = _run_state(system, run_id)
        return state if state in ("success", "failed") else None

    assert system.wait_for("the batch to finish in the new triggerer", ended, timeout=300) == "success"
    ti = _ti(system, run_id)
    assert ti["try_number"] == 1  # the same try: nothing was retried, only its wait moved

    # Paid once per prompt; every image stored once, as the manifest says.
    run_calls = emulator.calls[calls0:]
    assert Counter(_accepted_prompts(run_calls)) == Counter(PROMPTS)
    lines = _manifest(system, run_id)
    assert [line["status"] for line in lines] == ["completed"] * N
    assert {line["request_id"] for line in lines} == mine
    _check_stored(system, run_id, lines)
    result = _xcom(system, run_id, "return_value")
    assert result["counts"]["completed"] == N
    assert result["manifest"].endswith(f"/{run_id}/manifest.jsonl")

    # The second triggerer polled the requests after the first one died, to the same deadline.
    polled_after = {c.path.rsplit("/", 1)[-1] for c in run_calls if c.kind == "status" and c.at > killed_at}
    assert mine <= polled_after
    # Each triggerer logged the one deadline set at deferral: the restart did not restart the clock.
    logs = _trigger_logs(system, run_id)
    assert set(logs) == {first_triggerer, _triggerer_of(system, run_id, first_triggerer)}
    deadlines = {job: DEADLINE_LINE.findall(text) for job, text in logs.items()}
    assert all(len(found) == 1 for found in deadlines.values()), deadlines
    assert len({found[0] for found in deadlines.values()}) == 1, deadlines
    assert next(iter(deadlines.values()))[0][0] == str(N)


def _trigger_logs(system: AirflowSystem, run_id: str) -> dict[int, str]:
    """The trigger's log per triggerer job id (Airflow writes ``<task log>.trigger.<job id>.log``)."""
    logs = {}
    for path in (system.home / "logs").rglob("*.log"):
        match = re.search(r"\.trigger\.(\d+)\.log$", path.name)
        if match and f"run_id={run_id}" in str(path):
            logs[int(match.group(1))] = path.read_text(errors="replace")
    return logs


def _triggerer_of(system: AirflowSystem, run_id: str, other_than: int) -> int:
    """The id of the triggerer job that is not ``other_than`` and ran this run's trigger."""
    others = sorted(job for job in _trigger_logs(system, run_id) if job != other_than)
    assert len(others) == 1, f"trigger logs of triggerers {others} besides {other_than}"
    return others[0]
