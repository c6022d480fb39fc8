"""
Errors raised by the Pixazo provider.

Every error is a :class:`PixazoError`. The ones that retrying cannot fix also derive from
Airflow's :class:`~airflow.sdk.exceptions.AirflowFailException`, so the task fails at once
instead of spending its retries (and, for submits, the user's money)::

    PixazoError (AirflowException)
    ├── PixazoValidationError        bad input, raised before any HTTP call      [terminal]
    ├── PixazoAPIError               the gateway answered with an HTTP error
    │   ├── PixazoBadRequestError        400                                     [terminal]
    │   ├── PixazoAuthError              401 / 403: wrong or forbidden key       [terminal]
    │   ├── PixazoInsufficientBalanceError 402                                   [terminal]
    │   ├── PixazoNotFoundError          404: unknown request id or path         [terminal]
    │   ├── PixazoRateLimitError         429, carries ``retry_after``            [transient]
    │   └── PixazoServerError            5xx                                     [transient]
    ├── PixazoTransportError         the network failed (connect, read, protocol) [transient]
    ├── PixazoTLSError               the server's certificate was not trusted     [terminal]
    ├── PixazoSubmitUncertainError   a submit may have reached Pixazo; not retried [terminal]
    ├── PixazoRequestFailedError     the request ended FAILED (Pixazo's reason)   [terminal]
    ├── PixazoRequestErroredError    the request ended ERROR (system error, not charged) [terminal]
    ├── PixazoTimeoutError           waited longer than the timeout               [terminal]
    ├── PixazoWaitAbortedError       a wait stopped for a reason retrying cannot fix [terminal]
    ├── PixazoRequestNotCompletedError  nothing to copy yet (QUEUED/PROCESSING)  [retry later]
    ├── PixazoDestinationConflictError  different content at the target, no overwrite [terminal]
    └── PixazoDownloadError          a media file arrived short or damaged        [transient]

``transient`` errors are retried by the hook with backoff; if they persist they reach the task,
where Airflow's own retries apply. ``terminal`` errors never are. A transient error on a paid submit
is resent only when it proves Pixazo did not take the request (``may_have_been_accepted`` is False):
:func:`airflow_provider_pixazo.retry.should_retry` reads both attributes and nothing else.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx
from airflow.sdk.exceptions import AirflowException, AirflowFailException

__all__ = [
    "PixazoAPIError",
    "PixazoAuthError",
    "PixazoBadRequestError",
    "PixazoDestinationConflictError",
    "PixazoDownloadError",
    "PixazoError",
    "PixazoInsufficientBalanceError",
    "PixazoNotFoundError",
    "PixazoRateLimitError",
    "PixazoRequestErroredError",
    "PixazoRequestFailedError",
    "PixazoRequestNotCompletedError",
    "PixazoServerError",
    "PixazoSubmitUncertainError",
    "PixazoTLSError",
    "PixazoTimeoutError",
    "PixazoTransportError",
    "PixazoValidationError",
    "PixazoWaitAbortedError",
]


class PixazoError(AirflowException):
    """Base of every error raised by this provider."""

    #: True where retrying the same call may succeed.
    transient: bool = False
    #: True where the call may have reached Pixazo and been accepted (and, for a submit, charged).
    may_have_been_accepted: bool = False


class PixazoValidationError(PixazoError, AirflowFailException, ValueError):
    """
    An input was refused before any HTTP call.

    :param parameter: the name of the offending parameter, as the user spelled it.
    :param value: the value given.
    :param allowed: what would have been accepted, in words.
    """

    def __init__(self, parameter: str, value: Any, allowed: str) -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "…"
        super().__init__(f"Invalid {parameter}={shown}: {allowed}")


class PixazoAPIError(PixazoError):
    """
    The gateway answered with an HTTP error status.

    :param message: what went wrong, in words.
    :param http_status: the HTTP status code.
    :param request_id: the Pixazo request id concerned, when there is one.
    :param body: the decoded error body (``{"error": ..., "message": ...}``), when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        self.http_status = http_status
        self.request_id = request_id
        self.body = body
        super().__init__(message)


class PixazoBadRequestError(PixazoAPIError, AirflowFailException):
    """400: the gateway refused the request's content."""


class PixazoAuthError(PixazoAPIError, AirflowFailException):
    """401 or 403: the API key is wrong, inactive or not allowed to use this model."""


class PixazoInsufficientBalanceError(PixazoAPIError, AirflowFailException):
    """402: the Pixazo wallet does not have enough balance for this request."""


class PixazoNotFoundError(PixazoAPIError, AirflowFailException):
    """404: the request id (or the endpoint) does not exist on this gateway."""


class PixazoRateLimitError(PixazoAPIError):
    """
    429: too many requests.

    :param retry_after: seconds the gateway asked to wait (``Retry-After``), if it said.
    """

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class PixazoServerError(PixazoAPIError):
    """5xx: the gateway failed; the same call may succeed later, but it may also have been accepted."""

    transient = True
    may_have_been_accepted = True


