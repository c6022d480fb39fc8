"""
Talking HTTP to Pixazo: connection settings, authentication, error mapping and the retry loop.

Everything here that does not touch the network is shared by the sync and async halves of
:class:`~airflow_provider_pixazo.hooks.pixazo.PixazoHook`. The retry rule is written once, as the
generator :func:`exchange`; :func:`drive_sync` and :func:`drive_async` only send, sleep and feed the
outcome back, exactly as httpx drives its ``Auth.auth_flow`` with two small loops.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
import weakref
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_pixazo.exceptions import (
    PixazoAPIError,
    PixazoAuthError,
    PixazoBadRequestError,
    PixazoError,
    PixazoInsufficientBalanceError,
    PixazoNotFoundError,
    PixazoRateLimitError,
    PixazoServerError,
    PixazoSubmitUncertainError,
    PixazoTransportError,
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks._pool import KeepAliveTransport
from airflow_provider_pixazo.retry import RetryPolicy, parse_retry_after, should_retry

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://gateway.pixazo.ai"
DEFAULT_TIMEOUT = 30.0
API_KEY_HEADER = "Ocp-Apim-Subscription-Key"
USER_AGENT = "airflow-provider-pixazo"

# A poll every few seconds must reuse its TCP connection: httpx's default 5 s keep-alive expiry
# would make every poll of a slow job open a new one.
KEEPALIVE_EXPIRY = 120.0
# The sync client's pool (the async one runs on hooks/_pool.py's transport, which has its own bound).
POOL_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_EXPIRY)

# Requests in flight at once from one triggerer loop to one gateway; more would only queue on the server.
ASYNC_MAX_CONNECTIONS = 16

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

# Exceptions httpx raises before a single byte of the request went out: safe to resend a submit.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class ConnectionSettings:
    """
    What the hook needs from an Airflow connection.

    :param base_url: scheme, host, port (and optional path prefix) of the gateway.
    :param api_key: the subscription key. Kept out of ``repr``.
    :param timeout: seconds allowed for each read (connects get at most 10 s).
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """(scheme, host, port) of the gateway: the only place the API key is ever sent."""
        return _origin(httpx.URL(self.base_url))

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
    return ConnectionSettings(base_url=base_url.rstrip("/"), api_key=api_key, timeout=timeout)


class PixazoAuth(httpx.Auth):
    """
    Adds the subscription key, and only to requests for the gateway's own origin.

    A URL taken from a response can never carry the key to another host. Redirects are not followed
    by the API clients at all (``follow_redirects=False``): httpx would copy this header onto a
    redirect hop, since auth runs once per ``send``, not per hop.
    """

    def __init__(self, api_key: str, origin: tuple[str, str, int | None]) -> None:
        self._api_key = api_key
        self._origin = origin

    def __repr__(self) -> str:
        return f"PixazoAuth(origin={self._origin!r}, api_key=<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the key header on same-origin requests; strip it from any other."""
        if _origin(request.url) == self._origin:
            request.headers[API_KEY_HEADER] = self._api_key
        else:
            request.headers.pop(API_KEY_HEADER, None)
        yield request


def client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """Arguments shared by the sync and async API clients."""
    return {
        "base_url": settings.base_url,
        "auth": PixazoAuth(settings.api_key, settings.origin),
        "timeout": settings.httpx_timeout,
        "headers": {"Cache-Control": "no-cache", "User-Agent": USER_AGENT},
        # Never follow a redirect with the key: Pixazo's API does not redirect.
        "follow_redirects": False,
    }


