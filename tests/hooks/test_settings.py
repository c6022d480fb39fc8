"""Reading a pixazo connection into ConnectionSettings."""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_pixazo.exceptions import (
    PixazoValidationError,
)
from airflow_provider_pixazo.hooks._auth import API_KEY_HEADER
from airflow_provider_pixazo.hooks._clients import client_kwargs, network_kwargs
from airflow_provider_pixazo.hooks._settings import (
    DEFAULT_BASE_URL,
    ConnectionSettings,
    redact_proxy_url,
    settings_from_connection,
)
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


# -- TLS and proxy extras ---------------------------------------------------------------------------


@pytest.fixture
def ca_bundle(tmp_path: Any) -> str:
    trustme = pytest.importorskip("trustme")
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.parametrize(
    ("raw", "verify"),
    [(None, True), ("", True), (True, True), (False, False), ("false", False), (" TRUE ", True)],
)
def test_verify_extra_words(raw: Any, verify: bool) -> None:
    extra = {} if raw is None else {"verify": raw}
    assert settings_from_connection(_conn(extra=extra)).verify is verify


def test_verify_extra_takes_a_ca_bundle_or_a_directory(ca_bundle: str, tmp_path: Any) -> None:
    assert settings_from_connection(_conn(extra={"verify": ca_bundle})).verify == ca_bundle
    assert settings_from_connection(_conn(extra={"verify": str(tmp_path)})).verify == str(tmp_path)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/no/such/ca.pem", "no such file or directory"),
        (1, "true (the default"),
        (["/etc/ssl/ca.pem"], "true (the default"),
        ("NOT_A_PEM", "could not be loaded as CA certificates"),
    ],
)
def test_bad_verify_is_refused(raw: Any, reason: str, tmp_path: Any) -> None:
    if raw == "NOT_A_PEM":
        raw = str(tmp_path / "garbage.pem")
        (tmp_path / "garbage.pem").write_text("this is not a certificate\n")
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(extra={"verify": raw}))
    assert info.value.parameter == "verify"
    assert reason in str(info.value)
    assert "CA bundle" in str(info.value)


def test_verify_false_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    settings_from_connection(_conn(extra={"verify": False}))
    assert "verification off" in caplog.text


@pytest.mark.parametrize(
    "raw", ["http://proxy.corp:3128", "https://proxy.corp", "http://user:pw@127.0.0.1:8080", " http://p:1 "]
)
def test_proxy_extra(raw: str) -> None:
    settings = settings_from_connection(_conn(extra={"proxy": raw}))
    assert settings.proxy == raw.strip()


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_no_proxy_extra_leaves_it_to_the_environment(raw: Any) -> None:
    assert settings_from_connection(_conn(extra={"proxy": raw})).proxy is None


@pytest.mark.parametrize(
    "raw",
    [
        "proxy.corp:3128",
        "ftp://proxy.corp",
        "socks5://proxy.corp:1080",
        "http://",
        "http://proxy.corp:notaport",
        3128,
        ["http://p"],
    ],
)
def test_bad_proxy_is_refused(raw: Any) -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(extra={"proxy": raw}))
    assert info.value.parameter == "proxy"
    assert "http:// or https:// proxy URL" in str(info.value)


def test_a_bad_proxy_error_masks_the_password() -> None:
    with pytest.raises(PixazoValidationError) as info:
        settings_from_connection(_conn(extra={"proxy": "ftp://bob:hunter2@proxy.corp"}))
    assert "hunter2" not in str(info.value)
    assert "bob:***@proxy.corp" in str(info.value)


def test_proxy_credentials_stay_out_of_repr_and_cache_key() -> None:
    settings = settings_from_connection(_conn(host="gw.example.com", extra={"proxy": "http://bob:hunter2@p:1"}))
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.cache_key)
    assert redact_proxy_url(settings.proxy or "") == "http://bob:***@p:1"


def test_network_settings_are_part_of_the_cache_key(ca_bundle: str) -> None:
    base = ConnectionSettings("https://gw.example.com", API_KEY)
    keys = {
        base.cache_key,
        ConnectionSettings("https://gw.example.com", API_KEY, verify=False).cache_key,
        ConnectionSettings("https://gw.example.com", API_KEY, verify=ca_bundle).cache_key,
        ConnectionSettings("https://gw.example.com", API_KEY, proxy="http://a:1").cache_key,
        ConnectionSettings("https://gw.example.com", API_KEY, proxy="http://b:1").cache_key,
    }
    assert len(keys) == 5
    assert ConnectionSettings("https://gw.example.com", API_KEY).cache_key == base.cache_key


def test_sync_clients_get_proxy_and_a_tls_context(ca_bundle: str) -> None:
    kwargs = network_kwargs(ConnectionSettings("https://gw.example.com", API_KEY, verify=ca_bundle, proxy="http://p:1"))
    assert kwargs["proxy"] == "http://p:1"
    # A stand-in for the shared context (made on the first TLS connection), which it forwards to.
    assert kwargs["verify"].verify_mode == ssl.CERT_REQUIRED
    assert network_kwargs(ConnectionSettings("https://gw", API_KEY))["proxy"] is None
    insecure = network_kwargs(ConnectionSettings("https://gw", API_KEY, verify=False))
    assert insecure["verify"].verify_mode == ssl.CERT_NONE


def test_a_ca_bundle_is_loaded_once_per_version_of_the_file(ca_bundle: str, mocker: Any) -> None:
    import os

    from airflow_provider_pixazo.hooks import _settings

    _settings._ca_bundle_problem.cache_clear()
    load = mocker.spy(_settings.ssl, "create_default_context")
    for _ in range(50):  # fifty triggers reading one connection
        settings_from_connection(_conn(extra={"verify": ca_bundle}))
    assert load.call_count == 1
    stat = os.stat(ca_bundle)
    os.utime(ca_bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file was replaced
    settings_from_connection(_conn(extra={"verify": ca_bundle}))
    assert load.call_count == 2


@pytest.mark.parametrize("key", ["sk-A_b.c~!@#$%^&*()[]{}<>?/|+=", "two words", "  padded  "])
def test_any_printable_ascii_key_is_accepted(key: str) -> None:
    assert settings_from_connection(_conn(password=key)).api_key == key.strip()


@pytest.mark.parametrize("key", ["caf\u00e9", "tab\there", "del\x7f", "line\nbreak", "nul\x00"])
def test_a_key_outside_printable_ascii_is_refused_by_the_one_rule(key: str) -> None:
    with pytest.raises(PixazoValidationError, match="printable ASCII") as info:
        settings_from_connection(_conn(password=key))
    assert info.value.parameter == "password"
    assert info.value.value == "<hidden>"
