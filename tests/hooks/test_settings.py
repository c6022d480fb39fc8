"""Reading a pixazo connection into ConnectionSettings."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_pixazo.exceptions import (
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks._auth import API_KEY_HEADER
from airflow_provider_pixazo.hooks._clients import client_kwargs
from airflow_provider_pixazo.hooks._settings import DEFAULT_BASE_URL, ConnectionSettings, settings_from_connection
from tests.conftest import API_KEY


def _conn(**kwargs: Any) -> Connection:
    extra = kwargs.pop("extra", None)
    return Connection(
        conn_id="pixazo_x",
        conn_type="pixazo",
        password=kwargs.pop("password", API_KEY),
        extra=json.dumps(extra) if extra is not None else None,
        **kwargs,
    )


# -- connection settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "base_url"),
    [
        ({}, DEFAULT_BASE_URL),
        ({"host": ""}, DEFAULT_BASE_URL),
        ({"host": "  "}, DEFAULT_BASE_URL),
        ({"host": "gw.example.com"}, "https://gw.example.com"),
        ({"host": "gw.example.com", "port": 8443}, "https://gw.example.com:8443"),
        ({"host": "gw.example.com", "schema": "http"}, "http://gw.example.com"),
        ({"host": "127.0.0.1", "schema": "http", "port": 9999}, "http://127.0.0.1:9999"),
        ({"host": "gw.example.com", "schema": "public"}, "https://gw.example.com"),
        ({"host": "https://gw.example.com"}, "https://gw.example.com"),
        ({"host": "https://gw.example.com/"}, "https://gw.example.com"),
        ({"host": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
        ({"host": "https://gw.example.com/prefix/"}, "https://gw.example.com/prefix"),
        # A separate port fills in a URL that has none (the UI's Test button needs the port field) ...
        ({"host": "http://127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
        ({"host": "https://gw.example.com/prefix", "port": 443}, "https://gw.example.com/prefix"),
        # ... but never overrides the URL's own.
        ({"host": "http://127.0.0.1:8080", "port": 9999}, "http://127.0.0.1:8080"),
    ],
)
def test_host_parsing(fields: dict[str, Any], base_url: str) -> None:
    settings = settings_from_connection(_conn(**fields))
    assert settings.base_url == base_url
    assert settings.api_key == API_KEY
    assert settings.timeout == 30.0


@pytest.mark.parametrize("host", ["ftp://gw.example.com", "file:///etc/passwd", "https://"])
def test_bad_host_is_refused(host: str) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(host=host))
    assert info.value.parameter == "host"


@pytest.mark.parametrize(
    ("extra", "timeout"),
    [
        ({"timeout": 12.5}, 12.5),
        ({"timeout": "45"}, 45.0),
        ({"extra__pixazo__timeout": 7}, 7.0),
        ({"timeout": ""}, 30.0),
    ],
)
def test_timeout_extra(extra: dict[str, Any], timeout: float) -> None:
    settings = settings_from_connection(_conn(extra=extra))
    assert settings.timeout == timeout
    assert settings.httpx_timeout.read == timeout
    assert settings.httpx_timeout.connect == min(10.0, timeout)


@pytest.mark.parametrize("bad", ["soon", 0, -5, [1], "nan"])
def test_bad_timeout_is_refused(bad: Any) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(extra={"timeout": bad}))
    assert info.value.parameter == "timeout"
    assert "positive number of seconds" in str(info.value)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_password_is_refused(password: str | None) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(password=password))
    assert info.value.parameter == "password"
    assert "'pixazo_x'" in str(info.value)
    assert "API key in its password" in str(info.value)


def test_plain_http_to_a_remote_host_warns_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings_from_connection(_conn(host="http://gw.example.com"))
    assert "plain http" in caplog.text
    assert API_KEY not in caplog.text


def test_settings_hide_the_key() -> None:
    settings = settings_from_connection(_conn(host="gw.example.com"))
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings.cache_key)
    assert settings.origin == ("https", "gw.example.com", 443)
    other = ConnectionSettings("https://gw.example.com", "another-key")
    assert other.cache_key != settings.cache_key


def test_client_kwargs_always_time_out_and_never_redirect() -> None:
    kwargs = client_kwargs(ConnectionSettings("https://gateway.test", API_KEY, 12.0))
    assert kwargs["timeout"].read == 12.0
    assert kwargs["timeout"].connect == 10.0
    assert kwargs["follow_redirects"] is False
    assert kwargs["headers"]["Cache-Control"] == "no-cache"
    assert API_KEY_HEADER not in kwargs["headers"]
