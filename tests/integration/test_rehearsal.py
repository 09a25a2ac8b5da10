"""``alley test``: pending migrations rehearsed (up, down, up again) on a throwaway
copy of the database, against the real server.

The sample project has two applied migrations and five pending ones: a ``step``
backfill, an async one and a collection-creating one that are all reversible and
repeatable, a planted *irreversible* one (its ``down`` forgets a field and an index)
and a planted *not repeatable* one (it inserts a document with a fresh ``ObjectId``).
Every test checks that the real database -- every collection, alley's history, lock
and log included -- is byte for byte what it was (raw BSON of each document,
``listIndexes``, the collection names), and that no throwaway database is left.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

from alley.rehearsal import is_throwaway
from alley.testing.server import Credentials, Server, start_server
from conftest import Project, finish, wait_for

OK, MIGRATION_FAILED, INTEGRITY = 0, 1, 6
INTERRUPTED, TERMINATED = 130, 143
DOCS = Path(__file__).parents[2] / "docs" / "rehearsal.md"

APPLIED = {
    "0001_users.py": """
def up(db):
    db.users.create_index("email", unique=True)
    db.users.insert_many([{"_id": i, "email": f"u{i}@example.com", "name": f"u{i}"}
                          for i in range(1, 6)])


def down(db):
    db.users.drop()
""",
    "0002_events.py": """
def up(db):
    db.events.insert_many([{"_id": i, "event": "signup"} for i in range(1, 4)])
    db.orders.insert_many([{"_id": i, "total": i * 10} for i in range(1, 5)])


def down(db):
    db.events.drop()
    db.orders.drop()
""",
}

PENDING = {
    # Good: a batch helper (def up(db, step)) and a plain down.
    "0003_status.py": """
def up(db, step):
    step.backfill(
        "users",
        where={"status": {"$exists": False}},
        transform=lambda user: {"$set": {"status": "active"}},
    )


def down(db):
    db.users.update_many({}, {"$unset": {"status": ""}})
""",
    # Irreversible: down forgets the field and the index it replaced.
    "0004_tiers.py": """
def up(db):
    if "email_1" in db.users.index_information():
        db.users.drop_index("email_1")
    db.users.create_index([("email", 1), ("name", 1)], unique=True)
    db.users.update_many({}, {"$set": {"tier": "free"}})


def down(db):
    db.users.drop_index("email_1_name_1")
""",
    # Not repeatable: a fresh ObjectId each time up runs.
    "0005_audit.py": """
from bson import ObjectId


def up(db):
    db.events.insert_one({"_id": ObjectId(), "event": "migrated"})


def down(db):
    db.events.delete_many({"event": "migrated"})
""",
    # Good: async.
    "0006_flags.py": """
async def up(db):
    await db.flags.insert_one({"_id": "dark_mode", "on": False})


async def down(db):
    await db.flags.drop()
""",
    # Good: a new collection with an index, dropped by down.
    "0007_reports.py": """
def up(db):
    db.create_collection("reports")
    db.reports.create_index("day")


def down(db):
    db.reports.drop()
""",
}


def raw_state(db: Any) -> dict[str, Any]:
    """Every collection of ``db``: its documents as raw BSON in ``_id`` order and its
    ``listIndexes`` output; the collection names are the keys."""
    raw = CodecOptions(document_class=RawBSONDocument)
    return {
        name: (
            [d.raw for d in db.get_collection(name, codec_options=raw).find().sort("_id", 1)],
            [dict(i) for i in db[name].list_indexes()],
        )
        for name in sorted(db.list_collection_names())
    }


def comparable(output: str) -> str:
    """``alley test``'s output without what differs from run to run: times, the
    throwaway database's random part."""
    output = re.sub(r"\d+\.\d\ds", "0.00s", output)
    return re.sub(r"_alley_test_[0-9a-f]{6}", "_alley_test_XXXXXX", output)


def throwaways(db: Any) -> list[str]:
    return [n for n in db.client.list_database_names() if n.startswith(f"{db.name}_alley_test_")]


def sample_project(project: Project, pending: dict[str, str] | None = None) -> None:
    """The applied migrations, applied by alley (so its history, lock and log
    collections exist), then the pending ones written."""
    for filename, source in APPLIED.items():
        (project.folder / filename).write_text(source)
    applied = project.alley("up")
    assert applied.returncode == OK, applied.output
    for filename, source in (PENDING if pending is None else pending).items():
        (project.folder / filename).write_text(source)


