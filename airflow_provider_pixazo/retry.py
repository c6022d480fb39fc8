"""
The one retry rule of the provider, shared by the sync and async paths.

A status GET is safe to repeat, so it is retried on 429, 5xx and network errors. A submit POST
costs money, so it is retried only when the answer proves Pixazo did not take it: a 429, or a
network error raised before the request left this machine (connect errors, pool timeouts).
Backoff is exponential with jitter and never shorter than the ``Retry-After`` the gateway asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Generator
from dataclasses import dataclass

import httpx

from airflow_provider_pixazo.error_mapping import (
    error_from_exception,
    error_from_response,
    parse_retry_after,
    uncertain_submit,
)
from airflow_provider_pixazo.exceptions import PixazoError

__all__ = ["Outcome", "RetryPolicy", "drive_async", "drive_sync", "exchange", "parse_retry_after", "should_retry"]

log = logging.getLogger(__name__)


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
    """
    Whether the call that raised ``error`` may be sent again.

    The error must be ``transient``, and for a paid submit it must also prove that Pixazo did not
    take the request (``may_have_been_accepted`` is False): the two attributes are the whole rule.

    For a status GET this is exactly ``error.transient``, which the sensor and trigger read directly.
    """
    return error.transient and not (submit and error.may_have_been_accepted)


Outcome = httpx.Response | httpx.TransportError


def exchange(
    request: httpx.Request,
    policy: RetryPolicy,
    *,
    submit: bool = False,
    request_id: str | None = None,
) -> Generator[httpx.Request | float, Outcome, httpx.Response]:
    """
    The retry rule: yields the request to send or seconds to sleep; returns the successful response.

    The caller sends each yielded request and feeds back the response or the httpx exception.

    :param submit: True for a paid submit, which is resent only when Pixazo provably did not take it.
    :raises PixazoError: the mapped error once retrying is not allowed or attempts are spent.
    """
    started = time.monotonic()
    for attempt in itertools.count(1):
        outcome = yield request
        if isinstance(outcome, httpx.Response) and outcome.is_success:
            return outcome
        error: PixazoError = (
            error_from_exception(outcome)
            if isinstance(outcome, httpx.TransportError)
            else error_from_response(outcome, request_id=request_id)
        )
        if not should_retry(error, submit=submit):
            if submit and error.transient:
                raise uncertain_submit(request, error, started) from error
            raise error
        if attempt >= policy.max_attempts:
            raise error
        delay = policy.delay(attempt, getattr(error, "retry_after", None))
        log.warning("%s (attempt %d of %d); retrying in %.1fs", error, attempt, policy.max_attempts, delay)
        yield delay
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends


def drive_sync(
    flow: Generator[httpx.Request | float, Outcome, httpx.Response],
    client: httpx.Client,
    *,
    stream: bool = False,
) -> httpx.Response:
    """Run :func:`exchange` with a sync client."""
    # Deliberate twin of drive_async (as httpx keeps Client and AsyncClient apart): one flow, two
    # drivers that differ only in how they sleep and send; one merged driver would have to be async,
    # and the sync hook must run without an event loop.
    try:
        step = next(flow)
        while True:
            if not isinstance(step, httpx.Request):
                time.sleep(step)
                step = next(flow)
                continue
            outcome: Outcome
            try:
                response = client.send(step, stream=stream)
                if stream and not response.is_success:
                    # Error bodies are small; read them so the error can quote Pixazo's message.
                    response.read()
                    response.close()
                outcome = response
            except httpx.TransportError as exc:
                outcome = exc
            step = flow.send(outcome)
    except StopIteration as done:
        result: httpx.Response = done.value
        return result


async def drive_async(
    flow: Generator[httpx.Request | float, Outcome, httpx.Response],
    client: httpx.AsyncClient,
) -> httpx.Response:
    """Run :func:`exchange` with an async client."""
    # Deliberate twin of drive_sync (see there): the same loop with await.
    try:
        step = next(flow)
        while True:
            if not isinstance(step, httpx.Request):
                await asyncio.sleep(step)
                step = next(flow)
                continue
            try:
                outcome: Outcome = await client.send(step)
            except httpx.TransportError as exc:
                outcome = exc
            step = flow.send(outcome)
    except StopIteration as done:
        response: httpx.Response = done.value
        return response
