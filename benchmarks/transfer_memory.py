"""
Memory and throughput of PixazoToObjectStorageOperator on one big image.

A child process serves a Pixazo status endpoint and one ``--size-mb`` "PNG" (a real PNG signature and
IHDR chunk, then filler bytes), streamed from a generator, never held in memory. This process copies it
to a local directory (and to a moto S3 server in another child process with ``--s3``) and prints the
peak RSS growth (psutil, sampled every 5 ms; ``getrusage`` max RSS), the Python heap peak (tracemalloc)
beside the file size and the throughput. Servers run in child processes so only the transfer's memory
is measured.

    PYTHONPATH=. .venv/bin/python benchmarks/transfer_memory.py --size-mb 200 [--s3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import socket
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


def serve(size: int) -> None:
    """Serve status + media on 127.0.0.1; print the URL; run until stdin closes."""
    origin: list[str] = []  # set once the port is known

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            base = origin[0]
            if self.path == f"/v2/requests/status/{REQUEST_ID}":
                body = json.dumps(
                    {
                        "request_id": REQUEST_ID,
                        "status": "COMPLETED",
                        "model_id": "gpt-image-2",
                        "error": None,
                        "output": {"media_url": [f"{base}/media/{REQUEST_ID}/0.png"], "media_type": "image/png"},
                        "created_at": "2026-03-31T10:00:00.000Z",
                        "updated_at": "2026-03-31T10:00:15.000Z",
                        "completed_at": "2026-03-31T10:00:15.000Z",
                    }
                ).encode()
                self._send(200, "application/json", len(body), iter([body]))
            elif self.path == f"/media/{REQUEST_ID}/0.png":
                self._send(200, "image/png", size, image_chunks(size))
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def child(args: list[str], *, read_url: bool) -> Iterator[str]:
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


def run_transfer(destination: str, dest_conn_id: str | None, size: int, label: str) -> None:
    from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

    op = PixazoToObjectStorageOperator(
        task_id=f"bench_{label}",
        request_id=REQUEST_ID,
        destination=destination,
        dest_conn_id=dest_conn_id,
        write_provenance=True,
        overwrite=True,
    )
    baseline_rss, baseline_maxrss = rss(), maxrss_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    with RssSampler() as sampler:
        uris = op.execute({})
    elapsed = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        f"{label:6} {size / MB:8.0f} MB in {elapsed:6.2f} s = {size / MB / elapsed:7.1f} MB/s | "
        f"peak RSS growth {(sampler.peak - baseline_rss) / MB:6.1f} MB (psutil), "
        f"{(maxrss_bytes() - baseline_maxrss) / MB:6.1f} MB (getrusage max RSS) | "
        f"Python heap peak {heap_peak / MB:5.1f} MB (tracemalloc) | {uris[0]}",
        flush=True,
    )


def verify_local(root: str, size: int, sha: str) -> None:
    path = os.path.join(root, REQUEST_ID, "0.png")
    with open(os.path.join(root, REQUEST_ID, "provenance.json")) as handle:
        record = json.load(handle)["files"][0]
    assert os.path.getsize(path) == size, "size mismatch"
    assert record["sha256"] == sha, "sidecar sha256 does not match the served bytes"
    assert record["size"] == size, "sidecar size does not match the served bytes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200, help="size of the served image in MiB (default 200)")
    parser.add_argument("--s3", action="store_true", help="also copy to a moto S3 server")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mb * MB
    if args.serve:
        serve(size)
        return

    sha = expected_sha256(size)
    with child([os.path.abspath(__file__), "--serve", "--size-mb", str(args.size_mb)], read_url=True) as url:
        os.environ["AIRFLOW_CONN_PIXAZO_DEFAULT"] = json.dumps(
            {"conn_type": "pixazo", "host": url, "password": "sk-bench-key"}
        )
        print(f"Serving a {args.size_mb} MiB PNG from {url}; chunk size 1 MiB, max_concurrency 4")
        with tempfile.TemporaryDirectory(prefix="pixazo-bench-") as root:
            # Warm-up: imports, connection parsing and thread pool, so they are not counted as growth.
            run_transfer(os.path.join(root, "warmup"), None, size, "warmup")
            run_transfer(os.path.join(root, "local"), None, size, "local")
            verify_local(os.path.join(root, "local"), size, sha)
            print("local  sha256 and size verified against the served bytes")

        if args.s3:
            port = free_port()
            with child(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], read_url=False):
                wait_for_port(port)
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
                run_transfer("s3://bench/warm", "aws_bench", size, "s3warm")
                run_transfer("s3://bench/images", "aws_bench", size, "s3")
                head = s3.head_object(Bucket="bench", Key=f"images/{REQUEST_ID}/0.png")
                assert head["ContentLength"] == size, "S3 object size mismatch"
                sidecar = json.loads(
                    s3.get_object(Bucket="bench", Key=f"images/{REQUEST_ID}/provenance.json")["Body"].read()
                )
                assert sidecar["files"][0]["sha256"] == sha, "S3 sidecar sha256 mismatch"
                print(f"s3     object size and sha256 verified ({head['ContentType']})")


if __name__ == "__main__":
    main()
