"""Fixtures for real Airflow runs: a migrated metadata DB and the ``pixazo`` pool, once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` (dag.test() needs the tables) and the pool the examples submit through."""
    for command in (["db", "migrate"], ["pools", "set", "pixazo", "4", "Pixazo submits"]):
        subprocess.run([AIRFLOW, *command], env=dict(os.environ), check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def dagbag(airflow_db: None) -> Any:
    """The example DAGs, parsed once."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(EXAMPLE_DAGS))


@pytest.fixture
def run_dag(dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run an example DAG with dag.test(), images going to a fresh local folder; returns the DagRun."""
    destination = tmp_path / "images"
    destination.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_DESTINATION", destination.as_uri())

    def run(dag_id: str, **kwargs: Any) -> Any:
        # A fresh parse per run: dag.test(run_conf=...) leaves the conf on the DAG object it ran.
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(EXAMPLE_DAGS / f"{dag_id}.py")).get_dag(dag_id)
        assert dag is not None, f"{dag_id} not in {sorted(dagbag.dag_ids)}"
        dag_run = dag.test(**kwargs)
        dag_run.destination = destination
        return dag_run

    return run
