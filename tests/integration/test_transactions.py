"""Transactional migrations (``transaction = True``) against the real server.

On a server without transactions (both CI servers: FerretDB 1.24 and mongo-java-server)
every command that would run a transactional step refuses in its pre-flight, before
anything runs: exit 3, one line, the database as it was, no record, no run-log entry,
no open attempt, the lock free -- and the non-transactional steps planned before it did
not run either.

On a server with transactions (``ALLEY_TEST_MONGODB_URI`` naming a replica set) the
success path is shown: the step's data and its record commit together, and a failure
leaves neither. Elsewhere those tests are skipped with the capability's message.

The session injection itself (every operation through the ``db`` a transactional
migration gets carries the transaction's session) is shown on any server with sessions,
outside a transaction: the commands' ``lsid`` is the session's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from alley.model import HistoryRecord
from alley.transactions import TransactionalDatabase
from alley_plugins.mongo_history import MongoHistoryStore
from conftest import Project

CONFIG, OK, MIGRATION_FAILED = 3, 0, 1

TRANSACTIONAL = "transaction = True\n"


def write_plan(project: Project) -> None:
    """``0001`` (plain, counts), ``0002`` (transactional, inserts into ``items``)."""
    project.counter("0001_plain.py")
    project.write(
        "0002_in_tx.py",
        up="db.items.insert_one({'_id': 'tx'})",
        down="db.items.delete_one({'_id': 'tx'})",
        header=TRANSACTIONAL,
    )


def assert_nothing_ran(
    db: Any, *, records: int = 0, items: int = 0, counters: int = 0, log: int = 0
) -> None:
    """The database as the test left it: no data, records, log entries or open
    attempts beyond what it set up, and the lock free."""
    assert db.counters.count_documents({}) == counters
    assert db.items.count_documents({}) == items
    store = MongoHistoryStore(db)
    assert len(store.read_records()) == records
    assert len(store.read_log()) == log
    assert store.read_open() == []
    state = store.lock_state()
    assert state is None or state.free


def assert_refused(result: Any, filename: str) -> None:
    assert result.returncode == CONFIG, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert filename in lines[0]
    assert "declares transaction = True, but this server cannot run transactions" in lines[0]
    assert "Traceback" not in result.output


def test_up_refuses_before_anything_runs(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    write_plan(project)

    result = project.alley("up")

    if server_capabilities.transactions:  # MongoDB's behaviour: both ran
        assert result.returncode == OK, result.output
        assert_nothing_ran(mongo_db, records=2, items=1, counters=1, log=2)
        return
    assert_refused(result, "0002_in_tx.py")
    assert_nothing_ran(mongo_db)


@pytest.mark.parametrize(
    "command",
    [("status", "--check"), ("up", "--plan"), ("up", "2")],
    ids=["status --check", "up --plan", "up 2"],
)
def test_gates_and_plans_refuse_alike(
    project: Project, mongo_db: Any, server_capabilities: Any, command: tuple[str, ...]
) -> None:
    write_plan(project)

    result = project.alley(*command)

    if server_capabilities.transactions:  # MongoDB's behaviour: the gate passes
        assert result.returncode == OK, result.output
        return
    assert_refused(result, "0002_in_tx.py")
    assert_nothing_ran(mongo_db)
    # A plain status is no pre-flight: it reads, and shows both pending.
    status = project.alley("status")
    assert status.returncode == OK, status.output
    assert "0002_in_tx.py" in status.stdout


def test_up_to_a_plain_step_before_it_runs(project: Project, mongo_db: Any) -> None:
    """The refusal is about the planned steps: ``up 1`` does not plan ``0002``."""
    write_plan(project)

    result = project.alley("up", "1")

    assert result.returncode == OK, result.output
    assert mongo_db.counters.count_documents({}) == 1
    assert [r.filename for r in MongoHistoryStore(mongo_db).read_records()] == ["0001_plain.py"]


def test_down_refuses_before_anything_runs(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    write_plan(project)
    project.counter("0003_plain_after.py")
    # Recorded without running (--fake runs no code, so needs no transaction).
    faked = project.alley("up", "--fake")
    assert faked.returncode == OK, faked.output
    mongo_db.items.insert_one({"_id": "tx"})
    mongo_db.counters.insert_one({"_id": "0003", "n": 1})
    log_before = len(MongoHistoryStore(mongo_db).read_log())

    result = project.alley("down", "--steps", "2")

    if server_capabilities.transactions:  # MongoDB's behaviour: both rolled back
        assert result.returncode == OK, result.output
        assert mongo_db.items.count_documents({}) == 0
        assert len(MongoHistoryStore(mongo_db).read_records()) == 1
        return
    assert_refused(result, "0002_in_tx.py")
    # 0003's down (planned first) did not run: its counter is still 1.
    assert mongo_db.counters.find_one({"_id": "0003"}) == {"_id": "0003", "n": 1}
    assert mongo_db.items.count_documents({}) == 1
    store = MongoHistoryStore(mongo_db)
    assert len(store.read_records()) == 3
    assert len(store.read_log()) == log_before
    assert store.read_open() == []
    state = store.lock_state()
    assert state is not None
    assert state.free

    plan = project.alley("down", "--steps", "2", "--plan")
    assert_refused(plan, "0002_in_tx.py")


def test_redo_refuses_before_anything_runs(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    write_plan(project)
    faked = project.alley("up", "--fake")
    assert faked.returncode == OK, faked.output
    mongo_db.items.insert_one({"_id": "tx"})

    result = project.alley("redo")

    if server_capabilities.transactions:  # MongoDB's behaviour: rolled back, applied again
        assert result.returncode == OK, result.output
        assert mongo_db.items.count_documents({}) == 1
        return
    assert_refused(result, "0002_in_tx.py")
    assert mongo_db.items.count_documents({}) == 1
    store = MongoHistoryStore(mongo_db)
    assert len(store.read_records()) == 2
    assert store.read_open() == []


def test_a_declaration_that_is_not_a_bool_is_refused(project: Project, mongo_db: Any) -> None:
    project.write("0001_x.py", up="db.items.insert_one({})", header="transaction = 'yes'\n")

    result = project.alley("up")

    assert result.returncode == CONFIG, result.output
    assert "transaction must be True or False, not 'yes'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert_nothing_ran(mongo_db)


# -- the session reaches every operation (any server with sessions) ---------------------


class Sessions(monitoring.CommandListener):
    """The ``lsid`` of every command sent, by command name."""

    def __init__(self) -> None:
        self.lsids: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.lsids.append((event.command_name, event.command.get("lsid")))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def watched(mongo_db: Any, mongodb_uri: str) -> Iterator[tuple[Any, Sessions]]:
    listener = Sessions()
    client: MongoClient[Any] = MongoClient(
        mongodb_uri, event_listeners=[listener], serverSelectionTimeoutMS=5000
    )
    try:
        yield client[mongo_db.name], listener
    finally:
        client.close()


def test_every_operation_through_db_carries_the_session(
    watched: tuple[Any, Sessions], server_capabilities: Any
) -> None:
    server_capabilities.require("sessions")
    db, listener = watched
    with db.client.start_session() as session:
        tx = TransactionalDatabase(db, session)
        tx.items.insert_one({"_id": 1, "v": 1})
        tx["items"].insert_many([{"_id": 2, "v": 1}, {"_id": 3, "v": 1}])
        tx.items.update_many({}, {"$set": {"v": 2}})
        tx.get_collection("items").replace_one({"_id": 3}, {"v": 3})
        assert tx.items.find_one({"_id": 1}) == {"_id": 1, "v": 2}
        assert len(list(tx.items.find({"v": 2}))) == 2
        assert tx.items.count_documents({}) == 3
        assert sorted(tx.items.distinct("v")) == [2, 3]
        assert [d["_id"] for d in tx.items.aggregate([{"$sort": {"_id": 1}}])] == [1, 2, 3]
        tx.items.find_one_and_update({"_id": 1}, {"$set": {"v": 4}})
        tx.command("find", "items")
        tx.items.with_options().delete_one({"_id": 3})
        tx.items.database.items.delete_many({"v": 2})
        MongoHistoryStore(db).records_in(session).add_record(
            HistoryRecord(id=1, filename="0001_x.py", date=None)
        )
        lsid = session.session_id
    assert db.items.count_documents({}) == 1
    sent = [(name, found) for name, found in listener.lsids if name != "endSessions"]
    assert len(sent) >= 14
    assert [name for name, found in sent if found != lsid] == []


# -- the success path (a server with transactions) -------------------------------------


def test_a_transactional_step_commits_its_data_and_its_record(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    server_capabilities.require("transactions")
    write_plan(project)

    result = project.alley("up")

    assert result.returncode == OK, result.output
    assert mongo_db.items.find_one({"_id": "tx"}) == {"_id": "tx"}
    filenames = sorted(r.filename for r in MongoHistoryStore(mongo_db).read_records())
    assert filenames == ["0001_plain.py", "0002_in_tx.py"]

    back = project.alley("down")
    assert back.returncode == OK, back.output
    assert mongo_db.items.count_documents({}) == 0
    assert len(MongoHistoryStore(mongo_db).read_records()) == 1


def test_a_failed_transactional_step_leaves_neither_data_nor_record(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    server_capabilities.require("transactions")
    mongo_db.items.insert_one({"_id": "seed"})  # the collection exists
    project.write(
        "0001_in_tx.py",
        up="db.items.insert_one({'_id': 'half'})\nraise RuntimeError('boom')",
        header=TRANSACTIONAL,
    )

    result = project.alley("up")

    assert result.returncode == MIGRATION_FAILED, result.output
    assert mongo_db.items.count_documents({}) == 1
    store = MongoHistoryStore(mongo_db)
    assert store.read_records() == []
    [failed] = store.read_open()
    assert failed.writes == 0
    assert "rolled back" in (failed.error or "")

    # It wrote nothing: fixed, it runs again without --retry.
    project.write("0001_in_tx.py", up="db.items.insert_one({'_id': 'whole'})", header=TRANSACTIONAL)
    again = project.alley("up")
    assert again.returncode == OK, again.output
    assert mongo_db.items.count_documents({"_id": "whole"}) == 1


def test_an_operation_refused_in_a_transaction_fails_the_step_before_it_is_sent(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    server_capabilities.require("transactions")
    mongo_db.items.insert_one({"_id": "seed"})
    project.write(
        "0001_in_tx.py",
        # Silenced: up's lint would refuse it before it runs; this is the run-time guard.
        up="db.items.insert_one({'_id': 'a'})\n"
        "db.items.create_index('v')  # alley: ignore[index-in-transaction]",
        header=TRANSACTIONAL,
    )

    result = project.alley("up")

    assert result.returncode == MIGRATION_FAILED, result.output
    assert "create the index in a migration without a transaction" in result.stderr
    assert mongo_db.items.count_documents({}) == 1
    assert "v_1" not in mongo_db.items.index_information()
