"""
Waiting under a rate limit: N PixazoRequestTrigger instances in one loop against a gateway that allows
R status calls a second, beside HttpSensorTrigger against the same gateway.

The gateway is a minimal asyncio HTTP/1.1 keep-alive server in its own process with one token bucket
(``R`` tokens a second, ``--burst`` at most, full at the start of each run) in front of every status
path; a call finding it empty is answered ``429`` with ``Retry-After: 1``. Each id answers "not yet"
``--polls`` times, then "done" (``/v2/requests/status/<id>``: PROCESSING then COMPLETED for ours;
``/http/<id>``: 404 then 200 for HttpSensorTrigger). All N triggers start within the first second,
each polling every ``--interval`` seconds, so together they ask far more than the gateway allows.

Figures per run: status calls answered and refused (429), the share refused, the wall time, and the
wall time over the floor the limit itself sets: ``(N * (polls + 1) - burst) / R`` seconds, the time
the gateway needs to answer every call a wait needs (goals: refused <= 5 %, wall <= 1.5 x floor,
every wait succeeds). Our connection's ``max_polls_per_second`` is set well above the gateway's
limit (``--ceiling``, default 5 x R), so what is measured is what the poller learns, not what it
was told.

    PYTHONPATH=. .venv/bin/python benchmarks/rate_limit.py --n 500 --limit 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import waiting_cost as wc

KINDS = ("pixazo", "http")
GOAL_REFUSED_SHARE = 0.05
GOAL_FLOOR_RATIO = 1.5


class _Gateway:
    def __init__(self, limit: float, burst: float, not_yet: int) -> None:
        from airflow_provider_pixazo.testing._faults import TokenBucket

        self.limit, self.burst, self.not_yet = limit, burst, not_yet
        self.bucket_type = TokenBucket
        self.reset()

    def reset(self) -> None:
        self.bucket = self.bucket_type(self.limit, self.burst)
        self.counts: dict[str, int] = {}
        self.answered = 0
        self.refused = 0
        self.accepts = 0

    def answer(self, path: str) -> bytes:
        if not (path.startswith(wc.STATUS_PREFIX) or path.startswith(wc.HTTP_PREFIX)):
            return wc._response(404, b'{"error":"Not Found"}')
        if not self.bucket.take():
            self.refused += 1
            body = b'{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}'
            return (
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n".encode()
                + body
            )
        self.answered += 1
        seen = self.counts[path] = self.counts.get(path, 0) + 1
        done = seen > self.not_yet
        if path.startswith(wc.HTTP_PREFIX):
            return wc._response(200, b'{"ok":true}') if done else wc._response(404, b'{"error":"not yet"}')
        request_id = path.rsplit("/", 1)[-1]
        body: dict[str, Any] = {"request_id": request_id, "status": "COMPLETED" if done else "PROCESSING"}
        if done:
            body["output"] = {"media_url": [f"http://127.0.0.1/media/{request_id}.png"], "media_type": "image/png"}
        return wc._response(200, json.dumps(body).encode())


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gateway: _Gateway) -> None:
    gateway.accepts += 1
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
            writer.write(gateway.answer(path))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def serve(control: Any, limit: float, burst: float, not_yet: int) -> None:
    """Child process: the rate-limited gateway; control messages "reset", "stats", "stop"."""
    wc._raise_fd_limit()
    gateway = _Gateway(limit, burst, not_yet)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()
        server = await asyncio.start_server(lambda r, w: _serve_connection(r, w, gateway), "127.0.0.1", 0, backlog=4096)
        control.send(server.sockets[0].getsockname()[1])

        async def command(name: str) -> dict[str, Any]:
            if name == "reset":
                gateway.reset()
            return {"answered": gateway.answered, "refused": gateway.refused, "accepts": gateway.accepts}

        def listen() -> None:
            while True:
                name = control.recv()
                if name in ("stats", "reset"):
                    control.send(asyncio.run_coroutine_threadsafe(command(name), loop).result())
                else:
                    loop.call_soon_threadsafe(stopped.set_result, None)
                    return

        threading.Thread(target=listen, daemon=True).start()
        async with server:
            await stopped

    asyncio.run(main())


# -- worker (one process per kind) ----------------------------------------------------------------


def _make_trigger(kind: str, key: str, interval: float) -> Any:
    if kind == "pixazo":
        from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

        return PixazoRequestTrigger(
            request_id=key,
            pixazo_conn_id=wc.PIXAZO_CONN_ID,
            poll_interval=interval,
            max_poll_interval=interval,
            timeout=3600,
        )
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return HttpSensorTrigger(
        endpoint=f"{wc.HTTP_PREFIX}{key}", http_conn_id=wc.HTTP_CONN_ID, method="GET", poke_interval=interval
    )


async def _run_worker(kind: str, n: int, interval: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()

    async def consume(trigger: Any, delay: float) -> Any:
        await asyncio.sleep(delay)
        async for event in trigger.run():
            return event.payload
        return None

    print("READY", flush=True)
    if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "GO":
        raise RuntimeError("expected GO on stdin")
    triggers = [_make_trigger(kind, f"rl-{kind}-{i}", interval) for i in range(n)]
    started = loop.time()
    cpu0 = time.process_time()
    events = await asyncio.gather(*(consume(t, i / n) for i, t in enumerate(triggers)), return_exceptions=True)
    row: dict[str, Any] = {
        "kind": kind,
        "n": n,
        "wall_s": loop.time() - started,
        "cpu_s": time.process_time() - cpu0,
        "ok": sum(1 for e in events if wc._event_ok(kind, e)),
        "errors": [repr(e) for e in events if isinstance(e, BaseException)][:3],
    }
    if kind == "pixazo":
        from airflow_provider_pixazo.hooks._poller import status_poller

        poller = status_poller(wc.PIXAZO_CONN_ID)
        row["learned_rate"] = poller.rate
        row["poller_rate_limited"] = poller.rate_limited
    return row


def worker_main(kind: str, n: int, interval: float) -> None:
    """A worker process: prints READY, waits for GO, runs N triggers, prints one RESULT line."""
    import logging

    import structlog

    wc._raise_fd_limit()
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    import airflow.sdk

    if kind == "pixazo":
        import airflow_provider_pixazo.triggers.pixazo  # noqa: F401
    else:
        import airflow.providers.http.triggers.http  # noqa: F401
    print("RESULT " + json.dumps(asyncio.run(_run_worker(kind, n, interval))), flush=True)


# -- orchestration --------------------------------------------------------------------------------


def measure(
    n: int,
    limit: float,
    burst: float,
    polls: int,
    interval: float,
    ceiling: float,
    kinds: Sequence[str],
    timeout: float,
) -> list[dict[str, Any]]:
    """One gateway process; each kind in its own worker, one after the other, with a full bucket each."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child, limit, burst, polls), daemon=True)
    server.start()
    port = parent.recv()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pixazo-ratelimit-") as home:
            env = wc._worker_env(port, home, ceiling)
            script = [sys.executable, str(Path(__file__).resolve()), "--worker"]
            workers = {k: wc._Worker([*script, k, str(n), str(interval)], env, home) for k in kinds}
            try:
                for kind in kinds:
                    workers[kind].expect("READY", timeout)
                for kind in kinds:
                    parent.send("reset")
                    parent.recv()
                    workers[kind].send("GO")
                    try:
                        row = json.loads(workers[kind].expect("RESULT ", timeout))
                    except RuntimeError as err:
                        row = {"kind": kind, "n": n, "wall_s": timeout, "ok": 0, "unfinished": str(err).splitlines()[0]}
                    parent.send("stats")
                    stats = parent.recv()
                    workers[kind].kill()
                    row.update(stats)
                    row.update(limit=limit, burst=burst, polls_per_wait=polls + 1, interval_s=interval)
                    row["ceiling"] = ceiling if kind == "pixazo" else None
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


