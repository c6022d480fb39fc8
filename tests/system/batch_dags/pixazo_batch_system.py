"""
One batch task over many prompts, for the batch crash tests (``tests/system/test_batch_crash.py``) and
``benchmarks/batch_scale.py``: :class:`~airflow_provider_pixazo.operators.batch.PixazoBatchGenerateOperator`
waiting in the triggerer, storing under the deployment's ``pixazo_destination`` Variable.

Read when the file is parsed, from the environment the deployment's processes were started with (one
deployment serves one shape):

- ``PIXAZO_BATCH_PROMPTS``: how many prompts (default 4);
- ``PIXAZO_BATCH_RETRIES``: the task's retries (default 0, so no failure is retried away; the crash
  tests set 1), one second apart;
- ``PIXAZO_BATCH_POLL_INTERVAL``: the first poll interval of each request (default: the operator's);
- ``PIXAZO_BATCH_TIMEOUT``: seconds the batch may wait in all (default: the operator's).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.batch import PixazoBatchGenerateOperator

PROMPTS = [
    f"Batch prompt {i}: a lighthouse on a basalt cliff at dawn, watercolour"
    for i in range(int(os.environ.get("PIXAZO_BATCH_PROMPTS", "4")))
]
WAITING: dict[str, Any] = {
    name: float(os.environ[variable])
    for name, variable in (("poll_interval", "PIXAZO_BATCH_POLL_INTERVAL"), ("timeout", "PIXAZO_BATCH_TIMEOUT"))
    if variable in os.environ
}

with DAG(
    dag_id="pixazo_batch_system",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["pixazo", "batch"],
    doc_md=__doc__,
):
    PixazoBatchGenerateOperator(
        task_id="batch",
        prompts=PROMPTS,
        model="gpt-image-2",
        size="1024x1024",
        quality="low",
        output_format="png",
        destination="{{ var.value.pixazo_destination }}/{{ run_id }}",
        max_images=max(len(PROMPTS), 1),
        deferrable=True,
        retries=int(os.environ.get("PIXAZO_BATCH_RETRIES", "0")),
        retry_delay=timedelta(seconds=1),
        **WAITING,
    )
