"""
Throughput and memory of PixazoToObjectStorageOperator beside curl+fsync and the amazon provider's HttpToS3Operator.

A child process serves a Pixazo status endpoint listing ``--images`` media URLs, each a ``--size-mb``
"PNG" (a real PNG signature and IHDR chunk, then filler bytes) streamed from a generator, never held in
memory. On the same bytes from that same server:

1. local disk: the operator's throughput beside ``curl -s -o FILE URL`` followed by ``fsync(FILE)``, the
   same durability the operator gives (it fsyncs each file before renaming it into place). One curl per
   image; with several images ``xargs -P <max_concurrency>`` runs them, as many at a time as the operator
   downloads, then the files are fsynced by as many threads. The two sides alternate pass by pass in
   the same process (curl first on even passes, ours first on odd ones), so a busy neighbour on a
   shared machine slows both alike; the ratio reported is the median of the per-pass ratios. Without
   curl on the PATH the curl side is skipped (its figures are ``null``).
2. S3 (``--s3``, a moto server in another child process): the operator's peak RSS growth beside
   ``HttpToS3Operator`` moving the same objects (it reads ``response.content``: the whole object in memory).

Every operator measurement runs in its own fresh interpreter: one warm-up pass on 1 MiB images (imports,
connections, thread pools; not counted), one memory pass (peak RSS growth over the pre-pass RSS, psutil
sampled every 5 ms, and ``getrusage`` max RSS growth; tracemalloc heap peak), then ``--repeat`` timing
passes without instrumentation whose median is the throughput.

    PYTHONPATH=. .venv/bin/python benchmarks/transfer_memory.py --size-mb 200 --s3
    PYTHONPATH=. .venv/bin/python benchmarks/transfer_memory.py --images 10 --size-mb 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REQUEST_ID = "gpt-image-2_019d0000-bench-0000-0000-000000000001"
WARM_ID = "gpt-image-2_019d0000-bench-0000-0000-00000000warm"
MAX_CONCURRENCY = 4  # the operator's default; curl runs as many at a time
SERVE_CHUNK = 1024 * 1024
MB = 1024 * 1024


def image_chunks(size: int) -> Iterator[bytes]:
    """A valid PNG signature and IHDR, then deterministic filler, ``size`` bytes in all."""
    ihdr = struct.pack(">IIBBBBB", 1024, 1024, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    head += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    filler = bytes(range(256)) * (SERVE_CHUNK // 256)
    yield head[:size]
    left = size - len(head)
    while left > 0:
        piece = filler[: min(left, SERVE_CHUNK)]
        left -= len(piece)
        yield piece


def expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in image_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


# -- the child processes --------------------------------------------------------------------------


def serve(size: int, images: int) -> None:
    """Serve status + media on 127.0.0.1; print the URL; run until stdin closes."""
    origin: list[str] = []  # set once the port is known
    sizes = {REQUEST_ID: size, WARM_ID: min(size, MB)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = self.path.split("/")
            if self.path.startswith("/v2/requests/status/") and parts[-1] in sizes:
                request_id = parts[-1]
                body = json.dumps(
                    {
                        "request_id": request_id,
                        "status": "COMPLETED",
                        "model_id": "gpt-image-2",
                        "error": None,
                        "output": {
                            "media_url": [f"{origin[0]}{media_path(request_id, i)}" for i in range(images)],
                            "media_type": "image/png",
                        },
                        "created_at": "2026-03-31T10:00:00.000Z",
                        "updated_at": "2026-03-31T10:00:15.000Z",
                        "completed_at": "2026-03-31T10:00:15.000Z",
                    }
                ).encode()
                self._send(200, "application/json", len(body), iter([body]))
            elif len(parts) == 4 and parts[1] == "media" and parts[2] in sizes:
                length = sizes[parts[2]]
                self._send(200, "image/png", length, image_chunks(length))
            else:
                self._send(404, "application/json", 2, iter([b"{}"]))

        def _send(self, status: int, content_type: str, length: int, chunks: Iterator[bytes]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(chunk)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    origin.append(f"http://127.0.0.1:{server.server_port}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(origin[0], flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us


def media_path(request_id: str, index: int) -> str:
    return f"/media/{request_id}/{index}.png"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def child(args: list[str], *, read_url: bool) -> Iterator[str]:
    """A long-running helper process (server); stopped by closing its stdin."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        url = proc.stdout.readline().strip() if read_url and proc.stdout else ""
        yield url
    finally:
        with contextlib.suppress(Exception):
            if proc.stdin:
                proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=10)


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- measurement ----------------------------------------------------------------------------------


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class RssSampler:
    """Samples this process's RSS every 5 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self) -> None:
        self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def maxrss_bytes() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


# -- the movers, each run inside a measuring child process ----------------------------------------


def ours(request_id: str, destination: str, dest_conn_id: str | None) -> None:
    from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

    PixazoToObjectStorageOperator(
        task_id="bench_ours",
        request_id=request_id,
        destination=destination,
        dest_conn_id=dest_conn_id,
        write_provenance=True,
        overwrite=True,
        max_concurrency=MAX_CONCURRENCY,
    ).execute({})  # type: ignore[arg-type]


def anchor(request_id: str, prefix: str, images: int) -> None:
    """HttpToS3Operator, once per media URL (it moves one object per task), one after the other."""
    from airflow.providers.amazon.aws.transfers.http_to_s3 import HttpToS3Operator

    for index in range(images):
        HttpToS3Operator(
            task_id=f"bench_anchor_{index}",
            http_conn_id="http_bench",
            endpoint=media_path(request_id, index),
            aws_conn_id="aws_bench",
            s3_bucket="bench",
            s3_key=f"{prefix}/{index}.png",
            replace=True,
        ).execute({})  # type: ignore[arg-type]


def measure(kind: str, root: str, images: int, size: int, repeat: int) -> dict[str, Any]:
    """Warm-up pass, memory pass, then ``repeat`` uninstrumented timing passes, in this fresh process."""
    import logging

    logging.disable(logging.INFO)  # per-file log lines would cost time in ours and not in curl

    def one(request_id: str, tag: str) -> None:
        if kind == "ours-local":
            ours(request_id, os.path.join(root, tag), None)
        elif kind == "ours-s3":
            ours(request_id, f"s3://bench/{tag}", "aws_bench")
        else:
            anchor(request_id, tag, images)

    phases = time_download_phase()
    one(WARM_ID, "warmup")
    baseline_rss, baseline_maxrss = rss(), maxrss_bytes()
    tracemalloc.start()
    with RssSampler() as sampler:
        one(REQUEST_ID, "memory")
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row: dict[str, Any] = {
        "baseline_rss_mb": baseline_rss / MB,
        "peak_rss_growth_mb": (sampler.peak - baseline_rss) / MB,
        "maxrss_growth_mb": (maxrss_bytes() - baseline_maxrss) / MB,
        "heap_peak_mb": heap_peak / MB,
    }
    if kind == "ours-local":
        verify_local(os.path.join(root, "memory"), images, size)
    curl_url = os.environ.get("PIXAZO_BENCH_MEDIA_ORIGIN") if kind == "ours-local" else None
    use_curl = curl_url is not None and shutil.which("curl") is not None
    if use_curl:
        curl_fsync(curl_url, root, "curl-warmup", images, size)  # type: ignore[arg-type]
    load_before = os.getloadavg()[0]
    seconds: list[float] = []
    curl_seconds: list[float] = []
    transfer_seconds: list[float] = []
    cpu: list[float] = []
    curl_cpu: list[float] = []

    def curl_pass(run: int) -> None:
        elapsed, used = curl_fsync(curl_url, root, f"curl{run}", images, size)  # type: ignore[arg-type]
        curl_seconds.append(elapsed)
        curl_cpu.append(used)

    for run in range(repeat):
        tag = f"timed{run}"
        curl_first = use_curl and run % 2 == 0
        if curl_first:
            curl_pass(run)
        phases.clear()
        cpu_before = cpu_seconds(resource.RUSAGE_SELF)
        started = time.perf_counter()
        one(REQUEST_ID, tag)
        seconds.append(time.perf_counter() - started)
        cpu.append(cpu_seconds(resource.RUSAGE_SELF) - cpu_before)
        transfer_seconds.append(sum(phases))
        if use_curl and not curl_first:
            curl_pass(run)
        if kind == "ours-local":
            shutil.rmtree(os.path.join(root, tag))
    row["seconds"] = seconds
    row["mb_per_s"] = images * size / MB / statistics.median(seconds)
    # CPU does not depend on what the neighbours do: the figure to compare on a busy machine.
    row["cpu_s_per_gib"] = statistics.median(cpu) / (images * size / (1024 * MB))
    row["loadavg_1min"] = [load_before, os.getloadavg()[0]]
    if any(transfer_seconds):
        row["transfer_seconds"] = transfer_seconds
        row["transfer_mb_per_s"] = images * size / MB / statistics.median(transfer_seconds)
    if use_curl:
        row["curl_seconds"] = curl_seconds
        row["curl_mb_per_s"] = images * size / MB / statistics.median(curl_seconds)
        row["curl_cpu_s_per_gib"] = statistics.median(curl_cpu) / (images * size / (1024 * MB))
        # Same pass, same neighbours: time ratio curl/ours is our share of curl's throughput.
        row["ratio"] = statistics.median(c / o for c, o in zip(curl_seconds, seconds, strict=True))
    return row


def time_download_phase() -> list[float]:
    """
    Seconds each operator run spends in its download phase (first media request to last file published).

    The rest of a run is per-task set-up that does not grow with the bytes: the connection lookup, the
    status call, the hook's HTTP clients and the sidecar. (The clients share one TLS context per process
    and setting, made only for https, so over this http server they load no CA bundle at all.)
    """
    from airflow_provider_pixazo.transfers import pixazo_to_object_storage as module

    phases: list[float] = []
    real = module.download_all

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            phases.append(time.perf_counter() - started)

    module.download_all = timed  # type: ignore[assignment]
    return phases


def verify_local(root: str, images: int, size: int) -> None:
    sha = expected_sha256(size)
    with open(os.path.join(root, REQUEST_ID, "provenance.json")) as handle:
        records = json.load(handle)["files"]
    assert len(records) == images, "sidecar lists the wrong number of files"
    for index, record in enumerate(records):
        assert os.path.getsize(os.path.join(root, REQUEST_ID, f"{index}.png")) == size, "size mismatch"
        assert record["sha256"] == sha, "sidecar sha256 does not match the served bytes"
        assert record["size"] == size, "sidecar size does not match the served bytes"


def run_measure_child(kind: str, root: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter; return its result row."""
    out = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--measure",
            kind,
            "--root",
            root,
            "--images",
            str(args.images),
            "--size-mb",
            str(args.size_mb),
            "--repeat",
            str(args.repeat),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"{kind} child failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    row = json.loads(lines[-1][len("RESULT ") :])
    print(
        f"{kind:10} memory pass: peak RSS growth {row['peak_rss_growth_mb']:6.1f} MB (psutil), "
        f"{row['maxrss_growth_mb']:6.1f} MB (getrusage), heap peak {row['heap_peak_mb']:5.1f} MB | "
        f"timing passes {', '.join(f'{s:.2f}' for s in row['seconds'])} s -> median {row['mb_per_s']:.1f} MB/s",
        flush=True,
    )
    if "transfer_mb_per_s" in row:
        print(
            f"{'':10} of which download phase: {', '.join(f'{s:.2f}' for s in row['transfer_seconds'])} s "
            f"-> median {row['transfer_mb_per_s']:.1f} MB/s",
            flush=True,
        )
    if "curl_seconds" in row:
        mode = "1 curl" if args.images == 1 else f"{args.images} curls via xargs -P {MAX_CONCURRENCY}"
        print(
            f"{'curl+fsync':10} {mode}, alternating with ours: "
            f"{', '.join(f'{s:.2f}' for s in row['curl_seconds'])} s -> median {row['curl_mb_per_s']:.1f} MB/s; "
            f"ours/curl per pass, median {row['ratio']:.2f}",
            flush=True,
        )
        print(
            f"{'CPU':10} ours {row['cpu_s_per_gib']:.2f} s/GiB, curl+fsync {row['curl_cpu_s_per_gib']:.2f} s/GiB; "
            f"1-min load average {row['loadavg_1min'][0]:.1f} before, {row['loadavg_1min'][1]:.1f} after "
            f"(2 cores: above 2, neighbours compete for the CPU)",
            flush=True,
        )
    elif kind == "ours-local":
        print(f"{'curl+fsync':10} skipped: curl is not on the PATH", flush=True)
        print(f"{'CPU':10} ours {row['cpu_s_per_gib']:.2f} s/GiB", flush=True)
    return row


