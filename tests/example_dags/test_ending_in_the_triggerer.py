"""
The examples under ``dag.test()`` with the triggerer's handling of events: a wait that COMPLETED ends there.

``dag.test()`` runs a trigger inline and then resumes the task on its worker whatever the trigger
yielded, so on its own it cannot show what a deployment does with a ``TaskSuccessEvent``. Here each
deferral goes the way the triggerer takes it instead (the ``as_the_triggerer`` fixture, conftest.py):
the trigger is rebuilt from its serialized kwargs, its event crosses the triggerer's process boundary,
and Airflow's own ``handle_event_submit`` applies it to the task instance in the metadata DB — ending
the task with the event's XComs, or scheduling it to resume. Then the XComs are read back from the DB,
and the "Pixazo image N" buttons resolved as the API server resolves them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = [pytest.mark.dagrun, pytest.mark.integration]


def success_keys(images: int) -> set[str]:
    """Every XCom key a waiting task with ``images`` images leaves: one image button's URL per image."""
    links = {f"_link_PixazoImageLink_{i}" for i in range(images)}
    return {"return_value", "pixazo_result", "pixazo_media_urls", *links}


def xcoms(dag_run: Any, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """Every XCom of one task instance, read back from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, map_indexes=map_index)
        ).all()
        return {row.key: XComModel.deserialize_value(row) for row in rows}


def link_urls(dag_run: Any, task_id: str, map_index: int = -1) -> dict[str, str | None]:
    """The task's extra links as the API server answers them (the serialized DAG's links, on the DB's XComs)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_run.dag_id, session=session)
        task = dag.get_task(task_id)
        ti = dag_run.get_task_instance(task_id, map_index=map_index, session=session)
        return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}


def expected(pixazo_emulator: PixazoEmulator, request_id: str) -> dict[str, Any]:
    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

    hook = PixazoHook()
    try:
        return hook.get_status(request_id).to_dict()
    finally:
        hook.close()


def test_one_task_ends_in_the_triggerer_with_every_xcom_and_link(
    run_dag: Callable[..., Any], pixazo_emulator: PixazoEmulator, as_the_triggerer: list[tuple[str, str]]
) -> None:
    dag_run = run_dag("pixazo_one_task")

    assert str(dag_run.state) == "success"
    assert [event for _, event in as_the_triggerer] == ["TaskSuccessEvent"]
    assert pixazo_emulator.submit_count() == 1
    found = xcoms(dag_run, "generate_and_wait")
    assert set(found) == success_keys(2)
    request_id = found["return_value"]
    result = expected(pixazo_emulator, request_id)
    assert found["pixazo_result"] == result
    assert found["pixazo_media_urls"] == result["media_urls"]
    assert len(result["media_urls"]) == 2  # n=2
    links = link_urls(dag_run, "generate_and_wait")
    assert links["Pixazo image 1"] == result["media_urls"][0]
    assert links["Pixazo image 2"] == result["media_urls"][1]
    assert links["Pixazo image 3"] is None


def test_mapped_sensor_ends_in_the_triggerer_and_the_transfer_reads_its_request(
    run_dag: Callable[..., Any], pixazo_emulator: PixazoEmulator, as_the_triggerer: list[tuple[str, str]]
) -> None:
    dag_run = run_dag("pixazo_daily_content")

    assert str(dag_run.state) == "success"
    assert [event for _, event in as_the_triggerer] == ["TaskSuccessEvent"] * 4
    assert pixazo_emulator.submit_count() == 4
    for map_index in range(4):
        request_id = xcoms(dag_run, "one_image.generate", map_index)["return_value"]
        found = xcoms(dag_run, "one_image.wait", map_index)
        assert set(found) == success_keys(1)
        result = expected(pixazo_emulator, request_id)
        assert found["return_value"] == found["pixazo_result"] == result
        assert found["pixazo_media_urls"] == result["media_urls"]
        assert link_urls(dag_run, "one_image.wait", map_index)["Pixazo image 1"] == result["media_urls"][0]
    assert len([p for p in dag_run.destination.rglob("*.png")]) == 4


def test_failure_still_resumes_on_a_worker_records_pixazos_reason_and_fails(
    run_dag: Callable[..., Any], pixazo_emulator: PixazoEmulator, as_the_triggerer: list[tuple[str, str]]
) -> None:
    from airflow_provider_pixazo.testing._jobs import FAILED_MESSAGE

    dag_run = run_dag("pixazo_one_task", run_conf={"prompt": "A paper boat [fail]"})

    assert [event for _, event in as_the_triggerer] == ["TriggerEvent"]
    ti = dag_run.get_task_instance("generate_and_wait")
    assert str(ti.state) == "failed"
    found = xcoms(dag_run, "generate_and_wait")
    assert found["pixazo_failure"]["error"] == FAILED_MESSAGE
    assert "pixazo_result" not in found
