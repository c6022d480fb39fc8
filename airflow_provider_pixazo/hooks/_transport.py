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

Bodies are read whole: status answers are a few hundred bytes (the status path refuses one over
:data:`._status_wire.MAX_BODY`). Media downloads never use this transport (they stream through a
plain sync client).

The status poller has a shorter path, :meth:`KeepAliveTransport.get_status`: a prebuilt GET
(:mod:`._status_wire`) written as bytes on the same kept-alive connections, the usual answer
(``Content-Length`` body) read without h11 or an ``httpx.Response``, anything unusual handed to h11
mid-way, and one read timer per connection (re-armed only when it fires early) instead of an
``asyncio.timeout`` per request. Routes, proxies, TLS, slots and the stale-connection retry are the
ones below; measured, a poll on a warm connection costs about a fifth of the general path's CPU.

It keeps what httpx would give a client made without it (httpx ignores environment proxies as soon
as a transport is passed in, so it has to be done here, below any client):

* proxies, chosen per origin by :class:`~airflow_provider_pixazo.hooks._proxy.ProxyResolver` with
  httpx's rules (explicit ``proxy``, else ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` /
  ``NO_PROXY``), once per origin, not per request: an ``http://`` origin is sent to the proxy in
  absolute form, an ``https://`` one through a ``CONNECT`` tunnel and TLS with the origin inside it,
  ``Proxy-Authorization`` taken from the proxy URL's userinfo;
* TLS verification from ``verify`` (:func:`~airflow_provider_pixazo.hooks._tls.ssl_context`);
* httpx's errors: a refused connect (to the origin or the proxy) is ``httpx.ConnectError``, a
  ``CONNECT`` the proxy refuses is ``httpx.ProxyError``, an untrusted certificate a ``ConnectError``
  caused by :class:`ssl.SSLCertVerificationError`.

Everything routing costs is paid when a connection is opened; a request on a kept-alive connection
costs the same with or without a proxy.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import h11
import httpx

from airflow_provider_pixazo.hooks._proxy import ProxyResolver, ProxyRoute
from airflow_provider_pixazo.hooks._status_wire import MAX_BODY, MAX_HEAD, StatusAnswer, StatusGet, parse_head
from airflow_provider_pixazo.hooks._tls import ssl_context

__all__ = ["KeepAliveTransport"]

_READ_SIZE = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


Origin = tuple[bytes, bytes, int]


# Seconds aclose() waits for closing connections before it aborts them.
_CLOSE_GRACE = 1.0
_INF = float("inf")


