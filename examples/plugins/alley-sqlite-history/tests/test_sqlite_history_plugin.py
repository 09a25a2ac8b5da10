"""alley-sqlite-history, installed, running the real ``alley`` command.

Needs the plugin installed as a distribution (``pip install .``): it is found through
its entry point. The migrations run against a real server from alley's pytest plugin
(``mongo_db``, ``mongo_db_uri``); history goes to the SQLite file, read here with
``sqlite3`` as anybody could.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alley_sqlite_history import FILENAME, SqliteHistoryStore

from alley.lease import make_holder

ALLEY = shutil.which("alley", path=os.path.dirname(sys.executable)) or shutil.which("alley")


def alley(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``alley`` command in ``cwd``, without the caller's ALLEY_* variables."""
    assert ALLEY, "the alley command is not installed"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
    environment.pop("MONGODB_URI", None)
    environment.update(env or {})
    return subprocess.run(
        [ALLEY, *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    """``query`` on the history file, opened read-only."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchall()


def history_collections(db: Any) -> list[str]:
    return [name for name in db.list_collection_names() if name.startswith("db_migrations")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two migrations that count in ``counters``."""
    folder = tmp_path / "app" / "migrations"
    folder.mkdir(parents=True)
    for number in (1, 2):
        (folder / f"000{number}_step_{number}.py").write_text(
            f"def up(db):\n    db.counters.insert_one({{'_id': {number}}})\n\n\n"
            f"def down(db):\n    db.counters.delete_one({{'_id': {number}}})\n"
        )
    return folder.parent


def test_the_installed_plugin_is_listed_with_its_distribution(project: Path) -> None:
    result = alley(project, "plugins", "--json")

    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert plugins["sqlite-history"]["distribution"] == "alley-sqlite-history"
    assert plugins["sqlite-history"]["version"] == "0.1.0"
    assert plugins["sqlite-history"]["hooks"] == ["alley_history_store"]


def test_history_lock_and_log_are_kept_in_the_file_beside_the_project(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    result = alley(project, "--url", mongo_db_uri, "up")

    assert result.returncode == 0, result.stderr
    assert sorted(d["_id"] for d in mongo_db.counters.find()) == [1, 2]
    assert history_collections(mongo_db) == []
    path = project / FILENAME
    records = rows(path, "SELECT id, filename, date, checksum, extra FROM records ORDER BY id")
    assert [(r[0], r[1]) for r in records] == [(1, "0001_step_1.py"), (2, "0002_step_2.py")]
    assert all(r[2].endswith("+00:00") and r[3] for r in records)
    assert {json.loads(r[4])["fake"] for r in records} == {False}
    assert rows(path, "SELECT filename, event FROM run_log ORDER BY position") == [
        ("0001_step_1.py", "succeeded"),
        ("0002_step_2.py", "succeeded"),
    ]
    assert rows(path, "SELECT count(*) FROM open_attempts") == [(0,)]  # every attempt closed
    assert rows(path, "SELECT generation, released FROM lock_generations") == [(1, 1)]

    status = alley(project, "--url", mongo_db_uri, "status", "--json")
    again = alley(project, "--url", mongo_db_uri, "up")
    assert status.returncode == 0, status.stderr
    assert [m["state"] for m in json.loads(status.stdout)["migrations"]] == ["applied"] * 2
    assert again.returncode == 0, again.stderr
    assert mongo_db.counters.count_documents({}) == 2
    assert len(rows(path, "SELECT * FROM records")) == 2


def test_down_removes_the_records_from_the_file(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    assert alley(project, "--url", mongo_db_uri, "up").returncode == 0

    result = alley(project, "--url", mongo_db_uri, "down", "2")

    assert result.returncode == 0, result.stderr
    assert [d["_id"] for d in mongo_db.counters.find()] == [1]
    assert rows(project / FILENAME, "SELECT filename FROM records") == [("0001_step_1.py",)]


def test_the_file_may_be_named_in_pyproject_or_on_the_command_line(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    (project / "var").mkdir()
    (project / "pyproject.toml").write_text('[tool.alley]\nsqlite_history = "var/h.sqlite3"\n')
    (project / "migrations" / "deeper").mkdir()

    configured = alley(project / "migrations" / "deeper", "--url", mongo_db_uri, "up")
    given = alley(project, "--url", mongo_db_uri, "-o", "sqlite_history=given.sqlite3", "status")

    assert configured.returncode == 0, configured.stderr
    assert len(rows(project / "var" / "h.sqlite3", "SELECT * FROM records")) == 2
    assert given.returncode == 0, given.stderr
    assert rows(project / "given.sqlite3", "SELECT * FROM records") == []  # a new, empty one
    assert not (project / FILENAME).exists()


def test_the_lock_in_the_file_excludes_a_second_run(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    store = SqliteHistoryStore(project / FILENAME)
    holder = make_holder("up")
    taken = store.try_lock(holder, lease_s=60)
    assert taken.holder == holder

    busy = alley(project, "--url", mongo_db_uri, "--lock-timeout", "1", "up")

    assert busy.returncode == 5
    assert holder.run_id in busy.stderr
    assert mongo_db.counters.count_documents({}) == 0
    store.release_lock(taken.generation)
    done = alley(project, "--url", mongo_db_uri, "up")
    assert done.returncode == 0, done.stderr
    assert mongo_db.counters.count_documents({}) == 2


def test_a_missing_folder_is_a_configuration_error(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    result = alley(project, "--url", mongo_db_uri, "-o", "sqlite_history=nowhere/h.sqlite3", "up")

    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert f"the folder of the SQLite history {project / 'nowhere' / 'h.sqlite3'}" in line
    assert mongo_db.counters.count_documents({}) == 0


def test_disabled_the_default_store_is_back(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    result = alley(project, "--url", mongo_db_uri, "--disable-plugin", "sqlite-history", "up")

    assert result.returncode == 0, result.stderr
    assert mongo_db.db_migrations.count_documents({}) == 2
    assert not (project / FILENAME).exists()
