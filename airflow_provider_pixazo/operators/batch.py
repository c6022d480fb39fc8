"""
The batch operator: hundreds to thousands of prompts in one task, paid once per prompt, stored with a manifest.

:class:`PixazoBatchGenerateOperator` validates every item, submits them with bounded concurrency, waits
for all of them in one trigger (or on the worker), stores every completed item's images under
``destination`` and writes ``manifest.jsonl`` there. The work is done in :mod:`airflow_provider_pixazo.batch`.

What the task publishes (a contract: the Pixazo view's batch gallery reads it)
------------------------------------------------------------------------------

- **XCom** ``return_value`` (on success)::

      {"manifest": "<protocol>://<destination path>/manifest.jsonl",
       "counts": {"completed": int, "failed": int, "error": int, "timed_out": int, "uncertain": int}}

- **XCom** ``pixazo_batch`` (:data:`BATCH_XCOM_KEY`), pushed before the task succeeds *or fails* on
  ``max_failed`` or on a storing failure (the manifest is written in every case)::

      {"manifest": <uri as above>, "destination": "<protocol>://<destination path>",
       "total": <items>, "images": <image files stored>, "store_failed": <completed items not stored>,
       "counts": {...as above...}, "max_failed": int, "model": "gpt-image-2",
       "not_completed": [{"index": int, "key": str, "status": str, "error": str}, ...]}

  ``not_completed`` lists at most :data:`NOT_COMPLETED_LISTED` items (with ``store_failed`` ones first
  among completed ones); the manifest lists them all.

- **manifest.jsonl** (``manifest`` above; URIs as ``protocol://path``, without connection ids), one JSON
  object per line, one line per item, in item order::

      {"index": 0, "key": "hero", "prompt": "...", "request_id": "gpt-image-2_…" | null,
       "status": "completed" | "failed" | "error" | "timed_out" | "uncertain",
       "error": null | "<why>",
       "files": [{"uri": "s3://bucket/prefix/hero.png", "size": 123456, "sha256": "<hex>",
                  "media_type": "image/png"}]}

  An item's files are ``<key>.<ext>`` (one image) or ``<key>-<i>.<ext>`` (``n`` > 1) directly under
  ``destination``. A ``completed`` item with a non-null ``error`` and no files is one whose images could
  not be stored (the task then fails, and its retry stores them without paying again).

- **Asset events**: each Asset in ``outlets`` gets ``extra`` = ``{"manifest", "destination", "counts",
  "total"}``.

Paying once
-----------
On Airflow >= 3.3 each item's submit intent and request id are kept in the task state store
(:mod:`airflow_provider_pixazo.batch._ledger`): a retried try reuses every request an earlier try made
(waiting on those still running, storing those completed), resubmits only the items that ended FAILED
or ERROR (or were refused without being taken), and reports as ``uncertain``, without resubmitting, an
item whose submit may have reached Pixazo without its id being recorded (pass ``resubmit_uncertain=True``
once you have checked Pixazo's dashboard). On Airflow 3.2, which has no task state store, a retried try
submits every item again: the task logs a warning saying so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_pixazo.exceptions import PixazoError, PixazoValidationError
from airflow_provider_pixazo.models import DEFAULT_MODEL
from airflow_provider_pixazo.options import IMAGE_OPTIONS, document_options, rendered_options
from airflow_provider_pixazo.waiting import DEFAULT_MAX_POLL_INTERVAL, default_deferrable, positive_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_pixazo.batch._items import BatchItem
    from airflow_provider_pixazo.batch._ledger import Ledger
    from airflow_provider_pixazo.batch._outcomes import ItemOutcome
    from airflow_provider_pixazo.batch._store import Stored
    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

__all__ = ["BATCH_XCOM_KEY", "NOT_COMPLETED_LISTED", "PixazoBatchFailedError", "PixazoBatchGenerateOperator"]

#: XCom key of the batch's summary for the Pixazo view (pushed whether the task succeeds or fails).
BATCH_XCOM_KEY = "pixazo_batch"
#: How many items that did not complete the ``pixazo_batch`` XCom lists (the manifest has them all).
NOT_COMPLETED_LISTED = 100
#: The most submits (and downloads) in flight at once: the hook's connection pool holds 64.
MAX_IN_FLIGHT = 64


class PixazoBatchFailedError(PixazoError):
    """
    More items than ``max_failed`` did not complete, or completed images could not be stored.

    Raised after every completed image was stored and the manifest written. Retried like any task error:
    the retry pays only for the items that ended FAILED or ERROR, and stores what was not stored.

    :param counts: the batch's counts per outcome.
    :param manifest: the manifest's URI.
    """

    def __init__(self, message: str, *, counts: dict[str, int], manifest: str) -> None:
        self.counts = counts
        self.manifest = manifest
        super().__init__(message)


class PixazoBatchGenerateOperator(BaseOperator):
    """
    Generate images for many prompts in one task: paid once per prompt, stored with a manifest, within a cap.

    Every item is validated (the single operators' rules) and the spend guard checked before the first
    submit; submits run ``max_in_flight`` at a time; the wait runs in the triggerer (one trigger for the
    whole batch) or, when not deferrable, on the worker; every completed image is stored under
    ``destination`` (streamed, verified, atomic, idempotent) and ``manifest.jsonl`` is written there. The
    task fails only when more than ``max_failed`` items did not complete, and only after storing the rest.
    See the module's documentation for the XCom, manifest and asset-event formats.

    .. code-block:: python

        PixazoBatchGenerateOperator(
            task_id="catalog",
            prompts_uri="s3://my-bucket/prompts/{{ ds }}.jsonl",
            prompts_conn_id="aws_default",
            size="1024x1024",
            quality="medium",
            destination="s3://my-bucket/catalog/{{ ds }}",
            dest_conn_id="aws_default",
            max_images=500,
            max_failed=5,
        )

    :param prompts: a list (templated; an upstream task's XCom works) of prompt strings, or of dicts with
        ``prompt``, an optional unique ``key`` (default: the item's index; it names the item's files) and
        any image option overriding the ones below for that item.
    :param prompts_uri: instead of ``prompts``, a JSONL or CSV file of such items on any
        ``ObjectStoragePath`` (templated). Exactly one of the two.
    :param prompts_conn_id: the connection ``prompts_uri`` is read with (templated).
    :param model: ``"gpt-image-2"`` (default) or ``"gpt-image-1.5"`` (templated).
    :image options:
    :param extra_params: further API fields sent as they are with every item.
    :param destination: where the images and ``manifest.jsonl`` go (templated): a local path, a
        ``file:///``, ``s3://bucket/prefix``, ``gs://``... URI, or an ``ObjectStoragePath``.
    :param dest_conn_id: the connection holding the destination's credentials (templated).
    :param max_images: the spend guard: the images the batch would ask for (items x ``n``) above this fail
        the task before any submit (default 1000).
    :param max_failed: how many items may end failed, error, timed out or uncertain before the task
        fails (default 0).
    :param max_in_flight: how many submits are in flight at once (1-64, default 8).
    :param store_concurrency: how many items are stored at once (1-64, default 8).
    :param overwrite: replace an existing file whose content differs (default False: such a file fails
        that item's storing; identical files are never rewritten).
    :param resubmit_uncertain: submit again the items an earlier try left ``uncertain`` (their submit
        may have been accepted: check Pixazo's dashboard first). Default False.
    :param pixazo_conn_id: the Pixazo connection (templated).
    :param deferrable: wait in the triggerer instead of the worker (default: ``[operators]
        default_deferrable``).
    :param poll_interval: seconds between the first status polls of each request.
    :param timeout: seconds to wait for the batch in all; items still running then end ``timed_out``
        (a retry waits on them again rather than resubmit them).
    :param max_poll_interval: the poll interval of each request grows by a quarter after each unchanged
        poll, up to this (default 60).
    """

    __doc__ = document_options(__doc__)

    template_fields: Sequence[str] = (
        "prompts",
        "prompts_uri",
        "prompts_conn_id",
        "model",
        *IMAGE_OPTIONS,
        "extra_params",
        "destination",
        "dest_conn_id",
        "pixazo_conn_id",
    )
    template_fields_renderers = {"prompts": "json", "extra_params": "json"}
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        prompts: Any = None,
        prompts_uri: Any = None,
        prompts_conn_id: str | None = None,
        model: str = DEFAULT_MODEL,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        n: int | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        moderation: str | None = None,
        extra_params: dict[str, Any] | None = None,
        destination: Any,
        dest_conn_id: str | None = None,
        max_images: int = 1000,
        max_failed: int = 0,
        max_in_flight: int = 8,
        store_concurrency: int = 8,
        overwrite: bool = False,
        resubmit_uncertain: bool = False,
        pixazo_conn_id: str = "pixazo_default",
        deferrable: bool | None = None,
        poll_interval: float | timedelta = 10.0,
        timeout: float | timedelta = 3600.0,
        max_poll_interval: float | timedelta = DEFAULT_MAX_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        options = {name: value for name, value in locals().items() if name in IMAGE_OPTIONS}
        super().__init__(**kwargs)
        self.prompts = prompts
        self.prompts_uri = prompts_uri
        self.prompts_conn_id = prompts_conn_id
        self.model = model
        for name, value in options.items():  # each option is the attribute its template field names
            setattr(self, name, value)
        self.extra_params = extra_params
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.max_images = _whole("max_images", max_images, 1, None)
        self.max_failed = _whole("max_failed", max_failed, 0, None)
        self.max_in_flight = _whole("max_in_flight", max_in_flight, 1, MAX_IN_FLIGHT)
        self.store_concurrency = _whole("store_concurrency", store_concurrency, 1, MAX_IN_FLIGHT)
        self.overwrite = overwrite
        self.resubmit_uncertain = resubmit_uncertain
        self.pixazo_conn_id = pixazo_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.timeout = positive_seconds("timeout", timeout)
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)

    @cached_property
    def hook(self) -> PixazoHook:
        """The hook for ``pixazo_conn_id`` (imported on first use: DAG parsing never pays for it)."""
        from airflow_provider_pixazo.hooks.pixazo import PixazoHook

        return PixazoHook(self.pixazo_conn_id)

    # -- the task -------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate every item, submit what no earlier try paid for, then wait (deferring or here) and finish."""
        from airflow_provider_pixazo.batch._ledger import Ledger
        from airflow_provider_pixazo.batch._submit import submit_all

        items = self._items()  # every check on the user's input, before any HTTP call
        root = self._root()
        ledger = Ledger.open(context, items, self.log)
        try:
            to_submit = self._plan(items, ledger)
            submit_all(self.hook.submit, to_submit, ledger, max_in_flight=self.max_in_flight, log=self.log)
            waiting, early = self._after_submits(items, ledger)
            if waiting and self.deferrable:
                from airflow_provider_pixazo.triggers.batch import PixazoBatchTrigger

                self.log.info("Deferring: waiting for %d request(s) in the triggerer", len(waiting))
                self.defer(
                    trigger=PixazoBatchTrigger(
                        request_ids=[request_id for _, request_id in waiting],
                        pixazo_conn_id=self.pixazo_conn_id,
                        poll_interval=self.poll_interval,
                        timeout=self.timeout,
                        max_poll_interval=self.max_poll_interval,
                        batch=_plan_payload(items, waiting, early),
                    ),
                    method_name="execute_complete",
                )
            outcomes, stored = self._wait_here(items, root, waiting) if waiting else ([], {})
            return self._finish(context, items, root, ledger, waiting, outcomes, early, stored)
        finally:
            self._close_hook()

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: record, store and publish every item's outcome."""
        from airflow_provider_pixazo.batch._ledger import Ledger
        from airflow_provider_pixazo.batch._outcomes import ItemOutcome

        if not isinstance(event, dict) or not isinstance(event.get("batch"), dict):
            raise PixazoError(f"The batch trigger sent an event this operator cannot read: {str(event)[:300]}")
        plan: dict[str, Any] = event["batch"]
        items = self._items()
        if plan.get("fingerprint") != _batch_fingerprint(items):
            raise PixazoValidationError(
                "prompts",
                f"<{len(items)} items>",
                "the same items the task submitted; they changed while it waited (a prompts file rewritten?). "
                "Clear the task to run the batch again",
            )
        root = self._root()
        request_ids = event.get("request_ids")
        results = event.get("results")
        indexes = plan.get("waiting") or []
        if (
            event.get("status") != "done"
            or not isinstance(request_ids, list)
            or not isinstance(results, list)
            or not len(request_ids) == len(results) == len(indexes)
        ):
            raise PixazoError(f"The batch trigger sent an event this operator cannot read: {str(event)[:300]}")
        waiting = list(zip(indexes, request_ids, strict=True))
        outcomes = [ItemOutcome.from_wire(data) for data in results]
        early = {int(index): (outcome, error) for index, outcome, error in plan.get("early") or []}
        ledger = Ledger.open(context, items, self.log)
        try:
            return self._finish(context, items, root, ledger, waiting, outcomes, early)
        finally:
            self._close_hook()

    def on_kill(self) -> None:
        """Close the hook's connections when Airflow kills the task."""
        self._close_hook()

    # -- steps ----------------------------------------------------------------------------------

    def _items(self) -> list[BatchItem]:
        from airflow_provider_pixazo.batch._items import build_items, check_spend, load_prompts

        raw = load_prompts(self.prompts, self.prompts_uri, self.prompts_conn_id)
        items = build_items(
            raw, model=self.model, defaults=rendered_options(self), extra_params=self.extra_params, log=self.log
        )
        images = check_spend(items, self.max_images)
        self.log.info("Batch of %d item(s), %d image(s) (max_images %d)", len(items), images, self.max_images)
        return items

    def _root(self) -> ObjectStoragePath:
        from airflow_provider_pixazo.transfers._destination import resolve_destination

        return resolve_destination(self.destination, self.dest_conn_id)

    def _plan(self, items: Sequence[BatchItem], ledger: Ledger) -> list[BatchItem]:
        """What to submit now; earlier tries' requests are reused, uncertain ones left alone."""
        from airflow_provider_pixazo.batch._ledger import RESUBMIT, EntryState

        to_submit: list[BatchItem] = []
        unsettled: list[BatchItem] = []
        counts = {"reused": 0, "uncertain": 0, "resubmitted": 0}
        for item in items:
            entry = ledger.get(item.index)
            if entry is None:
                to_submit.append(item)
            elif entry.state in RESUBMIT:
                to_submit.append(item)
                counts["resubmitted"] += 1
            elif entry.state is EntryState.INTENT:
                if self.resubmit_uncertain:
                    to_submit.append(item)
                    counts["resubmitted"] += 1
                else:
                    counts["uncertain"] += 1
            elif entry.state is EntryState.SUBMITTED:
                unsettled.append(item)
            else:  # COMPLETED: waited on again, which answers at once with its images
                counts["reused"] += 1
        if unsettled:
            resubmit = self._settle(unsettled, ledger)
            to_submit.extend(resubmit)
            counts["resubmitted"] += len(resubmit)
            counts["reused"] += len(unsettled) - len(resubmit)
        if any(counts.values()):
            self.log.info(
                "Earlier tries: %d request(s) reused, %d item(s) resubmitted (FAILED/ERROR/refused), "
                "%d uncertain item(s) not resubmitted",
                counts["reused"],
                counts["resubmitted"],
                counts["uncertain"],
            )
        self.log.info("%d of %d item(s) to submit now", len(to_submit), len(items))
        return sorted(to_submit, key=lambda item: item.index)

    def _settle(self, unsettled: Sequence[BatchItem], ledger: Ledger) -> list[BatchItem]:
        """
        Ask Pixazo how the requests of an earlier try ended when that try did not record it (it was killed).

        FAILED and ERROR ones, and ids Pixazo no longer knows, are submitted again; the rest are waited on.
        """
        from airflow_provider_pixazo.batch._ledger import EntryState
        from airflow_provider_pixazo.exceptions import PixazoNotFoundError
        from airflow_provider_pixazo.responses import RequestStatus

        def status_of(request_id: str) -> str | None:
            try:
                return self.hook.get_status(request_id).status.value
            except PixazoNotFoundError:
                return "UNKNOWN"
            except PixazoError as err:  # the wait will keep polling it
                self.log.warning("Could not check request %s now (%s); waiting on it", request_id, err)
                return None

        request_ids = [_request_id(ledger, item) for item in unsettled]

        self.log.info("Checking %d request(s) an earlier try submitted", len(unsettled))
        resubmit: list[BatchItem] = []
        with concurrent.futures.ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="pixazo-check") as pool:
            for item, status in zip(unsettled, pool.map(status_of, request_ids), strict=True):
                if status in (RequestStatus.FAILED.value, RequestStatus.ERROR.value, "UNKNOWN"):
                    ledger.mark(item, EntryState(status) if status != "UNKNOWN" else EntryState.REFUSED)
                    resubmit.append(item)
        return resubmit

    def _after_submits(
        self, items: Sequence[BatchItem], ledger: Ledger
    ) -> tuple[list[tuple[int, str]], dict[int, tuple[str, str | None]]]:
        """The ``(index, request_id)`` pairs to wait on, and the outcome of every item with nothing to wait on."""
        from airflow_provider_pixazo.batch._ledger import EntryState
        from airflow_provider_pixazo.batch._outcomes import Outcome

        waiting: list[tuple[int, str]] = []
        early: dict[int, tuple[str, str | None]] = {}
        for item in items:
            entry = ledger.get(item.index)
            if entry is not None and entry.request_id and entry.state in (EntryState.SUBMITTED, EntryState.COMPLETED):
                waiting.append((item.index, entry.request_id))
            elif entry is not None and entry.state is EntryState.INTENT:
                early[item.index] = (
                    Outcome.UNCERTAIN.value,
                    (entry.error or "a submit was sent by an earlier try but its answer was never recorded")
                    + "; not resubmitted, to avoid paying twice (check Pixazo's dashboard, then pass "
                    "resubmit_uncertain=True to submit it again)",
                )
            else:
                early[item.index] = (Outcome.ERROR.value, entry.error if entry is not None else "not submitted")
        return waiting, early

    def _wait_here(
        self, items: Sequence[BatchItem], root: ObjectStoragePath, waiting: Sequence[tuple[int, str]]
    ) -> tuple[list[ItemOutcome], dict[int, Stored]]:
        """
        Not deferrable: the trigger's own wait, on an event loop of this worker.

        Each completed item's images are stored as soon as its request completes, while the others
        are still waited on.
        """
        from airflow_provider_pixazo.batch._outcomes import Outcome
        from airflow_provider_pixazo.batch._store import StoreJob, StorePool
        from airflow_provider_pixazo.batch._wait import wait_all

        by_index = {item.index: item for item in items}
        self.log.info("Waiting for %d request(s) on the worker, storing each as it completes", len(waiting))
        with StorePool(
            self.hook, root, concurrency=self.store_concurrency, overwrite=self.overwrite, log=self.log
        ) as pool:

            def on_end(position: int, outcome: ItemOutcome) -> None:
                if outcome.outcome is Outcome.COMPLETED:
                    index, request_id = waiting[position]
                    pool.add(StoreJob(by_index[index], request_id, outcome))

            outcomes = asyncio.run(
                wait_all(
                    self.pixazo_conn_id,
                    [request_id for _, request_id in waiting],
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    end_time=time.time() + self.timeout,
                    log=self.log,
                    on_end=on_end,
                )
            )
            return outcomes, pool.results()

    def _finish(
        self,
        context: Context,
        items: Sequence[BatchItem],
        root: ObjectStoragePath,
        ledger: Ledger,
        waiting: Sequence[tuple[int, str]],
        outcomes: Sequence[ItemOutcome],
        early: dict[int, tuple[str, str | None]],
        stored: dict[int, Stored] | None = None,
    ) -> dict[str, Any]:
        """
        Record the outcomes, store every completed item, write the manifest, publish; fail past ``max_failed``.

        :param stored: what the worker's own wait already stored, by item index (None: store them now).
        """
        from airflow_provider_pixazo.batch._ledger import EntryState
        from airflow_provider_pixazo.batch._manifest import ManifestLine, write_manifest
        from airflow_provider_pixazo.batch._outcomes import Outcome, empty_counts
        from airflow_provider_pixazo.batch._store import StoreJob, store_all
        from airflow_provider_pixazo.transfers._assets import emit_asset_events
        from airflow_provider_pixazo.transfers._destination import uri_of

        by_index = {item.index: item for item in items}
        # Pixazo's terminal statuses, so a retry knows what to resubmit without asking again.
        for (index, _request_id), outcome in zip(waiting, outcomes, strict=True):
            if outcome.status is not None:
                ledger.mark(by_index[index], EntryState(outcome.status))
        ledger.flush()

        if stored is None:
            jobs = [
                StoreJob(by_index[index], request_id, outcome)
                for (index, request_id), outcome in zip(waiting, outcomes, strict=True)
                if outcome.outcome is Outcome.COMPLETED
            ]
            stored = store_all(
                self.hook, root, jobs, concurrency=self.store_concurrency, overwrite=self.overwrite, log=self.log
            )

        waited = {index: (request_id, outcome) for (index, request_id), outcome in zip(waiting, outcomes, strict=True)}
        lines: list[ManifestLine] = []
        counts = empty_counts()
        for item in items:
            request_id: str | None = None
            files: list[dict[str, Any]] = []
            if item.index in waited:
                request_id, outcome = waited[item.index]
                status, error = outcome.outcome.value, outcome.error
                result = stored.get(item.index)
                if result is not None:
                    error = result.error
                    files = [
                        {"uri": f.uri, "size": f.size, "sha256": f.sha256, "media_type": f.media_type}
                        for f in result.files
                    ]
            else:
                status, error = early[item.index]
                entry = ledger.get(item.index)
                request_id = entry.request_id if entry is not None else None
            counts[status] += 1
            lines.append(ManifestLine(item.index, item.key, item.prompt, request_id, status, error, files))
        manifest = write_manifest(root, lines, self.log)

        store_failed = sum(1 for result in stored.values() if result.error)
        summary = {
            "manifest": manifest,
            "destination": uri_of(root),
            "total": len(items),
            "images": sum(len(line.files) for line in lines),
            "store_failed": store_failed,
            "counts": counts,
            "max_failed": self.max_failed,
            "model": self.model,
            "not_completed": _not_completed(lines),
        }
        context["ti"].xcom_push(key=BATCH_XCOM_KEY, value=summary)
        emit_asset_events(
            self.outlets,
            context,
            {"manifest": manifest, "destination": uri_of(root), "counts": counts, "total": len(items)},
            self.log,
        )
        not_completed = len(items) - counts[Outcome.COMPLETED.value]
        self.log.info(
            "Batch done: %d/%d completed, %d failed, %d error, %d timed out, %d uncertain; %d image(s) stored, "
            "%d completed item(s) not stored; manifest %s",
            counts["completed"],
            len(items),
            counts["failed"],
            counts["error"],
            counts["timed_out"],
            counts["uncertain"],
            summary["images"],
            store_failed,
            manifest,
        )
        if not_completed > self.max_failed:
            raise PixazoBatchFailedError(
                f"{not_completed} of {len(items)} item(s) did not complete (failed {counts['failed']}, error "
                f"{counts['error']}, timed out {counts['timed_out']}, uncertain {counts['uncertain']}), more than "
                f"max_failed={self.max_failed}. Every completed image is stored; see {manifest}. A retry "
                "resubmits only the FAILED/ERROR items and waits on the timed-out ones.",
                counts=counts,
                manifest=manifest,
            )
        if store_failed:
            raise PixazoBatchFailedError(
                f"{store_failed} completed item(s) could not be stored (see {manifest}); a retry stores them "
                "without paying again",
                counts=counts,
                manifest=manifest,
            )
        return {"manifest": manifest, "counts": counts}

    def _close_hook(self) -> None:
        if "hook" in self.__dict__:
            self.hook.close()


def _whole(name: str, value: Any, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"a whole number from {low} to {high}" if high is not None else f"a whole number of at least {low}"
        raise PixazoValidationError(name, value, allowed)
    return value


def _request_id(ledger: Ledger, item: BatchItem) -> str:
    entry = ledger.get(item.index)
    if entry is None or entry.request_id is None:  # the caller chose items with one
        raise ValueError(f"item {item.index} has no request id in the ledger")
    return entry.request_id


def _batch_fingerprint(items: Sequence[BatchItem]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.key}\0{item.fingerprint}\n".encode())
    return digest.hexdigest()


def _plan_payload(
    items: Sequence[BatchItem], waiting: Sequence[tuple[int, str]], early: dict[int, tuple[str, str | None]]
) -> dict[str, Any]:
    """What the resumed task needs beyond the trigger's event (Airflow 3.2 has no ledger to read it from)."""
    return {
        "fingerprint": _batch_fingerprint(items),
        "waiting": [index for index, _ in waiting],
        "early": [[index, outcome, error] for index, (outcome, error) in sorted(early.items())],
    }


def _not_completed(lines: Sequence[Any]) -> list[dict[str, Any]]:
    unstored = [line for line in lines if line.status == "completed" and line.error]
    others = [line for line in lines if line.status != "completed"]
    return [
        {"index": line.index, "key": line.key, "status": line.status, "error": line.error}
        for line in (unstored + others)[:NOT_COMPLETED_LISTED]
    ]
