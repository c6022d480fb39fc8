"""
Each way the example DAGs' docstrings say to run them, run for real under ``dag.test()``.

Local disk and ``{"model": "gpt-image-1.5"}`` are in ``test_example_dags.py``; here the daily pipeline
writes to S3 (a moto server on 127.0.0.1) exactly as its docstring says: the Variables
``pixazo_destination=s3://bucket/prefix`` and ``pixazo_destination_conn_id=<an AWS connection>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = [pytest.mark.dagrun, pytest.mark.integration]

AWS_CONN_ID = "aws_pixazo_images"


def test_daily_content_to_s3_through_the_variables(
    run_dag: Any, pixazo_emulator: PixazoEmulator, s3_only_through: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = s3_only_through(AWS_CONN_ID, "pixazo-daily")
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_DESTINATION", "s3://pixazo-daily/daily")
    monkeypatch.setenv("AIRFLOW_VAR_PIXAZO_DESTINATION_CONN_ID", AWS_CONN_ID)

    dag_run = run_dag("pixazo_daily_content")

    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    assert pixazo_emulator.submit_count() == 4
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="pixazo-daily")["Contents"])
    expected = sorted(
        f"daily/{request_id}/{name}" for request_id in pixazo_emulator.requests for name in ("0.png", "provenance.json")
    )
    assert keys == expected
    for request_id in pixazo_emulator.requests:
        body = s3.get_object(Bucket="pixazo-daily", Key=f"daily/{request_id}/0.png")["Body"].read()
        assert body.startswith(b"\x89PNG\r\n\x1a\n")
        sidecar_key = f"daily/{request_id}/provenance.json"
        sidecar = json.loads(s3.get_object(Bucket="pixazo-daily", Key=sidecar_key)["Body"].read())
        assert sidecar["request_id"] == request_id
    # Nothing went to the local default destination.
    assert not any(Path(dag_run.destination).iterdir())
