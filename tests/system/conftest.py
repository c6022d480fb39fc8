"""The ``airflow_system`` fixture: see :mod:`tests.system._stack`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system._stack import AirflowSystem, start_system


@pytest.fixture
def airflow_system(tmp_path: Path, migrated_db: Path) -> Iterator[AirflowSystem]:
    """Emulator + migrated sqlite DB + api-server, scheduler, dag-processor, triggerer; all stopped after."""
    yield from start_system(tmp_path, migrated_db)
