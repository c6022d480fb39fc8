"""Test helpers for code that talks to Pixazo: a local gateway emulator and a pytest plugin.

* :mod:`airflow_provider_pixazo.testing.emulator` -- :class:`PixazoEmulator`, a real HTTP server
  that speaks the Pixazo GPT Image API (needs the ``emulator`` extra for Pillow).
* :mod:`airflow_provider_pixazo.testing.pytest_plugin` -- the ``pixazo_emulator`` and
  ``pixazo_emulator_factory`` fixtures (registered as the ``pixazo`` pytest plugin).

Names are loaded on first use, so importing this package stays cheap and
``python -m airflow_provider_pixazo.testing.emulator`` does not import the module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_pixazo.testing.emulator import FaultConfig, PixazoEmulator, RecordedCall

__all__ = ["FaultConfig", "PixazoEmulator", "RecordedCall"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_provider_pixazo.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
