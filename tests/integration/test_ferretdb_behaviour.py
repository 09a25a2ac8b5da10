"""What the test server does that matters to alley's lock and history.

Written to document FerretDB 1.24 (SQLite backend), the server the tests get when there
is no MongoDB. The tests key on the server's capabilities (``server_capabilities``, the
table in ``alley.testing.capabilities``, each row measured by
``test_server_capabilities.py``), never on which server it is: a server lacking a
capability shows FerretDB's behaviour, one having it MongoDB's. The numbers of the
concurrency races are printed (run with ``-s``) and recorded in ``docs/testing.md``.
"""

from __future__ import annotations

import datetime
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from bson import Timestamp
from pymongo import MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import ConfigurationError, DuplicateKeyError, OperationFailure, PyMongoError

from alley.testing import Capabilities, Server

pytestmark = pytest.mark.server

Db = Database[dict[str, Any]]
Client = MongoClient[dict[str, Any]]
T = TypeVar("T")

RACERS = 16
CAS_ROUNDS = 10


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _race(uri: str, action: Callable[[Client, int], T]) -> list[T | PyMongoError]:
    """Run ``action(client, i)`` in RACERS threads, each with its own client, all at once."""
    clients: list[Client] = [MongoClient(uri, serverSelectionTimeoutMS=5000) for _ in range(RACERS)]
    for client in clients:
        client.admin.command("ping")  # connect before the start line
    barrier = threading.Barrier(RACERS)
    results: list[T | PyMongoError | None] = [None] * RACERS

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(clients[i], i)
        except PyMongoError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()
    assert all(not t.is_alive() for t in threads)
    return [r for r in results if r is not None]


def _outcomes(results: list[Any]) -> Counter[str]:
    def name(result: Any) -> str:
        if isinstance(result, DuplicateKeyError):
            return "E11000"
        if isinstance(result, PyMongoError):
            return type(result).__name__
        return "ok"

    return Counter(name(r) for r in results)


# ------------------------------------------------------------------ indexes, updates


def test_unique_index_rejects_a_duplicate_value(mongo_db: Db) -> None:
    mongo_db.c.create_index("k", unique=True)
    mongo_db.c.insert_one({"k": 1})
    with pytest.raises(DuplicateKeyError) as excinfo:
        mongo_db.c.insert_one({"k": 1})
    assert excinfo.value.code == 11000
    assert mongo_db.c.index_information()["k_1"]["unique"] is True


def test_unique_index_and_missing_fields(mongo_db: Db, server_capabilities: Capabilities) -> None:
    """MongoDB indexes a missing field as null; FerretDB (SQLite) lets many lack it."""
    missing_is_null = server_capabilities.unique_index_rejects_missing_field_duplicates
    mongo_db.c.create_index("k", unique=True)
    mongo_db.c.insert_one({"other": 1})
    if missing_is_null:
        with pytest.raises(DuplicateKeyError):
            mongo_db.c.insert_one({"other": 2})
    else:
        mongo_db.c.insert_one({"other": 2})  # FerretDB issue 2830
        assert mongo_db.c.count_documents({}) == 2
    # An explicit null is indexed everywhere: on MongoDB the missing field already took
    # the null key; on FerretDB the first explicit null does.
    if not missing_is_null:
        mongo_db.c.insert_one({"k": None})
    with pytest.raises(DuplicateKeyError):
        mongo_db.c.insert_one({"k": None})


