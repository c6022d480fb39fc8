"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

# The connection form, declared as data: Airflow >= 3.2 builds the UI form from it without
# importing the hook (or wtforms).
CONNECTION_TYPE: dict[str, Any] = {
    "connection-type": "pixazo",
    "hook-class-name": "airflow_provider_pixazo.hooks.pixazo.PixazoHook",
    "hook-name": "Pixazo",
    "conn-fields": {
        "timeout": {
            "label": "Request timeout (seconds)",
            "schema": {"type": ["number", "null"], "default": 30, "minimum": 1},
            "description": "Seconds to wait for each answer from Pixazo before the call counts as failed.",
        },
        "verify": {
            "label": "TLS verification",
            "schema": {"type": ["string", "null"]},
            "description": (
                "Empty or true: check certificates against the system CAs (or SSL_CERT_FILE / SSL_CERT_DIR); "
                "false: do not check; or the path of a CA bundle file or certificate directory on the "
                "workers and triggerer, for a gateway or proxy signed by a private CA."
            ),
        },
        "proxy": {
            "label": "Proxy URL",
            # A proxy URL may carry a password: "password" makes Airflow's form a masked input and the
            # widget sensitive. Airflow's API already shows any extra named "proxy" as "***".
            "schema": {"type": ["string", "null"], "format": "password"},
            "description": (
                "http(s):// URL of a proxy for every call (submits, status polls, downloads), e.g. "
                "http://proxy.corp:3128 or http://user:password@proxy.corp:3128. Empty: HTTP_PROXY, "
                "HTTPS_PROXY, ALL_PROXY and NO_PROXY from the environment apply, as in httpx."
            ),
        },
        "max_polls_per_second": {
            "label": "Max status polls per second",
            "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 10000},
            "description": (
                "Empty (the default): no cap; a triggerer polls as often as its waiting tasks ask, starting "
                "at 20 calls/s and speeding up, learns the gateway's limit from its 429 answers and keeps "
                "90 % of it, leaving room for submits. A number (up to 10000): a hard cap on the status "
                "calls one triggerer sends a second on this connection."
            ),
        },
    },
    "ui-field-behaviour": {
        # Port stays: optional, but a connection without one trips the Test button of Airflow 3.3.2's UI.
        "hidden-fields": ["schema", "login"],
        "relabeling": {"password": "API key", "host": "Gateway URL"},
        "placeholders": {
            "password": "Your Pixazo subscription key (Ocp-Apim-Subscription-Key)",
            "host": "https://gateway.pixazo.ai",
            "port": "443 (optional; the gateway URL's own port wins)",
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider's hooks, operators, sensors, triggers, transfers, links and connection."""
    return {
        "package-name": "airflow-provider-pixazo",
        "name": "Pixazo",
        "description": "Generate and edit images with OpenAI GPT Image models through Pixazo's gateway.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Pixazo",
                "external-doc-url": "https://www.pixazo.ai/models/gpt-image",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Pixazo", "python-modules": ["airflow_provider_pixazo.hooks.pixazo"]},
        ],
        "operators": [
            {
                "integration-name": "Pixazo",
                "python-modules": [
                    "airflow_provider_pixazo.operators.pixazo",
                    "airflow_provider_pixazo.operators.batch",
                ],
            },
        ],
        "sensors": [
            {"integration-name": "Pixazo", "python-modules": ["airflow_provider_pixazo.sensors.pixazo"]},
        ],
        "triggers": [
            {
                "integration-name": "Pixazo",
                "python-modules": ["airflow_provider_pixazo.triggers.pixazo", "airflow_provider_pixazo.triggers.batch"],
            },
        ],
        "transfers": [
            {
                "source-integration-name": "Pixazo",
                "target-integration-name": "Common IO",
                "python-module": "airflow_provider_pixazo.transfers.pixazo_to_object_storage",
            }
        ],
        "extra-links": [
            "airflow_provider_pixazo.links.pixazo.PixazoImageLink",
        ],
        "connection-types": [CONNECTION_TYPE],
        # The Pixazo tab and run gallery in Airflow's UI (>= 3.1); see airflow_provider_pixazo/plugins.
        "plugins": [{"name": "pixazo", "plugin-class": "airflow_provider_pixazo.plugins.plugin.PixazoUIPlugin"}],
    }
