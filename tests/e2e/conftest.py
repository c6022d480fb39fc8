"""
A real Airflow behind a real browser, once per session, all on 127.0.0.1.

``airflow_stack`` starts, with a throwaway ``AIRFLOW_HOME`` under pytest's tmp dir: the Pixazo emulator,
a migrated metadata DB (a copy of the session's ``migrated_db``), one finished run of
``pixazo_one_task`` (``airflow dags test``, its connection pointing at the emulator) and ``airflow
api-server`` (UI + REST API, simple auth manager with everyone admin, the connection Test button
enabled). ``browser`` is one headless Chromium driven by Selenium through the Debian chromedriver;
nothing is downloaded at run time.

Every process is started in its own session and stopped at teardown by terminating its whole
process group (then killing it if it lingers), so no uvicorn worker or emulator thread outlives the
session. The environment is set for those subprocesses only; the test process keeps its own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._airflow_db import copy_db
from tests._net import free_port, tail

# tests/e2e/test_pixazo_view.py imports the port helper from here under its old name.
_free_port = free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
#: DAGs only the browser tests run (the fifty-prompt gallery); linked beside the examples.
TEST_DAGS = Path(__file__).resolve().parent / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Where the screenshots go; CI may point this at its artifacts folder.
SCREENSHOTS = Path(os.environ.get("PIXAZO_E2E_SCREENSHOTS", ROOT / "docs" / "screenshots"))

#: The key the emulator accepts (and a connection needs).
API_KEY = "pixazo-e2e-key"
DAG_ID = "pixazo_one_task"
TASK_ID = "generate_and_wait"

# Chromium as root in a container with a closed network: without the background-networking flags it
# waits on refused connections (component updates, sync, field trials) and hangs.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1400,1000",
)


#: Per-test timeout here: the first test also pays for the session's stack (three `dags test` runs,
#: fifty mapped task instances among them), which takes minutes on a busy 2-core machine.
E2E_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))


@dataclass
class AirflowStack:
    """What the tests need to know about the running stack."""

    home: Path
    ui_url: str
    emulator_url: str
    api_key: str
    run_id: str
    logs: Path
    #: The environment the stack's processes run with (a second api-server reuses it).
    env: dict[str, str] | None = None
    #: Finished runs of ``pixazo_daily_content`` and of the fifty-prompt ``pixazo_ui_fifty``.
    daily_run_id: str | None = None
    fifty_run_id: str | None = None
    #: Where the daily run's transfer stored its images.
    stored: Path | None = None

    def api(self) -> httpx.Client:
        """A client for the REST API (no login: the simple auth manager makes everyone admin)."""
        return httpx.Client(base_url=f"{self.ui_url}/api/v2", timeout=30)


class _Processes:
    """Starts subprocesses in their own process groups and stops every group it started."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
        err = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            env=self.env,
            cwd=self.logs,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else err,
            stderr=err,
            start_new_session=True,
        )
        err.close()
        self.started.append(proc)
        return proc

    def run(self, name: str, *args: str, timeout: float, env: dict[str, str] | None = None) -> None:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args,
                env=env or self.env,
                cwd=self.logs,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.started.append(proc)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop(proc)
                pytest.fail(f"`{' '.join(args[1:])}` took more than {timeout}s:\n{tail(log)}")
        if code != 0:
            pytest.fail(f"`{' '.join(args[1:])}` exited {code}:\n{tail(log)}")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # the group: uvicorn workers and any grandchildren too
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure nothing else of its group is left.
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            self.stop(proc)


def _dags_folder(base: Path) -> Path:
    folder = base / "dags"
    folder.mkdir()
    for source in [*sorted(EXAMPLE_DAGS.glob("*.py")), *sorted(TEST_DAGS.glob("*.py"))]:
        (folder / source.name).symlink_to(source)
    return folder


