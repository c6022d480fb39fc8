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
wall time over the floor the limit itself sets: ``(N * (polls + 1) + submits - burst) / R`` seconds,
the time the gateway needs to answer every call a wait (and a submit) needs (goals: refused <= 5 %, wall <= 1.5 x floor,
every wait succeeds). Our connection is a default one (no ``max_polls_per_second``), so what is
measured is what the poller learns, not what it was told; ``--ceiling X`` sets the extra instead.

Submits during the wait (``--submits``, issue 17): a third process plays the workers, sending that
many submits through ``PixazoHook.generate_image`` (its retry.py backoff, at least ``Retry-After``
after a 429), ``--submit-rate`` a second from the moment the waits start, each in its own thread.
The gateway counts them in the same bucket as the status calls (a gateway counts all of a key's
calls), so the figures are how many submits met a 429 and how long each took from its first attempt.

Two triggerers on one key (kind ``pixazo2``): two worker processes, N/2 waits each, start together
against the one bucket; the figures are both together.

    PYTHONPATH=. .venv/bin/python benchmarks/rate_limit.py --n 500 --limit 100 --submits 40
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

KINDS = ("pixazo", "pixazo2", "http")
SUBMIT_PATH = "/gpt-image-2/v1/text-to-image"
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
        self.submits_refused: dict[str, int] = {}  # prompt -> 429s it met
        self.submits_accepted = 0

    def answer(self, path: str, body_in: bytes = b"") -> bytes:
        if path == SUBMIT_PATH:
            return self._submit(body_in)
        if not (path.startswith(wc.STATUS_PREFIX) or path.startswith(wc.HTTP_PREFIX)):
            return wc._response(404, b'{"error":"Not Found"}')
        if not self.bucket.take():
            self.refused += 1
            return _TOO_MANY
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

    def _submit(self, body_in: bytes) -> bytes:
        # The same bucket as the status calls: the gateway counts every call of the key.
        prompt = str(json.loads(body_in or b"{}").get("prompt", ""))
        refused = self.submits_refused.setdefault(prompt, 0)
        if not self.bucket.take():
            self.submits_refused[prompt] = refused + 1
            return _TOO_MANY
        self.submits_accepted += 1
        request_id = f"gpt-image-2_{prompt.replace(' ', '-')}"
        return wc._response(200, json.dumps({"request_id": request_id, "status": "QUEUED"}).encode())


_TOO_MANY_BODY = b'{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}'
_TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    + f"Content-Length: {len(_TOO_MANY_BODY)}\r\nConnection: keep-alive\r\n\r\n".encode()
    + _TOO_MANY_BODY
)


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
            body = await reader.readexactly(length) if length else b""
            writer.write(gateway.answer(path, body))
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
            return {
                "answered": gateway.answered,
                "refused": gateway.refused,
                "accepts": gateway.accepts,
                "submits_accepted": gateway.submits_accepted,
                "submit_429s": sorted(gateway.submits_refused.values()),
            }

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


