"""
A small keep-alive HTTP/1.1 transport for the triggers' shared async client.

Thousands of triggers in one triggerer poll the same status endpoint. httpcore's connection pool
re-scans every pooled connection on each request (a ``poll()`` per connection, growing with the pool
and the queue of waiting requests), so its CPU per poll grows with the number of waiting triggers;
measured here, 10 000 triggers never finished. This transport keeps idle connections in a
last-in-first-out list per origin and bounds concurrency with a semaphore, so a poll costs the same
with 10 or 10 000 triggers waiting. Parsing is h11's (the parser httpcore itself uses): chunked
bodies, ``Connection: close`` and keep-alive cycles are handled by it, and httpx above still decodes
``Content-Encoding``, applies auth and builds the ``httpx.Response``. Bodies are read whole: status
answers are a few hundred bytes (over :data:`._status_wire.MAX_BODY` is refused); media downloads
stream through a plain sync client instead. The connection itself is :mod:`._connection`'s.

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

import h11
import httpx

from airflow_provider_pixazo.hooks._connection import (
    READ_SIZE,
    KeptConnection,
    StaleConnectionError,
    is_quiet,
    open_streams,
    open_tunnel,
    read_by_h11,
    too_large,
)
from airflow_provider_pixazo.hooks._proxy import ProxyResolver, ProxyRoute
from airflow_provider_pixazo.hooks._status_wire import (
    MAX_BODY,
    MAX_HEAD,
    Origin,
    StatusAnswer,
    StatusGet,
    parse_head,
    read_timeout,
)
from airflow_provider_pixazo.hooks._tls import ssl_context

__all__ = ["KeepAliveTransport"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
# Seconds aclose() waits for closing connections before it aborts them.
_CLOSE_GRACE = 1.0


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
        self._idle: dict[Origin, list[KeptConnection]] = {}
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
                except StaleConnectionError:
                    pass  # the server closed it while idle: try once more on a new connection
            elif conn is not None:
                # Never resend a non-idempotent request on a connection that may be stale.
                conn.close()
            conn = await self._connect(request, origin, timeouts)
            try:
                return await self._exchange(conn, request, body, origin, timeouts)
            except StaleConnectionError as err:
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
                except StaleConnectionError:
                    pass  # the server closed it while idle: a GET may go once more on a new connection
            conn = await self._connect(get.as_request(), origin, get.template.timeouts)
            try:
                return await self._status_exchange(conn, get, origin)
            except StaleConnectionError as err:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=get.as_request()
                ) from err
        finally:
            self._slots.release()

    async def _status_exchange(self, conn: KeptConnection, get: StatusGet, origin: Origin) -> StatusAnswer:
        loop = asyncio.get_running_loop()
        reader, writer = conn.reader, conn.writer
        buf = b""
        conn.arm(loop, get.template.timeouts.get("read"))
        try:
            writer.write(get.wire(conn.absolute_form, conn.extra_block))
            if writer.transport.get_write_buffer_size():
                await writer.drain()
            buf = await reader.read(READ_SIZE)
            if not buf:
                raise StaleConnectionError
            while True:
                end = buf.find(b"\r\n\r\n")
                if end > MAX_HEAD or (end < 0 and len(buf) > MAX_HEAD):
                    raise httpx.RemoteProtocolError(
                        f"Response head longer than {MAX_HEAD} bytes", request=get.as_request()
                    )
                if end >= 0 or b"\n\n" in buf or b"\n\r\n" in buf:
                    break
                more = await reader.read(READ_SIZE)
                if not more:
                    raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=get.as_request())
                buf += more
            head = parse_head(buf[:end]) if end >= 0 else None
            if head is None:
                # Unusual (chunked, Connection: close, 1xx, no length, bad or oversized head): h11 reads
                # it, or refuses it, exactly as it would on the general path.
                return await self._status_by_h11(conn, get, buf, origin)
            if head.length > MAX_BODY:
                raise too_large(get.as_request(), MAX_BODY)
            total = end + 4 + head.length
            while len(buf) < total:
                more = await reader.read(READ_SIZE)
                if not more:
                    raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=get.as_request())
                buf += more
        except StaleConnectionError:
            conn.close()
            if conn.timed_out:
                raise read_timeout(get) from None
            raise
        except (ConnectionError, OSError) as err:
            conn.close()
            if conn.timed_out:
                raise read_timeout(get) from err
            if not buf:
                raise StaleConnectionError from err
            raise httpx.ReadError(str(err) or type(err).__name__, request=get.as_request()) from err
        except httpx.RemoteProtocolError:
            conn.close()
            if conn.timed_out:
                raise read_timeout(get) from None
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

    async def _status_by_h11(self, conn: KeptConnection, get: StatusGet, buf: bytes, origin: Origin) -> StatusAnswer:
        # The request went out as prebuilt bytes: tell h11 it was sent (its bytes are the same), then
        # give it what was read so far. Errors propagate to _status_exchange's handlers.
        headers = [*get.template.headers, *conn.extra_headers]
        conn.h11.send(h11.Request(method=b"GET", target=get.target(conn.absolute_form), headers=headers))
        conn.h11.send(h11.EndOfMessage())
        conn.h11.receive_data(buf)
        response, body = await read_by_h11(conn, get.as_request, max_body=MAX_BODY)
        self._release(conn, origin)
        return StatusAnswer(response.status_code, list(response.headers), body, bytes(response.reason))

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

    def _checkout(self, origin: Origin) -> KeptConnection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self._keepalive_expiry and is_quiet(conn.reader):
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

    async def _connect(
        self, request: httpx.Request, origin: Origin, timeouts: dict[str, float | None]
    ) -> KeptConnection:
        scheme, host, port = origin
        route = self._route(request.url, origin)
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                if route is None:
                    context = self._origin_ssl(request) if scheme == b"https" else None
                    reader, writer = await open_streams(host.decode("ascii"), port, context, request)
                    conn = KeptConnection(reader, writer)
                else:
                    conn = await self._connect_via(route, request, origin)
        except TimeoutError as err:
            where = request.url.host if route is None else f"{request.url.host} through proxy {route.url}"
            raise httpx.ConnectTimeout(f"Timed out connecting to {where}", request=request) from err
        self.connections_opened += 1
        return conn

    async def _connect_via(self, route: ProxyRoute, request: httpx.Request, origin: Origin) -> KeptConnection:
        scheme, host, port = origin
        proxy_context = None
        if route.url.scheme == "https":
            # TLS to the proxy itself is checked against the default CAs (SSL_CERT_FILE / SSL_CERT_DIR
            # honoured), not ``verify``, which is about the gateway; httpx has no setting for it either.
            if self._proxy_ssl is None:
                self._proxy_ssl = httpx.create_ssl_context()
            proxy_context = self._proxy_ssl
        reader, writer = await open_streams(*route.address, proxy_context, request)
        auth = ((b"Proxy-Authorization", route.authorization),) if route.authorization else ()
        if scheme == b"http":
            return KeptConnection(reader, writer, absolute_form=True, extra_headers=auth)
        try:
            await open_tunnel(reader, writer, host, port, auth, request)
            try:
                await writer.start_tls(self._origin_ssl(request), server_hostname=host.decode("ascii"))
            except OSError as err:
                raise httpx.ConnectError(str(err) or type(err).__name__, request=request) from err
        except BaseException:
            writer.close()
            raise
        return KeptConnection(reader, writer)

    async def _exchange(
        self,
        conn: KeptConnection,
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
                data = await conn.reader.read(READ_SIZE)
                if not data:
                    raise StaleConnectionError
                received_any = True
                conn.h11.receive_data(data)
                response, content = await read_by_h11(conn, lambda: request)
        except StaleConnectionError:
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
                raise StaleConnectionError from err
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

    def _release(self, conn: KeptConnection, origin: Origin) -> None:
        # Bytes h11 holds past the answer (a second response behind a chunked one, say) would be read
        # as the next request's answer: such a connection is out of step and never reused.
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE and not conn.h11.trailing_data[0]:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()
