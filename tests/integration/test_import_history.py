"""``alley import-history``: each tool users switch from, installed from its package
registry (:mod:`alley.testing.peers`, cached), applies some of its own migrations to
the test server, writing its real history; alley then imports that history.

flask-mongoengine-migrations (alley's ancestor) is not on PyPI and its Bitbucket
repository is on no package registry, so it cannot be installed: its records are written here
in the exact format its source writes. From ``flask_mongoengine_migrations/migrations.py``
(``Migrations.up``; ``MIGRATIONS_COLLECTION = 'migrations'`` in the original, per its
README: "After execution the record about migration is added to ``migrations`` mongo
collection")::

    def as_dict(self):
        return {
            'id': self.id,
            'filename': self.filename
        }
    ...
            record = migration.as_dict()
            record['date'] = datetime.utcnow()
            self.collection.insert(record)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alley import api
from alley.engine import Engine
from alley.errors import ExitCode
from alley.hookspecs import hookimpl
from alley.import_history import ImportMismatch
from alley.memory_store import MemoryStore
from alley.settings import Settings, load_settings
from alley.testing import peers
from conftest import Project, Result

INTEGRITY, USAGE = int(ExitCode.INTEGRITY), int(ExitCode.USAGE)


def run_peer(argv: list[str | Path], cwd: Path) -> str:
    """Run a peer's command; its output. A failure fails the test with the output."""
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=peers.peer_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def installed(provide: Callable[[], Path]) -> Path:
    try:
        return provide()
    except peers.PeerUnavailable as error:  # no registry here: an error, not a skip
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def migrate_mongo() -> Path:
    return installed(peers.npm_peer)


@pytest.fixture(scope="module")
def pymongo_migrate() -> Path:
    return installed(lambda: peers.python_peer_script("pymongo-migrate"))


@pytest.fixture(scope="module")
def mongodb_migrations() -> Path:
    return installed(lambda: peers.python_peer_script("mongodb-migrations"))


# --------------------------------------------------------------------------- the tools


def marker(by: str, name: str) -> str:
    """A migration body's write: ``work`` gets ``{by, m}``, so the test sees what ran."""
    return f"{{'by': '{by}', 'm': '{name}'}}"


def alley_files(project: Project, *filenames: str) -> None:
    for filename in filenames:
        project.write(
            filename,
            up=f"db.work.insert_one({marker('alley', filename)})",
            down=f"db.work.delete_one({marker('alley', filename)})",
        )


def with_migrate_mongo(
    exe: Path, root: Path, uri: str, db: str, names: list[str], collection: str = "changelog"
) -> None:
    """migrate-mongo's own project in ``root/mm``: its config, ``names`` as ``.js``
    migrations, then its ``up``."""
    folder = root / "mm"
    (folder / "migrations").mkdir(parents=True, exist_ok=True)
    config = {
        "mongodb": {"url": uri, "databaseName": db, "options": {}},
        "migrationsDir": "migrations",
        "changelogCollectionName": collection,
        "lockCollectionName": f"{collection}_lock",
        "lockTtl": 0,
        "migrationFileExtension": ".js",
        "useFileHash": False,
        "moduleSystem": "commonjs",
    }
    (folder / "migrate-mongo-config.js").write_text(f"module.exports = {json.dumps(config)};\n")
    for name in names:
        doc = json.dumps({"by": "migrate-mongo", "m": name})
        (folder / "migrations" / name).write_text(
            "module.exports = {\n"
            f"  async up(db) {{ await db.collection('work').insertOne({doc}); }},\n"
            f"  async down(db) {{ await db.collection('work').deleteOne({doc}); }},\n"
            "};\n"
        )
    run_peer([exe, "up"], folder)


@dataclass
class Scenario:
    """One tool: writes its real history for the alley files ``0001_add_index.py`` and
    ``0002_backfill_users.py`` (``0003_rename_field.py`` is new in alley)."""

    tool: str
    collection: str
    keys: list[str]  # what the tool records for 0001 and 0002, in that order
    date_field: str
    key_field: str
    write_history: Callable[[Project, Any], None]


