"""
The settings of a wait, read and checked the same way by the operators, the sensor and the trigger.

``deferrable`` defaults to Airflow's ``[operators] default_deferrable``, read when the task is made;
every duration is a finite number of seconds (or a ``timedelta``). Not here: the waiting itself
(the trigger polls, the operators and the sensor defer to it or poll in the worker).
Light to import: the triggerer loads it.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError

__all__ = ["DEFAULT_MAX_POLL_INTERVAL", "default_deferrable", "non_negative_seconds", "positive_seconds"]

#: While deferred, the poll interval grows by a quarter after each unchanged poll, up to this.
DEFAULT_MAX_POLL_INTERVAL = 60.0


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, read now (when a task is made), not when this module loads."""
    from airflow.sdk.configuration import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def positive_seconds(name: str, value: Any) -> float:
    """
    ``value`` as seconds, if it is a positive, finite number or ``timedelta``.

    :raises PixazoValidationError: naming ``name``, the value and what is allowed.
    """
    return _seconds(name, value, allow_zero=False)


def non_negative_seconds(name: str, value: Any) -> float:
    """
    ``value`` as seconds, if it is zero or a positive, finite number or ``timedelta``.

    :raises PixazoValidationError: naming ``name``, the value and what is allowed.
    """
    return _seconds(name, value, allow_zero=True)


def _seconds(name: str, value: Any, *, allow_zero: bool) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0
        or (seconds == 0 and not allow_zero)
    ):
        allowed = "zero or more" if allow_zero else "positive"
        raise PixazoValidationError(name, value, f"a {allowed}, finite number of seconds (or a timedelta)")
    return float(seconds)
