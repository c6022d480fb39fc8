"""The Pixazo hook: authentication and every endpoint of the gateway, sync and async."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook

from airflow_provider_pixazo import media, retry
from airflow_provider_pixazo.exceptions import PixazoAuthError, PixazoError, PixazoNotFoundError
from airflow_provider_pixazo.hooks import _clients
from airflow_provider_pixazo.hooks._settings import ConnectionSettings, settings_from_connection
from airflow_provider_pixazo.models import SubmitRequest, build_edit_request, build_generate_request
from airflow_provider_pixazo.responses import STATUS_PATH, RequestResult, Submission, validate_request_id
from airflow_provider_pixazo.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = ["PixazoHook"]

# A status id that cannot exist: test_connection asks for it, so it costs nothing and submits nothing.
_PROBE_REQUEST_ID = "airflow-connection-test"


class PixazoHook(BaseHook):
    """
    Talks to Pixazo's GPT Image gateway.

    The connection (type ``pixazo``) holds the API key in its password and, optionally, the gateway
    in its host: a bare host name or a full URL such as ``http://127.0.0.1:8080`` for the local
    emulator (default ``https://gateway.pixazo.ai``). Extras: ``timeout`` (read timeout in seconds,
    default 30), ``verify`` (true, false, or a CA bundle path) and ``proxy`` (a proxy URL that wins
    over ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``, which apply otherwise, as in
    httpx). Proxy and TLS settings apply to every call: submits, status polls in the triggerer and
    media downloads.

    The key is sent only to the connection's own origin, as the ``Ocp-Apim-Subscription-Key``
    header; status URLs are always built from the connection, never taken from a response; media
    downloads carry no key at all.

    :param pixazo_conn_id: the Airflow connection to use.
    :param retry_policy: how transient errors are retried (see :mod:`airflow_provider_pixazo.retry`).
    """

    conn_name_attr = "pixazo_conn_id"
    default_conn_name = "pixazo_default"
    conn_type = "pixazo"
    hook_name = "Pixazo"

    def __init__(
        self,
        pixazo_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.pixazo_conn_id = pixazo_conn_id
        self.retry_policy = retry_policy or RetryPolicy()
        self._media: httpx.Client | None = None
        self._media_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pixazo_conn_id={self.pixazo_conn_id!r})"

    # -- connection -------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, read once per hook (blocking: not for the event loop)."""
        return settings_from_connection(self.get_connection(self.pixazo_conn_id))

    async def asettings(self) -> ConnectionSettings:
        """
        The connection's settings, read with Airflow's async connection API on every call.

        Not cached on the hook, so one hook can serve any number of coroutines; the triggers' shared
        poller (:mod:`._poller`) keeps its own read with a short time-to-live.
        """
        conn: Connection = await self.aget_connection(self.pixazo_conn_id)
        return settings_from_connection(conn)

    def get_conn(self) -> httpx.Client:
        """The sync API client (pooled, authenticated for this connection only)."""
        return self._client

    @cached_property
    def _client(self) -> httpx.Client:
        settings = self.settings
        return httpx.Client(
            **_clients.client_kwargs(settings), **_clients.network_kwargs(settings), limits=_clients.POOL_LIMITS
        )

    def close(self) -> None:
        """Close the sync clients (API and media) and their connections."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()
        with self._media_lock:
            if self._media is not None:
                self._media.close()
                self._media = None

    # -- submits ----------------------------------------------------------------------------------

    def submit(self, request: SubmitRequest) -> Submission:
        """
        Send a validated submit (see :func:`~airflow_provider_pixazo.models.build_generate_request`).

        Costs money on success. Resent only on 429 or when the request provably never left.

        :raises PixazoSubmitUncertainError: when it may have been accepted despite the error.
        """
        http_request = self._client.build_request("POST", request.path, json=request.body, headers=request.headers)
        flow = retry.exchange(http_request, self.retry_policy, submit=True)
        response = retry.drive_sync(flow, self._client)
        submission = Submission.from_api(response.json())
        self.log.info(
            "Pixazo accepted a %s %s request: request_id=%s",
            request.model,
            request.operation,
            submission.request_id,
        )
        return submission

    def generate_image(self, prompt: str, *, model: str = "gpt-image-2", **params: Any) -> Submission:
        """
        Submit a text-to-image request.

        :param prompt: what to draw.
        :param model: ``gpt-image-2`` (default) or ``gpt-image-1.5``.
        :param params: the image options (:class:`~airflow_provider_pixazo.options.ImageOptions`) and
            ``extra_params, webhook_url, webhook_mode``, validated before any HTTP call.
        """
        return self.submit(build_generate_request(prompt, model=model, **params))

    def edit_image(
        self,
        prompt: str,
        images: str | Sequence[str],
        *,
        mask: str | None = None,
        model: str = "gpt-image-2",
        **params: Any,
    ) -> Submission:
        """
        Submit an image edit.

        :param prompt: the edit instruction.
        :param images: one or more https URLs or ``data:image/...;base64,`` URIs.
        :param mask: optional PNG mask (https URL or data URI); white areas are edited.
        :param model: a model that can edit (``gpt-image-2``).
        :param params: as for :meth:`generate_image`.
        """
        return self.submit(build_edit_request(prompt, images, mask=mask, model=model, **params))

    # -- status -----------------------------------------------------------------------------------

    def get_status(self, request_id: str) -> RequestResult:
        """Fetch the status of ``request_id``; transient errors are retried with backoff."""
        return self._fetch_status(request_id, self.retry_policy)

    def _fetch_status(self, request_id: str, policy: RetryPolicy) -> RequestResult:
        request = self._status_request(self._client, request_id)
        flow = retry.exchange(request, policy, request_id=request_id)
        return RequestResult.from_api(retry.drive_sync(flow, self._client).json())

    async def aget_status(self, request_id: str) -> RequestResult:
        """
        Async twin of :meth:`get_status`, on the event loop's shared pooled client.

        For one-off calls: it keeps no state on the hook. Waiting triggers do not call it; they
        share the loop's status poller (:mod:`._poller`), which keeps the per-wait state.
        """
        validate_request_id(request_id)
        client = _clients.shared_async_client(await self.asettings())
        request = self._status_request(client, request_id)
        flow = retry.exchange(request, self.retry_policy, request_id=request_id)
        response = await retry.drive_async(flow, client)
        return RequestResult.from_api(response.json())

    @staticmethod
    def _status_request(client: httpx.Client | httpx.AsyncClient, request_id: str) -> httpx.Request:
        # Built from the connection's base URL, never from a polling_url in a response.
        path = STATUS_PATH.format(request_id=validate_request_id(request_id))
        return client.build_request("GET", path)

    # -- media ------------------------------------------------------------------------------------

    def check_media_url(self, url: str) -> httpx.URL:
        """
        Accept a media URL only over https or on the connection's own origin (the local emulator).

        :raises PixazoValidationError: for any other URL (plain http elsewhere, other schemes).
        """
        return media.check_media_url(url, self.settings)

    @contextlib.contextmanager
    def stream_media(self, url: str, *, chunk_timeout: float | None = None) -> Iterator[httpx.Response]:
        """
        Open a media URL for streaming (``response.iter_bytes()``), sending no API key.

        Only https URLs, or URLs on the connection's own origin (the local emulator), are fetched.
        Connect errors and 5xx before the body starts are retried.

        :param url: a URL from :attr:`RequestResult.media_urls`.
        :param chunk_timeout: seconds allowed between two chunks (default: the connection's timeout).
        """
        parsed = self.check_media_url(url)
        timeout = httpx.Timeout(chunk_timeout or self.settings.timeout, connect=10.0)
        client = self._media_client()
        flow = retry.exchange(client.build_request("GET", parsed, timeout=timeout), self.retry_policy)
        response = retry.drive_sync(flow, client, stream=True)
        try:
            yield response
        finally:
            response.close()

    def _media_client(self) -> httpx.Client:
        # A separate client with no auth at all, so a CDN redirect can never be handed the key; every
        # hop is checked like the first URL. One per hook, shared by the transfer's download threads
        # (hence the lock): a new client per image cost ~40 ms of TLS set-up each. Same proxy and TLS
        # settings as the API client: a company proxy or CA applies to the CDN as much as to the API.
        settings = self.settings
        with self._media_lock:
            if self._media is None:

                def check_hop(request: httpx.Request) -> None:
                    self.check_media_url(str(request.url))

                self._media = httpx.Client(
                    follow_redirects=True,
                    headers={"User-Agent": _clients.USER_AGENT},
                    event_hooks={"request": [check_hop]},
                    **_clients.network_kwargs(settings),
                )
            return self._media

    # -- Airflow integration ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """
        Check that the gateway answers and accepts the key, without submitting anything.

        Asks for the status of an id that cannot exist: a good key gets "not found", a bad one 401/403.
        """
        try:
            settings = self.settings
            # One attempt: a Test button should answer now, not after a backoff.
            self._fetch_status(_PROBE_REQUEST_ID, RetryPolicy(max_attempts=1))
        except PixazoNotFoundError:
            pass
        except PixazoAuthError as err:
            return (
                False,
                f"Pixazo rejected the API key (HTTP {err.http_status}): check the connection password.",
            )
        except PixazoError as err:
            return False, f"Could not use Pixazo at {self._safe_base_url()}: {err}"
        except ValueError:
            # The probe id may come back as a 200 with a body we cannot parse: the key was accepted.
            pass
        return True, f"Connected to Pixazo at {settings.base_url}; the API key was accepted."

    def _safe_base_url(self) -> str:
        try:
            return self.settings.base_url
        except PixazoError:
            return "<unusable connection>"
