"""
The bytes of a status poll: a prebuilt HTTP/1.1 GET, and a strict reader for the usual answer to it.

A waiting trigger's poll is the same GET again and again. :class:`StatusTemplate` builds, once per
connection read, everything but the path: the header block (``Host``, ``Cache-Control``,
``User-Agent`` and the key), checked by h11 once so nothing unchecked ever goes out. A
:class:`StatusGet` is one wait's path on that template. :func:`parse_head` reads the usual answer
(an HTTP/1.1 status line, plain ``name: value`` headers, a ``Content-Length`` body) and returns None
for anything else (chunked, ``Connection: close``, 1xx/204/304, HTTP/1.0, a repeated or odd length,
folded or malformed lines, a bad status line), which the transport then hands to h11, so an unusual
answer is read, or refused, exactly as on the general path. No I/O here
(:class:`~airflow_provider_pixazo.hooks._transport.KeepAliveTransport` sends and reads; any other
httpx transport, a test's mock say, gets the same GET through :func:`send_by_httpx`).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import h11
import httpx

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "StatusAnswer",
    "StatusGet",
    "StatusHead",
    "StatusTemplate",
    "parse_head",
    "read_timeout",
    "send_by_httpx",
]

#: Longest response head the status path accepts (h11's own limit for an incomplete head); longer is an error.
MAX_HEAD = 16 * 1024
#: Largest status body the status path reads (its answers are a few hundred bytes); larger is an error,
#: so a broken or hostile server cannot make a waiting trigger buffer gigabytes.
MAX_BODY = 1024 * 1024

Origin = tuple[bytes, bytes, int]

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([2-5][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?")
# RFC 9110 token, then the value without control characters (no obs-fold: a leading space goes to h11).
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")
_DIGITS = re.compile(rb"[0-9]{1,15}")
# Segments of unreserved characters, none starting with a dot (so no "." or ".." segment).
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)+")
# Answers without a body whatever their headers say, or with more than one message: h11's business.
_NO_FAST_PATH_STATUS = frozenset({204, 304})


class StatusTemplate:
    """
    What every status GET of one connection read shares: origin, header block, timeouts.

    :param base_url: the gateway's base URL (scheme, host, port and optional path prefix).
    :param headers: request headers as ``(name, value)`` pairs (``Host`` is added from ``base_url``).
    :param timeouts: httpx's timeout dict (``connect``, ``read``...) for these polls.
    """

    __slots__ = ("absolute_prefix", "base_path", "base_url", "block", "headers", "origin", "timeouts")

    def __init__(self, base_url: str, headers: dict[str, str], timeouts: dict[str, float | None]) -> None:
        # httpx parses the URL and computes Host as it would for a client request.
        template = httpx.Request("GET", base_url.rstrip("/") + "/", headers=headers)
        url = template.url
        raw = [(bytes(name), bytes(value)) for name, value in template.headers.raw]
        # h11 checks names and values (no CR, LF or NUL): the block below is sent as is afterwards.
        h11.Connection(h11.CLIENT).send(h11.Request(method=b"GET", target=b"/", headers=raw))
        self.base_url = base_url.rstrip("/")
        self.origin: Origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(raw)
        self.block = b"".join(b"%s: %s\r\n" % pair for pair in raw)
        # The base URL's path, to which a plain status path is appended as is (None: a query, say).
        self.base_path: bytes | None = None if b"?" in url.raw_path else url.raw_path.rstrip(b"/")
        #: ``scheme://host[:port]`` before the path when a forwarding proxy needs the absolute form.
        self.absolute_prefix = b"%s://%s" % (url.raw_scheme, url.netloc)
        self.timeouts = timeouts

    def get(self, path: str) -> StatusGet:
        """The status GET of ``path`` (below the base URL; already validated by the caller)."""
        if self.base_path is not None and _PLAIN_PATH.fullmatch(path):
            # Unreserved characters only, no dot segments: httpx would neither encode nor normalise it,
            # and it cannot leave the origin. Parsing a URL per wait was most of a wait's set-up cost.
            return StatusGet(self, self.base_path + path.encode("ascii"))
        full = httpx.URL(self.base_url + path)
        if (full.raw_scheme, full.raw_host, full.port or self.origin[2]) != self.origin:
            raise ValueError(f"{path!r} leaves the gateway's origin")  # the key goes to the gateway only
        return StatusGet(self, full.raw_path)


class StatusGet:
    """One wait's status GET: its target path on a shared :class:`StatusTemplate`."""

    __slots__ = ("path", "template")

    def __init__(self, template: StatusTemplate, path: bytes) -> None:
        self.template = template
        self.path = path

    @property
    def origin(self) -> Origin:
        """(scheme, host, port) of the gateway, as the transport keys its connections."""
        return self.template.origin

    def target(self, absolute_form: bool) -> bytes:
        """The request target: the path, or ``http://host/path`` for a forwarding proxy."""
        return self.template.absolute_prefix + self.path if absolute_form else self.path

    def wire(self, absolute_form: bool, extra: bytes) -> bytes:
        """The whole request, with ``extra`` header lines (``Proxy-Authorization`` to a forwarding proxy)."""
        return b"GET %s HTTP/1.1\r\n%s%s\r\n" % (self.target(absolute_form), self.template.block, extra)

    def as_request(self, *, sendable: bool = False) -> httpx.Request:
        """
        The GET as an ``httpx.Request``: method and URL only by default (for errors; never the key).

        ``sendable`` adds the headers (with the key, for this same URL) and timeouts, for a plain
        httpx transport.
        """
        url = self.template.absolute_prefix.decode("ascii") + self.path.decode("ascii")
        if not sendable:
            return httpx.Request("GET", url)
        return httpx.Request(
            "GET", url, headers=list(self.template.headers), extensions={"timeout": self.template.timeouts}
        )


