"""
A batch task's output, for the batch gallery's tests (tests/plugins/test_batch_view.py).

``PixazoBatchGenerateOperator`` here is a stand-in under the real operator's name (the view knows a
batch by its operator's name): it calls no gateway, and writes what issue #18's contract says the
real one leaves behind, as a worker would: one small PNG per completed item, under the destination
through the transfer's own destination rules, then ``manifest.jsonl`` (``index``, ``key``,
``prompt``, ``request_id``, ``status``, ``error``, ``files``), and returns ``{"manifest", "counts"}``.
The real operator's output is tested beside it once it exists.

Item 0's key and prompt and item 3's error are hostile HTML; every tenth item from 3 failed, every
25th from 7 errored, item 5 timed out and item 9 is uncertain; item 11 completed but its image could
not be stored. Variables: ``pixazo_ui_batch_destination``, ``pixazo_ui_batch_dest_conn_id`` (empty:
none), ``pixazo_ui_batch_items`` and ``pixazo_ui_batch_image_px`` (the images' width and height, 96 unless
set: the browser test uses Pixazo's 1024); the mapped task writes 3 and 4 items under ``mapped-<i>``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airflow.sdk import DAG, BaseOperator

HOSTILE_KEY = "<script>document.title='pwned-key'</script>"
HOSTILE_PROMPT = "<img src=x onerror=\"document.title='pwned-prompt'\"> a lighthouse & a <b>storm</b>"
HOSTILE_ERROR = "<iframe src=javascript:alert(1)></iframe> moderation refused"
STORE_ERROR = "storing image 0 failed: OSError"


def outcome_of(index: int) -> tuple[str, str | None]:
    """The status and error item ``index`` ends with."""
    if index == 3:
        return "failed", HOSTILE_ERROR
    if index == 5:
        return "timed_out", "still PROCESSING at the deadline"
    if index == 9:
        return "uncertain", "the submit may have reached Pixazo; not resubmitted"
    if index == 11:
        return "completed", STORE_ERROR
    if index % 10 == 3:
        return "failed", f"Pixazo: request {index} failed"
    if index % 25 == 7:
        return "error", f"Pixazo: request {index} errored"
    return "completed", None


class PixazoBatchGenerateOperator(BaseOperator):
    """Stand-in: writes a batch's images and manifest as the contract describes; no gateway."""

    template_fields = ("destination", "dest_conn_id", "items", "image_px")

    def __init__(
        self, *, destination: str, dest_conn_id: str = "", items: Any = 0, image_px: Any = 96, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.items = items
        self.image_px = image_px

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_pixazo.testing._images import render_image
        from airflow_provider_pixazo.transfers._destination import resolve_destination, uri_of

        root = resolve_destination(self.destination, self.dest_conn_id or None)
        counts: dict[str, int] = {}
        lines = []
        # Sixteen pictures, reused: rendering a thousand 1024-px PNGs would take minutes on a busy machine.
        pictures: dict[int, bytes] = {}
        for index in range(int(self.items)):
            status, error = outcome_of(index)
            files = []
            if status == "completed" and error is None:
                image = root / "images" / f"{index:05d}" / "0.png"
                px, picture = int(self.image_px), index % 16
                if picture not in pictures:
                    pictures[picture] = render_image(width=px, height=px, fmt="png", index=index, seed=f"b-{picture}")
                body = pictures[picture]
                image.parent.mkdir(parents=True, exist_ok=True)
                image.write_bytes(body)
                files.append({"uri": uri_of(image), "size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
            counts[status] = counts.get(status, 0) + 1
            lines.append(
                {
                    "index": index,
                    "key": HOSTILE_KEY if index == 0 else f"item-{index:05d}",
                    "prompt": HOSTILE_PROMPT if index == 0 else f"Prompt {index}: a watercolour of tile {index}",
                    "request_id": None if status == "uncertain" else f"req-{index:05d}",
                    "status": status,
                    "error": error,
                    "files": files,
                }
            )
        manifest = root / "manifest.jsonl"
        manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return {"manifest": uri_of(manifest), "counts": counts}


with DAG("pixazo_ui_batch", schedule=None, catchup=False, tags=["pixazo", "test"]) as dag:
    PixazoBatchGenerateOperator(
        task_id="batch",
        destination="{{ var.value.pixazo_ui_batch_destination }}",
        dest_conn_id="{{ var.value.get('pixazo_ui_batch_dest_conn_id', '') }}",
        items="{{ var.value.pixazo_ui_batch_items }}",
        image_px="{{ var.value.get('pixazo_ui_batch_image_px', 96) }}",
    )
    PixazoBatchGenerateOperator.partial(
        task_id="mapped_batch",
        destination="{{ var.value.pixazo_ui_batch_destination }}/mapped-{{ ti.map_index }}",
        dest_conn_id="{{ var.value.get('pixazo_ui_batch_dest_conn_id', '') }}",
    ).expand(items=[3, 4])
