"""
Turn what a DAG run's Pixazo tasks recorded into what the Pixazo view shows. Pure: no I/O.

A run holds, per task instance, some of: the submit operators' rendered parameters and returned
request id, the sensor's or waiting operator's ``pixazo_result``, a failed request's
``pixazo_failure``, and the transfer's ``pixazo_stored`` (or just its returned URIs) and rendered
``provenance``; a batch task, the manifest its ``pixazo_batch`` or ``return_value`` names (paged by the batch route, not
here). Everything is joined on the Pixazo request id, so the sensor's tab shows the prompt
its generate task rendered and the generate task's tab shows the images the sensor received.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_pixazo.options import IMAGE_OPTIONS
from airflow_provider_pixazo.plugins.records import BATCH_XCOM_KEY

__all__ = ["OPERATOR_KINDS", "PIXAZO_XCOM_KEYS", "TaskRecord", "build_run_view", "build_task_view"]

#: The provider's task classes and what the view calls them.
OPERATOR_KINDS = {
    "PixazoGenerateImageOperator": "generate",
    "PixazoEditImageOperator": "edit",
    "PixazoRequestSensor": "sensor",
    "PixazoToObjectStorageOperator": "transfer",
    "PixazoBatchGenerateOperator": "batch",
}
#: XCom keys the view reads (``return_value`` only of Pixazo tasks).
PIXAZO_XCOM_KEYS = ("return_value", "pixazo_result", "pixazo_failure", "pixazo_stored", BATCH_XCOM_KEY)
#: The rendered parameters shown for a request: the prompt, the model and the image options.
_PARAMS = ("prompt", "model", *IMAGE_OPTIONS)


@dataclass
class TaskRecord:
    """One task instance of the run, as read from Airflow's metadata database."""

    task_id: str
    map_index: int
    operator: str | None
    state: str | None
    start_date: datetime.datetime | None = None
    end_date: datetime.datetime | None = None
    xcom: dict[str, Any] = field(default_factory=dict)
    rendered: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """``generate``, ``edit``, ``sensor``, ``transfer``, ``batch``, or None for other tasks."""
        if self.operator in OPERATOR_KINDS:
            return OPERATOR_KINDS[self.operator]
        if BATCH_XCOM_KEY in self.xcom:  # a subclass of the batch operator
            return "batch"
        if any(key in self.xcom for key in ("pixazo_result", "pixazo_failure", "pixazo_stored")):
            return "other"
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _batch_of(task: TaskRecord) -> dict[str, Any] | None:
    """
    A batch task's manifest URI and counts, from its summary (pushed on failure too) or its ``return_value``.

    Its items come from the batch route, a page at a time.
    """
    if task.kind != "batch":
        return None
    summary = next(
        (v for v in (task.xcom.get(BATCH_XCOM_KEY), task.xcom.get("return_value")) if isinstance(v, Mapping)), None
    )
    if summary is None:
        return {"manifest": None, "counts": {}}  # not that far yet, or it failed before writing a manifest
    counts = summary.get("counts")
    return {
        "manifest": _text(summary.get("manifest")),
        "counts": dict(counts) if isinstance(counts, Mapping) else {},
    }


def _request_id_of(task: TaskRecord) -> str | None:
    if task.kind == "batch":  # many requests, listed in its manifest
        return None
    for key in ("pixazo_result", "pixazo_failure", "pixazo_stored"):
        value = task.xcom.get(key)
        if isinstance(value, Mapping) and value.get("request_id"):
            return str(value["request_id"])
    returned = task.xcom.get("return_value")
    if task.kind in ("generate", "edit") and isinstance(returned, str) and returned:
        return returned
    if isinstance(returned, Mapping) and returned.get("request_id"):
        return str(returned["request_id"])
    rendered = task.rendered.get("request_id")
    return rendered if isinstance(rendered, str) and rendered and "{{" not in rendered else None


def _params_of(task: TaskRecord) -> dict[str, Any]:
    source: Mapping[str, Any] = task.rendered
    if task.kind == "transfer":
        provenance = task.rendered.get("provenance")
        source = provenance if isinstance(provenance, Mapping) else {}
    params = {name: source[name] for name in _PARAMS if source.get(name) not in (None, "")}
    if task.kind == "edit":
        images = task.rendered.get("images")
        if images:
            params["images"] = [_short_input(i) for i in (images if isinstance(images, list) else [images])]
    return params


def _short_input(value: Any) -> str:
    # Inline images are megabytes of base64: the view names them instead of shipping them.
    text = str(value)
    if text.startswith("data:"):
        return f"{text.split(',', 1)[0]},… ({len(text)} characters)"
    return text


def _result_view(data: Mapping[str, Any]) -> dict[str, Any]:
    created, completed = _parse_time(data.get("created_at")), _parse_time(data.get("completed_at"))
    duration = (completed - created).total_seconds() if created and completed else None
    urls = data.get("media_urls") or []
    return {
        "status": _text(data.get("status")),
        "error": _text(data.get("error")),
        "model_id": _text(data.get("model_id")),
        "media_type": _text(data.get("media_type")),
        "media_urls": [u for u in urls if isinstance(u, str)] if isinstance(urls, list) else [],
        "created_at": _text(data.get("created_at")),
        "updated_at": _text(data.get("updated_at")),
        "completed_at": _text(data.get("completed_at")),
        "duration_seconds": duration,
    }


