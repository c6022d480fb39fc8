"""
The registry of Pixazo's image models, their rules, and the submits built from them.

Each :class:`ModelSpec` says which endpoints a model has, which image options it takes under which
wire names, and which sizes and backgrounds it accepts; :func:`build_generate_request` and
:func:`build_edit_request` check a request against every documented rule before any HTTP call.
Adding a model is one entry in :data:`MODELS` plus its tests. Not here: the options' own rules
(:mod:`airflow_provider_pixazo.options`) and what Pixazo answers (:mod:`airflow_provider_pixazo.responses`,
whose names are still importable from here for DAGs written against 0.1). Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.options import FORMATS, IMAGE_OPTIONS, QUALITIES, ImageOptions

# Moved to responses.py; imported here so that `from airflow_provider_pixazo.models import ...` keeps working.
from airflow_provider_pixazo.responses import (
    STATUS_PATH,
    RequestResult,
    RequestStatus,
    Submission,
    validate_request_id,
)

__all__ = [
    "DEFAULT_MODEL",
    "FORMATS",
    "MAX_EDIT_IMAGES",
    "MAX_PROMPT_CHARS",
    "MODELS",
    "QUALITIES",
    "STATUS_PATH",
    "WEBHOOK_MODES",
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

_CUSTOM_SIZE = re.compile(r"([1-9][0-9]{1,4})x([1-9][0-9]{1,4})")
_DATA_URI = re.compile(r"data:image/(png|jpeg|jpg|webp);base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE)

# OpenAI caps GPT Image prompts at 32,000 characters ("prompt: ... The maximum length is 32000
# characters for the GPT image models", https://platform.openai.com/docs/api-reference/images).
# Pixazo's page is silent; we assume it forwards the same limit rather than let a long prompt fail
# remotely.
MAX_PROMPT_CHARS = 32_000
# OpenAI's edit endpoint accepts up to 16 input images; Pixazo is silent, we assume the same.
MAX_EDIT_IMAGES = 16

WEBHOOK_MODES = ("terminal", "sync")


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


#: Options whose accepted values differ by model: option name -> the :class:`ModelSpec` field listing them.
_MODEL_CHOICES = {"background": "backgrounds"}


@dataclass(frozen=True)
class ModelSpec:
    """
    One Pixazo model: its endpoints, its wire names and its rules.

    :param name: the name users pass as ``model``.
    :param model_id: Pixazo's id for it (the prefix of its request ids).
    :param generate_path: the text-to-image endpoint path.
    :param edit_path: the image-edit endpoint path, or None when the model cannot edit.
    :param wire_names: user parameter name (``prompt`` and the image options it takes) -> the name
        this model's API expects.
    :param sizes: the fixed sizes accepted (``auto`` included).
    :param custom_sizes: whether any ``WxH`` within OpenAI's limits is accepted too.
    :param backgrounds: the values this model accepts for the option it is named for (see
        :data:`_MODEL_CHOICES`).
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

    def check_options(self, given: Mapping[str, Any]) -> ImageOptions:
        """
        The image options in ``given`` (None values are "not set"), checked against every rule.

        :raises PixazoValidationError: for an option this model does not take or a value it refuses.
        :raises TypeError: for a name that is no image option (a typo in the caller's code).
        """
        unknown = sorted(set(given) - set(IMAGE_OPTIONS))
        if unknown:
            raise TypeError(f"unknown image options {', '.join(unknown)}; the options are {', '.join(IMAGE_OPTIONS)}")
        for name, value in given.items():
            if value is not None and not self.supports(name):
                supported = ", ".join(p for p in self.wire_names if p != "prompt")
                raise PixazoValidationError(name, value, f"{self.name} does not take {name}; it takes {supported}")
        options = ImageOptions(**given)
        if options.size is not None:
            self._check_size(options.size)
        for name, listed_in in _MODEL_CHOICES.items():
            value = getattr(options, name)
            allowed: tuple[str, ...] = getattr(self, listed_in)
            if value is not None and value not in allowed:
                raise PixazoValidationError(name, value, self._choice_problem(name, listed_in, value, allowed))
        return options

    def wire_body(self, options: ImageOptions) -> dict[str, Any]:
        """The options that are set, under this model's wire names."""
        return {self.wire_names[name]: value for name, value in options.given().items()}

    def _choice_problem(self, name: str, listed_in: str, value: Any, allowed: tuple[str, ...]) -> str:
        # A value another model takes is a choice this model lacks; anything else is just not a choice.
        if any(value in getattr(spec, listed_in) for spec in MODELS.values()):
            return f"{self.name} has no {value} {name}; use {' or '.join(allowed)}"
        return f"one of {', '.join(allowed)}"

    def _check_size(self, value: Any) -> None:
        if value in self.sizes:
            return
        problem = self._size_problem(value)
        if problem:
            raise PixazoValidationError("size", value, problem)

    def _size_problem(self, value: Any) -> str | None:
        fixed = ", ".join(self.sizes)
        if not self.custom_sizes:
            return f"{self.name} takes one of {fixed}"
        match = _CUSTOM_SIZE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            return f"one of {fixed}, or a custom WIDTHxHEIGHT such as 1280x720"
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
        return f"custom sizes on {self.name}: {'; '.join(problems)}" if problems else None


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


def build_generate_request(
    prompt: Any,
    *,
    model: str = DEFAULT_MODEL,
    extra_params: Mapping[str, Any] | None = None,
    webhook_url: str | None = None,
    webhook_mode: str | None = None,
    **options: Any,
) -> SubmitRequest:
    """
    Validate a text-to-image request and map it to ``model``'s wire format.

    :param options: image options by name (see :class:`~airflow_provider_pixazo.options.ImageOptions`);
        those left as None are not sent, so Pixazo's defaults apply.
    :raises PixazoValidationError: naming the parameter, the value and what is allowed.
    """
    spec = get_model(model)
    return SubmitRequest(
        model=spec.name,
        operation="generate",
        path=spec.generate_path,
        body=_build_body(spec, prompt, options, extra_params),
        headers=_webhook_headers(webhook_url, webhook_mode),
    )


def build_edit_request(
    prompt: Any,
    images: str | Sequence[str],
    *,
    mask: str | None = None,
    model: str = DEFAULT_MODEL,
    extra_params: Mapping[str, Any] | None = None,
    webhook_url: str | None = None,
    webhook_mode: str | None = None,
    **options: Any,
) -> SubmitRequest:
    """
    Validate an image-edit request; ``images`` and ``mask`` must already be https URLs or data URIs.

    (The edit operator turns local files and object-storage URIs into data URIs before calling this.)

    :param options: image options by name, as for :func:`build_generate_request`.
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
    body = _build_body(spec, prompt, options, extra_params)
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
    spec: ModelSpec, prompt: Any, options: Mapping[str, Any], extra_params: Mapping[str, Any] | None
) -> dict[str, Any]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise PixazoValidationError("prompt", prompt, "a non-empty string describing the image")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PixazoValidationError("prompt", _short(prompt), f"at most {MAX_PROMPT_CHARS} characters")
    body: dict[str, Any] = {"prompt": prompt, **spec.wire_body(spec.check_options(options))}
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


def _short(value: Any) -> Any:
    """Keep error messages readable when the value is a multi-megabyte data URI."""
    if isinstance(value, str) and len(value) > 80:
        return value[:60] + f"… ({len(value)} chars)"
    return value
