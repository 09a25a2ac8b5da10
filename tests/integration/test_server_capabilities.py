"""Each row of alley.testing's capability table, measured on the running server.

One test per capability (``test_<name>``): it measures the capability on the session's
server and asserts the measurement equals ``mongodb_server.capabilities`` (for a server
alley could not identify, whose row is a conservative guess: that nothing is claimed
that the server lacks). ``docs/testing.md`` names these tests beside the table.
"""

from __future__ import annotations

import datetime
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import (
    ConfigurationError,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    WriteError,
)

from alley.testing import Capabilities, Credentials, Server, ServerUnavailable, start_server

pytestmark = pytest.mark.server

Db = Database[dict[str, Any]]
Client = MongoClient[dict[str, Any]]

RACERS = 8
INCREMENTS = 10  # per racer: 8 x 10 $inc, 80 iff no increment is lost
CAS_ROUNDS = 20
TTL_WAIT_CLAIMED = 75.0  # MongoDB's TTL monitor runs every 60 s
TTL_WAIT_UNCLAIMED = 3.0


def _check(capabilities: Capabilities, name: str, measured: bool, detail: str = "") -> None:
    claimed = capabilities.has(name)
    print(f"\nmeasured {name} on {capabilities.server}: {measured} {detail}".rstrip())
    if capabilities.exact:
        assert measured == claimed, (
            f"{capabilities.server}: the table says {name}={claimed}, measured {measured} {detail}"
        )
    else:
        assert measured or not claimed, f"{name} is claimed but not there {detail}"


class Racers:
    """RACERS threads, each with its own client, released together by a barrier."""

    def __init__(self, uri: str) -> None:
        self.clients: list[Client] = [
            MongoClient(uri, serverSelectionTimeoutMS=5000, maxPoolSize=1) for _ in range(RACERS)
        ]
        for client in self.clients:
            client.admin.command("ping")  # connected before the start line

    def race(self, action: Callable[[Client, int], Any]) -> list[Any]:
        barrier = threading.Barrier(RACERS)
        results: list[Any] = [None] * RACERS

        def run(i: int) -> None:
            barrier.wait()
            try:
                results[i] = action(self.clients[i], i)
            except PyMongoError as exc:
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not [t for t in threads if t.is_alive()], "a racer hung"
        errors = [r for r in results if isinstance(r, PyMongoError)]
        assert not errors, errors
        return results

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def racers(mongodb_server: Server) -> Iterator[Racers]:
    group = Racers(mongodb_server.uri)
    try:
        yield group
    finally:
        group.close()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------- tests


def test_every_capability_has_a_measuring_test() -> None:
    module = sys.modules[__name__]
    untested = [name for name in Capabilities.names() if not hasattr(module, f"test_{name}")]
    assert not untested


