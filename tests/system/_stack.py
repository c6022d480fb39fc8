"""
A real Airflow deployment in miniature, all on 127.0.0.1: the pieces the system test drives.

``airflow_system`` gives a throwaway ``AIRFLOW_HOME`` (sqlite, LocalExecutor: Airflow 3.3 accepts that
pair), a migrated metadata DB (a copy of the session's ``migrated_db``), the Pixazo emulator (in this
process, so the test can read its submit counts) and ``airflow api-server``, ``scheduler``,
``dag-processor`` and ``triggerer`` as separate processes. Each process starts in its own session and is
stopped by its own process group (SIGTERM, then SIGKILL), so no task supervisor, uvicorn worker or
trigger runner outlives the test. The environment (connection, Variables, tuned intervals) is given to
the subprocesses only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._airflow_db import copy_db
from tests._net import free_port, tail

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
#: A key that appears nowhere else, so finding it in a log can only be a leak.
API_KEY = "sk-system-LEAKCHECK-5c1e"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
#: Long-running processes: one exiting while the test waits is a failure, reported with its log.
SERVICES = {"api-server", "scheduler", "dag-processor", "triggerer-2"}


@dataclass
class Processes:
    """Starts subprocesses in their own sessions; stops each one by its process group."""

    env: dict[str, str]
    logs: Path
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.logs,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = proc
        return proc

    def run(self, name: str, *args: str, timeout: float = 180) -> str:
        proc = self.start(name, *args)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            pytest.fail(f"`airflow {' '.join(args[1:])}` took more than {timeout}s:\n{tail(self.logs / f'{name}.log')}")
        output = (self.logs / f"{name}.log").read_text(errors="replace")
        if code != 0:
            pytest.fail(f"`airflow {' '.join(args[1:])}` exited {code}:\n{tail(self.logs / f'{name}.log')}")
        return output

    def kill(self, name: str) -> None:
        """``kill -9`` the whole group at once: no clean shutdown, as when a machine dies."""
        proc = self.started[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        _wait_group_gone(proc.pid)

    def stop(self, name: str, grace: float = 15.0) -> None:
        self.stop_together([name], grace)

    def stop_together(self, names: list[str], grace: float = 15.0) -> None:
        """SIGTERM every group at once, so their shutdowns overlap; SIGKILL what is left after ``grace``."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            running = []
            for name in names:
                try:
                    os.killpg(self.started[name].pid, sig)  # the group: task supervisors, workers, trigger runners
                except ProcessLookupError:
                    continue
                running.append(name)
            deadline = time.monotonic() + wait
            names = []
            for name in running:
                proc = self.started[name]
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    names.append(name)
                    continue
                if not _wait_group_gone(proc.pid, timeout=max(deadline - time.monotonic(), 0.1)):
                    names.append(name)
            if not names:
                return

    def stop_all(self) -> None:
        # The api-server last: until they exit, the scheduler's and triggerer's workers report to its
        # execution API.
        others = [name for name in reversed(list(self.started)) if name != "api-server"]
        self.stop_together(others)
        if "api-server" in self.started:
            self.stop("api-server")


