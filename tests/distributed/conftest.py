"""The ``distributed`` fixture: see :mod:`tests.distributed._stack`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed._stack import Deployment, start_deployment


@pytest.fixture
def distributed(tmp_path: Path) -> Iterator[Deployment]:
    """PostgreSQL + Redis + emulator + api-server, scheduler, dag-processor, 2 Celery workers, 2 triggerers."""
    yield from start_deployment(tmp_path)
