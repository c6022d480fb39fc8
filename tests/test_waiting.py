"""The settings of a wait: one seconds rule for the operators, the sensor and the trigger."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger
from airflow_provider_pixazo.waiting import non_negative_seconds, positive_seconds
from tests.operators.conftest import REQUEST_ID, generate

REFUSED_EVERYWHERE = [-1, float("nan"), float("inf"), "10", None, True]


@pytest.mark.parametrize("value", [0.5, 3, timedelta(minutes=2)])
def test_seconds_accept_numbers_and_timedeltas(value: Any) -> None:
    expected = value.total_seconds() if isinstance(value, timedelta) else float(value)
    assert positive_seconds("poll_interval", value) == expected
    assert non_negative_seconds("timeout", value) == expected
    assert isinstance(positive_seconds("poll_interval", value), float)


def test_zero_is_a_timeout_but_not_an_interval() -> None:
    assert non_negative_seconds("timeout", 0) == 0.0
    with pytest.raises(PixazoValidationError, match="positive, finite number of seconds"):
        positive_seconds("poll_interval", 0)


@pytest.mark.parametrize("value", REFUSED_EVERYWHERE, ids=repr)
def test_the_operator_and_the_trigger_refuse_the_same_values(value: Any) -> None:
    for make in (
        lambda: positive_seconds("poll_interval", value),
        lambda: non_negative_seconds("timeout", value),
        lambda: generate(wait_for_completion=True, max_poll_interval=value),
        lambda: PixazoRequestTrigger(REQUEST_ID, max_poll_interval=value),
    ):
        with pytest.raises(PixazoValidationError) as info:
            make()
        assert repr(value) in str(info.value)