class StatusHead(NamedTuple):
    """A response head the fast path reads: status, reason, headers (lower-case names), body length."""

    status_code: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    length: int


class StatusAnswer(NamedTuple):
    """What a status poll returns: status code, headers (lower-case names), the raw body, the reason."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reason: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def content(self) -> bytes:
        """The body, decoded as httpx would if it has a ``Content-Encoding``."""
        encoding = self.header(b"content-encoding")
        if encoding is None or encoding.strip().lower() == b"identity":
            return self.body
        return self.to_response(None).content

    def to_response(self, request: httpx.Request | None) -> httpx.Response:
        """The answer as an ``httpx.Response`` (for the error mapping), body decoded by httpx."""
        kwargs: dict[str, Any] = {} if request is None else {"request": request}
        return httpx.Response(
            self.status_code,
            headers=self.headers,
            content=self.body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": self.reason},
            **kwargs,
        )


async def send_by_httpx(transport: httpx.AsyncBaseTransport, get: StatusGet) -> StatusAnswer:
    """
    ``get`` sent on any other httpx transport (a mock, respx): the same request, the same answer shape.

    :class:`~airflow_provider_pixazo.hooks._transport.KeepAliveTransport` has its own ``get_status``.
    """
    response = await transport.handle_async_request(get.as_request(sendable=True))
    try:
        body = await response.aread()  # decoded by httpx: its Content-Encoding is dropped below
    finally:
        await response.aclose()
    headers = [(name.lower(), value) for name, value in response.headers.raw if name.lower() != b"content-encoding"]
    return StatusAnswer(response.status_code, headers, body, response.extensions.get("reason_phrase", b""))


def parse_head(head: bytes) -> StatusHead | None:
    """
    Read a response head (without its final blank line) if it is the usual kind, else None.

    Usual: ``HTTP/1.1 2xx-5xx`` (not 204 or 304), well-formed header lines, exactly one
    ``Content-Length`` (repeats with the same value allowed, as h11 does), no ``Transfer-Encoding``,
    no ``Connection: close``.
    """
    lines = head.split(b"\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        return None
    code = int(status[1])
    if code in _NO_FAST_PATH_STATUS:
        return None
    headers: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    for line in lines[1:]:
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            return None
        name = match[1].lower()
        value = match[2].rstrip(b" \t")  # greedy then stripped: a lazy pattern backtracks on every byte
        if name == b"content-length":
            if _DIGITS.fullmatch(value) is None or (length is not None and value != length):
                return None
            length = value
        elif name == b"transfer-encoding" or (name == b"connection" and b"close" in value.lower()):
            return None
        headers.append((name, value))
    if length is None:
        return None
    return StatusHead(code, status[2] or b"", headers, int(length))


def read_timeout(get: StatusGet) -> httpx.ReadTimeout:
    """The error for a status answer that did not arrive in time: names the host, never the key."""
    host = get.template.origin[1].decode("ascii")
    return httpx.ReadTimeout(f"Timed out reading from {host}", request=get.as_request())
