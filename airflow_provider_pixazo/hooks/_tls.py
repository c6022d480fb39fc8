"""
The TLS context of every client the hook makes, from the connection's ``verify`` setting.

One place, so the sync API client, the media client and the triggers' own transport verify
certificates the same way, and the same way httpx would with ``verify=...``.

Loading a CA bundle costs 30-140 ms (certifi's holds ~150 certificates), and a task used to pay it
twice (API client and media client), even for an ``http://`` gateway. So contexts are made once per
process per TLS setting and shared (an ``ssl.SSLContext`` is safe to share between threads and
clients once configured), and the httpx clients get a stand-in (:func:`deferred_ssl_context`) that
asks for the context only when a connection actually needs TLS.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

import httpx

__all__ = ["clear_cache", "deferred_ssl_context", "ssl_context"]

# What every context made here offers in the TLS handshake: our clients (httpx with http2 off, and
# the keep-alive transport) speak HTTP/1.1 only. Set once when the context is made, so httpcore's
# per-connection set_alpn_protocols never has to mutate a context other threads are using.
_ALPN = ("http/1.1",)
# Different settings a process meets are few; a CA file that keeps changing must not grow this forever.
_MAX_CONTEXTS = 16

_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
_lock = threading.Lock()

# (kind, path): kind is "off" (no verification), "file" (a CA bundle) or "dir" (hashed certificates).
_Source = tuple[str, str | None]


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """
    The process's ``ssl.SSLContext`` for ``verify``, with httpx's semantics; made on first use.

    * True: httpx's default: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's bundle (the
      variables as they are now: a changed variable gives a new context, as a new httpx client would).
    * False: no certificate or host name checks.
    * a path: that CA bundle file, or that directory of hashed certificates (``c_rehash`` layout).

    The same setting gets the same context until the CA file or directory changes on disk (its
    modification time or size), then a fresh one. httpx 0.28 deprecates ``verify=<path>`` (a
    DeprecationWarning on each client), so a path is loaded here, exactly as httpx's own branch does.
    The context is shared by every client of the process: use it, never change it.
    """
    return _cached(_key(verify, _ALPN))


def deferred_ssl_context(verify: bool | str) -> Any:
    """
    A stand-in for ``ssl_context(verify)`` to give an httpx client as ``verify=``.

    httpx passes it on untouched; httpcore touches it only when it opens a TLS connection (an
    ``https://`` URL), and then gets the shared context. A client that only ever talks plain http (a
    local gateway, the emulator's media) makes no context at all. The setting, and the
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` variables, are read now, when the client is made, as httpx
    reads them; a CA file that cannot be read fails now too, as it would in httpx.

    For sync ``httpx.Client`` only (the hook's API and media clients): httpcore's sync TLS calls
    ``wrap_socket`` / ``wrap_bio``, which are forwarded, but anyio, under an ``httpx.AsyncClient``,
    checks ``isinstance(ctx, ssl.SSLContext)`` and would refuse it. Async callers use
    :func:`ssl_context` (the triggers' transport does).
    """
    key = _key(verify, _ALPN)
    if key[1] is None:  # the file or directory is missing: raise the error httpx would raise now
        _build(key[0], _ALPN)
    return _DeferredContext(key)


class _DeferredContext:
    """
    Forwards everything to the shared context, which it fetches on first use.

    ``set_alpn_protocols`` (httpcore calls it on every TLS connection) is absorbed when it asks for
    what the shared context already offers, and otherwise selects a context made for those protocols.
    """

    def __init__(self, key: tuple[Any, ...]) -> None:
        self._key = key
        self._context: ssl.SSLContext | None = None

    def _resolved(self) -> ssl.SSLContext:
        context = self._context
        if context is None:
            context = self._context = _cached(self._key)
        return context

    def set_alpn_protocols(self, protocols: list[str]) -> None:
        wanted = tuple(protocols)
        if wanted != self._key[-1]:
            self._key = (*self._key[:-1], wanted)
            self._context = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # our own slots during copy/pickle, or private names: nothing to forward
            raise AttributeError(name)
        return getattr(self._resolved(), name)

    def __repr__(self) -> str:
        state = "made" if self._context is not None else "not made yet"
        return f"<deferred SSLContext for {self._key[0]!r}, {state}>"


def _key(verify: bool | str, alpn: tuple[str, ...]) -> tuple[Any, ...]:
    source = _source(verify)
    # SSLKEYLOGFILE is read by ssl.create_default_context: part of what the context is.
    return (source, _stamp(source), os.environ.get("SSLKEYLOGFILE") or None, alpn)


def _source(verify: bool | str) -> _Source:
    if verify is False:
        return ("off", None)
    if verify is True:
        # httpx.create_ssl_context(verify=True) with trust_env=True, which is how our clients are made.
        if os.environ.get("SSL_CERT_FILE"):
            return ("file", os.environ["SSL_CERT_FILE"])
        if os.environ.get("SSL_CERT_DIR"):
            return ("dir", os.environ["SSL_CERT_DIR"])
        import certifi

        return ("file", certifi.where())
    return ("dir", verify) if os.path.isdir(verify) else ("file", verify)


def _stamp(source: _Source) -> tuple[int, int] | bool | None:
    """What tells a changed CA file or directory from the one a cached context was made from; None if missing."""
    path = source[1]
    if path is None:
        return True
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _cached(key: tuple[Any, ...]) -> ssl.SSLContext:
    context = _contexts.get(key)
    if context is not None:
        return context
    with _lock:
        context = _contexts.get(key)
        if context is None:
            # Built under the lock: two threads asking at once must not load the same bundle twice.
            context = _build(key[0], key[-1])
            while len(_contexts) >= _MAX_CONTEXTS:
                del _contexts[next(iter(_contexts))]
            _contexts[key] = context
    return context


def _build(source: _Source, alpn: tuple[str, ...]) -> ssl.SSLContext:
    kind, path = source
    if kind == "off":
        context = httpx.create_ssl_context(verify=False)
    elif kind == "dir":
        context = ssl.create_default_context(capath=path)
    else:
        context = ssl.create_default_context(cafile=path)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def clear_cache() -> None:
    """Forget every context (for tests)."""
    with _lock:
        _contexts.clear()
