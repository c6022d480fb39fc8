"""Fixtures for the transfer tests: a real moto S3 server and a tiny scriptable media server."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

AWS_CONN_ID = "aws_test"


# -- moto ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API (moto's threaded server) on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _forget_cached_store(conn_id: str) -> None:
    # ObjectStoragePath caches one filesystem per (protocol, conn_id) for the process.
    from airflow.sdk.io import store

    for alias in [a for a in store._STORE_CACHE if a.endswith(f"-{conn_id}")]:
        store._STORE_CACHE.pop(alias, None)


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the moto server, and the ``aws_test`` connection pointing at it."""
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    _forget_cached_store(AWS_CONN_ID)
    bucket = f"pixazo-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        _forget_cached_store(AWS_CONN_ID)


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, to inspect what the operator wrote."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# -- a scriptable HTTP server ----------------------------------------------------------------------


@dataclass
class Route:
    """One canned answer. ``send_bytes`` < len(body) sends only that much, then drops the connection."""

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    send_bytes: int | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class MediaServer:
    """
    A gateway stand-in on 127.0.0.1 whose routes the test sets: status JSON and raw media bytes.

    Unlike the emulator it can misbehave at the byte level (short bodies, wrong magic bytes).
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.seen.append(Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                    route = server.routes.get(self.path)
                if route is None:
                    route = Route(b'{"error": "Not Found", "message": "no route"}', status=404)
                self.send_response(route.status)
                self.send_header("Content-Length", str(len(route.body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.send_bytes is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(route.body[: route.send_bytes] if route.send_bytes is not None else route.body)
                self.wfile.flush()
                if route.send_bytes is not None:
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def completed(
        self, request_id: str, media: list[bytes], *, media_type: str = "image/png", **route: Any
    ) -> list[str]:
        """Serve a COMPLETED status for ``request_id`` and its media on this origin; return the media URLs."""
        urls = []
        for index, body in enumerate(media):
            path = f"/media/{request_id}/{index}.png"
            self.routes[path] = Route(body, headers={"Content-Type": media_type}, **route)
            urls.append(f"{self.url}{path}?sig=secret-signature")
            self.routes[f"{path}?sig=secret-signature"] = self.routes[path]
        self.status(request_id, "COMPLETED", urls=urls, media_type=media_type)
        return urls

    def status(
        self,
        request_id: str,
        status: str,
        *,
        urls: list[str] | None = None,
        media_type: str | None = None,
        error: str | None = None,
    ) -> None:
        body = {
            "request_id": request_id,
            "status": status,
            "model_id": "gpt-image-2",
            "error": error,
            "output": {"media_url": urls or [], "media_type": media_type} if urls is not None else None,
            "created_at": "2026-03-31T10:00:00.000Z",
            "updated_at": "2026-03-31T10:00:15.000Z",
            "completed_at": "2026-03-31T10:00:15.000Z" if status == "COMPLETED" else None,
        }
        self.routes[f"/v2/requests/status/{request_id}"] = Route(
            json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def media_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaServer]:
    """A :class:`MediaServer`, with ``pixazo_default`` pointing at it."""
    server = MediaServer()
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIXAZO_DEFAULT",
        json.dumps({"conn_type": "pixazo", "host": server.url, "password": "sk-test-SECRET-123"}),
    )
    try:
        yield server
    finally:
        server.stop()