def scenario(request: pytest.FixtureRequest, tool: str) -> Scenario:
    if tool == "migrate-mongo":
        exe = request.getfixturevalue("migrate_mongo")
        names = ["20240101120000-add-index.js", "20240102120000-backfill-users.js"]
        return Scenario(
            tool,
            "changelog",
            names,
            "appliedAt",
            "fileName",
            lambda project, db: with_migrate_mongo(exe, project.root, project.uri, db.name, names),
        )
    if tool == "pymongo-migrate":
        exe = request.getfixturevalue("pymongo_migrate")
        names = ["20240101120000_add_index", "20240102120000_backfill_users", "20240103_later"]

        def pymongo_history(project: Project, db: Any) -> None:
            folder = project.root / "pymongo_migrations"
            folder.mkdir(parents=True, exist_ok=True)
            for i, name in enumerate(names):
                deps = names[i - 1 : i]
                (folder / f"{name}.py").write_text(
                    f'"""{name}"""\nname = {name!r}\ndependencies = {deps!r}\n\n\n'
                    f"def upgrade(db):\n    db.work.insert_one({marker('pymongo-migrate', name)})"
                    "\n\n\ndef downgrade(db):\n"
                    f"    db.work.delete_one({marker('pymongo-migrate', name)})\n"
                )
            common = ["-u", project.uri, "-d", db.name, "-m", folder]
            run_peer([exe, "upgrade", *common], project.root)
            # Rolled back: pymongo-migrate keeps its document with applied = null.
            run_peer([exe, "downgrade", *common, names[1]], project.root)

        return Scenario(tool, "pymongo_migrate", names[:2], "applied", "name", pymongo_history)
    if tool == "mongodb-migrations":
        exe = request.getfixturevalue("mongodb_migrations")

        def mongodb_history(project: Project, db: Any) -> None:
            folder = project.root / "mdbm"
            folder.mkdir(parents=True, exist_ok=True)
            # Its files are <digits>[_a-z]*.py: the alley files share their ids.
            for filename in ("0001_add_index.py", "0002_backfill_users.py"):
                (folder / filename).write_text(
                    "from mongodb_migrations.base import BaseMigration\n\n\n"
                    "class Migration(BaseMigration):\n"
                    "    def upgrade(self):\n"
                    f"        self.db.work.insert_one({marker('mongodb-migrations', filename)})\n"
                    "\n    def downgrade(self):\n"
                    f"        self.db.work.delete_one({marker('mongodb-migrations', filename)})\n"
                )
            run_peer([exe, "--url", project.uri, "--migrations", folder], project.root)

        return Scenario(
            tool,
            "database_migrations",
            ["0001", "0002"],
            "created_at",
            "migration_datetime",
            mongodb_history,
        )
    assert tool == "flask-mongoengine-migrations"

    def ancestor_history(project: Project, db: Any) -> None:
        # As its Migrations.up writes them (see the module docstring); insert() was
        # PyMongo 3's insert_one, and this is datetime.utcnow()'s naive UTC value.
        now = datetime.now(UTC).replace(tzinfo=None)
        for n, filename in enumerate(["0001_add_index.py", "0002_backfill_users.py"]):
            record = {"id": n + 1, "filename": filename}
            record["date"] = now - timedelta(minutes=2 - n)
            db.migrations.insert_one(record)

    return Scenario(
        tool,
        "migrations",
        ["0001_add_index.py", "0002_backfill_users.py"],
        "date",
        "filename",
        ancestor_history,
    )


TOOLS = ["migrate-mongo", "pymongo-migrate", "mongodb-migrations", "flask-mongoengine-migrations"]


def foreign(db: Any, collection: str) -> list[dict[str, Any]]:
    return sorted(db[collection].find(), key=lambda d: str(d["_id"]))


