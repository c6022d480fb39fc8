"""
XComs of a task that ended in the triggerer, as downstream tasks read them.

Runs under ``dag.test()`` with each trigger event applied the way a deployment's triggerer applies
it (Airflow's own ``handle_event_submit``), and with the trigger's ``task_instance`` set as the
triggerer sets it, so the trigger pushes the task's XComs itself, through the Task SDK and the
execution API. What is checked is what the downstream tasks got from ``ti.xcom_pull`` / their
templated ``request_id`` (the execution API and the XCom backend's ``deserialize_value``, the same
path as in a deployment), never the metadata DB's rows: Airflow's ``TaskSuccessEvent(xcoms=...)``
stored JSON text there (``'"gpt-image-2_..."'``), which a reader of the rows would not notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = [pytest.mark.dagrun, pytest.mark.integration]

LINK_KEYS = [f"_link_PixazoImageLink_{i}" for i in range(10)]


def states(dag_run: Any) -> dict[str, str]:
    return {
        f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
        for ti in dag_run.get_task_instances()
    }


def test_edit_pipeline_stores_reading_the_bare_request_ids_of_tasks_ended_in_the_triggerer(
    run_dag: Callable[..., Any], pixazo_emulator: PixazoEmulator, as_the_triggerer: list[tuple[str, str]]
) -> None:
    # store_base's request_id is generate_base.output: had it read '"gpt-image-2_..."', it would fail
    # with PixazoValidationError before downloading anything.
    dag_run = run_dag("pixazo_edit_pipeline")

    assert dict(as_the_triggerer) == {"generate_base": "TaskSuccessEvent", "edit": "TaskSuccessEvent"}
    assert states(dag_run) == dict.fromkeys(
        ["generate_base", "store_base", "make_mask", "edit", "store_edit"], "success"
    )
    assert str(dag_run.state) == "success"
    assert pixazo_emulator.submit_count() == 2
    assert len(list(dag_run.destination.rglob("*.png"))) == 2


# Submits waited on by sensors, and tasks downstream of them that write what they pulled to a file each.
DAG_FILE = """
import json, os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor

LINK_KEYS = [f"_link_PixazoImageLink_{i}" for i in range(10)]


def record(name, value):
    with open(os.path.join(os.environ["PIXAZO_PULLED_DIR"], name + ".json"), "w") as handle:
        json.dump(value, handle)


def sensor(name, **kwargs):
    submit = PixazoGenerateImageOperator(task_id=f"submit_{name}", prompt=f"A {name} lighthouse at dusk")
    return PixazoRequestSensor(task_id=name, request_id=submit.output, deferrable=True, poke_interval=1, **kwargs)


with DAG(
    dag_id="pixazo_trigger_xcoms_downstream", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")
):
    wait, quiet, expanded = sensor("wait"), sensor("quiet", do_xcom_push=False), sensor("expanded")

    @task
    def read(ti=None):
        keys = ["return_value", "pixazo_result", "pixazo_media_urls", *LINK_KEYS]
        pulled = {key: ti.xcom_pull(task_ids="wait", key=key) for key in keys}
        pulled["submit_wait"] = ti.xcom_pull(task_ids="submit_wait")
        pulled["quiet.return_value"] = ti.xcom_pull(task_ids="quiet")
        pulled["quiet.pixazo_result"] = ti.xcom_pull(task_ids="quiet", key="pixazo_result")
        record("read", pulled)

    @task
    def per_field(item, ti=None):
        record(f"per_field_{ti.map_index}", list(item))

    [wait, quiet] >> read()
    per_field.expand(item=expanded.output)
"""


def test_downstream_tasks_pull_values_not_json_text_and_the_worker_keeps_what_it_alone_does(
    pixazo_emulator: PixazoEmulator,
    as_the_triggerer: list[tuple[str, str]],
    airflow_db: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from airflow_provider_pixazo.hooks.pixazo import PixazoHook

    dags, out = tmp_path / "dags", tmp_path / "pulled"
    dags.mkdir()
    out.mkdir()
    (dags / "pixazo_trigger_xcoms_downstream.py").write_text(DAG_FILE)
    # dag.test() serializes the DAG from its bundle: the dags folder (read once, into settings), here this one file.
    from airflow import settings

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("PIXAZO_PULLED_DIR", str(out))
    dag = DagBag(str(dags)).get_dag("pixazo_trigger_xcoms_downstream")
    assert dag is not None

    dag_run = dag.test()

    assert str(dag_run.state) == "success", states(dag_run)
    assert dict(as_the_triggerer) == {
        "wait": "TaskSuccessEvent",
        # do_xcom_push=False: the worker's end honours it.
        "quiet": "TriggerEvent",
        # per_field expands over its output: the worker's push records the length to expand to.
        "expanded": "TriggerEvent",
    }
    read = json.loads((out / "read.json").read_text())
    pulled = {f"wait.{key}": value for key, value in read.items() if not key.startswith(("submit", "quiet"))}
    pulled.update({key: value for key, value in read.items() if key.startswith(("submit", "quiet"))})
    pulled["submit_wait.return_value"] = read["submit_wait"]
    per_field = [json.loads(path.read_text()) for path in sorted(out.glob("per_field_*.json"))]
    request_id = pulled["submit_wait.return_value"]
    hook = PixazoHook()
    try:
        result = hook.get_status(request_id).to_dict()
    finally:
        hook.close()
    # The values themselves, typed as the task pushed them: a dict, a list, strings without quotes.
    assert pulled["wait.return_value"] == result
    assert pulled["wait.pixazo_result"] == result
    assert isinstance(pulled["wait.pixazo_result"], dict)
    assert pulled["wait.pixazo_media_urls"] == result["media_urls"]
    assert isinstance(pulled["wait.pixazo_media_urls"], list)
    assert pulled["wait._link_PixazoImageLink_0"] == result["media_urls"][0]
    assert not pulled["wait._link_PixazoImageLink_0"].startswith('"')
    assert pulled["wait._link_PixazoImageLink_9"] is None  # no tenth image: its button stores nothing
    # do_xcom_push=False leaves no return value; the result is published all the same.
    assert pulled["quiet.return_value"] is None
    assert isinstance(pulled["quiet.pixazo_result"], dict)
    assert pulled["quiet.pixazo_result"]["status"] == "COMPLETED"
    # One mapped task per field of the sensor's dict, as Airflow expands a dict.
    assert sorted(key for key, _ in per_field) == sorted(result)
    assert pixazo_emulator.submit_count() == 3
