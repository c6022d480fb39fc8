"""
An auth manager for the access-control tests: Airflow's simple auth manager, minus one DAG for one user.

``outsider`` is a viewer everywhere except ``pixazo_daily_content``, which Airflow's auth manager
refuses them; the Pixazo view must then refuse them too. Loaded by the secured api-server the tests
start (``AIRFLOW__CORE__AUTH_MANAGER=tests.e2e.pixazo_auth.OneDagHiddenAuthManager``).
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HIDDEN_DAG = "pixazo_daily_content"
OUTSIDER = "outsider"


class OneDagHiddenAuthManager(SimpleAuthManager):
    """The simple auth manager, except that ``outsider`` may not read :data:`HIDDEN_DAG`."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.get_name() == OUTSIDER and details is not None and details.id == HIDDEN_DAG:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
