"""
The provider on every Airflow it claims: each module imports, and submits fall back to one per try
where Airflow has no task state store (3.2).

``make test`` runs this file on the pinned newest Airflow (.venv) and on the floor (.venv-floor).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import BaseOperator
from packaging.version import Version

import airflow_provider_pixazo
from airflow_provider_pixazo import _compat

if TYPE_CHECKING:
    from airflow_provider_pixazo.testing.emulator import PixazoEmulator

# The operators are imported inside the tests, so that a module that fails to import fails the first
# test with its name and error rather than this file's collection.
MODULES = sorted(
    module.name for module in pkgutil.walk_packages(airflow_provider_pixazo.__path__, "airflow_provider_pixazo.")
)


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """What a DAG file or the triggerer imports must import on this Airflow, in a fresh process."""
    assert "airflow_provider_pixazo.operators.pixazo" in MODULES
    assert "airflow_provider_pixazo.triggers.pixazo" in MODULES
    script = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as err:\n"
        "        failed[name] = f'{type(err).__name__}: {err}'\n"
        "print(json.dumps(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(MODULES)], capture_output=True, text=True, timeout=120, check=True
    )
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, f"on Airflow {version('apache-airflow-core')}: {failed}"


def test_the_sdk_mixin_is_used_exactly_where_airflow_has_it() -> None:
    has_store = Version(version("apache-airflow-core")) >= Version("3.3.0")
    assert _compat.HAS_TASK_STATE_STORE is has_store
    assert (_compat.ResumableJobMixin is _compat.StatelessResumableJobMixin) is not has_store
    from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

    assert issubclass(PixazoGenerateImageOperator, _compat.ResumableJobMixin)


class _CountingJob(_compat.StatelessResumableJobMixin, BaseOperator):
    """The fallback on its own, whatever Airflow runs the suite: it records what the mixin calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, Any]] = []

    def submit_job(self, context: Any) -> str:
        job = f"job-{sum(1 for call in self.calls if call[0] == 'submit') + 1}"
        self.calls.append(("submit", job))
        return job

    def poll_until_complete(self, external_id: Any, context: Any) -> None:
        self.calls.append(("poll", external_id))

    def get_job_result(self, external_id: Any, context: Any) -> str:
        self.calls.append(("result", external_id))
        return f"result of {external_id}"


def test_stateless_fallback_submits_waits_and_returns_on_every_try() -> None:
    job = _CountingJob(task_id="job")
    assert job.execute_resumable({}) == "result of job-1"
    assert job.execute_resumable({}) == "result of job-2"
    assert job.calls == [
        ("submit", "job-1"),
        ("poll", "job-1"),
        ("result", "job-1"),
        ("submit", "job-2"),
        ("poll", "job-2"),
        ("result", "job-2"),
    ]
    assert job.durable is False


def test_stateless_fallback_accepts_durable_and_warns_only_when_it_is_asked_for(
    recwarn: pytest.WarningsRecorder,
) -> None:
    _CountingJob(task_id="default")
    _CountingJob(task_id="off", durable=False)
    assert [w for w in recwarn if "durable" in str(w.message)] == []
    with pytest.warns(UserWarning, match=r"durable=True has no effect on Airflow < 3\.3"):
        job = _CountingJob(task_id="on", durable=True)
    assert job.durable is False


def test_stateless_fallback_keeps_airflow_argument_checks() -> None:
    """The stand-in takes only ``durable``; any other unknown argument still reaches BaseOperator's check."""
    with pytest.raises(TypeError, match="no_such_argument"):
        _CountingJob(task_id="bad", no_such_argument=1)


class _TaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_without_a_task_state_store_each_try_of_the_operator_submits(pixazo_emulator: PixazoEmulator) -> None:
    """Airflow 3.2 (the fallback) and 3.3 without a store agree: two tries, two paid submits."""
    from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

    first = PixazoGenerateImageOperator(task_id="generate", prompt="a lighthouse", deferrable=False)
    second = PixazoGenerateImageOperator(task_id="generate", prompt="a lighthouse", deferrable=False)
    ids = [first.execute({"ti": _TaskInstance()}), second.execute({"ti": _TaskInstance()})]
    assert ids[0] != ids[1]
    assert pixazo_emulator.submit_count(prompt="a lighthouse") == 2
