"""
The fault-injection DAG of ``tests/reliability/test_chaos.py`` (a test fixture, not an example).

The Airflow pipeline of ``_pipeline.py`` (generate -> deferrable wait -> store) over these prompts.
The last two prompts end FAILED and ERROR on purpose.
"""

from __future__ import annotations

from tests.reliability.dags._pipeline import pipeline_dag

GOOD_PROMPTS = [f"chaos prompt {i:02d}: a lighthouse on a cliff, variation {i}" for i in range(12)]
BAD_PROMPTS = ["chaos prompt: refused by the safety system [fail]", "chaos prompt: model crash [error]"]
PROMPTS = GOOD_PROMPTS + BAD_PROMPTS
IMAGES_PER_PROMPT = 4

dag = pipeline_dag("pixazo_reliability_chaos", PROMPTS, IMAGES_PER_PROMPT)
