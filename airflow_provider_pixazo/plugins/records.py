"""
What tasks record, at execute time, for the Pixazo view beyond what they already push.

Stdlib only and imported lazily from ``execute``: DAG parsing never loads it. Nothing here ever holds
the API key: only Pixazo's result (request id, status, media URLs, timestamps, error text) and the
storage URIs, sizes and checksums of the files the transfer wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BATCH_XCOM_KEY",
    "FAILURE_XCOM_KEY",
    "STORED_XCOM_KEY",
    "record_failure",
    "record_stored",
    "stored_summary",
    "xcom_value",
]

#: XCom key of a request that ended FAILED or ERROR (``RequestResult.to_dict()``), pushed before the task fails.
FAILURE_XCOM_KEY = "pixazo_failure"
#: XCom key of a batch task's summary (its manifest's URI, counts...), pushed whether the task succeeds or
#: fails; the batch operator's contract (:mod:`airflow_provider_pixazo.operators.batch`) names it too.
BATCH_XCOM_KEY = "pixazo_batch"
#: XCom key under which the transfer pushes the files it wrote and its provenance sidecar.
STORED_XCOM_KEY = "pixazo_stored"


def xcom_value(raw: Any) -> Any:
    """
    An XCom's value as read from the metadata DB's ``value`` column: decoded JSON, else as stored.

    The Task SDK stores JSON text; Airflow's REST API (``XComModel.set(serialize=False)``) may store
    the value already decoded. Text that is not JSON comes back as it is (the view shows it as text;
    the stored-copy route, wanting a mapping, finds nothing in it).

    :param raw: the column's value.
    """
    if isinstance(raw, str | bytes):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def record_failure(context: Mapping[str, Any], result: Any) -> None:
    """
    Push the result of a request that ended FAILED or ERROR, so the UI can show Pixazo's reason.

    :param context: the task's execution context.
    :param result: a ``RequestResult``, or a trigger event carrying one under ``"result"``.
    """
    if isinstance(result, Mapping):
        data = result.get("result")
    else:
        data = result.to_dict() if hasattr(result, "to_dict") else None
    if not isinstance(data, Mapping) or data.get("status") not in ("FAILED", "ERROR"):
        return
    _push(context, FAILURE_XCOM_KEY, dict(data))


def stored_summary(
    request_id: str,
    files: Sequence[Mapping[str, Any]],
    provenance_uri: str | None,
    sources: Sequence[str],
) -> dict[str, Any]:
    """
    The JSON-safe summary of one transfer: every written file, the sidecar and the source URLs.

    :param request_id: the Pixazo request the files came from.
    :param files: one mapping per image (``index``, ``uri``, ``size``, ``sha256``, ``media_type``,
        ``source_url`` without its query string).
    :param provenance_uri: where the provenance sidecar was written, or None.
    :param sources: the media URLs read, query strings stripped (signed CDN URLs carry credentials there).
    """
    keep = ("index", "uri", "size", "sha256", "media_type", "source_url")
    return {
        "request_id": request_id,
        "files": [{k: f.get(k) for k in keep} for f in files],
        "provenance_uri": provenance_uri,
        "sources": list(sources),
    }


def record_stored(context: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    """
    Push the transfer's summary (see :func:`stored_summary`) under :data:`STORED_XCOM_KEY`.

    :param context: the task's execution context.
    :param summary: what :func:`stored_summary` returned.
    """
    _push(context, STORED_XCOM_KEY, dict(summary))


def _push(context: Mapping[str, Any], key: str, value: Any) -> None:
    # A context without a task instance (an operator's execute called directly) has nowhere to record.
    ti = context.get("ti") or context.get("task_instance")
    if ti is not None:
        ti.xcom_push(key=key, value=value)
