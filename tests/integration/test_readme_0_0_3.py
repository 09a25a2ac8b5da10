"""alley 0.0.3's README, followed as written by a new user, through the installed command.

Against a server with real users (authentication on), so ``-u -w -a`` are exercised for
real: ``alley -db <database name> -u <user> -w <password> -a <authentication database>
-h <host> -p <port> <PATH> <command> [options]``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from alley.testing import Credentials, Server, start_server
from conftest import Project

USER, PASSWORD, AUTH_DB = "deployer", "pa55-W0rd!", "admin"


@pytest.fixture(scope="module")
def auth_server(mongodb_server: Server) -> Iterator[Server]:
    """A second server, with a user: the session's server usually has no authentication."""
    kinds = ("uri",) if mongodb_server.kind == "uri" else ("mongod", "ferretdb")
    server = start_server(kinds=kinds, credentials=Credentials(USER, PASSWORD, AUTH_DB))
    yield server
    server.stop()


def connection_options(server: Server, database: str) -> list[str]:
    location = urlsplit(server.uri)
    return [
        "-db", database,
        "-u", USER,
        "-w", PASSWORD,
        "-a", AUTH_DB,
        "-h", location.hostname or "localhost",
        "-p", str(location.port or 27017),
    ]  # fmt: skip


def test_the_0_0_3_readme_as_written(tmp_path: Path, auth_server: Server) -> None:
    from pymongo import MongoClient

    app = tmp_path / "app"
    app.mkdir()
    project = Project(app, auth_server.uri)
    database = "readme_003"
    conn = connection_options(auth_server, database)
    client: MongoClient[dict[str, Any]] = MongoClient(auth_server.uri)
    db = client[database]
    db.your_collection.insert_many([{"some_field": 1, "keep": 1}, {"keep": 2}])

    # "alley <PATH to migrations parent directory> create <name>"
    created = project.alley(str(app), "create", "remove_field", url=False)
    assert created.returncode == 0, created.output
    migration = app / "migrations" / "0001_remove_field.py"
    assert migration.is_file()

    # The README's "Remove field" example, pasted into the new file.
    migration.write_text(
        textwrap.dedent(
            """\
            def up(db):
                db['your_collection'].update_many(
                    {'some_field': {'$exists': True}},
                    {'$unset': {'some_field': 1}}
                )


            def down(db):
                pass
            """
        )
    )
    assert project.alley(str(app), "create", "second", url=False).returncode == 0

    # "alley <PATH> status": shows migrations available for execution.
    status = project.alley(*conn, str(app), "status", url=False)
    assert status.returncode == 0, status.output
    assert "0001_remove_field.py" in status.stdout
    assert "0002_second.py" in status.stdout
    assert PASSWORD not in status.output

    # "alley <PATH> up [migration_id]"
    up = project.alley(*conn, str(app), "up", "1", url=False)
    assert up.returncode == 0, up.output
    assert all("some_field" not in d for d in db.your_collection.find())
    assert [r["filename"] for r in db.db_migrations.find()] == ["0001_remove_field.py"]

    # "alley <PATH> up [migration_id] --fake"
    fake = project.alley(*conn, str(app), "up", "2", "--fake", url=False)
    assert fake.returncode == 0, fake.output
    assert db.db_migrations.count_documents({}) == 2

    # "alley <PATH> down <migration_id>"
    down = project.alley(*conn, str(app), "down", "1", url=False)
    assert down.returncode == 0, down.output
    assert db.db_migrations.count_documents({}) == 0

    # "To see all available command line options run: alley --help"
    help_ = project.alley("--help", url=False, process=True)
    assert help_.returncode == 0
    for option in ("-db", "-u", "-w", "-a", "-h", "-p"):
        assert option in help_.stdout
    client.close()


def test_the_0_0_3_readme_run_from_code(tmp_path: Path, auth_server: Server) -> None:
    """``connect(**connection_args); db = get_db(); Migrations(path, db).up()``."""
    from mongoengine.connection import connect, disconnect, get_db

    from alley import Migrations

    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_users.py").write_text(
        "def up(db):\n    db.users.insert_one({'name': 'ada'})\n\n\n"
        "def down(db):\n    db.users.delete_many({})\n"
    )
    location = urlsplit(auth_server.uri)
    connection_args = {
        "db": "readme_003_code",
        "username": USER,
        "password": PASSWORD,
        "authentication_source": AUTH_DB,
        "host": location.hostname,
        "port": location.port,
        "uuidRepresentation": "standard",
    }
    connect(**connection_args)
    try:
        db = get_db()
        path = str(tmp_path)  # os.path.dirname(__file__) in the README

        Migrations(path, db).up()

        assert [u["name"] for u in db.users.find()] == ["ada"]
        assert db.db_migrations.count_documents({}) == 1
    finally:
        disconnect()


def test_wrong_password_on_the_auth_server_is_exit_4_and_never_printed(
    tmp_path: Path, auth_server: Server
) -> None:
    app = tmp_path / "app"
    (app / "migrations").mkdir(parents=True)
    project = Project(app, auth_server.uri)
    options = connection_options(auth_server, "readme_003")
    options[options.index(PASSWORD)] = "not-the-Pa55word"

    result = project.alley(*options, str(app), "status", "--verbose", url=False)

    assert result.returncode == 4, result.output
    assert "authentication failed" in result.stderr
    assert "not-the-Pa55word" not in result.output
