"""
Proxy routing of the triggers' transport agrees with httpx's own, environment by environment.

httpx decides inside its client, which the transport sits below; these tests build a real
``httpx.Client`` in the same environment and compare its pick of proxy with ours, so a change of
httpx's rules fails here rather than in a proxy-only network.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._proxy import ProxyResolver, ProxyRoute
from airflow_provider_pixazo.hooks._settings import ConnectionSettings

P1 = "http://127.0.0.1:3128"
P2 = "http://proxy2.corp:8080"
URLS = (
    "http://127.0.0.1:8080/v2/requests/status/x",
    "https://127.0.0.1:8443/v2/requests/status/x",
    "http://localhost:8080/",
    "https://gateway.pixazo.ai/v2/requests/status/x",
    "https://cdn.gateway.pixazo.ai/media/1.png",
    "http://[::1]:8080/",
    "https://example.com/",
)
ENVIRONMENTS = [
    {},
    {"HTTP_PROXY": P1},
    {"HTTPS_PROXY": P1},
    {"http_proxy": P1, "https_proxy": P2},
    {"ALL_PROXY": P2},
    {"ALL_PROXY": P2, "HTTPS_PROXY": P1},
    {"HTTPS_PROXY": P1, "NO_PROXY": "localhost,127.0.0.1,::1"},
    {"HTTPS_PROXY": P1, "HTTP_PROXY": P1, "NO_PROXY": "pixazo.ai"},
    {"HTTPS_PROXY": P1, "NO_PROXY": ".pixazo.ai"},
    {"HTTPS_PROXY": P1, "NO_PROXY": "*"},
    {"HTTPS_PROXY": "127.0.0.1:3128"},  # no scheme: httpx assumes http://
    {"HTTPS_PROXY": "http://user:pw@127.0.0.1:3128"},
]


def _httpx_choice(client: httpx.Client, url: httpx.URL) -> tuple[str, str, int] | None:
    pool = client._transport_for_url(url)._pool  # type: ignore[attr-defined]
    proxy = getattr(pool, "_proxy_url", None)
    return None if proxy is None else (proxy.scheme.decode(), proxy.host.decode(), proxy.port)


def _our_choice(route: ProxyRoute | None) -> tuple[str, str, int] | None:
    return None if route is None else (route.url.scheme, route.url.host, route.address[1])


@pytest.mark.parametrize("variables", ENVIRONMENTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "none")
def test_environment_routing_matches_httpx(clean_proxy_env: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        clean_proxy_env.setenv(name, value)
    reference = httpx.Client()
    ours = ProxyResolver()
    for raw in URLS:
        url = httpx.URL(raw)
        assert _our_choice(ours.route_for(url)) == _httpx_choice(reference, url), raw


def test_explicit_proxy_matches_httpx(clean_proxy_env: pytest.MonkeyPatch) -> None:
    clean_proxy_env.setenv("NO_PROXY", "*")
    reference = httpx.Client(proxy=P2)
    ours = ProxyResolver(P2)
    for raw in URLS:
        url = httpx.URL(raw)
        assert _our_choice(ours.route_for(url)) == _httpx_choice(reference, url) == ("http", "proxy2.corp", 8080)


def test_credentials_become_a_basic_header_and_leave_the_url() -> None:
    route = ProxyRoute.from_url("http://alice:s3cret@127.0.0.1:3128")
    assert route.url == httpx.URL("http://127.0.0.1:3128")
    assert route.authorization == b"Basic YWxpY2U6czNjcmV0"
    assert "s3cret" not in repr(route)
    assert "YWxpY2U6czNjcmV0" not in repr(route)


@pytest.mark.asyncio
async def test_two_connections_with_different_network_settings_never_share_a_transport() -> None:
    try:
        plain = ConnectionSettings("https://gw.example.com", "k")
        proxied = ConnectionSettings("https://gw.example.com", "k", proxy=P1)
        insecure = ConnectionSettings("https://gw.example.com", "k", verify=False)
        transports = {id(_clients.shared_async_transport(s)) for s in (plain, proxied, insecure)}
        assert len(transports) == 3
        again = ConnectionSettings("https://gw.example.com", "k", proxy=P1)
        assert _clients.shared_async_transport(again) is _clients.shared_async_transport(proxied)
        assert _clients.shared_async_transport(proxied)._proxies.route_for(httpx.URL(plain.base_url)) is not None
        assert _clients.shared_async_transport(insecure)._verify is False
    finally:
        await _clients.aclose_shared_clients()
        await asyncio.sleep(0)
