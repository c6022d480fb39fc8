"""The emulator's submit hold (``hold_submits``/``release_submits``): what the batch crash test kills a worker in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

KEY = "pixazo-test-key"
TEXT_TO_IMAGE = "/gpt-image-2/v1/text-to-image"


@pytest.fixture
def emulator() -> Iterator[PixazoEmulator]:
    with PixazoEmulator(api_key=KEY) as emu:
        yield emu


def _submit(emulator: PixazoEmulator, prompt: str, answers: list[int | str]) -> None:
    with httpx.Client(base_url=emulator.url, headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=30) as client:
        try:
            answers.append(client.post(TEXT_TO_IMAGE, json={"prompt": prompt}).status_code)
        except httpx.TransportError as err:  # the server stopped under it
            answers.append(type(err).__name__)


def _wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_submits_past_the_first_ones_are_held_unanswered_and_unaccepted_until_released(
    emulator: PixazoEmulator,
) -> None:
    emulator.hold_submits(after=2)
    answers: list[int | str] = []
    for i in range(2):
        _submit(emulator, f"through {i}", answers)
    assert answers == [202, 202]

    held = [threading.Thread(target=_submit, args=(emulator, f"held {i}", answers)) for i in range(3)]
    for thread in held:
        thread.start()
    _wait_until(lambda: emulator.held_submits == 3)
    time.sleep(0.2)  # held, not merely slow: still no answer and no job
    assert answers == [202, 202]
    assert emulator.submit_count() == 2
    assert len(emulator.requests) == 2

    emulator.release_submits()
    for thread in held:
        thread.join(timeout=10)
    assert answers == [202] * 5
    assert emulator.held_submits == 0
    assert emulator.submit_count() == 5
    # Released for good: later submits are answered at once.
    _submit(emulator, "after", answers)
    assert answers[-1] == 202


def test_hold_with_nothing_let_through_holds_the_very_next_submit_and_stop_releases_it() -> None:
    emulator = PixazoEmulator(api_key=KEY).start()
    emulator.hold_submits()
    answers: list[int | str] = []
    thread = threading.Thread(target=_submit, args=(emulator, "held", answers))
    thread.start()
    _wait_until(lambda: emulator.held_submits == 1)
    emulator.stop()  # must not hang on the parked handler thread
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert emulator.held_submits == 0
    assert len(answers) == 1  # answered or cut off by the stop, but no longer waiting
