"""The Python API of alley 0.0.3 (``Migrations(path, db)``) and the hooks behind it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from alley import Migrations
from alley.errors import MigrationFailed, UsageError
from alley.hookspecs import hookimpl
from alley.model import HistoryRecord, Migration


def write(folder: Path, filename: str, up: str, down: str = "pass") -> None:
    folder.mkdir(exist_ok=True)
    (folder / filename).write_text(f"def up(db):\n    {up}\n\n\ndef down(db):\n    {down}\n")


def test_readme_example_with_mongoengine_connect_and_get_db(
    tmp_path: Path, mongo_db: Any, mongodb_uri: str
) -> None:
    from mongoengine.connection import connect, disconnect, get_db

    write(tmp_path / "migrations", "0001_users.py", "db.users.insert_one({'name': 'ada'})")
    connect(db=mongo_db.name, host=mongodb_uri, alias="readme", uuidRepresentation="standard")
    try:
        db = get_db("readme")
        path = str(tmp_path)  # the README's os.path.dirname(__file__)

        Migrations(path, db).up()

        assert [u["name"] for u in mongo_db.users.find()] == ["ada"]
        assert mongo_db.db_migrations.count_documents({"filename": "0001_users.py"}) == 1
    finally:
        disconnect("readme")


def test_api_methods_up_down_status_create_fake(tmp_path: Path, mongo_db: Any) -> None:
    migrations = Migrations(tmp_path, mongo_db)
    created = migrations.create("Add Users")
    assert Path(created.location).name == "0001_add_users.py"
    write(tmp_path / "migrations", "0002_b.py", "db.b.insert_one({})", "db.b.delete_many({})")

    report = migrations.up(1)
    assert [s.filename for s in report.steps] == ["0001_add_users.py"]
    assert migrations.up("2", fake=True).steps[0].fake is True
    assert mongo_db.b.count_documents({}) == 0

    status = migrations.status()
    assert [s.state.value for s in status.statuses] == ["applied", "applied"]

    migrations.down(1)
    assert mongo_db.db_migrations.count_documents({}) == 0
    with pytest.raises(UsageError):
        migrations.down(1)


def test_api_raises_migration_failed_with_cause(tmp_path: Path, mongo_db: Any) -> None:
    write(tmp_path / "migrations", "0001_bad.py", "1 / 0")

    with pytest.raises(MigrationFailed) as raised:
        Migrations(tmp_path, mongo_db).up()

    assert isinstance(raised.value.cause, ZeroDivisionError)
    assert mongo_db.db_migrations.count_documents({}) == 0


def test_plain_mongo_client_database_works(tmp_path: Path, mongodb_uri: str, mongo_db: Any) -> None:
    write(tmp_path / "migrations", "0001_a.py", "db.a.insert_one({})")
    with MongoClient(mongodb_uri) as client:
        Migrations(tmp_path, client[mongo_db.name]).up()
    assert mongo_db.a.count_documents({}) == 1


class DictSource:
    """Migrations from a dict instead of files: proves discovery is only asked of hooks."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    @hookimpl
    def alley_discover_migrations(self, settings: Any) -> list[Migration]:
        return [
            Migration(
                id=int(name.split("_")[0]),
                name=name.split("_", 1)[1].removesuffix(".py"),
                filename=name,
                source=textwrap.dedent(source),
                location=f"dict://{name}",
            )
            for name, source in self.sources.items()
        ]


class OtherCollectionStore:
    """History in another collection: proves recording is only asked of hooks."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    @hookimpl
    def alley_history_store(self, settings: Any, db: Any) -> Any:
        return self

    def read(self) -> list[HistoryRecord]:
        return [
            HistoryRecord(d["n"], d["name"], d["at"], d.get("sum")) for d in self.collection.find()
        ]

    def record_applied(self, migration: Migration, record: HistoryRecord) -> None:
        self.collection.insert_one(
            {"n": record.id, "name": record.filename, "at": record.date, "sum": record.checksum}
        )

    def remove_applied(self, record: HistoryRecord) -> None:
        self.collection.delete_one({"name": record.filename})


def test_hooks_replace_discovery_and_history_store(tmp_path: Path, mongo_db: Any) -> None:
    source = DictSource(
        {
            "0001_first.py": "def up(db):\n    db.hooked.insert_one({'n': 1})\n\n"
            "def down(db):\n    db.hooked.delete_many({})\n",
            "0002_second.py": "def up(db):\n    db.hooked.insert_one({'n': 2})\n\n"
            "def down(db):\n    pass\n",
        }
    )
    store = OtherCollectionStore(mongo_db.elsewhere)
    migrations = Migrations(
        tmp_path,  # holds no migrations/ folder: the files plugin is disabled below
        mongo_db,
        plugins=[("dict-source", source), ("other-store", store)],
        disable_plugins=("filesystem",),
    )
    migrations.up()

    assert sorted(d["n"] for d in mongo_db.hooked.find()) == [1, 2]
    assert sorted(d["name"] for d in mongo_db.elsewhere.find()) == [
        "0001_first.py",
        "0002_second.py",
    ]
    assert "db_migrations" not in mongo_db.list_collection_names()
    assert [s.state.value for s in migrations.status().statuses] == ["applied", "applied"]
    migrations.down(1)
    assert mongo_db.elsewhere.count_documents({}) == 0


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("count", [3, 40])
def test_round_trips_are_constant_for_status_and_one_write_per_migration_for_up(
    tmp_path: Path, mongodb_uri: str, mongo_db: Any, count: int
) -> None:
    for number in range(1, count + 1):
        write(tmp_path / "migrations", f"{number:04}_m.py", "pass")
    listener = CommandCounter()
    with MongoClient(mongodb_uri, event_listeners=[listener]) as client:
        migrations = Migrations(tmp_path, client[mongo_db.name])

        migrations.up()
        up_commands = list(listener.commands)
        listener.commands.clear()
        migrations.status()
        status_commands = list(listener.commands)

    assert up_commands.count("insert") == count
    assert up_commands.count("find") == 1
    assert len(up_commands) == count + 1
    assert status_commands == ["find"]
