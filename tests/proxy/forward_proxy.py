"""
A small forward HTTP proxy for tests: absolute-form requests and CONNECT tunnels, loopback only.

It records what it saw, one JSON object per request or tunnel (method, target, whether a
``Proxy-Authorization`` header came and whether it was right; never the credential itself):

* in-process: ``ForwardProxy().start()`` inside a running event loop, then ``.records``;
* as a process (what the integration tests use)::

      python tests/proxy/forward_proxy.py --log seen.jsonl [--auth user:password]

  prints ``PORT <n>`` on stdout once listening on 127.0.0.1 and appends records to ``--log``.

Only 127.0.0.1 / localhost origins are forwarded; anything else is refused with 403, so a test
mistake can never send traffic off the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

_LOOPBACK = ("127.0.0.1", "localhost")
_HOP_BY_HOP = (b"proxy-authorization", b"proxy-connection", b"keep-alive")


class ForwardProxy:
    """
    The proxy server.

    :param auth: ``user:password`` the proxy demands (407 without it); None for an open proxy.
    :param on_record: called with each record as it is made (the process mode writes it to a file).
    """

    def __init__(self, auth: str | None = None, on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._expected = b"Basic " + base64.b64encode(auth.encode()) if auth else None
        self._on_record = on_record
        self.records: list[dict[str, Any]] = []
        self.port = 0
        self._scheme = "http"
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> ForwardProxy:
        """Listen on ``host:port`` (0: a free port, then see :attr:`port`); with ``ssl_context``, over TLS."""
        self._server = await asyncio.start_server(self._client, host, port, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        self._scheme = "https" if ssl_context is not None else "http"
        return self

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` when started with TLS)."""
        return f"{self._scheme}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and close the server."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)

    def _record(self, **record: Any) -> None:
        self.records.append(record)
        if self._on_record is not None:
            self._on_record(record)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)
        upstreams: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, _, rest = head[:-4].partition(b"\r\n")
                method, target, _version = line.decode("latin-1").split(" ", 2)
                headers = [tuple(h.split(b":", 1)) for h in rest.split(b"\r\n") if b":" in h]
                lower = {k.strip().lower(): v.strip() for k, v in headers}
                given = lower.get(b"proxy-authorization")
                auth_ok = self._expected is None or given == self._expected
                record = {"method": method, "target": target, "proxy_auth": given is not None, "auth_ok": auth_ok}
                if method == "CONNECT":
                    self._record(**record)
                    await self._tunnel(target, auth_ok, reader, writer)
                    return
                body = b""
                length = int(lower.get(b"content-length", b"0") or 0)
                if length:
                    body = await reader.readexactly(length)
                self._record(**record)
                if not await self._forward(method, target, headers, body, auth_ok, writer, upstreams):
                    return
        except asyncio.CancelledError:
            pass  # stopped: the connection is closed below
        finally:
            for _, up_writer in upstreams.values():
                up_writer.close()
            writer.close()

    async def _tunnel(
        self, target: str, auth_ok: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        if not auth_ok:
            writer.write(_status(407, b'Proxy-Authenticate: Basic realm="test"\r\n'))
            await writer.drain()
            return
        if host not in _LOOPBACK:
            writer.write(_status(403))
            await writer.drain()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.write(_status(502))
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[Any],
        body: bytes,
        auth_ok: bool,
        writer: asyncio.StreamWriter,
        upstreams: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> bool:
        url = urlsplit(target)
        if not auth_ok:
            writer.write(_status(407, b'Proxy-Authenticate: Basic realm="test"\r\n'))
            await writer.drain()
            return True
        if url.scheme != "http" or url.hostname not in _LOOPBACK:
            writer.write(_status(403))
            await writer.drain()
            return True
        key = (url.hostname, url.port or 80)
        if key not in upstreams:
            upstreams[key] = await asyncio.open_connection(*key)
        up_reader, up_writer = upstreams[key]
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        out = [f"{method} {path} HTTP/1.1".encode()]
        out += [k + b":" + v for k, v in headers if k.strip().lower() not in _HOP_BY_HOP]
        up_writer.write(b"\r\n".join(out) + b"\r\n\r\n" + body)
        await up_writer.drain()
        head = await up_reader.readuntil(b"\r\n\r\n")
        length = 0
        for header in head.lower().split(b"\r\n"):
            if header.startswith(b"content-length:"):
                length = int(header.split(b":", 1)[1])
        answer = head + (await up_reader.readexactly(length) if length and method != "HEAD" else b"")
        writer.write(answer)
        await writer.drain()
        return True


def _status(code: int, extra: bytes = b"") -> bytes:
    reason = {403: b"Forbidden", 407: b"Proxy Authentication Required", 502: b"Bad Gateway"}[code]
    return b"HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\n\r\n" % (code, reason, extra)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


def main(argv: list[str] | None = None) -> None:
    """Run as a process until SIGTERM; records go to ``--log`` as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--log", required=True, help="file to append one JSON record per line to")
    parser.add_argument("--auth", help="user:password the proxy demands")
    args = parser.parse_args(argv)

    async def serve() -> None:
        with open(args.log, "a", buffering=1) as log:
            proxy = await ForwardProxy(args.auth, lambda r: log.write(json.dumps(r) + "\n")).start()
            stopped = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set_result, None)
            print(f"PORT {proxy.port}", flush=True)
            await stopped
            await proxy.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
