"""Transactional migrations without a server: the declaration, the capability decision
from ``hello`` replies, the pre-flight, the operations refused before they are sent,
and the order of a transaction's steps.

No server on this machine has transactions (FerretDB 1.24 and mongo-java-server lack
them), so :func:`alley.transactions.run_in_transaction` and the engine's transactional
step are shown here with a fake client and session (:class:`FakeSession`) standing in
for a replica set's: what they prove is the order of calls (body, fence, record,
commit) and that every failure aborts. The real commit is tested in
``tests/integration/test_transactions.py`` when ``ALLEY_TEST_MONGODB_URI`` names a
replica set.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from alley import api, transactions
from alley.engine import Engine
from alley.errors import ConfigError, MigrationFailed
from alley.hookspecs import hookimpl
from alley.lease import LeaseLost
from alley.memory_store import MemoryStore
from alley.model import (
    Direction,
    Event,
    HistoryRecord,
    Migration,
    MigrationFunctions,
    MigrationStatus,
    Plan,
    State,
)
from alley.settings import load_settings
from alley.store import JoinsTransactions, Records
from alley.transactions import (
    CommitFailed,
    CommitUnknown,
    NotInTransaction,
    TransactionalDatabase,
    run_in_transaction,
    server_refusal,
)

# hello replies: FerretDB 1.24.2 and mongo-java-server 1.47.0 as measured (localTime
# left out); MongoDB's as documented.
FERRETDB_1_24 = {
    "isWritablePrimary": True,
    "logicalSessionTimeoutMinutes": 30,
    "minWireVersion": 0,
    "maxWireVersion": 21,
    "ok": 1.0,
}
MONGO_JAVA_SERVER_1_47 = {"isWritablePrimary": True, "maxWireVersion": 13, "ok": 1.0}
MONGOD_STANDALONE = {
    "isWritablePrimary": True,
    "logicalSessionTimeoutMinutes": 30,
    "maxWireVersion": 21,
}
REPLICA_SET = {**MONGOD_STANDALONE, "setName": "rs0", "hosts": ["a:27017"]}
MONGOS = {**MONGOD_STANDALONE, "msg": "isdbgrid"}


# -- the declaration --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "wanted"), [(True, True), (False, False), (None, False)])
def test_the_declaration_is_a_bool(value: object, wanted: bool) -> None:
    assert transactions.flag(value, "0001_x.py") is wanted


@pytest.mark.parametrize("value", ["yes", 1, "True"])
def test_anything_else_is_refused_with_exit_3(value: object) -> None:
    with pytest.raises(ConfigError, match=r"0001_x\.py: transaction must be True or False"):
        transactions.flag(value, "0001_x.py")


def test_declared_reads_the_loaded_migration() -> None:
    assert transactions.declared(MigrationFunctions(None, None, transaction=True))
    assert not transactions.declared(MigrationFunctions(None, None))
    assert not transactions.declared(None)


def test_the_python_executor_reads_the_module_attribute(tmp_path: Path) -> None:
    from alley_plugins.python_executor import alley_load_migration

    def load(source: str) -> Any:
        return alley_load_migration(
            Migration(1, "x", "0001_x.py", textwrap.dedent(source), str(tmp_path / "0001_x.py"))
        )

    plain = "def up(db):\n    pass\n\ndef down(db):\n    pass\n"
    assert load("transaction = True\n" + plain).transaction is True
    assert load(plain).transaction is False
    with pytest.raises(ConfigError, match="transaction must be True or False, not 'on'"):
        load("transaction = 'on'\n" + plain)


# -- the capability decision ------------------------------------------------------------


def test_a_replica_set_and_mongos_can_run_transactions() -> None:
    assert server_refusal(REPLICA_SET) is None
    assert server_refusal(MONGOS) is None


def test_ferretdb_1_is_not_a_replica_set() -> None:
    reason = server_refusal(FERRETDB_1_24)
    assert reason == "it is not a replica set or a sharded cluster (its hello reply has no setName)"


def test_mongo_java_server_has_neither_replica_set_nor_sessions() -> None:
    reason = server_refusal(MONGO_JAVA_SERVER_1_47)
    assert reason is not None
    assert "no setName" in reason
    assert "no logicalSessionTimeoutMinutes" in reason


def test_a_standalone_mongod_is_refused() -> None:
    assert "no setName" in (server_refusal(MONGOD_STANDALONE) or "")


def test_a_replica_set_older_than_4_4_is_refused() -> None:
    assert server_refusal({**REPLICA_SET, "maxWireVersion": 8}) == (
        "it is older than MongoDB 4.4 (maxWireVersion 8)"
    )


# -- the pre-flight ---------------------------------------------------------------------


def plan_of(
    *modules: tuple[str, MigrationFunctions], direction: Direction = Direction.UP
) -> tuple[Plan, dict[str, Any]]:
    steps = []
    loaded: dict[str, Any] = {}
    for number, (filename, module) in enumerate(modules, start=1):
        migration = Migration(number, filename[5:-3], filename, "", f"migrations/{filename}")
        steps.append(MigrationStatus(number, filename, State.PENDING, migration, None))
        loaded[filename] = module
    return Plan(direction, tuple(steps)), loaded


def no_hello(db: Any) -> Mapping[str, Any]:
    raise AssertionError("the server was asked although no step declared a transaction")


def up_db(db: Any) -> None:
    pass


def up_step(db: Any, step: Any) -> None:
    pass


async def up_async(db: Any) -> None:
    pass


PLAIN = MigrationFunctions(up_db, up_db)
IN_TX = MigrationFunctions(up_db, up_db, transaction=True)
# A client that never connects: its collections are real, and anything sent fails.
OFFLINE = MongoClient("mongodb://127.0.0.1:1", connect=False, serverSelectionTimeoutMS=1).app


class JoiningStore(MemoryStore):
    """A memory store that says it can write in the client's transactions: what the
    pre-flight asks of a store (the writes go to ``records`` and are kept only when the
    fake session commits)."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client

    def joins_transactions_of(self, client: Any) -> bool:
        return client is self.client

    def records_in(self, session: Any) -> Records:
        return SessionRecords(self, session)