@pytest.fixture
def before(project: Project, mongo_db: Any) -> dict[str, Any]:
    sample_project(project)
    state = raw_state(mongo_db)
    assert {"db_migrations", "db_migrations_lock", "db_migrations_log"} <= set(state)
    return state


def test_finds_the_irreversible_and_the_not_repeatable_ones(
    project: Project, mongo_db: Any, before: dict[str, Any]
) -> None:
    result = project.alley("test")

    assert result.returncode == INTEGRITY, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == list(PENDING)
    verdicts = {line.split()[0]: line.split("s  ", 3)[-1] for line in lines[:5]}
    assert verdicts == {
        "0003_status.py": "ok",
        "0004_tiers.py": "IRREVERSIBLE: down left users changed (5 documents), "
        "index users.email_1 missing",
        "0005_audit.py": "NOT REPEATABLE: up again left events changed (2 documents)",
        "0006_flags.py": "ok",
        "0007_reports.py": "ok",
    }
    for line in lines[:5]:  # each phase timed
        assert re.match(r"\S+  up \d+\.\d\ds  down \d+\.\d\ds  up \d+\.\d\ds  [A-Zo]", line), line
    assert lines[5] == (
        "5 rehearsed: 3 ok, 1 irreversible, 1 not repeatable (on a copy of "
        f"{mongo_db.name}: 3 collections, 12 documents, --sample 100)"
    )
    assert lines[6].startswith(f"dropped the throwaway database {mongo_db.name}_alley_test_")
    # docs/rehearsal.md shows this very run (database "shop"), but for times and names.
    shown = DOCS.read_text().split("$ alley test\n", 1)[1].split("```", 1)[0]
    assert comparable(result.stdout.replace(mongo_db.name, "shop")) == comparable(shown)
    assert raw_state(mongo_db) == before
    assert throwaways(mongo_db) == []


def test_json(project: Project, mongo_db: Any, before: dict[str, Any]) -> None:
    result = project.alley("test", "--json")

    assert result.returncode == INTEGRITY, result.output
    data = json.loads(result.stdout)
    assert {m["filename"]: m["result"] for m in data["migrations"]} == {
        "0003_status.py": "ok",
        "0004_tiers.py": "irreversible",
        "0005_audit.py": "not repeatable",
        "0006_flags.py": "ok",
        "0007_reports.py": "ok",
    }
    tiers = data["migrations"][1]
    assert tiers["irreversible"] == ["users changed (5 documents)", "index users.email_1 missing"]
    assert tiers["not_repeatable"] == []
    assert set(tiers["durations_s"]) == {"up", "down", "up_again"}
    assert data["seeded"] == {"events": 3, "orders": 4, "users": 5}
    assert (data["ok"], data["exit_code"], data["kept"]) == (False, INTEGRITY, False)
    assert data["database"] == mongo_db.name
    assert raw_state(mongo_db) == before
    assert throwaways(mongo_db) == []


def test_keep_and_sample(project: Project, mongo_db: Any, before: dict[str, Any]) -> None:
    result = project.alley("test", "--sample", "2", "--keep")

    assert result.returncode == INTEGRITY, result.output
    kept = result.stdout.splitlines()[-1].removeprefix("kept the throwaway database ")
    assert throwaways(mongo_db) == [kept]
    copy = mongo_db.client[kept]
    try:
        # orders: no pending migration touches it: its first 2 documents by _id.
        assert list(copy.orders.find().sort("_id", 1)) == [
            {"_id": 1, "total": 10},
            {"_id": 2, "total": 20},
        ]
        assert copy.users.count_documents({}) == 2
        # The copy is as the rehearsal left it: every pending migration applied once.
        assert copy.reports.index_information().keys() == {"_id_", "day_1"}
        assert copy.users.index_information().keys() == {"_id_", "email_1_name_1"}
        # None of alley's own collections was copied.
        assert not [n for n in copy.list_collection_names() if n.startswith("db_migrations")]
        # The many-databases commands' patterns do not take it for a tenant.
        fleet = project.alley("--databases", f"{mongo_db.name}*", "status", "--json")
        assert fleet.returncode == OK, fleet.output
        assert [d["database"] for d in json.loads(fleet.stdout)["databases"]] == [mongo_db.name]
    finally:
        mongo_db.client.drop_database(kept)
    assert raw_state(mongo_db) == before


