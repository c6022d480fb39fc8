"""
Fixtures of the reliability suite: real ``dag.test()`` runs of the DAGs in ``tests/reliability/dags``
against the local emulator, and scanners that look for the API key wherever Airflow keeps things.

The DAGs here are not in the dags folder, so each is written to the metadata DB (under the
``dags-folder`` bundle) before ``dag.test()``, which refuses to run a DAG it cannot find serialized.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = Path(__file__).resolve().parent / "dags"

#: A key nobody else uses, so any occurrence found anywhere came from these tests.
CANARY_KEY = "sk-live-CANARY-7f3a9"


@dataclass
class InlineTriggers:
    """What the triggers run inline by ``dag.test()`` were made of and what they yielded."""

    serialized: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reprs: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def inline_triggers(monkeypatch: pytest.MonkeyPatch) -> InlineTriggers:
    """Record every trigger ``dag.test()`` runs (it runs them inline, so no Trigger row is written)."""
    from airflow.sdk.definitions import dag as dag_module

    seen = InlineTriggers()
    real = dag_module._run_inline_trigger

    def recording(trigger: Any, ti: Any) -> Any:
        seen.serialized.append(trigger.serialize())
        seen.reprs.append(repr(trigger))
        event = real(trigger, ti)
        if event is not None:
            seen.events.append(dict(event.payload))
        return event

    monkeypatch.setattr(dag_module, "_run_inline_trigger", recording)
    return seen


@pytest.fixture
def run_reliability_dag(airflow_db: None, inline_triggers: InlineTriggers) -> Callable[..., Any]:
    """Parse ``tests/reliability/dags/<dag_id>.py``, register it in the DB, ``dag.test()`` it; return the DagRun."""

    def run(dag_id: str, **kwargs: Any) -> Any:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

        bag = DagBag(str(DAGS / f"{dag_id}.py"))
        assert bag.import_errors == {}, bag.import_errors
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"{dag_id} not in {DAGS}"
        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)
        return dag.test(**kwargs)

    return run


def states(dag_run: Any) -> dict[tuple[str, int], str]:
    """``(task_id, map_index) -> state`` of a finished run."""
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def count_in(texts: Iterable[Any], secret: str = CANARY_KEY) -> int:
    """Occurrences of ``secret`` in the given values (non-strings are JSON-dumped or repr'd first)."""
    total = 0
    for text in texts:
        if not isinstance(text, str):
            try:
                text = json.dumps(text, default=repr)
            except (TypeError, ValueError):
                text = repr(text)
        total += text.count(secret)
    return total


def log_files_text(root: Path) -> tuple[int, str]:
    """How many files are under ``root`` (Airflow's task-log folder), and all their text."""
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), "\n".join(p.read_text(errors="replace") for p in files)


@dataclass
class DbScan:
    """Where the key was looked for in the metadata DB for one run: rows seen and occurrences found."""

    rows: dict[str, int]
    hits: dict[str, int]


def scan_metadata_db(dag_id: str, run_id: str, secret: str = CANARY_KEY) -> DbScan:
    """
    Look for ``secret`` in what Airflow stored for the run: XCom values, trigger kwargs (decrypted),
    rendered template fields, the serialized DAG, task-instance next_kwargs (trigger events), the
    task state store, and finally every text column of every table of the SQLite DB.
    """
    import sqlalchemy as sa
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.scalars(sa.select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id))
        xcom_values = [row.value for row in xcoms]
        tis = list(
            session.scalars(sa.select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id))
        )
        next_kwargs = [ti.next_kwargs for ti in tis if ti.next_kwargs]
        trigger_ids = {ti.trigger_id for ti in tis if ti.trigger_id is not None}
        triggers = [(t.classpath, t.kwargs) for t in session.scalars(sa.select(Trigger))]
        rtif = [
            row.rendered_fields
            for row in session.scalars(
                sa.select(RenderedTaskInstanceFields).where(
                    RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
                )
            )
        ]
        serialized = [
            row.data
            for row in session.scalars(sa.select(SerializedDagModel).where(SerializedDagModel.dag_id == dag_id))
        ]
        state_store = [
            row.value
            for row in session.scalars(
                sa.select(TaskStateStoreModel).where(
                    TaskStateStoreModel.dag_id == dag_id, TaskStateStoreModel.run_id == run_id
                )
            )
        ]
        whole_db = _every_text_cell(session, secret)

    return DbScan(
        rows={
            "xcom": len(xcom_values),
            "trigger": len(triggers),
            "trigger_ids_on_tis": len(trigger_ids),
            "rendered_fields": len(rtif),
            "serialized_dag": len(serialized),
            "next_kwargs": len(next_kwargs),
            "task_state_store": len(state_store),
        },
        hits={
            "xcom": count_in(xcom_values, secret),
            "trigger": count_in(triggers, secret),
            "rendered_fields": count_in(rtif, secret),
            "serialized_dag": count_in(serialized, secret),
            "next_kwargs": count_in(next_kwargs, secret),
            "task_state_store": count_in(state_store, secret),
            "whole_db": whole_db,
        },
    )


def _every_text_cell(session: Any, secret: str) -> int:
    """Occurrences of ``secret`` in any column of any table (SQLite: ``instr`` on every column cast to text)."""
    import sqlalchemy as sa

    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return 0
    total = 0
    for table in sa.inspect(bind).get_table_names():
        for column in sa.inspect(bind).get_columns(table):
            name = column["name"]
            total += session.execute(
                sa.text(f'SELECT COUNT(*) FROM "{table}" WHERE instr(CAST("{name}" AS TEXT), :s) > 0'),
                {"s": secret},
            ).scalar_one()
    return total


def serialized_dag_text(dag: Any) -> str:
    """The DAG as the scheduler would store it (``DagSerialization``), as text."""
    from airflow.serialization.serialized_objects import DagSerialization

    return json.dumps(DagSerialization.to_dict(dag), default=repr)


@pytest.fixture
def dag_logs_folder() -> Path:
    """Airflow's task-log folder (``[logging] base_log_folder``)."""
    from airflow.configuration import conf

    return Path(conf.get("logging", "base_log_folder"))