class _Connection:
    __slots__ = (
        "absolute_form",
        "deadline",
        "extra_block",
        "extra_headers",
        "h11",
        "idle_since",
        "reader",
        "timed_out",
        "watchdog",
        "writer",
    )

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        absolute_form: bool = False,
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        #: Requests go out as ``GET http://host/path`` (plain http through a forwarding proxy).
        self.absolute_form = absolute_form
        #: Headers every request on this connection carries (``Proxy-Authorization`` to a forwarding proxy).
        self.extra_headers = extra_headers
        self.extra_block = b"".join(b"%s: %s\r\n" % pair for pair in extra_headers)
        # The status path's read deadline (loop time; inf when no read is under way) and the one timer
        # that enforces it: set once, moved on only when it fires early, never one timer per request.
        self.deadline = _INF
        self.watchdog: asyncio.TimerHandle | None = None
        self.timed_out = False

    def arm(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        """
        Start an exchange bounded by ``timeout`` seconds (None: unbounded).

        One deadline covers the whole exchange, from writing the request to the answer's last byte;
        httpx's read timeout instead restarts on every read, so a server that dribbles an answer out
        byte by byte is cut off here where httpx would wait on. For a status answer of a few hundred
        bytes the difference is moot, and it is the bound a waiting trigger wants.

        The timer never fires late. It is set at the first deadline and, when it fires early, moved
        to the current one, so it could be late only if a deadline earlier than its own were set
        meanwhile, which needs a shorter timeout on the same connection. The timeout is part of the
        shared client's cache key (``ConnectionSettings.cache_key``), so one transport's status GETs
        all carry the same one and each deadline is later than the one before; should a caller ever
        mix timeouts on one transport, the timer is brought forward here (one comparison per poll).
        """
        if timeout is None:
            return
        self.deadline = deadline = loop.time() + timeout
        if self.watchdog is None:
            self.watchdog = loop.call_at(deadline, self._watch, loop)
        elif self.watchdog.when() > deadline:
            self.watchdog.cancel()
            self.watchdog = loop.call_at(deadline, self._watch, loop)

    def disarm(self) -> None:
        """The read is over (its timer stays, and lapses when it fires on an idle connection)."""
        self.deadline = _INF

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watchdog = None
        if self.deadline == _INF:
            return
        if loop.time() >= self.deadline:
            # Aborting wakes the pending read or drain at once; the reader sees timed_out.
            self.timed_out = True
            self.writer.transport.abort()
        else:
            self.watchdog = loop.call_at(self.deadline, self._watch, loop)

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.writer.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """
    An ``httpx`` async transport: HTTP/1.1 keep-alive on asyncio streams, bounded and O(1) per request.

    :param max_connections: requests in flight at once (and so connections open at once).
    :param keepalive_expiry: seconds an idle connection is kept.
    :param verify: TLS verification, as httpx's ``verify``: True, False or a CA bundle path.
    :param proxy: an explicit proxy URL for every request (httpx's ``proxy``); None to follow the
        environment.
    :param trust_env: read ``*_PROXY`` variables when no explicit proxy is given (httpx's default).
    """

    def __init__(
        self,
        *,
        max_connections: int = 16,
        keepalive_expiry: float = 120.0,
        verify: bool | str = True,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._keepalive_expiry = keepalive_expiry
        self._verify = verify
        self._proxy_ssl: ssl.SSLContext | None = None
        self._proxies = ProxyResolver(proxy, trust_env=trust_env)
        self._routes: dict[Origin, ProxyRoute | None] = {}
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

    async def get_status(self, get: StatusGet) -> StatusAnswer:
        """
        Send a prebuilt status GET (see :mod:`._status_wire`) and read its answer: the status poller's path.

        Same connections, routes, proxies, TLS, slots and stale-connection retry as
        :meth:`handle_async_request`, without building an ``httpx.Request`` or ``httpx.Response``:
        the request bytes are the template's, and the usual answer (``Content-Length`` body) is read
        by :func:`._status_wire.parse_head`; anything else goes to h11, as on the general path.
        Errors are httpx's (naming the URL, never the key). The wait for a free slot is not timed:
        it is bounded by the slots' own read timeouts.
        """
        origin = get.template.origin
        await self._slots.acquire()
        try:
            conn = self._checkout(origin)
            if conn is not None:
                try:
                    return await self._status_exchange(conn, get, origin)
                except _StaleConnectionError:
                    pass  # the server closed it while idle: a GET may go once more on a new connection
            conn = await self._connect(get.as_request(), origin, get.template.timeouts)
            try:
                return await self._status_exchange(conn, get, origin)
            except _StaleConnectionError as err:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=get.as_request()
                ) from err
        finally:
            self._slots.release()

    async def _status_exchange(self, conn: _Connection, get: StatusGet, origin: Origin) -> StatusAnswer:
        loop = asyncio.get_running_loop()
        reader, writer = conn.reader, conn.writer
        buf = b""
        conn.arm(loop, get.template.timeouts.get("read"))
        try:
            writer.write(get.wire(conn.absolute_form, conn.extra_block))
            if writer.transport.get_write_buffer_size():
                await writer.drain()
            buf = await reader.read(_READ_SIZE)
            if not buf:
                raise _StaleConnectionError
            while True:
                end = buf.find(b"\r\n\r\n")
                if end > MAX_HEAD or (end < 0 and len(buf) > MAX_HEAD):
                    raise httpx.RemoteProtocolError(
                        f"Response head longer than {MAX_HEAD} bytes", request=get.as_request()
                    )
                if end >= 0 or b"\n\n" in buf or b"\n\r\n" in buf:
                    break
                more = await reader.read(_READ_SIZE)
                if not more:
                    raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=get.as_request())
                buf += more
            head = parse_head(buf[:end]) if end >= 0 else None
            if head is None:
                # Unusual (chunked, Connection: close, 1xx, no length, bad or oversized head): h11 reads
                # it, or refuses it, exactly as it would on the general path.
                return await self._status_by_h11(conn, get, buf, origin)
            if head.length > MAX_BODY:
                raise _too_large(get.as_request(), MAX_BODY)
            total = end + 4 + head.length
            while len(buf) < total:
                more = await reader.read(_READ_SIZE)
                if not more:
                    raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=get.as_request())
                buf += more
        except _StaleConnectionError:
            conn.close()
            if conn.timed_out:
                raise self._read_timeout(get) from None
            raise
        except (ConnectionError, OSError) as err:
            conn.close()
            if conn.timed_out:
                raise self._read_timeout(get) from err
            if not buf:
                raise _StaleConnectionError from err
            raise httpx.ReadError(str(err) or type(err).__name__, request=get.as_request()) from err
        except httpx.RemoteProtocolError:
            conn.close()
            if conn.timed_out:
                raise self._read_timeout(get) from None
            raise
        except BaseException:
            conn.close()
            raise
        finally:
            conn.disarm()
        if len(buf) == total:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()  # bytes beyond the answer: the connection is out of step, never reuse it
        return StatusAnswer(head.status_code, head.headers, buf[end + 4 : total], head.reason)

    async def _status_by_h11(self, conn: _Connection, get: StatusGet, buf: bytes, origin: Origin) -> StatusAnswer:
        # The request went out as prebuilt bytes: tell h11 it was sent (its bytes are the same), then
        # give it what was read so far. Errors propagate to _status_exchange's handlers.
        headers = [*get.template.headers, *conn.extra_headers]
        conn.h11.send(h11.Request(method=b"GET", target=get.target(conn.absolute_form), headers=headers))
        conn.h11.send(h11.EndOfMessage())
        conn.h11.receive_data(buf)
        response, body = await _read_by_h11(conn, get.as_request, max_body=MAX_BODY)
        self._release(conn, origin)
        return StatusAnswer(response.status_code, list(response.headers), body, bytes(response.reason))

    @staticmethod
    def _read_timeout(get: StatusGet) -> httpx.ReadTimeout:
        host = get.template.origin[1].decode("ascii")
        return httpx.ReadTimeout(f"Timed out reading from {host}", request=get.as_request())

    async def aclose(self) -> None:
        """Close every idle connection, and wait (briefly) until they are closed."""
        conns = [conn for idle in self._idle.values() for conn in idle]
        writers = [conn.writer for conn in conns]
        self._idle.clear()
        for conn in conns:
            conn.close()
        # A TLS connection closes only after its close_notify exchange: without this wait, a loop that
        # ends right after aclose() leaves the socket to the garbage collector (a ResourceWarning).
        try:
            async with asyncio.timeout(_CLOSE_GRACE):
                await asyncio.gather(*(writer.wait_closed() for writer in writers), return_exceptions=True)
        except TimeoutError:
            for writer in writers:
                writer.transport.abort()

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self._keepalive_expiry and _quiet(conn.reader):
                return conn
            conn.close()
        return None

    def _route(self, url: httpx.URL, origin: Origin) -> ProxyRoute | None:
        # Resolved once per origin: the environment was read when the transport was made, and a
        # waiting trigger must not pay pattern matching on every poll.
        if origin not in self._routes:
            self._routes[origin] = self._proxies.route_for(url)
        return self._routes[origin]

    def _origin_ssl(self, request: httpx.Request) -> ssl.SSLContext:
        # Asked for on every new connection, not kept: ssl_context() is cached per CA file version, so
        # this costs a stat, and a CA bundle rotated on disk reaches new connections (as the TLS module
        # promises) instead of waiting for the triggerer to restart. New connections are rare.
        try:
            return ssl_context(self._verify)
        except OSError as err:  # the CA bundle is gone or unreadable now (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"Could not load the CA certificates for TLS: {err}", request=request) from err

    async def _connect(self, request: httpx.Request, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
        scheme, host, port = origin
        route = self._route(request.url, origin)
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                if route is None:
                    context = self._origin_ssl(request) if scheme == b"https" else None
                    reader, writer = await self._open(host.decode("ascii"), port, context, request)
                    conn = _Connection(reader, writer)
                else:
                    conn = await self._connect_via(route, request, origin)
        except TimeoutError as err:
            where = request.url.host if route is None else f"{request.url.host} through proxy {route.url}"
            raise httpx.ConnectTimeout(f"Timed out connecting to {where}", request=request) from err
        self.connections_opened += 1
        return conn

    async def _open(
        self, host: str, port: int, context: ssl.SSLContext | None, request: httpx.Request
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(host, port, ssl=context, limit=_READ_SIZE)
        except OSError as err:  # refused, unreachable, and ssl errors (SSLCertVerificationError is one)
            raise httpx.ConnectError(str(err) or type(err).__name__, request=request) from err

    async def _connect_via(self, route: ProxyRoute, request: httpx.Request, origin: Origin) -> _Connection:
        scheme, host, port = origin
        proxy_context = None
        if route.url.scheme == "https":
            # TLS to the proxy itself is checked against the default CAs (SSL_CERT_FILE / SSL_CERT_DIR
            # honoured), not ``verify``, which is about the gateway; httpx has no setting for it either.
            if self._proxy_ssl is None:
                self._proxy_ssl = httpx.create_ssl_context()
            proxy_context = self._proxy_ssl
        reader, writer = await self._open(*route.address, proxy_context, request)
        auth = ((b"Proxy-Authorization", route.authorization),) if route.authorization else ()
        if scheme == b"http":
            return _Connection(reader, writer, absolute_form=True, extra_headers=auth)
        try:
            await self._tunnel(reader, writer, host, port, auth, request)
            try:
                await writer.start_tls(self._origin_ssl(request), server_hostname=host.decode("ascii"))
            except OSError as err:
                raise httpx.ConnectError(str(err) or type(err).__name__, request=request) from err
        except BaseException:
            writer.close()
            raise
        return _Connection(reader, writer)

    @staticmethod
    async def _tunnel(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: bytes,
        port: int,
        auth: tuple[tuple[bytes, bytes], ...],
        request: httpx.Request,
    ) -> None:
        """Ask the proxy for a ``CONNECT`` tunnel to ``host:port``, as httpcore does."""
        target = b"%s:%d" % (b"[%s]" % host if b":" in host else host, port)  # an IPv6 literal gets brackets
        conn = h11.Connection(h11.CLIENT)
        headers = [(b"Host", target), (b"Accept", b"*/*"), *auth]
        try:
            writer.write(conn.send(h11.Request(method=b"CONNECT", target=target, headers=headers)))
            await writer.drain()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(_READ_SIZE))
                elif isinstance(event, h11.Response):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise httpx.ProxyError("Proxy closed the connection before answering CONNECT", request=request)
        except h11.ProtocolError as err:
            raise httpx.ProxyError(f"Proxy answered CONNECT with bad HTTP: {err}", request=request) from err
        except (ConnectionError, OSError) as err:
            raise httpx.ProxyError(str(err) or type(err).__name__, request=request) from err
        if not 200 <= event.status_code < 300:
            raise httpx.ProxyError(f"{event.status_code} {event.reason.decode('latin-1')}", request=request)

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        body: bytes,
        origin: Origin,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        url = request.url
        headers = list(request.headers.raw)
        if body and "content-length" not in request.headers:
            headers.append((b"Content-Length", str(len(body)).encode()))
        target = url.raw_path
        if conn.absolute_form:
            target = b"%s://%s%s" % (url.raw_scheme, url.netloc, target)
            headers.extend(conn.extra_headers)
        received_any = False
        try:
            out = conn.h11.send(h11.Request(method=request.method, target=target, headers=headers))
            if body:
                out += conn.h11.send(h11.Data(data=body))
            out += conn.h11.send(h11.EndOfMessage())
            conn.writer.write(out)
            async with asyncio.timeout(timeouts.get("read")):
                await conn.writer.drain()
                # The answer's first bytes: none at all means the server had closed the kept connection.
                data = await conn.reader.read(_READ_SIZE)
                if not data:
                    raise _StaleConnectionError
                received_any = True
                conn.h11.receive_data(data)
                response, content = await _read_by_h11(conn, lambda: request)
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
        self._release(conn, origin)
        return httpx.Response(
            response.status_code,
            headers=list(response.headers),
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(response.reason)},
        )

    def _release(self, conn: _Connection, origin: Origin) -> None:
        # Bytes h11 holds past the answer (a second response behind a chunked one, say) would be read
        # as the next request's answer: such a connection is out of step and never reused.
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE and not conn.h11.trailing_data[0]:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()


