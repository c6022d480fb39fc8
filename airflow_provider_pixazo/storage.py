"""
Object storage as our tasks reach it: named connections must exist, local paths skip discovery.

A named ``*_conn_id`` must exist before any byte moves, and a local path gets its file system without
Airflow importing every provider's.

The transfer's ``dest_conn_id`` and the edit operator's ``images_conn_id`` are handed to Airflow's
``ObjectStoragePath``, whose file systems (s3fs through the amazon provider, for one) treat a
connection they cannot find as "use the default credential chain". That would read or write with
whatever identity the worker happens to have, so a missing id is refused here first. Not for the
Pixazo connection itself (the hook reads that one and fails on its own). :func:`attach_local_filesystem`
says why a local path needs help.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError

__all__ = ["attach_local_filesystem", "require_storage_connection"]

#: The schemes Airflow serves from fsspec's own local file system.
_LOCAL_SCHEMES = ("file", "local")


#: What a template renders when it means "no connection": Jinja turns None into "None" unless the DAG
#: renders native objects, and ``{{ var.value.get('x', '') }}`` gives "".
_NO_CONNECTION = ("", "None")


def require_storage_connection(parameter: str, conn_id: Any) -> str | None:
    """
    The connection id to use: None for none, else an id that names an existing Airflow connection.

    None, an empty string and ``"None"`` (what a template renders for a missing value) all mean "no
    connection": the store's default credential chain. Any other id must exist.

    :param parameter: the parameter the id came from, for the error (``dest_conn_id``, ``images_conn_id``).
    :param conn_id: the connection id, already rendered.
    :raises PixazoValidationError: naming ``parameter`` and the id, when no such connection exists.
    """
    if conn_id is None or (isinstance(conn_id, str) and conn_id.strip() in _NO_CONNECTION):
        return None
    if not isinstance(conn_id, str):
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
    return conn_id


def attach_local_filesystem() -> None:
    """
    Serve local paths from fsspec's ``LocalFileSystem`` without Airflow's file-system discovery.

    Airflow gives a path its file system through ``airflow.sdk.io.get_fs``, which first imports every
    installed provider's file-system module, whatever the scheme (``_register_filesystems``). With the
    amazon provider installed, a task that writes to local disk imported boto3 and botocore: 0.11 CPU-s
    per task with bytecode, 0.5 s without. For ``file`` and ``local`` ``get_fs`` then returns a plain
    ``LocalFileSystem()``; attaching that same file system to the scheme's store first gives the same
    result without the imports. A store already attached for the scheme (by Airflow, a DAG or an
    earlier call) is kept.
    """
    from airflow.sdk.io import attach
    from fsspec.implementations.local import LocalFileSystem

    for scheme in _LOCAL_SCHEMES:
        attach(scheme, fs=LocalFileSystem())
