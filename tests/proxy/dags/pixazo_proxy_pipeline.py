"""
The DAG of ``tests/proxy/test_pipeline.py`` (a test fixture, not an example).

Submit, wait in the trigger (deferrable), then copy the images: every kind of call the provider
makes (the paid POST, status polls from the triggerer's transport, status and media downloads from
the worker) happens once, so a proxy in front of the gateway sees each kind.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

with DAG(
    dag_id="pixazo_proxy_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "proxy"],
) as dag:
    generate = PixazoGenerateImageOperator(
        task_id="generate",
        prompt="a lighthouse behind a firewall, linocut",
        size="1024x1024",
        quality="low",
        n=2,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.2,
        timeout=60,
    )
    store = PixazoToObjectStorageOperator(
        task_id="store",
        request_id=generate.output,
        destination="{{ var.value.pixazo_proxy_destination }}",
    )
    generate >> store
