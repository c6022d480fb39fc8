"""One TLS context per setting per process (hooks/_tls.py), made only when a connection needs TLS."""

from __future__ import annotations

import copy
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_pixazo.exceptions import PixazoNotFoundError
from airflow_provider_pixazo.hooks import _tls
from airflow_provider_pixazo.hooks.pixazo import PixazoHook
from airflow_provider_pixazo.testing.pytest_plugin import ThrowawayCA


@pytest.fixture
def builds(mocker: Any) -> Iterator[list[Any]]:
    """Every context made from now on (the cache starts empty), as ``(source, alpn)``."""
    _tls.clear_cache()
    made: list[Any] = []
    real = _tls._build

    def counting(source: Any, alpn: Any) -> ssl.SSLContext:
        made.append((source, alpn))
        return real(source, alpn)

    mocker.patch.object(_tls, "_build", side_effect=counting)
    yield made
    _tls.clear_cache()


@pytest.fixture
def no_ssl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_same_setting_gets_the_same_context_and_another_setting_its_own(
    builds: list[Any], no_ssl_env: None, pixazo_tls_ca: ThrowawayCA
) -> None:
    default = _tls.ssl_context(True)
    assert _tls.ssl_context(True) is default
    assert default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname
    assert default.cert_store_stats()["x509_ca"] > 0  # certifi's bundle, as httpx's default

    insecure = _tls.ssl_context(False)
    assert insecure is not default
    assert _tls.ssl_context(False) is insecure
    assert insecure.verify_mode == ssl.CERT_NONE
    assert not insecure.check_hostname

    bundle = _tls.ssl_context(str(pixazo_tls_ca.bundle))
    assert bundle not in (default, insecure)
    assert bundle.cert_store_stats()["x509_ca"] == 1
    assert len(builds) == 3


def test_a_changed_ca_file_or_environment_gives_a_new_context(
    builds: list[Any], no_ssl_env: None, pixazo_tls_ca: ThrowawayCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pixazo_tls_ca.bundle.read_bytes())
    first = _tls.ssl_context(str(bundle))
    os.utime(bundle, ns=(0, 10**9))  # replaced on disk: another modification time
    second = _tls.ssl_context(str(bundle))
    assert second is not first

    default = _tls.ssl_context(True)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # httpx's verify=True honours it
    from_env = _tls.ssl_context(True)
    assert from_env is not default
    assert from_env.cert_store_stats()["x509_ca"] == 1
    # verify=True with SSL_CERT_FILE=<bundle> is verify=<bundle>, in httpx as here: one context.
    assert from_env is second
    assert len(builds) == 3


def test_a_missing_ca_file_fails_when_the_client_is_made_as_in_httpx(builds: list[Any], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _tls.deferred_ssl_context(str(tmp_path / "gone.pem"))


def test_the_stand_in_makes_nothing_until_used_then_forwards_to_the_shared_context(
    builds: list[Any], no_ssl_env: None
) -> None:
    deferred = _tls.deferred_ssl_context(True)
    httpx.Client(verify=deferred).close()  # httpx passes it on untouched
    copy.copy(deferred)  # probing its slots must not build either
    assert builds == []
    deferred.set_alpn_protocols(["http/1.1"])  # what httpcore asks on every connection: absorbed
    assert builds == []
    assert deferred.verify_mode == ssl.CERT_REQUIRED
    assert deferred.wrap_bio.__self__ is _tls.ssl_context(True)
    assert len(builds) == 1
    # Other protocols get their own context, so the shared one is never changed under other threads.
    deferred.set_alpn_protocols(["h2", "http/1.1"])
    assert deferred.wrap_bio.__self__ is not _tls.ssl_context(True)
    assert builds[-1][1] == ("h2", "http/1.1")


def test_a_second_hook_over_https_makes_no_new_context_and_a_changed_verify_does(
    builds: list[Any], pixazo_https_emulator: Any, monkeypatch: pytest.MonkeyPatch, pixazo_tls_ca: ThrowawayCA
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    def probe(conn_id: str = "pixazo_default") -> None:
        hook = PixazoHook(conn_id)
        try:
            with pytest.raises(PixazoNotFoundError):  # over TLS, verified with the emulator's CA
                hook.get_status("gpt-image-2_019d0000-0000-0000-0000-00000000none")
            hook._media_client()
        finally:
            hook.close()

    probe()
    assert builds == [(("file", str(pixazo_tls_ca.bundle)), ("http/1.1",))]
    probe()  # a new hook, new clients: the same context
    assert len(builds) == 1

    other = pixazo_tls_ca.bundle.parent / "copy.pem"
    other.write_bytes(pixazo_tls_ca.bundle.read_bytes())
    conn = json.loads(os.environ["AIRFLOW_CONN_PIXAZO_DEFAULT"])
    conn["extra"] = {**conn.get("extra", {}), "verify": str(other)}
    monkeypatch.setenv("AIRFLOW_CONN_PIXAZO_OTHER", json.dumps(conn))
    probe("pixazo_other")
    assert [source for source, _ in builds] == [("file", str(pixazo_tls_ca.bundle)), ("file", str(other))]


def test_an_http_gateway_and_its_media_make_no_context(builds: list[Any], pixazo_emulator: Any) -> None:
    hook = PixazoHook()
    try:
        with pytest.raises(PixazoNotFoundError):
            hook.get_status("gpt-image-2_019d0000-0000-0000-0000-00000000none")
        with pytest.raises(PixazoNotFoundError), hook.stream_media(f"{pixazo_emulator.url}/media/none/0.png"):
            pass
    finally:
        hook.close()
    assert builds == []