async def _run_worker(kind: str, n: int, interval: float, tag: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()

    async def consume(trigger: Any, delay: float) -> Any:
        await asyncio.sleep(delay)
        async for event in trigger.run():
            return event.payload
        return None

    print("READY", flush=True)
    if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "GO":
        raise RuntimeError("expected GO on stdin")
    triggers = [_make_trigger(kind, f"rl-{tag}-{i}", interval) for i in range(n)]
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
        row["rate_at_end"] = poller.rate
        row["learned_rate"] = poller.learned_limit
        row["poller_rate_limited"] = poller.rate_limited
    return row


def worker_main(kind: str, n: int, interval: float, tag: str) -> None:
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
    print("RESULT " + json.dumps(asyncio.run(_run_worker(kind, n, interval, tag))), flush=True)


def submitter_main(count: int, rate: float, tag: str) -> None:
    """
    The workers' submits: prints READY, waits for GO, sends ``count`` submits ``rate`` a second, one
    thread each, through ``PixazoHook.generate_image`` (retry.py's backoff); prints one RESULT line.
    """
    import concurrent.futures
    import logging

    import structlog

    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

    def one(i: int) -> tuple[float, str | None]:
        hook = PixazoHook(wc.PIXAZO_CONN_ID)  # one per task, as each worker process has its own
        began = time.monotonic()
        try:
            hook.generate_image(f"{tag} {i}")
            error = None
        except Exception as err:
            error = type(err).__name__
        finally:
            hook.close()
        return time.monotonic() - began, error

    PixazoHook(wc.PIXAZO_CONN_ID).settings  # noqa: B018 - the connection read and imports, before GO
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        raise RuntimeError("expected GO on stdin")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        futures = []
        for i in range(count):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            futures.append(pool.submit(one, i))
        results = [f.result() for f in futures]
    print(
        "RESULT " + json.dumps({"delays": [d for d, _ in results], "errors": [e for _, e in results if e]}), flush=True
    )


# -- orchestration --------------------------------------------------------------------------------


def measure(
    n: int,
    limit: float,
    burst: float,
    polls: int,
    interval: float,
    ceiling: float | None,
    kinds: Sequence[str],
    timeout: float,
    submits: int = 0,
    submit_rate: float = 2.0,
) -> list[dict[str, Any]]:
    """One gateway process; each kind in its own worker(s), one after the other, with a full bucket each."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child, limit, burst, polls), daemon=True)
    server.start()
    port = parent.recv()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pixazo-ratelimit-") as home:
            env = wc._worker_env(port, home, ceiling)
            script = [sys.executable, str(Path(__file__).resolve())]
            workers: dict[str, list[wc._Worker]] = {}
            submitters: dict[str, wc._Worker] = {}
            for kind in kinds:
                # Two triggerers on one key: two processes, half the waits each, started together.
                split = [(f"{kind}-a", n // 2), (f"{kind}-b", n - n // 2)] if kind == "pixazo2" else [(kind, n)]
                real = "pixazo" if kind == "pixazo2" else kind
                workers[kind] = [
                    wc._Worker([*script, "--worker", real, str(k), str(interval), tag], env, home) for tag, k in split
                ]
                if submits:
                    submitters[kind] = wc._Worker(
                        [*script, "--submitter", str(submits), str(submit_rate), f"submit-{kind}"], env, home
                    )
            try:
                for kind in kinds:
                    for worker in [*workers[kind], *([submitters[kind]] if submits else [])]:
                        worker.expect("READY", timeout)
                for kind in kinds:
                    parent.send("reset")
                    parent.recv()
                    for worker in [*workers[kind], *([submitters[kind]] if submits else [])]:
                        worker.send("GO")
                    row = _collect(kind, n, workers[kind], timeout)
                    if submits:
                        try:
                            row["submits"] = json.loads(submitters[kind].expect("RESULT ", timeout))
                        except RuntimeError as err:
                            row["submits"] = {"delays": [], "errors": [str(err).splitlines()[0]]}
                    parent.send("stats")
                    stats = parent.recv()
                    for worker in [*workers[kind], *([submitters[kind]] if submits else [])]:
                        worker.kill()
                    row.update(stats)
                    row.update(limit=limit, burst=burst, polls_per_wait=polls + 1, interval_s=interval)
                    row["ceiling"] = ceiling if kind != "http" else None
                    rows.append(_derive(row))
            finally:
                for worker in [*(w for ws in workers.values() for w in ws), *submitters.values()]:
                    worker.kill()
    finally:
        with contextlib.suppress(Exception):
            parent.send("stop")
        server.join(timeout=5)
        if server.is_alive():
            server.kill()
    return rows


def _collect(kind: str, n: int, workers: list[wc._Worker], timeout: float) -> dict[str, Any]:
    """One row from the kind's worker(s): waits summed, wall the longest, each poller's learned rate."""
    parts = []
    for worker in workers:
        try:
            parts.append(json.loads(worker.expect("RESULT ", timeout)))
        except RuntimeError as err:
            parts.append({"wall_s": timeout, "ok": 0, "unfinished": str(err).splitlines()[0]})
    row: dict[str, Any] = {
        "kind": kind,
        "n": n,
        "wall_s": max(p["wall_s"] for p in parts),
        "ok": sum(p["ok"] for p in parts),
    }
    if kind != "http":
        row["learned_rate"] = [p.get("learned_rate") for p in parts]
        row["rate_at_end"] = [p.get("rate_at_end") for p in parts]
    unfinished = [p["unfinished"] for p in parts if p.get("unfinished")]
    if unfinished:
        row["unfinished"] = unfinished[0]
    return row


def _derive(row: dict[str, Any]) -> dict[str, Any]:
    calls = row["answered"] + row["refused"]
    row["calls"] = calls
    row["refused_share"] = row["refused"] / calls if calls else 0.0
    # The submits (if any) spend the same bucket: the floor counts them too.
    needed = row["n"] * row["polls_per_wait"] + row.get("submits_accepted", 0)
    row["floor_s"] = max(0.0, (needed - row["burst"]) / row["limit"])
    row["floor_ratio"] = row["wall_s"] / row["floor_s"] if row["floor_s"] else float("nan")
    submits = row.get("submits")
    if submits is not None:
        delays = sorted(submits["delays"]) or [float("nan")]
        met = row.get("submit_429s", [])
        row["submits_sent"] = len(submits["delays"])
        row["submits_met_429"] = sum(1 for c in met if c)
        row["submit_429s_total"] = sum(met)
        row["submit_delay_p50_s"] = delays[len(delays) // 2]
        row["submit_delay_max_s"] = delays[-1]
        row["submit_errors"] = submits["errors"]
    return row


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The figures as a Markdown table with goal checks (and the submits' table when they ran)."""
    names = {
        "pixazo": "PixazoRequestTrigger",
        "pixazo2": "PixazoRequestTrigger, two triggerers",
        "http": "HttpSensorTrigger (anchor)",
    }
    lines = [
        "| trigger | N | gateway limit /s (burst) | our cap /s | status calls | answered 429 | share 429 "
        "(goal ≤ 5 %) | wall s | floor s | wall ÷ floor (goal ≤ 1.5) | ok events |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cap = "n/a"
        if r["kind"] != "http":
            learned = " / ".join("-" if x is None else f"{x:.0f}" for x in r.get("learned_rate", []))
            cap = f"{'none' if r['ceiling'] is None else format(r['ceiling'], 'g')} (learned {learned})"
        ours = r["kind"] != "http"
        mark_share = wc._mark(r["refused_share"] <= GOAL_REFUSED_SHARE) if ours else ""
        mark_floor = wc._mark(r["floor_ratio"] <= GOAL_FLOOR_RATIO) if ours else ""
        lines.append(
            f"| {names[r['kind']]} | {r['n']} | {r['limit']:g} ({r['burst']:g}) | {cap} | {r['calls']} "
            f"| {r['refused']} | {100 * r['refused_share']:.1f} % {mark_share} | {r['wall_s']:.1f} "
            f"| {r['floor_s']:.1f} | {r['floor_ratio']:.2f} {mark_floor} "
            f"| {r['ok']}/{r['n']}{' (DID NOT FINISH: ' + r['unfinished'] + ')' if r.get('unfinished') else ''} |"
        )
    with_submits = [r for r in rows if "submits_sent" in r]
    if with_submits:
        lines += [
            "",
            "| submits during the wait of | submits | met a 429 | 429s in all | delay p50 / max s | failed |",
            "|---|---:|---:|---:|---:|---:|",
        ]
    for r in with_submits:
        lines.append(
            f"| {names[r['kind']]} | {r['submits_sent']} | {r['submits_met_429']} | {r['submit_429s_total']} "
            f"| {r['submit_delay_p50_s']:.2f} / {r['submit_delay_max_s']:.2f} | {len(r['submit_errors'])} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker_main(argv[1], int(argv[2]), float(argv[3]), argv[4])
        return 0
    if argv[:1] == ["--submitter"]:
        submitter_main(int(argv[1]), float(argv[2]), argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--n", type=int, default=500, help="waiting triggers")
    parser.add_argument("--limit", type=float, default=100.0, help="status calls per second the gateway allows")
    parser.add_argument("--burst", type=float, help="the gateway's bucket size (default: one second's worth)")
    parser.add_argument("--polls", type=int, default=3, help="'not yet' answers per wait before 'done'")
    parser.add_argument("--interval", type=float, default=1.0, help="each trigger's poll interval, seconds")
    parser.add_argument("--ceiling", type=float, help="our connection's max_polls_per_second (default: none)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=["pixazo", "http"])
    parser.add_argument("--submits", type=int, default=0, help="submits sent during each kind's wait")
    parser.add_argument("--submit-rate", type=float, default=2.0, help="submits a second")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per worker step")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    burst = args.burst if args.burst is not None else args.limit
    rows = measure(
        args.n,
        args.limit,
        burst,
        args.polls,
        args.interval,
        args.ceiling,
        args.kinds,
        args.timeout,
        args.submits,
        args.submit_rate,
    )
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
