"""alley-control-history, installed, against a real server.

Needs the plugin installed as a distribution (``pip install .``): it is found through
its entry point. The server, and fresh databases for targets and for the control
database, come from alley's pytest plugin (``mongo_client``, ``mongo_db``,
``mongo_db_uri``, ``mongodb_server``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alley_control_history import ControlHistoryStore, collection_name

from alley import Migrations
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


@pytest.fixture
def control_db(new_mongo_db: Any) -> Any:
    """A fresh control database (on the test server: a separate cluster in real life)."""
    return new_mongo_db("alley_control")


@pytest.fixture
def control_url(mongodb_server: Any, control_db: Any) -> str:
    return str(mongodb_server.uri_for_database(control_db.name))


@pytest.fixture
def other_tenant(new_mongo_db: Any) -> Any:
    return new_mongo_db("alley_tenant")


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


def history_names(db: Any) -> list[str]:
    return sorted(name for name in db.list_collection_names() if name.startswith("db_migrations"))


def test_the_installed_plugin_is_listed_with_its_distribution(project: Path) -> None:
    result = alley(project, "plugins", "--json")

    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert plugins["control-history"]["distribution"] == "alley-control-history"
    assert plugins["control-history"]["version"] == "0.1.0"
    assert plugins["control-history"]["hooks"] == ["alley_history_store"]


def test_history_lock_and_log_are_kept_in_the_control_database(
    project: Path, mongo_db: Any, mongo_db_uri: str, control_db: Any, control_url: str
) -> None:
    result = alley(project, "--url", mongo_db_uri, "-o", f"control_url={control_url}", "up")

    assert result.returncode == 0, result.stderr
    assert sorted(d["_id"] for d in mongo_db.counters.find()) == [1, 2]
    assert history_names(mongo_db) == []
    name = collection_name(mongo_db.name)
    assert history_names(control_db) == [name, f"{name}_lock", f"{name}_log", f"{name}_open"]
    records = sorted(control_db[name].find(), key=lambda record: record["id"])
    assert [(r["id"], r["filename"]) for r in records] == [
        (1, "0001_step_1.py"),
        (2, "0002_step_2.py"),
    ]
    assert all(isinstance(r["date"], datetime) and r["checksum"] for r in records)
    events = [(e["filename"], e["event"]) for e in control_db[f"{name}_log"].find()]
    assert sorted(events) == [("0001_step_1.py", "succeeded"), ("0002_step_2.py", "succeeded")]
    assert control_db[f"{name}_open"].count_documents({}) == 0  # every attempt closed
    assert [lock["released"] for lock in control_db[f"{name}_lock"].find()] == [True]

    status = alley(project, "--url", mongo_db_uri, "-o", f"control_url={control_url}", "status")
    again = alley(project, "--url", mongo_db_uri, "-o", f"control_url={control_url}", "up")
    assert status.returncode == 0
    assert again.returncode == 0
    assert mongo_db.counters.count_documents({}) == 2
    assert control_db[name].count_documents({}) == 2


def test_tenants_share_one_control_database_and_down_touches_only_its_own(
    project: Path, mongo_db: Any, other_tenant: Any, control_db: Any, control_url: str
) -> None:
    options = (f"control_url={control_url}",)
    for tenant in (mongo_db, other_tenant):  # an application migrating its tenants
        Migrations(project, tenant, options=options).up()

    Migrations(project, mongo_db, options=options).down(1)

    assert mongo_db.counters.count_documents({}) == 0
    assert control_db[collection_name(mongo_db.name)].count_documents({}) == 0
    assert other_tenant.counters.count_documents({}) == 2
    assert sorted(r["filename"] for r in control_db[collection_name(other_tenant.name)].find()) == [
        "0001_step_1.py",
        "0002_step_2.py",
    ]


def test_the_lock_in_the_control_database_excludes_a_second_run(
    project: Path, mongo_db: Any, mongo_db_uri: str, control_db: Any, control_url: str
) -> None:
    store = ControlHistoryStore(control_db, mongo_db.name)
    holder = make_holder("up")
    taken = store.try_lock(holder, lease_s=60)
    assert taken.holder == holder

    busy = alley(
        project,
        "--url",
        mongo_db_uri,
        "--lock-timeout",
        "1",
        "-o",
        f"control_url={control_url}",
        "up",
    )

    assert busy.returncode == 5
    assert holder.run_id in busy.stderr
    assert mongo_db.counters.count_documents({}) == 0
    store.release_lock(taken.generation)
    done = alley(project, "--url", mongo_db_uri, "-o", f"control_url={control_url}", "up")
    assert done.returncode == 0, done.stderr
    assert mongo_db.counters.count_documents({}) == 2


def test_the_url_may_come_from_the_environment(
    project: Path, mongo_db: Any, mongo_db_uri: str, control_db: Any, control_url: str
) -> None:
    result = alley(project, "--url", mongo_db_uri, "up", env={"ALLEY_CONTROL_URL": control_url})

    assert result.returncode == 0, result.stderr
    assert control_db[collection_name(mongo_db.name)].count_documents({}) == 2


def test_without_control_url_it_refuses_rather_than_fall_back(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    result = alley(project, "--url", mongo_db_uri, "up")

    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert "alley-control-history is installed but control_url is not set" in line
    assert mongo_db.counters.count_documents({}) == 0


def test_disabled_the_default_store_is_back(
    project: Path, mongo_db: Any, mongo_db_uri: str, control_db: Any, control_url: str
) -> None:
    result = alley(
        project,
        "--url",
        mongo_db_uri,
        "-o",
        f"control_url={control_url}",
        "--disable-plugin",
        "control-history",
        "up",
    )

    assert result.returncode == 0, result.stderr
    assert mongo_db.db_migrations.count_documents({}) == 2
    assert history_names(control_db) == []


def test_an_unreachable_control_database_is_a_connection_error_without_the_password(
    project: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    url = "mongodb://ops:s3cret-pw@127.0.0.1:9/alley"

    result = alley(
        project, "--url", mongo_db_uri, "--timeout", "0.5", "-o", f"control_url={url}", "up"
    )

    assert result.returncode == 4
    [line] = result.stderr.splitlines()
    assert "the control database at mongodb://ops:***@127.0.0.1:9/alley does not answer" in line
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert mongo_db.counters.count_documents({}) == 0
