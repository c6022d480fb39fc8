"""``benchmarks/mapped_scale.py`` runs end to end at its smallest size and prints every figure (values not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.scale, pytest.mark.integration, pytest.mark.timeout(600)]

FIGURES = ("wall_s", "machine_cpu_s", "idle_cpu_s", "harness_cpu_s", "images", "cpu_per_image", "load_before")


def test_mapped_scale_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    args = ["--n", "2", "--runs", "1", "--processing-seconds", "0.5", "--poke-interval", "1"]
    args += ["--idle-seconds", "1", "--settle-seconds", "0", "--workdir", str(tmp_path / "work"), "--json", str(out)]
    # Two prompts never meet SQLite's lock; the PostgreSQL path (the default) is the scale test's.
    args += ["--database", "sqlite"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "mapped_scale.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [row["kind"] for row in rows] == ["mapped", "floor"]
    for row in rows:
        assert all(row.get(name) is not None for name in FIGURES), row
        assert row["n"] == 2, row
        assert row["images"] == 2, row
    mapped, floor = rows
    assert {"workloads", "failed", "submits", "stale_success_logged"} <= set(mapped["details"])
    by_part = mapped["details"]["cpu_s_per_image_by_part"]
    assert set(by_part) == {"api-server", "scheduler", "dag-processor", "triggerer", "tasks", "emulator"}, by_part
    assert by_part["tasks"] > 0, by_part  # the task processes ran under the scheduler's LocalExecutor
    assert {"client_cpu_s", "status_calls", "submits"} <= set(floor["details"])
    assert "mapped N=    2" in done.stdout
    assert "floor  N=    2" in done.stdout
