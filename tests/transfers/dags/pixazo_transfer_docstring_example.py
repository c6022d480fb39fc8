"""
The transfer's docstring example, run exactly as written (tests/transfers/test_templated_connections.py).

The code block is read from ``PixazoToObjectStorageOperator.__doc__`` and executed inside this DAG, so
the example cannot drift from what runs.
"""

from __future__ import annotations

import inspect
import textwrap

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator

DAG_ID = "pixazo_transfer_docstring_example"
PROMPT = "a red fox asleep in fresh snow"


def code_example(documented: object) -> str:
    """The first ``.. code-block:: python`` of ``documented``'s docstring, dedented."""
    doc = inspect.getdoc(documented) or ""
    _, found, rest = doc.partition(".. code-block:: python\n")
    assert found, f"{documented!r} has no python code block"
    lines = []
    for line in rest.splitlines():
        if line.strip() and not line.startswith(" "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"prompt": PROMPT},
) as dag:
    exec(
        code_example(PixazoToObjectStorageOperator),
        {
            "Asset": Asset,
            "PixazoGenerateImageOperator": PixazoGenerateImageOperator,
            "PixazoToObjectStorageOperator": PixazoToObjectStorageOperator,
        },
    )
