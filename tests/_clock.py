"""A clock that tests can stop: patched over the emulator module's ``time``, it holds Pixazo jobs unfinished."""

from __future__ import annotations

import threading
import time
from typing import Any


class HeldClock:
    """
    ``time`` as a module that reads it sees it: ``monotonic()`` stands still while held and runs on from
    where it stopped once released; everything else is the real ``time``.

    Patched over ``airflow_provider_pixazo.testing.emulator.time``, it keeps every job submitted while
    held QUEUED/PROCESSING however long a busy machine takes to reach the point the test is waiting
    for (a fixed processing time either ran out first, or had to be long enough to waste a minute);
    once released, the jobs take their configured time.
    """

    def __init__(self, held: bool = True) -> None:
        self._lock = threading.Lock()
        self._lost = 0.0
        self._held_at: float | None = time.monotonic() if held else None

    def monotonic(self) -> float:
        with self._lock:
            now = self._held_at if self._held_at is not None else time.monotonic()
            return now - self._lost

    def hold(self) -> None:
        with self._lock:
            if self._held_at is None:
                self._held_at = time.monotonic()

    def release(self) -> None:
        with self._lock:
            if self._held_at is not None:
                self._lost += time.monotonic() - self._held_at
                self._held_at = None

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)
