"""
A deployment misconfigured on purpose, for the distributed test: each connection exists on one role only.

``pixazo_triggerer_only`` is set on the triggerers but not on the workers, so the worker's submit
fails naming it; ``pixazo_workers_only`` is set on the workers but not on the triggerers, so the
submit goes through and the deferred wait ends at once with a message naming it. Neither retries:
the failures must be clear and final, not a hang.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

WORKERS_ONLY_PROMPT = "Distributed misconfig: a kite over dunes, gouache"

with DAG(
    dag_id="pixazo_distributed_misconfig",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "distributed-test"],
    default_args={"retries": 0},
) as dag:
    PixazoGenerateImageOperator(
        task_id="no_connection_on_worker",
        prompt="Distributed misconfig: never submitted",
        pixazo_conn_id="pixazo_triggerer_only",
        size="1024x1024",
        quality="low",
    )
    PixazoGenerateImageOperator(
        task_id="no_connection_on_triggerer",
        prompt=WORKERS_ONLY_PROMPT,
        pixazo_conn_id="pixazo_workers_only",
        size="1024x1024",
        quality="low",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
    )
