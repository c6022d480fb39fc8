"""
What the provider needs from Airflow releases newer than its floor (3.2), with a fallback for older ones.

Kept in one place so that raising the floor means deleting a fallback here. The fallbacks depend on
nothing but the Task SDK of Airflow 3.2: ``apache-airflow-providers-common-compat`` ships a similar
stand-in only from 1.23 (October 2026), which an Airflow 3.2 deployment of its day does not have.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

__all__ = ["HAS_TASK_STATE_STORE", "ResumableJobMixin", "StatelessResumableJobMixin"]


class StatelessResumableJobMixin:
    """
    Airflow < 3.3 stand-in for :class:`airflow.sdk.ResumableJobMixin`: every try submits anew.

    Without a task state store there is nowhere to keep the id of an earlier try's job, so
    :meth:`execute_resumable` does what the SDK mixin does with ``durable=False``: submit, wait, return
    the result. ``durable`` is accepted so that DAGs written for Airflow 3.3 parse unchanged; asking for
    ``durable=True`` explicitly warns that it cannot be honoured here.
    """

    external_id_key: str = "remote_job_id"

    def __init__(self, *, durable: bool | None = None, **kwargs: Any) -> None:
        if durable:
            warnings.warn(
                "durable=True has no effect on Airflow < 3.3 (no task state store): every try of this task "
                "submits a new job.",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.durable = False

    def execute_resumable(self, context: Any) -> Any:
        """Submit, wait until complete and return the result: one job per try."""
        external_id = self.submit_job(context)  # type: ignore[attr-defined]
        self.poll_until_complete(external_id, context)  # type: ignore[attr-defined]
        return self.get_job_result(external_id, context)  # type: ignore[attr-defined]


#: Whether this Airflow keeps a task's state across tries (3.3+), so a retried submit can be resumed.
HAS_TASK_STATE_STORE: bool

if TYPE_CHECKING:
    from airflow.sdk import ResumableJobMixin
else:
    try:
        from airflow.sdk import ResumableJobMixin

        HAS_TASK_STATE_STORE = True
    except ImportError:  # Airflow < 3.3
        ResumableJobMixin = StatelessResumableJobMixin
        HAS_TASK_STATE_STORE = False
