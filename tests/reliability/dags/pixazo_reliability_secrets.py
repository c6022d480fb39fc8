"""
The DAG of ``tests/reliability/test_secrets.py::test_dag_run_leaks_nothing`` (a test fixture).

One deferrable generate that waits in the trigger, then a transfer: every place Airflow stores
something about a Pixazo run (XCom, trigger kwargs and event, rendered fields) gets written.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

with DAG(
    dag_id="pixazo_reliability_secrets",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "reliability"],
    params={"prompt": "a canary in a coal mine, woodcut"},
) as dag:
    generate = PixazoGenerateImageOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        size="1024x1024",
        quality="low",
        n=1,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.5,
        timeout=60,
    )
    store = PixazoToObjectStorageOperator(
        task_id="store",
        request_id=generate.output,
        destination="{{ var.value.pixazo_reliability_destination }}",
        provenance={"prompt": "{{ params.prompt }}"},
    )
    generate >> store
