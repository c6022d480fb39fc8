"""
The "held-out" DAG of ``tests/reliability/test_chaos.py`` (a test fixture, not an example).

The Airflow pipeline of ``_pipeline.py`` (generate -> deferrable wait -> store) over these prompts.
Every prompt must succeed.
"""

from __future__ import annotations

from tests.reliability.dags._pipeline import pipeline_dag

GOOD_PROMPTS = [f"held-out prompt {i}: a paper boat, variation {i}" for i in range(4)]
BAD_PROMPTS: list[str] = []
PROMPTS = GOOD_PROMPTS + BAD_PROMPTS
IMAGES_PER_PROMPT = 2

dag = pipeline_dag("pixazo_reliability_held_out", PROMPTS, IMAGES_PER_PROMPT)
