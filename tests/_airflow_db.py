"""
One ``airflow db migrate`` per session: a migrated, empty SQLite metadata DB that every Airflow home
the suite makes (its own, the system test's, the browser test's) starts from as a copy.

Each ``airflow`` command costs seconds of interpreter start and imports before it migrates anything,
and the suite used to run one per home and per folder; copying the file takes milliseconds.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def migrate_template(home: Path) -> Path:
    """``airflow db migrate`` in the empty Airflow home ``home`` (default SQLite, nothing of the caller's
    AIRFLOW_* settings); returns the DB file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(f"`airflow db migrate` exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return home / "airflow.db"


def copy_db(template: Path, home: Path) -> Path:
    """Copy the migrated DB into ``home`` as its ``airflow.db`` (SQLite's backup API: a consistent copy)."""
    target = home / "airflow.db"
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target
