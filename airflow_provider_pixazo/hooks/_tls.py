"""
The TLS context of every client the hook makes, from the connection's ``verify`` setting.

One function, so the sync API client, the media client and the triggers' own transport verify
certificates the same way, and the same way httpx would with ``verify=...``.
"""

from __future__ import annotations

import os
import ssl

import httpx

__all__ = ["ssl_context"]


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """
    An ``ssl.SSLContext`` for ``verify`` with httpx's semantics.

    * True: httpx's default context: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's bundle.
    * False: no certificate or host name checks.
    * a path: that CA bundle file, or that directory of hashed certificates (``c_rehash`` layout).

    httpx 0.28 deprecates ``verify=<path>`` (a DeprecationWarning on each client), so a path is
    loaded here into a context, exactly as httpx's own deprecated branch does.
    """
    if isinstance(verify, bool):
        return httpx.create_ssl_context(verify=verify)
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)
