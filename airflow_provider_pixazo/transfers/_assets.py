"""
Asset events of the transfer: what a downstream DAG learns about the images just stored.

Every ``Asset`` (or asset reference) in the task's ``outlets`` gets ``extra`` with the request id,
the image URIs, the model and the sidecar's URI. Not for writing files, nor for choosing the outlets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["emit_asset_events"]


def emit_asset_events(outlets: Iterable[Any], context: Mapping[str, Any], extra: dict[str, Any], log: Any) -> None:
    """Add ``extra`` to the event of every asset outlet; nothing without outlets."""
    outlets = list(outlets or ())
    if not outlets:
        return
    from airflow.sdk import Asset
    from airflow.sdk.definitions.asset import AssetRef

    outlet_events = context.get("outlet_events")
    if outlet_events is None:
        log.warning("No outlet_events in the task context; asset event metadata not set")
        return
    for outlet in outlets:
        if isinstance(outlet, Asset | AssetRef):
            outlet_events[outlet].extra.update(extra)
