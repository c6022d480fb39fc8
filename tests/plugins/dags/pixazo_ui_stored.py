"""
Two images generated and stored, for the Pixazo view's stored-copy route (tests/plugins).

The destination and its connection come from Variables, so one DAG serves the local-disk and the
S3 (loopback moto) runs: ``pixazo_ui_destination`` and ``pixazo_ui_dest_conn_id`` (empty: none).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

PROMPT = "A lighthouse at dusk, two views"

with DAG("pixazo_ui_stored", schedule=None, catchup=False, tags=["pixazo", "test"]) as dag:
    generate = PixazoGenerateImageOperator(
        task_id="generate",
        prompt=PROMPT,
        size="1024x1024",
        quality="low",
        n=2,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.2,
    )
    store = PixazoToObjectStorageOperator(
        task_id="store",
        request_id="{{ ti.xcom_pull(task_ids='generate') }}",
        destination="{{ var.value.pixazo_ui_destination }}",
        dest_conn_id="{{ var.value.get('pixazo_ui_dest_conn_id', '') }}",
        provenance={"prompt": PROMPT},
    )
    generate >> store
