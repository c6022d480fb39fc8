"""pytest plugin with fixtures that run a local Pixazo emulator.

Registered as the ``pixazo`` plugin (``pytest11`` entry point), so installing the package makes
the fixtures available everywhere; pytest imports this module in every run, hence nothing heavy
(Pillow, Airflow, the emulator itself) is imported until a fixture is used.

* ``pixazo_emulator`` -- a running :class:`~airflow_provider_pixazo.testing.emulator.PixazoEmulator`
  with default options, with ``AIRFLOW_CONN_PIXAZO_DEFAULT`` pointing at it.
* ``pixazo_emulator_factory`` -- call it with emulator options to get more running emulators;
  pass ``conn_id=...`` to also point ``AIRFLOW_CONN_<CONN_ID>`` at one.

All of them are stopped, and the variables restored, at the end of the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_pixazo.testing.emulator import PixazoEmulator

DEFAULT_CONN_ID = "pixazo_default"


def connection_env_var(conn_id: str = DEFAULT_CONN_ID) -> str:
    """Name of the environment variable Airflow reads connection ``conn_id`` from.

    :param conn_id: Airflow connection id.
    """
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_json(emulator: PixazoEmulator) -> str:
    """Airflow connection (JSON form) that points a Pixazo hook at ``emulator``.

    :param emulator: A started emulator.
    """
    return json.dumps({"conn_type": "pixazo", "host": emulator.url, "password": emulator.api_key})


class EmulatorFactory:
    """Starts emulators on demand and stops them all in :meth:`close`.

    :param monkeypatch: Used to set connection variables so they are undone after the test.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._emulators: list[PixazoEmulator] = []

    def __call__(self, *, conn_id: str | None = None, **options: Any) -> PixazoEmulator:
        """Start an emulator.

        :param conn_id: If given, set ``AIRFLOW_CONN_<CONN_ID>`` to point at the new emulator.
        :param options: Keyword arguments of :class:`~airflow_provider_pixazo.testing.emulator.PixazoEmulator`.
        :return: The running emulator.
        """
        from airflow_provider_pixazo.testing.emulator import PixazoEmulator

        emulator = PixazoEmulator(**options)
        emulator.start()
        self._emulators.append(emulator)
        if conn_id is not None:
            self._monkeypatch.setenv(connection_env_var(conn_id), connection_json(emulator))
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
