"""
Apache Airflow provider for Pixazo's asynchronous GPT Image gateway.

Tasks live in ``operators``, ``sensors``, ``triggers``, ``transfers`` and ``links``; the HTTP layer in
``hooks``; the rules and types they share (``options``, ``models``, ``responses``, ``waiting``,
``events``, ``retry``, ``exceptions``, ``media``) in plain modules with no I/O of their own; the
emulator in ``testing``. docs/architecture.md draws the layers. Importing this package imports
nothing else, so parsing a DAG file stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"
