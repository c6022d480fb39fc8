"""
The transport's status path (``KeepAliveTransport.get_status``) against real sockets on 127.0.0.1.

A scripted server sends each answer in the pieces a test asks for (split reads, heads across reads,
chunked, ``Connection: close``, garbage), the emulator answers real status calls, and the forward
proxy and a TLS emulator prove proxies and TLS hold on this path. A spy on the h11 fallback tells
which reader ran.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from airflow.sdk import Connection

from airflow_provider_pixazo.error_mapping import error_from_exception
from airflow_provider_pixazo.exceptions import PixazoServerError, PixazoTLSError
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._connection import is_quiet
from airflow_provider_pixazo.hooks._poller import StatusPoller
from airflow_provider_pixazo.hooks._status_wire import MAX_BODY, StatusAnswer, StatusGet, StatusTemplate
from airflow_provider_pixazo.hooks._transport import KeepAliveTransport
from airflow_provider_pixazo.models import RequestStatus
from airflow_provider_pixazo.testing._faults import FaultConfig
from airflow_provider_pixazo.testing.emulator import PixazoEmulator
from airflow_provider_pixazo.testing.pytest_plugin import ThrowawayCA
from tests.proxy.forward_proxy import ForwardProxy

pytestmark = pytest.mark.asyncio

KEY = "sk-status-path-key"
TIMEOUTS: dict[str, float | None] = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": None}
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n" + b'{"status":"PROCESSING"}'[:22]
)
PAUSE = 0.02  # between the pieces of one answer: each piece arrives in its own read


@dataclass
class Scripted:
    """A server answering each path with the given pieces (sent ``PAUSE`` apart), counting connections."""

    answers: dict[str, list[bytes | None]] = field(default_factory=dict)
    close_after: set[str] = field(default_factory=set)
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # paths whose every piece has been written

    def template(self, timeouts: dict[str, float | None] = TIMEOUTS) -> StatusTemplate:
        return StatusTemplate(self.url, {"Ocp-Apim-Subscription-Key": KEY}, timeouts)


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                state.requests.append(head)
                path = head.split(b" ", 2)[1].decode()
                pieces = state.answers.get(path, [OK])
                for i, piece in enumerate(pieces):
                    if i:
                        await asyncio.sleep(PAUSE)
                    if piece is None:  # say nothing more until the client gives up
                        await reader.read()
                        return
                    writer.write(piece)
                    await writer.drain()
                state.answered.append(path)
                if path in state.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state
        server.close()


@pytest.fixture
def h11_reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Each time the h11 fallback reads an answer, the bytes it was handed (empty: the fast path read all)."""
    seen: list[bytes] = []
    fallback = KeepAliveTransport._status_by_h11

    async def spy(self: KeepAliveTransport, conn: object, get: StatusGet, buf: bytes, origin: object) -> StatusAnswer:
        seen.append(buf)
        return await fallback(self, conn, get, buf, origin)  # type: ignore[arg-type]

    monkeypatch.setattr(KeepAliveTransport, "_status_by_h11", spy)
    return seen


# -- the usual answer, read without h11 ---------------------------------------------------------------