class PixazoTransportError(PixazoError):
    """
    The network failed before a complete answer arrived (connect error, timeout, dropped link).

    :param message: what failed, in words.
    :param request_sent: False only when the request provably never left this machine (the
        connection was never made), which is what makes a submit safe to send again.
    """

    transient = True

    def __init__(self, message: str, *, request_sent: bool) -> None:
        self.request_sent = request_sent
        super().__init__(message)

    @property
    def may_have_been_accepted(self) -> bool:  # type: ignore[override]
        """A request that left this machine may have been accepted before the link failed."""
        return self.request_sent


class PixazoTLSError(PixazoError, AirflowFailException):
    """
    The TLS certificate of the gateway (or a media host) was not trusted, so nothing was sent.

    Not retried: the same certificate fails the same way until the connection's ``verify`` extra
    (or ``SSL_CERT_FILE``) names the CA that signed it.

    :param host: the host whose certificate was refused.
    """

    #: The connection extra that fixes it.
    parameter = "verify"

    def __init__(self, message: str, *, host: str | None = None) -> None:
        self.host = host
        super().__init__(message)


class PixazoSubmitUncertainError(PixazoError, AirflowFailException):
    """
    A submit failed after its body may have reached Pixazo, so it may have been accepted (and charged).

    It is never retried automatically: a second submit could pay twice.
    """


class PixazoRequestFailedError(PixazoError, AirflowFailException):
    """
    The request ended with status FAILED.

    :param request_id: the Pixazo request id.
    :param error: Pixazo's reason, verbatim.
    """

    def __init__(self, request_id: str, error: str | None) -> None:
        self.request_id = request_id
        self.error = error
        super().__init__(f"Pixazo request {request_id} FAILED: {error or 'no reason given'}")


class PixazoRequestErroredError(PixazoError, AirflowFailException):
    """
    The request ended with status ERROR: a Pixazo system error, for which the user is not charged.

    :param request_id: the Pixazo request id.
    :param error: Pixazo's description, verbatim.
    """

    def __init__(self, request_id: str, error: str | None) -> None:
        self.request_id = request_id
        self.error = error
        super().__init__(
            f"Pixazo request {request_id} ended in ERROR (a Pixazo system error; not charged): "
            f"{error or 'no description given'}"
        )


class PixazoTimeoutError(PixazoError, AirflowFailException):
    """
    The request did not finish within the allowed time. It may still finish on Pixazo's side.

    :param request_id: the Pixazo request id, to look it up later.
    :param timeout: the time waited, in seconds.
    :param last_status: the last status seen, if any.
    """

    def __init__(self, request_id: str, timeout: float, last_status: str | None = None) -> None:
        self.request_id = request_id
        self.timeout = timeout
        self.last_status = last_status
        super().__init__(
            f"Pixazo request {request_id} did not finish within {timeout:g}s "
            f"(last status: {last_status or 'unknown'}). It may still complete: check it later with "
            f"PixazoRequestSensor(request_id={request_id!r}) or GET /v2/requests/status/{request_id}."
        )


class PixazoWaitAbortedError(PixazoError, AirflowFailException):
    """
    Waiting for a request stopped for a reason retrying cannot fix (unusable connection, 400, 402).

    :param request_id: the request that was being waited on (it may have been paid for).
    :param message: why.
    """

    def __init__(self, request_id: str, message: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"Waiting for Pixazo request {request_id} could not go on: {message or 'no reason given'}. "
            f"The request may still complete: check it later with PixazoRequestSensor(request_id={request_id!r})."
        )


class PixazoRequestNotCompletedError(PixazoError):
    """
    The request is still QUEUED or PROCESSING, so there is nothing to copy yet.

    Not terminal: a task retry (or an upstream ``PixazoRequestSensor``) may find it completed.

    :param request_id: the Pixazo request id.
    :param status: the status Pixazo reported.
    """

    transient = True

    def __init__(self, request_id: str, status: str) -> None:
        self.request_id = request_id
        self.status = str(status)
        super().__init__(
            f"Pixazo request {request_id} is {self.status}, not COMPLETED: there is nothing to copy yet. "
            "Wait for it first (PixazoRequestSensor, or a deferrable generate operator) or let this task retry."
        )


class PixazoDestinationConflictError(PixazoError, AirflowFailException):
    """
    A file with different content already exists where an image would go, and ``overwrite`` is False.

    :param uri: the existing file.
    :param existing_size: its size in bytes.
    :param new_size: the size of the image that would replace it.
    :param new_sha256: the SHA-256 of that image.
    """

    def __init__(self, uri: str, *, existing_size: int | None, new_size: int, new_sha256: str) -> None:
        self.uri = uri
        self.existing_size = existing_size
        self.new_size = new_size
        self.new_sha256 = new_sha256
        super().__init__(
            f"{uri} already exists with different content ({existing_size} bytes; the new image is "
            f"{new_size} bytes, sha256 {new_sha256}). Nothing was written. Pass overwrite=True to replace "
            "it, or choose another destination or path_template."
        )


class PixazoDownloadError(PixazoError):
    """
    A media file arrived short, damaged or not as the image it claims to be; nothing was kept.

    A media URL that is refused outright (plain http to a foreign host, say) is a
    :class:`PixazoValidationError` instead.
    """

    transient = True


# -- mapping httpx answers and failures to these errors: the one place it is done ------------------
# (Package-internal helpers, used by retry.py and the hook; not in __all__, which lists only errors.)

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