def alley_ran(db: Any) -> list[str]:
    return sorted(d["m"] for d in db.work.find({"by": "alley"}))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tools_real_history_is_imported_up_runs_the_rest_and_undo_removes_it(
    request: pytest.FixtureRequest, tool: str, project: Project, mongo_db: Any
) -> None:
    case = scenario(request, tool)
    case.write_history(project, mongo_db)
    before = foreign(mongo_db, case.collection)
    applied = {
        d[case.key_field]: d[case.date_field]
        for d in before
        if d.get(case.date_field) is not None and d[case.key_field] in case.keys
    }
    assert list(applied) == case.keys or set(applied) == set(case.keys)
    alley_files(project, "0001_add_index.py", "0002_backfill_users.py", "0003_rename_field.py")

    imported = project.alley("import-history", "--from", tool)

    assert imported.returncode == 0, imported.output
    lines = imported.stdout.splitlines()
    counted = [d for d in before if d.get(case.date_field) is not None]  # applied ones
    assert lines[0] == f"{tool} history in collection {case.collection}: {len(counted)} entries"
    for key, filename in zip(
        case.keys, ["0001_add_index.py", "0002_backfill_users.py"], strict=True
    ):
        assert any(
            line.startswith("imported ") and f" {key} " in line and f"-> {filename}" in line
            for line in lines
        ), imported.stdout
    assert lines[-1].startswith("2 imported, 0 already recorded, 0 not matched (import ")
    records = {d["filename"]: d for d in mongo_db.db_migrations.find()}
    assert sorted(records) == ["0001_add_index.py", "0002_backfill_users.py"]
    for key, filename in zip(
        case.keys, ["0001_add_index.py", "0002_backfill_users.py"], strict=True
    ):
        record = records[filename]
        assert record["date"] == applied[key].replace(
            microsecond=applied[key].microsecond // 1000 * 1000
        )
        assert record["imported_from"] == tool
        assert record["imported_entry"] == key
        assert record["imported_collection"] == case.collection
        assert record["imported_applied_at"] == record["date"]
        assert record["fake"] is True
        assert record["checksum"]  # the file's: drift is detected from now on
    import_id = records["0001_add_index.py"]["import_id"]
    assert import_id.startswith(f"{tool}-")
    assert records["0002_backfill_users.py"]["import_id"] == import_id

    status = project.alley("status")
    assert status.returncode == 0, status.output
    assert f"imported from {tool} ({case.keys[0]})" in status.stdout
    assert "2 applied, 1 pending" in status.stdout
    as_json = json.loads(project.alley("status", "--json").stdout)["migrations"]
    assert [m["imported_from"] for m in as_json] == [tool, tool, None]
    history = project.alley("history")
    assert history.stdout.count(f"imported from {tool}") == 2, history.stdout

    up = project.alley("up")
    assert up.returncode == 0, up.output
    assert alley_ran(mongo_db) == ["0003_rename_field.py"]  # only the rest ran

    locks = mongo_db.db_migrations_lock.count_documents({})
    assert locks > 0  # the import took the lock
    again = project.alley("import-history", "--from", tool)
    assert again.returncode == 0, again.output
    assert again.stdout.splitlines()[-1] == "0 imported, 2 already recorded, 0 not matched"
    assert mongo_db.db_migrations.count_documents({}) == 3
    assert mongo_db.db_migrations_lock.count_documents({}) == locks  # nothing to write: no lock

    undone = project.alley("import-history", "--undo")
    assert undone.returncode == 0, undone.output
    assert undone.stdout.splitlines() == [
        "removed  0001_add_index.py",
        "removed  0002_backfill_users.py",
        f"undid import {import_id} ({tool}): 2 removed",
    ]
    assert [d["filename"] for d in mongo_db.db_migrations.find()] == ["0003_rename_field.py"]
    assert "1 applied, 2 pending" in project.alley("status").stdout
    assert foreign(mongo_db, case.collection) == before  # read, never written


def test_dry_run_prints_the_mapping_and_an_unmatched_entry_fails_with_nothing_written(
    migrate_mongo: Path, project: Project, mongo_db: Any
) -> None:
    names = [
        "20240101120000-add-index.js",
        "20240102120000-backfill-users.js",
        "20240103120000-drop-legacy.js",
    ]
    with_migrate_mongo(migrate_mongo, project.root, project.uri, mongo_db.name, names, "history")
    alley_files(project, "0001_add_index.py", "0002_backfill_users.py")
    before = foreign(mongo_db, "history")

    missing = project.alley("import-history", "--from", "migrate-mongo")
    assert missing.returncode == USAGE
    assert missing.stderr.splitlines() == [
        f"alley: error: database {mongo_db.name} has no collection 'changelog' (migrate-mongo's "
        "history): nothing to import (pass --collection NAME if the tool was configured "
        "with another one)"
    ]

    dry = project.alley(
        "import-history", "--from", "migrate-mongo", "--collection", "history", "--dry-run"
    )
    assert dry.returncode == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0] == "migrate-mongo history in collection history: 3 entries"
    assert lines[1].split()[:5] == ["would", "import", names[0], "->", "0001_add_index.py"]
    assert lines[2].split()[:5] == ["would", "import", names[1], "->", "0002_backfill_users.py"]
    assert lines[3].split() == [
        "unmatched",
        names[2],
        "no",
        "alley",
        "migration",
        "has",
        "its",
        "id",
        "20240103120000",
        "or",
        "name",
        "'drop_legacy'",
    ]
    assert (
        lines[4] == "2 would import, 0 already recorded, 1 not matched (dry run: nothing written)"
    )
    assert "db_migrations" not in mongo_db.list_collection_names()

    failed = project.alley("import-history", "--from", "migrate-mongo", "--collection", "history")
    assert failed.returncode == INTEGRITY
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"alley: unmatched: {names[2]}: no alley migration has its id 20240103120000 or "
        "name 'drop_legacy'",
        "alley: error: 1 of 3 migrate-mongo entries (collection 'history') do not map to "
        "exactly one alley migration; nothing was imported (give the alley files the ids or "
        "names of the entries, or pass --skip-unmatched to import the others)",
    ]
    assert "db_migrations" not in mongo_db.list_collection_names()

    skipping = project.alley(
        "import-history",
        "--from",
        "migrate-mongo",
        "--collection",
        "history",
        "--skip-unmatched",
        "--json",
    )
    assert skipping.returncode == 0, skipping.output
    report = json.loads(skipping.stdout)
    assert [(e["entry"], e["migration"], e["state"]) for e in report["entries"]] == [
        (names[0], "0001_add_index.py", "imported"),
        (names[1], "0002_backfill_users.py", "imported"),
        (names[2], None, "unmatched"),
    ]
    assert (report["imported"], report["problems"]) == (2, 1)
    assert mongo_db.db_migrations.count_documents({"import_id": report["import_id"]}) == 2
    assert foreign(mongo_db, "history") == before


