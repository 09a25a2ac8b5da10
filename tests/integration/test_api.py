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
from alley_plugins.mongo_history import MongoHistoryStore


def write(folder: Path, filename: str, up: str, down: str = "pass") -> None:
    folder.mkdir(parents=True, exist_ok=True)
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


def test_api_rollbacks_the_last_the_last_n_and_redo(tmp_path: Path, mongo_db: Any) -> None:
    folder = tmp_path / "migrations"
    for n in (1, 2, 3):
        write(
            folder,
            f"000{n}_m{n}.py",
            f"db.c.insert_one({{'n': {n}}})",
            f"db.c.delete_one({{'n': {n}}})",
        )
    migrations = Migrations(tmp_path, mongo_db)
    migrations.up()

    assert [s.filename for s in migrations.down().steps] == ["0003_m3.py"]
    assert [s.filename for s in migrations.down(steps=2).steps] == ["0002_m2.py", "0001_m1.py"]
    assert mongo_db.c.count_documents({}) == 0

    migrations.up()
    redone = migrations.redo()
    assert [(s.filename, s.direction.value) for s in redone.steps] == [
        ("0003_m3.py", "down"),
        ("0003_m3.py", "up"),
    ]
    assert sorted(d["n"] for d in mongo_db.c.find()) == [1, 2, 3]
    assert mongo_db.db_migrations.count_documents({}) == 3


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


class OtherCollectionStore(MongoHistoryStore):
    """History records in another collection, in another shape: proves recording is only
    asked of hooks. The lock and run log are the default store's (inherited)."""

    def __init__(self, db: Any) -> None:
        super().__init__(db, "elsewhere")

    @hookimpl
    def alley_history_store(self, settings: Any, db: Any) -> Any:
        return self

    def read_records(self) -> list[HistoryRecord]:
        return [
            HistoryRecord(d["n"], d["name"], d["at"], d.get("sum")) for d in self.collection.find()
        ]

    def add_record(self, record: HistoryRecord) -> None:
        self.collection.insert_one(
            {"n": record.id, "name": record.filename, "at": record.date, "sum": record.checksum}
        )

    def remove_record(self, record: HistoryRecord) -> None:
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
    store = OtherCollectionStore(mongo_db)
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
    """Every command sent, as ``name`` or ``name collection`` for collection commands."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        named = isinstance(target, str) and event.command_name != "getMore"
        self.commands.append(f"{event.command_name} {target}" if named else event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def commands_of_up_and_status(
    root: Path, uri: str, database: str, count: int
) -> tuple[list[str], list[str]]:
    for number in range(1, count + 1):
        write(root / "migrations", f"{number:04}_m.py", "pass")
    listener = CommandCounter()
    with MongoClient(uri, event_listeners=[listener]) as client:
        migrations = Migrations(root, client[database])
        migrations.up()
        up_commands = list(listener.commands)
        listener.commands.clear()
        migrations.status()
        return up_commands, list(listener.commands)


def test_round_trips_constant_for_status_and_one_write_per_migration_for_up(
    tmp_path: Path, mongodb_uri: str, mongo_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run log is appended once a second while a run lasts; one batch here.
    monkeypatch.setattr("alley.engine.LOG_EVERY_S", 3600.0)
    small_up, small_status = commands_of_up_and_status(
        tmp_path / "small", mongodb_uri, "alley_rt_small", 3
    )
    large_up, large_status = commands_of_up_and_status(
        tmp_path / "large", mongodb_uri, "alley_rt_large", 40
    )
    for name in ("alley_rt_small", "alley_rt_large"):
        mongo_client.drop_database(name)

    assert small_status == large_status  # status: the same round trips for 3 or 40
    assert len(large_status) <= 5
    # up: a constant overhead (lock, reads, one batch of claims, one of log entries,
    # one delete of the attempts), then per migration exactly one write: its record.
    assert len(large_up) - len(small_up) == 40 - 3
    assert large_up.count("insert db_migrations") == 40
    assert large_up.count("insert db_migrations_open") == 1
    assert large_up.count("insert db_migrations_log") == 1
    assert large_up.count("delete db_migrations_open") == 1
    assert sorted(set(large_up)) == sorted(set(small_up))
