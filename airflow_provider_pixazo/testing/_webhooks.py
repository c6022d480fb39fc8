"""Webhook delivery: POST status payloads to ``X-Webhook-URL`` when jobs reach a status."""

from __future__ import annotations

import heapq
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery attempt.

    :param url: Target URL.
    :param request_id: Job the callback is about.
    :param status: Status announced.
    :param http_status: Answer code of the receiver, or ``None`` when it could not be reached.
    :param error: Why the delivery failed (non-2xx or network error), else ``None``.
    :param at: ``time.monotonic()`` when the attempt ended.
    """

    url: str
    request_id: str
    status: str
    http_status: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.http_status is not None and 200 <= self.http_status < 300


class WebhookDispatcher:
    """Delivers scheduled callbacks, one at a time and in due order, from one daemon thread.

    One thread keeps the callbacks of a job in order (QUEUED before PROCESSING before terminal);
    the short timeout keeps a slow receiver from holding up the others for long.

    :param timeout: Seconds allowed for each POST.
    """

    def __init__(self, timeout: float = 2.0) -> None:
        self._timeout = timeout
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, str, dict[str, Any]]] = []
        self._sequence = 0
        self._closed = False
        self._deliveries: list[WebhookDelivery] = []
        self._thread = threading.Thread(target=self._run, name="pixazo-emulator-webhooks", daemon=True)
        self._thread.start()

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        """Attempts made so far (a snapshot)."""
        with self._cond:
            return list(self._deliveries)

    def schedule(self, due: float, url: str, payload: dict[str, Any]) -> None:
        """Queue one callback.

        :param due: ``time.monotonic()`` instant to send it at.
        :param url: Target URL.
        :param payload: JSON body.
        """
        with self._cond:
            self._sequence += 1
            heapq.heappush(self._queue, (due, self._sequence, url, payload))
            self._cond.notify()

    def clear(self) -> None:
        """Drop pending callbacks and forget past attempts."""
        with self._cond:
            self._queue.clear()
            self._deliveries.clear()

    def wait_for(self, count: int, timeout: float) -> list[WebhookDelivery]:
        """Wait until at least ``count`` attempts were made, or ``timeout`` seconds passed.

        :return: The attempts made so far.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._deliveries)

    def close(self) -> None:
        """Stop the delivery thread; pending callbacks are dropped."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout=self._timeout + 1)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, url, payload = heapq.heappop(self._queue)
            delivery = self._deliver(url, payload)
            with self._cond:
                self._deliveries.append(delivery)
                self._cond.notify_all()

    def _deliver(self, url: str, payload: dict[str, Any]) -> WebhookDelivery:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "pixazo-emulator"},
            method="POST",
        )
        code: int | None = None
        error: str | None = None
        # A receiver's failure is recorded, never raised: the real queue does not stop either.
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                code = response.status
        except urllib.error.HTTPError as exc:
            code, error = exc.code, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return WebhookDelivery(
            url=url,
            request_id=str(payload.get("request_id")),
            status=str(payload.get("status")),
            http_status=code,
            error=error,
            at=time.monotonic(),
        )
