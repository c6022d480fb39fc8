"""``benchmarks/batch_scale.py`` runs end to end at its smallest size and prints every figure (values not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.scale, pytest.mark.integration, pytest.mark.timeout(300)]

FIGURES = ("wall_s", "machine_cpu_s", "idle_cpu_s", "deployment_cpu_s", "harness_cpu_s", "images", "load_before")


def test_batch_scale_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "batch.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # Jobs of 15 s: a trigger firing before the scheduler has read the deferring workload's exit report
    # makes Airflow fail the resumed task (apache/airflow#66374); at load 30 that report took 5 s.
    args = ["--n", "3", "--processing-seconds", "15", "--poll-interval", "1"]
    args += ["--idle-seconds", "1", "--settle-seconds", "0", "--workdir", str(tmp_path / "work"), "--json", str(out)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "batch_scale.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [row["kind"] for row in rows] == ["batch", "floor", "verdicts"]
    batch, floor, verdicts = rows
    for row in (batch, floor):
        assert all(row.get(name) is not None for name in FIGURES), row
        assert row["n"] == 3, row
        assert row["images"] == 3, row  # every image of the run counted, on both sides
    assert batch["details"]["state"] == "success", batch["details"]
    assert batch["details"]["manifest_lines"] == 3
    assert {"submits", "max_submits_per_prompt", "manifest_counts", "try_number"} <= set(batch["details"])
    # Where the wall time went, from the operator's own log lines, in order.
    phases = batch["details"]["phases"]
    assert list(phases) == ["started", "submitted", "deferred", "resumed", "stored", "done"], phases
    assert list(phases.values()) == sorted(phases.values()), phases
    assert {"client_cpu_s", "status_calls", "submits"} <= set(floor["details"])
    # Each bar is reported, whatever its outcome: a busy machine moves the numbers, not the report.
    assert len(verdicts) == 6, verdicts
    assert "batch  N=    3" in done.stdout
    assert "floor  N=    3" in done.stdout
