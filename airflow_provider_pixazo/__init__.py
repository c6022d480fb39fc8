"""Apache Airflow provider for Pixazo's asynchronous GPT Image gateway."""

from __future__ import annotations

__version__ = "0.1.0"
