"""
Extra links to the images a Pixazo task produced, shown as buttons on the task in the Airflow UI.

The task pushes its media URLs once, with :func:`persist_media_urls`. When it finishes, Airflow
calls each link's :meth:`PixazoImageLink.get_link` on the worker and stores the answer under the
link's own :attr:`~PixazoImageLink.xcom_key`; the UI then reads that key. Airflow serializes a
link as ``{name: xcom_key}``, so both are unique per image index. A task that ends in the triggerer
has no worker to do that: its trigger stores the same answers (:func:`image_url`,
:func:`image_link_keys`).

Each stored answer is one call from the task to the API server, at every task end, deferrals included:
with ten buttons on the generate task and ten on the wait, a mapped prompt's links cost 40 of its ~75
calls (api-server log of a 100-prompt run), nearly all for buttons without an image. So:

- a running task that has published its media URLs shows only the links that have an image
  (:class:`ImageLinks`; the class, the serialized DAG and the UI keep every button, and the UI shows a
  link without a stored URL as it shows an empty one: not at all);
- the URLs this process pushed are remembered (:func:`remember_media_urls`), so the links resolve
  from memory instead of reading the same XCom back once per button.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import attrs
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

__all__ = [
    "MEDIA_URLS_XCOM_KEY",
    "ImageLinks",
    "PixazoImageLink",
    "declared_links",
    "image_link_keys",
    "image_links",
    "image_url",
    "note_no_images",
    "persist_media_urls",
    "remember_media_urls",
]

#: XCom key under which a task pushes the list of its media URLs.
MEDIA_URLS_XCOM_KEY = "pixazo_media_urls"

#: How many image buttons operators show by default (Pixazo makes at most 10 images per request).
DEFAULT_LINK_COUNT = 10

# The media URLs this process last pushed, by task instance try. Each workload is a process of its own
# (or, under dag.test(), every push of the run goes through here), so an entry is never older than the
# XCom it mirrors. Bounded: a long dag.test() session must not grow it without end.
_PUSHED: dict[tuple[str, str, str, int, int], Any] = {}
_PUSHED_MAX = 256


@attrs.define()
class PixazoImageLink(BaseOperatorLink):
    """
    A link to one generated image.

    :param index: which image (0-based) of the task's media URLs this link opens.
    """

    index: int = attrs.field(default=0)

    @index.validator
    def _check_index(self, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"PixazoImageLink index must be an integer >= 0, got {value!r}")

    @property
    def name(self) -> str:
        """The button label: ``Pixazo image 1`` for index 0."""
        return f"Pixazo image {self.index + 1}"

    @property
    def xcom_key(self) -> str:
        """Where Airflow stores this link's URL; unique per index, else every button opens one image."""
        return f"_link_{type(self).__name__}_{self.index}"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """
        The URL of image ``index``, or ``""`` when the task pushed fewer images (or none).

        :param operator: the task this link belongs to.
        :param ti_key: the task instance to read the media URLs of.
        """
        key = _try_key(ti_key)
        if key is not None and key in _PUSHED:
            return image_url(_PUSHED[key], self.index)
        from airflow.sdk.execution_time.xcom import XCom

        urls = XCom.get_value(ti_key=ti_key, key=MEDIA_URLS_XCOM_KEY)
        if key is not None:
            _remember(key, urls)  # the other buttons of this task read it from here
        return image_url(urls, self.index)


def image_url(urls: Any, index: int) -> str:
    """
    The URL the link to image ``index`` opens, given the pushed media URLs: ``""`` when there is none.

    :param urls: the value pushed under :data:`MEDIA_URLS_XCOM_KEY` (a list of URLs, or anything else).
    :param index: the image (0-based).
    """
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, Sequence) or index >= len(urls):
        return ""
    url = urls[index]
    return url if isinstance(url, str) else ""


def image_link_keys(links: Sequence[object]) -> dict[str, int] | None:
    """
    Each image link's XCom key and the image it opens, or None if any link is not exactly ours.

    None means a trigger cannot store the links itself (another link's URL is only known to its own
    ``get_link``, on a worker), so the task must resume on a worker to end. That includes a subclass of
    :class:`PixazoImageLink` that overrides ``get_link`` or ``xcom_key``: the trigger knows only
    :func:`image_url` and the class's own keys.

    :param links: a task's ``operator_extra_links``.
    """
    keys: dict[str, int] = {}
    for link in links:
        if not _resolved_as_ours(link):
            return None
        keys[link.xcom_key] = link.index
    return keys


