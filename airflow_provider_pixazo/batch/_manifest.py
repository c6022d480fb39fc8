"""
The batch's manifest: ``manifest.jsonl`` under the destination, one JSON line per item, in item order.

Each line holds ``index``, ``key``, ``prompt``, ``request_id`` (null if never accepted), ``status`` (an
:class:`~airflow_provider_pixazo.batch._outcomes.Outcome` value: ``completed``, ``failed``, ``error``,
``timed_out`` or ``uncertain``), ``error`` (null when completed and stored) and ``files`` (each ``uri``,
``size``, ``sha256``, ``media_type``). It is the batch's provenance: published atomically like an image
(through the transfer's :class:`~airflow_provider_pixazo.transfers._staging.StagedFile`), and rewritten
by each try, so the last try's is the one there. Not here: deciding any item's outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = ["MANIFEST_NAME", "ManifestLine", "read_manifest", "write_manifest"]

#: The manifest's file name, directly under the destination.
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class ManifestLine:
    """One item of the manifest."""

    index: int
    key: str
    prompt: str
    request_id: str | None
    status: str
    error: str | None
    files: Sequence[dict[str, Any]] = field(default_factory=tuple)

    def to_json(self) -> str:
        """The line, without its newline."""
        return json.dumps(
            {
                "index": self.index,
                "key": self.key,
                "prompt": self.prompt,
                "request_id": self.request_id,
                "status": self.status,
                "error": self.error,
                "files": list(self.files),
            },
            ensure_ascii=False,
        )


def write_manifest(root: ObjectStoragePath, lines: Sequence[ManifestLine], log: Any) -> str:
    """Publish ``manifest.jsonl`` under ``root`` (replacing the previous try's); return its URI."""
    from airflow_provider_pixazo.transfers._destination import uri_of
    from airflow_provider_pixazo.transfers._staging import StagedFile

    target = root / MANIFEST_NAME
    staged = StagedFile(target, "application/jsonl")
    try:
        for line in lines:
            staged.write((line.to_json() + "\n").encode("utf-8"))
        staged.commit(overwrite=True, log=log)
    finally:
        staged.discard()
    uri = uri_of(target)
    log.info("Wrote the manifest %s (%d item(s), %d bytes)", uri, len(lines), staged.size)
    return uri


def read_manifest(path: ObjectStoragePath) -> list[dict[str, Any]]:
    """The manifest's lines, parsed (for tests and readers in Python)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
