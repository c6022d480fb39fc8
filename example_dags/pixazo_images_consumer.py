"""
Downstream work scheduled on the images: runs whenever ``pixazo_daily_content`` stores new ones.

The asset event's ``extra`` carries the request id, the written URIs and the model. Each mapped
``store`` task emits one event; events of stores finishing at the same moment may be catalogued
only by the consumer's next run, not the one they triggered (Airflow issue apache/airflow#54659).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, task

DAILY_IMAGES = Asset(name="pixazo_daily_images", uri="file:///pixazo/daily-images")

with DAG(
    dag_id="pixazo_images_consumer",
    schedule=[DAILY_IMAGES],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "example"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[DAILY_IMAGES])
    def catalogue(*, triggering_asset_events=None) -> list[str]:
        uris: list[str] = []
        for event in (triggering_asset_events or {}).get(DAILY_IMAGES, []):
            uris.extend(event.extra.get("uris", []))
            print(f"request {event.extra.get('request_id')} ({event.extra.get('model')}): {event.extra.get('uris')}")
        return uris

    catalogue()