def test_find_and_modify_upsert(mongo_db: Db) -> None:
    """The lock's acquire: the first upsert inserts; a non-matching one hits E11000."""
    lock = mongo_db.lock
    first = lock.find_one_and_update(
        {"_id": "lock", "owner": None},
        {"$set": {"owner": "a"}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert first == {"_id": "lock", "owner": "a"}
    with pytest.raises(DuplicateKeyError) as excinfo:
        lock.find_one_and_update(
            {"_id": "lock", "owner": None}, {"$set": {"owner": "b"}}, upsert=True
        )
    assert excinfo.value.code == 11000
    released = lock.find_one_and_update(
        {"_id": "lock", "owner": "a"},
        {"$set": {"owner": None}},
        return_document=ReturnDocument.AFTER,
    )
    assert released == {"_id": "lock", "owner": None}


def test_current_date_sets_server_time(mongo_db: Db) -> None:
    mongo_db.c.insert_one({"_id": 1})
    before = _now() - datetime.timedelta(seconds=5)
    mongo_db.c.update_one(
        {"_id": 1},
        {"$currentDate": {"at": True, "date": {"$type": "date"}, "ts": {"$type": "timestamp"}}},
    )
    after = _now() + datetime.timedelta(seconds=5)
    doc = mongo_db.c.find_one({"_id": 1})
    assert doc is not None
    assert before <= doc["at"] <= after
    assert before <= doc["date"] <= after
    assert isinstance(doc["ts"], Timestamp)


@pytest.mark.requires("hello")
def test_hello_reports_local_time(mongo_client: Client) -> None:
    hello = mongo_client.admin.command("hello")
    assert abs(hello["localTime"] - _now()) < datetime.timedelta(seconds=30)
    assert hello["isWritablePrimary"] is True


def test_ttl_index(mongo_db: Db, server_capabilities: Capabilities) -> None:
    if server_capabilities.ttl_index:
        mongo_db.c.create_index("at", expireAfterSeconds=60)
        assert mongo_db.c.index_information()["at_1"]["expireAfterSeconds"] == 60
    else:
        with pytest.raises(OperationFailure) as excinfo:
            mongo_db.c.create_index("at", expireAfterSeconds=60)
        assert excinfo.value.code == 238  # NotImplemented (FerretDB)
        assert "expireAfterSeconds" in str(excinfo.value)


def test_transactions(
    mongo_client: Client, mongo_db: Db, server_capabilities: Capabilities
) -> None:
    """FerretDB 1.x and a standalone mongod have no transactions; a replica set has.
    mongo-java-server has no sessions at all (the driver refuses to start one)."""

    def insert(session: Any) -> None:
        mongo_db.tx.insert_one({"_id": 1}, session=session)

    if not server_capabilities.sessions:
        with (
            pytest.raises(ConfigurationError, match="Sessions are not supported"),
            mongo_client.start_session() as session,
        ):
            insert(session)
        assert mongo_db.tx.find_one({"_id": 1}) is None
        return
    with mongo_client.start_session() as session:
        if server_capabilities.transactions:
            session.with_transaction(insert)
            assert mongo_db.tx.find_one({"_id": 1}) == {"_id": 1}
            return
        with pytest.raises(OperationFailure) as excinfo:
            session.with_transaction(insert)
    # FerretDB refuses the first operation carrying startTransaction (FailedToParse, 9),
    # so nothing runs unprotected; a standalone mongod says IllegalOperation (20).
    assert excinfo.value.code in {9, 20}, excinfo.value
    if excinfo.value.code == 9:
        assert "startTransaction" in str(excinfo.value)
    assert mongo_db.tx.find_one({"_id": 1}) is None


def test_end_sessions(mongodb_server: Server) -> None:
    """MongoDB and mongo-java-server answer endSessions; FerretDB 1.24 does not know it
    (CommandNotFound, 59). Either way the client goes on (pymongo ignores it on close)."""
    client: Client = MongoClient(mongodb_server.uri, serverSelectionTimeoutMS=5000)
    try:
        try:
            answer: Any = client.admin.command("endSessions", [])
        except OperationFailure as exc:
            answer = exc
        if isinstance(answer, OperationFailure):
            assert answer.code == 59, answer  # CommandNotFound
        else:
            assert answer["ok"] == 1
        client.admin.command("ping")
    finally:
        client.close()  # pymongo ignores endSessions errors on close


# ----------------------------------------------------------------------- concurrency


def test_concurrent_insert_of_one_id_has_one_winner(mongodb_server: Server, mongo_db: Db) -> None:
    name = mongo_db.name

    def insert(client: Client, i: int) -> str:
        client[name].race.insert_one({"_id": "only", "by": i})
        return "ok"

    outcomes = _outcomes(_race(mongodb_server.uri, insert))
    print(f"\nobserved: {RACERS} racers inserting one _id: {dict(outcomes)}")
    assert outcomes == Counter({"ok": 1, "E11000": RACERS - 1})
    assert mongo_db.race.count_documents({}) == 1


def test_concurrent_compare_and_swap(
    mongodb_server: Server, mongo_db: Db, server_capabilities: Capabilities
) -> None:
    """find_one_and_update({owner: None}) → {owner: me}: MongoDB has one winner.

    On FerretDB's SQLite backend the filter is applied in Go and the write is by _id
    without re-checking it (FerretDB issue 3040), so more than one racer may "win".
    """
    name = mongo_db.name
    winners_per_round: list[int] = []
    for round_ in range(CAS_ROUNDS):
        mongo_db.cas.replace_one({"_id": 1}, {"_id": 1, "owner": None}, upsert=True)

        def grab(client: Client, i: int, round_: int = round_) -> bool:
            won = client[name].cas.find_one_and_update(
                {"_id": 1, "owner": None}, {"$set": {"owner": f"{round_}-{i}"}}
            )
            return won is not None

        results = _race(mongodb_server.uri, grab)
        assert not [r for r in results if isinstance(r, PyMongoError)], results
        winners = sum(1 for r in results if r is True)
        winners_per_round.append(winners)
        final = mongo_db.cas.find_one({"_id": 1})
        assert final is not None
        assert final["owner"] is not None
    print(
        f"\nobserved: {RACERS} racers x {CAS_ROUNDS} rounds of CAS via findAndModify on "
        f"{mongodb_server.description}: winners per round {winners_per_round}"
    )
    assert all(w >= 1 for w in winners_per_round)
    if server_capabilities.atomic_compare_and_swap:
        assert winners_per_round == [1] * CAS_ROUNDS


def test_concurrent_upserts_of_one_id(mongodb_server: Server, mongo_db: Db) -> None:
    """One racer inserts; the rest match the new document or get E11000."""
    name = mongo_db.name

    def upsert(client: Client, i: int) -> str:
        result = client[name].up.update_one(
            {"_id": "one"}, {"$setOnInsert": {"by": i}, "$inc": {"n": 1}}, upsert=True
        )
        return "inserted" if result.upserted_id is not None else "matched"

    results = _race(mongodb_server.uri, upsert)
    outcomes = _outcomes(results)
    kinds = Counter(r for r in results if isinstance(r, str))
    doc = mongo_db.up.find_one({"_id": "one"})
    print(
        f"\nobserved: {RACERS} racers upserting one _id: inserted={kinds['inserted']} "
        f"matched={kinds['matched']} E11000={outcomes['E11000']} final n={doc and doc['n']}"
    )
    assert doc is not None
    assert kinds["inserted"] == 1
    assert kinds["inserted"] + kinds["matched"] + outcomes["E11000"] == RACERS
    # FerretDB does not retry a colliding upsert (MongoDB >= 4.2 does): losers of the
    # insert get E11000, the later ones match. How many of each depends on timing.
    # Only successful increments count; FerretDB may also lose some (read-modify-write).
    assert 1 <= doc["n"] <= kinds["inserted"] + kinds["matched"]


def test_concurrent_increments(
    mongodb_server: Server, mongo_db: Db, server_capabilities: Capabilities
) -> None:
    """$inc on one document from many clients: MongoDB loses none."""
    name = mongo_db.name
    mongo_db.counter.insert_one({"_id": 1, "n": 0})
    per_racer = 10

    def increment(client: Client, i: int) -> int:
        for _ in range(per_racer):
            client[name].counter.update_one({"_id": 1}, {"$inc": {"n": 1}})
        return per_racer

    results = _race(mongodb_server.uri, increment)
    assert not [r for r in results if isinstance(r, PyMongoError)], results
    doc = mongo_db.counter.find_one({"_id": 1})
    assert doc is not None
    print(f"\nobserved: {RACERS} racers x {per_racer} $inc: n={doc['n']} of {RACERS * per_racer}")
    assert 1 <= doc["n"] <= RACERS * per_racer
    if server_capabilities.atomic_increments:
        assert doc["n"] == RACERS * per_racer
