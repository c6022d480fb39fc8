"""
The DAG of ``tests/reliability/test_timeouts.py::test_execution_timeout_stops_a_polling_wait`` (a test fixture).

A generate that waits in the worker (not deferrable) for a request that takes minutes, with its own
timeout far away and ``execution_timeout`` at 2 s: Airflow must stop it at 2 s.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

EXECUTION_TIMEOUT = timedelta(seconds=2)

with DAG(
    dag_id="pixazo_reliability_execution_timeout",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    tags=["pixazo", "reliability"],
) as dag:
    PixazoGenerateImageOperator(
        task_id="generate_and_poll",
        prompt="a very slow painting of a glacier",
        n=1,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.5,
        timeout=600,
        execution_timeout=EXECUTION_TIMEOUT,
    )