# -- curl + fsync, inside the measuring process ---------------------------------------------------


def curl_fsync(origin: str, root: str, tag: str, images: int, size: int) -> tuple[float, float]:
    """
    (seconds, CPU seconds) for ``curl -s -o FILE URL`` then ``fsync(FILE)`` of every image.

    One curl, or ``xargs -P MAX_CONCURRENCY`` curls; then the files are fsynced by as many threads (curl
    itself never fsyncs). CPU counts the curl processes and the fsync calls. The files are checked for
    size and removed.
    """
    curl = shutil.which("curl")
    assert curl is not None
    directory = os.path.join(root, tag)
    os.makedirs(directory)
    pairs = [(os.path.join(directory, f"{i}.png"), f"{origin}{media_path(REQUEST_ID, i)}") for i in range(images)]
    cpu_before = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if images == 1:
        subprocess.run([curl, "-s", "-o", pairs[0][0], pairs[0][1]], check=True)
    else:
        subprocess.run(
            ["xargs", "-P", str(MAX_CONCURRENCY), "-n", "2", curl, "-s", "-o"],
            input="".join(f"{path} {link}\n" for path, link in pairs),
            text=True,
            check=True,
        )
    with concurrent.futures.ThreadPoolExecutor(MAX_CONCURRENCY) as pool:
        list(pool.map(fsync_path, [path for path, _ in pairs]))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before
    for path, _ in pairs:
        assert os.path.getsize(path) == size, "curl wrote the wrong size"
    shutil.rmtree(directory)
    return elapsed, cpu


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the report -----------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str = "{:.1f}") -> str:
        return "n/a" if value is None else fmt.format(value)

    lines = [
        "| case | size | ours MB/s (whole task) | of which download phase MB/s | curl+fsync MB/s "
        "| ours/(curl+fsync) (goal >= 0.8) | ours peak RSS growth MB (goal <= 16) | anchor peak RSS growth MB "
        "| anchor MB/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['case']} | {row['size']} | {num(row['ours_mb_per_s'])} "
            f"| {num(row.get('ours_transfer_mb_per_s'))} | {num(row.get('curl_mb_per_s'))} "
            f"| {num(row.get('ratio'), '{:.2f}')} | {num(row['ours_peak_rss_growth_mb'])} "
            f"| {num(row.get('anchor_peak_rss_growth_mb'))} | {num(row.get('anchor_mb_per_s'))} |"
        )
    return "\n".join(lines)


