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

Which httpx answer or failure becomes which of these errors is decided next door, in
:mod:`airflow_provider_pixazo.error_mapping`.
"""

from __future__ import annotations

from typing import Any

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

    # Deliberate twin of PixazoDestinationConflictError.__init__ (same shape): each error keeps its
    # facts as typed attributes for handlers and says them in its message; a shared helper would hide
    # the attributes from type checkers and readers.
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

    # Deliberate twin of PixazoTimeoutError.__init__ (same shape): facts as typed attributes, and in
    # the message.
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
