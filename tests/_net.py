"""Loopback ports and log tails: the two helpers every suite that starts servers or processes needs."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """
    A loopback port free right now (bound to port 0, then released).

    Also what a test wants as a port nobody listens on: nothing binds it until someone asks again.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a process's log, for a failure message; ``<no output>`` if unreadable."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no output>"