def _resolved_as_ours(link: object) -> TypeGuard[PixazoImageLink]:
    """Whether ``link`` is a :class:`PixazoImageLink` whose URL and XCom key are the provider's own."""
    return (
        isinstance(link, PixazoImageLink)
        and type(link).get_link is PixazoImageLink.get_link
        and type(link).xcom_key is PixazoImageLink.xcom_key
    )


class ImageLinks:
    """
    An operator's ``operator_extra_links``: image buttons, all of them but on a task that has fewer images.

    Read on the class (DAG parsing, serialization, mapped tasks, the UI), or on an operator that has not
    published media URLs yet, it is :func:`image_links` of ``count``. Read on a running task after
    :func:`persist_media_urls` (or the result's publication) it is only the first links, one per image:
    Airflow stores one XCom per link when the task ends, so a task without images stores none.

    :param count: how many image buttons the operator offers.
    """

    def __init__(self, count: int = DEFAULT_LINK_COUNT) -> None:
        self.links = image_links(count)

    def __get__(self, task: Any, owner: type | None = None) -> tuple[PixazoImageLink, ...]:
        shown = None if task is None else vars(task).get(_SHOWN)
        return self.links if shown is None else self.links[:shown]


# The instance attribute where a running task notes how many images it has (see ImageLinks).
_SHOWN = "_pixazo_images_shown"


def declared_links(task: Any) -> Any:
    """
    Every link ``task`` declares, whatever its running instance shows (:class:`ImageLinks`).

    :param task: an operator.
    """
    declared = inspect.getattr_static(task, "operator_extra_links", ())
    return declared.links if isinstance(declared, ImageLinks) else task.operator_extra_links


def image_links(count: int = DEFAULT_LINK_COUNT) -> tuple[PixazoImageLink, ...]:
    """
    Links for the first ``count`` images, for an operator's ``operator_extra_links``.

    :param count: how many image buttons to offer.
    """
    return tuple(PixazoImageLink(index=i) for i in range(count))


def persist_media_urls(context: Context, media_urls: Sequence[str]) -> None:
    """
    Push the media URLs of a finished request to XCom, where :class:`PixazoImageLink` finds them.

    :param context: the task's execution context.
    :param media_urls: the URLs, in order (``RequestResult.media_urls``).
    """
    ti = context["ti"]
    urls = list(media_urls)
    ti.xcom_push(key=MEDIA_URLS_XCOM_KEY, value=urls)
    remember_media_urls(ti, urls, context.get("task"))


def note_no_images(context: Context) -> None:
    """
    Note, without any API call, that this try has no images yet: its links answer "none".

    The running task's :class:`ImageLinks` then show no link, so Airflow stores none when the try ends
    (deferrals included) and logs no XCom miss. Nothing needs clearing: Airflow deletes a task
    instance's XComs when a new try starts (the execution API's ``run``, except on a resume from a
    deferral), so an earlier try's media URLs cannot show. This replaced a push of ``[]`` per task,
    one execution-API call each.

    :param context: the task's execution context.
    """
    remember_media_urls(context["ti"], [], context.get("task"))


def remember_media_urls(ti: Any, media_urls: Any, task: Any = None) -> None:
    """
    Note that this process pushed ``media_urls`` for task instance ``ti``: its links resolve from memory.

    Whatever pushes :data:`MEDIA_URLS_XCOM_KEY` calls this after the push.

    :param ti: the task instance (anything with ``dag_id``, ``task_id``, ``run_id``, ``map_index`` and
        ``try_number``).
    :param media_urls: the value pushed.
    :param task: the running operator, whose :class:`ImageLinks` then show one link per image; None
        (a trigger) changes no operator.
    """
    key = _try_key(ti)
    if key is not None:
        _remember(key, media_urls)
    if task is not None and isinstance(media_urls, list):
        vars(task)[_SHOWN] = len(media_urls)


def _try_key(ti: Any) -> tuple[str, str, str, int, int] | None:
    """Which try of which task instance ``ti`` is, or None if it does not say (nothing is remembered then)."""
    try:
        return (ti.dag_id, ti.task_id, ti.run_id, int(ti.map_index), int(ti.try_number))
    except (AttributeError, TypeError, ValueError):
        return None


def _remember(key: tuple[str, str, str, int, int], urls: Any) -> None:
    _PUSHED.pop(key, None)
    _PUSHED[key] = urls
    while len(_PUSHED) > _PUSHED_MAX:
        del _PUSHED[next(iter(_PUSHED))]