class SessionRecords:
    def __init__(self, store: MemoryStore, session: FakeSession) -> None:
        self.store, self.session = store, session

    def read_records(self) -> list[HistoryRecord]:
        return self.store.read_records()

    def add_record(self, record: HistoryRecord) -> None:
        self.session.pending.append(lambda: self.store.add_record(record))

    def remove_record(self, record: HistoryRecord) -> None:
        self.session.pending.append(lambda: self.store.remove_record(record))


class FakeDb:
    def __init__(self, client: Any) -> None:
        self.client = client


def test_a_plan_without_transactions_asks_nothing() -> None:
    plan, loaded = plan_of(("0001_a.py", PLAIN))
    transactions.check_plan(plan, loaded, FakeDb(object()), MemoryStore(), hello=no_hello)


def test_a_server_without_transactions_is_refused_naming_the_first_file() -> None:
    plan, loaded = plan_of(("0001_a.py", PLAIN), ("0002_b.py", IN_TX), ("0003_c.py", IN_TX))
    with pytest.raises(ConfigError) as raised:
        transactions.check_plan(
            plan, loaded, FakeDb(object()), MemoryStore(), hello=lambda db: FERRETDB_1_24
        )
    assert str(raised.value).startswith(
        "migrations/0002_b.py declares transaction = True, but this server cannot run "
        "transactions: it is not a replica set"
    )
    assert raised.value.exit_code == 3


def test_a_store_that_cannot_join_is_refused() -> None:
    plan, loaded = plan_of(("0001_a.py", IN_TX))
    with pytest.raises(ConfigError, match=r"the history store \(MemoryStore\) cannot write"):
        transactions.check_plan(
            plan, loaded, FakeDb(object()), MemoryStore(), hello=lambda db: REPLICA_SET
        )


