"""
The sensor that waits for a Pixazo request submitted elsewhere (another task, another system).

It only reads a request's status and publishes the result; it never submits (that is the operators').
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_pixazo.events import TaskReturn, publish_result, result_from_event
from airflow_provider_pixazo.exceptions import PixazoError
from airflow_provider_pixazo.links.pixazo import ImageLinks, note_no_images
from airflow_provider_pixazo.responses import RequestResult, RequestStatus, validate_request_id
from airflow_provider_pixazo.waiting import (
    DEFAULT_MAX_POLL_INTERVAL,
    default_deferrable,
    end_from_trigger_choice,
    end_in_trigger_link_keys,
    positive_seconds,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

__all__ = ["PixazoRequestSensor"]


class PixazoRequestSensor(BaseSensorOperator):
    """
    Wait until a Pixazo request is COMPLETED; fail at once if it ends FAILED or ERROR.

    The return value (XCom ``return_value``, also pushed under
    :data:`~airflow_provider_pixazo.events.RESULT_XCOM_KEY`) is the request's result as a dict:
    ``request_id, status, media_urls, media_type, error, model_id, created_at, updated_at,
    completed_at``. The media URLs are pushed for the "Pixazo image N" extra links too.

    Transient errors (5xx, 429, network), once the hook's retries are spent, count as "not yet":
    a network blip never fails the sensor; its ``timeout`` still applies.

    Deferred, it checks once before deferring (a request already done never defers), and when the
    request COMPLETED the trigger ends the task itself, pushing the same XComs and links: no worker
    is started to resume it. A request that ends FAILED or ERROR, a timeout or a refused key resume
    the task on a worker, which fails it with Pixazo's reason and honours ``retries``.

    :param request_id: the Pixazo request id to wait for (templated), e.g. from a submit task's XCom.
    :param pixazo_conn_id: the Airflow connection holding the Pixazo API key (templated).
    :param deferrable: wait in the triggerer instead of holding a worker slot. Defaults to
        ``[operators] default_deferrable``, read when the task is made (as the operators do).
    :param poke_interval: seconds between polls (in deferrable mode, the trigger's first interval;
        it then grows gently up to ``max_poll_interval``).
    :param timeout: seconds to wait before failing with a timeout; the request may still finish later.
    :param max_poll_interval: in deferrable mode, the poll interval grows by a quarter after each
        unchanged poll, up to this many seconds (default 60).
    :param end_from_trigger: in deferrable mode, whether the trigger ends the task when the request
        COMPLETED, as Airflow's own time sensors take it. None (default): it does unless a listener
        (OpenLineage...) is registered, which Airflow would not tell of the task's end. True: it does
        (Airflow refuses the DAG if listeners are registered). False: the task resumes on a worker to
        run ``execute_complete``. A subclass that overrides ``execute_complete``, or adds links other
        than the image ones, resumes on a worker whatever this says: its code must run.
    """

    template_fields: Sequence[str] = ("request_id", "pixazo_conn_id")
    operator_extra_links = ImageLinks()
    ui_color = "#f4e8ff"

    def __init__(
        self,
        *,
        request_id: str,
        pixazo_conn_id: str = "pixazo_default",
        deferrable: bool | None = None,
        poke_interval: float = 10,
        timeout: float = 3600,
        max_poll_interval: float | timedelta = DEFAULT_MAX_POLL_INTERVAL,
        end_from_trigger: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.request_id = request_id
        self.pixazo_conn_id = pixazo_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)
        self.end_from_trigger = end_from_trigger_choice(end_from_trigger)

    @cached_property
    def hook(self) -> PixazoHook:
        """The Pixazo hook, made once per task."""
        from airflow_provider_pixazo.hooks.pixazo import PixazoHook

        return PixazoHook(pixazo_conn_id=self.pixazo_conn_id)

    def execute(self, context: Context) -> Any:
        """Wait for the request, in the worker or (``deferrable=True``) in the triggerer."""
        try:
            return self._wait(context)
        finally:
            # The worker's part ends here (done, failed or deferred): free the connections now.
            if "hook" in self.__dict__:
                self.hook.close()

    def on_kill(self) -> None:
        """Close the hook's connections when Airflow kills the task (timeout, mark failed)."""
        if "hook" in self.__dict__:
            self.hook.close()

    def _wait(self, context: Context) -> Any:
        self.request_id = validate_request_id(self.request_id)
        # Until the images exist the links answer "none": no link is stored, no XCom miss logged.
        note_no_images(context)
        if not self.deferrable:
            return super().execute(context)
        try:
            result = self._completed_result(context)
        except AirflowFailException as err:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping: {err}") from err
            raise
        if result is not None:
            return self._publish(context, result)
        # Imported here: DAG files that only parse this sensor never load the trigger machinery.
        from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

        link_keys = end_in_trigger_link_keys(self, PixazoRequestSensor.execute_complete)
        self.defer(
            trigger=PixazoRequestTrigger(
                request_id=self.request_id,
                pixazo_conn_id=self.pixazo_conn_id,
                # A trigger polls at least a second apart: poke_interval=0 makes sense in poke mode only.
                poll_interval=max(self.poke_interval, 1.0),
                timeout=self.timeout,
                max_poll_interval=self.max_poll_interval,
                end_task_on_success=link_keys is not None,
                task_return=TaskReturn.RESULT.value,
                image_link_keys=link_keys,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check once: done with the result when COMPLETED, raise when FAILED or ERROR, else False."""
        result = self._completed_result(context)
        if result is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._publish(context, result))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger fired: return the result, or raise the error matching its outcome.

        :param context: the task's execution context.
        :param event: the trigger's event payload (see :mod:`airflow_provider_pixazo.events`).
        """
        from airflow_provider_pixazo.plugins.records import record_failure

        note_no_images(context)  # a resumed try runs in a new process: no images until published
        record_failure(context, event)  # a FAILED/ERROR result, for the Pixazo view
        try:
            result = result_from_event(event)
        except PixazoError as err:
            self.log.error("%s", err)
            raise
        return self._publish(context, result)

    def _completed_result(self, context: Context) -> RequestResult | None:
        """
        Read the status once: the result when COMPLETED, None while waiting (or after a transient error).

        A FAILED or ERROR result is recorded for the Pixazo view (``context``) before it is raised.

        :raises PixazoRequestFailedError: when the request ended FAILED (``...ErroredError`` for ERROR).
        """
        request_id = validate_request_id(self.request_id)
        try:
            result = self.hook.get_status(request_id)
        except PixazoError as err:
            if not err.transient:
                raise
            self.log.warning("Could not read the status of Pixazo request %s; will try again: %s", request_id, err)
            return None
        if result.status in (RequestStatus.FAILED, RequestStatus.ERROR):
            self.log.error("Pixazo request %s ended %s: %s", request_id, result.status.value, result.error)
            from airflow_provider_pixazo.plugins.records import record_failure

            record_failure(context, result)
            result.raise_for_failure()
        if result.status is not RequestStatus.COMPLETED:
            self.log.info("Pixazo request %s is %s", request_id, result.status.value)
            return None
        return result

    def _publish(self, context: Context, result: RequestResult) -> dict[str, Any]:
        self.log.info(
            "Pixazo request %s COMPLETED: %d %s file(s): %s",
            result.request_id,
            len(result.media_urls),
            result.media_type or "media",
            ", ".join(result.media_urls),
        )
        return publish_result(context, result)
