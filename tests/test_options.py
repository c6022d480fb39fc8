"""The image options table: what derives from it stays in step with it."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.models import MODELS
from airflow_provider_pixazo.operators.pixazo import PixazoEditImageOperator, PixazoGenerateImageOperator
from airflow_provider_pixazo.options import IMAGE_OPTIONS, ImageOptions, document_options, rendered_options

OPERATORS = [PixazoGenerateImageOperator, PixazoEditImageOperator]


def test_the_options_are_the_seven_documented_ones() -> None:
    assert IMAGE_OPTIONS == (
        "size",
        "quality",
        "background",
        "n",
        "output_format",
        "output_compression",
        "moderation",
    )


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_each_option_is_a_templated_keyword_of_the_operators_defaulting_to_unset(operator: type) -> None:
    signature = inspect.signature(PixazoGenerateImageOperator.__init__)
    for name in IMAGE_OPTIONS:
        assert signature.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert signature.parameters[name].default is None  # not sent: Pixazo's default applies
        assert name in operator.template_fields


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_each_option_is_documented_on_the_operators(operator: type) -> None:
    doc = operator.__doc__ or ""
    for name in IMAGE_OPTIONS:
        assert f":param {name}: " in doc
    assert ":image options:" not in doc


def test_every_wire_name_belongs_to_an_option_or_the_prompt() -> None:
    for spec in MODELS.values():
        assert set(spec.wire_names) <= {"prompt", *IMAGE_OPTIONS}, spec.name


def test_rendered_options_turn_digit_strings_into_integers_for_integer_options_only() -> None:
    unset = dict.fromkeys(IMAGE_OPTIONS)
    task = SimpleNamespace(**{**unset, "n": " 3 ", "output_compression": "80", "quality": "3"})
    options = rendered_options(task)
    assert (options["n"], options["output_compression"], options["quality"]) == (3, 80, "3")
    assert rendered_options(SimpleNamespace(**{**unset, "n": "two"}))["n"] == "two"  # left for validation to refuse


@pytest.mark.parametrize(
    ("given", "parameter", "fragment"),
    [
        ({"background": "transparent", "output_format": "jpeg"}, "background", "jpeg has no alpha"),
        ({"output_compression": 50}, "output_compression", "output_format is png"),
        ({"output_compression": 50, "output_format": "png"}, "output_compression", "jpeg or webp only"),
        ({"quality": "ultra"}, "quality", "one of low, medium, high, auto"),
        ({"n": 11}, "n", "an integer from 1 to 10"),
    ],
)
def test_rules_that_hold_for_every_model_are_checked_on_construction(
    given: dict[str, object], parameter: str, fragment: str
) -> None:
    with pytest.raises(PixazoValidationError) as info:
        ImageOptions(**given)  # type: ignore[arg-type]
    assert info.value.parameter == parameter
    assert fragment in str(info.value)


def test_given_lists_only_the_options_set() -> None:
    assert ImageOptions(n=2, output_format="webp").given() == {"n": 2, "output_format": "webp"}
    assert ImageOptions().given() == {}


def test_document_options_needs_its_placeholder_and_survives_stripped_docstrings() -> None:
    with pytest.raises(ValueError, match="no ':image options:' line"):
        document_options("A docstring without it.")
    assert document_options(None) is None  # python -OO
    filled = document_options("Intro.\n\n    :param model: which.\n    :image options:\n")
    assert filled is not None
    assert "    :param size: " in filled
    assert filled.index(":param model:") < filled.index(":param size:") < filled.index(":param moderation:")
