"""The real alley 0.0.3 and today's alley on one database and one migrations folder, in
turns, as during an upgrade rolled out machine by machine.

alley 0.0.3 runs from its own cached environment (Python 3.11, PyMongo 3,
MongoEngine 0.24: ``alley.testing.legacy``), against the session's server; today's
alley runs in-process. Each test alternates the two and checks the data, the records
and what each says.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from alley.testing.legacy import LegacyAlley, LegacyUnavailable, provide_legacy_alley
from conftest import Project

NOTHING_TO_EXECUTE = "All migrations registered, nothing to execute"

Old = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def legacy() -> LegacyAlley:
    try:
        return provide_legacy_alley()
    except LegacyUnavailable as error:  # a machine without Python 3.11: an error, not a skip
        pytest.fail(str(error))


@pytest.fixture
def old(legacy: LegacyAlley, mongodb_server: Any, mongo_db: Any, project: Project) -> Old:
    """``old(*args)``: alley 0.0.3's command on the test's database and project."""
    address = urlsplit(mongodb_server.uri)
    host, port = address.hostname or "127.0.0.1", address.port or 27017
    login: list[str] = []
    if address.username:  # a server with users: 0.0.3's own -u/-w/-a
        source = dict(parse_qsl(address.query)).get("authSource", "admin")
        login = ["-u", unquote(address.username), "-w", unquote(address.password or "")]
        login += ["-a", source]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = legacy.run(mongo_db.name, host, port, project.root, *args, login=login)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return run


def counters(db: Any) -> dict[str, int]:
    return {doc["_id"]: doc["n"] for doc in db.counters.find()}


def recorded(db: Any) -> list[str]:
    return sorted(doc["filename"] for doc in db.db_migrations.find())


def ok(project: Project, *args: str) -> str:
    result = project.alley(*args)
    assert result.returncode == 0, result.output
    return result.output


def applied_apart_by_003(old: Old) -> None:
    """0001 and 0002 applied by alley 0.0.3 in two runs. 0.0.3 rolls back from the
    record with the newest date; two records of one run may share a millisecond (the
    server's precision), and then it may start from 0001 and leave 0002 applied."""
    old("up", "1")
    old("up", "2")


def write(project: Project, *filenames: str) -> None:
    for filename in filenames:
        project.counter(filename)


def test_turns_of_003_and_alley_on_one_database(project: Project, mongo_db: Any, old: Old) -> None:
    write(project, "0001_a.py", "0002_b.py", "0003_c.py")

    old("up", "2")
    assert recorded(mongo_db) == ["0001_a.py", "0002_b.py"]
    ok(project, "up", "3")
    assert counters(mongo_db) == {"0001": 1, "0002": 1, "0003": 1}
    assert NOTHING_TO_EXECUTE in old("status").stderr  # 0.0.3 reads alley's record

    old("down", "2")  # 0.0.3 rolls back alley's 0003, then its own 0002
    assert counters(mongo_db) == {"0001": 1, "0002": 0, "0003": 0}
    assert recorded(mongo_db) == ["0001_a.py"]
    status = ok(project, "status")
    assert "applied   0001_a.py" in status
    assert "pending   0002_b.py" in status
    assert "pending   0003_c.py" in status

    ok(project, "up")
    assert counters(mongo_db) == {"0001": 1, "0002": 1, "0003": 1}
    created = old("create", "d")
    assert "0004_d.py" in created.stderr
    assert "pending   0004_d.py" in ok(project, "status")
    assert "0004_d.py" in ok(project, "up")
    assert NOTHING_TO_EXECUTE in old("status").stderr

    old("down", "1")  # from the newest-dated record, alley's 0004, down to 0001
    assert counters(mongo_db) == {"0001": 0, "0002": 0, "0003": 0}
    assert recorded(mongo_db) == []
    assert "0 applied, 4 pending" in ok(project, "status")
    assert "4 migrations applied" in ok(project, "up")
    assert NOTHING_TO_EXECUTE in old("status").stderr


def test_alley_dates_its_records_after_a_003_record_dated_by_a_clock_ahead(
    project: Project, mongo_db: Any, old: Old
) -> None:
    write(project, "0001_a.py", "0002_b.py", "0003_c.py")
    old("up", "1")
    # As 0.0.3 on a client whose clock is two minutes fast would have dated it.
    ahead = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=120)
    mongo_db.db_migrations.update_one({"filename": "0001_a.py"}, {"$set": {"date": ahead}})

    ok(project, "up")

    dates = {d["filename"]: d["date"] for d in mongo_db.db_migrations.find()}
    assert ahead < dates["0002_b.py"] < dates["0003_c.py"], dates
    old("down", "2")  # from alley's 0003, the newest-dated, down to 0002
    assert counters(mongo_db) == {"0001": 1, "0002": 0, "0003": 0}
    assert recorded(mongo_db) == ["0001_a.py"]
    ok(project, "up")
    old("down", "1")
    assert recorded(mongo_db) == []
    assert counters(mongo_db) == {"0001": 0, "0002": 0, "0003": 0}


