"""
httpx answers and failures mapped to the provider's typed errors (:mod:`airflow_provider_pixazo.exceptions`).

The one place it is done: the retry flow (:mod:`airflow_provider_pixazo.retry`) and the status poller
use it. Package-internal; users catch the errors, not these helpers. Not for deciding whether to
retry: that is :func:`airflow_provider_pixazo.retry.should_retry`.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Mapping
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
    PixazoTLSError,
    PixazoTransportError,
)

__all__ = ["error_from_exception", "error_from_response", "parse_retry_after", "uncertain_submit"]

# Exceptions httpx raises before a single byte of the request went out: safe to resend a submit.
# (ProxyError: the proxy refused the CONNECT tunnel, so the request never reached Pixazo.)
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


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


def error_from_exception(exc: httpx.TransportError) -> PixazoTransportError | PixazoTLSError:
    """Map an httpx network error, remembering whether the request could have reached Pixazo."""
    request = exc.request if _has_request(exc) else None
    where = f" on {request.method} {request.url.path}" if request is not None else ""
    refused = _certificate_error(exc)
    if refused is not None:
        host = request.url.host if request is not None else None
        reason = f"certificate verify failed: {refused.verify_message}" if refused.verify_message else str(refused)
        return PixazoTLSError(
            f"The TLS certificate of {host or 'the server'} was not trusted ({reason}); "
            "nothing was sent. If it is signed by a private CA, set the connection extra 'verify' to that CA's "
            "bundle file (or SSL_CERT_FILE); verify=false turns checking off.",
            host=host,
        )
    return PixazoTransportError(
        f"Network error talking to Pixazo{where}: {type(exc).__name__}: {exc or 'no detail'}",
        request_sent=not isinstance(exc, _NOT_SENT),
    )


def uncertain_submit(request: httpx.Request, cause: PixazoError, started: float) -> PixazoSubmitUncertainError:
    """The error for a submit that may have been accepted: never resent, and says how to check."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() - (time.monotonic() - started)))
    return PixazoSubmitUncertainError(
        f"The submit to {request.url.path} failed after its body may have reached Pixazo ({cause}). "
        "It may have been accepted and charged, so it was NOT sent again. Before re-running this task, "
        f"look for a request created around {when} in your Pixazo dashboard (or at your webhook, if one "
        "was set); if there is one, wait for it with PixazoRequestSensor(request_id=...) instead."
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, which holds either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(body: Any) -> str:
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))
    return str(body) if body else "no details"


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    # httpx (through httpcore) and the triggers' transport both chain the ssl error as a cause.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when no request is attached
    except RuntimeError:
        return False
    return True
