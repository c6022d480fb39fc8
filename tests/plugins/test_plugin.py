"""
How the plugin is registered and what it costs: Airflow's UI plugin API of 3.1+, loaded once,
lazily built, guarded by Airflow's security dependencies, and never imported by DAG parsing.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_pixazo.get_provider_info import get_provider_info
from airflow_provider_pixazo.plugins import plugin as plugin_module

ROOT = Path(__file__).resolve().parents[2]
#: Modules DAG parsing must never load because of the provider.
HEAVY = ("fastapi", "starlette", "openlineage", "airflow.providers.openlineage", "airflow_provider_pixazo.plugins")
PARSED = (
    "airflow_provider_pixazo.operators.pixazo",
    "airflow_provider_pixazo.sensors.pixazo",
    "airflow_provider_pixazo.triggers.pixazo",
    "airflow_provider_pixazo.transfers.pixazo_to_object_storage",
)


def _python(code: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **(env or {})},
        # Not the repo root for plugin loading: with it on sys.path its egg-info would list our
        # entry point a second time, which no installed deployment does.
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_provider_metadata_names_the_plugin_class() -> None:
    plugins = get_provider_info()["plugins"]
    assert plugins == [{"name": "pixazo", "plugin-class": "airflow_provider_pixazo.plugins.plugin.PixazoUIPlugin"}]
    module, _, name = plugins[0]["plugin-class"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is plugin_module.PixazoUIPlugin


def test_external_views_match_airflows_schema() -> None:
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    views = [ExternalViewResponse.model_validate(v) for v in plugin_module.PixazoUIPlugin.external_views]
    assert [(v.name, v.destination, v.url_route) for v in views] == [
        ("Pixazo", "task_instance", "pixazo-task"),
        ("Pixazo gallery", "dag_run", "pixazo-gallery"),
    ]
    assert all(v.href.startswith(plugin_module.URL_PREFIX + "/ui/dags/{DAG_ID}/runs/{RUN_ID}") for v in views)


@pytest.mark.parametrize(("lazy", "expected"), [("True", ["pixazo"]), ("False", ["pixazo"])])
def test_loaded_exactly_once_whatever_provider_discovery(lazy: str, expected: list[str], tmp_path: Path) -> None:
    """Entry point when provider plugins are skipped (the default), provider metadata otherwise; never both."""
    names = _python(
        """
        import json, logging
        from airflow import plugins_manager
        plugins, errors = plugins_manager._get_plugins()
        print(json.dumps({"names": [p.name for p in plugins if p.name == "pixazo"], "errors": errors}))
        """,
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": lazy,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        },
        cwd=tmp_path,
    )
    loaded = json.loads(names)
    assert loaded["names"] == expected
    assert [e for e in loaded["errors"] if "pixazo" in e.lower()] == []


def test_entry_point_stands_down_when_providers_load_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow import settings

    monkeypatch.setattr(settings, "LAZY_LOAD_PROVIDERS", False)
    assert plugin_module._providers_discovered_lazily() is False
    monkeypatch.setattr(settings, "LAZY_LOAD_PROVIDERS", True)
    assert plugin_module._providers_discovered_lazily() is True


def test_dag_parsing_imports_neither_plugin_nor_fastapi_nor_openlineage() -> None:
    """What benchmarks/parse_cost.py measures stays unchanged: the parsed modules pull in none of these."""
    added = json.loads(
        _python(
            f"""
            import importlib, json, sys
            import airflow.sdk
            before = set(sys.modules)
            for module in {list(PARSED)!r}:
                importlib.import_module(module)
            print(json.dumps(sorted(set(sys.modules) - before)))
            """
        )
    )
    assert added, "the modules imported nothing: the check would be vacuous"
    offending = [m for m in added if m.startswith(HEAVY)]
    assert offending == []


def test_plugin_module_builds_its_app_only_when_the_api_server_asks() -> None:
    """Scheduler, workers and DAG processor load plugins too; for them FastAPI is never imported on our account."""
    result = json.loads(
        _python(
            """
            import json, sys
            import airflow.sdk
            fastapi_before = "fastapi" in sys.modules
            from airflow_provider_pixazo.plugins.plugin import PixazoUIPlugin
            after_import = "airflow_provider_pixazo.plugins.app" in sys.modules
            apps = PixazoUIPlugin.fastapi_apps
            print(json.dumps({"before": fastapi_before, "after_import": after_import,
                              "apps": [(a["name"], a["url_prefix"], type(a["app"]).__name__) for a in apps],
                              "same": PixazoUIPlugin.fastapi_apps is apps}))
            """
        )
    )
    assert result["after_import"] is False
    assert result["apps"] == [["Pixazo", "/pixazo", "FastAPI"]]
    assert result["same"] is True  # built once


def test_provider_works_where_the_ui_plugin_cannot_load() -> None:
    """Without FastAPI (no UI plugin support) operators import and a DAG builds; nothing is logged."""
    out = _python(
        """
        import logging, sys
        sys.modules["fastapi"] = None  # as if it were not installed
        records = []
        logging.getLogger().addHandler(type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r)})())
        from airflow.sdk import DAG
        from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator
        from airflow_provider_pixazo.transfers.pixazo_to_object_storage import PixazoToObjectStorageOperator
        from airflow_provider_pixazo.get_provider_info import get_provider_info
        with DAG("d", schedule=None):
            PixazoGenerateImageOperator(task_id="g", prompt="p")
        get_provider_info()
        import airflow_provider_pixazo.plugins.plugin  # the plugin module itself still imports
        print(len([r for r in records if r.levelno >= logging.WARNING]))
        """
    )
    assert out == "0"


def test_every_data_route_uses_airflows_security_dependencies() -> None:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.routing import APIRoute

    from airflow_provider_pixazo.plugins.app import create_app

    def dependency_calls(dependant: object) -> set[object]:
        calls = set()
        for dep in getattr(dependant, "dependencies", []):
            calls.add(dep.call)
            calls |= dependency_calls(dep)
        return calls

    routes = [r for r in create_app().routes if isinstance(r, APIRoute)]
    guarded = [r for r in routes if not r.path.startswith("/static")]
    assert {r.path for r in guarded} == {
        "/ui/dags/{dag_id}/runs/{run_id}",
        "/ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
        "/api/dags/{dag_id}/runs/{run_id}",
        "/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
        "/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/stored/{position}",
        "/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/batch",
        "/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/batch/items/{index}/files/{position}",
    }
    for route in guarded:
        calls = dependency_calls(route.dependant)
        assert get_user in calls, route.path
        checks = [c for c in calls if getattr(c, "__qualname__", "").startswith("requires_access_dag")]
        assert len(checks) == 3, route.path  # RUN, TASK_INSTANCE and XCOM read access


def test_page_shell_escapes_what_it_echoes() -> None:
    from fastapi.testclient import TestClient

    from airflow_provider_pixazo.plugins import app as app_module

    # The shell only; the checks themselves run in the browser tests against a real api-server.
    app = app_module.create_app()
    for route in app.routes:
        if getattr(route, "path", "") == "/ui/dags/{dag_id}/runs/{run_id}":
            route.dependant.dependencies.clear()  # type: ignore[attr-defined]
            route.dependencies.clear()  # type: ignore[attr-defined]
    body = TestClient(app).get('/ui/dags/d"><img src=x onerror=alert(1)>/runs/r').text
    assert "<img src=x" not in body
    assert 'data-dag-id="d&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in body
    assert 'data-base=""' in body  # where the page builds the stored-copy URLs from (the app's mount point)
