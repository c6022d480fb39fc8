"""
What it costs to wait: N PixazoRequestTrigger instances in one event loop, beside HttpSensorTrigger.

The triggers run as the triggerer runs them: one asyncio task per trigger, each consuming
``trigger.run()`` until its first event, all in one event loop of one process. They poll a minimal
asyncio HTTP/1.1 keep-alive server running in a separate process (so its CPU is not counted), which
answers every status path ``--polls`` times with "not yet" and then with "done":

* ``/v2/requests/status/<id>``: 200 ``{"status": "PROCESSING"}`` K times, then 200 COMPLETED
  (PixazoRequestTrigger);
* ``/http/<id>``: 404 K times, then 200 (HttpSensorTrigger, which waits for a non-404).

Each (kind, N) is measured in a fresh worker process that imports everything and warms up (two
triggers run to completion, pooled clients closed) before the measured window. Figures:

* CPU per poll: the worker's process CPU time over the window / status polls counted by the server;
* new TCP connections per poll: connections the server accepted / polls;
* RSS per waiting trigger: the highest RSS seen while all N triggers are started and none has
  finished, minus the RSS before the triggers were built, / N;
* event-loop lag: lateness of a ticker coroutine that sleeps 10 ms in a loop (p50, p99, max).

Our connection's ``max_polls_per_second`` extra is set to twice the offered load, so the shared
poller's pacing is never what is measured (``benchmarks/rate_limit.py`` measures that), unless
``--ceiling none``: a default connection (no cap; issue 17), where the poller's slow start from
20 calls/s is part of the wall time, compared with the anchor's (goal: at most 2x).

Triggers start staggered over one poll interval, as they arrive in a real triggerer, and the
interval is ``max(--min-interval, N / --rate)`` so the offered load stays near ``--rate`` polls/s
whatever N (10 000 triggers polling every 0.1 s would ask 100 000 polls/s of one core, and the run
would measure overload instead of waiting). Logging is disabled in the workers (both triggers log:
ours once per status change, HttpAsyncHook a warning on every 404), so only the HTTP and
event-loop work is compared.

    PYTHONPATH=. .venv/bin/python benchmarks/waiting_cost.py --n 100 1000 10000

Before and after in one run: unpack another checkout (``git archive main | tar -x -C /tmp/main``) and
pass ``--baseline /tmp/main``; its PixazoRequestTrigger runs as a third row, against the same server,
and a last table compares the two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KINDS = ("pixazo", "http")
#: A third row: PixazoRequestTrigger from another checkout of the package (``--baseline DIR``), so
#: before and after are measured in the same run, against the same server, on the same load.
BASELINE = "baseline"
PIXAZO_CONN_ID = "pixazo_bench"
HTTP_CONN_ID = "http_bench"
STATUS_PREFIX = "/v2/requests/status/"
HTTP_PREFIX = "/http/"
TICK = 0.010
ROOT = Path(__file__).resolve().parent.parent

# Goals from the issue.
GOAL_CPU_RATIO = 0.25
GOAL_CONNS_PER_POLL = 0.01
GOAL_RSS_PER_TRIGGER = 5 * 1024
GOAL_WAITS = 10_000
GOAL_WALL_RATIO = 2.0  # on a default connection (issue 17)


# -- the status server (child process) ------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.accepts = 0
        self.polls = 0
        self.counts: dict[str, int] = {}


def _answer(path: str, stats: _Stats, not_yet: int) -> bytes:
    if path.startswith(STATUS_PREFIX):
        key = path[len(STATUS_PREFIX) :]
    elif path.startswith(HTTP_PREFIX):
        key = path
    else:
        return _response(404, b'{"error":"Not Found","message":"no such path"}')
    stats.polls += 1
    seen = stats.counts[key] = stats.counts.get(key, 0) + 1
    done = seen > not_yet
    if key.startswith(HTTP_PREFIX) and not done:
        return _response(404, b'{"error":"Not Found","message":"not yet"}')
    request_id = key.rsplit("/", 1)[-1]
    body: dict[str, Any] = {
        "request_id": request_id,
        "status": "COMPLETED" if done else "PROCESSING",
        "model_id": "gpt-image-2",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:01Z",
        "output": None,
    }
    if done:
        body["output"] = {"media_url": [f"http://127.0.0.1/media/{request_id}.png"], "media_type": "image/png"}
        body["completed_at"] = "2025-01-01T00:00:02Z"
    return _response(200, json.dumps(body).encode())


def _response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: _Stats, not_yet: int
) -> None:
    stats.accepts += 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, headers = head.partition(b"\r\n")
            parts = line.split(b" ")
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            length = 0
            close = False
            for header in headers.lower().split(b"\r\n"):
                if header.startswith(b"content-length:"):
                    length = int(header.split(b":", 1)[1])
                elif header.startswith(b"connection:") and b"close" in header:
                    close = True
            if length:
                await reader.readexactly(length)
            writer.write(_answer(path, stats, not_yet))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
        pass  # client went away, or the server is stopping
    finally:
        writer.close()


def serve(control: Any, not_yet: int) -> None:
    """Child process: serve on 127.0.0.1, answer control messages ("stats", "reset", "stop") on ``control``."""
    _raise_fd_limit()
    stats = _Stats()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(r, w, stats, not_yet), "127.0.0.1", 0, backlog=4096
        )
        control.send(server.sockets[0].getsockname()[1])

        async def snapshot(reset: bool) -> dict[str, Any]:
            if reset:
                stats.reset()
            return {"accepts": stats.accepts, "polls": stats.polls, "cpu_s": time.process_time()}

        def listen() -> None:
            # Commands run on the loop itself, so a snapshot never races a request being counted.
            while True:
                command = control.recv()
                if command in ("stats", "reset"):
                    control.send(asyncio.run_coroutine_threadsafe(snapshot(command == "reset"), loop).result())
                else:
                    loop.call_soon_threadsafe(stopped.set_result, None)
                    return

        threading.Thread(target=listen, daemon=True).start()
        async with server:
            await stopped

    asyncio.run(main())


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the trigger process (worker) -----------------------------------------------------------------


def _make_trigger(kind: str, key: str, interval: float) -> Any:
    if kind == "pixazo":
        from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

        return PixazoRequestTrigger(
            request_id=key,
            pixazo_conn_id=PIXAZO_CONN_ID,
            poll_interval=interval,
            max_poll_interval=interval,
            timeout=3600,
        )
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return HttpSensorTrigger(
        endpoint=f"{HTTP_PREFIX}{key}", http_conn_id=HTTP_CONN_ID, method="GET", poke_interval=interval
    )


def _event_ok(kind: str, payload: Any) -> bool:
    if kind == "pixazo":
        return isinstance(payload, dict) and payload.get("outcome") == "success"
    return payload is True


async def _close_pools(kind: str) -> None:
    if kind == "pixazo":
        # Public helper "for tests and orderly shutdowns": the measured run starts with a cold pool.
        from airflow_provider_pixazo.hooks._clients import aclose_shared_clients
        from airflow_provider_pixazo.hooks._poller import forget_pollers

        await aclose_shared_clients()
        forget_pollers()


async def _run_worker(kind: str, n: int, interval: float, warm_interval: float) -> dict[str, Any]:
    import gc

    import psutil

    process = psutil.Process()
    loop = asyncio.get_running_loop()

    async def consume(trigger: Any, delay: float, done: list[float]) -> Any:
        if delay:
            await asyncio.sleep(delay)
        async for event in trigger.run():
            done.append(loop.time())
            return event.payload
        return None

    # Warm up: lazy imports, connection lookup, first client; then close the pool.
    warm = [_make_trigger(kind, f"warm-{kind}-{i}", warm_interval) for i in range(2)]
    warm_events = await asyncio.gather(*(consume(t, 0, []) for t in warm))
    if not all(_event_ok(kind, e) for e in warm_events):
        raise RuntimeError(f"warm-up triggers did not succeed: {warm_events!r}")
    await _close_pools(kind)
    del warm, warm_events

    print("READY", flush=True)
    if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "GO":
        raise RuntimeError("expected GO on stdin")

    gc.collect()
    rss_base = process.memory_info().rss
    triggers = [_make_trigger(kind, f"r{kind}-{n}-{i}", interval) for i in range(n)]

    lags: list[float] = []
    rss_samples: list[tuple[float, int]] = []
    done: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        ticks = 0
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(TICK)
            lags.append(max(0.0, loop.time() - before - TICK))
            ticks += 1
            if ticks % 5 == 0:
                rss_samples.append((loop.time(), process.memory_info().rss))

    ticker_task = asyncio.create_task(ticker())
    cpu0 = time.process_time()
    t0 = loop.time()
    tasks = [asyncio.create_task(consume(t, i * interval / n, done)) for i, t in enumerate(triggers)]
    del triggers
    events = await asyncio.gather(*tasks, return_exceptions=True)
    wall = loop.time() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    await ticker_task

    # All started (and through their first poll) after one interval plus the stagger; none done
    # before the first completion.
    all_waiting_from = t0 + interval * 1.5
    first_done = min(done) if done else loop.time()
    window = [rss for at, rss in rss_samples if all_waiting_from <= at <= first_done]
    waiting_rss = max(window) if window else max((rss for _, rss in rss_samples), default=rss_base)
    errors = [repr(e) for e in events if isinstance(e, BaseException)]
    lags_ms = sorted(x * 1000 for x in lags) or [0.0]
    return {
        "kind": kind,
        "n": n,
        "interval_s": interval,
        "cpu_s": cpu,
        "wall_s": wall,
        "ok": sum(1 for e in events if _event_ok(kind, e)),
        "errors": errors[:3],
        "error_count": len(errors),
        "rss_base": rss_base,
        "rss_waiting": waiting_rss,
        "rss_window_samples": len(window),
        "lag_p50_ms": statistics.median(lags_ms),
        "lag_p99_ms": lags_ms[min(len(lags_ms) - 1, int(len(lags_ms) * 0.99))],
        "lag_max_ms": lags_ms[-1],
        "ticks": len(lags),
    }


def worker_main(kind: str, n: int, interval: float, warm_interval: float) -> None:
    """Entry point of a worker process; prints READY, waits for GO, then prints one JSON line."""
    import logging

    import structlog

    _raise_fd_limit()
    # Airflow's loggers are structlog's (printing to stdout unless configured); silence both kinds.
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    # Import everything before the measured window.
    import airflow.sdk
    import psutil  # noqa: F401

    if kind == "pixazo":
        import airflow_provider_pixazo.triggers.pixazo
    else:
        import airflow.providers.http.triggers.http  # noqa: F401
    result = asyncio.run(_run_worker(kind, n, interval, warm_interval))
    import airflow_provider_pixazo

    result["package"] = str(Path(airflow_provider_pixazo.__file__).parent)  # which checkout ran
    print("RESULT " + json.dumps(result), flush=True)


# -- orchestration --------------------------------------------------------------------------------


def _worker_env(port: int, airflow_home: str, max_polls_per_second: float | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("AIRFLOW_HOME", airflow_home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # workers start faster from cached bytecode
    env["PYTHONPYCACHEPREFIX"] = str(Path(airflow_home) / "pycache")
    conn: dict[str, Any] = {"conn_type": "pixazo", "host": f"http://127.0.0.1:{port}", "password": "bench-key"}
    if max_polls_per_second is not None:  # None: a default connection, no cap
        conn["extra"] = {"max_polls_per_second": max_polls_per_second}
    env["AIRFLOW_CONN_" + PIXAZO_CONN_ID.upper()] = json.dumps(conn)
    env["AIRFLOW_CONN_" + HTTP_CONN_ID.upper()] = json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
    )
    return env


class _Worker:
    """A worker process whose stdout is read by a thread (so it never blocks) and stderr kept in a file."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_dir: str) -> None:
        self.stderr = tempfile.NamedTemporaryFile("w+", dir=stderr_dir, suffix=".stderr", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env, cwd=ROOT
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"worker gave no {prefix.strip()} line within {timeout:g}s") from None
            if line is None:
                self.proc.wait()
                self.stderr.seek(0)
                raise RuntimeError(
                    f"worker exited ({self.proc.returncode}) before its {prefix.strip()} line:\n"
                    f"{self.stderr.read()[-3000:]}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def measure(
    ns: Sequence[int],
    kinds: Sequence[str],
    polls: int,
    rate: float,
    min_interval: float,
    timeout: float,
    baseline: Path | None = None,
    ceiling: float | str | None = "auto",
) -> list[dict[str, Any]]:
    """
    Run every (N, kind) in its own worker against one server process; returns one row per run.

    :param baseline: a checkout whose package the ``baseline`` kind's worker imports (PixazoRequestTrigger).
    :param ceiling: our connection's ``max_polls_per_second``: "auto" (twice the offered load) or None (none).
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child, polls), daemon=True)
    server.start()
    port = parent.recv()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pixazo-bench-") as home:
            cap = min(10_000.0, 2 * rate) if ceiling == "auto" else ceiling
            env = _worker_env(port, home, None if cap is None else float(cap))
            for n in ns:
                interval = max(min_interval, n / rate)
                # Start all kinds' workers at once: they import and warm up in parallel, then idle
                # on stdin while the others are measured one at a time.
                script = [sys.executable, str(Path(__file__).resolve()), "--worker"]
                workers = {}
                for kind in kinds:
                    worker_env = env
                    if kind == BASELINE:
                        assert baseline is not None
                        worker_env = {**env, "PYTHONPATH": os.pathsep.join([str(baseline), env["PYTHONPATH"]])}
                    args = [*script, "pixazo" if kind == BASELINE else kind, str(n), str(interval), str(min_interval)]
                    workers[kind] = _Worker(args, worker_env, home)
                try:
                    for kind in kinds:
                        workers[kind].expect("READY", timeout)
                    for kind in kinds:
                        worker = workers[kind]
                        parent.send("reset")
                        parent.recv()
                        parent.send("stats")
                        before = parent.recv()
                        cpu_before = _cpu_seconds(worker.proc.pid)
                        worker.send("GO")
                        started = time.monotonic()
                        try:
                            row = json.loads(worker.expect("RESULT ", timeout))
                            row["kind"] = kind
                        except RuntimeError as err:
                            # Did not finish: keep what the server and the kernel saw, and say so.
                            row = _unfinished(kind, n, interval, _cpu_seconds(worker.proc.pid) - cpu_before, err)
                            row["wall_s"] = time.monotonic() - started
                        parent.send("stats")
                        after = parent.recv()
                        worker.kill()
                        row["polls"] = after["polls"] - before["polls"]
                        row["accepts"] = after["accepts"] - before["accepts"]
                        row["server_cpu_s"] = after["cpu_s"] - before["cpu_s"]
                        rows.append(_derive(row))
                finally:
                    for worker in workers.values():
                        worker.kill()
    finally:
        with contextlib.suppress(Exception):
            parent.send("stop")
        server.join(timeout=5)
        if server.is_alive():
            server.kill()
    return rows


def _cpu_seconds(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _unfinished(kind: str, n: int, interval: float, cpu: float, err: Exception) -> dict[str, Any]:
    reason = str(err).splitlines()[0]
    return {
        "kind": kind,
        "n": n,
        "interval_s": interval,
        "cpu_s": cpu,
        "ok": 0,
        "errors": [reason],
        "error_count": 0,
        "unfinished": reason,
        "rss_base": 0,
        "rss_waiting": 0,
        "lag_p50_ms": float("nan"),
        "lag_p99_ms": float("nan"),
        "lag_max_ms": float("nan"),
    }


def _derive(row: dict[str, Any]) -> dict[str, Any]:
    polls = max(row["polls"], 1)
    row["cpu_us_per_poll"] = row["cpu_s"] / polls * 1e6
    row["conns_per_poll"] = row["accepts"] / polls
    row["rss_bytes_per_trigger"] = (
        float("nan") if row.get("unfinished") else (row["rss_waiting"] - row["rss_base"]) / row["n"]
    )
    row["polls_per_s"] = row["polls"] / row["wall_s"] if row["wall_s"] else 0.0
    return row


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The figures as a Markdown table, then ours/anchor ratios and goal checks per N."""
    lines = [
        "| trigger | N | interval s | polls | CPU µs/poll | new conns/poll | RSS B/waiting trigger "
        "| loop lag p50 / p99 / max ms | ok events | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "pixazo": "PixazoRequestTrigger",
        "http": "HttpSensorTrigger (anchor)",
        BASELINE: "PixazoRequestTrigger (baseline checkout)",
    }
    for r in rows:
        lines.append(
            f"| {names[r['kind']]} | {r['n']} | {r['interval_s']:g} | {r['polls']} | {r['cpu_us_per_poll']:.0f} "
            f"| {r['conns_per_poll']:.4f} | {r['rss_bytes_per_trigger']:.0f} "
            f"| {r['lag_p50_ms']:.1f} / {r['lag_p99_ms']:.1f} / {r['lag_max_ms']:.1f} "
            f"| {r['ok']}/{r['n']}{' (' + str(r['error_count']) + ' errors)' if r['error_count'] else ''}"
            f"{' (DID NOT FINISH in time; CPU from the kernel, polls from the server)' if r.get('unfinished') else ''} "
            f"| {r['wall_s']:.1f} |"
        )
    by_n: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_n.setdefault(r["n"], {})[r["kind"]] = r
    if any("pixazo" in v and "http" in v for v in by_n.values()):
        lines += [
            "",
            "| N | CPU/poll ours ÷ anchor (goal ≤ 0.25) | conns/poll ours (goal ≤ 0.01) "
            "| RSS/trigger ours (goal ≤ 5 KB) | all N waits succeeded | lag p99 ours ÷ anchor "
            "| wall ours ÷ anchor (goal ≤ 2 with no cap) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for n, pair in by_n.items():
        if "pixazo" not in pair or "http" not in pair:
            continue
        ours, anchor = pair["pixazo"], pair["http"]
        cpu_ratio = ours["cpu_us_per_poll"] / anchor["cpu_us_per_poll"] if anchor["cpu_us_per_poll"] else 0.0
        lag_ratio = ours["lag_p99_ms"] / anchor["lag_p99_ms"] if anchor["lag_p99_ms"] else float("nan")
        wall_ratio = ours["wall_s"] / anchor["wall_s"] if anchor.get("wall_s") else float("nan")
        lines.append(
            f"| {n} | {cpu_ratio:.2f} {_mark(cpu_ratio <= GOAL_CPU_RATIO)} "
            f"| {ours['conns_per_poll']:.4f} {_mark(ours['conns_per_poll'] <= GOAL_CONNS_PER_POLL)} "
            f"| {ours['rss_bytes_per_trigger'] / 1024:.2f} KB "
            f"{_mark(ours['rss_bytes_per_trigger'] <= GOAL_RSS_PER_TRIGGER)} "
            f"| {ours['ok']}/{n} {_mark(ours['ok'] == n)} | {lag_ratio:.2f} "
            f"| {wall_ratio:.2f} {_mark(wall_ratio <= GOAL_WALL_RATIO)} |"
        )
    compared = {n: pair for n, pair in by_n.items() if {"pixazo", "http", BASELINE} <= pair.keys()}
    if compared:
        lines += [
            "",
            "| N | CPU µs/poll baseline → ours | baseline ÷ anchor | ours ÷ anchor | ours ÷ baseline |",
            "|---:|---:|---:|---:|---:|",
        ]
    for n, pair in compared.items():
        ours, base, anchor = (pair[k]["cpu_us_per_poll"] or float("nan") for k in ("pixazo", BASELINE, "http"))
        lines.append(
            f"| {n} | {base:.0f} → {ours:.0f} | {base / anchor:.2f} | {ours / anchor:.2f} | {ours / base:.2f} |"
        )
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker_main(argv[1], int(argv[2]), float(argv[3]), float(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000], help="trigger counts")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run PixazoRequestTrigger from this checkout's package (e.g. `git archive main` unpacked), "
        "in the same run: before and after side by side",
    )
    parser.add_argument("--polls", type=int, default=4, help="'not yet' answers per trigger before 'done' (K)")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered polls per second (sets the interval)")
    parser.add_argument("--min-interval", type=float, default=0.1, help="shortest poll interval, seconds")
    parser.add_argument(
        "--ceiling",
        default="auto",
        type=lambda v: v if v in ("auto", "none") else float(v),
        help="our connection's max_polls_per_second: auto (twice --rate, the default), none (a default "
        "connection: no cap), or a number",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per worker step")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    kinds = list(args.kinds)
    if args.baseline is not None:
        if not (args.baseline / "airflow_provider_pixazo" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no airflow_provider_pixazo package there")
        kinds.insert(kinds.index("pixazo") + 1 if "pixazo" in kinds else 0, BASELINE)
    rows = measure(
        args.n,
        kinds,
        args.polls,
        args.rate,
        args.min_interval,
        args.timeout,
        args.baseline.resolve() if args.baseline else None,
        None if args.ceiling == "none" else args.ceiling,
    )
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
