"""pytest plugin with fixtures that run a local Pixazo emulator.

Registered as the ``pixazo`` plugin (``pytest11`` entry point), so installing the package makes
the fixtures available everywhere; pytest imports this module in every run, hence nothing heavy
(Pillow, Airflow, the emulator itself) is imported until a fixture is used.

* ``pixazo_emulator`` -- a running :class:`~airflow_provider_pixazo.testing.emulator.PixazoEmulator`
  with default options, with ``AIRFLOW_CONN_PIXAZO_DEFAULT`` pointing at it.
* ``pixazo_emulator_factory`` -- call it with emulator options to get more running emulators;
  pass ``conn_id=...`` to also point ``AIRFLOW_CONN_<CONN_ID>`` at one (``conn_extra={...}`` adds
  connection extras such as ``verify`` or ``proxy``).
* ``pixazo_tls_ca`` -- a throwaway certificate authority (needs ``trustme``): its CA bundle file
  and server contexts for the emulator's ``ssl_context`` option.
* ``pixazo_https_emulator`` -- an emulator served over https with a certificate of
  ``pixazo_tls_ca``; ``AIRFLOW_CONN_PIXAZO_DEFAULT`` points at it with ``verify`` set to the CA bundle.

All of them are stopped, and the variables restored, at the end of the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import ssl

    from airflow_provider_pixazo.testing.emulator import PixazoEmulator

DEFAULT_CONN_ID = "pixazo_default"


def connection_env_var(conn_id: str = DEFAULT_CONN_ID) -> str:
    """Name of the environment variable Airflow reads connection ``conn_id`` from.

    :param conn_id: Airflow connection id.
    """
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_json(emulator: PixazoEmulator, extra: dict[str, Any] | None = None) -> str:
    """Airflow connection (JSON form) that points a Pixazo hook at ``emulator``.

    :param emulator: A started emulator.
    :param extra: Connection extras, e.g. ``{"verify": "/path/ca.pem", "proxy": "http://127.0.0.1:3128"}``.
    """
    conn: dict[str, Any] = {"conn_type": "pixazo", "host": emulator.url, "password": emulator.api_key}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


class EmulatorFactory:
    """Starts emulators on demand and stops them all in :meth:`close`.

    :param monkeypatch: Used to set connection variables so they are undone after the test.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._emulators: list[PixazoEmulator] = []

    def __call__(
        self, *, conn_id: str | None = None, conn_extra: dict[str, Any] | None = None, **options: Any
    ) -> PixazoEmulator:
        """Start an emulator.

        :param conn_id: If given, set ``AIRFLOW_CONN_<CONN_ID>`` to point at the new emulator.
        :param conn_extra: Extras of that connection (``verify``, ``proxy``, ``timeout``).
        :param options: Keyword arguments of :class:`~airflow_provider_pixazo.testing.emulator.PixazoEmulator`.
        :return: The running emulator.
        """
        from airflow_provider_pixazo.testing.emulator import PixazoEmulator

        emulator = PixazoEmulator(**options)
        emulator.start()
        self._emulators.append(emulator)
        if conn_id is not None:
            self._monkeypatch.setenv(connection_env_var(conn_id), connection_json(emulator, conn_extra))
        return emulator

    @property
    def emulators(self) -> list[PixazoEmulator]:
        """Emulators started so far."""
        return list(self._emulators)

    def close(self) -> None:
        """Stop every emulator started."""
        for emulator in self._emulators:
            emulator.stop()


@pytest.fixture
def pixazo_emulator_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorFactory]:
    """Start emulators with custom options: ``pixazo_emulator_factory(balance=1, conn_id="pixazo_poor")``."""
    factory = EmulatorFactory(monkeypatch)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def pixazo_emulator(pixazo_emulator_factory: EmulatorFactory) -> PixazoEmulator:
    """A running emulator with default options; ``AIRFLOW_CONN_PIXAZO_DEFAULT`` points at it."""
    return pixazo_emulator_factory(conn_id=DEFAULT_CONN_ID)


class ThrowawayCA:
    """A certificate authority made for one test session (``trustme``), trusted by nothing else.

    :param directory: Where to write :attr:`bundle`, the CA certificate in PEM form.
    """

    def __init__(self, directory: Path) -> None:
        import trustme

        self._ca = trustme.CA()
        self.bundle = directory / "pixazo-test-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle))

    def server_context(self, *hosts: str) -> ssl.SSLContext:
        """A server-side context with a certificate for ``hosts`` (default 127.0.0.1 and localhost)."""
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(*(hosts or ("127.0.0.1", "localhost"))).configure_cert(context)
        return context


@pytest.fixture(scope="session")
def pixazo_tls_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    """A throwaway CA; skips the test when ``trustme`` is not installed."""
    pytest.importorskip("trustme")
    return ThrowawayCA(tmp_path_factory.mktemp("pixazo-ca"))


@pytest.fixture
def pixazo_https_emulator(pixazo_emulator_factory: EmulatorFactory, pixazo_tls_ca: ThrowawayCA) -> PixazoEmulator:
    """An emulator on https; ``AIRFLOW_CONN_PIXAZO_DEFAULT`` points at it, ``verify`` = the CA bundle."""
    return pixazo_emulator_factory(
        conn_id=DEFAULT_CONN_ID,
        conn_extra={"verify": str(pixazo_tls_ca.bundle)},
        ssl_context=pixazo_tls_ca.server_context(),
    )