def _wait_group_gone(pgid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@dataclass
class AirflowSystem:
    """The running deployment: its REST API, its processes and where things are written."""

    home: Path
    logs: Path
    images: Path
    api_url: str
    procs: Processes
    emulator: Any

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API (the simple auth manager makes everyone admin, so no token)."""
        response = httpx.request(method, f"{self.api_url}/api/v2{path}", timeout=30, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def airflow(self, name: str, *args: str) -> str:
        """Run one ``airflow`` CLI command against this deployment; returns its output."""
        return self.procs.run(name, AIRFLOW, *args)

    def start_triggerer(self, name: str = "triggerer") -> subprocess.Popen[bytes]:
        return self.procs.start(name, AIRFLOW, "triggerer", "--skip-serve-logs")

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
        """Poll ``check`` until it returns something truthy; fail with ``what`` and the logs' tails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.started.items():
                if proc.poll() is not None and name in SERVICES:
                    log = tail(self.logs / f"{name}.log")
                    pytest.fail(f"{name} exited {proc.returncode} while waiting for {what}:\n{log}")
            value = check()
            if value:
                return value
            time.sleep(interval)
        details = "\n".join(f"--- {p.name}\n{tail(p, 15)}" for p in sorted(self.logs.glob("*.log")))
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{details}")


def _environment(
    home: Path, api_port: int, emulator_url: str, images: Path, dags_folder: Path = EXAMPLE_DAGS
) -> dict[str, str]:
    # None of the suite's AIRFLOW_* settings (its home, its connections) leak into the deployment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    api_url = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Paused at creation: the daily DAG's own schedule must not start a run of its own
            # before the test has triggered the one it watches.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Every process signs and checks task tokens with the same secret.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__WORKERS": "1",
            # Fast loops, so the test waits on the pipeline rather than on Airflow's default pacing.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            # A triggerer silent for 3 s is dead: its triggers go to the next one that asks.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "3",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_PIXAZO_DEFAULT": json.dumps(
                {"conn_type": "pixazo", "host": emulator_url, "password": API_KEY}
            ),
            "AIRFLOW_VAR_PIXAZO_DESTINATION": images.as_uri(),
            "SCARF_ANALYTICS": "false",
            "DO_NOT_TRACK": "1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def start_system(
    tmp_path: Path,
    migrated_db: Path | None,
    *,
    dags_folder: Path = EXAMPLE_DAGS,
    extra_env: dict[str, str] | None = None,
    health_timeout: float = 120,
    sql_alchemy_conn: str | None = None,
) -> Iterator[AirflowSystem]:
    """
    Emulator + a copy of the migrated sqlite DB ``migrated_db`` + api-server, scheduler, dag-processor,
    triggerer; all stopped after.

    ``dags_folder`` (the example DAGs by default) and ``extra_env`` (added to every process's
    environment) let the scale test and benchmark run their own DAG file on the same deployment;
    ``health_timeout`` is how long every component may take to report healthy. ``sql_alchemy_conn``
    (an empty PostgreSQL database, say) replaces the SQLite copy: ``airflow db migrate`` runs on it first.
    """
    from airflow_provider_pixazo.testing.emulator import PixazoEmulator

    started = time.monotonic()
    home, logs, images = tmp_path / "airflow-home", tmp_path / "logs", tmp_path / "images"
    for folder in (home, logs, images):
        folder.mkdir()
    api_port = free_port()
    emulator = PixazoEmulator(api_key=API_KEY).start()
    env = {**_environment(home, api_port, emulator.url, images, dags_folder), **(extra_env or {})}
    if sql_alchemy_conn is not None:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_alchemy_conn
    procs = Processes(env, logs)
    system = AirflowSystem(home, logs, images, f"http://127.0.0.1:{api_port}", procs, emulator)
    try:
        if sql_alchemy_conn is None:
            assert migrated_db is not None, "a SQLite deployment starts from a copy of the migrated DB"
            copy_db(migrated_db, home)  # what `airflow db migrate` would make, without its seconds of startup
        else:
            procs.run("db-migrate", AIRFLOW, "db", "migrate", timeout=300)
        procs.start("api-server", AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port))
        procs.start("dag-processor", AIRFLOW, "dag-processor")
        procs.start("scheduler", AIRFLOW, "scheduler", "--skip-serve-logs")
        # No log servers: they listen on every interface, and the api-server reads the task logs
        # from this same disk anyway.
        system.start_triggerer()

        def healthy() -> bool:
            try:
                health = httpx.get(f"{system.api_url}/api/v2/monitor/health", timeout=2).json()
            except (httpx.TransportError, ValueError):
                return False
            return all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        system.wait_for("every component healthy", healthy, timeout=health_timeout)
        sys.stderr.write(f"\n[system] deployment up in {time.monotonic() - started:.1f}s (logs: {logs})\n")
        yield system
    finally:
        procs.stop_all()
        emulator.stop()