def test_sample_0_copies_structure_only(
    project: Project, mongo_db: Any, before: dict[str, Any]
) -> None:
    result = project.alley("test", "--sample", "0", "--json")

    data = json.loads(result.stdout)
    assert set(data["seeded"].values()) == {0}, data["seeded"]
    # No users: the backfill and the $set change nothing; the dropped index still shows.
    tiers = next(m for m in data["migrations"] if m["filename"] == "0004_tiers.py")
    assert tiers["irreversible"] == ["index users.email_1 missing"]
    assert raw_state(mongo_db) == before
    assert throwaways(mongo_db) == []


def test_a_migration_that_raises_stops_the_rehearsal(project: Project, mongo_db: Any) -> None:
    pending = {
        "0003_status.py": PENDING["0003_status.py"],
        "0004_broken.py": """
def up(db):
    db.users.update_many({}, {"$set": {"x": 1}})


def down(db):
    raise RuntimeError("cannot undo x")
""",
        "0005_audit.py": PENDING["0005_audit.py"],
    }
    sample_project(project, pending)
    state = raw_state(mongo_db)

    result = project.alley("test")

    assert result.returncode == MIGRATION_FAILED, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("0003_status.py  up ")
    assert lines[0].endswith("  ok")
    assert lines[1].startswith("0004_broken.py  up ")
    assert "  FAILED (down): RuntimeError: cannot undo x (at " in lines[1], lines[1]
    assert lines[1].endswith("0004_broken.py:7)"), lines[1]
    assert lines[2] == "0005_audit.py  not run (a migration before it failed)"
    assert lines[3].startswith("2 rehearsed: 1 ok, 1 failed, 1 not run (on a copy of ")
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


def test_nothing_pending(project: Project, mongo_db: Any) -> None:
    sample_project(project, {})
    state = raw_state(mongo_db)

    result = project.alley("test")

    assert (result.returncode, result.stdout) == (OK, "nothing to do\n"), result.output
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


WAITING = """
import os, time


def up(db):
    db.users.update_many({{}}, {{"$set": {{"seen": 1}}}})
    open({waiting!r}, "w").close()
    while True:
        time.sleep(0.05)


def down(db):
    db.users.update_many({{}}, {{"$unset": {{"seen": ""}}}})
"""


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, INTERRUPTED), (signal.SIGTERM, TERMINATED)]
)
def test_a_stopped_rehearsal_leaves_no_throwaway_database(
    project: Project, mongo_db: Any, signum: int, code: int
) -> None:
    waiting = project.root / "waiting"
    sample_project(project, {"0003_wait.py": WAITING.format(waiting=str(waiting))})
    state = raw_state(mongo_db)

    rehearsal = project.spawn("test")
    try:
        wait_for(waiting.exists, timeout=60, what="the migration to start")
        assert len(throwaways(mongo_db)) == 1  # it runs on the copy
        rehearsal.send_signal(signum)
        result = finish(rehearsal, timeout=60)
    finally:
        if rehearsal.poll() is None:
            rehearsal.kill()

    assert result.returncode == code, result.output
    assert result.stderr.endswith(
        "terminated (SIGTERM)\n" if signum == signal.SIGTERM else "interrupted\n"
    ), result.stderr
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


