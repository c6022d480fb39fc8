"""benchmarks/transfer_memory.py runs end to end at its smallest size and produces every figure (values not checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_transfer_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "transfer.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    args = ["--size-mb", "1", "--images", "2", "--repeat", "2", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "transfer_memory.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=80,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    (row,) = json.loads(out.read_text())["rows"]
    assert row["case"] == "local disk"
    for figure in ("ours_mb_per_s", "ours_transfer_mb_per_s", "ours_peak_rss_growth_mb"):
        assert isinstance(row[figure], float), figure
    assert len(row["ours"]["seconds"]) == 2
    if shutil.which("curl"):
        assert isinstance(row["curl_mb_per_s"], float)
        assert isinstance(row["ratio"], float)
        assert len(row["ours"]["curl_seconds"]) == 2
        assert "curl+fsync" in proc.stdout
    else:  # the curl side is skipped, not failed
        assert row["curl_mb_per_s"] is None
        assert "curl is not on the PATH" in proc.stdout
