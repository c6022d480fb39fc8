"""
OpenLineage datasets of the transfer and edit operators, named by the OpenLineage naming spec.

Object storage: namespace ``s3://bucket`` (``gs://bucket``, ``abfs://container``...) and the object key
as name; local files: namespace ``file`` and the absolute path; HTTP(S) media: namespace
``https://host[:port]`` and the path, without the query string (signed CDN URLs carry credentials
there). ``data:`` URIs are inline bytes, not datasets, and are left out.

OpenLineage classes are imported inside the functions: the provider works without the OpenLineage
provider installed (``pip install airflow-provider-pixazo[openlineage]`` adds it), and nothing here
is imported when a DAG file is parsed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["dataset_name", "edit_lineage", "transfer_lineage"]

_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "local": "file"}


def dataset_name(uri: str) -> tuple[str, str] | None:
    """
    ``(namespace, name)`` of a URI or local path per the OpenLineage naming spec; None for ``data:`` URIs.

    :param uri: ``s3://bucket/key``, ``gs://...``, ``file:///path``, ``/path``, ``https://host/path``...
    """
    if not isinstance(uri, str) or not uri.strip() or uri.startswith("data:"):
        return None
    if "://" not in uri:
        return "file", os.path.abspath(os.path.expanduser(uri))
    parts = urlsplit(uri)
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme == "file":
        return "file", parts.path or "/"
    if scheme in ("http", "https"):
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return f"{scheme}://{netloc}", parts.path or "/"
    # Object stores: the bucket (container) is the namespace, the key the name.
    bucket = parts.netloc.rpartition("@")[2]
    key = parts.path.lstrip("/")
    return f"{scheme}://{bucket}", key or "/"


def _datasets(uris: Iterable[Any]) -> list[Any]:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    seen: set[tuple[str, str]] = set()
    datasets = []
    for uri in uris:
        named = dataset_name(uri) if isinstance(uri, str) else None
        if named is None or named in seen:
            continue
        seen.add(named)
        datasets.append(Dataset(namespace=named[0], name=named[1]))
    return datasets


def transfer_lineage(summary: Mapping[str, Any] | None) -> Any:
    """
    The transfer's ``OperatorLineage``: media URLs in; every written image and the provenance sidecar out.

    :param summary: what the transfer recorded (:func:`~airflow_provider_pixazo.plugins.records.stored_summary`),
        or None when it wrote nothing (the lineage is then empty).
    """
    from airflow.providers.openlineage.extractors import OperatorLineage

    if not summary:
        return OperatorLineage()
    outputs = [f.get("uri") for f in summary.get("files") or [] if isinstance(f, Mapping)]
    if summary.get("provenance_uri"):
        outputs.append(summary["provenance_uri"])
    return OperatorLineage(inputs=_datasets(summary.get("sources") or []), outputs=_datasets(outputs))


def edit_lineage(images: str | Sequence[str] | None, mask: str | None = None) -> Any:
    """
    The edit operator's ``OperatorLineage``: its stored (object storage, local) and https input images and mask.

    :param images: the rendered ``images`` parameter.
    :param mask: the rendered ``mask`` parameter.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs: list[Any] = [images] if isinstance(images, str) else list(images or [])
    if mask:
        inputs.append(mask)
    return OperatorLineage(inputs=_datasets(inputs))
