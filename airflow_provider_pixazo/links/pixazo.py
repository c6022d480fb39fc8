"""
Extra links to the images a Pixazo task produced, shown as buttons on the task in the Airflow UI.

The task pushes its media URLs once, with :func:`persist_media_urls`. When it finishes, Airflow
calls each link's :meth:`PixazoImageLink.get_link` on the worker and stores the answer under the
link's own :attr:`~PixazoImageLink.xcom_key`; the UI then reads that key. Airflow serializes a
link as ``{name: xcom_key}``, so both are unique per image index. A task that ends in the triggerer
has no worker to do that: its trigger stores the same answers (:func:`image_url`,
:func:`image_link_keys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import attrs
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

__all__ = [
    "MEDIA_URLS_XCOM_KEY",
    "PixazoImageLink",
    "image_link_keys",
    "image_links",
    "image_url",
    "persist_media_urls",
]

#: XCom key under which a task pushes the list of its media URLs.
MEDIA_URLS_XCOM_KEY = "pixazo_media_urls"

#: How many image buttons operators show by default (Pixazo makes at most 10 images per request).
DEFAULT_LINK_COUNT = 10


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
        from airflow.sdk.execution_time.xcom import XCom

        return image_url(XCom.get_value(ti_key=ti_key, key=MEDIA_URLS_XCOM_KEY), self.index)


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
    context["ti"].xcom_push(key=MEDIA_URLS_XCOM_KEY, value=list(media_urls))
