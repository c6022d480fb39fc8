"""
Catalog: a table of product prompts becomes images in ONE task, paid once per prompt, within a spend cap.

``catalog_prompts`` -> ``generate_catalog`` (:class:`PixazoBatchGenerateOperator`: submits up to 8 at a
time, waits for the whole batch in one trigger, stores every image and ``manifest.jsonl``) -> ``report``
(reads the manifest back). A retry pays only for the items that ended FAILED or ERROR.

Configurations (each runs in the suite: ``tests/example_dags/test_batch_catalog.py``):

- **Prompts from an upstream task** (the default): ``catalog_prompts`` returns one row per product, its
  SKU as the item's ``key`` (so the file is ``<sku>.png``). ``{"count": N}`` as the run's conf picks how
  many products (1-1000); ``{"quality": "medium"}`` changes every image's quality.
- **Prompts from a JSONL file**: set the Variable ``pixazo_batch_prompts_uri`` to a ``.jsonl`` (or
  ``.csv``) file's URI, e.g. ``file:///data/prompts.jsonl`` or ``s3://bucket/prompts.jsonl`` with
  ``pixazo_batch_prompts_conn_id`` naming the connection to read it with. One JSON object per line:
  ``{"key": "sku-1", "prompt": "...", "size": "1536x1024"}``; the upstream task then returns nothing.
- **Destination**: local disk by default (``file:///tmp/pixazo-images``); set the Variable
  ``pixazo_destination`` to ``s3://bucket/prefix`` (with ``pixazo_destination_conn_id`` naming an AWS
  connection), or any ``ObjectStoragePath`` URI. Each run writes under ``catalog/<run id>/``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_pixazo.operators.batch import PixazoBatchGenerateOperator

PRODUCTS = ["ceramic mug", "linen tote bag", "walnut desk lamp", "wool beanie", "enamel pin", "glass carafe"]
COLOURS = ["sage green", "terracotta", "midnight blue", "mustard", "ivory", "charcoal"]

CATALOG_IMAGES = Asset(name="pixazo_catalog_images", uri="file:///pixazo/catalog-images")
DESTINATION = (
    "{{ var.value.get('pixazo_destination', 'file:///tmp/pixazo-images') }}"
    "/catalog/{{ run_id | replace(':', '-') | replace('+', '-') }}"
)

with DAG(
    dag_id="pixazo_batch_catalog",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "example"],
    doc_md=__doc__,
    params={
        "count": Param(12, type="integer", minimum=1, maximum=1000),
        "quality": Param("low", enum=["low", "medium", "high", "auto"]),
    },
    # Native rendering hands the upstream list to the batch as a list, and lets "... or None" be None.
    render_template_as_native_obj=True,
) as dag:

    @task
    def catalog_prompts(params: dict[str, Any] | None = None) -> list[dict[str, str]] | None:
        """One prompt per product, keyed by SKU (a query against the product table, in real life)."""
        from airflow.sdk import Variable

        if Variable.get("pixazo_batch_prompts_uri", default=None):
            return None  # the batch reads the file instead
        count = int((params or {}).get("count", 12))
        return [
            {
                "key": f"sku-{number:04d}",
                "prompt": f"A {COLOURS[number % 6]} {PRODUCTS[(number // 6) % 6]} on a white background, "
                f"product photo, soft shadow, variant {number}",
            }
            for number in range(count)
        ]

    generate_catalog = PixazoBatchGenerateOperator(
        task_id="generate_catalog",
        prompts=catalog_prompts(),
        prompts_uri="{{ var.value.get('pixazo_batch_prompts_uri', '') or None }}",
        prompts_conn_id="{{ var.value.get('pixazo_batch_prompts_conn_id', '') or None }}",
        size="1024x1024",
        quality="{{ params.quality }}",
        output_format="png",
        destination=DESTINATION,
        dest_conn_id="{{ var.value.get('pixazo_destination_conn_id', '') or None }}",
        max_images=1000,
        max_failed=2,
        max_in_flight=8,
        deferrable=True,
        poll_interval=5,
        timeout=3600,
        # A retry pays only for the items that ended FAILED or ERROR; it reuses every other request an
        # earlier try made (the task state store, Airflow >= 3.3), so retrying soon is cheap. It also rides
        # out Airflow's stale-success race (apache/airflow#66374).
        retries=2,
        retry_delay=timedelta(seconds=10),
        outlets=[CATALOG_IMAGES],
    )

    @task
    def report(result: dict[str, Any]) -> dict[str, int]:
        """Read the manifest back: what a downstream consumer of the catalog does."""
        import json

        from airflow.sdk import ObjectStoragePath, Variable

        conn_id = Variable.get("pixazo_destination_conn_id", default=None) or None
        manifest = ObjectStoragePath(result["manifest"], conn_id=conn_id)
        lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        files = sum(len(line["files"]) for line in lines)
        print(f"{len(lines)} item(s), {files} image file(s); counts {result['counts']}")
        return {"items": len(lines), "files": files}

    report(generate_catalog.output)
