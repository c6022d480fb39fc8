"""
Request and response types, and the registry of Pixazo models with their parameter rules.

Users speak one vocabulary (``prompt, size, quality, background, n, output_format,
output_compression, moderation``); each :class:`ModelSpec` maps it to that model's wire names and
endpoint, and :func:`build_generate_request` / :func:`build_edit_request` enforce every rule of
Pixazo's documentation before any HTTP call. Nothing here does I/O, so it is cheap to import from
a DAG file.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_pixazo.exceptions import (
    PixazoRequestErroredError,
    PixazoRequestFailedError,
    PixazoValidationError,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "RequestResult",
    "RequestStatus",
    "Submission",
    "SubmitRequest",
    "build_edit_request",
    "build_generate_request",
    "get_model",
    "validate_request_id",
]

STATUS_PATH = "/v2/requests/status/{request_id}"

# Pixazo ids look like "gpt-image-2_019d…-…": letters, digits, "_" and "-". Anything else
# ("../", "/", "?", "%2F") could steer the status URL elsewhere on the host, so it is refused.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")
_CUSTOM_SIZE = re.compile(r"([1-9][0-9]{1,4})x([1-9][0-9]{1,4})")
_DATA_URI = re.compile(r"data:image/(png|jpeg|jpg|webp);base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE)

# OpenAI caps GPT Image prompts at 32,000 characters ("prompt: ... The maximum length is 32000
# characters for the GPT image models", https://platform.openai.com/docs/api-reference/images).
# Pixazo's page is silent; we assume it forwards the same limit rather than let a long prompt fail
# remotely.
MAX_PROMPT_CHARS = 32_000
# OpenAI's edit endpoint accepts up to 16 input images; Pixazo is silent, we assume the same.
MAX_EDIT_IMAGES = 16

QUALITIES = ("low", "medium", "high", "auto")
FORMATS = ("png", "jpeg", "webp")
WEBHOOK_MODES = ("terminal", "sync")


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


@dataclass(frozen=True)
class SubmitRequest:
    """
    A validated submit, ready to send: the endpoint path, the JSON body and the extra headers.

    Built by :func:`build_generate_request` or :func:`build_edit_request`; sent by
    :meth:`~airflow_provider_pixazo.hooks.pixazo.PixazoHook.submit`.
    """

    model: str
    operation: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """
    One Pixazo model: its endpoints, its wire names and its rules.

    :param name: the name users pass as ``model``.
    :param model_id: Pixazo's id for it (the prefix of its request ids).
    :param generate_path: the text-to-image endpoint path.
    :param edit_path: the image-edit endpoint path, or None when the model cannot edit.
    :param wire_names: user parameter name -> the name this model's API expects.
    :param sizes: the fixed sizes accepted (``auto`` included).
    :param custom_sizes: whether any ``WxH`` within OpenAI's limits is accepted too.
    :param backgrounds: accepted ``background`` values.
    """

    name: str
    model_id: str
    generate_path: str
    edit_path: str | None
    wire_names: Mapping[str, str]
    sizes: tuple[str, ...]
    custom_sizes: bool
    backgrounds: tuple[str, ...]

    def supports(self, parameter: str) -> bool:
        """Whether this model accepts the user-vocabulary ``parameter``."""
        return parameter in self.wire_names


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="gpt-image-1.5",
            model_id="gpt-image-1-5-api-923",
            generate_path="/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request",
            edit_path=None,
            wire_names={
                "prompt": "prompt",
                "size": "image_size",
                "quality": "quality",
                "background": "background",
                "n": "num_images",
                "output_format": "output_format",
            },
            sizes=("1024x1024", "1536x1024", "1024x1536", "auto"),
            custom_sizes=False,
            backgrounds=("transparent", "opaque", "auto"),
        ),
        ModelSpec(
            name="gpt-image-2",
            model_id="gpt-image-2",
            generate_path="/gpt-image-2/v1/text-to-image",
            edit_path="/gpt-image-2/v1/image-to-image-edit",
            wire_names={
                "prompt": "prompt",
                "size": "size",
                "quality": "quality",
                "background": "background",
                "n": "n",
                "output_format": "format",
                "output_compression": "output_compression",
                "moderation": "moderation",
            },
            sizes=(
                "1024x1024",
                "1024x1536",
                "1536x1024",
                "2048x2048",
                "2048x1152",
                "2160x3840",
                "3840x2160",
                "auto",
            ),
            custom_sizes=True,
            backgrounds=("opaque", "auto"),
        ),
    )
}

DEFAULT_MODEL = "gpt-image-2"


def get_model(model: str) -> ModelSpec:
    """Return the :class:`ModelSpec` for ``model``, or say which models exist."""
    try:
        return MODELS[model]
    except (KeyError, TypeError):
        raise PixazoValidationError("model", model, f"known models are {', '.join(MODELS)}") from None


def validate_request_id(request_id: Any) -> str:
    """Return ``request_id`` if it is a plain Pixazo id; refuse paths, queries and anything odd."""
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise PixazoValidationError(
            "request_id",
            request_id,
            "a Pixazo request id is 1-256 letters, digits, '_' or '-' (no '/', '..', '?' or spaces)",
        )
    return request_id


def build_generate_request(
    prompt: Any,
    *,
    model: str = DEFAULT_MODEL,
    size: str | None = None,
    quality: str | None = None,
    background: str | None = None,
    n: int | None = None,
    output_format: str | None = None,
    output_compression: int | None = None,
    moderation: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
    webhook_url: str | None = None,
    webhook_mode: str | None = None,
) -> SubmitRequest:
    """
    Validate a text-to-image request and map it to ``model``'s wire format.

    Parameters left as None are not sent, so Pixazo's defaults apply.

    :raises PixazoValidationError: naming the parameter, the value and what is allowed.
    """
    spec = get_model(model)
    body = _build_body(
        spec,
        prompt=prompt,
        size=size,
        quality=quality,
        background=background,
        n=n,
        output_format=output_format,
        output_compression=output_compression,
        moderation=moderation,
        extra_params=extra_params,
    )
    return SubmitRequest(
        model=spec.name,
        operation="generate",
        path=spec.generate_path,
        body=body,
        headers=_webhook_headers(webhook_url, webhook_mode),
    )


def build_edit_request(
    prompt: Any,
    images: str | Sequence[str],
    *,
    mask: str | None = None,
    model: str = DEFAULT_MODEL,
    size: str | None = None,
    quality: str | None = None,
    background: str | None = None,
    n: int | None = None,
    output_format: str | None = None,
    output_compression: int | None = None,
    moderation: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
    webhook_url: str | None = None,
    webhook_mode: str | None = None,
) -> SubmitRequest:
    """
    Validate an image-edit request; ``images`` and ``mask`` must already be https URLs or data URIs.

    (The edit operator turns local files and object-storage URIs into data URIs before calling this.)

    :raises PixazoValidationError: naming the parameter, the value and what is allowed.
    """
    spec = get_model(model)
    if spec.edit_path is None:
        editors = [m.name for m in MODELS.values() if m.edit_path]
        raise PixazoValidationError("model", model, f"image editing is offered by {', '.join(editors)}")
    image_list = [images] if isinstance(images, str) else list(images) if images is not None else []
    if not image_list:
        raise PixazoValidationError("images", images, "give at least one https URL or data:image URI")
    if len(image_list) > MAX_EDIT_IMAGES:
        raise PixazoValidationError("images", f"<{len(image_list)} images>", f"at most {MAX_EDIT_IMAGES} input images")
    for index, image in enumerate(image_list):
        _check_image_reference(f"images[{index}]", image)
    body = _build_body(
        spec,
        prompt=prompt,
        size=size,
        quality=quality,
        background=background,
        n=n,
        output_format=output_format,
        output_compression=output_compression,
        moderation=moderation,
        extra_params=extra_params,
    )
    body["image"] = image_list[0] if len(image_list) == 1 else image_list
    if mask is not None:
        _check_image_reference("mask", mask)
        if mask.lower().startswith("data:") and not mask.lower().startswith("data:image/png"):
            raise PixazoValidationError("mask", _short(mask), "the mask must be a PNG (data:image/png)")
        body["mask"] = mask
    return SubmitRequest(
        model=spec.name,
        operation="edit",
        path=spec.edit_path,
        body=body,
        headers=_webhook_headers(webhook_url, webhook_mode),
    )


def _build_body(
    spec: ModelSpec,
    *,
    prompt: Any,
    size: str | None,
    quality: str | None,
    background: str | None,
    n: int | None,
    output_format: str | None,
    output_compression: int | None,
    moderation: str | None,
    extra_params: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise PixazoValidationError("prompt", prompt, "a non-empty string describing the image")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PixazoValidationError("prompt", _short(prompt), f"at most {MAX_PROMPT_CHARS} characters")

    given = {
        "size": size,
        "quality": quality,
        "background": background,
        "n": n,
        "output_format": output_format,
        "output_compression": output_compression,
        "moderation": moderation,
    }
    for name, value in given.items():
        if value is not None and not spec.supports(name):
            supported = ", ".join(p for p in spec.wire_names if p != "prompt")
            raise PixazoValidationError(name, value, f"{spec.name} does not take {name}; it takes {supported}")

    if size is not None:
        _check_size(spec, size)
    if quality is not None:
        _check_choice("quality", quality, QUALITIES)
    if output_format is not None:
        _check_choice("output_format", output_format, FORMATS)
    if background is not None:
        if background == "transparent" and "transparent" not in spec.backgrounds:
            raise PixazoValidationError(
                "background", background, f"{spec.name} has no transparent background; use opaque or auto"
            )
        _check_choice("background", background, spec.backgrounds)
        # Pixazo defaults output_format to png, so transparent with no format given is fine.
        if background == "transparent" and output_format == "jpeg":
            raise PixazoValidationError(
                "background", background, "transparent needs output_format png or webp (jpeg has no alpha)"
            )
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10):
        raise PixazoValidationError("n", n, "an integer from 1 to 10")
    if output_compression is not None:
        if (
            isinstance(output_compression, bool)
            or not isinstance(output_compression, int)
            or not 0 <= output_compression <= 100
        ):
            raise PixazoValidationError("output_compression", output_compression, "an integer from 0 to 100")
        if output_format not in ("jpeg", "webp"):
            raise PixazoValidationError(
                "output_compression",
                output_compression,
                f"compression applies to jpeg or webp only; output_format is {output_format or 'png'}",
            )
    if moderation is not None:
        _check_choice("moderation", moderation, ("auto", "low"))

    body: dict[str, Any] = {"prompt": prompt}
    for name, value in given.items():
        if value is not None:
            body[spec.wire_names[name]] = value

    if extra_params is not None:
        if not isinstance(extra_params, Mapping):
            raise PixazoValidationError("extra_params", extra_params, "a dict of extra API fields")
        clashes = sorted(set(extra_params) & set(body))
        if clashes:
            raise PixazoValidationError(
                "extra_params",
                dict(extra_params),
                f"{', '.join(clashes)} already set by the named parameters; set each field once",
            )
        body.update(extra_params)
    return body


def _check_choice(parameter: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise PixazoValidationError(parameter, value, f"one of {', '.join(allowed)}")


def _check_size(spec: ModelSpec, size: Any) -> None:
    if size in spec.sizes:
        return
    fixed = ", ".join(spec.sizes)
    if not spec.custom_sizes:
        raise PixazoValidationError("size", size, f"{spec.name} takes one of {fixed}")
    match = _CUSTOM_SIZE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        raise PixazoValidationError("size", size, f"one of {fixed}, or a custom WIDTHxHEIGHT such as 1280x720")
    width, height = int(match[1]), int(match[2])
    # OpenAI's limits for gpt-image-2 custom sizes ("Size and quality options",
    # https://developers.openai.com/api/docs/guides/image-generation#size-and-quality-options):
    # longest edge <= 3840 px, both edges multiples of 16, long:short ratio <= 3:1,
    # total pixels between 655,360 and 8,294,400.
    problems = []
    if max(width, height) > 3840:
        problems.append("the longest edge must be at most 3840 px")
    if width % 16 or height % 16:
        problems.append("both edges must be multiples of 16")
    if max(width, height) > 3 * min(width, height):
        problems.append("the long:short ratio must be at most 3:1")
    if not 655_360 <= width * height <= 8_294_400:
        problems.append("the total pixel count must be between 655,360 and 8,294,400")
    if problems:
        raise PixazoValidationError("size", size, f"custom sizes on {spec.name}: {'; '.join(problems)}")


def _check_image_reference(parameter: str, value: Any) -> None:
    if isinstance(value, str) and (value.startswith("https://") or _DATA_URI.match(value[:200])):
        return
    raise PixazoValidationError(parameter, _short(value), "an https:// URL or a data:image/(png|jpeg|webp);base64 URI")


def _webhook_headers(webhook_url: str | None, webhook_mode: str | None) -> dict[str, str]:
    if webhook_url is None:
        if webhook_mode is not None:
            raise PixazoValidationError("webhook_mode", webhook_mode, "only meaningful with webhook_url")
        return {}
    if not isinstance(webhook_url, str) or not re.fullmatch(r"https://[^\s/?#]+[^\s]*", webhook_url):
        raise PixazoValidationError("webhook_url", webhook_url, "an https:// URL (Pixazo refuses http)")
    headers = {"X-Webhook-URL": webhook_url}
    if webhook_mode is not None:
        _check_choice("webhook_mode", webhook_mode, WEBHOOK_MODES)
        headers["X-Webhook-Mode"] = webhook_mode
    return headers


def _parse_status(value: Any) -> RequestStatus:
    try:
        return RequestStatus(str(value).upper())
    except ValueError:
        raise ValueError(
            f"Pixazo reported an unknown status {value!r}; known: {', '.join(s.value for s in RequestStatus)}"
        ) from None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _short(value: Any) -> Any:
    """Keep error messages readable when the value is a multi-megabyte data URI."""
    if isinstance(value, str) and len(value) > 80:
        return value[:60] + f"… ({len(value)} chars)"
    return value
