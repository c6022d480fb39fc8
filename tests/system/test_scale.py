"""
The daily example's shape over 200 mapped prompts on a real deployment (issue #17).

Separate api-server, scheduler, dag-processor and triggerer processes, LocalExecutor with Airflow's
default parallelism and per-DAG limits, the example's ``pixazo`` pool of 4, and ``retries=0`` on
every task (``tests/system/dags/pixazo_scale.py``), so one task lost to Airflow's deferral race
(apache/airflow#66374, #67287, #71580, #72716) fails the test instead of being retried away.
Gateway jobs take 2 s and the sensor polls from 1 s, so most waits defer and their triggers fire
quickly: the timing that exposed the race. The timed version is ``benchmarks/mapped_scale.py``.

The metadata database is PostgreSQL (a throwaway cluster the test starts: ``tests/distributed/_stack.py``),
as a deployment running hundreds of tasks at once has: on SQLite, with the rest of ``make test`` beside it
on 2 cores, Airflow's dag-processor died of "database is locked" after 260 s. ``make test`` runs it in the
``test-distributed`` job, which installs PostgreSQL first.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.distributed._stack import Servers, postgres_only
from tests.system._scale import TASKS, run_scale, scale_deployment

pytestmark = [pytest.mark.scale, pytest.mark.integration, pytest.mark.timeout(1300)]

#: 200 as the issue asks; a smaller number from the environment only to try the test itself quickly.
N = int(os.environ.get("PIXAZO_SCALE_TEST_PROMPTS", "200"))
PROMPTS = {f"Scale prompt {i}: a lighthouse on a basalt cliff at dawn, watercolour" for i in range(N)}


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Servers]:
    """A throwaway PostgreSQL cluster with an empty ``airflow`` database; stopped and removed after."""
    with postgres_only(tmp_path / "servers") as servers:
        yield servers


def test_two_hundred_mapped_prompts_all_succeed_paid_once(tmp_path: Path, postgres: Servers) -> None:
    started = time.monotonic()
    with scale_deployment(
        tmp_path / "deployment",
        None,
        N,
        processing_seconds=2.0,
        poke_interval=1.0,
        sql_alchemy_conn=postgres.sql_alchemy_conn,
    ) as system:
        # Generous: beside the rest of `make test` on 2 cores the run took 764 s; 100 prompts alone take
        # about 105 s (benchmarks/RESULTS.md).
        run = run_scale(system, "scale_200", N, timeout=1100)
        submitted = [
            call.json["prompt"]
            for call in system.emulator.calls
            if call.kind == "submit" and call.status == 202 and isinstance(call.json, dict)
        ]
    sys.stderr.write(
        f"\n[scale] {N} prompts: run {run.wall_s:.1f}s, whole test {time.monotonic() - started:.1f}s, "
        f"{run.workloads} workloads, stale-success logged {run.stale_success}\n"
    )

    assert run.failed_tasks == [], f"tasks not successful with retries=0: {run.failed_tasks[:20]}"
    assert run.state == "success"
    assert run.task_states == {"success": N * len(TASKS)}, run.task_states
    # Exactly one paid submit per prompt, and every prompt submitted.
    assert sorted(submitted) == sorted(PROMPTS)
    assert run.submits == N
    assert run.max_submits_per_prompt == 1
    # Every image stored once, whole and decodable.
    assert len(run.images) == N, f"{len(run.images)} images stored for {N} prompts"
    assert len({path.parent for path in run.images}) == N  # one folder per request
    for path in run.images:
        with Image.open(path) as picture:
            picture.verify()
        with Image.open(path) as picture:
            assert (picture.format, picture.size) == ("PNG", (1024, 1024)), path
