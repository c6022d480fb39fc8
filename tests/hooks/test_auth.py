"""The key goes only to the gateway origin; the API clients never follow redirects."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_pixazo.hooks._auth import API_KEY_HEADER, PixazoAuth
from airflow_provider_pixazo.hooks._clients import client_kwargs
from airflow_provider_pixazo.hooks._settings import ConnectionSettings
from tests.conftest import API_KEY

# -- auth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "gets_key"),
    [
        ("https://gateway.test/v2/requests/status/x", True),
        ("https://gateway.test:443/x", True),
        ("https://evil.example/v2/requests/status/x", False),
        ("http://gateway.test/x", False),  # same host, other scheme
        ("https://gateway.test:8443/x", False),  # same host, other port
        ("https://gateway.test.evil.example/x", False),
        ("https://pub-1.r2.dev/v1/x/output.png", False),
    ],
)
def test_auth_attaches_the_key_only_to_the_gateway_origin(url: str, gets_key: bool) -> None:
    auth = PixazoAuth(API_KEY, ConnectionSettings("https://gateway.test", API_KEY).origin)
    # A key already on a foreign request (copied from another one, say) is stripped too.
    request = httpx.Request("GET", url, headers={API_KEY_HEADER: API_KEY})
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    assert (sent.headers.get(API_KEY_HEADER) == API_KEY) is gets_key
    if not gets_key:
        assert API_KEY_HEADER not in sent.headers
    assert API_KEY not in repr(auth)


def test_api_client_does_not_follow_a_redirect_to_another_host() -> None:
    # httpx copies custom headers onto a redirect hop (it strips only Authorization), so the real
    # guard against leaking the key through a redirect is follow_redirects=False on the API client.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "gateway.test":
            return httpx.Response(302, headers={"Location": "https://evil.example/steal"})
        return httpx.Response(200)

    settings = ConnectionSettings("https://gateway.test", API_KEY)
    with httpx.Client(**client_kwargs(settings), transport=httpx.MockTransport(handler)) as client:
        response = client.get("/v2/requests/status/x")
    assert response.status_code == 302
    assert [r.url.host for r in seen] == ["gateway.test"]
    assert seen[0].headers[API_KEY_HEADER] == API_KEY
