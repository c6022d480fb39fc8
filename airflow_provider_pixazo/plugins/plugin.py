"""
The Airflow plugin that puts the Pixazo view into Airflow's UI (Airflow >= 3.1).

It adds a "Pixazo" tab to task instances and a "Pixazo gallery" tab to DAG runs (``external_views``:
pages Airflow shows in an iframe), both served, with their JSON, by a FastAPI app the api-server
mounts under ``/pixazo`` (``fastapi_apps``). The app is built on first use, so processes that load
plugins but serve no UI (scheduler, workers, DAG processor) never import FastAPI for it.

Registered twice, loaded once: through the provider metadata (``plugins`` in ``get_provider_info``),
which Airflow reads when ``[core] lazy_discover_providers`` is False, and through the
``airflow.plugins`` entry point (:data:`entry_point_plugin`), which stands in only when that option is
True (the default), so the plugin never appears twice.
"""

from __future__ import annotations

from typing import Any

try:
    from airflow.plugins_manager import AirflowPlugin
except ImportError:  # pragma: no cover - an Airflow without the plugin manager: nothing to register
    AirflowPlugin = object  # type: ignore[assignment,misc]

__all__ = ["URL_PREFIX", "PixazoUIPlugin", "entry_point_plugin"]

#: Where the api-server mounts the view's app.
URL_PREFIX = "/pixazo"


class _LazyFastAPIApps:
    """``fastapi_apps`` that builds the app the first time the api-server reads it."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, instance: Any, owner: Any) -> list[dict[str, Any]]:
        if self._apps is None:
            from airflow_provider_pixazo.plugins.app import create_app

            self._apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Pixazo"}]
        return self._apps


class PixazoUIPlugin(AirflowPlugin):
    """
    The Pixazo tab on task instances and the Pixazo gallery on DAG runs.

    Both read through the plugin's FastAPI endpoints, which check the signed-in user with Airflow's
    security dependencies; what a user may not read in Airflow they do not see here either.
    """

    name = "pixazo"
    fastapi_apps = _LazyFastAPIApps()
    external_views = [
        {
            "name": "Pixazo",
            "href": URL_PREFIX + "/ui/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "pixazo-task",
        },
        {
            "name": "Pixazo gallery",
            "href": URL_PREFIX + "/ui/dags/{DAG_ID}/runs/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "pixazo-gallery",
        },
    ]


def _providers_discovered_lazily() -> bool:
    try:
        from airflow import settings
    except ImportError:  # pragma: no cover
        return True
    return bool(getattr(settings, "LAZY_LOAD_PROVIDERS", True))


#: What the ``airflow.plugins`` entry point loads: the plugin when Airflow skips provider plugins
#: (lazy provider discovery), else None, which Airflow's loader passes over silently.
entry_point_plugin = PixazoUIPlugin if _providers_discovered_lazily() else None
