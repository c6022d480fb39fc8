"""
The settings of a wait, read and checked the same way by the operators, the sensor and the trigger.

``deferrable`` defaults to Airflow's ``[operators] default_deferrable``, read when the task is made;
every duration is a finite number of seconds (or a ``timedelta``); :func:`end_in_trigger_link_keys`
decides whether a deferred task may end in the triggerer. Not here: the waiting itself (the trigger
polls, the operators and the sensor defer to it or poll in the worker).
Light to import: the triggerer loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError

__all__ = [
    "DEFAULT_MAX_POLL_INTERVAL",
    "default_deferrable",
    "end_from_trigger_choice",
    "end_in_trigger_link_keys",
    "non_negative_seconds",
    "positive_seconds",
]

#: While deferred, the poll interval grows by a quarter after each unchanged poll, up to this.
DEFAULT_MAX_POLL_INTERVAL = 60.0


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, read now (when a task is made), not when this module loads."""
    from airflow.sdk.configuration import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def end_from_trigger_choice(value: Any) -> bool | None:
    """
    ``end_from_trigger`` as given: True, False or None (the default: when Airflow allows it).

    :raises PixazoValidationError: for anything else.
    """
    if value is None or isinstance(value, bool):
        return value
    raise PixazoValidationError("end_from_trigger", value, "True, False or None (end in the triggerer when allowed)")


def end_in_trigger_link_keys(task: Any, own_execute_complete: Callable[..., Any]) -> dict[str, int] | None:
    """
    The image links' XCom keys when ``task``'s trigger may end it on success, else None (resume on a worker).

    It may unless ``task.end_from_trigger`` is False, a subclass overrides ``execute_complete``
    (``own_execute_complete`` is the provider's) or adds links the trigger cannot resolve, the task
    has ``outlets`` (Airflow records asset events only when a worker ends a task), the task's return
    value is not pushed as one ``return_value`` XCom (``do_xcom_push=False`` or
    ``multiple_outputs=True``: the worker's end applies those), an unmapped task has mapped
    downstream tasks expanding over its output (the worker records the length they expand to), or — with
    ``end_from_trigger`` left None — a listener is registered: Airflow tells listeners (OpenLineage
    and other plugins) nothing of a task that ends in the triggerer, which is why its DAG parser
    refuses ``end_from_trigger=True`` beside them, so such a task resumes on a worker where they hear of it.

    :param task: the sensor or submit operator about to defer.
    :param own_execute_complete: the provider's ``execute_complete`` of the task's class family.
    """
    from airflow_provider_pixazo.links.pixazo import declared_links, image_link_keys

    choice = task.end_from_trigger
    if choice is False:
        return None
    reason = None
    keys = image_link_keys(declared_links(task))  # the task shows none yet: it has no images
    if type(task).execute_complete is not own_execute_complete:
        reason = "execute_complete is overridden"
    elif keys is None:
        reason = "links other than Pixazo images are set"
    elif task.outlets:
        reason = "outlets are set (Airflow records their asset events only when a worker ends the task)"
    elif not task.do_xcom_push or task.multiple_outputs:
        reason = "do_xcom_push is False or multiple_outputs is True (the worker's end applies them)"
    elif _expanded_over_unmapped(task):
        reason = "mapped tasks expand over its output (the worker records the length they expand to)"
    elif choice is None and _has_listeners():
        reason = "listeners are registered (Airflow tells them nothing of a task ending in the triggerer)"
    if reason is not None:
        task.log.info("The task resumes on a worker after the wait: %s", reason)
        return None
    return keys


def _expanded_over_unmapped(task: Any) -> bool:
    """
    Whether ``task`` has mapped dependants and its running instance is not (or may not be) mapped.

    Then the Task SDK pushes the return value with its length (``mapped_length``), which tells the
    scheduler how far to expand the dependants; a mapped instance's push carries none.
    """
    try:
        if next(task.iter_mapped_dependants(), None) is None:
            return False
    except RuntimeError:  # not attached to a DAG (a task built on its own): nothing expands over it
        return False
    from airflow.sdk import get_current_context

    try:
        map_index = get_current_context()["ti"].map_index
    except Exception:  # no running task to ask: assume unmapped, when the worker's end is always right
        return True
    return not (isinstance(map_index, int) and map_index >= 0)


def _has_listeners() -> bool:
    from airflow.sdk.listener import get_listener_manager

    return bool(get_listener_manager().has_listeners)


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
