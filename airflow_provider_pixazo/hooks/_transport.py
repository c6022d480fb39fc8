"""
A small keep-alive HTTP/1.1 transport for the triggers' shared async client.

Thousands of triggers in one triggerer poll the same status endpoint. httpcore's connection pool
re-scans every pooled connection on each request (a ``poll()`` per connection, growing with the pool
and the queue of waiting requests), so its CPU per poll grows with the number of waiting triggers;
measured here, 10 000 triggers never finished. This transport keeps idle connections in a
last-in-first-out list per origin and bounds concurrency with a semaphore, so a poll costs the same
with 10 or 10 000 triggers waiting. Parsing is h11's (the parser httpcore itself uses): chunked
bodies, ``Connection: close`` and keep-alive cycles are handled by it, and httpx above still decodes
``Content-Encoding``, applies auth and builds the ``httpx.Response``.

Bodies are read whole: status answers are a few hundred bytes. Media downloads never use this
transport (they stream through a plain sync client).
"""

from __future__ import annotations

import asyncio
import ssl
import time

import h11
import httpx

__all__ = ["KeepAliveTransport"]

_READ_SIZE = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class _Connection:
    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """
    An ``httpx`` async transport: HTTP/1.1 keep-alive on asyncio streams, bounded and O(1) per request.

    :param max_connections: requests in flight at once (and so connections open at once).
    :param keepalive_expiry: seconds an idle connection is kept.
    """

    def __init__(self, *, max_connections: int = 16, keepalive_expiry: float = 120.0) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._keepalive_expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None
        #: TCP connections opened so far (read by the benchmarks and tests).
        self.connections_opened = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on an idle connection to its origin, or a new one, and read the answer."""
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as err:
            raise httpx.PoolTimeout("Timed out waiting for a free connection slot", request=request) from err
        try:
            conn = self._checkout(origin)
            if conn is not None and request.method in _IDEMPOTENT:
                try:
                    return await self._exchange(conn, request, body, origin, timeouts)
                except _StaleConnectionError:
                    pass  # the server closed it while idle: try once more on a new connection
            elif conn is not None:
                # Never resend a non-idempotent request on a connection that may be stale.
                conn.close()
            conn = await self._connect(request, origin, timeouts)
            try:
                return await self._exchange(conn, request, body, origin, timeouts)
            except _StaleConnectionError as err:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from err
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _checkout(self, origin: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self._keepalive_expiry and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _connect(
        self, request: httpx.Request, origin: tuple[bytes, bytes, int], timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == b"https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                reader, writer = await asyncio.open_connection(
                    host.decode("ascii"), port, ssl=context, limit=_READ_SIZE
                )
        except TimeoutError as err:
            raise httpx.ConnectTimeout(f"Timed out connecting to {request.url.host}", request=request) from err
        except OSError as err:
            raise httpx.ConnectError(str(err) or type(err).__name__, request=request) from err
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        body: bytes,
        origin: tuple[bytes, bytes, int],
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        headers = list(request.headers.raw)
        if body and "content-length" not in request.headers:
            headers.append((b"Content-Length", str(len(body)).encode()))
        received_any = False
        try:
            out = conn.h11.send(h11.Request(method=request.method, target=request.url.raw_path, headers=headers))
            if body:
                out += conn.h11.send(h11.Data(data=body))
            out += conn.h11.send(h11.EndOfMessage())
            conn.writer.write(out)
            async with asyncio.timeout(timeouts.get("read")):
                await conn.writer.drain()
                response: h11.Response | None = None
                chunks: list[bytes] = []
                while True:
                    event = conn.h11.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.reader.read(_READ_SIZE)
                        if not data and not received_any:
                            raise _StaleConnectionError
                        received_any = True
                        conn.h11.receive_data(data)
                    elif isinstance(event, h11.Response):
                        response = event
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=request)
        except _StaleConnectionError:
            conn.close()
            raise
        except TimeoutError as err:
            conn.close()
            raise httpx.ReadTimeout(f"Timed out reading from {request.url.host}", request=request) from err
        except h11.ProtocolError as err:
            conn.close()
            raise httpx.RemoteProtocolError(str(err), request=request) from err
        except (ConnectionError, OSError) as err:
            conn.close()
            if not received_any:
                raise _StaleConnectionError from err
            raise httpx.ReadError(str(err) or type(err).__name__, request=request) from err
        except BaseException:
            conn.close()
            raise
        assert response is not None
        self._release(conn, origin)
        return httpx.Response(
            response.status_code,
            headers=list(response.headers),
            content=b"".join(chunks),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(response.reason)},
        )

    def _release(self, conn: _Connection, origin: tuple[bytes, bytes, int]) -> None:
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()


class _StaleConnectionError(Exception):
    """A kept-alive connection was closed by the server before any byte of the answer."""
