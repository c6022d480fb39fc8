"""The provider metadata Airflow reads: valid against Airflow's schema, and every path in it imports."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_pixazo.get_provider_info import get_provider_info

INFO = get_provider_info()


def test_matches_airflows_provider_info_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)


def test_entry_point_and_package_name() -> None:
    (entry,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_pixazo")
    ]
    assert entry.load() is get_provider_info
    assert INFO["package-name"] == "airflow-provider-pixazo"


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_every_listed_module_imports(section: str) -> None:
    modules = [module for entry in INFO[section] for module in entry["python-modules"]]
    assert modules
    for module in modules:
        importlib.import_module(module)


def test_classes_named_in_the_metadata_exist() -> None:
    importlib.import_module(INFO["transfers"][0]["python-module"])
    paths = [*INFO["extra-links"], *(conn["hook-class-name"] for conn in INFO["connection-types"])]
    for path in paths:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_connection_form_declares_the_key_host_and_timeout() -> None:
    (conn,) = INFO["connection-types"]
    assert conn["connection-type"] == "pixazo"
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["relabeling"]["password"] == "API key"
    assert behaviour["placeholders"]["host"] == "https://gateway.pixazo.ai"
    assert {"schema", "login"} <= set(behaviour["hidden-fields"])
    assert "port" not in behaviour["hidden-fields"]  # the Test button of Airflow 3.3.2 needs one
    assert conn["conn-fields"]["timeout"]["schema"]["default"] == 30


def test_connection_form_declares_verify_and_proxy_as_the_hook_reads_them() -> None:
    from airflow.sdk import Connection

    from airflow_provider_pixazo.hooks._settings import settings_from_connection

    (conn,) = INFO["connection-types"]
    fields = conn["conn-fields"]
    for name in ("verify", "proxy"):
        assert fields[name]["schema"]["type"] == ["string", "null"]
    assert "CA bundle" in fields["verify"]["description"]
    assert "NO_PROXY" in fields["proxy"]["description"]
    # What the form stores when left empty, or filled in as documented, is what the hook accepts.
    for extra, verify, proxy in [
        ({"verify": None, "proxy": None}, True, None),
        ({"verify": "", "proxy": ""}, True, None),
        ({"verify": "false", "proxy": "http://proxy.corp:3128"}, False, "http://proxy.corp:3128"),
    ]:
        settings = settings_from_connection(
            Connection(conn_id="form", conn_type="pixazo", password="k", extra=json.dumps(extra))
        )
        assert (settings.verify, settings.proxy) == (verify, proxy)


def test_a_proxy_password_is_masked_where_airflow_shows_the_connection() -> None:
    """Airflow's own providers manager and API response model, fed our metadata and a real connection."""
    from airflow.api_fastapi.core_api.datamodels.connections import ConnectionResponse
    from airflow.models.connection import Connection
    from airflow.providers_manager import ProvidersManager

    widget = ProvidersManager().connection_form_widgets["extra__pixazo__proxy"]
    assert widget.is_sensitive  # the form renders a masked input
    conn = Connection(
        conn_id="pixazo_proxied",
        conn_type="pixazo",
        password="the-api-key",
        extra=json.dumps({"proxy": "http://alice:s3cr3t-proxy-pass@proxy.corp:3128", "timeout": 30}),
    )
    shown = ConnectionResponse.model_validate(conn).model_dump_json()
    assert "s3cr3t-proxy-pass" not in shown
    assert "the-api-key" not in shown
    assert json.loads(json.loads(shown)["extra"]) == {"proxy": "***", "timeout": 30}


def test_connection_form_declares_max_polls_per_second_as_the_hook_reads_it() -> None:
    """Left empty the extra means no cap (issue 17); a number is a hard cap, as the description says."""
    from airflow.sdk import Connection

    from airflow_provider_pixazo.hooks._settings import settings_from_connection

    (conn,) = INFO["connection-types"]
    field = conn["conn-fields"]["max_polls_per_second"]
    assert field["schema"]["type"] == ["number", "null"]
    assert field["schema"]["maximum"] == 10000
    assert "no cap" in field["description"]
    assert "hard cap" in field["description"]
    for extra, cap in [({"max_polls_per_second": None}, None), ({"max_polls_per_second": ""}, None), ({}, None)]:
        settings = settings_from_connection(
            Connection(conn_id="form", conn_type="pixazo", password="k", extra=json.dumps(extra))
        )
        assert settings.max_polls_per_second is cap
    capped = Connection(conn_id="form", conn_type="pixazo", password="k", extra='{"max_polls_per_second": 50}')
    assert settings_from_connection(capped).max_polls_per_second == 50.0
