"""
Pushing a task's XComs from its trigger, the way the task itself pushes them.

A trigger that ends its task (``TaskSuccessEvent``) must leave the XComs a worker would have left,
readable by downstream tasks exactly as theirs are. ``TaskSuccessEvent(xcoms=...)`` does not: Airflow
stores those with ``TaskInstance.xcom_push`` (``airflow/models/trigger.py``, ``handle_event_submit``),
which JSON-encodes the value into a JSON column that a task's own push fills with the value itself, so
a downstream task pulls the JSON text (``'"<id>"'``) and skips any ``[core] xcom_backend``. Here each
XCom goes through the Task SDK's ``XCom.set`` (the configured backend's ``serialize_value``, then
``SetXCom`` to the supervisor and the execution API), as in a task.

``XCom.set`` is synchronous and the comms differ by runner: the triggerer of Airflow 3.3 bridges a
call from another thread to its loop; the one of 3.2 answers through asgiref's ``async_to_sync``,
which reaches the loop only from a thread started by ``sync_to_async``; ``dag.test()``'s in-process
comms are plain synchronous calls. ``sync_to_async`` suits all three and keeps the backend's
serialization (it may upload to object storage) off the triggerer's event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["push_xcoms"]


class _TaskInstanceKeys(Protocol):
    """What a trigger's ``task_instance`` offers on every runner (the triggerer's DTO or a runtime TI)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int


async def push_xcoms(ti: _TaskInstanceKeys, xcoms: Mapping[str, Any]) -> None:
    """
    Store each of ``xcoms`` for task instance ``ti`` as the task would (``XCom.set``), in key order.

    :param ti: the trigger's ``task_instance``.
    :param xcoms: the values by XCom key, as the task would push them (not yet serialized).
    :raises Exception: whatever the XCom backend or the execution API raised; some keys may be stored.
    """
    from asgiref.sync import sync_to_async

    # Not thread-sensitive: the pushes of many triggers ending at once need not queue on one thread.
    await sync_to_async(_push_all, thread_sensitive=False)(ti, dict(xcoms))


def _push_all(ti: _TaskInstanceKeys, xcoms: dict[str, Any]) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    from airflow_provider_pixazo.links.pixazo import MEDIA_URLS_XCOM_KEY, remember_media_urls

    for key, value in xcoms.items():
        XCom.set(key, value, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index)
        if key == MEDIA_URLS_XCOM_KEY:
            # Under dag.test() the trigger runs in the task's process: its links must not read a stale memo.
            remember_media_urls(ti, value)
