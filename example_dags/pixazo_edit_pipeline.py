"""
Generate an image, keep it, then edit part of it with a mask (GPT Image 2 in-painting).

generate_base (waits in the triggerer) -> store_base (local copy) -> make_mask -> edit (sends the
stored file and the mask as data URIs; white mask pixels are edited) -> store_edit.

Both images go under the Variable ``pixazo_destination`` (default ``file:///tmp/pixazo-images``).
Every task retries twice, 10 s apart, as the daily example explains: Airflow can fail a healthy task
now and then (apache/airflow#66374), and no retry pays twice: the submits reuse the request an
earlier try paid for (Airflow >= 3.3), the stores keep files already written.
The stores and the edit use no storage connection (no ``dest_conn_id``, no ``images_conn_id``), so
this example is for local disk only; see ``pixazo_daily_content`` for a named storage connection.
"""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_pixazo.operators.pixazo import PixazoEditImageOperator, PixazoGenerateImageOperator
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

SIZE = 1024
DESTINATION = "{{ var.value.get('pixazo_destination', 'file:///tmp/pixazo-images') }}"


def _png_mask(size: int) -> bytes:
    """A black square with a white upper-right quarter: only that quarter is edited."""
    rows = []
    for y in range(size):
        row = bytes(255 if (x >= size // 2 and y < size // 2) else 0 for x in range(size))
        rows.append(b"\x00" + row)
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


with DAG(
    dag_id="pixazo_edit_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "example"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
) as dag:
    generate_base = PixazoGenerateImageOperator(
        task_id="generate_base",
        prompt="An empty swimming pool behind a modernist house, midday",
        size=f"{SIZE}x{SIZE}",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=5,
    )
    store_base = PixazoToObjectStorageOperator(
        task_id="store_base", request_id=generate_base.output, destination=DESTINATION
    )

    @task
    def make_mask() -> str:
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="pixazo-mask-", suffix=".png", delete=False) as handle:
            handle.write(_png_mask(SIZE))
        return handle.name

    edit = PixazoEditImageOperator(
        task_id="edit",
        prompt="Add a pink flamingo float in the upper right of the pool",
        images="{{ ti.xcom_pull(task_ids='store_base')[0] }}",
        mask="{{ ti.xcom_pull(task_ids='make_mask') }}",
        size=f"{SIZE}x{SIZE}",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=5,
    )
    store_edit = PixazoToObjectStorageOperator(task_id="store_edit", request_id=edit.output, destination=DESTINATION)

    store_base >> make_mask() >> edit >> store_edit
