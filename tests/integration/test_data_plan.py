"""``alley up --plan`` for steps that use alley's helpers: what they would do, and
nothing written (the whole database is compared before and after)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from typing import Any

from pymongo.database import Database

from alley.api import plan_up
from alley.indexes import IndexResult
from alley.settings import load_settings
from conftest import Project

DB = Database[dict[str, Any]]


def _write(project: Project, filename: str, body: str) -> None:
    (project.folder / filename).write_text(textwrap.dedent(body))


def _dump(db: DB) -> dict[str, Any]:
    """Every collection of the database: its documents and its indexes."""
    return {
        name: {
            "documents": sorted(db[name].find(), key=repr),
            "indexes": sorted(repr(sorted(dict(i).items())) for i in db[name].list_indexes()),
        }
        for name in sorted(db.list_collection_names())
    }


def _users(db: DB) -> None:
    db.users.insert_many(
        [{"first": "A", "last": str(i), "email": f"{i}@x", "at": i} for i in range(7)]
        + [{"first": "B", "last": "b", "full_name": "B b", "email": "b@x"}]
    )
    db.users.create_index([("at", 1)])


BACKFILL_AND_INDEXES = """
    def up(db, step):
        step.backfill(
            "users",
            where={"full_name": {"$exists": False}},
            set={"full_name": {"$concat": ["$first", " ", "$last"]}},
        )
        step.create_index("users", [("email", 1)], unique=True)
        step.create_index("users", [("at", 1)])
        step.drop_index("users", "at_1")
        step.drop_index("users", [("nothing", 1)])


    def down(db, step):
        step.drop_index("users", [("email", 1)])
