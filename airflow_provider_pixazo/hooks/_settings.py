"""
What the hook reads from a ``pixazo`` Airflow connection: gateway URL, key, timeout, TLS and proxy.

Parsing and checking only; no HTTP is sent from here (clients are made in :mod:`._clients`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.hooks._tls import ssl_context

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ConnectionSettings",
    "origin_of",
    "parse_proxy",
    "parse_verify",
    "redact_proxy_url",
    "settings_from_connection",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://gateway.pixazo.ai"
DEFAULT_TIMEOUT = 30.0
#: No cap on the status calls a triggerer loop sends for one connection unless the extra sets one: the
#: poller follows what the waits ask for and learns the gateway's limit from its 429s (hooks/_pacing.py).
DEFAULT_MAX_POLLS_PER_SECOND: float | None = None

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

_VERIFY_ALLOWED = (
    "true (the default: system CAs, or SSL_CERT_FILE / SSL_CERT_DIR), false (no TLS verification), "
    "or the path of an existing PEM CA bundle file or certificate directory"
)
_PROXY_ALLOWED = (
    "an http:// or https:// proxy URL with a host, e.g. http://proxy.corp:3128 or http://user:password@proxy:8080 "
    "(leave it empty to use HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY from the environment)"
)
# user:password@ in a URL, so a proxy's password never reaches a log or an error message.
_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")


@dataclass(frozen=True)
class ConnectionSettings:
    """
    What the hook needs from an Airflow connection.

    :param base_url: scheme, host, port (and optional path prefix) of the gateway.
    :param api_key: the subscription key. Kept out of ``repr``.
    :param timeout: seconds allowed for each read (connects get at most 10 s).
    :param verify: TLS verification of every call (API, status polls, media): True (system CAs, or
        ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as httpx reads them), False, or the path of a CA bundle
        file or certificate directory.
    :param proxy: a proxy URL used for every call instead of the environment's ``*_PROXY`` variables;
        None to follow the environment as httpx does. May hold credentials: kept out of ``repr``.
    :param max_polls_per_second: a hard cap on the status calls a triggerer loop sends a second for
        this connection (extra ``max_polls_per_second``); None (the default): no cap, the poller stays
        just below what the gateway accepts, learned from its 429s.
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    proxy: str | None = field(default=None, repr=False)
    max_polls_per_second: float | None = DEFAULT_MAX_POLLS_PER_SECOND

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """(scheme, host, port) of the gateway: the only place the API key is ever sent."""
        return origin_of(httpx.URL(self.base_url))

    @property
    def httpx_timeout(self) -> httpx.Timeout:
        """The timeout as httpx wants it; never None, so no call can hang forever."""
        return httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))

    @functools.cached_property
    def cache_key(self) -> tuple[str, str, float, bool | str, str | None]:
        """
        Identifies a pooled client without holding the key (or a proxy password) in the pool's keys.

        Computed once per settings object: a waiting trigger looks its client up on every poll.
        """
        digest = hashlib.sha256(self.api_key.encode()).hexdigest()
        proxy = None if self.proxy is None else hashlib.sha256(self.proxy.encode()).hexdigest()
        return (self.base_url, digest, self.timeout, self.verify, proxy)


def settings_from_connection(conn: Any) -> ConnectionSettings:
    """
    Read a ``pixazo`` connection: key in the password, optional host (a bare host or a full URL).

    :raises PixazoValidationError: when the key is missing or not printable ASCII, or the host is not http(s).
    """
    api_key = (conn.password or "").strip()
    if not api_key:
        raise PixazoValidationError(
            "password",
            "<empty>",
            f"connection {conn.conn_id!r} needs the Pixazo API key in its password field",
        )
    if not (api_key.isascii() and api_key.isprintable()):
        # The key goes out as an HTTP header value: a control character (CR, LF, NUL...) would split
        # the request, and a non-ASCII one makes httpx raise an error quoting that character. Refused
        # here, before any client or status GET is built, with the value never shown.
        raise PixazoValidationError(
            "password",
            "<hidden>",
            f"connection {conn.conn_id!r} needs an API key of printable ASCII characters only "
            "(letters, digits, punctuation, spaces; no control characters such as CR, LF, TAB or NUL, "
            "no accented or other non-ASCII characters)",
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
    verify = parse_verify(extra.get("verify", extra.get("extra__pixazo__verify")))
    if verify is False:
        log.warning("Connection %s turns TLS certificate verification off (extra verify=false)", conn.conn_id)
    proxy = parse_proxy(extra.get("proxy", extra.get("extra__pixazo__proxy")))
    return ConnectionSettings(
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        timeout=timeout,
        verify=verify,
        proxy=proxy,
        max_polls_per_second=_max_polls_per_second(extra),
    )


def parse_verify(raw: Any) -> bool | str:
    """
    The ``verify`` extra: a bool (JSON or the words true/false), or a CA bundle path that exists and loads.

    The bundle is loaded here once, so a wrong file fails the task before any HTTP call instead of
    as a TLS error on the first request.

    :raises PixazoValidationError: for any other value.
    """
    if raw is None or raw == "":
        return True
    if isinstance(raw, bool):
        return raw
    if not isinstance(raw, str):
        raise PixazoValidationError("verify", raw, _VERIFY_ALLOWED)
    word = raw.strip()
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    path = os.path.expanduser(word)
    if os.path.isdir(path):
        return path
    try:
        stat = os.stat(path)
    except OSError:
        raise PixazoValidationError("verify", raw, f"{_VERIFY_ALLOWED}; no such file or directory") from None
    problem = _ca_bundle_problem(path, stat.st_mtime_ns, stat.st_size)
    if problem is not None:
        raise PixazoValidationError(
            "verify", raw, f"{_VERIFY_ALLOWED}; the file could not be loaded as CA certificates ({problem})"
        )
    return path


@functools.lru_cache(maxsize=32)
def _ca_bundle_problem(path: str, mtime_ns: int, size: int) -> str | None:
    # Every trigger reads its connection once: with thousands waiting on one connection, the bundle
    # is loaded once per version of the file (path, mtime, size), not once per trigger. The context
    # made here is the one the process's clients share (hooks/_tls.py): checking it costs no extra load.
    try:
        ssl_context(path)
    except (ssl.SSLError, OSError, ValueError) as err:
        return str(err)
    return None


def parse_proxy(raw: Any) -> str | None:
    """
    The ``proxy`` extra: an http(s) proxy URL, or nothing (then the environment decides, as in httpx).

    :raises PixazoValidationError: for a value that is not such a URL; the message masks any password.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise PixazoValidationError("proxy", raw, _PROXY_ALLOWED)
    text = raw.strip()
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        raise PixazoValidationError("proxy", redact_proxy_url(text), _PROXY_ALLOWED) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise PixazoValidationError("proxy", redact_proxy_url(text), _PROXY_ALLOWED)
    return text


def redact_proxy_url(url: str) -> str:
    """``url`` with the password of its userinfo (if any) replaced by ``***``."""
    return _USERINFO_PASSWORD.sub(r"\1***@", url)


def _max_polls_per_second(extra: dict[str, Any]) -> float | None:
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
            "a number of status calls per second above 0 and at most 10000 in the connection extra, e.g. 20 "
            "(or no value: no cap, the rate the gateway accepts is learned from its 429s)",
        )
    return value


def origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in from the scheme when absent."""
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default_port)
