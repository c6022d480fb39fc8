"""Emulated jobs: their status over time and the JSON the status endpoint and webhooks send."""

from __future__ import annotations

import enum
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_pixazo.testing._images import MEDIA_TYPES
from airflow_provider_pixazo.testing._validation import JobSpec

FAIL_MARKER = "[fail]"
ERROR_MARKER = "[error]"
FAILED_MESSAGE = "Your request was rejected by the safety system (emulated)."
ERROR_MESSAGE = "Internal model error (emulated); you were not charged."


class JobStatus(enum.StrEnum):
    """Remote status values, as the gateway spells them."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        """Whether the job can no longer change."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.ERROR)


def outcome_for(prompt: str) -> tuple[JobStatus, str | None]:
    """Pick the terminal status a prompt leads to: markers let tests ask for failures.

    :param prompt: The submitted prompt.
    :return: The terminal status and its error message (``None`` when completed).
    """
    if FAIL_MARKER in prompt:
        return JobStatus.FAILED, FAILED_MESSAGE
    if ERROR_MARKER in prompt:
        return JobStatus.ERROR, ERROR_MESSAGE
    return JobStatus.COMPLETED, None


def new_request_id(model_id: str) -> str:
    """Make a request id shaped like the gateway's: ``<model_id>_<uuid7>``.

    :param model_id: ``gpt-image-1-5-api-923`` or ``gpt-image-2``.
    """
    # The gateway's ids are UUIDv7 (time-ordered, hence the shared "019d..." prefix); Python 3.11
    # has no uuid7, so set the version and variant bits by hand.
    millis = time.time_ns() // 1_000_000 & ((1 << 48) - 1)
    value = millis << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76
    value = value & ~(0x3 << 62) | 0x2 << 62
    return f"{model_id}_{uuid.UUID(int=value)}"


def _iso(wall: float) -> str:
    moment = datetime.fromtimestamp(wall, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class EmulatedJob:
    """One accepted submit, with everything needed to answer status and media requests.

    :param request_id: ``<model_id>_<uuid>``.
    :param model_id: Model that "processes" the job.
    :param path: Submit path it came in on.
    :param body: The submitted JSON body.
    :param spec: What to produce (count, size, format).
    :param outcome: Terminal status it will reach.
    :param error: Error message of a FAILED or ERROR outcome.
    :param created_wall: Submit time (``time.time()``), for timestamps.
    :param created_mono: Submit time (``time.monotonic()``), for the status flow.
    :param queued_seconds: Time spent QUEUED.
    :param processing_seconds: Time spent PROCESSING.
    :param media_urls: URLs of the images, served by the emulator's media endpoint.
    :param webhook_url: ``X-Webhook-URL``, if given.
    :param webhook_mode: ``terminal`` or ``sync``.
    """

    request_id: str
    model_id: str
    path: str
    body: dict[str, Any]
    spec: JobSpec
    outcome: JobStatus
    error: str | None
    created_wall: float
    created_mono: float
    queued_seconds: float
    processing_seconds: float
    media_urls: tuple[str, ...]
    webhook_url: str | None = None
    webhook_mode: str = "terminal"

    @property
    def media_type(self) -> str:
        """MIME type of the images."""
        return MEDIA_TYPES[self.spec.fmt]

    def offset_of(self, status: JobStatus) -> float:
        """Seconds after submit at which the job enters ``status``."""
        if status is JobStatus.QUEUED:
            return 0.0
        if status is JobStatus.PROCESSING:
            return self.queued_seconds
        return self.queued_seconds + self.processing_seconds

    def status_at(self, now_mono: float) -> JobStatus:
        """Status of the job at a ``time.monotonic()`` instant."""
        elapsed = now_mono - self.created_mono
        if elapsed >= self.offset_of(self.outcome):
            return self.outcome
        if elapsed >= self.offset_of(JobStatus.PROCESSING):
            return JobStatus.PROCESSING
        return JobStatus.QUEUED

    def payload(self, status: JobStatus) -> dict[str, Any]:
        """The status endpoint's JSON for the job when it is in ``status``.

        :param status: Status to describe (the current one, or the one a webhook announces).
        """
        terminal = status.is_terminal
        changed = _iso(self.created_wall + self.offset_of(status))
        output = None
        if status is JobStatus.COMPLETED:
            output = {"media_url": list(self.media_urls), "media_type": self.media_type}
        return {
            "request_id": self.request_id,
            "status": status.value,
            "model_id": self.model_id,
            "error": self.error if terminal else None,
            "output": output,
            "created_at": _iso(self.created_wall),
            "updated_at": changed,
            "completed_at": changed if terminal else None,
        }
