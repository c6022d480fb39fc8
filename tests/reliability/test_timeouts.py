"""
Timeouts under a real ``dag.test()``: the trigger's own deadline, Airflow's ``execution_timeout`` on a
wait held in the worker, and what is left running afterwards (nothing).

What "nothing left running" can be checked as here: ``dag.test()`` runs each trigger inline in its
own event loop and writes a Trigger row it never cleans (it has no triggerer). So the checks are:
the emulator receives no status poll for the request once the run is over; no thread started during
the run is still alive; and ``Trigger.clean_unused()`` (what a triggerer runs on every loop) deletes
the run's Trigger rows, because no task instance is DEFERRED on them any more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_pixazo.events import WaitOutcome
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from tests.reliability.conftest import InlineTriggers, states

pytestmark = [pytest.mark.dagrun, pytest.mark.integration]

#: Long enough that no request finishes during a test.
PROCESSING_SECONDS = 600.0
#: How long the emulator is watched after a run for stray polls.
QUIET_PERIOD = 1.5


def _trigger_ids(dag_id: str, run_id: str) -> set[int]:
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            tid
            for tid in session.scalars(
                sa.select(TaskInstance.trigger_id).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.trigger_id.is_not(None)
                )
            )
        }


def _surviving_triggers(trigger_ids: set[int]) -> set[int]:
    """Run the triggerer's clean-up, then say which of these Trigger rows are still there."""
    import sqlalchemy as sa
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    Trigger.clean_unused()
    with create_session() as session:
        return set(session.scalars(sa.select(Trigger.id).where(Trigger.id.in_(trigger_ids))))


def _quiet(emulator: PixazoEmulator) -> int:
    """Status polls the emulator receives during QUIET_PERIOD after a run (0 when nothing polls any more)."""
    before = emulator.status_count()
    time.sleep(QUIET_PERIOD)
    return emulator.status_count() - before


#: Threads that legitimately outlive a run: Airflow's in-process execution API (started by the first
#: dag.test() of the process, kept for the next) and the emulator's server side of a kept-alive connection.
_EXPECTED_THREADS = ("InProcessExecutionAPI", "process_request_thread")


def _new_live_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started during the run and still alive (an event loop still polling would be one)."""
    from asgiref.sync import SyncToAsync

    # asgiref's process-wide worker, which Airflow's async connection lookup starts once and keeps.
    shared = set(SyncToAsync.single_thread_executor._threads)
    return [
        t.name
        for t in threading.enumerate()
        if t not in before
        and t.is_alive()
        and t not in shared
        and not any(name in t.name for name in _EXPECTED_THREADS)
    ]


def test_trigger_timeout_fails_naming_the_request(
    run_reliability_dag: Callable[..., Any],
    pixazo_emulator_factory: Any,
    inline_triggers: InlineTriggers,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.reliability.dags.pixazo_reliability_timeouts import TIMEOUT_SECONDS

    emulator = pixazo_emulator_factory(conn_id="pixazo_default", processing_seconds=PROCESSING_SECONDS)
    threads_before = set(threading.enumerate())

    dag_run = run_reliability_dag("pixazo_reliability_timeouts")

    final = states(dag_run)
    assert final == {
        ("generate_and_wait", -1): "failed",
        ("submit", -1): "success",
        ("wait", -1): "failed",
    }
    request_ids = sorted(emulator.requests)
    assert len(request_ids) == 2  # one paid request per waiting task, none resubmitted
    # Each trigger ended with a timeout event naming its request, and nothing else.
    assert [event["outcome"] for event in inline_triggers.events] == [WaitOutcome.TIMEOUT.value] * 2
    assert sorted(event["request_id"] for event in inline_triggers.events) == request_ids
    for event in inline_triggers.events:
        assert event["request_id"] in event["message"]
        assert f"within {TIMEOUT_SECONDS}s" in event["message"]
        assert event["timeout"] == TIMEOUT_SECONDS
    # The task failed with the typed error, whose text names the request and how to check it later.
    output = "".join(capfd.readouterr())
    for request_id in request_ids:
        assert f"Pixazo request {request_id} did not finish within {TIMEOUT_SECONDS}s" in output
        assert f"PixazoRequestSensor(request_id='{request_id}')" in output
    assert "PixazoTimeoutError" in output
    # Nothing keeps polling, no thread outlives the run, and the triggerer's clean-up removes the rows.
    assert _quiet(emulator) == 0
    assert _new_live_threads(threads_before) == []
    trigger_ids = _trigger_ids(dag_run.dag_id, dag_run.run_id)
    assert _surviving_triggers(trigger_ids) == set()


def test_execution_timeout_stops_a_polling_wait(
    run_reliability_dag: Callable[..., Any],
    pixazo_emulator_factory: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.reliability.dags.pixazo_reliability_execution_timeout import EXECUTION_TIMEOUT

    emulator = pixazo_emulator_factory(conn_id="pixazo_default", processing_seconds=PROCESSING_SECONDS)
    threads_before = set(threading.enumerate())

    dag_run = run_reliability_dag("pixazo_reliability_execution_timeout")

    (ti,) = dag_run.get_task_instances()
    assert str(ti.state) == "failed"
    ran_for = (ti.end_date - ti.start_date).total_seconds()
    limit = EXECUTION_TIMEOUT.total_seconds()
    # Stopped at the limit, not at the operator's own 600 s: within one poll interval plus task overhead.
    assert limit <= ran_for < limit + 3, ran_for
    output = "".join(capfd.readouterr())
    assert "AirflowTaskTimeout" in output
    assert emulator.submit_count() == 1
    polls = emulator.status_count()
    assert 2 <= polls <= limit / 0.5 + 2, polls  # it really was polling every 0.5 s until stopped
    assert _quiet(emulator) == 0
    assert _new_live_threads(threads_before) == []