def error_from_response(response: httpx.Response, *, request_id: str | None = None) -> PixazoAPIError:
    """Map an HTTP error answer to the provider's typed error (body must already be read)."""
    status = response.status_code
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500] or None
    detail = _describe(body)
    where = f"{response.request.method} {response.request.url.path}"
    kwargs: dict[str, Any] = {"http_status": status, "request_id": request_id, "body": body}
    if status in (401, 403):
        word = "unauthorized" if status == 401 else "forbidden"
        return PixazoAuthError(
            f"Pixazo refused the API key ({status} {word}) on {where}: {detail}. "
            "Check the password of the Pixazo connection.",
            **kwargs,
        )
    if status == 402:
        return PixazoInsufficientBalanceError(
            f"Pixazo: insufficient balance (402) on {where}: {detail}. Top up the Pixazo wallet.", **kwargs
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return PixazoRateLimitError(f"Pixazo rate limit (429) on {where}: {detail}", retry_after=retry_after, **kwargs)
    if status >= 500:
        return PixazoServerError(f"Pixazo server error ({status}) on {where}: {detail}", **kwargs)
    if status == 404:
        return PixazoNotFoundError(f"Pixazo: not found (404) on {where}: {detail}", **kwargs)
    if status == 400:
        return PixazoBadRequestError(f"Pixazo refused the request (400) on {where}: {detail}", **kwargs)
    return PixazoAPIError(f"Pixazo answered {status} on {where}: {detail}", **kwargs)


def error_from_exception(exc: httpx.TransportError) -> PixazoTransportError:
    """Map an httpx network error, remembering whether the request could have reached Pixazo."""
    request = exc.request if _has_request(exc) else None
    where = f" on {request.method} {request.url.path}" if request is not None else ""
    return PixazoTransportError(
        f"Network error talking to Pixazo{where}: {type(exc).__name__}: {exc or 'no detail'}",
        request_sent=not isinstance(exc, _NOT_SENT),
    )


Outcome = httpx.Response | httpx.TransportError


def exchange(
    request: httpx.Request,
    policy: RetryPolicy,
    *,
    submit: bool = False,
    request_id: str | None = None,
) -> Generator[httpx.Request | float, Outcome, httpx.Response]:
    """
    The retry rule: yields the request to send or seconds to sleep; returns the successful response.

    The caller sends each yielded request and feeds back the response or the httpx exception.

    :param submit: True for a paid submit, which is resent only when Pixazo provably did not take it.
    :raises PixazoError: the mapped error once retrying is not allowed or attempts are spent.
    """
    started = time.monotonic()
    for attempt in itertools.count(1):
        outcome = yield request
        if isinstance(outcome, httpx.Response) and outcome.is_success:
            return outcome
        error: PixazoError = (
            error_from_exception(outcome)
            if isinstance(outcome, httpx.TransportError)
            else error_from_response(outcome, request_id=request_id)
        )
        if not should_retry(error, submit=submit):
            if submit and error.transient:
                raise uncertain_submit(request, error, started) from error
            raise error
        if attempt >= policy.max_attempts:
            raise error
        delay = policy.delay(attempt, getattr(error, "retry_after", None))
        log.warning("%s (attempt %d of %d); retrying in %.1fs", error, attempt, policy.max_attempts, delay)
        yield delay
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends


def uncertain_submit(request: httpx.Request, cause: PixazoError, started: float) -> PixazoSubmitUncertainError:
    """The error for a submit that may have been accepted: never resent, and says how to check."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() - (time.monotonic() - started)))
    return PixazoSubmitUncertainError(
        f"The submit to {request.url.path} failed after its body may have reached Pixazo ({cause}). "
        "It may have been accepted and charged, so it was NOT sent again. Before re-running this task, "
        f"look for a request created around {when} in your Pixazo dashboard (or at your webhook, if one "
        "was set); if there is one, wait for it with PixazoRequestSensor(request_id=...) instead."
    )


def drive_sync(
    flow: Generator[httpx.Request | float, Outcome, httpx.Response],
    client: httpx.Client,
    *,
    stream: bool = False,
) -> httpx.Response:
    """Run :func:`exchange` with a sync client."""
    try:
        step = next(flow)
        while True:
            if not isinstance(step, httpx.Request):
                time.sleep(step)
                step = next(flow)
                continue
            outcome: Outcome
            try:
                response = client.send(step, stream=stream)
                if stream and not response.is_success:
                    # Error bodies are small; read them so the error can quote Pixazo's message.
                    response.read()
                    response.close()
                outcome = response
            except httpx.TransportError as exc:
                outcome = exc
            step = flow.send(outcome)
    except StopIteration as done:
        result: httpx.Response = done.value
        return result


async def drive_async(
    flow: Generator[httpx.Request | float, Outcome, httpx.Response],
    client: httpx.AsyncClient,
) -> httpx.Response:
    """Run :func:`exchange` with an async client."""
    try:
        step = next(flow)
        while True:
            if not isinstance(step, httpx.Request):
                await asyncio.sleep(step)
                step = next(flow)
                continue
            try:
                outcome: Outcome = await client.send(step)
            except httpx.TransportError as exc:
                outcome = exc
            step = flow.send(outcome)
    except StopIteration as done:
        response: httpx.Response = done.value
        return response


# One pooled AsyncClient per event loop and connection: every trigger waiting in a triggerer's loop
# shares it, so a poll costs one request on a warm connection, not a TLS handshake. The loop is a
# weak key, so a finished loop (a test's, say) takes its clients with it.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, float], httpx.AsyncClient]]
_ASYNC_CLIENTS = weakref.WeakKeyDictionary()


def shared_async_client(settings: ConnectionSettings) -> httpx.AsyncClient:
    """The pooled client of the running loop for these settings, made on first use."""
    clients = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(settings.cache_key)
    if client is None or client.is_closed:
        transport = KeepAliveTransport(max_connections=ASYNC_MAX_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY)
        client = clients[settings.cache_key] = httpx.AsyncClient(**client_kwargs(settings), transport=transport)
    return client


async def aclose_shared_clients() -> None:
    """Close the running loop's pooled clients (for tests and orderly shutdowns)."""
    clients = _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()


def check_media_url(url: Any, settings: ConnectionSettings) -> httpx.URL:
    """
    Accept a media URL only over https, or from the gateway's own origin (the local emulator).

    :raises PixazoValidationError: for any other URL.
    """
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is not None and parsed.host and (parsed.scheme == "https" or _origin(parsed) == settings.origin):
        return parsed
    raise PixazoValidationError(
        "media_url",
        url,
        f"media is downloaded only over https or from the connection's own {settings.base_url}",
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default_port)


def _describe(body: Any) -> str:
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))
    return str(body) if body else "no details"


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when no request is attached
    except RuntimeError:
        return False
    return True
