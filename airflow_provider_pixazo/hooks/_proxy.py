"""
Which proxy, if any, a request goes through: httpx's own rules, for the triggers' transport.

httpx decides per client: an explicit ``proxy=`` wins for every URL; otherwise, with
``trust_env`` (the default), ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (either
case, read through :func:`urllib.request.getproxies`) become URL patterns, the most specific
matching pattern wins, and a ``NO_PROXY`` entry maps to "no proxy". The sync clients get that for
free; the triggers' :class:`~airflow_provider_pixazo.hooks._transport.KeepAliveTransport` sits below
httpx's proxy handling, so it asks :class:`ProxyResolver` instead. The resolver uses httpx's own
pattern parser and environment reader (private helpers, pinned by the parity test in
``tests/hooks/test_proxy.py``), so the two can only agree.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx
from httpx._utils import URLPattern, get_environment_proxies

__all__ = ["ProxyResolver", "ProxyRoute"]


@dataclass(frozen=True)
class ProxyRoute:
    """
    A proxy to send through.

    :param url: the proxy's URL, credentials removed (fit for logs).
    :param authorization: the ``Proxy-Authorization`` value from the URL's userinfo, if any.
    """

    url: httpx.URL
    authorization: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str | httpx.URL) -> ProxyRoute:
        """Split a proxy URL into where to connect and how to authenticate (as :class:`httpx.Proxy` does)."""
        proxy = httpx.Proxy(url)
        authorization = None
        if proxy.raw_auth is not None:
            authorization = b"Basic " + base64.b64encode(b":".join(proxy.raw_auth))
        return cls(url=proxy.url, authorization=authorization)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to open a TCP connection to."""
        return self.url.host, self.url.port or (443 if self.url.scheme == "https" else 80)


class ProxyResolver:
    """
    Maps a request URL to its :class:`ProxyRoute`, or None for a direct connection.

    The environment is read once, here, as httpx reads it once per client.

    :param proxy: an explicit proxy URL, used for every URL (httpx's ``proxy=``).
    :param trust_env: read the ``*_PROXY`` variables when no explicit proxy is given.
    """

    def __init__(self, proxy: str | None = None, *, trust_env: bool = True) -> None:
        mounts: dict[str, str | None]
        if proxy is not None:
            mounts = {"all://": proxy}
        elif trust_env:
            mounts = get_environment_proxies()
        else:
            mounts = {}
        routes = {URLPattern(key): None if url is None else url for key, url in mounts.items()}
        # httpx sorts its mounts the same way: the most specific pattern is tried first.
        self._patterns: list[tuple[URLPattern, str | None]] = sorted(routes.items())
        self._routes: dict[str, ProxyRoute] = {}

    def route_for(self, url: httpx.URL) -> ProxyRoute | None:
        """
        The proxy for ``url``, or None to connect directly.

        :raises httpx.UnsupportedProtocol: for a SOCKS proxy (this transport speaks HTTP proxies only).
        """
        for pattern, proxy_url in self._patterns:
            if pattern.matches(url):
                if proxy_url is None:
                    return None
                route = self._routes.get(proxy_url)
                if route is None:
                    route = self._routes[proxy_url] = ProxyRoute.from_url(proxy_url)
                if route.url.scheme not in ("http", "https"):
                    raise httpx.UnsupportedProtocol(
                        f"Proxy {route.url} for {url.host}: only http:// and https:// proxies are supported "
                        "for Pixazo status polls"
                    )
                return route
        return None
