"""alley 0.0.3's whole Python API, as projects written against it call it, on today's engine.

Two shapes seen in real projects, written here in our own words: a click tool whose
group builds ``alley.MongoMigrations(...)`` and whose subcommands call
``show_status``/``create``/``up``/``down``; and a module that subclasses
``alley.migrations.Migrations`` with ``MIGRATIONS_DIRECTORY = ""`` (PATH itself holds
the migrations) on a MongoEngine client. Then every 0.0.3 method and attribute, the
DeprecationWarning, and 0.0.3's console-script target ``alley.alley_cli.cli``.

click, which those projects use, is a test dependency (alley itself does not need it).
"""

from __future__ import annotations

import logging
import os
import re
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import alley
import alley.migrations
from alley.errors import ExitCode, MigrationsFolderMissing, UsageError
from alley.migrations import MigrationFile, Migrations
from alley.model import CreateResult, RunReport
from alley.testing import Credentials, Server, start_server
from conftest import Project

# The click tool constructs MongoMigrations on every invocation: its warning is
# asserted where it is the subject.
pytestmark = pytest.mark.filterwarnings("ignore:.* is alley 0.0.3's API:DeprecationWarning")

LOGGER = "alley.migrations"
USER, PASSWORD, AUTH_DB = "tool-user", "t00l-Pa55!", "admin"


# -------------------------------------------------------------------------
# Helpers
# -------------------------------------------------------------------------


def migration(folder: Path, filename: str, up: str, down: str = "pass") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(f"def up(db):\n    {up}\n\n\ndef down(db):\n    {down}\n")
    return path


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """What 0.0.3's logger said since the last call, as (level, message)."""
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return lines


def filenames(db: Any, collection: str = "db_migrations") -> list[str]:
    return sorted(r["filename"] for r in db[collection].find())


@pytest.fixture(autouse=True)
def _mongoengine_connections_closed() -> Iterator[None]:
    """MongoMigrations (and the alley command run in-process) register MongoEngine's
    default alias: closed after each test, so other tests can register theirs."""
    from mongoengine import connection

    before = set(connection._connection_settings)
    yield
    for alias in set(connection._connection_settings) - before:
        connection.disconnect(alias)


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def host_port(uri: str) -> tuple[str, int]:
    location = urlsplit(uri)
    return location.hostname or "localhost", location.port or 27017


# -------------------------------------------------------------------------
# Shape 1: a click tool built on alley.MongoMigrations
# -------------------------------------------------------------------------


def make_tool(click: Any) -> Any:
    """A project's own command-line tool, as written against alley 0.0.3."""

    @click.group()
    @click.option("--path", required=True, type=click.Path(exists=True, file_okay=False))
    @click.option("--database")
    @click.option("-u", "--username")
    @click.option("-w", "--password")
    @click.option("-h", "--host")
    @click.option("-p", "--port", type=int)
    @click.option("-a", "--auth")
    @click.pass_context
    def tool(
        ctx: Any,
        path: str,
        database: str | None,
        username: str | None,
        password: str | None,
        host: str | None,
        port: int | None,
        auth: str | None,
    ) -> None:
        ctx.obj = alley.MongoMigrations(
            path, database, username, password, host=host, port=port, auth=auth
        )

    @tool.command()
    @click.pass_obj
    def status(helper: Any) -> None:
        helper.migrations.show_status()

    @tool.command()
    @click.argument("name")
    @click.pass_obj
    def create(helper: Any, name: str) -> None:
        helper.migrations.create(name)

    @tool.command()
    @click.argument("migration_id", type=int, required=False)
    @click.option("--dry-run", is_flag=True, help="Record without running.")
    @click.pass_obj
    def up(helper: Any, migration_id: int | None, dry_run: bool) -> None:
        helper.migrations.up(migration_id, dry_run)

    @tool.command()
    @click.argument("migration_id", type=int)
    @click.pass_obj
    def down(helper: Any, migration_id: int) -> None:
        helper.migrations.down(migration_id)

    return tool


