"""
Fault injection through the real operators, the deferrable sensor and the transfer, under ``dag.test()``.

The emulator answers status and media calls with random 429s (Retry-After: 1), 500s, dropped
connections and added latency, and the first submits with 429. Submits never get a 500 or a drop
here: the provider treats those as "may have been charged" and fails the task on purpose rather than
pay twice (see tests/operators/test_pixazo.py::test_submit_answered_500_is_uncertain_and_not_resent).

Each test prints a figures block to the terminal and asserts every figure that has a "must be".
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_pixazo.testing.emulator import FaultConfig, JobStatus, PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import connection_env_var, connection_json
from tests._clock import HeldClock
from tests.reliability.conftest import (
    CANARY_KEY,
    InlineTriggers,
    count_in,
    log_files_text,
    scan_metadata_db,
    serialized_dag_text,
    states,
)

pytestmark = [pytest.mark.chaos, pytest.mark.dagrun, pytest.mark.integration]

SEED = 20260522
CHAOS_FAULTS = FaultConfig(
    rate_429=0.06,
    rate_500=0.08,
    rate_drop=0.06,
    latency_seconds=0.05,
    retry_after=1,
    endpoints=("status", "media"),
    seed=SEED,
    first_n_submits_429=2,
)
HELD_OUT_FAULTS = FaultConfig(status_500_every_other=True, first_n_submits_429=3)
# dag.test() runs one task at a time: the generate tasks all run before the first sensor, so a
# request must still be processing when the sensors start for any of them to defer. The emulator's
# clock stands still until the first trigger runs (tests/_clock.py), so however long the generate tasks
# take on a busy machine, the jobs then still have these seconds to go.
PROCESSING_SECONDS = 8.0
_RETRY_DELAY = re.compile(r"retrying in (\d+(?:\.\d+)?)s")


class _Records(logging.Handler):
    """Keeps every formatted log record (the root logger's, whatever handlers Airflow installed)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name} {record.getMessage()}")
        except Exception:  # a record whose args do not format is still scanned as its template
            self.lines.append(f"{record.name} {record.msg}")


@pytest.fixture
def log_records() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def canary_emulator(monkeypatch: pytest.MonkeyPatch, inline_triggers: InlineTriggers) -> Callable[..., PixazoEmulator]:
    """Start emulators with the canary key; their clock is held until ``dag.test()`` runs its first trigger."""
    from airflow.sdk.definitions import dag as dag_module

    from airflow_provider_pixazo.testing import emulator as emulator_module

    clock = HeldClock()
    monkeypatch.setattr(emulator_module, "time", clock)
    recording = dag_module._run_inline_trigger  # inline_triggers' recorder, set up before this fixture

    def releasing(trigger: Any, ti: Any) -> Any:
        clock.release()
        return recording(trigger, ti)

    monkeypatch.setattr(dag_module, "_run_inline_trigger", releasing)
    started: list[PixazoEmulator] = []

    def start(**options: Any) -> PixazoEmulator:
        emulator = PixazoEmulator(api_key=CANARY_KEY, **options).start()
        started.append(emulator)
        monkeypatch.setenv(connection_env_var("pixazo_default"), connection_json(emulator))
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def destination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_RELIABILITY_DESTINATION", folder.as_uri())
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image_check(emulator: PixazoEmulator, destination: Path) -> tuple[int, list[str]]:
    """(images expected, problems): every COMPLETED request's images on disk, whole, same sha256 as a fresh GET."""
    emulator.set_faults(FaultConfig())  # the fresh download must not be faulted itself
    expected = 0
    problems: list[str] = []
    with httpx.Client(timeout=30) as client:
        for job in emulator.requests.values():
            if job.outcome is not JobStatus.COMPLETED:
                continue
            for index, url in enumerate(job.media_urls):
                expected += 1
                path = destination / job.request_id / f"{index}.png"
                if not path.is_file():
                    problems.append(f"lost: {path}")
                    continue
                fresh = client.get(url)
                fresh.raise_for_status()
                if _sha256(path.read_bytes()) != _sha256(fresh.content):
                    problems.append(
                        f"truncated or damaged: {path} ({path.stat().st_size} of {len(fresh.content)} bytes)"
                    )
    leftovers = [str(p) for p in destination.rglob("*.part")]
    problems += [f"partial file left: {p}" for p in leftovers]
    return expected, problems


def _earlier_tries(dag_id: str, run_id: str) -> list[tuple[str, int, int, str]]:
    """Tries that ended and were retried (TaskInstanceHistory rows): (task_id, map_index, try, state)."""
    import sqlalchemy as sa
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            sa.select(TaskInstanceHistory).where(
                TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id
            )
        )
        return [(r.task_id, r.map_index, r.try_number, str(r.state)) for r in rows]