def test_a_store_on_another_client_is_refused_and_on_the_same_accepted() -> None:
    plan, loaded = plan_of(("0001_a.py", IN_TX))
    client = object()
    store = JoiningStore(client)
    assert isinstance(store, JoinsTransactions)
    with pytest.raises(ConfigError, match="cannot write its record"):
        transactions.check_plan(plan, loaded, FakeDb(object()), store, hello=lambda db: REPLICA_SET)
    transactions.check_plan(plan, loaded, FakeDb(client), store, hello=lambda db: REPLICA_SET)


def test_the_mongo_store_joins_only_its_own_client() -> None:
    from alley_plugins.mongo_history import MongoHistoryStore

    client: MongoClient[Any] = MongoClient("mongodb://127.0.0.1:1", connect=False)
    other: MongoClient[Any] = MongoClient("mongodb://127.0.0.1:1", connect=False)
    try:
        assert MongoHistoryStore(client.app).joins_transactions_of(client)
        assert not MongoHistoryStore(client.app).joins_transactions_of(other)
        assert not MongoHistoryStore(client.admin).joins_transactions_of(client)
    finally:
        client.close()
        other.close()


@pytest.mark.parametrize(
    ("function", "message"),
    [(up_step, "takes step"), (up_async, "is async")],
    ids=["step", "async"],
)
def test_a_transactional_step_cannot_take_step_or_be_async(
    function: Callable[..., Any], message: str
) -> None:
    plan, loaded = plan_of(("0001_a.py", MigrationFunctions(function, up_db, transaction=True)))
    with pytest.raises(ConfigError, match=f"its up\\(\\) {message}"):
        transactions.check_plan(plan, loaded, FakeDb(object()), MemoryStore(), hello=no_hello)
    # A down() plan checks up() too: redo runs up after down's pre-flight.
    plan, loaded = plan_of(
        ("0001_a.py", MigrationFunctions(function, up_db, transaction=True)),
        direction=Direction.DOWN,
    )
    with pytest.raises(ConfigError, match=message):
        transactions.check_plan(plan, loaded, FakeDb(object()), MemoryStore(), hello=no_hello)


# -- operations refused before they are sent --------------------------------------------


@pytest.fixture
def tx_db() -> Iterator[TransactionalDatabase]:
    """A ``TransactionalDatabase`` on a client that cannot reach any server: a refused
    operation raises NotInTransaction; one that were sent would fail to select a
    server instead. The session is never used by a refusal, so it is a placeholder."""
    client: MongoClient[Any] = MongoClient(
        "mongodb://127.0.0.1:1", connect=False, serverSelectionTimeoutMS=1
    )
    yield TransactionalDatabase(client.app, session=object())
    client.close()


CREATE_FIX = "create the index in a migration without a transaction"
REFUSED: list[tuple[str, Callable[[Any], Any], str]] = [
    ("create_index", lambda db: db.items.create_index("v"), CREATE_FIX),
    ("create_indexes", lambda db: db.items.create_indexes([]), CREATE_FIX),
    (
        "drop_index",
        lambda db: db.items.drop_index("v_1"),
        "drop the index in a migration without a transaction",
    ),
    ("drop", lambda db: db.items.drop(), "dropping a collection (drop)"),
    ("sub-collection drop", lambda db: db.items.archive.drop(), "dropping a collection"),
    ("with_options drop", lambda db: db.items.with_options().drop(), "dropping a collection"),
    (
        "get_collection",
        lambda db: db.get_collection("items").create_index("v"),
        "creating an index",
    ),
    (
        "database of a collection",
        lambda db: db.items.database.drop_collection("x"),
        "dropping a collection",
    ),
    ("drop_collection", lambda db: db.drop_collection("items"), "dropping a collection"),
    ("rename", lambda db: db.items.rename("other"), "renaming a collection"),
    ("list_collection_names", lambda db: db.list_collection_names(), "listCollections"),
    ("list_indexes", lambda db: db.items.list_indexes(), "listIndexes"),
    ("index_information", lambda db: db.items.index_information(), "listIndexes"),
    (
        "estimated_document_count",
        lambda db: db.items.estimated_document_count(),
        "use count_documents({})",
    ),
    (
        "$out",
        lambda db: db.items.aggregate([{"$match": {}}, {"$out": "x"}]),
        "an aggregation with $out",
    ),
    ("$merge", lambda db: db.aggregate([{"$merge": "x"}]), "an aggregation with $merge"),
    (
        "createIndexes command",
        lambda db: db.command("createIndexes", "items", indexes=[]),
        "the createIndexes command",
    ),
    ("count command", lambda db: db.command({"count": "items"}), "the count command"),
    (
        "aggregate command with $out",
        lambda db: db.command({"aggregate": "items", "pipeline": [{"$out": "x"}], "cursor": {}}),
        "$out",
    ),
    ("dropDatabase", lambda db: db.command("dropDatabase"), "the dropDatabase command"),
]


