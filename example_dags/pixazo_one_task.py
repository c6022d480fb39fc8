"""
One task does it all: submit, then wait in the triggerer (``wait_for_completion=True, deferrable=True``).

The task returns the request id; the finished result (media URLs, media type, timestamps) is in XCom
under the key ``pixazo_result``, and the task's extra links open each image.
"""

from __future__ import annotations

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
    )
