"""The benchmark scripts run end to end at their smallest size and produce every figure (values not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"

WAITING_FIGURES = ("cpu_us_per_poll", "conns_per_poll", "rss_bytes_per_trigger", "lag_p99_ms", "polls", "ok")
RATE_LIMIT_FIGURES = ("calls", "refused", "refused_share", "wall_s", "floor_s", "ok")
SUBMIT_FIGURES = ("submits_sent", "submits_met_429", "submit_429s_total", "submit_delay_p50_s", "submit_delay_max_s")


def _start(script: str, out: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, str(BENCH / script), *args, "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"benchmark did not finish in time:\n{err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    return out


@pytest.mark.timeout(630)  # a loaded 2-core machine: mostly a dozen interpreters importing Airflow
def test_benchmarks_produce_their_figures(tmp_path: Path) -> None:
    # All at once: most of the time is interpreters importing Airflow.
    waiting = _start(
        "waiting_cost.py", tmp_path / "waiting.json",
        "--n", "20", "--polls", "1", "--min-interval", "0.02", "--ceiling", "none",
    )  # fmt: skip
    parse = _start(
        "parse_cost.py", tmp_path / "parse.json", "--runs", "1", "--top", "0", "--modules",
        "airflow_provider_pixazo.triggers.pixazo",
    )  # fmt: skip
    rate = _start(
        "rate_limit.py", tmp_path / "rate.json",
        "--n", "20", "--limit", "20", "--burst", "5", "--polls", "1", "--interval", "0.2", "--timeout", "580",
        "--kinds", "pixazo2", "http", "--submits", "2", "--submit-rate", "4",
    )  # fmt: skip
    waiting_out = _finish(waiting, 600)
    parse_out = _finish(parse, 600)
    rate_out = _finish(rate, 600)

    rows = json.loads((tmp_path / "waiting.json").read_text())
    assert {r["kind"] for r in rows} == {"pixazo", "http"}
    for row in rows:
        for figure in WAITING_FIGURES:
            assert isinstance(row[figure], int | float), figure
        assert row["polls"] > 0
    assert "CPU µs/poll" in waiting_out
    assert "ours ÷ anchor" in waiting_out
    assert "wall ours ÷ anchor" in waiting_out

    (parse_row,) = json.loads((tmp_path / "parse.json").read_text())
    assert parse_row["module"] == "airflow_provider_pixazo.triggers.pixazo"
    assert isinstance(parse_row["median_ms"], float)
    assert "added import ms" in parse_out

    rate_rows = json.loads((tmp_path / "rate.json").read_text())
    assert [r["kind"] for r in rate_rows] == ["pixazo2", "http"]  # pixazo2: the pixazo worker, twice
    for row in rate_rows:
        for figure in (*RATE_LIMIT_FIGURES, *SUBMIT_FIGURES):
            assert isinstance(row[figure], int | float), figure
        assert row["calls"] >= 40  # two calls per wait at least
        assert row["submits_sent"] == 2
        assert row["ceiling"] is None  # a default connection for ours
    assert len(rate_rows[0]["learned_rate"]) == 2  # one poller per triggerer
    assert "share 429" in rate_out
    assert "wall ÷ floor" in rate_out
    assert "met a 429" in rate_out


def test_waiting_cost_compares_a_baseline_checkout_side_by_side(tmp_path: Path) -> None:
    """``--baseline``: the table gains the baseline's row and a before/after line (no run: render only)."""
    sys.path.insert(0, str(BENCH))
    try:
        import waiting_cost
    finally:
        sys.path.remove(str(BENCH))

    def row(kind: str, cpu: float) -> dict[str, object]:
        return {
            "kind": kind, "n": 1000, "interval_s": 1.0, "polls": 5000, "cpu_us_per_poll": cpu,
            "conns_per_poll": 0.003, "rss_bytes_per_trigger": 4000.0, "lag_p50_ms": 1.0, "lag_p99_ms": 2.0,
            "lag_max_ms": 3.0, "ok": 1000, "error_count": 0, "wall_s": 5.0,
        }  # fmt: skip

    table = waiting_cost.render([row("pixazo", 200.0), row(waiting_cost.BASELINE, 300.0), row("http", 1000.0)])
    assert "PixazoRequestTrigger (baseline checkout)" in table
    assert "| 1000 | 300 → 200 | 0.30 | 0.20 | 0.67 |" in table
    assert "| 1000 | 0.20 met |" in table

    with pytest.raises(SystemExit):
        waiting_cost.main(["--baseline", str(tmp_path)])  # no package there: refused before any run
