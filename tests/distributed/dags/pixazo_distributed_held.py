"""
One wait held on a Celery worker (``wait_for_completion=True, deferrable=False``) for the distributed
test: the test SIGKILLs the worker running it; the retry (on the other worker) reconnects to the
request the first try stored in the task state store instead of paying again.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

HELD_PROMPT = "Distributed held wait: a tram in the rain, oil painting"

with DAG(
    dag_id="pixazo_distributed_held",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "distributed-test"],
) as dag:
    PixazoGenerateImageOperator(
        task_id="generate_and_poll",
        prompt=HELD_PROMPT,
        size="1024x1024",
        quality="low",
        output_format="png",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=1,
        timeout=900,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )
