"""The triggers' keep-alive transport, against real sockets on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio

from airflow_provider_pixazo.hooks._transport import KeepAliveTransport
from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = pytest.mark.asyncio


@dataclass
class RawServer:
    """A tiny HTTP/1.1 server whose answer depends on the path, counting connections."""

    url: str = ""
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[str] = field(default_factory=list)


def _answer(path: str) -> tuple[bytes, bool]:
    """The raw bytes to answer ``path`` with, and whether to close the connection afterwards."""
    if path == "/chunked":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", False
    if path == "/close":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", True
    if path == "/then-drop":
        # Answers keep-alive, then silently closes: the next request on it finds it stale.
        return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce", True
    if path == "/gzip":
        body = gzip.compress(b'{"status": "QUEUED"}')
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        return head + body, False
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False


@pytest_asyncio.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    state = RawServer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                if length:
                    await reader.readexactly(length)
                state.requests.append(f"{method} {path}")
                if path == "/slow":
                    await asyncio.sleep(0.5)
                if path == "/busy":
                    await asyncio.sleep(0.05)
                data, close = _answer(path)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            state.open_now -= 1
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state
        server.close()


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    return await client.get(path)


async def test_keeps_one_connection_alive_across_requests(raw_server: RawServer) -> None:
    transport = KeepAliveTransport()
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport) as client:
        for _ in range(5):
            assert (await client.get("/ok")).text == "ok"
    assert raw_server.connections == 1
    assert transport.connections_opened == 1


async def test_chunked_bodies_are_assembled(raw_server: RawServer) -> None:
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport()) as client:
        assert (await client.get("/chunked")).text == "hello world"
        assert (await client.get("/ok")).text == "ok"
    assert raw_server.connections == 1  # a chunked answer still leaves the connection reusable


async def test_connection_close_is_honoured(raw_server: RawServer) -> None:
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport()) as client:
        assert (await client.get("/close")).text == "ok"
        assert (await client.get("/ok")).text == "ok"
    assert raw_server.connections == 2


async def test_a_stale_connection_is_replaced_for_a_get(raw_server: RawServer) -> None:
    transport = KeepAliveTransport()
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport) as client:
        assert (await client.get("/then-drop")).text == "once"
        await asyncio.sleep(0.05)  # let the server's close arrive while the connection is idle
        assert (await client.get("/ok")).text == "ok"
    assert transport.connections_opened == 2


async def test_a_post_never_goes_out_on_a_kept_connection(raw_server: RawServer) -> None:
    transport = KeepAliveTransport()
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport) as client:
        await client.get("/ok")
        response = await client.post("/ok", json={"prompt": "x"})
    assert response.text == "ok"
    # The POST took a fresh connection: a kept one might be stale, and a paid request is never resent.
    assert transport.connections_opened == 2
    assert raw_server.requests == ["GET /ok", "POST /ok"]


async def test_content_encoding_is_decoded_by_httpx(raw_server: RawServer) -> None:
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport()) as client:
        assert (await client.get("/gzip")).json() == {"status": "QUEUED"}


async def test_concurrency_is_bounded(raw_server: RawServer) -> None:
    transport = KeepAliveTransport(max_connections=3)
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport) as client:
        responses = await asyncio.gather(*(client.get("/busy") for _ in range(30)))
    assert {r.text for r in responses} == {"ok"}
    assert raw_server.most_open <= 3
    assert transport.connections_opened <= 3


async def test_read_timeout_and_connect_error_are_httpx_errors(raw_server: RawServer) -> None:
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport(), timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow")
    closed_port = "http://127.0.0.1:9"
    async with httpx.AsyncClient(base_url=closed_port, transport=KeepAliveTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/ok")


async def test_against_the_emulator_one_connection_for_many_polls() -> None:
    with PixazoEmulator(api_key="pool-key") as emulator:
        transport = KeepAliveTransport()
        headers = {"Ocp-Apim-Subscription-Key": "pool-key"}
        async with httpx.AsyncClient(base_url=emulator.url, transport=transport, headers=headers) as client:
            submitted = (await client.post("/gpt-image-2/v1/text-to-image", json={"prompt": "p"})).json()
            for _ in range(20):
                status = await client.get(f"/v2/requests/status/{submitted['request_id']}")
                assert status.json()["status"] == "COMPLETED"
        # The POST opened the connection (never a kept one); all twenty polls reused it.
        assert emulator.connections_opened == 1
        assert transport.connections_opened == 1


async def test_waiting_for_a_slot_times_out_as_a_pool_timeout(raw_server: RawServer) -> None:
    transport = KeepAliveTransport(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.05)
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport, timeout=timeout) as client:
        slow = asyncio.ensure_future(client.get("/slow"))
        await asyncio.sleep(0.05)
        # The only slot is busy: httpx's PoolTimeout, which proves the request never left.
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/ok")
        assert (await slow).text == "ok"