def _subprocess_env(home: Path, ui_port: int, dags: Path = EXAMPLE_DAGS) -> dict[str, str]:
    # The suite's conftest points AIRFLOW_HOME at .airflow-home/test for the test process; the stack
    # gets its own home and none of the caller's AIRFLOW_* settings or connections.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ui_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ui_port}",
            "AIRFLOW__API__WORKERS": "1",
            # Known to the tests, so they can sign (expired) tokens the way Airflow does.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Nothing leaves the machine: no usage data, no version check.
            "SCARF_ANALYTICS": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def _wait_until_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited {proc.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"airflow api-server not healthy after {timeout}s:\n{tail(log)}")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[AirflowStack]:
    """Emulator + migrated DB + one finished ``pixazo_one_task`` run + api-server; all stopped at teardown."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: run scripts/install-browser.sh")
    started = time.monotonic()
    base = tmp_path_factory.mktemp("e2e")
    home, logs = base / "airflow-home", base / "logs"
    home.mkdir()
    logs.mkdir()
    ui_port = free_port()
    ui_url = f"http://127.0.0.1:{ui_port}"
    stored = base / "stored"
    env = _subprocess_env(home, ui_port, _dags_folder(base))
    procs = _Processes(env, logs)
    emulator: subprocess.Popen[bytes] | None = None
    try:
        emulator = procs.start(
            "emulator",
            sys.executable,
            "-m",
            "airflow_provider_pixazo.testing.emulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            stdout=subprocess.PIPE,
        )
        assert emulator.stdout is not None
        emulator_url = emulator.stdout.readline().decode().strip()  # the URL is its first line
        if not emulator_url.startswith("http://127.0.0.1:"):
            pytest.fail(f"the emulator did not print its URL:\n{tail(logs / 'emulator.log')}")

        copy_db(migrated_db, home)  # what `airflow db migrate` would make, without its seconds of startup

        # One finished run for the UI to show: the deferrable task runs its trigger in line.
        conn = {"conn_type": "pixazo", "host": emulator_url, "password": API_KEY}
        run_env = {**env, "AIRFLOW_CONN_PIXAZO_DEFAULT": json.dumps(conn)}
        procs.run("dags-test", AIRFLOW, "dags", "test", DAG_ID, timeout=300, env=run_env)
        # The daily pipeline (mapped generate -> wait -> store) and fifty mapped prompts, for the Pixazo view.
        procs.run("pools-set", AIRFLOW, "pools", "set", "pixazo", "4", "Pixazo submits", timeout=120)
        daily_env = {**run_env, "AIRFLOW_VAR_PIXAZO_DESTINATION": str(stored)}
        procs.run("dags-test-daily", AIRFLOW, "dags", "test", "pixazo_daily_content", timeout=300, env=daily_env)
        procs.run("dags-test-fifty", AIRFLOW, "dags", "test", "pixazo_ui_fifty", timeout=600, env=run_env)

        server = procs.start("api-server", AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(ui_port))
        _wait_until_healthy(ui_url, server, logs / "api-server.log")

        def finished_run(dag_id: str) -> str:
            runs = httpx.get(f"{ui_url}/api/v2/dags/{dag_id}/dagRuns", timeout=30).json()["dag_runs"]
            finished = [r for r in runs if r["state"] == "success"]
            assert finished, f"no successful {dag_id} run: {runs}"
            return str(finished[0]["dag_run_id"])

        sys.stderr.write(f"\n[e2e] stack ready in {time.monotonic() - started:.1f}s (logs: {logs})\n")
        yield AirflowStack(
            home=home,
            ui_url=ui_url,
            emulator_url=emulator_url,
            api_key=API_KEY,
            run_id=finished_run(DAG_ID),
            logs=logs,
            env=env,
            daily_run_id=finished_run("pixazo_daily_content"),
            fifty_run_id=finished_run("pixazo_ui_fifty"),
            stored=stored,
        )
    finally:
        procs.stop_all()
        if emulator is not None and emulator.stdout is not None:
            emulator.stdout.close()


@pytest.fixture(scope="session")
def browser(airflow_stack: AirflowStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium (fresh profile) for the session, driven through the Debian chromedriver."""
    if not CHROMEDRIVER.exists():
        pytest.fail(f"{CHROMEDRIVER} is absent while {CHROMIUM} is present: run scripts/install-browser.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # An explicit driver path: Selenium Manager (which would download one) is never consulted.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(airflow_stack.logs / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder screenshots are written to (``docs/screenshots`` unless ``PIXAZO_E2E_SCREENSHOTS``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