def setup_s3(port: int) -> Any:
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["AIRFLOW_CONN_AWS_BENCH"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="bench")
    return s3


def verify_s3(s3: Any, prefix: str, images: int, size: int, *, sidecar: bool) -> None:
    for index in range(images):
        key = f"{prefix}/{REQUEST_ID}/{index}.png" if sidecar else f"{prefix}/{index}.png"
        assert s3.head_object(Bucket="bench", Key=key)["ContentLength"] == size, f"S3 size mismatch: {key}"
    if sidecar:
        body = s3.get_object(Bucket="bench", Key=f"{prefix}/{REQUEST_ID}/provenance.json")["Body"].read()
        assert all(f["sha256"] == expected_sha256(size) for f in json.loads(body)["files"]), "S3 sha256 mismatch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200, help="size of each served image in MiB (default 200)")
    parser.add_argument("--images", type=int, default=1, help="media URLs the request lists (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes; the median counts (default 3)")
    parser.add_argument("--s3", action="store_true", help="also copy to a moto S3 server, beside HttpToS3Operator")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("ours-local", "ours-s3", "anchor-s3"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mb * MB
    if args.serve:
        serve(size, args.images)
        return
    if args.measure:
        row = measure(args.measure, args.root, args.images, size, args.repeat)
        print("RESULT " + json.dumps(row), flush=True)
        return

    total = f"{args.images} x {args.size_mb} MiB" if args.images > 1 else f"{args.size_mb} MiB"
    rows: list[dict[str, Any]] = []
    server_args = ["--serve", "--size-mb", str(args.size_mb), "--images", str(args.images)]
    with child([os.path.abspath(__file__), *server_args], read_url=True) as url:
        os.environ["AIRFLOW_CONN_PIXAZO_DEFAULT"] = json.dumps(
            {"conn_type": "pixazo", "host": url, "password": "sk-bench-key"}
        )
        port = int(url.rsplit(":", 1)[1])
        os.environ["AIRFLOW_CONN_HTTP_BENCH"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
        )
        print(
            f"Serving {total} PNG from {url}; chunk size 1 MiB, max_concurrency {MAX_CONCURRENCY}, "
            f"{args.repeat} timing passes",
            flush=True,
        )
        os.environ["PIXAZO_BENCH_MEDIA_ORIGIN"] = url
        with tempfile.TemporaryDirectory(prefix="pixazo-bench-") as root:
            local = run_measure_child("ours-local", root, args)
        rows.append(
            {
                "case": "local disk",
                "size": total,
                "ours_mb_per_s": local["mb_per_s"],
                "ours_transfer_mb_per_s": local.get("transfer_mb_per_s"),
                "curl_mb_per_s": local.get("curl_mb_per_s"),
                "curl_mode": "curl -s -o, then fsync; " + ("1 curl" if args.images == 1 else "xargs -P 4"),
                "ratio": local.get("ratio"),
                "ours_peak_rss_growth_mb": local["peak_rss_growth_mb"],
                "ours": local,
            }
        )

        if args.s3:
            moto_port = free_port()
            with child(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], read_url=False):
                wait_for_port(moto_port)
                s3 = setup_s3(moto_port)
                ours_s3 = run_measure_child("ours-s3", "", args)
                verify_s3(s3, "memory", args.images, size, sidecar=True)
                anchor_s3 = run_measure_child("anchor-s3", "", args)
                verify_s3(s3, "memory", args.images, size, sidecar=False)
                print("s3         object sizes and sha256 verified", flush=True)
            rows.append(
                {
                    "case": "S3 (moto)",
                    "size": total,
                    "ours_mb_per_s": ours_s3["mb_per_s"],
                    "ours_peak_rss_growth_mb": ours_s3["peak_rss_growth_mb"],
                    "anchor_peak_rss_growth_mb": anchor_s3["peak_rss_growth_mb"],
                    "anchor_mb_per_s": anchor_s3["mb_per_s"],
                    "ours": ours_s3,
                    "anchor": anchor_s3,
                }
            )

    print()
    print(table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"images": args.images, "size_mb": args.size_mb, "repeat": args.repeat, "rows": rows}, handle)
            handle.write("\n")


if __name__ == "__main__":
    main()
