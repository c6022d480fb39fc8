"""
One kept-alive HTTP/1.1 connection of :class:`._transport.KeepAliveTransport`, and the I/O on it.

Opening the streams (direct, or a ``CONNECT`` tunnel through a proxy), the per-connection read
timer, reading an answer with h11, and telling a connection that is safe to reuse from one that is
not. The transport decides which connection a request goes on; this module is what a connection is.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import h11
import httpx

__all__ = [
    "READ_SIZE",
    "KeptConnection",
    "StaleConnectionError",
    "is_quiet",
    "open_streams",
    "open_tunnel",
    "read_by_h11",
    "too_large",
]

#: How much one read asks of the socket (the size httpcore reads).
READ_SIZE = 64 * 1024
#: A deadline that is never reached: no read under way.
_INF = float("inf")


class KeptConnection:
    """One kept-alive HTTP/1.1 connection: its streams, its h11 state and its read timer."""

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


async def open_streams(
    host: str, port: int, context: ssl.SSLContext | None, request: httpx.Request
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port, ssl=context, limit=READ_SIZE)
    except OSError as err:  # refused, unreachable, and ssl errors (SSLCertVerificationError is one)
        raise httpx.ConnectError(str(err) or type(err).__name__, request=request) from err


async def open_tunnel(
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
                conn.receive_data(await reader.read(READ_SIZE))
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


async def read_by_h11(
    conn: KeptConnection, request: Callable[[], httpx.Request], *, max_body: int | None = None
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
                conn.h11.receive_data(await conn.reader.read(READ_SIZE))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
                size += len(event.data)
                if max_body is not None and size > max_body:
                    raise too_large(request(), max_body)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("Server closed the connection mid-answer", request=request())
    except h11.ProtocolError as err:
        raise httpx.RemoteProtocolError(str(err), request=request()) from err
    assert response is not None  # h11 gives EndOfMessage only after a final Response
    return response, b"".join(chunks)


def too_large(request: httpx.Request, limit: int) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"Answer larger than {limit} bytes: not a Pixazo status answer", request=request)


def is_quiet(reader: asyncio.StreamReader) -> bool:
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
    # A reset while idle is stored as the reader's exception, not as EOF.
    return not reader._buffer and not reader.at_eof() and reader.exception() is None  # type: ignore[attr-defined]


class StaleConnectionError(Exception):
    """A kept-alive connection was closed by the server before any byte of the answer."""
