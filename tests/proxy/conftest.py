"""
Fixtures of the proxy and TLS suite: a real forward proxy process and a clean proxy environment.

httpx (and so every client of the provider) does not exempt loopback from ``HTTP_PROXY`` /
``HTTPS_PROXY``: only ``NO_PROXY`` does. The fixtures therefore clear ``NO_PROXY`` (both cases), so
requests to the emulator on 127.0.0.1 really go through the proxy; a machine whose environment
exempts 127.0.0.1 would otherwise make these tests pass without proving anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROXY_SCRIPT = Path(__file__).resolve().parent / "forward_proxy.py"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class ProxyProcess:
    """A running ``tests/proxy/forward_proxy.py`` process."""

    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        """What the proxy saw so far, oldest first."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """Stop the process (by its own id) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()  # else its pipe is left to the GC (a ResourceWarning, an error here)


def start_proxy(log: Path, auth: str | None = None) -> ProxyProcess:
    """Start the proxy on a free port of 127.0.0.1 and wait until it listens."""
    command = [sys.executable, str(PROXY_SCRIPT), "--log", str(log)] + (["--auth", auth] if auth else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        process.wait(timeout=5)
        process.stdout.close()
        raise RuntimeError(f"forward proxy did not start: {line!r}")
    return ProxyProcess(process, int(line.split()[1]), log)


@pytest.fixture
def forward_proxy(tmp_path: Path) -> Iterator[ProxyProcess]:
    """A forward proxy process on 127.0.0.1; stopped at the end of the test."""
    proxy = start_proxy(tmp_path / "proxy-seen.jsonl")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, forward_proxy: ProxyProcess) -> ProxyProcess:
    """``HTTP_PROXY`` and ``HTTPS_PROXY`` point at the proxy; no ``NO_PROXY`` in either case."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    return forward_proxy