def _stored_view(task: TaskRecord) -> dict[str, Any] | None:
    """
    What the task stored: its files (URI, size, SHA-256) and the sidecar.

    ``task`` names the task instance whose ``pixazo_stored`` record lists the files, and ``position``
    each file's place in it: the two the stored-file route takes. A transfer that recorded only its
    returned URIs has no such record, so ``task`` is None and its files are listed, not served.
    """
    stored = task.xcom.get("pixazo_stored")
    if isinstance(stored, Mapping):
        files = stored.get("files") or []
        return {
            "task": _task_key(task),
            "files": [
                {
                    "index": f.get("index"),
                    "position": position,
                    "uri": _text(f.get("uri")),
                    "size": f.get("size"),
                    "sha256": _text(f.get("sha256")),
                    "media_type": _text(f.get("media_type")),
                }
                for position, f in enumerate(files if isinstance(files, list) else [])
                if isinstance(f, Mapping)
            ],
            "provenance_uri": _text(stored.get("provenance_uri")),
        }
    returned = task.xcom.get("return_value")
    if task.kind == "transfer" and isinstance(returned, list):
        # A transfer from before the summary was recorded: URIs only.
        files = [
            {"index": i, "position": None, "uri": _text(uri), "size": None, "sha256": None, "media_type": None}
            for i, uri in enumerate(returned)
        ]
        return {"task": None, "files": files, "provenance_uri": None}
    return None


def _servable(stored: Mapping[str, Any], file: Mapping[str, Any]) -> bool:
    return stored.get("task") is not None and file.get("position") is not None


def _task_key(task: TaskRecord) -> dict[str, Any]:
    return {"task_id": task.task_id, "map_index": task.map_index}


def build_run_view(dag_id: str, run_id: str, tasks: Iterable[TaskRecord]) -> dict[str, Any]:
    """
    The whole run as the view shows it: its Pixazo requests, its task instances and an image grid.

    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param tasks: every task instance of the run, with its XComs and rendered fields.
    :return: ``{"dag_id", "run_id", "requests": {request_id: request}, "tasks": [...], "images": [...]}``.
    """
    pixazo = sorted((t for t in tasks if t.kind), key=lambda t: (t.map_index, t.task_id))
    requests: dict[str, dict[str, Any]] = {}
    task_views: list[dict[str, Any]] = []
    for task in pixazo:
        request_id = _request_id_of(task)
        view = {
            **_task_key(task),
            "operator": task.operator,
            "kind": task.kind,
            "state": task.state,
            "start_date": _iso(task.start_date),
            "end_date": _iso(task.end_date),
            "request_id": request_id,
            "batch": _batch_of(task),
        }
        task_views.append(view)
        if request_id is None:
            continue
        request = requests.setdefault(
            request_id,
            {"request_id": request_id, "params": {}, "result": None, "stored": None, "tasks": [], "submitter": None},
        )
        request["tasks"].append(_task_key(task))
        params = _params_of(task)
        if task.kind in ("generate", "edit"):
            request["submitter"] = _task_key(task)
            request["params"] = {**request["params"], **params}  # the submit task's values win
        else:
            request["params"] = {**params, **request["params"]}
        for key in ("pixazo_result", "pixazo_failure"):
            data = task.xcom.get(key)
            if isinstance(data, Mapping) and (request["result"] is None or key == "pixazo_result"):
                request["result"] = _result_view(data)
        if request["result"] is None and task.kind == "sensor" and isinstance(task.xcom.get("return_value"), Mapping):
            request["result"] = _result_view(task.xcom["return_value"])
        stored = _stored_view(task)
        if stored is not None:
            request["stored"] = stored

    images: list[dict[str, Any]] = []
    for request in requests.values():
        owner = request["submitter"] or request["tasks"][0]
        result = request["result"] or {}
        urls = result.get("media_urls") or []
        stored = request["stored"] or {}
        stored_by_index = {f.get("index"): f for f in stored.get("files") or []}
        servable = {i for i, f in stored_by_index.items() if isinstance(i, int) and _servable(stored, f)}
        # Every image Pixazo listed, and every servable stored copy even when no task of the run saw the result.
        for index in sorted({*range(len(urls)), *servable}):
            file = stored_by_index.get(index) or {}
            served = index in servable
            images.append(
                {
                    "url": urls[index] if index < len(urls) else None,
                    "index": index,
                    "request_id": request["request_id"],
                    "prompt": request["params"].get("prompt"),
                    "stored_uri": file.get("uri"),
                    # Where the stored copy is served from (the view prefers it to Pixazo's CDN URL).
                    "stored": {**stored["task"], "position": file["position"]} if served else None,
                    **owner,
                }
            )
    images.sort(key=lambda image: (image["map_index"], image["task_id"], image["index"]))
    return {"dag_id": dag_id, "run_id": run_id, "requests": requests, "tasks": task_views, "images": images}


def build_task_view(run_view: Mapping[str, Any], task_id: str, map_index: int | None) -> dict[str, Any]:
    """
    The part of a run's view one task instance shows (every instance of ``task_id`` when ``map_index`` is None).

    :param run_view: what :func:`build_run_view` returned.
    :param task_id: the task.
    :param map_index: the mapped instance, or None for all of them.
    """
    chosen = [
        t for t in run_view["tasks"] if t["task_id"] == task_id and (map_index is None or t["map_index"] == map_index)
    ]
    seen: set[str] = set()
    requests = []
    for task in chosen:
        request_id = task["request_id"]
        if request_id and request_id not in seen:
            seen.add(request_id)
            requests.append(run_view["requests"][request_id])
    return {
        "dag_id": run_view["dag_id"],
        "run_id": run_view["run_id"],
        "task_id": task_id,
        "map_index": map_index,
        "tasks": chosen,
        "requests": requests,
    }
