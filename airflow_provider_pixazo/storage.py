"""
Connections for object storage: a named ``*_conn_id`` must exist before any byte moves.

The transfer's ``dest_conn_id`` and the edit operator's ``images_conn_id`` are handed to Airflow's
``ObjectStoragePath``, whose file systems (s3fs through the amazon provider, for one) treat a
connection they cannot find as "use the default credential chain". That would read or write with
whatever identity the worker happens to have, so a missing id is refused here first. Not for the
Pixazo connection itself (the hook reads that one and fails on its own).
"""

from __future__ import annotations

from airflow_provider_pixazo.exceptions import PixazoValidationError

__all__ = ["require_storage_connection"]


def require_storage_connection(parameter: str, conn_id: str | None) -> None:
    """
    Refuse a connection id that names no Airflow connection; None (the store's defaults) passes.

    :param parameter: the parameter the id came from, for the error (``dest_conn_id``, ``images_conn_id``).
    :param conn_id: the connection id, already rendered.
    :raises PixazoValidationError: naming ``parameter`` and the id, when no such connection exists.
    """
    if conn_id is None:
        return
    if not isinstance(conn_id, str) or not conn_id.strip():
        raise PixazoValidationError(parameter, conn_id, "the id of an Airflow connection, or None")
    # Imported here: the Task SDK's connection lookup is not needed to parse a DAG file.
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise PixazoValidationError(
            parameter,
            conn_id,
            "the id of an existing Airflow connection (none is defined under this id; nothing was read or "
            "written, and default credentials are never used in its place)",
        ) from None
