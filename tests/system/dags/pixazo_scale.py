"""
The daily example's shape (``example_dags/pixazo_daily_content.py``) over many prompts, for the scale
test and ``benchmarks/mapped_scale.py``: a mapped task group generate (in the ``pixazo`` pool) ->
deferrable sensor wait -> store, with ``retries=0`` on every task so no failure is masked.

The number of prompts is read when the file is parsed, from ``PIXAZO_SCALE_PROMPTS`` in the
environment the deployment's processes were started with (default 4); the sensor's first poll
interval from ``PIXAZO_SCALE_POKE_INTERVAL`` (default 5 s, the example's). ``PIXAZO_SCALE_SHAPE=one_task``
makes generate and wait one task (``pixazo_one_task``'s ``wait_for_completion=True, deferrable=True``,
polling from the same interval) -> store, for ``benchmarks/mapped_scale.py --shape one_task``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Asset, task_group

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

PROMPTS = [
    f"Scale prompt {i}: a lighthouse on a basalt cliff at dawn, watercolour"
    for i in range(int(os.environ.get("PIXAZO_SCALE_PROMPTS", "4")))
]
POKE_INTERVAL = float(os.environ.get("PIXAZO_SCALE_POKE_INTERVAL", "5"))
ONE_TASK = os.environ.get("PIXAZO_SCALE_SHAPE", "sensor") == "one_task"
SCALE_IMAGES = Asset(name="pixazo_scale_images", uri="file:///pixazo/scale-images")

with DAG(
    dag_id="pixazo_scale",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["pixazo", "scale"],
    doc_md=__doc__,
    default_args={"retries": 0},
) as dag:

    @task_group
    def one_image(prompt: str) -> None:
        generate = PixazoGenerateImageOperator(
            task_id="generate",
            prompt=prompt,
            model="gpt-image-2",
            size="1024x1024",
            quality="low",
            output_format="png",
            pool="pixazo",
            retries=0,
            **({"wait_for_completion": True, "deferrable": True, "poll_interval": POKE_INTERVAL} if ONE_TASK else {}),
        )
        store = PixazoToObjectStorageOperator(
            task_id="store",
            request_id=generate.output,
            destination="{{ var.value.pixazo_destination }}",
            provenance={"prompt": prompt, "model": "gpt-image-2", "size": "1024x1024", "quality": "low"},
            outlets=[SCALE_IMAGES],
            retries=0,
        )
        if ONE_TASK:
            generate >> store
            return
        wait = PixazoRequestSensor(
            task_id="wait",
            request_id=generate.output,
            deferrable=True,
            poke_interval=POKE_INTERVAL,
            timeout=1800,
            retries=0,
        )
        generate >> wait >> store

    one_image.expand(prompt=PROMPTS)
