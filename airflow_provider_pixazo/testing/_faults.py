"""Fault injection for the emulator: rate limits, server errors, dropped connections, latency."""

from __future__ import annotations

import enum
import random
import threading
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

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.rate_drop)
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must each be within 0-1 and add up to at most 1")
        unknown = set(self.endpoints) - set(ENDPOINT_KINDS)
        if unknown:
            raise ValueError(f"unknown endpoint kinds {sorted(unknown)}; use {ENDPOINT_KINDS}")
        if self.latency_seconds < 0 or self.retry_after < 0 or self.first_n_submits_429 < 0:
            raise ValueError("latency_seconds, retry_after and first_n_submits_429 must be >= 0")


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
