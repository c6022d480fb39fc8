"""
A mapped batch of waits for the distributed test (tests/distributed/test_celery.py): 20 prompts, each
generate -> wait (deferrable, polled every second: both triggerers share the gateway's status rate
limit) -> store.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task_group

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

BATCH = 20
PROMPTS = [f"Distributed batch image {i}: a lantern on a pier, ink drawing" for i in range(BATCH)]

with DAG(
    dag_id="pixazo_distributed_batch",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "distributed-test"],
) as dag:

    @task_group
    def one_image(prompt: str) -> None:
        generate = PixazoGenerateImageOperator(
            task_id="generate", prompt=prompt, size="1024x1024", quality="low", output_format="png"
        )
        wait = PixazoRequestSensor(
            task_id="wait", request_id=generate.output, deferrable=True, poke_interval=1, timeout=900
        )
        store = PixazoToObjectStorageOperator(
            task_id="store",
            request_id=generate.output,
            destination="{{ var.value.pixazo_destination }}",
            provenance={"prompt": prompt},
        )
        generate >> wait >> store

    one_image.expand(prompt=PROMPTS)