@pytest.mark.parametrize(("name", "call", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_an_operation_mongodb_refuses_in_a_transaction_is_refused_before_sending(
    tx_db: TransactionalDatabase, name: str, call: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(NotInTransaction) as raised:
        call(tx_db)
    assert message in str(raised.value)
    assert "is not allowed in a transaction" in str(raised.value)


def test_a_migrations_except_exception_does_not_hide_a_refusal(
    tx_db: TransactionalDatabase,
) -> None:
    def migration(db: Any) -> None:
        # What a migration might do; the refusal is not an Exception.
        with contextlib.suppress(Exception):
            db.items.create_index("v")

    with pytest.raises(NotInTransaction):
        migration(tx_db)


def test_plain_values_pass_through(tx_db: TransactionalDatabase) -> None:
    assert tx_db.name == "app"
    assert tx_db.items.name == "items"
    assert tx_db.items.full_name == "app.items"
    assert isinstance(tx_db.client, MongoClient)


# -- the transaction's steps (fake session: no server here has transactions) ------------


class FakeSession:
    """Stands in for a replica set's ``ClientSession``: records the calls, and applies
    the record writes queued through it only on commit."""

    def __init__(self, commit_errors: list[PyMongoError] | None = None) -> None:
        self.calls: list[str] = []
        self.in_transaction = False
        self.pending: list[Callable[[], None]] = []
        self.commit_errors = list(commit_errors or [])
        self.session_id = {"id": "fake"}

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append("end")

    def start_transaction(self) -> None:
        self.calls.append("start")
        self.in_transaction = True

    def commit_transaction(self) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        for write in self.pending:
            write()
        self.pending.clear()
        self.in_transaction = False

    def abort_transaction(self) -> None:
        self.calls.append("abort")
        self.pending.clear()
        self.in_transaction = False


class FakeClient:
    def __init__(self, session: FakeSession) -> None:
        self.session = session

    def start_session(self) -> FakeSession:
        return self.session


class FakeServerDb:
    """A ``db`` whose client starts the fake session and whose ``hello`` is a replica
    set's; what the migrations write goes to ``data`` (kept only on commit)."""

    def __init__(self, session: FakeSession) -> None:
        self.client = FakeClient(session)
        self.data: list[str] = []
        self.name = "app"

    def __getattr__(self, name: str) -> Any:
        # A real (never connected) collection, for the refusals of db.items.create_index.
        return OFFLINE[name]

    def command(self, name: str, **kwargs: Any) -> Mapping[str, Any]:
        assert name == "hello"
        return REPLICA_SET

    def write(self, value: str) -> None:
        session = self.client.session
        session.pending.append(lambda: self.data.append(value))


def run(
    session: FakeSession, body: Callable[[Any], None], fence: Callable[[], None] = lambda: None
) -> list[str]:
    recorded: list[Any] = []
    db = FakeServerDb(session)
    run_in_transaction(db, body, recorded.append, fence)
    return recorded


def test_body_then_record_then_commit() -> None:
    session = FakeSession()
    seen: list[Any] = []
    recorded = run(session, seen.append)
    assert isinstance(seen[0], TransactionalDatabase)
    assert seen[0].session is session
    assert recorded == [session]
    assert session.calls == ["start", "commit", "end"]


def test_a_failing_body_aborts_and_records_nothing() -> None:
    session = FakeSession()

    def body(db: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run(session, body)
    assert session.calls == ["start", "abort", "end"]


def test_a_lost_lease_never_commits() -> None:
    session = FakeSession()

    def fence() -> None:
        raise LeaseLost("lost the lock")

    with pytest.raises(LeaseLost):
        run(session, lambda db: None, fence)
    assert "commit" not in session.calls
    assert session.calls == ["start", "abort", "end"]


def test_an_unknown_commit_result_is_retried() -> None:
    unknown = PyMongoError("connection reset", error_labels=["UnknownTransactionCommitResult"])
    session = FakeSession(commit_errors=[unknown])
    run(session, lambda db: None)
    assert session.calls == ["start", "commit", "commit", "end"]


def test_a_commit_never_confirmed_is_commit_unknown() -> None:
    unknown = [
        PyMongoError("connection reset", error_labels=["UnknownTransactionCommitResult"])
        for _ in range(transactions.COMMIT_TRIES)
    ]
    with pytest.raises(CommitUnknown, match="connection reset"):
        run(FakeSession(commit_errors=unknown), lambda db: None)


def test_a_refused_commit_is_commit_failed() -> None:
    conflict = OperationFailure("WriteConflict", code=112)
    with pytest.raises(CommitFailed, match="WriteConflict"):
        run(FakeSession(commit_errors=[conflict]), lambda db: None)


# -- the engine's transactional step (fake session, memory store) -----------------------


class World:
    """A project on the memory store (joining the fake client's transactions)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "migrations").mkdir(parents=True)
        self.session = FakeSession()
        self.db = FakeServerDb(self.session)
        self.store = JoiningStore(self.db.client)

    def write(self, filename: str, up: str, header: str = "transaction = True\n") -> None:
        body = textwrap.indent(textwrap.dedent(up).strip(), "    ")
        source = f"{header}\ndef up(db):\n{body}\n\n\ndef down(db):\n    pass\n"
        (self.root / "migrations" / filename).write_text(source)

    def up(self) -> Any:
        world = self

        class Store:
            @hookimpl
            def alley_history_store(self, settings: Any, db: Any) -> Any:
                return world.store

        settings = load_settings({"path": self.root, "lease": 30, "lock_timeout": 0.001})
        engine = Engine(settings, db=self.db, plugins=[("memory", Store())], heartbeat=False)
        return api.up(settings, project=engine)

    def records(self) -> list[str]:
        return sorted(r.filename for r in self.store.read_records())


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "app")


def test_the_step_and_its_record_commit_together(world: World) -> None:
    world.write("0001_a.py", up="db.write('a')")

    world.up()

    assert world.db.data == ["a"]
    assert world.records() == ["0001_a.py"]
    assert world.session.calls == ["start", "commit", "end"]
    assert [e.event for e in world.store.read_log()] == [Event.SUCCEEDED]


def test_a_failed_step_leaves_neither_and_runs_again_without_retry(world: World) -> None:
    world.write("0001_a.py", up="db.write('half')\nraise RuntimeError('boom')")

    with pytest.raises(MigrationFailed, match="boom"):
        world.up()

    assert world.db.data == []
    assert world.records() == []
    [failed] = world.store.read_open()
    assert failed.event is Event.FAILED
    assert failed.writes == 0
    assert "its transaction was rolled back: it wrote nothing" in (failed.error or "")

    world.write("0001_a.py", up="db.write('whole')")
    world.up()
    assert world.db.data == ["whole"]
    assert world.records() == ["0001_a.py"]


def test_a_refused_operation_is_the_steps_failure(world: World) -> None:
    # Silenced: up's lint would refuse it before it runs; this is the run-time guard.
    world.write(
        "0001_a.py",
        up="db.write('a')\ndb.items.create_index('v')  # alley: ignore[index-in-transaction]",
    )

    with pytest.raises(MigrationFailed) as raised:
        world.up()

    assert str(raised.value) == (
        "0001_a.py failed (up): creating an index (create_index) is not allowed in a "
        "transaction; create the index in a migration without a transaction"
    )
    assert world.db.data == []
    assert world.records() == []
