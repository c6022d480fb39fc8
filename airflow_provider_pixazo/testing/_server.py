"""HTTP/1.1 plumbing of the emulator: a keep-alive threading server around a plain function.

The server knows nothing about Pixazo: it turns each request into an :class:`HttpRequest`, asks
the application for an :class:`HttpResponse` and writes it (always with ``Content-Length``, so
connections can be kept alive), or drops the connection when told to. Given an
``ssl.SSLContext`` it serves https instead; the TLS handshake runs in the connection's own thread,
so a client that refuses the certificate never stalls the accept loop.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class HttpRequest:
    """One request as the application sees it.

    :param method: ``GET``, ``POST``...
    :param path: Request target, query string included.
    :param headers: Headers with lower-case names.
    :param body: Raw body.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    """What to answer.

    :param status: Status code.
    :param body: Body bytes (not sent for ``HEAD``, but still counted in ``Content-Length``).
    :param headers: Extra headers.
    :param drop: Close the connection without answering at all.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
        """A JSON answer."""
        return cls(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


Application = Callable[[HttpRequest], HttpResponse]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffer the answer and send it in one go (handle_one_request flushes after each request):
    # headers and body in separate small writes meet the peer's delayed ACK and cost ~40 ms.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def setup(self) -> None:
        self._tls_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                # The client refused our certificate (or spoke plain http): nothing to serve.
                self._tls_failed = True
                self.server.tls_handshake_failed()
        super().setup()
        self.server.connection_opened(self.connection)

    def handle(self) -> None:
        if not self._tls_failed:
            super().handle()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Silent on purpose: test output stays clean, and nothing request-derived (like a key)
        # can end up in a log.
        return

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "Malformed request body")
            return
        request = HttpRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.application(request)
        except Exception:  # an emulator bug must answer 500, not kill the connection thread
            response = HttpResponse.json(500, {"error": "Internal Server Error", "message": "emulator failure"})
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threading HTTP/1.1 server that counts connections and can close them all on stop.

    :param address: ``(host, port)``; port 0 picks a free one.
    :param application: Turns each request into a response.
    :param ssl_context: a server-side context to serve https with; None for plain http.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], application: Application, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.application = application
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.connections_opened = 0
        #: TLS handshakes that failed (a client that did not trust the certificate, say).
        self.tls_failures = 0
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.ssl_context is not None:
            # Handshake later, in the connection's thread (see _Handler.setup).
            connection = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def tls_handshake_failed(self) -> None:
        """Count a failed TLS handshake."""
        with self._connections_lock:
            self.tls_failures += 1

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds on
        # machines with slow reverse DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def connection_opened(self, connection: socket.socket) -> None:
        """Count and track a new connection."""
        with self._connections_lock:
            self.connections_opened += 1
            self._connections.add(connection)

    def connection_closed(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down every open connection, waking handler threads blocked on keep-alive reads."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # Already closed by the peer: nothing to wake.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
