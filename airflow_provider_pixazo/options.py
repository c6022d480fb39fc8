"""
The image options, written once: the user's vocabulary for every image request, with its docs and its rules.

Everything else derives from :class:`ImageOptions` (and :data:`IMAGE_OPTIONS`, its field names):
the operators' templated keyword arguments and their docs, the request body (each model maps the
names to its own wire names in :mod:`airflow_provider_pixazo.models`). Adding an option is one field
here, its wire name on the models that take it, and one keyword in the operators' signature.
Not here: which options and values a given model takes (that is the model registry's job).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError

__all__ = ["FORMATS", "IMAGE_OPTIONS", "QUALITIES", "ImageOptions", "document_options", "rendered_options"]

QUALITIES = ("low", "medium", "high", "auto")
FORMATS = ("png", "jpeg", "webp")
# Output formats that take a compression level; png is lossless.
_COMPRESSIBLE = ("jpeg", "webp")


@dataclass(frozen=True)
class _Rule:
    """What every model accepts for one option, and how it is documented."""

    doc: str
    choices: tuple[str, ...] = ()
    integers: tuple[int, int] | None = None

    def check(self, name: str, value: Any) -> None:
        if self.choices and value not in self.choices:
            raise PixazoValidationError(name, value, f"one of {', '.join(self.choices)}")
        if self.integers is not None:
            low, high = self.integers
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise PixazoValidationError(name, value, f"an integer from {low} to {high}")


def _option(doc: str, *, choices: tuple[str, ...] = (), integers: tuple[int, int] | None = None) -> Any:
    return field(default=None, metadata={"rule": _Rule(doc, choices, integers)})


@dataclass(frozen=True)
class ImageOptions:
    """
    The image options of one request, in the user's vocabulary; ``None`` means "not sent" (Pixazo's default).

    Making one checks the rules that hold for every model (choices, ranges, and the combinations that
    cannot work); :meth:`~airflow_provider_pixazo.models.ModelSpec.check_options` adds each model's own.

    :raises PixazoValidationError: naming the option, the value and what is allowed.
    """

    size: str | None = _option(
        "``1024x1024``, ``1536x1024``, ``1024x1536``, ``auto``; gpt-image-2 adds ``2048x2048``, "
        "``2048x1152``, ``3840x2160``, ``2160x3840`` and custom ``WxH``."
    )
    quality: str | None = _option("``low``, ``medium``, ``high`` or ``auto``.", choices=QUALITIES)
    background: str | None = _option("``opaque`` or ``auto``; ``transparent`` on gpt-image-1.5 only (png/webp).")
    n: int | None = _option("number of images, 1-10.", integers=(1, 10))
    output_format: str | None = _option("``png``, ``jpeg`` or ``webp``.", choices=FORMATS)
    output_compression: int | None = _option("0-100, for jpeg or webp output on gpt-image-2.", integers=(0, 100))
    moderation: str | None = _option("``auto`` or ``low`` (gpt-image-2).", choices=("auto", "low"))

    def __post_init__(self) -> None:
        for name, value in self.given().items():
            _rule(name).check(name, value)
        # Pixazo defaults the format to png, so transparency with no format given is fine.
        if self.background == "transparent" and self.output_format == "jpeg":
            raise PixazoValidationError(
                "background", self.background, "transparent needs output_format png or webp (jpeg has no alpha)"
            )
        if self.output_compression is not None and self.output_format not in _COMPRESSIBLE:
            raise PixazoValidationError(
                "output_compression",
                self.output_compression,
                f"compression applies to jpeg or webp only; output_format is {self.output_format or 'png'}",
            )

    def given(self) -> dict[str, Any]:
        """The options that are set, by name, in declaration order."""
        return {name: getattr(self, name) for name in IMAGE_OPTIONS if getattr(self, name) is not None}


#: The option names, in the order users read them; the operators' template fields include them.
IMAGE_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(ImageOptions))

_RULES: dict[str, _Rule] = {f.name: f.metadata["rule"] for f in fields(ImageOptions)}


def _rule(name: str) -> _Rule:
    return _RULES[name]


def rendered_options(task: object) -> dict[str, Any]:
    """
    The image options of an operator after templating: its attributes named like the options.

    Jinja renders ``"{{ params.n }}"`` to the string ``"3"`` unless the DAG renders native
    objects, so a digit string given for an integer option becomes that integer.
    """
    options = {}
    for name in IMAGE_OPTIONS:
        value = getattr(task, name)
        if _rule(name).integers is not None and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        options[name] = value
    return options


# The placeholder an operator docstring holds where the options' ``:param:`` lines go.
_PLACEHOLDER = ":image options:"


def document_options(docstring: str | None) -> str | None:
    """
    Replace the ``:image options:`` line of a docstring with one ``:param:`` line per option.

    So an operator's documentation of the options is written here once and stays in step.
    """
    if docstring is None:  # python -OO strips docstrings
        return None
    if _PLACEHOLDER not in docstring:
        raise ValueError(f"the docstring has no {_PLACEHOLDER!r} line to fill")
    lines = []
    for line in docstring.splitlines(keepends=True):
        if line.strip() != _PLACEHOLDER:
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        lines.extend(f"{indent}:param {name}: {rule.doc}\n" for name, rule in _RULES.items())
    return "".join(lines)
