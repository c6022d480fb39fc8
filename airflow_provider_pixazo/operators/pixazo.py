"""
Operators that submit Pixazo image requests.

Both return the Pixazo ``request_id`` (XCom ``return_value``). With ``wait_for_completion=True`` they
also wait for the result — deferring to :class:`~airflow_provider_pixazo.triggers.pixazo.PixazoRequestTrigger`
when ``deferrable``, polling otherwise — and push it under the XCom key ``pixazo_result``. A request
that ends FAILED or ERROR is pushed under ``pixazo_failure`` instead (Pixazo's reason, for the Pixazo
view in Airflow's UI), whichever way the task waited, before the task fails. Deferred, a request that
COMPLETED ends the task in the triggerer (``end_from_trigger``): no worker resumes it.

A submit costs money, so a retried try does not submit again while the request an earlier try made
for the same parameters is still queued, processing or completed: the request id is kept in Airflow's
task state store (Airflow >= 3.3, through :class:`ResumableJobMixin`). On Airflow 3.2, which has no
task state store, every try submits anew.

Not here: the image options and model rules (``options``, ``models``), the wait itself when deferred
(``triggers``), and reading a result someone else submitted (``sensors``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_pixazo._compat import HAS_TASK_STATE_STORE, ResumableJobMixin
from airflow_provider_pixazo.events import TaskReturn, publish_result, result_from_event
from airflow_provider_pixazo.exceptions import (
    PixazoNotFoundError,
    PixazoTimeoutError,
    PixazoValidationError,
)
from airflow_provider_pixazo.links.pixazo import ImageLinks, note_no_images
from airflow_provider_pixazo.models import DEFAULT_MODEL, SubmitRequest, build_edit_request, build_generate_request
from airflow_provider_pixazo.options import IMAGE_OPTIONS, document_options, rendered_options
from airflow_provider_pixazo.responses import RequestResult, RequestStatus
from airflow_provider_pixazo.waiting import (
    DEFAULT_MAX_POLL_INTERVAL,
    default_deferrable,
    end_from_trigger_choice,
    end_in_trigger_link_keys,
    positive_seconds,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import JsonValue

    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

__all__ = ["PixazoEditImageOperator", "PixazoGenerateImageOperator"]

# Remote statuses in which an earlier try's request can still be waited on instead of paid again.
_ACTIVE = frozenset({RequestStatus.QUEUED.value, RequestStatus.PROCESSING.value})
# What get_job_status reports for a stored request that no longer applies.
_SUPERSEDED = "SUPERSEDED"  # the task's parameters changed since it was submitted
_UNKNOWN = "UNKNOWN"  # Pixazo does not know the id any more


class _PixazoSubmitOperator(ResumableJobMixin, BaseOperator):
    """Shared machinery of the submit operators: validation, paying once, waiting, publishing."""

    template_fields: Sequence[str] = (
        "prompt",
        "model",
        *IMAGE_OPTIONS,
        "extra_params",
        "webhook_url",
        "webhook_mode",
        "pixazo_conn_id",
    )
    template_fields_renderers = {"extra_params": "json"}
    ui_color = "#f3e8ff"
    operator_extra_links = ImageLinks()
    # The task state store key; renaming it would orphan requests of tries already in flight.
    external_id_key = "pixazo_request"

    def __init__(
        self,
        *,
        prompt: str,
        model: str = DEFAULT_MODEL,
        # The image options (options.ImageOptions), one flat keyword each: templated, and set by
        # default_args or expand() by name like any operator argument.
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        n: int | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        moderation: str | None = None,
        extra_params: dict[str, Any] | None = None,
        webhook_url: str | None = None,
        webhook_mode: str | None = None,
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = 10.0,
        timeout: float | timedelta = 3600.0,
        max_poll_interval: float | timedelta = DEFAULT_MAX_POLL_INTERVAL,
        pixazo_conn_id: str = "pixazo_default",
        end_from_trigger: bool | None = None,
        **kwargs: Any,
    ) -> None:
        options = {name: value for name, value in locals().items() if name in IMAGE_OPTIONS}
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        for name, value in options.items():  # each option is the attribute its template field names
            setattr(self, name, value)
        self.extra_params = extra_params
        self.webhook_url = webhook_url
        self.webhook_mode = webhook_mode
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.timeout = positive_seconds("timeout", timeout)
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)
        self.pixazo_conn_id = pixazo_conn_id
        self.end_from_trigger = end_from_trigger_choice(end_from_trigger)

    @cached_property
    def hook(self) -> PixazoHook:
        """The hook for ``pixazo_conn_id`` (imported on first use: DAG parsing never pays for it)."""
        from airflow_provider_pixazo.hooks.pixazo import PixazoHook

        return PixazoHook(self.pixazo_conn_id)

    # -- the task -------------------------------------------------------------------------------

    def build_request(self) -> SubmitRequest:
        """Validate the rendered parameters into a request; raises before any HTTP call."""
        raise NotImplementedError

    def _request_arguments(self) -> dict[str, Any]:
        """The rendered model, image options, extra fields and webhook settings, as the builders take them."""
        return {
            "model": self.model,
            **rendered_options(self),
            "extra_params": self.extra_params,
            "webhook_url": self.webhook_url,
            "webhook_mode": self.webhook_mode,
        }

    def execute(self, context: Context) -> str:
        """Validate, submit once (or reuse an earlier try's request), optionally wait; return the request id."""
        # Until the images exist the links answer "none": no link is stored, no XCom miss logged.
        note_no_images(context)
        self._published = False
        self._request = self.build_request()
        self._fingerprint = _fingerprint(self._request)
        try:
            request_id: str = self.execute_resumable(context)  # what poll_until_complete / get_job_result return
        finally:
            # The worker's part ends here (done, failed or deferred): free the connections now
            # rather than leave sockets for the garbage collector.
            self._close_hook()
        return request_id

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Resume after the trigger fired: publish the result, or fail with Pixazo's reason."""
        from airflow_provider_pixazo.plugins.records import record_failure

        note_no_images(context)  # a resumed try runs in a new process: no images until published
        record_failure(context, event)  # a FAILED/ERROR result, for the Pixazo view
        result = result_from_event(event)
        return self._publish(context, result)

    # -- ResumableJobMixin ----------------------------------------------------------------------

    def submit_job(self, context: Context) -> JsonValue:
        """Pay for one request; the returned dict is what the task state store keeps."""
        submission = self.hook.submit(self._request)
        return {"request_id": submission.request_id, "fingerprint": self._fingerprint}

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """Status of the request an earlier try stored, or why it no longer applies."""
        request_id, fingerprint = _unpack(external_id)
        if fingerprint != self._fingerprint:
            self.log.info("Parameters changed since request %s was submitted; submitting anew", request_id)
            return _SUPERSEDED
        try:
            return self.hook.get_status(request_id).status.value
        except PixazoNotFoundError:
            return _UNKNOWN

    def is_job_active(self, status: str) -> bool:
        """QUEUED and PROCESSING requests are waited on, not paid again."""
        return status in _ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        """A COMPLETED request is reused as it is."""
        return status == RequestStatus.COMPLETED.value

    # The mixin returns this method's value as the task's on reconnection, so it returns the request id.
    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        """Wait when asked to (deferring or polling); return what the task returns."""
        request_id, _ = _unpack(external_id)
        if not self.wait_for_completion:
            return request_id
        if self.deferrable:
            from airflow_provider_pixazo.triggers.pixazo import PixazoRequestTrigger

            link_keys = self._trigger_link_keys()
            self.defer(
                trigger=PixazoRequestTrigger(
                    request_id=request_id,
                    pixazo_conn_id=self.pixazo_conn_id,
                    poll_interval=self.poll_interval,
                    timeout=self.timeout,
                    max_poll_interval=self.max_poll_interval,
                    end_task_on_success=link_keys is not None,
                    task_return=TaskReturn.REQUEST_ID.value,
                    image_link_keys=link_keys,
                ),
                method_name="execute_complete",
            )
        return self._publish(context, self._poll(context, request_id))

    def get_job_result(self, external_id: Any, context: Context) -> str:
        """The request id; with wait_for_completion, the result of a request already completed is published too."""
        request_id, _ = _unpack(external_id)
        if self.wait_for_completion and not self._published:
            return self._publish(context, self.hook.get_status(request_id).raise_for_failure())
        return request_id

    def on_kill(self) -> None:
        """Close the hook's connections when Airflow kills the task (timeout, mark failed)."""
        self._close_hook()

    def _trigger_link_keys(self) -> dict[str, int] | None:
        """The image links' XCom keys when the trigger may end the task, else None (resume on a worker)."""
        if self.durable and HAS_TASK_STATE_STORE and _clears_task_state_on_success():
            # The API server clears the task state store when a worker reports success; a task ended
            # in the triggerer never reports, so it resumes on a worker to keep that promise.
            self.log.info("[state_store] clear_on_success is set: the task resumes on a worker after the wait")
            return None
        return end_in_trigger_link_keys(self, _PixazoSubmitOperator.execute_complete)

    def _close_hook(self) -> None:
        if "hook" in self.__dict__:
            self.hook.close()

    # -- helpers ----------------------------------------------------------------------------------

    def _poll(self, context: Context, request_id: str) -> RequestResult:
        deadline = time.monotonic() + self.timeout
        last: RequestStatus | None = None
        while True:
            result = self.hook.get_status(request_id)
            if result.status is not last:
                self.log.info("Pixazo request %s is %s", request_id, result.status.value)
                last = result.status
            if result.status.is_terminal:
                if result.status is not RequestStatus.COMPLETED:
                    from airflow_provider_pixazo.plugins.records import record_failure

                    # As execute_complete does after a deferred wait: Pixazo's reason, for the Pixazo view.
                    record_failure(context, result)
                return result.raise_for_failure()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PixazoTimeoutError(request_id, self.timeout, last.value)
            time.sleep(min(self.poll_interval, remaining))

    def _publish(self, context: Context, result: RequestResult) -> str:
        publish_result(context, result)
        self._published = True
        self.log.info(
            "Pixazo request %s COMPLETED with %d image(s): %s",
            result.request_id,
            len(result.media_urls),
            ", ".join(result.media_urls),
        )
        return result.request_id


class PixazoGenerateImageOperator(_PixazoSubmitOperator):
    """
    Generate images from a text prompt with GPT Image 2 or GPT Image 1.5 through Pixazo.

    Every parameter is checked against the model's rules before any HTTP call, and the error names the
    parameter, the value and what is allowed. Parameters left as None are not sent (Pixazo's defaults).

    :param prompt: what to draw (templated).
    :param model: ``"gpt-image-2"`` (default) or ``"gpt-image-1.5"``.
    :image options:
    :param extra_params: further API fields sent as they are (for fields newer than this provider).
    :param webhook_url: https URL Pixazo calls back when the request ends (``X-Webhook-URL``).
    :param webhook_mode: ``terminal`` (default) or ``sync``.
    :param wait_for_completion: also wait for the images; the result goes to XCom key ``pixazo_result``.
    :param deferrable: wait in the triggerer instead of a worker slot (default: ``[operators]
        default_deferrable``).
    :param poll_interval: seconds between status checks while waiting (grows gently when deferred).
    :param timeout: seconds to wait before failing with the request id, so it can be checked later.
    :param max_poll_interval: when deferred, the poll interval grows by a quarter after each unchanged
        poll, up to this many seconds (default 60).
    :param pixazo_conn_id: the Pixazo connection (templated).
    :param end_from_trigger: with ``wait_for_completion=True, deferrable=True``, whether the trigger
        ends the task when the request COMPLETED, pushing the same XComs and links. None (default):
        it does unless a listener (OpenLineage...) is registered, which Airflow would not tell of the
        task's end. True: it does (Airflow refuses the DAG beside listeners). False: the task resumes
        on a worker to run ``execute_complete``, as does a subclass that overrides it or adds other links.
    :param durable: keep the request id in the task state store so a retried try does not pay twice
        (default True; Airflow >= 3.3).
    """

    __doc__ = document_options(__doc__)

    def build_request(self) -> SubmitRequest:
        """Validate the rendered parameters into a text-to-image request."""
        return build_generate_request(self.prompt, **self._request_arguments())


class PixazoEditImageOperator(_PixazoSubmitOperator):
    """
    Edit images with GPT Image 2 through Pixazo: in-painting with a mask, or combining references.

    :param prompt: the edit instruction (templated).
    :param images: one image or a list (templated): https URLs, ``data:image/...`` URIs, local paths,
        or object storage URIs (``file://``, ``s3://``...) — the last two are read, checked (PNG, JPEG
        or WebP by their bytes; at most 50 MB) and sent as data URIs.
    :param mask: optional PNG mask, same forms (templated); white areas are edited. It applies to the
        first image.
    :param images_conn_id: Airflow connection used to read object-storage inputs (e.g. an AWS one;
        templated).
    :param model: a model that can edit (``"gpt-image-2"``).
    :image options:

    All other parameters are as for :class:`PixazoGenerateImageOperator`.
    """

    __doc__ = document_options(__doc__)

    template_fields: Sequence[str] = (*_PixazoSubmitOperator.template_fields, "images", "mask", "images_conn_id")

    def __init__(
        self,
        *,
        prompt: str,
        images: str | Sequence[str],
        mask: str | None = None,
        images_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(prompt=prompt, **kwargs)
        self.images = images
        self.mask = mask
        self.images_conn_id = images_conn_id

    def build_request(self) -> SubmitRequest:
        """Read local and object-storage inputs into data URIs, then validate the edit."""
        from airflow_provider_pixazo.media import image_to_reference

        if isinstance(self.images, str):
            images = [self.images]
        elif isinstance(self.images, list | tuple):
            images = list(self.images)
        else:
            raise PixazoValidationError(
                "images", self.images, "an https URL, a data URI, a path or storage URI, or a list of them"
            )
        references = [
            image_to_reference(image, parameter=f"images[{i}]", conn_id=self.images_conn_id)
            for i, image in enumerate(images)
        ]
        mask = (
            None if self.mask is None else image_to_reference(self.mask, parameter="mask", conn_id=self.images_conn_id)
        )
        return build_edit_request(self.prompt, references, mask=mask, **self._request_arguments())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the stored (object storage, local) and https input images and mask."""
        from airflow_provider_pixazo.lineage import edit_lineage

        return edit_lineage(self.images, self.mask)


def _clears_task_state_on_success() -> bool:
    from airflow.sdk.configuration import conf

    return bool(conf.getboolean("state_store", "clear_on_success", fallback=False))


def _fingerprint(request: SubmitRequest) -> str:
    canonical = json.dumps([request.path, request.body, request.headers], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _unpack(external_id: Any) -> tuple[str, str | None]:
    if isinstance(external_id, dict):
        return str(external_id.get("request_id")), external_id.get("fingerprint")
    return str(external_id), None