def test_click_tool_on_mongo_migrations(
    tmp_path: Path, mongodb_uri: str, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    import click
    from click.testing import CliRunner

    app = tmp_path / "app"
    app.mkdir()
    host, port = host_port(mongodb_uri)
    tool = make_tool(click)
    runner = CliRunner()

    def run(*args: str) -> Any:
        options = ["--path", str(app), "--database", mongo_db.name, "-h", host, "-p", str(port)]
        return runner.invoke(tool, [*options, *args])

    # create: writes into PATH/migrations/, logs the filename, connects to nothing.
    created = run("create", "add users")
    assert created.exit_code == 0, created.output
    assert logged(info_logs) == [(logging.INFO, "0001_add_users.py")]
    first = app / "migrations" / "0001_add_users.py"
    assert first.is_file()
    migration(app / "migrations", first.name, "db.users.insert_one({'name': 'ada'})",
              "db.users.delete_many({})")  # fmt: skip
    assert run("create", "seed").exit_code == 0
    logged(info_logs)
    migration(app / "migrations", "0002_seed.py", "db.seeds.insert_one({})",
              "db.seeds.delete_many({})")  # fmt: skip

    status = run("status")
    assert status.exit_code == 0, status.output
    assert logged(info_logs) == [
        (logging.INFO, "Unregistered migrations:"),
        (logging.INFO, "0001_add_users.py"),
        (logging.INFO, "0002_seed.py"),
    ]

    up_one = run("up", "1")
    assert up_one.exit_code == 0, up_one.output
    assert logged(info_logs) == [(logging.INFO, "Executing migration: 0001_add_users.py")]
    assert [u["name"] for u in mongo_db.users.find()] == ["ada"]
    record = mongo_db.db_migrations.find_one()
    assert (record["id"], record["filename"]) == (1, "0001_add_users.py")
    assert record["date"] is not None
    assert record["checksum"].startswith("v1:")  # the new engine recorded it

    dry = run("up", "2", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert logged(info_logs) == [(logging.INFO, "Executing migration: 0002_seed.py")]
    assert mongo_db.seeds.count_documents({}) == 0
    assert mongo_db.db_migrations.find_one({"id": 2})["fake"] is True

    # Pinned to an applied id: a successful no-op; nothing pending: 0.0.3's message.
    again = run("up", "1")
    assert again.exit_code == 0, again.output
    assert logged(info_logs) == [
        (logging.INFO, "Migration 1 is already applied, nothing to execute")
    ]
    assert run("up").exit_code == 0
    assert run("status").exit_code == 0
    assert logged(info_logs) == [
        (logging.INFO, Migrations.NO_MIGRATIONS_MSG),
        (logging.INFO, Migrations.NO_MIGRATIONS_MSG),
    ]

    down = run("down", "1")
    assert down.exit_code == 0, down.output
    assert logged(info_logs) == [
        (logging.INFO, "Rollback migration 0002_seed.py"),
        (logging.INFO, "Rollback migration 0001_add_users.py"),
    ]
    assert mongo_db.users.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 0

    # An id that exists nowhere: 0.0.3's error line, then the engine's error.
    unknown = run("up", "99")
    assert isinstance(unknown.exception, UsageError)
    assert logged(info_logs) == [(logging.ERROR, "Migration is not in unregistered list: 99")]
    assert mongo_db.db_migrations.count_documents({}) == 0

    # The lock and the run log are the new engine's.
    assert mongo_db.db_migrations_log.count_documents({}) > 0


@pytest.fixture(scope="module")
def auth_server(mongodb_server: Server) -> Iterator[Server]:
    """A server with a user, for -u/-w/-a (the session's server has no authentication)."""
    kinds = ("uri",) if mongodb_server.kind == "uri" else ("mongod", "ferretdb")
    server = start_server(kinds=kinds, credentials=Credentials(USER, PASSWORD, AUTH_DB))
    yield server
    server.stop()


def test_click_tool_with_credentials(
    tmp_path: Path, auth_server: Server, info_logs: pytest.LogCaptureFixture
) -> None:
    import click
    from click.testing import CliRunner
    from pymongo import MongoClient

    migration(tmp_path / "migrations", "0001_a.py", "db.a.insert_one({'x': 1})")
    host, port = host_port(auth_server.uri)
    tool = make_tool(click)
    base = ["--path", str(tmp_path), "--database", "tool_003", "-h", host, "-p", str(port)]
    credentials = ["-u", USER, "-w", PASSWORD, "-a", AUTH_DB]

    up = CliRunner().invoke(tool, [*base, *credentials, "up"])

    assert up.exit_code == 0, up.output
    assert logged(info_logs) == [(logging.INFO, "Executing migration: 0001_a.py")]
    with MongoClient(auth_server.uri) as client:
        assert filenames(client["tool_003"]) == ["0001_a.py"]
        assert client["tool_003"].a.count_documents({}) == 1

    from mongoengine.connection import disconnect

    disconnect()
    wrong = CliRunner().invoke(tool, [*base, "-u", USER, "-w", "nope", "-a", AUTH_DB, "status"])
    assert type(wrong.exception).__name__ == "ConnectionFailed"
    assert "authentication failed" in str(wrong.exception)
    assert "nope" not in str(wrong.exception)


def test_mongo_migrations_attributes_and_defaults(
    tmp_path: Path, mongodb_uri: str, mongo_db: Any
) -> None:
    from pymongo.database import Database

    host, port = host_port(mongodb_uri)
    helper = alley.MongoMigrations(str(tmp_path), mongo_db.name, None, None, host=host, port=port)

    assert helper.path == str(tmp_path)
    assert isinstance(helper.db, Database)
    assert helper.db.name == mongo_db.name
    migrations = helper.migrations
    assert isinstance(migrations, Migrations)
    assert migrations.db.name == mongo_db.name
    assert migrations.path == str(tmp_path)
    assert helper.migrations is not migrations  # a new one each time, as in 0.0.3


def test_mongo_migrations_without_database_uses_mongoengines_test(
    tmp_path: Path, mongodb_uri: str
) -> None:
    host, port = host_port(mongodb_uri)
    helper = alley.MongoMigrations(str(tmp_path), None, None, None, host=host, port=port)

    assert helper.db.name == "test"


def test_mongo_migrations_create_needs_no_server(
    tmp_path: Path, info_logs: pytest.LogCaptureFixture
) -> None:
    helper = alley.MongoMigrations(str(tmp_path), "nowhere", None, None, host="127.0.0.1", port=9)

    result = helper.migrations.create("first")

    assert (tmp_path / "migrations" / "0001_first.py").is_file()
    assert result.id == 1
    assert logged(info_logs) == [(logging.INFO, "0001_first.py")]


# -------------------------------------------------------------------------
# Shape 2: a subclass with PATH itself as the folder and its own collection
# -------------------------------------------------------------------------


class FlatMigrations(alley.migrations.Migrations):
    MIGRATIONS_DIRECTORY = ""
    MIGRATIONS_COLLECTION = "schema_history"


def test_subclass_with_path_as_folder_and_custom_collection(
    tmp_path: Path, mongodb_uri: str, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    import mongoengine.connection

    folder = tmp_path / "schema"
    migration(folder, "0001_roles.py", "db.roles.insert_one({'r': 'admin'})",
              "db.roles.delete_many({})")  # fmt: skip
    migration(folder, "0002_flags.py", "db.flags.insert_one({})", "db.flags.delete_many({})")
    (folder / "helpers.py").write_text("X = 1\n")  # not a migration
    host, port = host_port(mongodb_uri)
    client = mongoengine.connection.connect(
        host=host,
        port=port,
        username=None,
        password=None,
        authentication_source=None,
        uuidRepresentation="standard",
    )
    engine = FlatMigrations(str(folder), client[mongo_db.name])

    assert engine.directory == os.path.join(str(folder), "")
    assert engine.collection.name == "schema_history"
    assert engine.collection.database.name == mongo_db.name
    files = engine.get_migration_files()
    assert files == [MigrationFile(1, "0001_roles.py"), MigrationFile(2, "0002_flags.py")]

    report = engine.up()

    assert [s.filename for s in report.steps] == ["0001_roles.py", "0002_flags.py"]
    assert logged(info_logs) == [
        (logging.INFO, "Executing migration: 0001_roles.py"),
        (logging.INFO, "Executing migration: 0002_flags.py"),
    ]
    assert filenames(mongo_db, "schema_history") == ["0001_roles.py", "0002_flags.py"]
    assert "db_migrations" not in mongo_db.list_collection_names()
    assert mongo_db.roles.count_documents({}) == 1

    created = engine.create("audit")
    assert Path(created.location) == folder / "0003_audit.py"
    assert not (folder / "migrations").exists()
    logged(info_logs)
    engine.show_status()
    assert logged(info_logs) == [
        (logging.INFO, "Unregistered migrations:"),
        (logging.INFO, "0003_audit.py"),
    ]

    engine.down(2)
    assert filenames(mongo_db, "schema_history") == ["0001_roles.py"]
    assert mongo_db.flags.count_documents({}) == 0


class OwnHistory(Migrations):
    MIGRATIONS_COLLECTION = "applied_changes"


def test_subclass_with_only_a_custom_collection_keeps_the_migrations_folder(
    tmp_path: Path, mongo_db: Any
) -> None:
    migration(tmp_path / "migrations", "0001_a.py", "db.a.insert_one({})")

    engine = OwnHistory(str(tmp_path), mongo_db)
    engine.up()

    assert engine.directory == os.path.join(str(tmp_path), "migrations")
    assert filenames(mongo_db, "applied_changes") == ["0001_a.py"]
    assert engine.get_unregistered_migrations() == []
    # A plain Migrations on the same database reads db_migrations: nothing applied there.
    assert [m.filename for m in Migrations(str(tmp_path), mongo_db)._unregistered()] == [
        "0001_a.py"
    ]


# -------------------------------------------------------------------------
# Shape 3: every 0.0.3 method and attribute
# -------------------------------------------------------------------------


def test_class_attributes_and_instance_attributes(tmp_path: Path, mongo_db: Any) -> None:
    assert Migrations.MIGRATIONS_COLLECTION == "db_migrations"
    assert Migrations.MIGRATIONS_DIRECTORY == "migrations"
    assert Migrations.NO_MIGRATIONS_MSG == "All migrations registered, nothing to execute"

    migrations = Migrations(str(tmp_path), mongo_db)

    assert migrations.path == str(tmp_path)
    assert migrations.db is mongo_db
    assert migrations.directory == os.path.join(str(tmp_path), "migrations")
    assert migrations.collection.full_name == f"{mongo_db.name}.db_migrations"


def test_migration_file() -> None:
    file = MigrationFile("0003", "0003_add_users.py")

    assert file.id == 3
    assert str(file) == "3: 0003_add_users.py"
    assert file == MigrationFile(3, "0003_add_users.py")
    assert file != MigrationFile(3, "0003_other.py")
    assert file.as_dict() == {"id": 3, "filename": "0003_add_users.py"}
    assert MigrationFile.normalize_name("AddUsers") == "_dd_sers"
    assert MigrationFile.normalize_name("add users-2") == "add_users_2"
    assert re.match(MigrationFile.PATTERN, "0003_add_users.py")
    assert not re.match(MigrationFile.PATTERN, "0003_AddUsers.py")


def test_validate_id_logs_invalid_ids(info_logs: pytest.LogCaptureFixture) -> None:
    assert MigrationFile.validate_id("3") == 3
    assert MigrationFile.validate_id(7) == 7
    assert MigrationFile.validate_id("0004_x.py") == 4
    assert logged(info_logs) == []

    assert MigrationFile.validate_id("three") is None
    assert logged(info_logs) == [(logging.ERROR, "Invalid migration_id three ")]


def test_every_0_0_3_method(
    tmp_path: Path, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "migrations"
    migration(folder, "0010_c.py", "db.log.insert_one({'m': 10})", "db.log.delete_many({'m': 10})")
    migration(folder, "0002_b.py", "db.log.insert_one({'m': 2})", "db.log.delete_many({'m': 2})")
    migration(folder, "0001_a.py", "db.log.insert_one({'m': 1})", "db.log.delete_many({'m': 1})")
    (folder / "README.txt").write_text("not a migration")
    migrations = Migrations(str(tmp_path), mongo_db)

    assert migrations.check_directory() is True
    assert migrations.get_migration_files() == [
        MigrationFile(1, "0001_a.py"),
        MigrationFile(2, "0002_b.py"),
        MigrationFile(10, "0010_c.py"),
    ]
    assert [m.id for m in migrations.get_unregistered_migrations()] == [1, 2, 10]
    assert migrations.get_new_filename("AddUsers") == "0011__dd_sers.py"
    assert migrations.get_new_filename("add_users") == "0011_add_users.py"

    module = migrations.load_migration_file("0002_b.py")
    assert isinstance(module, types.ModuleType)
    assert callable(module.up)
    assert callable(module.down)

    assert migrations.get_migrations_to_up() == migrations.get_migration_files()
    assert migrations.get_migrations_to_up(2) == [
        MigrationFile(1, "0001_a.py"),
        MigrationFile(2, "0002_b.py"),
    ]
    assert migrations.get_migrations_to_up("0001") == [MigrationFile(1, "0001_a.py")]
    assert mongo_db.db_migrations.count_documents({}) == 0  # planning writes nothing
    logged(info_logs)

    assert migrations.get_migrations_to_up(99) == []
    assert logged(info_logs) == [
        (logging.ERROR, "Migration is not in unregistered list: 99"),
        (logging.INFO, "Unregistered migrations:"),
        (logging.INFO, "0001_a.py"),
        (logging.INFO, "0002_b.py"),
        (logging.INFO, "0010_c.py"),
    ]

    report = migrations.up("2")  # 0.0.3 took ids as strings from its CLI
    assert isinstance(report, RunReport)
    assert [s.id for s in report.steps] == [1, 2]
    assert sorted(d["m"] for d in mongo_db.log.find()) == [1, 2]
    assert [m.id for m in migrations.get_unregistered_migrations()] == [10]
    assert migrations.get_migrations_to_up(2) == []
    assert migrations.get_last_migrated_id() == 2


def test_every_0_0_3_method_after_up(
    tmp_path: Path, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "migrations"
    migration(folder, "0010_c.py", "db.log.insert_one({'m': 10})", "db.log.delete_many({'m': 10})")
    migration(folder, "0002_b.py", "db.log.insert_one({'m': 2})", "db.log.delete_many({'m': 2})")
    migration(folder, "0001_a.py", "db.log.insert_one({'m': 1})", "db.log.delete_many({'m': 1})")
    migrations = Migrations(str(tmp_path), mongo_db)
    migrations.up(2)
    migrations.up(10)
    assert migrations.get_last_migrated_id() == 10
    assert migrations.get_migrations_to_up() == []
    logged(info_logs)
    assert migrations.get_migrations_to_down(2) == [
        MigrationFile(10, "0010_c.py"),
        MigrationFile(2, "0002_b.py"),
    ]
    assert logged(info_logs) == []
    assert migrations.get_migrations_to_down(99) == []
    assert logged(info_logs) == [(logging.ERROR, "Migration does not exists 99")]

    migrations.down("2")
    assert logged(info_logs) == [
        (logging.INFO, "Rollback migration 0010_c.py"),
        (logging.INFO, "Rollback migration 0002_b.py"),
    ]
    assert sorted(d["m"] for d in mongo_db.log.find()) == [1]
    assert migrations.get_migrations_to_down(2) == []
    assert logged(info_logs) == [(logging.ERROR, "Migration is not applied 2")]
    with pytest.raises(UsageError):
        migrations.down(2)
    assert logged(info_logs) == [(logging.ERROR, "Migration is not applied 2")]
    assert migrations.get_last_migrated_id() == 1

    created = migrations.create("Add Users")
    assert isinstance(created, CreateResult)
    assert Path(created.location).name == "0011_add_users.py"  # create lower-cases
    assert logged(info_logs) == [(logging.INFO, "0011_add_users.py")]
    assert MigrationFile(11, "0011_add_users.py") in migrations.get_migration_files()

    migrations.show_status()
    assert logged(info_logs) == [
        (logging.INFO, "Unregistered migrations:"),
        (logging.INFO, "0002_b.py"),
        (logging.INFO, "0010_c.py"),
        (logging.INFO, "0011_add_users.py"),
    ]


def test_get_last_migrated_id_with_nothing_applied_is_none(tmp_path: Path, mongo_db: Any) -> None:
    (tmp_path / "migrations").mkdir()

    assert Migrations(str(tmp_path), mongo_db).get_last_migrated_id() is None


def test_records_written_by_0_0_3_are_read(
    tmp_path: Path, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    from datetime import datetime

    migration(tmp_path / "migrations", "0001_a.py", "pass", "db.undone.insert_one({})")
    migration(tmp_path / "migrations", "0002_b.py", "db.b.insert_one({})")
    mongo_db.db_migrations.insert_one(
        {"id": 1, "filename": "0001_a.py", "date": datetime(2019, 5, 1)}
    )
    migrations = Migrations(str(tmp_path), mongo_db)

    assert migrations.get_unregistered_migrations() == [MigrationFile(2, "0002_b.py")]
    assert migrations.get_last_migrated_id() == 1
    migrations.show_status()
    assert logged(info_logs) == [
        (logging.INFO, "Unregistered migrations:"),
        (logging.INFO, "0002_b.py"),
    ]
    migrations.down(1)
    assert mongo_db.undone.count_documents({}) == 1


def test_missing_folder_is_logged_by_show_status_and_raised_by_up(
    tmp_path: Path, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    migrations = Migrations(str(tmp_path), mongo_db)
    missing = [
        (
            logging.ERROR,
            "No migrations directory found. Check your path or create a migration first.",
        ),
        (logging.ERROR, f"Directory: {tmp_path / 'migrations'}"),
    ]

    assert migrations.show_status() is None
    assert logged(info_logs) == missing
    assert migrations.check_directory() is False
    assert logged(info_logs) == missing

    with pytest.raises(MigrationsFolderMissing):
        migrations.up()
    assert logged(info_logs) == missing
    with pytest.raises(MigrationsFolderMissing):
        migrations.down(1)
    with pytest.raises(MigrationsFolderMissing):
        migrations.get_migration_files()
    assert migrations.get_new_filename("first") == "0001_first.py"


def test_invalid_id_to_up_is_logged_and_raised(
    tmp_path: Path, mongo_db: Any, info_logs: pytest.LogCaptureFixture
) -> None:
    migration(tmp_path / "migrations", "0001_a.py", "db.a.insert_one({})")
    migrations = Migrations(str(tmp_path), mongo_db)

    with pytest.raises(UsageError, match="invalid migration id 'latest'"):
        migrations.up("latest")

    assert logged(info_logs) == [(logging.ERROR, "Invalid migration_id latest ")]
    assert migrations.get_migrations_to_up("latest") == []
    assert mongo_db.a.count_documents({}) == 0


def test_one_object_sees_files_written_between_calls(tmp_path: Path, mongo_db: Any) -> None:
    folder = tmp_path / "migrations"
    migration(folder, "0001_a.py", "db.a.insert_one({})")
    migrations = Migrations(str(tmp_path), mongo_db)
    migrations.up()

    migration(folder, "0002_b.py", "db.b.insert_one({})")
    report = migrations.up()

    assert [s.filename for s in report.steps] == ["0002_b.py"]
    assert report.notes == ()


# -------------------------------------------------------------------------
# Shape 4: the DeprecationWarning
# -------------------------------------------------------------------------


def test_0_0_3_only_methods_warn_at_the_caller_naming_the_new_api(
    tmp_path: Path, mongo_db: Any
) -> None:
    migration(tmp_path / "migrations", "0001_a.py", "pass")
    migrations = Migrations(str(tmp_path), mongo_db)
    calls = {
        "show_status": (migrations.show_status, (), r"alley.Migrations\(path, db\).status\(\)"),
        "get_migration_files": (migrations.get_migration_files, (), r"status\(\).statuses"),
        "get_unregistered_migrations": (
            migrations.get_unregistered_migrations,
            (),
            r"status\(\).pending",
        ),
        "check_directory": (migrations.check_directory, (), r"status\(\)"),
        "get_new_filename": (migrations.get_new_filename, ("x",), r"create\(name\)"),
        "load_migration_file": (migrations.load_migration_file, ("0001_a.py",), r"up\(\)"),
        "get_migrations_to_up": (migrations.get_migrations_to_up, (), r"alley.api.plan_up"),
        "get_last_migrated_id": (migrations.get_last_migrated_id, (), r"status\(\).applied"),
        "get_migrations_to_down": (migrations.get_migrations_to_down, (1,), r"api.plan_down"),
    }
    for name, (method, args, new_api) in calls.items():
        with pytest.warns(DeprecationWarning, match="alley 0.0.3's API") as caught:
            method(*args)
        own = [w for w in caught if "alley 0.0.3's API" in str(w.message)]
        assert len(own) == 1, (name, [str(w.message) for w in caught])
        assert f"Migrations.{name}() is alley 0.0.3's API" in str(own[0].message)
        assert re.search(new_api, str(own[0].message)), name
        assert own[0].filename == __file__, name  # the caller's line, not alley's


def test_mongo_migrations_warns_at_the_caller(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"alley.MongoMigrations is alley 0.0.3's API"):
        alley.MongoMigrations(str(tmp_path), "db", None, None)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alley.MongoMigrations(str(tmp_path), "db", None, None)
    assert [w.filename for w in caught if w.category is DeprecationWarning] == [__file__]


def test_the_warning_is_shown_once_per_call_site(tmp_path: Path, mongo_db: Any) -> None:
    (tmp_path / "migrations").mkdir()
    migrations = Migrations(str(tmp_path), mongo_db)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own rule: once per location
        for _ in range(3):
            migrations.check_directory()
        migrations.check_directory()  # another call site

    assert len([w for w in caught if w.category is DeprecationWarning]) == 2


def test_the_api_of_both_versions_does_not_warn(tmp_path: Path, mongo_db: Any) -> None:
    migrations = Migrations(str(tmp_path), mongo_db)

    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*alley 0.0.3's API", DeprecationWarning)
        migrations.create("a")
        migrations.status()
        migrations.up()
        migrations.down(1)


def test_the_alley_command_prints_no_warning(project: Project) -> None:
    project.counter("0001_a.py")

    for process in (False, True):
        result = project.alley("status", process=process)

        assert result.returncode == 0, result.output
        assert "0001_a.py" in result.stdout
        assert result.stderr == ""
        assert "Deprecat" not in result.output


# -------------------------------------------------------------------------
# Shape 5: alley.alley_cli.cli, 0.0.3's console-script target
# -------------------------------------------------------------------------


def test_alley_cli_is_the_alley_command(tmp_path: Path, mongo_db_uri: str, mongo_db: Any) -> None:
    from click.testing import CliRunner

    from alley.alley_cli import cli

    app = tmp_path / "app"
    migration(app / "migrations", "0001_a.py", "db.a.insert_one({})", "db.a.delete_many({})")
    runner = CliRunner()
    with warnings.catch_warnings():
        status = runner.invoke(cli, ["--url", mongo_db_uri, str(app), "status"])
        assert status.exit_code == 0, status.output
        assert "pending" in status.output
        assert "0001_a.py" in status.output

        up = runner.invoke(cli, ["--url", mongo_db_uri, str(app), "up"])
        assert up.exit_code == 0, up.output
        assert "0001_a.py" in up.output
        assert filenames(mongo_db) == ["0001_a.py"]

        unknown = runner.invoke(cli, ["--url", mongo_db_uri, str(app), "up", "7"])
        assert unknown.exit_code == ExitCode.USAGE
        assert "alley: error: no migration has id 7" in unknown.output

        missing = runner.invoke(cli, ["--url", mongo_db_uri, str(tmp_path / "nowhere"), "up"])
        assert missing.exit_code == ExitCode.CONFIG

        assert cli.main(["--url", mongo_db_uri, str(app), "status"], standalone_mode=False) == 0
        assert runner.invoke(cli, ["--help"]).exit_code == 0


def test_alley_cli_keeps_0_0_3_command_lines(tmp_path: Path, mongodb_uri: str) -> None:
    from click.testing import CliRunner
    from pymongo import MongoClient

    from alley.alley_cli import cli

    app = tmp_path / "app"
    migration(app / "migrations", "0001_a.py", "db.a.insert_one({})")
    host, port = host_port(mongodb_uri)
    args = ["-db", "alley_cli_003", "-h", host, "-p", str(port), str(app)]

    with warnings.catch_warnings():
        result = CliRunner().invoke(cli, [*args, "up", "1", "--fake"])

    assert result.exit_code == 0, result.output
    with MongoClient(mongodb_uri) as client:
        try:
            assert client.alley_cli_003.db_migrations.find_one()["fake"] is True
        finally:
            client.drop_database("alley_cli_003")


def test_alley_cli_called_as_a_console_script_reads_argv_and_exits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sys

    from alley.alley_cli import cli

    monkeypatch.setattr(sys, "argv", ["alley", "--path", str(tmp_path / "nowhere"), "status"])
    with pytest.raises(SystemExit) as exited:
        cli()

    assert exited.value.code == ExitCode.CONFIG
    assert capsys.readouterr().err.startswith("alley: error: PATH")
