"""How the view reads back what tasks record: one decoding of an XCom's stored value, for every route."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_pixazo.plugins import app, records, stored


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            '{"files": [{"uri": "file:///x/0.png"}]}', {"files": [{"uri": "file:///x/0.png"}]}, id="task-sdk-text"
        ),
        pytest.param(b'{"request_id": "r"}', {"request_id": "r"}, id="bytes"),
        pytest.param({"request_id": "r"}, {"request_id": "r"}, id="rest-api-already-decoded"),
        pytest.param('"abc"', "abc", id="a-json-string"),
        pytest.param("not json {", "not json {", id="not-json-kept-as-text"),
        pytest.param(None, None, id="null"),
    ],
)
def test_an_xcom_value_is_decoded_once_the_same_way(raw: Any, expected: Any) -> None:
    assert records.xcom_value(raw) == expected


def test_the_view_and_the_stored_route_share_that_decoding() -> None:
    # They once had a copy each, differing on text that is not JSON.
    assert app.xcom_value is records.xcom_value
    assert stored.xcom_value is records.xcom_value
    assert not hasattr(app, "_xcom_value")
    assert not hasattr(stored, "_decoded")