async def test_the_usual_answer_is_read_on_one_kept_connection_without_h11(
    scripted: Scripted, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    transport = KeepAliveTransport()
    get = scripted.template().get("/v2/requests/status/a")
    try:
        answers = [await transport.get_status(get) for _ in range(5)]
    finally:
        await transport.aclose()
    assert answers == [StatusAnswer(200, [(b"content-type", b"application/json"), (b"content-length", b"22")],
                                    b'{"status":"PROCESSING"}'[:22], b"OK")] * 5  # fmt: skip
    assert scripted.connections == 1
    assert transport.connections_opened == 1
    assert h11_reads == []
    assert scripted.requests[0].startswith(b"GET /v2/requests/status/a HTTP/1.1\r\nHost: 127.0.0.1:")
    assert f"Ocp-Apim-Subscription-Key: {KEY}\r\n".encode() in scripted.requests[0]


async def test_split_reads_heads_across_reads_and_bodies_across_reads(
    scripted: Scripted, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    scripted.answers["/split"] = [b"HT", b"TP/1.1 200 OK\r\nContent-Le", b"ngth: 10\r\n\r", b"\n01234", b"56789"]
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        split = await transport.get_status(template.get("/split"))
        after = await transport.get_status(template.get("/ok"))
    finally:
        await transport.aclose()
    assert (split.status_code, split.body) == (200, b"0123456789")
    assert after.status_code == 200
    assert scripted.connections == 1  # the split answer left the connection in step
    assert h11_reads == []


async def test_a_chunked_answer_goes_to_h11_and_the_connection_stays_usable(
    scripted: Scripted, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    scripted.answers["/chunked"] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"6\r\n world\r\n0\r\n\r\n",
    ]
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        chunked = await transport.get_status(template.get("/chunked"))
        fast = await transport.get_status(template.get("/ok"))
        again = await transport.get_status(template.get("/chunked"))
    finally:
        await transport.aclose()
    assert chunked.body == again.body == b"hello world"
    assert fast.body == b'{"status":"PROCESSING"}'[:22]
    assert scripted.connections == 1
    assert len(h11_reads) == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", id="connection-close"),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\nok", id="length-until-close"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", id="http-1.0"),
    ],
)
async def test_an_answer_ending_the_connection_is_read_and_the_connection_not_reused(
    scripted: Scripted, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch, answer: bytes
) -> None:
    scripted.answers["/last"] = [answer]
    scripted.close_after.add("/last")
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        last = await transport.get_status(template.get("/last"))
        after = await transport.get_status(template.get("/ok"))
    finally:
        await transport.aclose()
    assert (last.status_code, last.body) == (200, b"ok")
    assert after.status_code == 200
    assert scripted.connections == 2
    assert len(h11_reads) == 1


async def test_an_informational_answer_before_the_real_one(
    scripted: Scripted, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    scripted.answers["/1xx"] = [b"HTTP/1.1 102 Processing\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    transport = KeepAliveTransport()
    try:
        answer = await transport.get_status(scripted.template().get("/1xx"))
    finally:
        await transport.aclose()
    assert (answer.status_code, answer.body) == (200, b"ok")
    assert len(h11_reads) == 1


async def test_bytes_beyond_the_answer_retire_the_connection(
    scripted: Scripted, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    scripted.answers["/extra"] = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSURPRISE"]
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        assert (await transport.get_status(template.get("/extra"))).body == b"ok"
        assert (await transport.get_status(template.get("/ok"))).status_code == 200
    finally:
        await transport.aclose()
    assert scripted.connections == 2


# -- a kept connection that heard anything more is never reused ----------------------------------------

_LATE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG"
_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_RIGHT = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nRIGHT\r\n0\r\n\r\n"


async def _poll(transport: KeepAliveTransport, template: StatusTemplate, path: str, fast: bool) -> tuple[int, bytes]:
    if fast:
        answer = await transport.get_status(template.get(path))
        return answer.status_code, answer.body
    # The general path, as the shared client sends (not closed here: closing it would empty the pool).
    response = await httpx.AsyncClient(transport=transport).get(template.base_url + path)
    return response.status_code, response.content


@pytest.mark.parametrize("fast", [True, False], ids=["get_status", "handle_async_request"])
@pytest.mark.parametrize(
    ("pieces", "closes"),
    [
        # The answer, then (PAUSE later, while the connection is idle) a duplicate one.
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nFIRST", _LATE], False, id="late-answer"),
        # A 408 a server sends on an idle connection before it closes it.
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nFIRST", _408], True, id="408-then-close"),
        # A chunked answer (read by h11) with a second response right behind it in the same read.
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nFIRST\r\n0\r\n\r\n" + _LATE],
            False,
            id="chunked-then-extra",
        ),
    ],
)
async def test_a_connection_that_received_more_than_its_answer_is_never_reused(
    scripted: Scripted, clean_proxy_env: pytest.MonkeyPatch, pieces: list[bytes], closes: bool, fast: bool
) -> None:
    scripted.answers["/first"] = pieces
    scripted.answers["/next"] = [_RIGHT]  # chunked: on the fast path it goes through h11, which would hold WRONG
    if closes:
        scripted.close_after.add("/first")
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        first = await _poll(transport, template, "/first", fast)
        while "/first" not in scripted.answered:  # the server has written everything, extra bytes too
            await asyncio.sleep(PAUSE / 4)
        # A timer set after those writes fires only after the loop's next look at the sockets, which hands
        # the bytes to the idle connection's reader: ordered, however late a loaded runner is.
        await asyncio.sleep(PAUSE)
        after = await _poll(transport, template, "/next", fast)
    finally:
        await transport.aclose()
    assert first == (200, b"FIRST")
    assert after == (200, b"RIGHT")
    assert transport.connections_opened == 2
    assert [r.split(b" ", 2)[1] for r in scripted.requests] == [b"/first", b"/next"]


async def test_the_idle_check_reads_the_stream_reader_s_private_buffer() -> None:
    """``is_quiet`` reads ``StreamReader._buffer`` (cheap, no public equivalent): this breaks if asyncio renames it."""
    reader = asyncio.StreamReader()
    assert isinstance(reader._buffer, bytearray)
    assert is_quiet(reader)
    reader.feed_data(b"HTTP/1.1 408 Request Timeout\r\n")
    assert len(reader._buffer) > 0
    assert not is_quiet(reader)
    drained = asyncio.StreamReader()
    drained.feed_eof()
    assert not is_quiet(drained)
    reset = asyncio.StreamReader()  # reset by the server while idle: an exception, not EOF
    reset.set_exception(ConnectionResetError())
    assert not is_quiet(reset)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param([b"SPDY/9 banana\r\n\r\n"], "illegal status line", id="garbage-status-line"),
        pytest.param([b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n"], "longer than", id="oversized-head"),
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], "mid-answer", id="cut-body"),
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Le"], "mid-answer", id="cut-head"),
        pytest.param([b"HTTP/1.1 200 OK\r\nX-Big: ", b"x" * 20_000], "longer than", id="oversized-head-in-pieces"),
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999\r\n\r\n{"], "larger than", id="huge-length"),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 1), b"x" * (MAX_BODY + 1)],
            "larger than",
            id="huge-chunked",
        ),
    ],
)
async def test_a_broken_answer_is_a_clear_protocol_error_that_names_the_url_not_the_key(
    scripted: Scripted, clean_proxy_env: pytest.MonkeyPatch, answer: list[bytes], message: str
) -> None:
    scripted.answers["/broken"] = answer
    scripted.close_after.add("/broken")
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        with pytest.raises(httpx.RemoteProtocolError, match=message) as info:
            await transport.get_status(template.get("/broken"))
        assert (await transport.get_status(template.get("/ok"))).status_code == 200  # a fresh connection
    finally:
        await transport.aclose()
    error = error_from_exception(info.value)
    assert "GET /broken" in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(info.value.request.headers)
    assert scripted.connections == 2


