"""When a deferring sensor or submit operator lets its trigger end it, and when it resumes on a worker instead."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator, _PixazoSubmitOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.waiting import end_in_trigger_link_keys

REQUEST_ID = "gpt-image-2_019d0000-aaaa-bbbb-cccc-000000000001"
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def sensor(**kwargs: Any) -> PixazoRequestSensor:
    return PixazoRequestSensor(task_id="wait", request_id=REQUEST_ID, deferrable=True, **kwargs)


def ends_in_trigger(task: Any) -> bool:
    own = (
        PixazoRequestSensor.execute_complete
        if isinstance(task, PixazoRequestSensor)
        else _PixazoSubmitOperator.execute_complete
    )
    return end_in_trigger_link_keys(task, own) is not None


@pytest.fixture(autouse=True)
def no_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_pixazo import waiting

    monkeypatch.setattr(waiting, "_has_listeners", lambda: False)


def test_by_default_the_trigger_ends_the_task() -> None:
    assert ends_in_trigger(sensor())
    assert ends_in_trigger(PixazoGenerateImageOperator(task_id="gen", prompt="a fox", wait_for_completion=True))


@pytest.mark.parametrize("kwargs", [{"do_xcom_push": False}, {"multiple_outputs": True}])
def test_a_task_whose_return_value_the_worker_shapes_resumes_there(kwargs: dict[str, Any]) -> None:
    # The worker skips return_value (do_xcom_push=False) or splits it (multiple_outputs): the trigger does neither.
    assert not ends_in_trigger(sensor(**kwargs))
    assert not ends_in_trigger(
        PixazoGenerateImageOperator(task_id="gen", prompt="a fox", wait_for_completion=True, **kwargs)
    )


def test_an_unmapped_task_that_mapped_tasks_expand_over_resumes_on_a_worker() -> None:
    # Only the worker's push records how far to expand them (mapped_length); outside a running task,
    # whether this instance is mapped is unknown, so it is taken as unmapped.
    with DAG("expands", schedule=None, start_date=START):
        wait = sensor()

        @task
        def per_field(item: Any) -> None: ...

        per_field.expand(item=wait.output)
    assert not ends_in_trigger(wait)


def test_plain_downstream_tasks_do_not_stop_the_trigger_ending_it() -> None:
    with DAG("plain", schedule=None, start_date=START):
        wait = sensor()

        @task
        def show(result: Any) -> None: ...

        show(wait.output)
    assert ends_in_trigger(wait)


def test_a_mapped_instance_ends_in_the_trigger_even_with_mapped_dependants(monkeypatch: pytest.MonkeyPatch) -> None:
    # A mapped instance's own push carries no mapped_length either: nothing is lost by ending it in the trigger.
    import airflow.sdk

    class TI:
        map_index = 2

    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": TI()})
    with DAG("mapped", schedule=None, start_date=START):
        wait = sensor()

        @task
        def per_field(item: Any) -> None: ...

        per_field.expand(item=wait.output)
    assert ends_in_trigger(wait)
    TI.map_index = -1
    assert not ends_in_trigger(wait)
