"""
The daily example's shape over many mapped prompts on a real deployment: start it, run it, count
what happened. Shared by ``tests/system/test_scale.py`` and ``benchmarks/mapped_scale.py``.

The DAG is ``tests/system/dags/pixazo_scale.py`` (``retries=0`` on every task); its prompt count is
fixed when the deployment starts (``PIXAZO_SCALE_PROMPTS``), so one deployment serves one N.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.system._stack import AirflowSystem, start_system

SCALE_DAGS = Path(__file__).resolve().parent / "dags"
DAG_ID = "pixazo_scale"
#: What the scheduler logs when it takes a finished deferral's late exit report for an external kill
#: (the stale-success race: apache/airflow#66374, #67287, #71580, #72716).
STALE_SUCCESS = "finished with state success, but the task instance's state attribute is queued"
#: What it logs when a workload died before it could report (e.g. its execution-API calls timed out on
#: an overloaded machine and the supervisor killed it): a failure, but not the race.
STALE_FAILED = "finished with state failed, but the task instance's state attribute is queued"
#: One line per workload the executor ran and reported (a task's first run, or its resume).
WORKLOAD_DONE = "Received executor event with state"
TASKS = ("one_image.generate", "one_image.wait", "one_image.store")


@dataclass
class ScaleRun:
    """What one run of the scale DAG did."""

    run_id: str
    n: int
    state: str
    wall_s: float
    workloads: int
    task_states: dict[str, int]
    failed_tasks: list[tuple[str, int, str]]
    submits: int
    max_submits_per_prompt: int
    images: list[Path]
    stale_success: int
    stale_failed: int

    @property
    def failed(self) -> int:
        return len(self.failed_tasks)


@contextmanager
def scale_deployment(
    workdir: Path,
    migrated_db: Path | None,
    n: int,
    processing_seconds: float,
    poke_interval: float = 5.0,
    sql_alchemy_conn: str | None = None,
    shape: str = "sensor",
) -> Iterator[AirflowSystem]:
    """
    A deployment running the scale DAG over ``n`` prompts, parsed, unpaused, with the example's pool.

    On a copy of the SQLite ``migrated_db``, or on ``sql_alchemy_conn`` (migrated first) when given.
    ``shape``: ``sensor`` (generate -> wait -> store, the daily example's) or ``one_task`` (generate
    waiting itself -> store).
    """
    extra = {
        "PIXAZO_SCALE_PROMPTS": str(n),
        "PIXAZO_SCALE_POKE_INTERVAL": str(poke_interval),
        "PIXAZO_SCALE_SHAPE": shape,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    # A loaded machine (other suites side by side) can take minutes to bring five processes up.
    systems = start_system(
        workdir,
        migrated_db,
        dags_folder=SCALE_DAGS,
        extra_env=extra,
        health_timeout=300,
        sql_alchemy_conn=sql_alchemy_conn,
    )
    system = next(systems)
    try:
        system.emulator.processing_seconds = processing_seconds

        def parsed() -> bool:
            return any(dag["dag_id"] == DAG_ID for dag in _api(system, "GET", "/dags")["dags"])

        system.wait_for("the scale DAG to be parsed", parsed, timeout=300)
        errors = _api(system, "GET", "/importErrors")
        assert errors["total_entries"] == 0, errors
        # What the example's docstring tells a new user to create once.
        _api(system, "POST", "/pools", json={"name": "pixazo", "slots": 4, "description": "Pixazo submits"})
        _api(system, "PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        yield system
    finally:
        systems.close()


def _api(system: AirflowSystem, method: str, path: str, **kwargs: Any) -> Any:
    """``system.api`` that waits out an api-server too busy to answer in 30 s (a loaded 2-core machine)."""
    for _ in range(9):
        try:
            return system.api(method, path, **kwargs)
        except httpx.TransportError:
            time.sleep(2)
    return system.api(method, path, **kwargs)


def _trigger(system: AirflowSystem, run_id: str) -> None:
    try:
        system.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    except httpx.TransportError:
        # The POST may have been applied before the answer timed out: trigger again only if it was not.
        try:
            _api(system, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        except AssertionError:
            _trigger(system, run_id)


def _task_instances(system: AirflowSystem, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = _api(
            system,
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found), "order_by": "id"},
        )
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def _count(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except FileNotFoundError:
        return 0


def run_scale(system: AirflowSystem, run_id: str, n: int, timeout: float) -> ScaleRun:
    """Trigger one run of the scale DAG, wait until it ends; what it did, counted from the outside."""
    scheduler_log = system.logs / "scheduler.log"
    stale0, workloads0 = _count(scheduler_log, STALE_SUCCESS), _count(scheduler_log, WORKLOAD_DONE)
    died0 = _count(scheduler_log, STALE_FAILED)
    calls0 = len(system.emulator.calls)
    images0 = set(system.images.rglob("*.png"))
    started = time.monotonic()
    _trigger(system, run_id)

    def ended() -> str | None:
        try:
            state = str(system.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"])
        except httpx.TransportError:
            return None  # the api-server is busy: ask again
        return state if state in ("success", "failed") else None

    state = system.wait_for(f"run {run_id} to end", ended, timeout=timeout, interval=2.0)
    wall = time.monotonic() - started
    # The executor reports a workload's exit after the task's state is final: let the last ones land.
    time.sleep(3)
    tis = _task_instances(system, run_id)
    states: dict[str, int] = {}
    for ti in tis:
        states[ti["state"]] = states.get(ti["state"], 0) + 1
    failed = [(ti["task_id"], ti["map_index"], ti["state"]) for ti in tis if ti["state"] != "success"]
    submits = [
        call.json.get("prompt")
        for call in system.emulator.calls[calls0:]
        if call.kind == "submit" and call.status == 202 and isinstance(call.json, dict)
    ]
    per_prompt: dict[str, int] = {}
    for prompt in submits:
        per_prompt[prompt] = per_prompt.get(prompt, 0) + 1
    return ScaleRun(
        run_id=run_id,
        n=n,
        state=state,
        wall_s=wall,
        workloads=_count(scheduler_log, WORKLOAD_DONE) - workloads0,
        task_states=states,
        failed_tasks=failed,
        submits=len(submits),
        max_submits_per_prompt=max(per_prompt.values(), default=0),
        images=sorted(set(system.images.rglob("*.png")) - images0),
        stale_success=_count(scheduler_log, STALE_SUCCESS) - stale0,
        stale_failed=_count(scheduler_log, STALE_FAILED) - died0,
    )
