"""
The pipeline shape the fault-injection DAGs share (a test fixture, not an example).

Per prompt, a mapped task group: generate (submit) -> wait (deferrable sensor) -> store (transfer to
``var.value.pixazo_reliability_destination``). Intervals are small so a run through an emulator that
injects faults stays within CI time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task_group

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator


def pipeline_dag(dag_id: str, prompts: list[str], images_per_prompt: int) -> DAG:
    """Build the generate -> wait -> store pipeline over ``prompts``."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        # Task-level retries exist for faults that outlast the hook's own retries; the test asserts
        # that none was needed to end in failure.
        default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
        tags=["pixazo", "reliability"],
    ) as dag:

        @task_group
        def one_image(prompt: str) -> None:
            generate = PixazoGenerateImageOperator(
                task_id="generate",
                prompt=prompt,
                model="gpt-image-2",
                size="1024x1024",
                quality="low",
                n=images_per_prompt,
                output_format="png",
                pool="pixazo",
            )
            wait = PixazoRequestSensor(
                task_id="wait",
                request_id=generate.output,
                deferrable=True,
                poke_interval=1,
                timeout=120,
            )
            store = PixazoToObjectStorageOperator(
                task_id="store",
                request_id=generate.output,
                destination="{{ var.value.pixazo_reliability_destination }}",
                provenance={"prompt": prompt},
            )
            generate >> wait >> store

        one_image.expand(prompt=prompts)
    return dag
