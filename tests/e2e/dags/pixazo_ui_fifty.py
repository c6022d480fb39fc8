"""
Fifty mapped prompts in one run, for the Pixazo run gallery's load-time check (tests/e2e).

Prompt 0 is hostile on purpose: the view must show it as text and never run it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

HOSTILE_PROMPT = '<script>window.__pixazo_pwned = 1</script><img src=x onerror="window.__pixazo_pwned = 2">'
PROMPTS = [HOSTILE_PROMPT] + [f"Test card {i:02d}: a numbered tile, flat colours" for i in range(1, 50)]

with DAG(
    dag_id="pixazo_ui_fifty",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pixazo", "test"],
) as dag:
    PixazoGenerateImageOperator.partial(
        task_id="generate",
        model="gpt-image-2",
        size="1024x1024",
        quality="low",
        output_format="png",
        n=1,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.2,
    ).expand(prompt=PROMPTS)
