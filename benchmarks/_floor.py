"""
The plain-client floor: what one asyncio httpx client costs doing a pipeline's work per prompt.

Per prompt, the same work the mapped ``generate -> wait -> store`` pattern does: submit (``POST``
GPT Image 2 text-to-image, the daily example's options), poll the universal status endpoint on the
sensor's schedule (one check at once, then ``poll_interval`` growing by a quarter after each
unchanged answer up to ``max_poll_interval``) until COMPLETED, then download every image and write
it to disk (``fsync``-ed, as the transfer does). Submits are bounded like the example's ``pixazo``
pool (``--submit-concurrency``, default 4); waits and downloads are not.

It runs in a process of its own so its CPU figure is the client's alone (the emulator that renders
the images lives elsewhere)::

    PYTHONPATH=. .venv/bin/python benchmarks/_floor.py --url http://127.0.0.1:PORT --api-key KEY \\
        --n 100 --out /tmp/floor-images

prints one JSON object: ``wall_s``, ``cpu_s`` (user + system of this process, from ``run()``'s start),
``images``, ``submits``, ``status_calls``, ``failed``. ``benchmarks/mapped_scale.py`` and the batch
benchmark call :func:`run_in_subprocess`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

SUBMIT_PATH = "/gpt-image-2/v1/text-to-image"
STATUS_PATH = "/v2/requests/status/"
#: The daily example's image options, in GPT Image 2's wire names.
IMAGE_OPTIONS = {"size": "1024x1024", "quality": "low", "format": "png"}
#: The sensor's defaults in the daily example (poke_interval=5; the trigger grows it by a quarter).
POLL_INTERVAL, MAX_POLL_INTERVAL, GROWTH = 5.0, 60.0, 1.25
TERMINAL = {"COMPLETED", "FAILED", "ERROR"}


@dataclass
class FloorResult:
    """What the plain client did and what it cost."""

    n: int
    wall_s: float
    cpu_s: float
    images: int
    submits: int
    status_calls: int
    failed: int


def prompts_for(n: int) -> list[str]:
    """``n`` distinct prompts (the emulator draws each image from its request id, not its prompt)."""
    return [f"Scale prompt {i}: a lighthouse on a basalt cliff at dawn, watercolour" for i in range(n)]


class _Counts:
    def __init__(self) -> None:
        self.submits = self.status_calls = self.images = self.failed = 0


async def _one(
    client: httpx.AsyncClient,
    media_client: httpx.AsyncClient,
    index: int,
    prompt: str,
    out: Path,
    submit_slots: asyncio.Semaphore,
    counts: _Counts,
    poll_interval: float,
    max_poll_interval: float,
) -> None:
    async with submit_slots:
        answer = await client.post(SUBMIT_PATH, json={"prompt": prompt, **IMAGE_OPTIONS})
        answer.raise_for_status()
        counts.submits += 1
    request_id = answer.json()["request_id"]
    interval, last = poll_interval, None
    while True:
        status = await client.get(f"{STATUS_PATH}{request_id}")
        counts.status_calls += 1
        status.raise_for_status()
        body = status.json()
        if body["status"] in TERMINAL:
            break
        if body["status"] == last:
            interval = min(interval * GROWTH, max_poll_interval)
        last = body["status"]
        await asyncio.sleep(interval)
    if body["status"] != "COMPLETED":
        counts.failed += 1
        return
    for number, url in enumerate(body["output"]["media_url"]):
        target = out / f"{index:05d}-{number}.png"
        async with media_client.stream("GET", url) as media:
            media.raise_for_status()
            with target.open("wb") as handle:
                async for chunk in media.aiter_bytes():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        counts.images += 1


async def run(
    base_url: str,
    api_key: str,
    n: int,
    out: Path,
    *,
    submit_concurrency: int = 4,
    poll_interval: float = POLL_INTERVAL,
    max_poll_interval: float = MAX_POLL_INTERVAL,
) -> FloorResult:
    """Generate ``n`` images through ``base_url`` into ``out``; returns the counts, wall and CPU time."""
    out.mkdir(parents=True, exist_ok=True)
    counts = _Counts()
    cpu0, wall0 = _cpu(), time.monotonic()
    headers = {"Ocp-Apim-Subscription-Key": api_key, "Cache-Control": "no-cache"}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    timeout = httpx.Timeout(60.0)
    # Media URLs are public (a CDN): a second client, so the key never goes there.
    async with (
        httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, limits=limits, trust_env=False
        ) as client,
        httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as media_client,
    ):
        slots = asyncio.Semaphore(submit_concurrency)
        await asyncio.gather(
            *(
                _one(client, media_client, i, prompt, out, slots, counts, poll_interval, max_poll_interval)
                for i, prompt in enumerate(prompts_for(n))
            )
        )
    return FloorResult(
        n=n,
        wall_s=time.monotonic() - wall0,
        cpu_s=_cpu() - cpu0,
        images=counts.images,
        submits=counts.submits,
        status_calls=counts.status_calls,
        failed=counts.failed,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_in_subprocess(
    base_url: str, api_key: str, n: int, out: Path, timeout: float = 1800, **options: Any
) -> FloorResult:
    """Run the floor in a fresh interpreter (its CPU is then the client's alone); returns its result."""
    args = [sys.executable, str(Path(__file__).resolve()), "--url", base_url, "--n", str(n), "--out", str(out)]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    # The key goes by environment, not argv (argv is visible to every user of the machine).
    env = {**os.environ, "PIXAZO_FLOOR_API_KEY": api_key}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the floor client exited {done.returncode}:\n{done.stderr[-3000:]}")
    return FloorResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("--url", required=True, help="the gateway (emulator) base URL")
    parser.add_argument(
        "--api-key", default=os.environ.get("PIXAZO_FLOOR_API_KEY"), help="default: $PIXAZO_FLOOR_API_KEY"
    )
    parser.add_argument("--n", type=int, required=True, help="prompts")
    parser.add_argument("--out", type=Path, required=True, help="folder the images are written to")
    parser.add_argument("--submit-concurrency", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL)
    parser.add_argument("--max-poll-interval", type=float, default=MAX_POLL_INTERVAL)
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key or $PIXAZO_FLOOR_API_KEY is required")
    result = asyncio.run(
        run(
            args.url,
            args.api_key,
            args.n,
            args.out,
            submit_concurrency=args.submit_concurrency,
            poll_interval=args.poll_interval,
            max_poll_interval=args.max_poll_interval,
        )
    )
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
