"""
DAG-parse cost: the import time each provider module adds on top of ``import airflow.sdk``.

A DAG file imports ``airflow.sdk`` and then the operators it uses; what a provider module costs the
DAG processor is the time its import takes once the SDK is loaded. For every module this script
starts a fresh interpreter ``--runs`` times (median reported), imports ``airflow.sdk``, then times
``importlib.import_module(module)`` with ``time.perf_counter``. Bytecode is cached (in a throwaway
``PYTHONPYCACHEPREFIX``, filled by one untimed run per module, whatever ``PYTHONDONTWRITEBYTECODE``
says) because installed packages import from ``.pyc`` files. One more run under ``-X importtime``
lists the modules that import pulled in, by self time, keeping only those imported after the SDK.

Our modules stand beside the HTTP provider's operators module and, if installed, the OpenAI
provider's.

    PYTHONPATH=. .venv/bin/python benchmarks/parse_cost.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OURS = (
    "airflow_provider_pixazo.operators.pixazo",
    "airflow_provider_pixazo.sensors.pixazo",
    "airflow_provider_pixazo.triggers.pixazo",
    "airflow_provider_pixazo.transfers.pixazo_to_object_storage",
    "airflow_provider_pixazo.hooks.pixazo",
)
ANCHORS = (
    "airflow.providers.http.operators.http",
    "airflow.providers.openai.operators.openai",
)
GOAL_MS = 30.0
MARKER = "-- airflow.sdk imported --"

CHILD = """
import importlib, json, sys, time
import airflow.sdk
sys.stderr.write({marker!r} + "\\n"); sys.stderr.flush()
before = set(sys.modules)
t0 = time.perf_counter()
importlib.import_module({module!r})
elapsed = time.perf_counter() - t0
print(json.dumps({{"seconds": elapsed, "new_modules": len(set(sys.modules) - before)}}))
"""


def _env(home: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("AIRFLOW_HOME", home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # Installed packages import from .pyc files; without them every run would time the compiler too.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(home) / "pycache")
    return env


def _child(module: str, env: dict[str, str], importtime: bool = False) -> tuple[dict[str, Any], str]:
    args = [
        sys.executable,
        *(["-X", "importtime"] if importtime else []),
        "-c",
        CHILD.format(module=module, marker=MARKER),
    ]
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def top_contributors(stderr: str, top: int) -> list[tuple[str, float, float]]:
    """(module, self ms, cumulative ms) of the slowest imports after the marker, by self time."""
    rows: list[tuple[str, float, float]] = []
    after = stderr.split(MARKER, 1)[1] if MARKER in stderr else ""
    for line in after.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        try:
            self_us, cum_us, name = line[len("import time:") :].split("|", 2)
            rows.append((name.strip(), int(self_us) / 1000, int(cum_us) / 1000))
        except ValueError:
            continue
    return sorted(rows, key=lambda r: r[1], reverse=True)[:top]


def measure(modules: Sequence[str], runs: int, top: int) -> list[dict[str, Any]]:
    """Median added import time (and its -X importtime top contributors) for each importable module."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pixazo-parse-") as home:
        env = _env(home)
        for module in modules:
            try:
                _child(module, env)  # untimed: fills the bytecode cache
                samples = [_child(module, env)[0] for _ in range(runs)]
                trace = _child(module, env, importtime=True)[1] if top > 0 else ""
            except RuntimeError as err:
                rows.append({"module": module, "error": str(err)})
                continue
            times = [s["seconds"] * 1000 for s in samples]
            rows.append(
                {
                    "module": module,
                    "ours": module in OURS,
                    "median_ms": statistics.median(times),
                    "min_ms": min(times),
                    "max_ms": max(times),
                    "runs": runs,
                    "new_modules": samples[0]["new_modules"],
                    "top": top_contributors(trace, top),
                }
            )
    return rows


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The figures as Markdown: one table of medians, then the top contributors of each module."""
    anchors = {r["module"]: r["median_ms"] for r in rows if "median_ms" in r and not r["ours"]}
    http = anchors.get(ANCHORS[0])
    lines = [
        "| module | added import ms (median) | min / max | modules loaded | ÷ http operators | goal ≤ 30 ms |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['module']} | not importable: {r['error']} | | | | |")
            continue
        ratio = f"{r['median_ms'] / http:.2f}" if http else "n/a"
        goal = ("met" if r["median_ms"] <= GOAL_MS else "MISSED") if r["ours"] else "(anchor)"
        lines.append(
            f"| {r['module']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} / {r['max_ms']:.1f} "
            f"| {r['new_modules']} | {ratio} | {goal} |"
        )
    for r in rows:
        if r.get("top"):
            lines += ["", f"Top imports under {r['module']} (self ms / cumulative ms):"]
            lines += [f"- {name}: {self_ms:.1f} / {cum_ms:.1f}" for name, self_ms, cum_ms in r["top"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per module (median reported)")
    parser.add_argument("--modules", nargs="+", default=[*OURS, *ANCHORS])
    parser.add_argument(
        "--top", type=int, default=8, help="contributors listed per module (0: skip the -X importtime run)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = measure(args.modules, args.runs, args.top)
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
