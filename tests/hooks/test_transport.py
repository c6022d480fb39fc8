"""The triggers' keep-alive transport, against real sockets on 127.0.0.1 (no mocks): HTTP, proxies, TLS."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from airflow_provider_pixazo.error_mapping import error_from_exception
from airflow_provider_pixazo.exceptions import PixazoTLSError
from airflow_provider_pixazo.hooks._transport import KeepAliveTransport
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import ThrowawayCA
from tests.proxy.forward_proxy import ForwardProxy

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


# -- proxies and TLS, kept as httpx keeps them ----------------------------------------------------


@pytest.fixture
def https_emulator(pixazo_tls_ca: ThrowawayCA) -> Iterator[PixazoEmulator]:
    with PixazoEmulator(api_key="tls-key", ssl_context=pixazo_tls_ca.server_context()) as emulator:
        yield emulator


async def test_http_origin_goes_to_the_proxy_in_absolute_form(
    raw_server: RawServer, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    transport = KeepAliveTransport(proxy=proxy.url)
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport) as client:
        for _ in range(3):
            assert (await client.get("/ok?x=1")).text == "ok"
    assert [(r["method"], r["target"]) for r in proxy.records] == [("GET", f"{raw_server.url}/ok?x=1")] * 3
    assert raw_server.requests == ["GET /ok?x=1"] * 3  # the proxy forwarded them in origin form
    assert transport.connections_opened == 1  # kept alive to the proxy


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_environment_proxy_is_used_like_httpx(
    raw_server: RawServer, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch, variable: str
) -> None:
    clean_proxy_env.setenv(variable, proxy.url)
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport()) as client:
        await client.get("/ok")
    assert [r["target"] for r in proxy.records] == [f"{raw_server.url}/ok"]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "example.com,127.0.0.1"])
async def test_no_proxy_bypasses_the_proxy(
    raw_server: RawServer, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch, no_proxy: str
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    clean_proxy_env.setenv("NO_PROXY", no_proxy)
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport()) as client:
        await client.get("/ok")
    assert proxy.records == []
    assert raw_server.requests == ["GET /ok"]


async def test_explicit_proxy_wins_over_the_environment(
    raw_server: RawServer, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")  # httpx ignores NO_PROXY for an explicit proxy too
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport(proxy=proxy.url)) as client:
        await client.get("/ok")
    assert len(proxy.records) == 1


async def test_trust_env_false_ignores_the_environment(
    raw_server: RawServer, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport(trust_env=False)) as client:
        assert (await client.get("/ok")).text == "ok"


async def test_proxy_credentials_become_proxy_authorization(
    raw_server: RawServer, locked_proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    with_auth = f"http://alice:s3cret@127.0.0.1:{locked_proxy.port}"
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport(proxy=with_auth)) as client:
        assert (await client.get("/ok")).text == "ok"
    async with httpx.AsyncClient(
        base_url=raw_server.url, transport=KeepAliveTransport(proxy=locked_proxy.url)
    ) as client:
        # Plain http through a proxy: its refusal is an answer, as httpx hands it back too.
        assert (await client.get("/ok")).status_code == 407
    assert [(r["proxy_auth"], r["auth_ok"]) for r in locked_proxy.records] == [(True, True), (False, False)]
    assert raw_server.requests == ["GET /ok"]


async def test_https_origin_goes_through_a_connect_tunnel(
    https_emulator: PixazoEmulator, proxy: ForwardProxy, pixazo_tls_ca: ThrowawayCA, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    clean_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    transport = KeepAliveTransport(verify=str(pixazo_tls_ca.bundle))
    headers = {"Ocp-Apim-Subscription-Key": "tls-key"}
    async with httpx.AsyncClient(base_url=https_emulator.url, transport=transport, headers=headers) as client:
        for _ in range(3):
            assert (await client.get("/v2/requests/status/nope")).status_code == 404
    port = https_emulator.url.rsplit(":", 1)[1]
    assert [(r["method"], r["target"]) for r in proxy.records] == [("CONNECT", f"127.0.0.1:{port}")]
    assert len(https_emulator.calls) == 3
    assert https_emulator.connections_opened == transport.connections_opened == 1


async def test_a_refused_connect_is_a_proxy_error(
    https_emulator: PixazoEmulator, locked_proxy: ForwardProxy, pixazo_tls_ca: ThrowawayCA
) -> None:
    transport = KeepAliveTransport(proxy=locked_proxy.url, verify=str(pixazo_tls_ca.bundle))
    async with httpx.AsyncClient(base_url=https_emulator.url, transport=transport) as client:
        with pytest.raises(httpx.ProxyError, match="407") as ours:
            await client.get("/v2/requests/status/nope")
    trusted = ssl.create_default_context(cafile=str(pixazo_tls_ca.bundle))
    async with httpx.AsyncClient(base_url=https_emulator.url, proxy=locked_proxy.url, verify=trusted) as reference:
        with pytest.raises(httpx.ProxyError) as theirs:
            await reference.get("/v2/requests/status/nope")
    assert str(ours.value) == str(theirs.value) == "407 Proxy Authentication Required"
    assert https_emulator.calls == []


@pytest.mark.parametrize("origin", ["http://127.0.0.1:9", "https://127.0.0.1:9"])
async def test_an_unreachable_proxy_fails_as_in_httpx(origin: str) -> None:
    dead_proxy = "http://127.0.0.1:9"
    async with httpx.AsyncClient(proxy=dead_proxy) as reference:
        with pytest.raises(httpx.TransportError) as expected:
            await reference.get(origin)
    async with httpx.AsyncClient(transport=KeepAliveTransport(proxy=dead_proxy)) as client:
        with pytest.raises(httpx.TransportError) as got:
            await client.get(origin)
    assert type(got.value) is type(expected.value) is httpx.ConnectError


async def test_an_untrusted_certificate_fails_the_connect(
    https_emulator: PixazoEmulator, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    for transport in (KeepAliveTransport(), KeepAliveTransport(proxy=proxy.url)):
        async with httpx.AsyncClient(base_url=https_emulator.url, transport=transport) as client:
            with pytest.raises(httpx.ConnectError) as info:
                await client.get("/v2/requests/status/nope")
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        mapped = error_from_exception(info.value)
        assert isinstance(mapped, PixazoTLSError)
        assert "not trusted" in str(mapped)
        assert "'verify'" in str(mapped)
    assert https_emulator.calls == []
    for _ in range(200):  # the emulator counts a failed handshake from its own thread
        if https_emulator.tls_failures == 2:
            break
        await asyncio.sleep(0.01)
    assert https_emulator.tls_failures == 2


async def test_verify_false_accepts_any_certificate(https_emulator: PixazoEmulator) -> None:
    async with httpx.AsyncClient(base_url=https_emulator.url, transport=KeepAliveTransport(verify=False)) as client:
        assert (await client.get("/v2/requests/status/nope")).status_code == 401


async def test_ssl_cert_file_is_honoured_like_httpx(
    https_emulator: PixazoEmulator, pixazo_tls_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pixazo_tls_ca.bundle))
    async with httpx.AsyncClient(base_url=https_emulator.url, transport=KeepAliveTransport()) as client:
        assert (await client.get("/v2/requests/status/nope")).status_code == 401


async def test_the_route_is_resolved_once_per_origin(
    raw_server: RawServer, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch, mocker: Any
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    transport = KeepAliveTransport()
    spy = mocker.spy(transport._proxies, "route_for")
    async with httpx.AsyncClient(base_url=raw_server.url, transport=transport) as client:
        for _ in range(5):
            await client.get("/close")  # a new connection each time
    assert transport.connections_opened == 5
    assert spy.call_count == 1


async def test_a_socks_proxy_is_refused_clearly(raw_server: RawServer, clean_proxy_env: pytest.MonkeyPatch) -> None:
    clean_proxy_env.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    async with httpx.AsyncClient(base_url=raw_server.url, transport=KeepAliveTransport()) as client:
        with pytest.raises(httpx.UnsupportedProtocol, match="only http:// and https:// proxies"):
            await client.get("/ok")
    assert raw_server.requests == []


async def test_prebuilt_requests_on_the_shared_transport_follow_proxy_and_tls(
    https_emulator: PixazoEmulator, proxy: ForwardProxy, pixazo_tls_ca: ThrowawayCA, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    """The shared status poller sends straight to the transport, with no AsyncClient: same rules apply."""
    from airflow_provider_pixazo.hooks import _clients
    from airflow_provider_pixazo.hooks._settings import ConnectionSettings

    clean_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    trusted = ConnectionSettings(https_emulator.url, "tls-key", verify=str(pixazo_tls_ca.bundle))
    untrusted = ConnectionSettings(https_emulator.url, "tls-key")
    request = httpx.Request("GET", f"{https_emulator.url}/v2/requests/status/nope")
    try:
        response = await _clients.shared_async_transport(trusted).handle_async_request(request)
        assert response.status_code == 401
        with pytest.raises(httpx.ConnectError) as info:
            await _clients.shared_async_transport(untrusted).handle_async_request(request)
        assert isinstance(error_from_exception(info.value), PixazoTLSError)
    finally:
        await _clients.aclose_shared_clients()
    assert [r["method"] for r in proxy.records] == ["CONNECT", "CONNECT"]


async def test_an_https_proxy_carries_a_tls_tunnel_inside_tls(
    https_emulator: PixazoEmulator, pixazo_tls_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy's own certificate is checked against the default CAs: SSL_CERT_FILE names ours here.
    monkeypatch.setenv("SSL_CERT_FILE", str(pixazo_tls_ca.bundle))
    tls_proxy = await ForwardProxy().start(ssl_context=pixazo_tls_ca.server_context())
    try:
        transport = KeepAliveTransport(proxy=tls_proxy.url)
        async with httpx.AsyncClient(base_url=https_emulator.url, transport=transport) as client:
            assert (await client.get("/v2/requests/status/nope")).status_code == 401
            assert (await client.get("/v2/requests/status/nope")).status_code == 401
    finally:
        await tls_proxy.stop()
    assert tls_proxy.url.startswith("https://")
    assert [r["method"] for r in tls_proxy.records] == ["CONNECT"]
    assert len(https_emulator.calls) == 2


async def test_an_ipv6_origin_gets_a_bracketed_connect_target() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        transport = KeepAliveTransport(proxy=f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ProxyError, match="403"):
                await client.get("https://[::1]:8443/x")
    assert seen == [b"CONNECT [::1]:8443 HTTP/1.1"]
