"""
Every Python example in the README runs, as written, against the emulator (and moto for S3).

The blocks are read from README.md itself, so an edited example is tested as edited; a new block
fails ``test_every_python_block_is_tested`` until a test here runs it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.testing.emulator import PixazoEmulator

pytestmark = [pytest.mark.integration]

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _python_blocks() -> dict[str, str]:
    """README's Python blocks by the heading they sit under."""
    blocks: dict[str, str] = {}
    heading = ""
    position = 0
    text = README.read_text()
    for match in _BLOCK.finditer(text):
        for line in text[position : match.start()].splitlines():
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
        position = match.end()
        assert heading not in blocks, f"two Python blocks under {heading!r}: give each its own test"
        blocks[heading] = match.group(1)
    return blocks


TESTED = {"Use", "The hook", "Test your DAGs offline"}


def test_every_python_block_is_tested() -> None:
    assert set(_python_blocks()) == TESTED


@pytest.mark.dagrun
def test_use_example_dag_runs_to_s3(
    airflow_db: None, pixazo_emulator: PixazoEmulator, s3_only_through: Any, tmp_path: Path
) -> None:
    """The "Use" DAG, written to a file, registered and run: its two images land in s3://my-bucket/images."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    s3 = s3_only_through("aws_default", "my-bucket")
    dag_file = tmp_path / "readme_use.py"
    dag_file.write_text(_python_blocks()["Use"])
    bag = DagBag(str(dag_file))
    assert bag.import_errors == {}
    dag = bag.get_dag("images")
    assert dag is not None
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)

    dag_run = dag.test()

    assert str(dag_run.state) == "success", [(ti.task_id, str(ti.state)) for ti in dag_run.get_task_instances()]
    assert pixazo_emulator.submit_count() == 1
    (request_id,) = pixazo_emulator.requests
    job = pixazo_emulator.requests[request_id]
    assert job.body["size"] == "1536x1024"
    assert job.body["n"] == 2
    assert job.body["prompt"].startswith("A lighthouse at dawn, watercolour 20")  # {{ ds }} rendered
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="my-bucket")["Contents"])
    assert keys == [f"images/{request_id}/{name}" for name in ("0.png", "1.png", "provenance.json")]


def test_hook_example_runs(pixazo_emulator: PixazoEmulator) -> None:
    namespace: dict[str, Any] = {}

    exec(compile(_python_blocks()["The hook"], "README.md (The hook)", "exec"), namespace)

    assert namespace["ok"] is True, namespace["message"]
    assert pixazo_emulator.submit_count() == 1
    assert namespace["result"].request_id == namespace["submission"].request_id
    assert isinstance(namespace["chunk"], bytes)  # the loop streamed the image
    assert namespace["chunk"]
    job = pixazo_emulator.requests[namespace["submission"].request_id]
    assert (job.body["image_size"], job.body["num_images"]) == ("1024x1536", 2)


@pytest.mark.dagrun
def test_offline_test_example_runs(run_dag: Any, dagbag: Any, pixazo_emulator: PixazoEmulator) -> None:
    """The pytest example, with ``my_dag`` bound to a DAG of four submits (the daily example)."""
    namespace: dict[str, Any] = {"my_dag": dagbag.get_dag("pixazo_daily_content")}
    exec(compile(_python_blocks()["Test your DAGs offline"], "README.md (offline tests)", "exec"), namespace)

    namespace["test_my_dag"](pixazo_emulator)

    assert pixazo_emulator.submit_count() == 4