def test_a_transactional_migration_is_refused_as_up_refuses_it(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    if server_capabilities.transactions:
        pytest.skip("this server has transactions: up would not refuse")
    transactional = "transaction = True\n\n\ndef up(db):\n    pass\n\n\ndef down(db):\n    pass\n"
    sample_project(project, {"0003_tx.py": transactional})
    state = raw_state(mongo_db)

    rehearsal = project.alley("test")
    up = project.alley("up", "--plan")

    assert rehearsal.returncode == up.returncode == 3, rehearsal.output
    assert rehearsal.stderr == up.stderr
    assert "transaction" in rehearsal.stderr
    assert rehearsal.stdout == ""
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


def test_a_negative_sample_is_a_usage_error(project: Project, mongo_db: Any) -> None:
    sample_project(project)

    result = project.alley("test", "--sample", "-1")

    assert (result.returncode, result.stdout) == (2, ""), result.output
    assert result.stderr == "alley: error: --sample must be 0 or more, not -1\n"
    assert throwaways(mongo_db) == []


def test_from_python(project: Project, mongo_db: Any, before: dict[str, Any]) -> None:
    from alley import api
    from alley.settings import load_settings

    settings = load_settings({"path": project.root, "url": project.uri}, environ={})
    seen: list[str] = []
    report = api.rehearse(settings, sample=1, on_migration=lambda m: seen.append(m.result))

    assert seen == ["ok", "irreversible", "not repeatable", "ok", "ok"]
    assert [m.filename for m in report.irreversible] == ["0004_tiers.py"]
    assert [m.filename for m in report.not_repeatable] == ["0005_audit.py"]
    assert report.exit_code == INTEGRITY
    assert dict(report.seeded) == {"events": 1, "orders": 1, "users": 1}
    assert report.throwaway is not None
    assert report.throwaway.startswith(f"{mongo_db.name}_alley_test_")
    assert raw_state(mongo_db) == before
    assert throwaways(mongo_db) == []


def test_lint_errors_are_refused_as_up_refuses_them(project: Project, mongo_db: Any) -> None:
    old = "def up(db):\n    db.users.save({'_id': 9})\n\n\ndef down(db):\n    pass\n"
    sample_project(project, {"0003_old.py": old})
    state = raw_state(mongo_db)

    refused = project.alley("test")
    up = project.alley("up", "--plan")
    anyway = project.alley("test", "--no-lint")

    assert refused.returncode == up.returncode == 3, refused.output
    assert refused.stderr == up.stderr
    assert "pymongo3-removed" in refused.stderr
    # Without lint it runs, and fails where a real up would fail.
    assert anyway.returncode == MIGRATION_FAILED, anyway.output
    assert anyway.stdout.startswith("0003_old.py  FAILED (up): TypeError: ")
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


IDEMPOTENT = {
    # Declared idempotent, and it is: its where filter skips what it did.
    "0003_cents.py": """
idempotent = True


def up(db, step):
    step.backfill(
        "orders",
        where={"total": {"$exists": True}},
        transform=lambda o: {"$set": {"cents": o["total"] * 100}, "$unset": {"total": ""}},
    )


def down(db, step):
    step.backfill(
        "orders",
        where={"cents": {"$exists": True}},
        transform=lambda o: {"$set": {"total": o["cents"] // 100}, "$unset": {"cents": ""}},
    )
""",
    # Declared idempotent, and it is not: run over its own result, it adds 1 again.
    "0004_bump.py": """
idempotent = True


def up(db):
    db.orders.update_many({}, {"$inc": {"cents": 1}})


def down(db):
    db.orders.update_many({}, {"$inc": {"cents": -1}})
""",
}


def test_a_migration_declared_idempotent_is_run_over_its_own_result(
    project: Project, mongo_db: Any
) -> None:
    sample_project(project, IDEMPOTENT)
    state = raw_state(mongo_db)

    result = project.alley("test")

    assert result.returncode == INTEGRITY, result.output
    lines = result.stdout.splitlines()
    timed = r"  up \d+\.\d\ds  down \d+\.\d\ds  up \d+\.\d\ds  up over itself \d+\.\d\ds  "
    assert re.fullmatch(rf"0003_cents\.py{timed}ok", lines[0]), lines[0]
    assert re.fullmatch(
        rf"0004_bump\.py{timed}NOT IDEMPOTENT: up over its own result left orders changed "
        r"\(4 documents\)",
        lines[1],
    ), lines[1]
    assert lines[2].startswith("2 rehearsed: 1 ok, 1 not idempotent (on a copy of ")
    # docs/rehearsal.md shows this very run (database "shop2").
    shown = DOCS.read_text().split("### Migrations declared idempotent", 1)[1]
    shown = shown.split("$ alley test\n", 1)[1].split("```", 1)[0]
    assert comparable(result.stdout.replace(mongo_db.name, "shop2")) == comparable(shown)
    data = json.loads(project.alley("test", "--json").stdout)
    assert [m["result"] for m in data["migrations"]] == ["ok", "not idempotent"]
    assert data["migrations"][1]["not_idempotent"] == ["orders changed (4 documents)"]
    assert set(data["migrations"][1]["durations_s"]) == {"up", "down", "up_again", "up_over_itself"}
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


def kept_copy(project: Project) -> str:
    """``alley test --keep`` of one no-op pending migration: the kept database's name."""
    result = project.alley("test", "--keep")
    assert result.returncode == OK, result.output
    return result.stdout.splitlines()[-1].removeprefix("kept the throwaway database ")


NOTHING = {"0003_nothing.py": "def up(db):\n    pass\n\n\ndef down(db):\n    pass\n"}


def test_indexes_are_copied(project: Project, mongo_db: Any) -> None:
    sample_project(project, NOTHING)
    mongo_db.logs.create_index([("at", -1), ("level", 1)], name="recent", sparse=True)
    state = raw_state(mongo_db)

    kept = kept_copy(project)
    try:
        copy = mongo_db.client[kept]
        for name in ("logs", "users"):
            assert copy[name].index_information() == mongo_db[name].index_information()
        assert copy.users.index_information()["email_1"].get("unique") is True
        assert "recent" in copy.logs.index_information()
    finally:
        mongo_db.client.drop_database(kept)
    assert raw_state(mongo_db) == state


def test_collection_options_are_copied(project: Project, mongo_db: Any) -> None:
    from pymongo.errors import OperationFailure

    sample_project(project, NOTHING)
    try:
        mongo_db.create_collection("logs", capped=True, size=65536, max=10)
    except OperationFailure as error:
        if "capped collections is not yet implemented" not in str(error):
            raise
        pytest.skip("this server has no capped collections")
    state = raw_state(mongo_db)

    kept = kept_copy(project)
    try:
        options = mongo_db.client[kept].logs.options()
    finally:
        mongo_db.client.drop_database(kept)
    assert (options.get("capped"), options.get("size"), options.get("max")) == (True, 65536, 10)
    assert raw_state(mongo_db) == state


def test_refused_over_many_databases(project: Project, mongo_db: Any) -> None:
    sample_project(project)
    state = raw_state(mongo_db)

    result = project.alley("--databases", f"{mongo_db.name}*", "test")

    assert (result.returncode, result.stdout) == (2, ""), result.output
    assert result.stderr.count("\n") == 1
    assert "'test' works on one database" in result.stderr
    assert raw_state(mongo_db) == state
    assert throwaways(mongo_db) == []


def test_a_large_sample_is_copied_in_batches(project: Project, mongo_db: Any) -> None:
    sample_project(project, NOTHING)
    mongo_db.big.insert_many([{"_id": i, "n": i} for i in range(1050)])
    state = raw_state(mongo_db)

    result = project.alley("test", "--sample", "1025", "--keep", "--json")

    data = json.loads(result.stdout)
    try:
        assert data["seeded"]["big"] == 1025  # a batch of 1000, then 25
        copied = mongo_db.client[data["throwaway"]].big
        assert [d["_id"] for d in copied.find().sort("_id", 1)] == list(range(1025))
    finally:
        mongo_db.client.drop_database(data["throwaway"])
    assert raw_state(mongo_db) == state


# ---------------------------------------------------------------------------
# --server URL: the throwaway database on another server
# ---------------------------------------------------------------------------

HOST_PORT = re.compile(r"\b[\w.-]+:\d+\b")


@pytest.fixture(scope="module")
def second_server(mongodb_server: Server) -> Iterator[Server]:
    """Another server of the same kind as the tests' (about a second to start)."""
    if mongodb_server.kind == "uri":
        pytest.skip("this server is an external one (a URI): no second one can be started")
    server = start_server(kinds=(mongodb_server.kind,))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def other(second_server: Server) -> Iterator[MongoClient[dict[str, Any]]]:
    """A client of the second server; its databases are what they were afterwards."""
    client: MongoClient[dict[str, Any]] = MongoClient(second_server.uri)
    try:
        yield client
    finally:
        client.close()


def address(uri: str) -> str:
    host, port = parse_uri(uri)["nodelist"][0]
    return f"{host}:{port}"


def database_names(client: Any) -> list[str]:
    return sorted(client.list_database_names())


def verdicts(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line.split("s  ", 3)[-1] for line in stdout.splitlines()[:5]}


def test_on_another_server_finds_what_the_same_server_finds(
    project: Project,
    mongo_db: Any,
    before: dict[str, Any],
    second_server: Server,
    other: MongoClient[dict[str, Any]],
) -> None:
    real_names, other_names = database_names(mongo_db.client), database_names(other)
    where = address(second_server.uri)

    elsewhere = project.alley("test", "--server", second_server.uri)

    assert elsewhere.returncode == INTEGRITY, elsewhere.output
    lines = elsewhere.stdout.splitlines()
    assert lines[5] == (
        "5 rehearsed: 3 ok, 1 irreversible, 1 not repeatable (on a copy of "
        f"{mongo_db.name} made on {where}: 3 collections, 12 documents, --sample 100)"
    )
    assert re.fullmatch(
        f"dropped the throwaway database {mongo_db.name}_alley_test_[0-9a-f]{{6}} on {where}",
        lines[6],
    ), lines[6]
    assert len(lines) == 7
    # Nothing was created on the real server, nothing is left on the other one.
    assert database_names(mongo_db.client) == real_names
    assert raw_state(mongo_db) == before
    assert database_names(other) == other_names

    same = project.alley("test")
    assert same.returncode == INTEGRITY, same.output
    assert verdicts(elsewhere.stdout) == verdicts(same.stdout)
    assert "made on" not in same.stdout  # the same server is not named
    assert verdicts(same.stdout)["0004_tiers.py"].startswith("IRREVERSIBLE")
    assert raw_state(mongo_db) == before


def test_on_another_server_keep_and_json(
    project: Project,
    mongo_db: Any,
    before: dict[str, Any],
    second_server: Server,
    other: MongoClient[dict[str, Any]],
) -> None:
    real_names, other_names = database_names(mongo_db.client), database_names(other)

    result = project.alley(
        "test", "--server", second_server.uri, "--keep", "--sample", "2", "--json"
    )

    assert result.returncode == INTEGRITY, result.output
    data = json.loads(result.stdout)
    kept = data["throwaway"]
    try:
        assert (data["server"], data["other_server"], data["kept"]) == (
            address(second_server.uri),
            True,
            True,
        )
        assert {m["filename"]: m["result"] for m in data["migrations"]} == {
            "0003_status.py": "ok",
            "0004_tiers.py": "irreversible",
            "0005_audit.py": "not repeatable",
            "0006_flags.py": "ok",  # async def: on an async client of the other server
            "0007_reports.py": "ok",
        }
        assert data["seeded"] == {"events": 2, "orders": 2, "users": 2}
        # The kept copy is on the other server, as the rehearsal left it.
        assert database_names(other) == sorted([*other_names, kept])
        copy = other[kept]
        assert list(copy.orders.find().sort("_id", 1)) == [
            {"_id": 1, "total": 10},
            {"_id": 2, "total": 20},
        ]
        assert copy.flags.find_one() == {"_id": "dark_mode", "on": False}
        assert copy.users.index_information().keys() == {"_id_", "email_1_name_1"}
        # ... and never was on the real one.
        assert database_names(mongo_db.client) == real_names
    finally:
        other.drop_database(kept)
    assert raw_state(mongo_db) == before


def test_json_names_the_same_server_when_no_other(
    project: Project, mongo_db: Any, before: dict[str, Any], mongodb_server: Server
) -> None:
    data = json.loads(project.alley("test", "--json", "--sample", "0").stdout)

    assert (data["server"], data["other_server"]) == (address(mongodb_server.uri), False)


def test_an_unreachable_server_is_one_line_exit_4_and_nothing_is_written(
    project: Project, mongo_db: Any, before: dict[str, Any]
) -> None:
    """The command docs/rehearsal.md shows, and the line it shows (port 1: nothing
    listens there)."""
    section = DOCS.read_text().split("## On another server: `--server URL`", 1)[1]
    command, shown = section.split("  $ alley ", 1)[1].splitlines()[:2]
    real_names = database_names(mongo_db.client)

    result = project.alley(*shlex.split(command))

    assert command.startswith("--timeout 1 test --server mongodb://ops:s3cret@127.0.0.1:1/")
    assert (result.returncode, result.stdout) == (4, ""), result.output
    assert result.stderr == shown.strip() + "\n"
    assert result.stderr.startswith(
        "alley: error: --server: cannot reach the server at 127.0.0.1:1 "
    )
    assert "s3cret" not in result.stderr
    assert database_names(mongo_db.client) == real_names
    assert raw_state(mongo_db) == before


@pytest.mark.parametrize(
    "url", ["mongodb://ops:s3cret@127.0.0.1:port/", "http://ops:s3cret@example.com/", ""]
)
def test_a_malformed_server_url_is_one_line_exit_3(
    project: Project, mongo_db: Any, before: dict[str, Any], url: str
) -> None:
    real_names = database_names(mongo_db.client)

    result = project.alley("test", "--server", url)

    assert (result.returncode, result.stdout) == (3, ""), result.output
    assert result.stderr.startswith("alley: error: --server: invalid URL '"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "s3cret" not in result.stderr
    assert database_names(mongo_db.client) == real_names
    assert raw_state(mongo_db) == before


def test_on_another_server_from_python(
    project: Project,
    mongo_db: Any,
    before: dict[str, Any],
    second_server: Server,
    other: MongoClient[dict[str, Any]],
) -> None:
    from alley import api
    from alley.settings import load_settings

    real_names, other_names = database_names(mongo_db.client), database_names(other)
    settings = load_settings({"path": project.root, "url": project.uri}, environ={})

    report = api.rehearse(settings, sample=1, server=second_server.uri)

    assert [m.result for m in report.migrations] == [
        "ok",
        "irreversible",
        "not repeatable",
        "ok",
        "ok",
    ]
    assert (report.server, report.other_server) == (address(second_server.uri), True)
    assert database_names(mongo_db.client) == real_names
    assert database_names(other) == other_names
    assert raw_state(mongo_db) == before


def test_the_documented_recipe(
    project: Project, mongo_db: Any, before: dict[str, Any], mongodb_server: Server
) -> None:
    """docs/rehearsal.md's three lines, as they are there, in bash: a background
    server of the tests' kind, a rehearsal on it, the server stopped; ALLEY_URL is
    still the real database's afterwards."""
    page = DOCS.read_text()
    section = page.split("## On another server: `--server URL`", 1)[1]
    recipe = section.split("```bash\n", 1)[1].split("```", 1)[0]
    shown = section.split('$ alley test --server "$REHEARSAL_URL"\n', 1)[1].split("```", 1)[0]
    real_names = database_names(mongo_db.client)
    state_file = project.root / "background-server.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
    env.update(
        ALLEY_URL=project.uri,
        ALLEY_TEST_SERVER=mongodb_server.kind,
        ALLEY_TESTING_STATE_FILE=str(state_file),
        ALLEY_CACHE_DIR=str(project.root / ".alley-cache"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    script = f'{recipe}echo "ALLEY_URL=$ALLEY_URL"\n'
    try:
        ran = subprocess.run(
            ["bash", "-c", script],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:  # the background server never outlives the test
        subprocess.run(
            [sys.executable, "-m", "alley.testing", "--stop"],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )

    output = ran.stdout.splitlines(keepends=True)
    assert output[-1] == f"ALLEY_URL={project.uri}\n", ran.stdout + ran.stderr
    rehearsal = "".join(output[:-1]).replace(mongo_db.name, "shop")
    assert HOST_PORT.sub("HOST:PORT", comparable(rehearsal)) == HOST_PORT.sub(
        "HOST:PORT", comparable(shown)
    ), ran.stdout + ran.stderr
    assert "stopped the background server" in ran.stderr
    assert database_names(mongo_db.client) == real_names
    assert raw_state(mongo_db) == before


def test_on_a_server_with_credentials_the_password_never_shows(
    project: Project,
    mongo_db: Any,
    before: dict[str, Any],
    mongodb_server: Server,
    server_capabilities: Any,
) -> None:
    server_capabilities.require("auth")
    real_names = database_names(mongo_db.client)
    guarded = start_server(
        kinds=(mongodb_server.kind,), credentials=Credentials("ops", "pw-s3cret", "admin")
    )
    try:
        where = address(guarded.uri)
        right = project.alley("test", "--server", guarded.uri, "--sample", "1")
        wrong = project.alley("test", "--server", guarded.uri.replace("pw-s3cret", "nope-s3cret"))
        with MongoClient(guarded.uri) as client:
            left = [n for n in client.list_database_names() if is_throwaway(n)]
    finally:
        guarded.stop()

    assert right.returncode == INTEGRITY, right.output
    assert f"made on {where}:" in right.stdout
    assert "s3cret" not in right.output
    assert left == []
    assert (wrong.returncode, wrong.stdout) == (4, ""), wrong.output
    assert wrong.stderr.startswith(
        f"alley: error: --server: authentication failed for user ops at {where} "
    )
    assert wrong.stderr.endswith(" (check the user, password and authSource in its URL)\n")
    assert wrong.stderr.count("\n") == 1, wrong.stderr
    assert "s3cret" not in wrong.stderr
    assert database_names(mongo_db.client) == real_names
    assert raw_state(mongo_db) == before


def test_a_stopped_rehearsal_on_another_server_drops_its_throwaway_there(
    project: Project,
    mongo_db: Any,
    second_server: Server,
    other: MongoClient[dict[str, Any]],
) -> None:
    waiting = project.root / "waiting"
    sample_project(project, {"0003_wait.py": WAITING.format(waiting=str(waiting))})
    state = raw_state(mongo_db)
    real_names, other_names = database_names(mongo_db.client), database_names(other)

    rehearsal = project.spawn("test", "--server", second_server.uri)
    try:
        wait_for(waiting.exists, timeout=60, what="the migration to start")
        # It runs on the other server's copy; the real server has none.
        running = [n for n in database_names(other) if n not in other_names]
        assert len(running) == 1, running
        assert is_throwaway(running[0]), running
        assert database_names(mongo_db.client) == real_names
        rehearsal.send_signal(signal.SIGTERM)
        result = finish(rehearsal, timeout=60)
    finally:
        if rehearsal.poll() is None:
            rehearsal.kill()

    assert result.returncode == TERMINATED, result.output
    assert database_names(other) == other_names
    assert database_names(mongo_db.client) == real_names
    assert raw_state(mongo_db) == state


# ---------------------------------------------------------------------------
# MongoEngine documents in migrations
# ---------------------------------------------------------------------------

DOCUMENTS = """import mongoengine as me


class Badge(me.Document):
    name = me.StringField(primary_key=True)
    level = me.IntField()
    meta = {"collection": "badges"}


def up(db):
    Badge(name="first", level=1).save()
    Badge.objects(name="first").update(set__level=2)


def down(db):
    Badge.drop_collection()
"""


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same server", "--server"])
def test_mongoengine_documents_in_a_migration_use_the_throwaway_database(
    project: Project, mongo_db: Any, request: pytest.FixtureRequest, elsewhere: bool
) -> None:
    """alley connects MongoEngine's default alias, so migrations use documents; in a
    rehearsal those documents write to the throwaway database, never the real one."""
    sample_project(project, {"0003_badges.py": DOCUMENTS})
    state = raw_state(mongo_db)
    args = ["test", "--keep", "--json"]
    if elsewhere:
        args += ["--server", request.getfixturevalue("second_server").uri]
    client = MongoClient(request.getfixturevalue("second_server").uri) if elsewhere else None

    result = project.alley(*args)

    assert result.returncode == OK, result.output
    data = json.loads(result.stdout)
    assert [m["result"] for m in data["migrations"]] == ["ok"]
    assert raw_state(mongo_db) == state  # no badges collection, no index on the real one
    copy = (client or mongo_db.client)[data["throwaway"]]
    try:
        assert list(copy.badges.find()) == [{"_id": "first", "level": 2}]
    finally:
        (client or mongo_db.client).drop_database(data["throwaway"])
        if client is not None:
            client.close()
    up = project.alley("up")  # afterwards the documents are on the real database again
    assert up.returncode == OK, up.output
    assert list(mongo_db.badges.find()) == [{"_id": "first", "level": 2}]


BEYOND = """def up(db):
    db.client[db.name + "_audit"].log.insert_one({"_id": "migrated"})
    db.marks.insert_one({"_id": 1})


def down(db):
    db.client[db.name + "_audit"].drop_collection("log")
    db.drop_collection("marks")
"""


def test_a_migration_reaching_beyond_db_is_named_before_it_runs(
    project: Project, mongo_db: Any
) -> None:
    """``db.client`` is not redirected: the rehearsal says so, naming the line."""
    sample_project(project, {"0003_audit.py": BEYOND})
    audit = f"{mongo_db.name}_audit"
    try:
        result = project.alley("test")

        assert result.returncode == OK, result.output
        path = project.folder / "0003_audit.py"
        said = "db.client reaches beyond db: what the migration writes through it, the "
        assert result.stderr == (
            f"alley: warning: {path}:2: {said}rehearsal writes for real\n"
            f"alley: warning: {path}:7: {said}rehearsal writes for real\n"
        )
    finally:
        mongo_db.client.drop_database(audit)
