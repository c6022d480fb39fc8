"""Which media URLs may be downloaded."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_pixazo.exceptions import (
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks._settings import ConnectionSettings
from airflow_provider_pixazo.media import check_media_url
from tests.conftest import API_KEY

# -- media URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://pub-582b.r2.dev/v1/x/output.png", True),
        ("https://gateway.test/media/x.png", True),
        ("http://127.0.0.1:9999/media/x.png", True),
        ("http://127.0.0.1:9998/media/x.png", False),
        ("http://localhost:9999/media/x.png", False),
        ("http://other.example/x.png", False),
        ("ftp://127.0.0.1:9999/x.png", False),
        ("/media/x.png", False),
        ("https://", False),
        ("", False),
        (None, False),
    ],
)
def test_check_media_url(url: Any, ok: bool) -> None:
    settings = ConnectionSettings("http://127.0.0.1:9999", API_KEY)
    if ok:
        assert str(check_media_url(url, settings)) == url
    else:
        with pytest.raises(PixazoValidationError) as info:
            check_media_url(url, settings)
        assert info.value.parameter == "media_url"
        assert "http://127.0.0.1:9999" in str(info.value)
