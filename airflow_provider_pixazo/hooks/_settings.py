"""
What the hook reads from a ``pixazo`` Airflow connection: the gateway's URL, the key and the timeout.

Parsing and checking only; no HTTP is sent from here (clients are made in :mod:`._clients`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_pixazo.exceptions import PixazoValidationError

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "ConnectionSettings", "origin_of", "settings_from_connection"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://gateway.pixazo.ai"
DEFAULT_TIMEOUT = 30.0
#: Status calls per second one triggerer loop may send for one connection, unless the extra says otherwise.
DEFAULT_MAX_POLLS_PER_SECOND = 20.0

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class ConnectionSettings:
    """
    What the hook needs from an Airflow connection.

    :param base_url: scheme, host, port (and optional path prefix) of the gateway.
    :param api_key: the subscription key. Kept out of ``repr``.
    :param timeout: seconds allowed for each read (connects get at most 10 s).
    :param max_polls_per_second: the most status calls a triggerer loop sends for this connection
        (extra ``max_polls_per_second``); the poller stays below it and below what the gateway allows.
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_polls_per_second: float = DEFAULT_MAX_POLLS_PER_SECOND

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """(scheme, host, port) of the gateway: the only place the API key is ever sent."""
        return origin_of(httpx.URL(self.base_url))

    @property
    def httpx_timeout(self) -> httpx.Timeout:
        """The timeout as httpx wants it; never None, so no call can hang forever."""
        return httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))

    @property
    def cache_key(self) -> tuple[str, str, float]:
        """Identifies a pooled client without holding the key itself in the pool's keys."""
        digest = hashlib.sha256(self.api_key.encode()).hexdigest()
        return (self.base_url, digest, self.timeout)


def settings_from_connection(conn: Any) -> ConnectionSettings:
    """
    Read a ``pixazo`` connection: key in the password, optional host (a bare host or a full URL).

    :raises PixazoValidationError: when the key is missing or the host is not http(s).
    """
    api_key = (conn.password or "").strip()
    if not api_key:
        raise PixazoValidationError(
            "password",
            "<empty>",
            f"connection {conn.conn_id!r} needs the Pixazo API key in its password field",
        )
    host = (conn.host or "").strip()
    if not host:
        base_url = DEFAULT_BASE_URL
    elif "://" in host:
        base_url = host
        given = httpx.URL(host)
        if conn.port and given.port is None:
            base_url = str(given.copy_with(port=int(conn.port)))
    else:
        scheme = conn.schema if conn.schema in ("http", "https") else "https"
        base_url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise PixazoValidationError("host", host, "an http(s) URL or a host name, e.g. gateway.pixazo.ai")
    if url.scheme == "http" and url.host not in _LOOPBACK_HOSTS:
        log.warning("Connection %s sends the Pixazo API key over plain http to %s", conn.conn_id, url.host)

    extra = conn.extra_dejson if conn.extra else {}
    raw_timeout = extra.get("timeout", extra.get("extra__pixazo__timeout"))
    try:
        timeout = DEFAULT_TIMEOUT if raw_timeout in (None, "") else float(raw_timeout)
    except (TypeError, ValueError):
        timeout = -1.0
    if not timeout > 0:
        raise PixazoValidationError("timeout", raw_timeout, "a positive number of seconds in the connection extra")
    return ConnectionSettings(
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        timeout=timeout,
        max_polls_per_second=_max_polls_per_second(extra),
    )


def _max_polls_per_second(extra: dict[str, Any]) -> float:
    raw = extra.get("max_polls_per_second", extra.get("extra__pixazo__max_polls_per_second"))
    if raw in (None, ""):
        return DEFAULT_MAX_POLLS_PER_SECOND
    try:
        value = -1.0 if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not 0 < value <= 10_000:
        raise PixazoValidationError(
            "max_polls_per_second",
            raw,
            "a number of status calls per second above 0 and at most 10000 in the connection extra, e.g. 20",
        )
    return value


def origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in from the scheme when absent."""
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default_port)
