"""
Daily content: a list of prompts becomes images in object storage every day.

Per prompt (a mapped task group, so each prompt moves on as soon as it is ready):
generate (submit, capped by the ``pixazo`` pool) -> wait (deferrable sensor, no worker slot held; when
the images are ready the triggerer ends it, no worker resumes it) -> store (stream the images into
``destination``, emitting an asset event).

The wait and the store retry twice, 10 s apart: they cost nothing (a status read, a download), and
Airflow can still fail a healthy task instance now and then (its "finished with state success, but
the task instance's state attribute is queued" race, apache/airflow#66374, #67287, #71580, #72716).

Run it with ``{"model": "gpt-image-1.5"}`` as the run's conf to use GPT Image 1.5 instead of 2.
Set the Airflow Variable ``pixazo_destination`` to any ``ObjectStoragePath`` URI (``s3://bucket/x``
with ``pixazo_destination_conn_id`` naming an AWS connection, ``gs://``...); it defaults to local disk.
Create the pool once: ``airflow pools set pixazo 4 "Pixazo submits"`` — it bounds how many submits
(and so how much spend and how many requests per second) run at once, however long the prompt list.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, task_group

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

PROMPTS = [
    "A lighthouse on a basalt cliff at dawn, watercolour",
    "A bowl of ramen seen from above, studio lighting",
    "An isometric city block made of paper, soft shadows",
    "A red fox asleep in fresh snow, telephoto photograph",
]

DAILY_IMAGES = Asset(name="pixazo_daily_images", uri="file:///pixazo/daily-images")

with DAG(
    dag_id="pixazo_daily_content",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["pixazo", "example"],
    doc_md=__doc__,
    params={"model": Param("gpt-image-2", enum=["gpt-image-2", "gpt-image-1.5"])},
    # Native rendering lets "... or None" below be a real None (no connection: local disk), where
    # plain Jinja would render the text "None" and name a connection that does not exist.
    render_template_as_native_obj=True,
) as dag:

    @task_group
    def one_image(prompt: str) -> None:
        generate = PixazoGenerateImageOperator(
            task_id="generate",
            prompt=prompt,
            model="{{ params.model }}",
            size="1024x1024",
            quality="low",
            output_format="png",
            pool="pixazo",
            # A retry reuses the request an earlier try paid for (Airflow >= 3.3): no second charge.
            retries=2,
        )
        wait = PixazoRequestSensor(
            task_id="wait",
            request_id=generate.output,
            deferrable=True,
            poke_interval=5,
            timeout=1800,
            # Free to retry (status reads only): rides out Airflow's stale-success race (module doc).
            retries=2,
            retry_delay=timedelta(seconds=10),
        )
        store = PixazoToObjectStorageOperator(
            task_id="store",
            request_id=generate.output,
            destination="{{ var.value.get('pixazo_destination', 'file:///tmp/pixazo-images') }}",
            dest_conn_id="{{ var.value.get('pixazo_destination_conn_id', '') or None }}",
            provenance={"prompt": prompt, "model": "{{ params.model }}", "size": "1024x1024", "quality": "low"},
            outlets=[DAILY_IMAGES],
            # Free to retry (downloads only; a file already written identically is kept as it is).
            retries=2,
            retry_delay=timedelta(seconds=10),
        )
        generate >> wait >> store

    one_image.expand(prompt=PROMPTS)
