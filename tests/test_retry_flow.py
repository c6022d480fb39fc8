"""The retry flow (exchange) driven by the sync loop."""

from __future__ import annotations

import httpx
import respx

from airflow_provider_pixazo.retry import RetryPolicy, drive_sync, exchange

# -- the retry loop ---------------------------------------------------------------------------------


def test_integer_retry_after_cap_does_not_break_the_loop(no_sleep: list[float]) -> None:
    # RetryPolicy(max_retry_after=5) is a natural thing to write; the capped delay must still be slept.
    policy = RetryPolicy(max_retry_after=5)  # type: ignore[arg-type]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://gateway.test/x").mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "100"}), httpx.Response(200, json={})]
        )
        with httpx.Client() as client:
            response = drive_sync(exchange(client.build_request("GET", "https://gateway.test/x"), policy), client)
    assert response.status_code == 200
    assert route.call_count == 2
    assert no_sleep == [5.0]