def test_a_step_alley_left_interrupted_then_003_applied_counts_as_applied(
    project: Project, mongo_db: Any, old: Old
) -> None:
    from alley.model import Direction, Event, Holder, LogEntry
    from alley_plugins.mongo_history import MongoHistoryStore

    write(project, "0001_a.py", "0002_b.py")
    ok(project, "up", "1")
    # What an alley run killed while it ran 0002 leaves: its attempt, open.
    dead = Holder("dead0002run", "gone", 4242, "ops", "0.1", "up")
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    MongoHistoryStore(mongo_db).open_attempts(
        [LogEntry(f"up:0002_b.py:{dead.run_id}", Event.STARTED, 2, "0002_b.py",
                  Direction.UP, started, dead)]
    )  # fmt: skip
    interrupted = project.alley("status")
    assert "INTERRUPTED during up at 2026-01-02 03:04:05 UTC" in interrupted.output
    assert project.alley("up").returncode == 6

    old("up")  # 0.0.3 knows nothing of attempts: it runs 0002 and records it

    assert counters(mongo_db) == {"0001": 1, "0002": 1}
    note = (
        "0002_b.py: its interrupted step was since recorded as applied "
        "(by alley 0.0.3 or another tool)"
    )
    status = ok(project, "status")
    assert "INTERRUPTED" not in status
    assert "applied   0002_b.py" in status
    assert note in status
    up = ok(project, "up")
    assert f"{note}; closed" in up
    assert "nothing to do" in up
    assert mongo_db.db_migrations_open.count_documents({}) == 0
    assert "ok" in ok(project, "verify")
    history = ok(project, "history", "2")
    assert "interrupted" in history
    assert "marked-applied" in history
    assert counters(mongo_db) == {"0001": 1, "0002": 1}


def test_mark_applied_leaves_a_003_record_byte_identical(
    project: Project, mongo_db: Any, old: Old
) -> None:
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    write(project, "0001_a.py", "0002_b.py")
    applied_apart_by_003(old)
    raw = mongo_db.get_collection(
        "db_migrations", codec_options=CodecOptions(document_class=RawBSONDocument)
    )

    def records() -> list[bytes]:
        return sorted(doc.raw for doc in raw.find())

    before = records()

    ok(project, "mark", "1", "--applied")
    ok(project, "mark", "2", "--applied")

    assert records() == before
    assert "marked-applied" in ok(project, "history")
    old("down", "1")
    assert recorded(mongo_db) == []


def test_accepting_an_edit_keeps_the_records_date_so_003_rolls_back_from_the_newest(
    project: Project, mongo_db: Any, old: Old
) -> None:
    write(project, "0001_a.py", "0002_b.py", "0003_c.py")
    ok(project, "up")
    before = {d["filename"]: d["date"] for d in mongo_db.db_migrations.find()}
    path: Path = project.folder / "0001_a.py"
    path.write_text(path.read_text() + "\nEDITED = True\n")
    assert "file changed since applied" in ok(project, "status")

    ok(project, "mark", "1", "--applied")

    assert "file changed" not in ok(project, "status")
    after = {d["filename"]: d["date"] for d in mongo_db.db_migrations.find()}
    assert after == before
    old("down", "2")  # still from 0003, the newest-dated
    assert recorded(mongo_db) == ["0001_a.py"]
    assert counters(mongo_db) == {"0001": 1, "0002": 0, "0003": 0}


def test_accepting_a_rename_of_a_003_record_keeps_its_id_and_date(
    project: Project, mongo_db: Any, old: Old
) -> None:
    write(project, "0001_a.py", "0002_b.py")
    applied_apart_by_003(old)
    before = mongo_db.db_migrations.find_one({"filename": "0001_a.py"})
    (project.folder / "0001_a.py").rename(project.folder / "0001_first.py")
    assert "renamed: recorded as 0001_a.py" in ok(project, "status")

    ok(project, "mark", "1", "--applied")

    after = mongo_db.db_migrations.find_one({"id": 1})
    assert (after["filename"], after["id"], after["date"]) == ("0001_first.py", 1, before["date"])
    assert recorded(mongo_db) == ["0001_first.py", "0002_b.py"]
    assert NOTHING_TO_EXECUTE in old("status").stderr  # 0.0.3 finds it under its new name
    old("down", "1")  # from 0002, still the newest-dated
    assert recorded(mongo_db) == []
    assert counters(mongo_db) == {"0001": 0, "0002": 0}
