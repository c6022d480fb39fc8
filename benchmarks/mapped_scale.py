"""
Mapped prompts on real processes (issue #17): the daily example's shape over N prompts, beside the
plain asyncio client doing the same work against the same emulator, in one run.

A deployment as a new user runs it (api-server, scheduler, dag-processor, triggerer as separate
processes; LocalExecutor and Airflow's default parallelism and per-DAG limits; the example's
``pixazo`` pool of 4) runs ``tests/system/dags/pixazo_scale.py`` (generate -> deferrable sensor ->
store, mapped over N prompts, ``retries=0`` on every task) against the emulator, whose jobs stay
PROCESSING for ``--processing-seconds`` (20 by default, as in the issue). Per run it prints the
wall time, the machine's CPU-seconds per image (all of ``/proc/stat``'s busy time, minus the idle
deployment's, measured for ``--idle-seconds`` just before the run and scaled to the run's length),
the workloads the executor ran, failed tasks, submits, images stored, and how often the scheduler
logged the stale-success race. Beside the machine's figure it prints the deployment's own: the CPU of
every process in the deployment's sessions (reaped task processes included) plus this process's
(the emulator), idle subtracted the same way; on a machine shared with other work that one is the
figure to trust, the machine's is the issue's definition. Then ``benchmarks/_floor.py`` does the same N against the same
emulator in a process of its own. Other work on the machine shows in the load averages printed
beside every figure::

    sh scripts/install-services.sh   # PostgreSQL, the metadata database (--database sqlite: none)
    PYTHONPATH=. .venv/bin/python benchmarks/mapped_scale.py --n 100 --runs 5
    PYTHONPATH=. .venv/bin/python benchmarks/mapped_scale.py --n 1000 --runs 1 --json /tmp/scale-1000.json

The emulator runs in this process (it renders each image with Pillow, ~0.07 CPU-s per 1024x1024
PNG); its CPU is part of the machine's on both sides, and is printed as ``harness`` CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._floor import FloorResult, run_in_subprocess  # noqa: E402
from tests._airflow_db import migrate_template  # noqa: E402
from tests.distributed._stack import postgres_only  # noqa: E402
from tests.system._scale import ScaleRun, run_scale, scale_deployment  # noqa: E402
from tests.system._stack import API_KEY  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy since boot (every core; idle, iowait and steal excluded)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / TICKS


def _process_times() -> Iterator[tuple[int, int, float, float]]:
    """
    ``(pid, session id, own CPU-s, reaped children's CPU-s)`` of every process now in ``/proc``.

    A process that exits meanwhile is skipped: its time is in its parent's reaped share.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime + stime, cutime + cstime
        yield int(entry), int(rest[3]), (int(rest[11]) + int(rest[12])) / TICKS, (int(rest[13]) + int(rest[14])) / TICKS


def sessions_cpu_seconds(sessions: set[int]) -> float:
    """
    CPU-seconds spent by every process of these sessions (the deployment's processes, each started in
    a session of its own), counting their reaped children too: the deployment's own cost, which other
    work on a shared machine does not blur as it blurs ``/proc/stat``.
    """
    return sum(own + reaped for _, sid, own, reaped in _process_times() if sid in sessions)


def cpu_by_part(parts: dict[str, int]) -> dict[str, float]:
    """
    CPU-seconds so far of each part of the deployment, ``parts`` naming each session by its leader's pid.

    The scheduler's session also holds LocalExecutor's workers and the task processes they supervise:
    those (and every child the scheduler has reaped) count as ``tasks``, the scheduler's own time as
    ``scheduler``. In every other session each process counts for the session's part.
    """
    names = {sid: name for name, sid in parts.items()}
    totals = dict.fromkeys([*parts, "tasks"], 0.0)
    for pid, sid, own, reaped in _process_times():
        name = names.get(sid)
        if name == "scheduler":
            totals["scheduler" if pid == sid else "tasks"] += own
            totals["tasks"] += reaped
        elif name is not None:
            totals[name] += own + reaped
    return totals


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Measured:
    """One measured side (a pipeline run or the floor) of one N."""

    kind: str
    n: int
    wall_s: float
    machine_cpu_s: float
    idle_cpu_s: float
    deployment_cpu_s: float
    deployment_idle_cpu_s: float
    harness_cpu_s: float
    images: int
    load_before: str
    load_after: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_per_image(self) -> float:
        """Machine CPU-seconds per image, the idle deployment's subtracted."""
        return (self.machine_cpu_s - self.idle_cpu_s) / max(self.images, 1)

    @property
    def deployment_cpu_per_image(self) -> float:
        """The deployment's processes' and this process's (emulator) CPU-seconds per image, idle subtracted."""
        return (self.deployment_cpu_s + self.harness_cpu_s - self.deployment_idle_cpu_s) / max(self.images, 1)


#: Sessions of the deployment's servers (the PostgreSQL postmaster and its backends): part of its CPU.
SERVER_SESSIONS: set[int] = set()


def _sessions(system: Any) -> set[int]:
    return {proc.pid for proc in system.procs.started.values()} | SERVER_SESSIONS


def _parts(system: Any) -> dict[str, int]:
    """Each running part of the deployment by name (not ``db-migrate``, long done), with its session id."""
    parts = {name: proc.pid for name, proc in system.procs.started.items() if proc.poll() is None}
    parts.update({f"postgresql{'' if i == 0 else i}": sid for i, sid in enumerate(sorted(SERVER_SESSIONS))})
    return parts


@contextmanager
def metadata_database(kind: str, workdir: Path) -> Iterator[tuple[Path | None, str | None]]:
    """
    ``(migrated SQLite template, None)`` or ``(None, PostgreSQL URL)`` for the deployments of this run.

    PostgreSQL is the default: on SQLite, a 100-prompt mapped run's second run lost the dag-processor to
    "database is locked" (Airflow's own job heartbeat) on a quiet machine, and Airflow's docs keep SQLite
    for development. PostgreSQL's CPU (postmaster and backends) counts as the deployment's.
    """
    if kind == "sqlite":
        template = workdir / "migrated"
        template.mkdir(parents=True, exist_ok=True)
        yield migrate_template(template), None
        return
    with postgres_only(workdir / "servers") as servers:
        SERVER_SESSIONS.add(servers.procs.started["postgres"].pid)
        try:
            yield None, servers.sql_alchemy_conn
        finally:
            SERVER_SESSIONS.clear()


def idle_rates(system: Any, seconds: float) -> tuple[float, float]:
    """Busy CPU-seconds per second of the machine and of the deployment (+ this process) while it idles."""
    sessions = _sessions(system)
    busy0, tree0, wall0 = machine_busy_seconds(), sessions_cpu_seconds(sessions) + own_cpu(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    tree = sessions_cpu_seconds(sessions) + own_cpu() - tree0
    return (machine_busy_seconds() - busy0) / wall, tree / wall


def measure_pipeline(system: Any, run_id: str, n: int, idle_seconds: float, timeout: float) -> Measured:
    rate, tree_rate = idle_rates(system, idle_seconds)
    sessions = _sessions(system)
    parts = _parts(system)
    before, busy0, own0, tree0 = load(), machine_busy_seconds(), own_cpu(), sessions_cpu_seconds(sessions)
    parts0 = cpu_by_part(parts)
    run: ScaleRun = run_scale(system, run_id, n, timeout)
    busy = machine_busy_seconds() - busy0
    tree = sessions_cpu_seconds(sessions) - tree0
    parts1 = cpu_by_part(parts)
    images = max(len(run.images), 1)
    # Not idle-subtracted: where the run's CPU went, part by part, per image.
    by_part = {name: round((parts1[name] - parts0[name]) / images, 3) for name in parts1}
    by_part["emulator"] = round((own_cpu() - own0) / images, 3)
    return Measured(
        kind="mapped",
        n=n,
        wall_s=run.wall_s,
        machine_cpu_s=busy,
        # run_scale waits 3 s after the run ends for late executor reports: idle time, counted as such.
        idle_cpu_s=rate * (run.wall_s + 3),
        deployment_cpu_s=tree,
        deployment_idle_cpu_s=tree_rate * (run.wall_s + 3),
        harness_cpu_s=own_cpu() - own0,
        images=len(run.images),
        load_before=before,
        load_after=load(),
        details={
            "run_id": run_id,
            "state": run.state,
            "workloads": run.workloads,
            "task_states": run.task_states,
            "failed_tasks": run.failed_tasks[:20],
            "failed": run.failed,
            "submits": run.submits,
            "max_submits_per_prompt": run.max_submits_per_prompt,
            "stale_success_logged": run.stale_success,
            "died_before_report_logged": run.stale_failed,
            "idle_rate_cores": round(rate, 3),
            "deployment_idle_rate_cores": round(tree_rate, 3),
            "cpu_s_per_image_by_part": by_part,
        },
    )


def measure_floor(system: Any, n: int, out: Path, idle_seconds: float) -> Measured:
    rate, tree_rate = idle_rates(system, idle_seconds)
    sessions = _sessions(system)
    before, busy0, own0, wall0 = load(), machine_busy_seconds(), own_cpu(), time.monotonic()
    tree0, calls0 = sessions_cpu_seconds(sessions), len(system.emulator.calls)
    floor: FloorResult = run_in_subprocess(system.emulator.url, API_KEY, n, out)
    wall = time.monotonic() - wall0
    busy = machine_busy_seconds() - busy0
    # The floor client is not in the deployment's sessions: its own CPU is added here.
    tree = sessions_cpu_seconds(sessions) - tree0 + floor.cpu_s
    submits = sum(1 for c in system.emulator.calls[calls0:] if c.kind == "submit" and c.status == 202)
    return Measured(
        kind="floor",
        n=n,
        wall_s=floor.wall_s,
        machine_cpu_s=busy,
        idle_cpu_s=rate * wall,
        deployment_cpu_s=tree,
        deployment_idle_cpu_s=tree_rate * wall,
        harness_cpu_s=own_cpu() - own0,
        images=floor.images,
        load_before=before,
        load_after=load(),
        details={
            "client_cpu_s": round(floor.cpu_s, 3),
            "client_cpu_per_image": round(floor.cpu_s / max(floor.images, 1), 4),
            "submits": submits,
            "status_calls": floor.status_calls,
            "failed": floor.failed,
            "idle_rate_cores": round(rate, 3),
            "deployment_idle_rate_cores": round(tree_rate, 3),
        },
    )


def _row(m: Measured) -> str:
    d = m.details
    if m.kind == "mapped":
        extra = (
            f"state={d['state']} workloads={d['workloads']} failed={d['failed']} submits={d['submits']} "
            f"(max/prompt {d['max_submits_per_prompt']}) stale-success logged={d['stale_success_logged']} "
            f"died-before-report logged={d['died_before_report_logged']}\n"
            "       CPU-s per image by part (idle not subtracted): "
            + "  ".join(f"{name} {value:.3f}" for name, value in d["cpu_s_per_image_by_part"].items())
        )
    else:
        extra = (
            f"client CPU {d['client_cpu_s']:.2f} s ({d['client_cpu_per_image']:.4f}/image) "
            f"submits={d['submits']} status calls={d['status_calls']} failed={d['failed']}"
        )
    return (
        f"{m.kind:6} N={m.n:5d} wall {m.wall_s:7.1f} s  machine CPU {m.machine_cpu_s:7.1f} s - idle "
        f"{m.idle_cpu_s:6.1f} s = {m.cpu_per_image:.3f} s/image  deployment+emulator CPU "
        f"{m.deployment_cpu_s + m.harness_cpu_s:7.1f} s - idle {m.deployment_idle_cpu_s:6.1f} s = "
        f"{m.deployment_cpu_per_image:.3f} s/image (emulator {m.harness_cpu_s:.1f} s)  "
        f"images {m.images}  load {m.load_before} -> {m.load_after}  {extra}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100], help="prompts per run (one deployment per N)")
    parser.add_argument("--runs", type=int, default=5, help="consecutive runs per N")
    parser.add_argument("--processing-seconds", type=float, default=20.0, help="how long each gateway job takes")
    parser.add_argument("--poke-interval", type=float, default=5.0, help="the sensor's first poll interval")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle deployment measured before each side")
    parser.add_argument("--settle-seconds", type=float, default=20.0, help="wait after start before measuring idle")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take")
    parser.add_argument("--no-floor", action="store_true", help="skip the plain-client floor")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the deployments' files here")
    parser.add_argument("--json", type=Path, default=None, help="also write every row as JSON")
    parser.add_argument(
        "--database", choices=("postgresql", "sqlite"), default="postgresql", help="the metadata database"
    )
    parser.add_argument(
        "--shape",
        choices=("sensor", "one_task"),
        default="sensor",
        help="generate -> sensor -> store (the daily example), or generate waiting itself -> store",
    )
    args = parser.parse_args(argv)
    # `kill` (SIGTERM) unwinds like Ctrl-C, so the deployment's processes (own sessions) are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pixazo-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"[scale] work folder {workdir}; load {load()}", flush=True)
    rows: list[Measured] = []
    for n in args.n:
        with (
            metadata_database(args.database, workdir / f"db-{n}") as (db, url),
            scale_deployment(
                workdir / f"n{n}",
                db,
                n,
                args.processing_seconds,
                args.poke_interval,
                sql_alchemy_conn=url,
                shape=args.shape,
            ) as system,
        ):
            print(f"[scale] N={n}: {args.shape} shape, {args.database}, logs in {system.logs}", flush=True)
            time.sleep(args.settle_seconds)  # the start-up's own work (first parses, migrations) is not idle
            for number in range(1, args.runs + 1):
                row = measure_pipeline(system, f"scale_{n}_{number}", n, args.idle_seconds, args.timeout)
                rows.append(row)
                print(_row(row), flush=True)
            if not args.no_floor:
                row = measure_floor(system, n, workdir / f"n{n}" / "floor-images", args.idle_seconds)
                rows.append(row)
                print(_row(row), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        **asdict(r),
                        "cpu_per_image": r.cpu_per_image,
                        "deployment_cpu_per_image": r.deployment_cpu_per_image,
                    }
                    for r in rows
                ],
                indent=1,
            )
        )
    mapped = [r for r in rows if r.kind == "mapped"]
    failed_runs = sum(1 for r in mapped if r.details["failed"] or r.details["state"] != "success")
    print(f"[scale] {len(mapped)} mapped runs, {failed_runs} with failed tasks; load now {load()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
