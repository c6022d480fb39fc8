"""
The one retry rule of the provider, shared by the sync and async paths.

A status GET is safe to repeat, so it is retried on 429, 5xx and network errors. A submit POST
costs money, so it is retried only when the answer proves Pixazo did not take it: a 429, or a
network error raised before the request left this machine (connect errors, pool timeouts).
Backoff is exponential with jitter and never shorter than the ``Retry-After`` the gateway asked for.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

from airflow_provider_pixazo.exceptions import (
    PixazoError,
    PixazoRateLimitError,
    PixazoServerError,
    PixazoTransportError,
)

__all__ = ["RetryPolicy", "parse_retry_after", "should_retry"]


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and how patiently a call is retried.

    :param max_attempts: attempts in all, the first included (1 disables retries).
    :param base_delay: the first backoff, in seconds; it doubles with each attempt.
    :param max_delay: the cap on the exponential backoff, in seconds.
    :param max_retry_after: the longest ``Retry-After`` honoured, in seconds; a longer one is cut to it.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """
        Seconds to wait after failed attempt number ``attempt`` (1-based).

        "Equal jitter": half the exponential step is fixed, half random, so many clients that failed
        together do not come back together, yet none retries at once.
        """
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = step / 2 + random.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return float(wait)


def should_retry(error: PixazoError, *, submit: bool) -> bool:
    """Whether the call that raised ``error`` may be sent again."""
    if isinstance(error, PixazoRateLimitError):
        return True
    if isinstance(error, PixazoServerError):
        return not submit
    if isinstance(error, PixazoTransportError):
        return not submit or not error.request_sent
    return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, which holds either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