def _fault_counts(emulator: PixazoEmulator) -> dict[str, Counter[str]]:
    faults: dict[str, Counter[str]] = {"429": Counter(), "500": Counter(), "dropped": Counter()}
    for call in emulator.calls:
        kind = call.kind or "other"
        if call.status == 429:
            faults["429"][kind] += 1
        elif call.status == 500:
            faults["500"][kind] += 1
        elif call.status == 0:
            faults["dropped"][kind] += 1
    return faults


def _by_kind(counter: Counter[str]) -> str:
    return (
        f"{sum(counter.values()):3d}  (" + ", ".join(f"{k} {counter[k]}" for k in ("submit", "status", "media")) + ")"
    )


def _print_block(capfd: pytest.CaptureFixture[str], title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    lines = ["", f"=== {title} ===", *(f"{name.ljust(width)}  {value}" for name, value in rows), ""]
    with capfd.disabled():
        print("\n".join(lines), flush=True)


def test_chaos_run_pays_once_loses_nothing_and_leaks_nothing(
    run_reliability_dag: Callable[..., Any],
    canary_emulator: Callable[..., PixazoEmulator],
    destination: Path,
    inline_triggers: InlineTriggers,
    log_records: _Records,
    dag_logs_folder: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.reliability.dags.pixazo_reliability_chaos import BAD_PROMPTS, IMAGES_PER_PROMPT, PROMPTS

    emulator = canary_emulator(queued_seconds=0.5, processing_seconds=PROCESSING_SECONDS, faults=CHAOS_FAULTS)

    started = time.monotonic()
    dag_run = run_reliability_dag("pixazo_reliability_chaos")
    elapsed = time.monotonic() - started

    out = capfd.readouterr()
    output = out.out + out.err + "\n".join(log_records.lines)
    calls = emulator.calls
    by_kind = Counter(call.kind or "other" for call in calls)
    faults = _fault_counts(emulator)
    slow = sum(1 for call in calls if call.kind in CHAOS_FAULTS.endpoints)
    backoff = sum(float(s) for s in _RETRY_DELAY.findall(output))

    # -- outcomes: only the [fail] and [error] prompts fail, and nothing failed for a transient fault
    final = states(dag_run)
    bad = {PROMPTS.index(p) for p in BAD_PROMPTS}
    expected_failed = {("one_image.wait", i) for i in bad}
    failed = {key for key, state in final.items() if state == "failed"}
    transient_failures = sorted(failed - expected_failed)
    not_ok = {
        key: state
        for key, state in final.items()
        if key not in expected_failed and key[1] not in bad and state != "success"
    }
    retried = _earlier_tries(dag_run.dag_id, dag_run.run_id)

    # -- money: one accepted submit per prompt, whatever the generate task's tries
    tis = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
    submits = {prompt: emulator.submit_count(prompt) for prompt in PROMPTS}
    generate_tries = sum(tis[("one_image.generate", i)].try_number for i in range(len(PROMPTS)))
    per_try = sum(submits.values()) / generate_tries

    # -- images: whole or absent, never lost
    expected_images, image_problems = _image_check(emulator, destination)

    # -- the key, wherever Airflow or the provider might have put it
    log_file_count, log_text = log_files_text(dag_logs_folder)
    db = scan_metadata_db(dag_run.dag_id, dag_run.run_id)
    from tests.reliability.dags.pixazo_reliability_chaos import dag as dag_object

    key_hits = {
        "logs (stdout/stderr + records)": count_in([output]),
        "task log files": count_in([log_text]),
        "XCom": db.hits["xcom"],
        "trigger kwargs": count_in(inline_triggers.serialized + inline_triggers.reprs) + db.hits["trigger"],
        "trigger events": count_in(inline_triggers.events) + db.hits["next_kwargs"],
        "rendered template fields": db.hits["rendered_fields"],
        "serialized DAG": db.hits["serialized_dag"] + count_in([serialized_dag_text(dag_object)]),
        "task state store": db.hits["task_state_store"],
        "whole metadata DB": db.hits["whole_db"],
    }
    # The key did travel where it must: every submit and status call carried it, no media call did.
    carried = [call.headers.get("ocp-apim-subscription-key") == CANARY_KEY for call in calls if call.kind != "media"]
    media_with_key = sum(1 for call in calls if call.kind == "media" and call.sent_key)
    outcomes = Counter(event["outcome"] for event in inline_triggers.events)

    _print_block(
        capfd,
        f"Pixazo chaos run: {dag_run.dag_id}, {len(PROMPTS)} prompts x {IMAGES_PER_PROMPT} images, seed {SEED}",
        [
            ("wall time", f"{elapsed:.1f} s (of which hook backoff asked for {backoff:.1f} s)"),
            ("requests through the emulator", _by_kind(by_kind)),
            ("injected 429 (Retry-After: 1)", _by_kind(faults["429"])),
            ("injected 500", _by_kind(faults["500"])),
            ("injected dropped connections", _by_kind(faults["dropped"])),
            ("injected slow answers (+50 ms)", f"{slow:3d}  (every status and media call)"),
            ("sensor waits deferred to the trigger", f"{len(inline_triggers.serialized)}  (events: {dict(outcomes)})"),
            (
                "accepted submits per generate try",
                f"{per_try:.2f}  ({sum(submits.values())} submits, {generate_tries} tries, "
                f"max per prompt {max(submits.values())})",
            ),
            ("images lost or truncated", f"{len(image_problems)} of {expected_images} (sha256 vs a fresh download)"),
            *((f"API key in {where}", str(hits)) for where, hits in key_hits.items()),
            ("  rows scanned", ", ".join(f"{k} {v}" for k, v in db.rows.items()) + f", log files {log_file_count}"),
            ("API key sent to media URLs", str(media_with_key)),
            (
                "tasks failed for a transient fault",
                f"{len(transient_failures)}  (failed as expected: {sorted(expected_failed)})",
            ),
            ("task tries retried by Airflow", f"{len(retried)}  {retried if retried else ''}"),
        ],
    )

    assert len(calls) >= 100, f"only {len(calls)} requests"
    assert inline_triggers.serialized, "no sensor deferred: the trigger was not exercised"
    assert all(faults[kind].total() > 0 for kind in faults), faults
    assert faults["429"]["submit"] == CHAOS_FAULTS.first_n_submits_429
    assert all(carried)
    assert media_with_key == 0
    assert transient_failures == [], final
    assert not_ok == {}, final
    assert all(final[("one_image.store", i)] == "upstream_failed" for i in bad)
    assert all(count == 1 for count in submits.values()), submits
    assert per_try == 1.0
    assert image_problems == []
    assert expected_images == IMAGES_PER_PROMPT * (len(PROMPTS) - len(BAD_PROMPTS))
    assert key_hits == dict.fromkeys(key_hits, 0), key_hits
    assert db.rows["xcom"] > 0
    assert db.rows["rendered_fields"] > 0
    assert db.rows["serialized_dag"] > 0


def test_held_out_shape_succeeds_with_one_submit_per_task(
    run_reliability_dag: Callable[..., Any],
    canary_emulator: Callable[..., PixazoEmulator],
    destination: Path,
    inline_triggers: InlineTriggers,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A stand-in answering 500 to every other status call and 429 to the first three submits."""
    from tests.reliability.dags.pixazo_reliability_held_out import IMAGES_PER_PROMPT, PROMPTS

    emulator = canary_emulator(queued_seconds=0.5, processing_seconds=PROCESSING_SECONDS, faults=HELD_OUT_FAULTS)

    started = time.monotonic()
    dag_run = run_reliability_dag("pixazo_reliability_held_out")
    elapsed = time.monotonic() - started

    final = states(dag_run)
    faults = _fault_counts(emulator)
    tis = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
    submits = {prompt: emulator.submit_count(prompt) for prompt in PROMPTS}
    tries = [tis[("one_image.generate", i)].try_number for i in range(len(PROMPTS))]
    expected_images, image_problems = _image_check(emulator, destination)
    capfd.readouterr()

    _print_block(
        capfd,
        f"Pixazo held-out shape: 500 on every other status call, 429 on the first 3 submits ({dag_run.dag_id})",
        [
            ("wall time", f"{elapsed:.1f} s"),
            ("requests through the emulator", _by_kind(Counter(c.kind or "other" for c in emulator.calls))),
            ("injected 429", _by_kind(faults["429"])),
            ("injected 500", _by_kind(faults["500"])),
            ("sensor waits deferred to the trigger", str(len(inline_triggers.serialized))),
            ("accepted submits per prompt", str(sorted(set(submits.values())))),
            ("generate tries per task", str(sorted(set(tries)))),
            ("images lost or truncated", f"{len(image_problems)} of {expected_images}"),
            ("run state", str(dag_run.state)),
        ],
    )

    assert str(dag_run.state) == "success", final
    assert faults["429"]["submit"] == 3
    assert faults["500"]["status"] > 0
    assert all(count == 1 for count in submits.values()), submits
    assert tries == [1] * len(PROMPTS)
    assert image_problems == []
    assert expected_images == IMAGES_PER_PROMPT * len(PROMPTS)