"""


def test_plan_counts_and_index_lines_and_nothing_written(project: Project, mongo_db: DB) -> None:
    _users(mongo_db)
    _write(project, "0001_backfill.py", BACKFILL_AND_INDEXES)
    project.write("0002_plain.py", up="db.other.insert_one({})")
    before = _dump(mongo_db)
    result = project.alley("up", "--plan")
    assert result.returncode == 7, result.output  # pending: exit 7, as before
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[lines.index("0001_backfill.py") + 1 :][:5] == [
        "backfill users: 7 documents to do",
        "index users email_1: to create",
        "index users at_1: exists",
        "index users at_1: to drop",
        "index users nothing_1: missing",
    ]
    assert lines[lines.index("0002_plain.py") + 1 :] == []  # no step: no helper lines
    assert _dump(mongo_db) == before


def test_large_collections_are_named(project: Project, mongo_db: DB) -> None:
    _users(mongo_db)
    _write(project, "0001_backfill.py", BACKFILL_AND_INDEXES)
    result = project.alley("-o", "large_collection=8", "up", "--plan")
    assert "index users email_1: to create (large collection: ~8 documents)" in result.stdout
    settings = load_settings({"url": project.uri, "path": str(project.root)})
    report = plan_up(settings)
    forecast = report.forecast("0001_backfill.py")
    assert forecast is not None
    index = forecast.actions[1]
    assert isinstance(index, IndexResult)
    assert (index.large, index.documents) == (False, 8)  # default threshold: 1,000,000


def test_conflicts_and_duplicates_are_shown(project: Project, mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a@x", "login": "x"}, {"email": "a@x", "login": "x"}])
    mongo_db.users.create_index([("login", 1)])
    _write(
        project,
        "0001_indexes.py",
        """
        def up(db, step):
            step.create_index("users", [("email", 1)], unique=True)
            step.create_index("users", [("login", 1)], unique=True)


        def down(db, step):
            pass
        """,
    )
    before = _dump(mongo_db)
    lines = [line.strip() for line in project.alley("up", "--plan").stdout.splitlines()]
    email = next(line for line in lines if line.startswith("index users email_1"))
    assert email.startswith("index users email_1: conflicts: cannot build unique index")
    assert "2 documents share email='a@x'" in email
    login = next(line for line in lines if line.startswith("index users login_1"))
    assert login.startswith("index users login_1: conflicts: index login_1 on users exists")
    assert "unique" in login
    assert _dump(mongo_db) == before


def test_a_migration_writing_outside_the_helpers(project: Project, mongo_db: DB) -> None:
    _users(mongo_db)
    _write(
        project,
        "0001_mixed.py",
        """
        def up(db, step):
            step.backfill("users", where={"v": {"$ne": 2}}, update={"$set": {"v": 2}})
            try:
                db.audit.insert_one({"did": "backfill"})  # caught: still not run
            except Exception:
                pass
            db.users.update_many({}, {"$set": {"w": 1}})
            step.create_index("users", [("v", 1)])


        def down(db, step):
            pass
        """,
    )
    before = _dump(mongo_db)
    result = project.alley("up", "--plan")
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "backfill users: 8 documents to do" in lines
    assert "writes outside alley's helpers: not counted (audit.insert_one)" in lines
    assert not any(line.startswith("index users v_1") for line in lines)  # it stopped
    assert _dump(mongo_db) == before


def test_a_step_that_fails_in_its_plan_says_so(project: Project, mongo_db: DB) -> None:
    _write(
        project,
        "0001_fails.py",
        """
        def up(db, step):
            step.backfill("users", where={"x": 1}, set={"y": 1})
            raise KeyError("settings")


        def down(db, step):
            pass
        """,
    )
    lines = [line.strip() for line in project.alley("up", "--plan").stdout.splitlines()]
    assert "backfill users: 0 documents to do" in lines
    assert "stopped planning: KeyError: 'settings'" in lines
    assert "users" not in mongo_db.list_collection_names()


def test_plan_json_has_the_helpers(project: Project, mongo_db: DB) -> None:
    _users(mongo_db)
    _write(project, "0001_backfill.py", BACKFILL_AND_INDEXES)
    project.write("0002_plain.py")
    before = _dump(mongo_db)
    result = project.alley("-o", "large_collection=2", "up", "--plan", "--json")
    data = json.loads(result.stdout)
    first, second = data["steps"]
    assert "helpers" not in second
    helpers = first["helpers"]
    assert helpers["writes_outside_helpers"] == []
    assert helpers["error"] is None
    backfill, email, at, drop, missing = helpers["actions"]
    assert backfill == {
        "kind": "backfill",
        "collection": "users",
        "name": "users#1",
        "documents": 7,
    }
    assert email == {
        "kind": "index",
        "collection": "users",
        "name": "email_1",
        "keys": [["email", 1]],
        "action": "to create",
        "conflict": None,
        "documents": 8,
        "large": True,
    }
    assert (at["action"], drop["action"], missing["action"]) == ("exists", "to drop", "missing")
    assert helpers["lines"][1] == "index users email_1: to create (large collection: ~8 documents)"
    assert _dump(mongo_db) == before


def test_the_read_only_database_reads_and_refuses_every_write(mongo_db: DB) -> None:
    from alley.data import DryRunStop
    from alley.dry_run import PlanRecorder, ReadOnlyDatabase

    mongo_db.users.insert_many([{"n": 1}, {"n": 2}])
    before = _dump(mongo_db)
    recorder = PlanRecorder(large_collection=10)
    db: Any = ReadOnlyDatabase(mongo_db, recorder)
    assert db.users.count_documents({}) == 2
    assert db["users"].find_one({"n": 2})["n"] == 2
    assert [d["n"] for d in db.get_collection("users").find(sort=[("n", 1)])] == [1, 2]
    assert len(list(db.users.aggregate([{"$match": {"n": 1}}]))) == 1
    assert db.command("ping")["ok"]
    assert "users" in db.list_collection_names()
    writes: list[Callable[[], Any]] = [
        lambda: db.users.insert_one({}),
        lambda: db.users.update_many({}, {"$set": {"x": 1}}),
        lambda: db.users.delete_many({}),
        lambda: db.users.create_index("n"),
        db.users.drop,
        lambda: db.users.aggregate([{"$out": "copy"}]),
        lambda: db.command("dropDatabase"),
        lambda: db.drop_collection("users"),
        lambda: db.create_collection("new"),
        lambda: db.client[mongo_db.name].users.insert_one({}),
        lambda: db.client.drop_database(mongo_db.name),
        lambda: db.users.with_options().insert_one({}),
    ]
    for write in writes:
        try:
            write()
        except DryRunStop:
            pass
        else:
            raise AssertionError("a write went through")
    assert len(recorder.refused) == len(writes)
    assert _dump(mongo_db) == before