async def test_a_body_of_exactly_the_cap_is_read(scripted: Scripted, clean_proxy_env: pytest.MonkeyPatch) -> None:
    scripted.answers["/cap"] = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MAX_BODY + b"x" * MAX_BODY]
    transport = KeepAliveTransport()
    try:
        assert len((await transport.get_status(scripted.template().get("/cap"))).body) == MAX_BODY
    finally:
        await transport.aclose()


async def test_a_stale_kept_connection_is_retried_once_on_a_new_one(
    scripted: Scripted, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    scripted.close_after.add("/then-drop")  # answers keep-alive, then closes: the next poll finds it stale
    transport = KeepAliveTransport()
    template = scripted.template()
    try:
        await transport.get_status(template.get("/then-drop"))
        await asyncio.sleep(PAUSE)  # the close reaches us while the connection is idle
        assert (await transport.get_status(template.get("/ok"))).status_code == 200
    finally:
        await transport.aclose()
    assert scripted.connections == 2
    assert [r.split(b" ", 2)[1] for r in scripted.requests] == [b"/then-drop", b"/ok"]


async def test_the_read_timeout_holds_on_a_kept_connection_with_one_timer(
    scripted: Scripted, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    scripted.answers["/hang"] = [b"HTTP/1.1 200 OK\r\n", None]  # half a head, then silence
    timeouts: dict[str, float | None] = {**TIMEOUTS, "read": 0.2}
    transport = KeepAliveTransport()
    template = scripted.template(timeouts)
    try:
        for _ in range(3):  # earlier reads armed the connection's timer: it must still fire in time
            await transport.get_status(template.get("/ok"))
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout, match=r"127\.0\.0\.1") as info:
            await transport.get_status(template.get("/hang"))
        took = time.monotonic() - started
        assert (await transport.get_status(template.get("/ok"))).status_code == 200
    finally:
        await transport.aclose()
    # Not before the 0.2 s deadline (the timer checks the loop's clock, which is time.monotonic), and
    # not never: the upper bound only has to tell "fired" from "hung", so it is generous for a loaded
    # 2-core runner, yet well under the 5 s read timeout the other polls use.
    assert 0.2 <= took < 4.5
    assert error_from_exception(info.value).request_sent


async def test_a_shorter_read_timeout_on_a_connection_armed_for_a_longer_one_still_holds(
    scripted: Scripted, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    """The connection's one timer was set for a 30 s read: a 0.2 s read on it must not wait for that."""
    scripted.answers["/hang"] = [b"HTTP/1.1 200 OK\r\n", None]
    transport = KeepAliveTransport()
    long = scripted.template({**TIMEOUTS, "read": 30.0})
    short = scripted.template({**TIMEOUTS, "read": 0.2})
    try:
        await transport.get_status(long.get("/ok"))
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await transport.get_status(short.get("/hang"))
        took = time.monotonic() - started
    finally:
        await transport.aclose()
    assert scripted.connections == 1  # the same connection, its timer armed for 30 s
    assert 0.2 <= took < 15  # fired for the 0.2 s read (generous: a loaded runner), not at the 30 s one


async def test_the_emulator_answers_real_status_calls_on_the_fast_path(
    h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    with PixazoEmulator(api_key=KEY) as emulator:
        async with httpx.AsyncClient(base_url=emulator.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as client:
            submitted = (await client.post("/gpt-image-2/v1/text-to-image", json={"prompt": "p"})).json()
        transport = KeepAliveTransport()
        template = StatusTemplate(emulator.url, {"Ocp-Apim-Subscription-Key": KEY}, TIMEOUTS)
        wrong = StatusTemplate(emulator.url, {"Ocp-Apim-Subscription-Key": "wrong"}, TIMEOUTS)
        try:
            found = await transport.get_status(template.get(f"/v2/requests/status/{submitted['request_id']}"))
            refused = await transport.get_status(wrong.get(f"/v2/requests/status/{submitted['request_id']}"))
        finally:
            await transport.aclose()
    assert found.status_code == 200
    assert b'"request_id"' in found.content()
    assert refused.status_code == 401
    assert transport.connections_opened == 1
    assert h11_reads == []


# -- proxies and TLS on the status path ---------------------------------------------------------------


@pytest.fixture
def https_emulator(pixazo_tls_ca: ThrowawayCA) -> Iterator[PixazoEmulator]:
    with PixazoEmulator(api_key=KEY, ssl_context=pixazo_tls_ca.server_context()) as emulator:
        yield emulator


async def test_through_an_http_proxy_in_absolute_form_with_proxy_authorization(
    scripted: Scripted, locked_proxy: ForwardProxy, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", f"http://alice:s3cret@127.0.0.1:{locked_proxy.port}")
    transport = KeepAliveTransport()
    get = scripted.template().get("/v2/requests/status/p")
    try:
        answers = [await transport.get_status(get) for _ in range(3)]
    finally:
        await transport.aclose()
    assert {a.status_code for a in answers} == {200}
    assert [(r["method"], r["target"], r["auth_ok"]) for r in locked_proxy.records] == [
        ("GET", f"{scripted.url}/v2/requests/status/p", True)
    ] * 3
    assert transport.connections_opened == 1
    assert h11_reads == []
    assert b"proxy-authorization" not in scripted.requests[0].lower()  # the proxy keeps its credentials


async def test_no_proxy_sends_the_poll_straight_to_the_gateway(
    scripted: Scripted, locked_proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", locked_proxy.url)
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    transport = KeepAliveTransport()
    try:
        assert (await transport.get_status(scripted.template().get("/ok"))).status_code == 200
    finally:
        await transport.aclose()
    assert locked_proxy.records == []


async def test_an_https_gateway_through_a_connect_tunnel_with_a_ca_bundle(
    https_emulator: PixazoEmulator, pixazo_tls_ca: ThrowawayCA, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    proxy = await ForwardProxy().start()
    clean_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    trusted = KeepAliveTransport(verify=str(pixazo_tls_ca.bundle))
    untrusted = KeepAliveTransport()
    template = StatusTemplate(https_emulator.url, {"Ocp-Apim-Subscription-Key": KEY}, TIMEOUTS)
    get = template.get("/v2/requests/status/nope")
    try:
        answers = [await trusted.get_status(get) for _ in range(2)]
        with pytest.raises(httpx.ConnectError) as info:
            await untrusted.get_status(get)
    finally:
        await trusted.aclose()
        await untrusted.aclose()
        await proxy.stop()
    assert [a.status_code for a in answers] == [404, 404]  # the key was accepted: an unknown id
    assert isinstance(error_from_exception(info.value), PixazoTLSError)
    host = https_emulator.url.split("//", 1)[1]
    assert [(r["method"], r["target"]) for r in proxy.records] == [("CONNECT", host)] * 2
    assert len(https_emulator.calls) == 2  # both polls reached the gateway inside the one tunnel


async def test_a_rotated_ca_bundle_reaches_new_connections(
    https_emulator: PixazoEmulator, pixazo_tls_ca: ThrowawayCA, clean_proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other = ThrowawayCA(tmp_path / "other")  # a CA that did not sign the gateway's certificate
    bundle = tmp_path / "rotating.pem"
    bundle.write_bytes(other.bundle.read_bytes())
    transport = KeepAliveTransport(verify=str(bundle))
    get = StatusTemplate(https_emulator.url, {"Ocp-Apim-Subscription-Key": KEY}, TIMEOUTS).get("/v2/requests/status/r")
    try:
        with pytest.raises(httpx.ConnectError) as info:
            await transport.get_status(get)
        # Rotated on disk (the gateway's CA added): the next new connection trusts it, no restart.
        bundle.write_bytes(other.bundle.read_bytes() + pixazo_tls_ca.bundle.read_bytes())
        assert (await transport.get_status(get)).status_code == 404  # the key was accepted: an unknown id
        bundle.unlink()  # gone: a new connection fails clearly (a kept one needs no CA file)
        assert (await transport.get_status(get)).status_code == 404
        await transport.aclose()
        with pytest.raises(httpx.ConnectError, match="CA certificates") as gone:
            await transport.get_status(get)
    finally:
        await transport.aclose()
    assert isinstance(error_from_exception(info.value), PixazoTLSError)
    assert KEY not in str(gone.value)


async def test_an_https_proxy_carries_the_tunnel_inside_tls(
    https_emulator: PixazoEmulator, pixazo_tls_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pixazo_tls_ca.bundle))  # the proxy's certificate, checked by default
    tls_proxy = await ForwardProxy().start(ssl_context=pixazo_tls_ca.server_context())
    transport = KeepAliveTransport(proxy=tls_proxy.url, verify=str(pixazo_tls_ca.bundle))
    get = StatusTemplate(https_emulator.url, {"Ocp-Apim-Subscription-Key": KEY}, TIMEOUTS).get("/v2/requests/status/x")
    try:
        assert [(await transport.get_status(get)).status_code for _ in range(2)] == [404, 404]
    finally:
        await transport.aclose()
        await tls_proxy.stop()
    assert [r["method"] for r in tls_proxy.records] == ["CONNECT"]


async def test_the_poller_waits_through_a_proxy_on_the_status_path(
    locked_proxy: ForwardProxy, h11_reads: list[bytes], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    """End to end: StatusPoller -> shared transport's get_status -> forwarding proxy (with credentials) -> emulator."""
    proxy_url = f"http://alice:s3cret@127.0.0.1:{locked_proxy.port}"
    faults = FaultConfig(status_500_every_other=True)  # a transient error on the way, retried
    with PixazoEmulator(api_key=KEY, processing_seconds=0.2, faults=faults) as emulator:
        async with httpx.AsyncClient(base_url=emulator.url, headers={"Ocp-Apim-Subscription-Key": KEY}) as client:
            request_id = (await client.post("/gpt-image-2/v1/text-to-image", json={"prompt": "p"})).json()["request_id"]

        async def load(conn_id: str) -> Connection:
            extra = json.dumps({"proxy": proxy_url})
            return Connection(conn_id=conn_id, conn_type="pixazo", host=emulator.url, password=KEY, extra=extra)

        seen: list[object] = []
        poller = StatusPoller("pixazo_status_path", load_connection=load)
        try:
            end = await poller.wait(
                request_id,
                poll_interval=0.05,
                max_poll_interval=0.05,
                end_time=time.time() + 20,
                on_update=lambda status, error: seen.append(status or error),
            )
        finally:
            await _clients.aclose_shared_clients()
        status_calls = [c for c in emulator.calls if "/requests/status/" in c.path]
    assert end.result is not None
    assert end.result.status is RequestStatus.COMPLETED
    assert any(isinstance(s, PixazoServerError) for s in seen)
    polls = [(r["method"], r["target"], r["auth_ok"]) for r in locked_proxy.records]
    assert polls == [("GET", f"{emulator.url}/v2/requests/status/{request_id}", True)] * poller.polls_sent
    assert len(status_calls) == poller.polls_sent >= 3
    assert {c.headers.get("ocp-apim-subscription-key") for c in status_calls} == {KEY}
    assert h11_reads == []
