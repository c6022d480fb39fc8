"""The subscription key as an ``httpx.Auth``: one ``auth_flow`` for the sync and async clients."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from airflow_provider_pixazo.hooks._settings import origin_of

__all__ = ["API_KEY_HEADER", "PixazoAuth"]

API_KEY_HEADER = "Ocp-Apim-Subscription-Key"


class PixazoAuth(httpx.Auth):
    """
    Adds the subscription key, and only to requests for the gateway's own origin.

    A URL taken from a response can never carry the key to another host. Redirects are not followed
    by the API clients at all (``follow_redirects=False``): httpx would copy this header onto a
    redirect hop, since auth runs once per ``send``, not per hop.
    """

    def __init__(self, api_key: str, origin: tuple[str, str, int | None]) -> None:
        self._api_key = api_key
        self._origin = origin

    def __repr__(self) -> str:
        return f"PixazoAuth(origin={self._origin!r}, api_key=<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the key header on same-origin requests; strip it from any other."""
        if origin_of(request.url) == self._origin:
            request.headers[API_KEY_HEADER] = self._api_key
        else:
            request.headers.pop(API_KEY_HEADER, None)
        yield request
