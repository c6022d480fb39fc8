"""
The parts of :class:`~airflow_provider_pixazo.operators.batch.PixazoBatchGenerateOperator`, one idea a module.

``_items`` (the prompts, read and validated), ``_ledger`` (each item's request id in the task state
store), ``_submit`` (paying once per prompt, with bounded concurrency), ``_wait`` (waiting on every
request at once, in the triggerer or the worker), ``_store`` (the images through the transfer's
machinery) and ``_manifest`` (``manifest.jsonl``). Nothing here is imported when a DAG is parsed.
"""