def _derive(row: dict[str, Any]) -> dict[str, Any]:
    calls = row["answered"] + row["refused"]
    row["calls"] = calls
    row["refused_share"] = row["refused"] / calls if calls else 0.0
    row["floor_s"] = max(0.0, (row["n"] * row["polls_per_wait"] - row["burst"]) / row["limit"])
    row["floor_ratio"] = row["wall_s"] / row["floor_s"] if row["floor_s"] else float("nan")
    return row


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The figures as a Markdown table with goal checks."""
    names = {"pixazo": "PixazoRequestTrigger", "http": "HttpSensorTrigger (anchor)"}
    lines = [
        "| trigger | N | gateway limit /s (burst) | our ceiling /s | status calls | answered 429 | share 429 "
        "(goal ≤ 5 %) | wall s | floor s | wall ÷ floor (goal ≤ 1.5) | ok events |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ceiling = f"{r['ceiling']:g} (learned {r['learned_rate']:.0f})" if r.get("learned_rate") is not None else "n/a"
        mark_share = wc._mark(r["refused_share"] <= GOAL_REFUSED_SHARE) if r["kind"] == "pixazo" else ""
        mark_floor = wc._mark(r["floor_ratio"] <= GOAL_FLOOR_RATIO) if r["kind"] == "pixazo" else ""
        lines.append(
            f"| {names[r['kind']]} | {r['n']} | {r['limit']:g} ({r['burst']:g}) | {ceiling} | {r['calls']} "
            f"| {r['refused']} | {100 * r['refused_share']:.1f} % {mark_share} | {r['wall_s']:.1f} "
            f"| {r['floor_s']:.1f} | {r['floor_ratio']:.2f} {mark_floor} "
            f"| {r['ok']}/{r['n']}{' (DID NOT FINISH: ' + r['unfinished'] + ')' if r.get('unfinished') else ''} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker_main(argv[1], int(argv[2]), float(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--n", type=int, default=500, help="waiting triggers")
    parser.add_argument("--limit", type=float, default=100.0, help="status calls per second the gateway allows")
    parser.add_argument("--burst", type=float, help="the gateway's bucket size (default: one second's worth)")
    parser.add_argument("--polls", type=int, default=3, help="'not yet' answers per wait before 'done'")
    parser.add_argument("--interval", type=float, default=1.0, help="each trigger's poll interval, seconds")
    parser.add_argument("--ceiling", type=float, help="our connection's max_polls_per_second (default 5 x limit)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per worker step")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    burst = args.burst if args.burst is not None else args.limit
    ceiling = args.ceiling if args.ceiling is not None else 5 * args.limit
    rows = measure(args.n, args.limit, burst, args.polls, args.interval, ceiling, args.kinds, args.timeout)
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