def test_bad_requests_exit_2_with_one_line(project: Project) -> None:
    alley_files(project, "0001_add_index.py")
    cases = {
        ("import-history", "--from", "flyway"): "alley: error: alley cannot read the history of "
        "'flyway' (--from takes one of: flask-mongoengine-migrations, migrate-mongo, "
        "mongodb-migrations, pymongo-migrate)",
        ("import-history",): "alley: error: give exactly one of --from TOOL or --undo",
        ("import-history", "--undo", "--import-id", "nope"): "alley: error: no records of "
        "import 'nope' (imports with records: none)",
    }
    for args, message in cases.items():
        result: Result = project.alley(*args)
        assert (result.returncode, result.stderr.splitlines()) == (USAGE, [message]), args
    nothing = project.alley("import-history", "--undo")
    assert (nothing.returncode, nothing.stdout) == (0, "nothing to undo: no imported records\n")


def test_an_import_writes_through_whatever_history_store_the_plugins_provide(
    project: Project, mongo_db: Any
) -> None:
    """The records go to the engine's store (here one in memory), never to the
    collection the MongoDB store would use; undo removes them from it."""
    alley_files(project, "0001_add_index.py", "0002_backfill_users.py")
    date = datetime(2019, 5, 1, 8, 30)
    mongo_db.migrations.insert_one({"id": 1, "filename": "0001_add_index.py", "date": date})
    store = MemoryStore()

    class MemoryHistory:
        @hookimpl
        def alley_history_store(self, settings: Settings, db: Any) -> MemoryStore:
            return store

    settings = load_settings({"path": project.root, "url": project.uri}, environ={})
    engine = Engine(settings, plugins=[("memory-history", MemoryHistory())])

    dry = api.import_history(settings, "flask-mongoengine-migrations", dry_run=True, project=engine)
    assert [(line.key, line.filename, line.state) for line in dry.lines] == [
        ("0001_add_index.py", "0001_add_index.py", "would import")
    ]
    assert store.read_records() == []
    report = api.import_history(settings, "flask-mongoengine-migrations", project=engine)

    assert [(line.filename, line.state) for line in report.lines] == [
        ("0001_add_index.py", "imported")
    ]
    (record,) = store.read_records()
    assert (record.filename, record.date) == (
        "0001_add_index.py",
        date.replace(tzinfo=record.date.tzinfo),
    )
    assert record.extra["imported_from"] == "flask-mongoengine-migrations"
    assert "db_migrations" not in mongo_db.list_collection_names()
    statuses = api.status(settings, project=engine).statuses
    assert [s.state.value for s in statuses] == ["applied", "pending"]

    mongo_db.migrations.insert_one({"id": 7, "filename": "0007_gone.py", "date": date})
    with pytest.raises(ImportMismatch):
        api.import_history(settings, "flask-mongoengine-migrations", project=engine)

    undone = api.undo_import(settings, project=engine)
    assert undone.removed == ("0001_add_index.py",)
    assert store.read_records() == []


def test_records_imported_after_alley_applied_one_are_dated_after_it_keeping_the_tools_date(
    project: Project, mongo_db: Any
) -> None:
    """Dates only move forward in a history store (0.0.3's down starts from the newest):
    the report says when a record is dated later than the tool applied it."""
    alley_files(project, "0002_backfill_users.py")
    assert project.alley("up").returncode == 0
    alley_files(project, "0001_add_index.py")  # rewritten from the ancestor's, later
    ran = mongo_db.db_migrations.find_one({"filename": "0002_backfill_users.py"})["date"]
    long_ago = datetime(2019, 5, 1, 8, 30)
    mongo_db.migrations.insert_one({"id": 1, "filename": "0001_add_index.py", "date": long_ago})

    result = project.alley("import-history", "--from", "flask-mongoengine-migrations")

    assert result.returncode == 0, result.output
    record = mongo_db.db_migrations.find_one({"filename": "0001_add_index.py"})
    assert record["date"] > ran
    assert record["imported_applied_at"] == long_ago
    line = result.stdout.splitlines()[1]
    assert line.endswith(
        f"applied 2019-05-01 08:30:00 UTC (recorded {record['date']:%Y-%m-%d %H:%M:%S} UTC)"
    ), line