def test_atomic_compare_and_swap(
    mongo_db: Db, racers: Racers, server_capabilities: Capabilities
) -> None:
    """Rounds of RACERS x find_one_and_update({owner: None}) -> {owner: me}: one winner each.

    A non-atomic server shows a round with several winners; the rounds stop there.
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

        winners_per_round.append(sum(1 for won in racers.race(grab) if won is True))
        if winners_per_round[-1] != 1:
            break
    assert all(w >= 1 for w in winners_per_round), winners_per_round
    atomic = winners_per_round == [1] * CAS_ROUNDS
    _check(
        server_capabilities,
        "atomic_compare_and_swap",
        atomic,
        f"(winners per round {winners_per_round})",
    )


def test_atomic_increments(mongo_db: Db, racers: Racers, server_capabilities: Capabilities) -> None:
    """RACERS x INCREMENTS ``$inc`` on one document: all counted iff atomic (3 tries)."""
    name = mongo_db.name
    expected = RACERS * INCREMENTS
    counts: list[int] = []
    for attempt in range(3):
        mongo_db.counter.replace_one({"_id": attempt}, {"_id": attempt, "n": 0}, upsert=True)

        def increment(client: Client, i: int, attempt: int = attempt) -> None:
            for _ in range(INCREMENTS):
                client[name].counter.update_one({"_id": attempt}, {"$inc": {"n": 1}})

        racers.race(increment)
        doc = mongo_db.counter.find_one({"_id": attempt})
        assert doc is not None
        counts.append(doc["n"])
        if doc["n"] != expected:
            break
    _check(
        server_capabilities,
        "atomic_increments",
        counts == [expected] * 3,
        f"(n = {counts} of {expected})",
    )


def test_unique_index_rejects_missing_field_duplicates(
    mongo_db: Db, server_capabilities: Capabilities
) -> None:
    mongo_db.c.create_index("k", unique=True)
    mongo_db.c.insert_one({"other": 1})
    try:
        mongo_db.c.insert_one({"other": 2})
    except DuplicateKeyError:
        rejected = True
    else:
        rejected = False
    _check(server_capabilities, "unique_index_rejects_missing_field_duplicates", rejected)


def test_sessions(mongo_client: Client, mongo_db: Db, server_capabilities: Capabilities) -> None:
    try:
        with mongo_client.start_session() as session:
            mongo_db.s.insert_one({"_id": 1}, session=session)
            found = mongo_db.s.find_one({"_id": 1}, session=session)
    except (ConfigurationError, OperationFailure) as exc:
        _check(server_capabilities, "sessions", False, f"({type(exc).__name__}: {exc})")
        return
    _check(server_capabilities, "sessions", found == {"_id": 1})


def test_transactions(
    mongo_client: Client, mongo_db: Db, server_capabilities: Capabilities
) -> None:
    """A committed transaction's write is there; an aborted one's is not."""
    mongo_db.create_collection("tx")

    def insert(session: Any) -> None:
        mongo_db.tx.insert_one({"_id": "committed"}, session=session)

    try:
        with mongo_client.start_session() as session:
            session.with_transaction(insert)
            with session.start_transaction():
                mongo_db.tx.insert_one({"_id": "aborted"}, session=session)
                session.abort_transaction()
    except (ConfigurationError, OperationFailure) as exc:
        _check(server_capabilities, "transactions", False, f"({type(exc).__name__}: {exc})")
        return
    ids = sorted(doc["_id"] for doc in mongo_db.tx.find())
    _check(server_capabilities, "transactions", ids == ["committed"], f"(documents {ids})")


def test_change_streams(mongo_db: Db, server_capabilities: Capabilities) -> None:
    mongo_db.create_collection("cs")
    seen: list[Any] = []
    try:
        with mongo_db.cs.watch(max_await_time_ms=200) as stream:
            mongo_db.cs.insert_one({"_id": 1})
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                change = stream.try_next()
                if change is not None:
                    seen.append(change["documentKey"])
    except OperationFailure as exc:
        _check(server_capabilities, "change_streams", False, f"({exc})")
        return
    _check(server_capabilities, "change_streams", seen == [{"_id": 1}], f"(seen {seen})")


def test_ttl_index(mongo_db: Db, server_capabilities: Capabilities) -> None:
    try:
        mongo_db.c.create_index("at", expireAfterSeconds=60)
    except OperationFailure as exc:
        _check(server_capabilities, "ttl_index", False, f"(code {exc.code}: {exc})")
        return
    info = mongo_db.c.index_information()["at_1"]
    _check(server_capabilities, "ttl_index", info.get("expireAfterSeconds") == 60, f"({info})")


def test_ttl_expiry(mongo_db: Db, server_capabilities: Capabilities) -> None:
    """A document an hour past a TTL index's expiry is deleted (within 75 s: MongoDB's TTL
    monitor wakes every 60 s; a server not claiming expiry is watched for 3 s)."""
    try:
        mongo_db.c.create_index("at", expireAfterSeconds=0)
    except OperationFailure as exc:
        _check(server_capabilities, "ttl_expiry", False, f"(no TTL index: {exc})")
        return
    mongo_db.c.insert_one({"_id": 1, "at": _now() - datetime.timedelta(hours=1)})
    wait = TTL_WAIT_CLAIMED if server_capabilities.ttl_expiry else TTL_WAIT_UNCLAIMED
    started = time.monotonic()
    while mongo_db.c.count_documents({}) and time.monotonic() - started < wait:
        time.sleep(0.5)
    expired = mongo_db.c.count_documents({}) == 0
    _check(
        server_capabilities, "ttl_expiry", expired, f"(watched {time.monotonic() - started:.0f} s)"
    )


def test_json_schema(mongo_db: Db, server_capabilities: Capabilities) -> None:
    try:
        mongo_db.create_collection("v", validator={"$jsonSchema": {"required": ["a"]}})
    except OperationFailure as exc:
        _check(server_capabilities, "json_schema", False, f"(validator refused: {exc.code})")
        return
    try:
        mongo_db.v.insert_one({"b": 1})
    except WriteError as exc:
        _check(server_capabilities, "json_schema", exc.code == 121, f"(code {exc.code})")
        return
    _check(server_capabilities, "json_schema", False, "(a document breaking it was inserted)")


def test_hello(mongo_client: Client, server_capabilities: Capabilities) -> None:
    try:
        hello = mongo_client.admin.command("hello")
    except OperationFailure as exc:
        _check(server_capabilities, "hello", False, f"({exc})")
        return
    local_time = hello.get("localTime")
    answered = (
        hello.get("isWritablePrimary") is True
        and isinstance(local_time, datetime.datetime)
        and abs(local_time - _now()) < datetime.timedelta(seconds=30)
    )
    _check(server_capabilities, "hello", answered, f"({hello})")


def test_auth(mongodb_server: Server, server_capabilities: Capabilities) -> None:
    """A server of this kind given a user: the right password works, a wrong one → 18."""
    credentials = Credentials("alley_capability", "right-pw", "admin")
    try:
        server = start_server(
            kinds=(mongodb_server.kind,), credentials=credentials, build=False, log=print
        )
    except ServerUnavailable as exc:
        _check(server_capabilities, "auth", False, f"({exc})")
        return
    try:
        good: Client = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
        try:
            good.admin.command("ping")
        finally:
            good.close()
        bad: Client = MongoClient(
            server.uri.replace(":right-pw@", ":wrong-pw@"), serverSelectionTimeoutMS=5000
        )
        try:
            bad.admin.command("ping")
        except OperationFailure as exc:
            code = exc.code
        else:
            code = None
        finally:
            bad.close()
    finally:
        server.stop()
    _check(server_capabilities, "auth", code == 18, f"(wrong password: code {code})")
