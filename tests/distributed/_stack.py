"""
A distributed Airflow in miniature, all on 127.0.0.1: what the Celery test drives.

PostgreSQL (a throwaway cluster: ``initdb`` into a temporary folder, the postmaster started by the
test) as the metadata database every process shares, Redis as the Celery broker, the Pixazo emulator
in this process (so the test reads its submit and status counts), and as separate processes: the
api-server, scheduler, dag-processor, **two** ``airflow celery worker`` and **two** triggerers. Each
process starts in its own session and is stopped by its own process group (tests/system/_stack.py's
:class:`Processes`); the servers last, after every Airflow process is gone.

Which process gets which connection is the point of the deployment (the README's "Distributed
deployment" section): the ``pixazo_default`` connection only on the workers and the triggerers, never
on the api-server, scheduler or dag-processor; ``pixazo_workers_only`` only on the workers and
``pixazo_triggerer_only`` only on the triggerers, so a misconfigured deployment can be shown failing
clearly (tests/distributed/dags/pixazo_distributed_misconfig.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._net import free_port, tail
from tests.system._stack import AIRFLOW, API_KEY, EXAMPLE_DAGS, Processes, _environment

HERE = Path(__file__).resolve().parent
OWN_DAGS = HERE / "dags"
WORKERS = ("worker-1", "worker-2")
TRIGGERERS = ("triggerer-1", "triggerer-2")
#: Long-running processes: one exiting on its own while the test waits is a failure, shown with its log.
SERVICES = {"postgres", "redis", "api-server", "scheduler", "dag-processor", *WORKERS, *TRIGGERERS}
#: Seconds after which a silent task (its worker SIGKILLed) is failed by the scheduler (default 300).
TASK_HEARTBEAT_TIMEOUT = 20
#: Seconds after which a silent triggerer is dead and its triggers go to the other one (default 30).
TRIGGERER_THRESHOLD = 6
#: Triggers one triggerer runs at most (default 1000). Airflow hands each new trigger to the triggerer
#: whose loop asks first, and a loop with running triggers wakes more often: uncapped, one triggerer
#: took all 26 waits of the test. A cap below that makes both hold some, as it spreads load in production.
TRIGGERER_CAPACITY = 16


def _conn(emulator_url: str) -> str:
    return json.dumps({"conn_type": "pixazo", "host": emulator_url, "password": API_KEY})


@dataclass
class Servers:
    """The throwaway PostgreSQL cluster and Redis server, and the folder they live in."""

    root: Path
    pg_port: int
    redis_port: int
    procs: Processes

    @property
    def sql_alchemy_conn(self) -> str:
        return f"postgresql://airflow@127.0.0.1:{self.pg_port}/airflow"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def _missing(what: str) -> None:
    """CI installs the servers (``make test-distributed``), so there a missing one fails; elsewhere it skips."""
    message = f"{what} is not installed: run `sh scripts/install-services.sh` (root or sudo)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    if not found:
        _missing("PostgreSQL")
    return found[0].parent


def _wait_port(port: int, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited {proc.returncode} while starting:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s:\n{tail(log)}")


def start_servers(logs: Path, procs: Processes, *, redis: bool = True) -> Servers:
    """``initdb`` + postmaster, and redis-server (unless ``redis`` is false); as the ``postgres`` user when
    run as root (CI is root, and PostgreSQL refuses to run as root)."""
    if redis and shutil.which("redis-server") is None:
        _missing("redis-server")
    pg_bin = _postgres_bin()
    # Under /tmp, not pytest's tmp_path: its parents are 0700 root, out of the postgres user's reach.
    root = Path(tempfile.mkdtemp(prefix="pixazo-distributed-"))
    servers = Servers(root, free_port(), free_port(), procs)
    user: dict[str, Any] = {}
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    data, sockets = root / "data", root / "sockets"
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(root)}

    def as_postgres(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, env=env, cwd=root, stdin=subprocess.DEVNULL, start_new_session=True, **user)

    with (logs / "initdb.log").open("wb") as out:
        initdb = subprocess.run(
            [str(pg_bin / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--no-sync"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            **user,
        )
    if initdb.returncode != 0:
        pytest.fail(f"initdb exited {initdb.returncode}:\n{tail(logs / 'initdb.log')}")
    if user:
        os.makedirs(sockets)
        os.chown(sockets, user["user"], user["group"])
    else:
        sockets.mkdir()
    # A throwaway cluster: no fsync (nothing to recover after the test), loopback only.
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(servers.pg_port),
        "unix_socket_directories": str(sockets),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "log_destination": "stderr",
    }
    args = [str(pg_bin / "postgres"), "-D", str(data)]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    with (logs / "postgres.log").open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **user,
        )  # fmt: skip
    procs.started["postgres"] = proc
    if redis:
        broker = procs.start(
            "redis",
            "redis-server", "--port", str(servers.redis_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(root), "--protected-mode", "yes",
        )  # fmt: skip
        _wait_port(servers.redis_port, "redis-server", broker, logs / "redis.log")
    _wait_port(servers.pg_port, "postgres", proc, logs / "postgres.log")
    deadline = time.monotonic() + 30
    while True:
        created = subprocess.run(
            [str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(servers.pg_port), "-U", "airflow", "airflow"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode == 0:
            break
        if time.monotonic() > deadline:  # "the database system is starting up" for a moment after listen
            pytest.fail(f"createdb failed: {created.stderr}")
        time.sleep(0.2)
    return servers


def stop_servers(servers: Servers) -> None:
    """Redis and PostgreSQL (a fast shutdown: SIGINT) after every client is gone; then their folder."""
    procs = servers.procs
    for name, sig in (("redis", signal.SIGTERM), ("postgres", signal.SIGINT)):
        proc = procs.started.get(name)
        if proc is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    shutil.rmtree(servers.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_only(logs: Path) -> Iterator[Servers]:
    """
    A throwaway PostgreSQL cluster with an empty ``airflow`` database (no Redis), stopped and removed after.

    For LocalExecutor deployments of many tasks (the scale test and benchmarks): on SQLite, Airflow's own
    job heartbeats die of "database is locked" within minutes of a 100-prompt mapped run, even on a quiet
    machine. ``servers.procs.started["postgres"]`` is the postmaster, the leader of its backends' session.
    """
    logs.mkdir(parents=True, exist_ok=True)
    procs = Processes({}, logs)
    try:
        servers = start_servers(logs, procs, redis=False)
    except BaseException:
        procs.stop_together(list(procs.started))  # a postmaster started before the failure
        raise
    try:
        yield servers
    finally:
        stop_servers(servers)


class RoleProcesses(Processes):
    """:class:`Processes` where each process may get its own extra environment (its connections)."""

    def start_with(self, name: str, extra_env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        base = self.env
        self.env = {**base, **extra_env}
        try:
            return self.start(name, *args)
        finally:
            self.env = base


@dataclass
class Deployment:
    """The running distributed deployment: REST API, processes, servers, where things are written."""

    home: Path
    logs: Path
    images: Path
    api_url: str
    procs: RoleProcesses
    servers: Servers
    emulator: Any
    worker_env: dict[str, str]
    triggerer_env: dict[str, str]
    #: Seconds `airflow db migrate` took on PostgreSQL, and the whole start-up.
    migrate_seconds: float = 0.0
    startup_seconds: float = 0.0

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API (the simple auth manager makes everyone admin, so no token)."""
        response = httpx.request(method, f"{self.api_url}/api/v2{path}", timeout=60, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        # No log server (it listens on every interface; the api-server reads task logs from this
        # disk); no gossip or mingle (two workers on one host need neither, and they slow start-up).
        return self.procs.start_with(
            name, self.worker_env,
            AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@pixazo-test", "--concurrency", "4",
            "--skip-serve-logs", "--without-gossip", "--without-mingle",
        )  # fmt: skip

    def start_triggerer(self, name: str) -> subprocess.Popen[bytes]:
        return self.procs.start_with(name, self.triggerer_env, AIRFLOW, "triggerer", "--skip-serve-logs")

    def alive(self) -> set[str]:
        return {name for name, proc in self.procs.started.items() if proc.poll() is None}

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """
        Poll ``check`` until it returns something truthy; fail with ``what`` and the logs' tails.

        A REST call that times out counts as "not yet": on a loaded 2-core machine the single
        api-server process, which also serves every task's execution API, can stall for seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.started.items():
                if name in SERVICES and proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                    log = tail(self.logs / f"{name}.log")
                    pytest.fail(f"{name} exited {proc.returncode} while waiting for {what}:\n{log}")
            try:
                value = check()
            except httpx.TimeoutException:
                value = None
            if value:
                return value
            time.sleep(interval)
        details = "\n".join(f"--- {p.name}\n{tail(p, 15)}" for p in sorted(self.logs.glob("*.log")))
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{details}")


#: The example DAGs the test runs (others may be added to example_dags/ without changing this test).
EXAMPLES = ("pixazo_daily_content", "pixazo_one_task", "pixazo_edit_pipeline", "pixazo_images_consumer")


def _dags_folder(path: Path) -> Path:
    """The example DAGs and this suite's own, side by side as links: one DAGs folder for every process."""
    path.mkdir()
    for source in (*(EXAMPLE_DAGS / f"{name}.py" for name in EXAMPLES), *sorted(OWN_DAGS.glob("*.py"))):
        (path / source.name).symlink_to(source)
    return path


def start_deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Servers, emulator, ``airflow db migrate``, then every Airflow process; all stopped after."""
    from airflow_provider_pixazo.testing.emulator import PixazoEmulator

    started = time.monotonic()
    home, logs, images = tmp_path / "airflow-home", tmp_path / "logs", tmp_path / "images"
    for folder in (home, logs, images):
        folder.mkdir()
    api_port = free_port()
    emulator = PixazoEmulator(api_key=API_KEY).start()
    env = _environment(home, api_port, emulator.url, images)
    # No connection by default: each role gets exactly the ones it needs (below).
    del env["AIRFLOW_CONN_PIXAZO_DEFAULT"]
    procs = RoleProcesses(env, logs)
    servers: Servers | None = None
    try:
        servers = start_servers(logs, procs)
        env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(_dags_folder(tmp_path / "dags")),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": servers.sql_alchemy_conn,
                "AIRFLOW__CELERY__BROKER_URL": servers.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{servers.sql_alchemy_conn}",
                # A task whose worker was SIGKILLed stops heartbeating: the scheduler fails that try
                # (then retries it) after this many seconds instead of the default 300.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                # A triggerer silent this long is dead: the other one takes its triggers (default 30).
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_THRESHOLD),
                "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
            }
        )
        conn = _conn(emulator.url)
        worker_env = {"AIRFLOW_CONN_PIXAZO_DEFAULT": conn, "AIRFLOW_CONN_PIXAZO_WORKERS_ONLY": conn}
        triggerer_env = {"AIRFLOW_CONN_PIXAZO_DEFAULT": conn, "AIRFLOW_CONN_PIXAZO_TRIGGERER_ONLY": conn}
        system = Deployment(
            home, logs, images, f"http://127.0.0.1:{api_port}", procs, servers, emulator, worker_env, triggerer_env
        )
        begin = time.monotonic()
        procs.run("db-migrate", AIRFLOW, "db", "migrate", timeout=300)
        system.migrate_seconds = time.monotonic() - begin
        procs.start("api-server", AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port))
        procs.start("dag-processor", AIRFLOW, "dag-processor")
        procs.start("scheduler", AIRFLOW, "scheduler", "--skip-serve-logs")
        for name in WORKERS:
            system.start_worker(name)
        for name in TRIGGERERS:
            system.start_triggerer(name)

        def healthy() -> bool:
            try:
                health = httpx.get(f"{system.api_url}/api/v2/monitor/health", timeout=2).json()
            except (httpx.TransportError, ValueError):
                return False
            parts_ok = all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )
            # Celery prints "<hostname> ready." once the worker consumes from the broker.
            workers_ok = all(b" ready." in (logs / f"{name}.log").read_bytes() for name in WORKERS)
            return parts_ok and workers_ok

        system.wait_for("every component healthy and both workers ready", healthy, timeout=180)
        system.startup_seconds = time.monotonic() - started
        sys.stderr.write(
            f"\n[distributed] deployment up in {system.startup_seconds:.1f}s "
            f"(db migrate on PostgreSQL {system.migrate_seconds:.1f}s; logs: {logs})\n"
        )
        yield system
    finally:
        airflow_names = [name for name in procs.started if name not in ("postgres", "redis")]
        others = [name for name in reversed(airflow_names) if name != "api-server"]
        procs.stop_together(others)
        if "api-server" in procs.started:
            procs.stop("api-server")
        if servers is not None:
            stop_servers(servers)
        else:
            procs.stop_together([name for name in ("redis", "postgres") if name in procs.started])
        emulator.stop()
