"""
The DAG of ``tests/reliability/test_timeouts.py::test_trigger_timeout_fails_naming_the_request`` (a test fixture).

Two waits that cannot finish in time (the emulator keeps the request processing for minutes): a
deferrable generate that waits itself, and a deferrable sensor downstream of a plain submit. Both
give up after 2 s, polling every 0.5 s (the sensor's trigger polls at least 1 s apart).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor

TIMEOUT_SECONDS = 2

with DAG(
    dag_id="pixazo_reliability_timeouts",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    tags=["pixazo", "reliability"],
) as dag:
    PixazoGenerateImageOperator(
        task_id="generate_and_wait",
        prompt="a slow painting of a glacier",
        n=1,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.5,
        timeout=TIMEOUT_SECONDS,
    )
    submit = PixazoGenerateImageOperator(task_id="submit", prompt="another slow glacier", n=1)
    wait = PixazoRequestSensor(
        task_id="wait",
        request_id=submit.output,
        deferrable=True,
        poke_interval=0.5,
        timeout=TIMEOUT_SECONDS,
    )
    submit >> wait