async def _read_by_h11(
    conn: _Connection, request: Callable[[], httpx.Request], *, max_body: int | None = None
) -> tuple[h11.Response, bytes]:
    """
    Read the rest of an answer whose first bytes h11 already has: the head and the whole body.

    Shared by the general path and the status path's fallback. ``request`` makes the request an
    error names (the status path builds it only then); ``max_body`` bounds the body. h11's
    protocol errors come out as ``httpx.RemoteProtocolError``; I/O errors are the caller's.
    """
    response: h11.Response | None = None
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await conn.reader.read(_READ_SIZE))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
                size += len(event.data)
                if max_body is not None and size > max_body:
                    raise _too_large(request(), max_body)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=request())
    except h11.ProtocolError as err:
        raise httpx.RemoteProtocolError(str(err), request=request()) from err
    assert response is not None  # h11 gives EndOfMessage only after a final Response
    return response, b"".join(chunks)


def _too_large(request: httpx.Request, limit: int) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"Answer larger than {limit} bytes: not a Pixazo status answer", request=request)


def _quiet(reader: asyncio.StreamReader) -> bool:
    """
    True if an idle connection has received nothing since its last answer: safe to send on.

    Anything the server sent while the connection sat idle (a late or duplicate answer, a 408 before
    it closes, an EOF) would otherwise be read as the next request's answer; httpcore likewise drops a
    connection that is readable before reusing it. The loop moves every byte that reaches the socket
    into the reader's buffer as soon as it is readable, so the buffer and the EOF flag say it all,
    without a system call. ``_buffer`` is private to asyncio's StreamReader (a bytearray since Python
    3.4; there is no public "bytes pending" accessor); reading its length costs nothing on the poll's
    hot path, and tests/hooks/test_status_path.py fails if it ever disappears.
    """
    return not reader._buffer and not reader.at_eof()  # type: ignore[attr-defined]


class _StaleConnectionError(Exception):
    """A kept-alive connection was closed by the server before any byte of the answer."""
