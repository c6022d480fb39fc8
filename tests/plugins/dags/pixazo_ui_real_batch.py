"""
The real PixazoBatchGenerateOperator against the emulator, for the batch gallery: a failure mix past ``max_failed``.

Ten prompts, two ending FAILED and one ERROR (the emulator's ``[fail]`` and ``[error]`` markers), with
``max_failed=0``: the task fails after storing the seven images and writing the manifest, so its tab
must find the manifest through the ``pixazo_batch`` summary it pushes on failure (there is no
``return_value``). The first prompt is hostile HTML. Destination and connection come from the
Variables ``pixazo_ui_batch_destination`` and ``pixazo_ui_batch_dest_conn_id`` (empty: none).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_pixazo.operators.batch import PixazoBatchGenerateOperator

HOSTILE_PROMPT = "<img src=x onerror=\"document.title='pwned'\"> a lighthouse & a <b>storm</b>"
PROMPTS: list[str | dict[str, str]] = [
    HOSTILE_PROMPT,
    *(f"A lighthouse at dusk, study {i}" for i in range(1, 7)),
    "a [fail] lighthouse",
    {"prompt": "an [error] lighthouse", "key": "broken"},
    {"prompt": "another [fail] one", "key": "refused"},
]

with DAG("pixazo_ui_real_batch", schedule=None, catchup=False, tags=["pixazo", "test"]) as dag:
    PixazoBatchGenerateOperator(
        task_id="batch",
        prompts=PROMPTS,
        size="1024x1024",
        quality="low",
        destination="{{ var.value.pixazo_ui_batch_destination }}",
        dest_conn_id="{{ var.value.get('pixazo_ui_batch_dest_conn_id', '') }}",
        max_failed=0,
        deferrable=False,
        poll_interval=0.2,
        retries=0,
    )
