"""
What Pixazo answers: the request status, a submission and a request's result, parsed and checked.

Also the rule for a request id, since every answer carries one and every status URL is built from
one. Not here: what is sent (the image models and their rules live in :mod:`.models`, the options
in :mod:`.options`). Nothing here does I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_pixazo.exceptions import (
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoValidationError,
)

__all__ = ["STATUS_PATH", "RequestResult", "RequestStatus", "Submission", "validate_request_id"]

#: The status endpoint, relative to the connection's host (never a URL taken from an answer).
STATUS_PATH = "/v2/requests/status/{request_id}"

# Pixazo ids look like "gpt-image-2_019d…-…": letters, digits, "_" and "-". Anything else
# ("../", "/", "?", "%2F") could steer the status URL elsewhere on the host, so it is refused.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")


class RequestStatus(enum.StrEnum):
    """Status of a Pixazo request, as the status endpoint reports it."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        """True once the request will not change any more."""
        return self in (RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.ERROR)

    @property
    def is_success(self) -> bool:
        """True only for COMPLETED."""
        return self is RequestStatus.COMPLETED


@dataclass(frozen=True)
class Submission:
    """
    What a submit returns.

    :param request_id: Pixazo's id for the request; the key for every later call.
    :param status: the status at submission, normally QUEUED.
    :param polling_url: the status URL Pixazo suggested. Informational only: the hook always builds
        the status URL from the connection's host, so the API key never follows a URL from a response.
    """

    request_id: str
    status: RequestStatus
    polling_url: str | None = None

    @classmethod
    def from_api(cls, payload: Any) -> Submission:
        """Parse a submit response body, refusing one without a usable request id."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"Pixazo answered a submit with {type(payload).__name__}, not a JSON object")
        request_id = validate_request_id(payload.get("request_id"))
        return cls(
            request_id=request_id,
            status=_parse_status(payload.get("status") or "QUEUED"),
            polling_url=payload.get("polling_url"),
        )


@dataclass(frozen=True)
class RequestResult:
    """
    The state of a request, from the status endpoint.

    :param request_id: Pixazo's id for the request.
    :param status: where the request is in its life.
    :param media_urls: URLs of the generated images, once COMPLETED.
    :param media_type: MIME type of the media (``image/png``...), once COMPLETED.
    :param error: Pixazo's error text for FAILED and ERROR.
    :param model_id: the Pixazo model id that handled the request.
    :param created_at: when Pixazo accepted the request (ISO 8601, as Pixazo sent it).
    :param updated_at: when it last changed.
    :param completed_at: when it finished.
    """

    request_id: str
    status: RequestStatus
    media_urls: tuple[str, ...] = ()
    media_type: str | None = None
    error: str | None = None
    model_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    completed_at: str | None = None

    @classmethod
    def from_api(cls, payload: Any) -> RequestResult:
        """Parse a status response (or a webhook callback) body."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"Pixazo answered a status call with {type(payload).__name__}, not an object")
        output = payload.get("output") or {}
        urls = (output.get("media_url") or ()) if isinstance(output, Mapping) else ()
        if isinstance(urls, str):
            urls = (urls,)
        return cls(
            request_id=validate_request_id(payload.get("request_id")),
            status=_parse_status(payload.get("status")),
            media_urls=tuple(str(u) for u in urls),
            media_type=output.get("media_type") if isinstance(output, Mapping) else None,
            error=payload.get("error"),
            model_id=payload.get("model_id"),
            created_at=_text_or_none(payload.get("created_at")),
            updated_at=_text_or_none(payload.get("updated_at")),
            completed_at=_text_or_none(payload.get("completed_at")),
        )

    def raise_for_failure(self) -> RequestResult:
        """
        Return this result, or raise when the request ended FAILED or ERROR.

        :raises PixazoRequestFailedError: for FAILED, with Pixazo's reason.
        :raises PixazoRequestErroredError: for ERROR (a Pixazo system error, not charged).
        """
        if self.status is RequestStatus.FAILED:
            raise PixazoRequestFailedError(self.request_id, self.error)
        if self.status is RequestStatus.ERROR:
            raise PixazoRequestErroredError(self.request_id, self.error)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, as pushed to XCom and carried in trigger events."""
        return {
            "request_id": self.request_id,
            "status": self.status.value,
            "media_urls": list(self.media_urls),
            "media_type": self.media_type,
            "error": self.error,
            "model_id": self.model_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            request_id=validate_request_id(data["request_id"]),
            status=_parse_status(data["status"]),
            media_urls=tuple(data.get("media_urls") or ()),
            media_type=data.get("media_type"),
            error=data.get("error"),
            model_id=data.get("model_id"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            completed_at=data.get("completed_at"),
        )


def validate_request_id(request_id: Any) -> str:
    """Return ``request_id`` if it is a plain Pixazo id; refuse paths, queries and anything odd."""
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise PixazoValidationError(
            "request_id",
            request_id,
            "a Pixazo request id is 1-256 letters, digits, '_' or '-' (no '/', '..', '?' or spaces)",
        )
    return request_id


def _parse_status(value: Any) -> RequestStatus:
    try:
        return RequestStatus(str(value).upper())
    except ValueError:
        raise ValueError(
            f"Pixazo reported an unknown status {value!r}; known: {', '.join(s.value for s in RequestStatus)}"
        ) from None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
