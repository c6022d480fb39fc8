"""
Storing the completed items' images under the destination, through the transfer's own machinery.

Each item's images go through :func:`airflow_provider_pixazo.transfers._downloads.download_all` (streamed,
checked against the announced media type and ``Content-Length``, staged and published atomically, an
identical target left untouched, so a retried try rewrites nothing), ``concurrency`` items at a time,
each as soon as it is added (when the worker waits itself, as soon as its request completes).
Files are named by the item's key: ``<key>.<ext>`` for one image, ``<key>-<i>.<ext>`` for several. A
failure to store one item is recorded on that item and the others go on. Not here: the manifest.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_pixazo.responses import RequestResult, RequestStatus

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_pixazo.batch._items import BatchItem
    from airflow_provider_pixazo.batch._outcomes import ItemOutcome
    from airflow_provider_pixazo.hooks.pixazo import PixazoHook
    from airflow_provider_pixazo.transfers._downloads import FileRecord

__all__ = ["StoreJob", "StorePool", "Stored", "file_template", "store_all"]


@dataclass(frozen=True)
class StoreJob:
    """One completed item to store."""

    item: BatchItem
    request_id: str
    outcome: ItemOutcome


@dataclass
class Stored:
    """What storing one item gave: its files, or why they could not be stored."""

    files: list[FileRecord] = field(default_factory=list)
    error: str | None = None
    retryable: bool = True


def file_template(key: str, count: int) -> str:
    """The transfer's path template for an item's files (keys are path-safe by construction)."""
    return f"{key}.{{ext}}" if count == 1 else f"{key}-{{index}}.{{ext}}"


def store_all(
    hook: PixazoHook,
    root: ObjectStoragePath,
    jobs: Sequence[StoreJob],
    *,
    concurrency: int,
    overwrite: bool,
    log: Any,
    clock: Callable[[], float] = time.monotonic,
) -> dict[int, Stored]:
    """Store every job's images under ``root``; by item index."""
    with StorePool(hook, root, concurrency=concurrency, overwrite=overwrite, log=log, clock=clock) as pool:
        for job in jobs:
            pool.add(job)
        return pool.results()


class StorePool:
    """
    Stores items as they are added, ``concurrency`` at a time; :meth:`results` waits for them all.

    Added one by one as the worker's own wait sees each request complete (not deferrable), storing
    overlaps the wait; after a deferred wait every completed item is added at once.
    """

    def __init__(
        self,
        hook: PixazoHook,
        root: ObjectStoragePath,
        *,
        concurrency: int,
        overwrite: bool,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hook, self._root, self._overwrite, self._log, self._clock = hook, root, overwrite, log, clock
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pixazo-store")
        self._futures: dict[concurrent.futures.Future[Stored], StoreJob] = {}
        self._started = clock()

    def __enter__(self) -> StorePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc_info[0] is not None)

    def add(self, job: StoreJob) -> None:
        """Start storing ``job``'s images (at once if a thread is free)."""
        self._futures[self._pool.submit(_store_one, self._hook, self._root, job, self._overwrite, self._log)] = job

    def results(self) -> dict[int, Stored]:
        """Wait for every added job; what each gave, by item index."""
        results: dict[int, Stored] = {}
        total = len(self._futures)
        step = max(1, total // 10)
        for done, future in enumerate(concurrent.futures.as_completed(self._futures), start=1):
            results[self._futures[future].item.index] = future.result()
            if done % step == 0 or done == total:
                failures = sum(1 for stored in results.values() if stored.error)
                self._log.info("%d/%d completed item(s) stored (%d failed to store)", done, total, failures)
        files = sum(len(stored.files) for stored in results.values())
        self._log.info("Stored %d image(s) of %d item(s) in %.1fs", files, total, self._clock() - self._started)
        return results


def _store_one(hook: PixazoHook, root: ObjectStoragePath, job: StoreJob, overwrite: bool, log: Any) -> Stored:
    from airflow_provider_pixazo.exceptions import PixazoError
    from airflow_provider_pixazo.transfers._destination import check_layout
    from airflow_provider_pixazo.transfers._downloads import download_all

    outcome = job.outcome
    result = RequestResult(
        request_id=job.request_id,
        status=RequestStatus.COMPLETED,
        media_urls=outcome.media_urls,
        media_type=outcome.media_type,
        model_id=outcome.model_id,
    )
    template = file_template(job.item.key, len(outcome.media_urls))
    try:
        check_layout(template, job.request_id, outcome.media_type, len(outcome.media_urls), None)
        for url in outcome.media_urls:
            hook.check_media_url(url)
        records = download_all(
            hook, result, root, template, max_concurrency=min(4, len(outcome.media_urls)), overwrite=overwrite, log=log
        )
    except PixazoError as err:
        log.error("Item %d (key %s): storing its images failed: %s", job.item.index, job.item.key, err)
        # A conflict or a refused URL fails the same way on every try; a download may work next time.
        return Stored(error=f"storing failed: {err}", retryable=err.transient)
    except Exception as err:  # the file systems raise their own errors (OSError, botocore's...)
        log.error("Item %d (key %s): storing its images failed: %s", job.item.index, job.item.key, err)
        return Stored(error=f"storing failed: {type(err).__name__}: {err}")
    return Stored(files=records)
