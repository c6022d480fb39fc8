"""
How an item of the batch ends, in one vocabulary for the trigger event, the manifest, the counts and the UI.

Not here: deciding it (the wait decides ``completed``/``failed``/``error``/``timed_out``; the submit
phase ``uncertain``, and ``error`` for a submit refused without being taken).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ItemOutcome", "Outcome", "empty_counts"]


class Outcome(enum.StrEnum):
    """An item's outcome; the keys of the task's ``counts``."""

    #: Pixazo made the images (stored, unless the storing itself failed: see the item's ``error``).
    COMPLETED = "completed"
    #: The request ended FAILED (Pixazo's reason in ``error``).
    FAILED = "failed"
    #: The request ended ERROR, or the submit was refused without being taken, or waiting on it was
    #: impossible (a 404, a refused key).
    ERROR = "error"
    #: Still QUEUED or PROCESSING at the deadline; a retried try waits on it again (not resubmitted).
    TIMED_OUT = "timed_out"
    #: Its submit may have reached Pixazo without its request id being recorded; not resubmitted.
    UNCERTAIN = "uncertain"


def empty_counts() -> dict[str, int]:
    """Every outcome at zero, in the vocabulary's order."""
    return {outcome.value: 0 for outcome in Outcome}


@dataclass(frozen=True)
class ItemOutcome:
    """
    How one request ended, as the wait reports it.

    :param outcome: the item's outcome.
    :param media_urls: the images, when completed.
    :param media_type: their MIME type, when Pixazo said.
    :param error: why it did not complete.
    :param model_id: the Pixazo model that served it.
    :param status: the terminal status Pixazo reported (``COMPLETED``, ``FAILED``, ``ERROR``); None when
        the wait ended otherwise (deadline, unknown id, refused key), so nothing is known of the request.
    """

    outcome: Outcome
    media_urls: tuple[str, ...] = ()
    media_type: str | None = None
    error: str | None = None
    model_id: str | None = None
    status: str | None = None

    def to_wire(self) -> list[Any]:
        """The compact JSON form carried in the trigger event (a thousand of them in one event)."""
        return [self.outcome.value, list(self.media_urls), self.media_type, self.error, self.model_id, self.status]

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> ItemOutcome:
        """Inverse of :meth:`to_wire`."""
        outcome, urls, media_type, error, model_id, status = data
        return cls(Outcome(outcome), tuple(str(u) for u in urls or ()), media_type, error, model_id, status)
