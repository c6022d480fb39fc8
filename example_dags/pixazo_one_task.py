"""
One task does it all: submit, then wait in the triggerer (``wait_for_completion=True, deferrable=True``).

The task returns the request id; the finished result (media URLs, media type, timestamps) is in XCom
under the key ``pixazo_result``, and the task's extra links open each image. When the images are
ready, the triggerer ends the task with all of that: no worker is started to resume it.

It retries twice, 10 s apart, against Airflow's stale-success race (apache/airflow#66374, see
``pixazo_daily_content``); a retry reuses the request an earlier try paid for (Airflow >= 3.3).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

with DAG(
    dag_id="pixazo_one_task",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "example"],
    doc_md=__doc__,
) as dag:
    PixazoGenerateImageOperator(
        task_id="generate_and_wait",
        prompt="{{ params.prompt }}",
        model="gpt-image-1.5",
        size="1536x1024",
        quality="medium",
        background="transparent",
        output_format="png",
        n=2,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=5,
        timeout=1800,
        params={"prompt": "A paper boat on a transparent background, product shot"},
        retries=2,
        retry_delay=timedelta(seconds=10),
    )
