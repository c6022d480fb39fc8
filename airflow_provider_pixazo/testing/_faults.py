"""Fault injection for the emulator: rate limits, server errors, dropped connections, latency."""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Kinds of endpoint a fault can target.
ENDPOINT_KINDS: tuple[str, ...] = ("submit", "status", "media")


@dataclass(frozen=True)
class FaultConfig:
    """What the emulator should get wrong, and how often.

    Each faulted request draws one random number, so a given ``seed`` and request sequence always
    produce the same faults. A faulted submit is answered before it is accepted: it creates no job.

    :param rate_429: Probability of answering ``429`` with a ``Retry-After`` header.
    :param rate_500: Probability of answering ``500``.
    :param rate_drop: Probability of closing the connection after reading the request, without
        any answer.
    :param latency_seconds: Delay added before answering a request of a faulted endpoint kind.
    :param retry_after: Seconds announced in ``Retry-After`` on 429 answers.
    :param endpoints: Endpoint kinds the random faults and latency apply to, among ``submit``,
        ``status`` and ``media``.
    :param seed: Seed of the random draws; ``None`` for a fresh random sequence.
    :param first_n_submits_429: The first N submit POSTs are answered 429, whatever ``endpoints``.
    :param status_500_every_other: Every other status GET (the 1st, 3rd, 5th...) answers 500,
        whatever ``endpoints``.
    :param status_calls_per_second: A rate limit on status GETs, as a gateway enforces it: a token
        bucket refilled at this many calls a second; a call finding it empty is answered ``429``
        with ``Retry-After: retry_after``. ``0`` (the default) for no limit.
    :param status_burst: The bucket's size (calls allowed at once after a quiet spell); by default
        one second's worth.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_drop: float = 0.0
    latency_seconds: float = 0.0
    retry_after: int = 1
    endpoints: tuple[str, ...] = ENDPOINT_KINDS
    seed: int | None = None
    first_n_submits_429: int = 0
    status_500_every_other: bool = False
    status_calls_per_second: float = 0.0
    status_burst: float | None = None

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.rate_drop)
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must each be within 0-1 and add up to at most 1")
        unknown = set(self.endpoints) - set(ENDPOINT_KINDS)
        if unknown:
            raise ValueError(f"unknown endpoint kinds {sorted(unknown)}; use {ENDPOINT_KINDS}")
        if self.latency_seconds < 0 or self.retry_after < 0 or self.first_n_submits_429 < 0:
            raise ValueError("latency_seconds, retry_after and first_n_submits_429 must be >= 0")
        if not self.status_calls_per_second >= 0 or (self.status_burst is not None and not self.status_burst >= 1):
            raise ValueError("status_calls_per_second must be >= 0 and status_burst >= 1")


class TokenBucket:
    """A gateway's rate limit: ``rate`` calls a second on average, up to ``burst`` at once; thread-safe.

    :param rate: Tokens added per second.
    :param burst: Size of the bucket (it starts full); ``rate`` (one second's worth) by default.
    :param clock: Monotonic seconds; injectable so tests can run it in virtual time.
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()
        self._lock = threading.Lock()
        #: Calls let through and calls refused so far.
        self.allowed = 0
        self.refused = 0

    def take(self) -> bool:
        """Spend one token if there is one; False when the caller is over the limit."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.allowed += 1
                return True
            self.refused += 1
            return False


class Fault(enum.Enum):
    """How one request is to be answered."""

    NONE = "none"
    TOO_MANY_REQUESTS = "429"
    SERVER_ERROR = "500"
    DROP = "drop"


class FaultInjector:
    """Decides, thread-safely, which fault (if any) each incoming request gets.

    :param config: The faults to inject.
    """

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._rng = random.Random(config.seed)
        self._submits_seen = 0
        self._status_seen = 0
        self._status_bucket = (
            TokenBucket(config.status_calls_per_second, config.status_burst) if config.status_calls_per_second else None
        )

    @property
    def config(self) -> FaultConfig:
        """The faults being injected."""
        return self._config

    def decide(self, endpoint: str) -> tuple[Fault, float]:
        """Choose the fault for one request.

        :param endpoint: Kind of endpoint hit: ``submit``, ``status`` or ``media``.
        :return: The fault and the latency (seconds) to add before answering.
        """
        config = self._config
        with self._lock:
            if endpoint == "submit":
                self._submits_seen += 1
                if self._submits_seen <= config.first_n_submits_429:
                    return Fault.TOO_MANY_REQUESTS, 0.0
            if endpoint == "status":
                self._status_seen += 1
                if config.status_500_every_other and self._status_seen % 2 == 1:
                    return Fault.SERVER_ERROR, 0.0
                if self._status_bucket is not None and not self._status_bucket.take():
                    return Fault.TOO_MANY_REQUESTS, 0.0
            if endpoint not in config.endpoints:
                return Fault.NONE, 0.0
            draw = self._rng.random()
        if draw < config.rate_429:
            return Fault.TOO_MANY_REQUESTS, config.latency_seconds
        if draw < config.rate_429 + config.rate_500:
            return Fault.SERVER_ERROR, config.latency_seconds
        if draw < config.rate_429 + config.rate_500 + config.rate_drop:
            return Fault.DROP, config.latency_seconds
        return Fault.NONE, config.latency_seconds
