"""Migrations that run in a transaction: ``transaction = True`` in the file.

A migration that declares it wants a transaction has its ``up``/``down`` **and its
history record** done in one MongoDB transaction, committed together: a failure leaves
neither its data nor its record (the step failed having written nothing, and simply
runs again on the next ``up``).

Three parts, each usable alone:

- :func:`declared`: whether a loaded migration asks for a transaction;
- :func:`server_refusal` and :func:`check_plan`: the pre-flight. A server without
  transactions (a standalone ``mongod``, FerretDB 1.x, mongo-java-server) or a history
  store that cannot write its record in the migration's transaction is refused before
  anything runs, with a :class:`~alley.errors.ConfigError` (exit 3);
- :class:`TransactionalDatabase` and :func:`run_in_transaction`: the run. The migration
  gets a ``db`` that adds ``session=`` to every operation, so plain ``up(db)`` code is
  in the transaction, and that refuses, before sending, what MongoDB does not allow in
  a transaction (creating or dropping an index or a collection, listing collections or
  indexes, ``count``, ``$out``/``$merge``...): :class:`NotInTransaction`.

Why not ``session.with_transaction``: it runs its callback again on a transient error,
and the callback here is the user's code, which may have effects outside the database
(an HTTP call, a file). alley runs it once; a transaction that fails to commit fails
the step, having written nothing, and the next ``up`` runs it again.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from alley.errors import ConfigError

if TYPE_CHECKING:
    from alley.model import LoadedMigration, Plan
    from alley.store import HistoryStore

#: The module attribute a migration sets to run in a transaction.
ATTRIBUTE = "transaction"
#: MongoDB 4.4 (wire version 9): the first that creates collections inside a
#: transaction -- an insert into a new collection, the history collection's first
#: record included. Older servers are refused rather than failing mid-step.
MIN_WIRE_VERSION = 9
#: How often a commit whose outcome is unknown is sent again (commitTransaction is
#: safe to repeat; the driver already repeats it once itself).
COMMIT_TRIES = 3


class NotInTransaction(BaseException):
    """An operation MongoDB does not allow in a transaction, refused before it was sent.

    A ``BaseException``, like ``KeyboardInterrupt``: a migration's own ``except
    Exception`` cannot hide it and commit a transaction that lacks the operation. The
    engine turns it into the step's :class:`~alley.errors.MigrationFailed`.
    """


def declared(loaded: LoadedMigration | object) -> bool:
    """Whether a loaded migration asks for a transaction (``transaction = True``)."""
    return getattr(loaded, ATTRIBUTE, False) is True


def flag(value: object, location: str) -> bool:
    """The module attribute's value as the flag, refusing anything but a bool: a
    ``transaction = "yes"`` that silently meant *no* would run without one.

    :raises ConfigError: not ``True`` or ``False`` (exit 3).
    """
    if value is None or isinstance(value, bool):
        return value is True
    raise ConfigError(
        f"{location}: transaction must be True or False, not {value!r}",
        hint="fix the file; nothing ran",
    )


# ---------------------------------------------------------------------------
# The pre-flight
# ---------------------------------------------------------------------------


def server_refusal(hello: Mapping[str, Any]) -> str | None:
    """Why the server that answered ``hello`` cannot run transactions, or ``None``.

    Transactions need a replica set (``setName``) or a sharded cluster (``msg:
    "isdbgrid"``), sessions (``logicalSessionTimeoutMinutes``), and here MongoDB 4.4 or
    later (``maxWireVersion`` 9). FerretDB 1.x answers with no ``setName``;
    mongo-java-server with neither ``setName`` nor ``logicalSessionTimeoutMinutes``.
    """
    reasons = []
    if "setName" not in hello and hello.get("msg") != "isdbgrid":
        reasons.append(
            "it is not a replica set or a sharded cluster (its hello reply has no setName)"
        )
    if hello.get("logicalSessionTimeoutMinutes") is None:
        reasons.append("it has no sessions (no logicalSessionTimeoutMinutes)")
    if not reasons:
        wire = hello.get("maxWireVersion")
        if not isinstance(wire, int) or wire < MIN_WIRE_VERSION:
            reasons.append(f"it is older than MongoDB 4.4 (maxWireVersion {wire})")
    return "; ".join(reasons) or None


def hello_of(db: Any) -> Mapping[str, Any]:
    """The server's ``hello`` reply (``isMaster`` from a server that lacks ``hello``)."""
    from pymongo.errors import OperationFailure

    try:
        reply = db.command("hello")
    except OperationFailure:
        reply = db.command("isMaster")
    return dict(reply)


def transactional_steps(plan: Plan, loaded: Mapping[str, object]) -> list[str]:
    """The filenames of the plan's steps that declared a transaction, in order."""
    return [
        step.filename
        for step in plan.steps
        if step.migration is not None and declared(loaded.get(step.migration.filename))
    ]


def check_plan(
    plan: Plan,
    loaded: Mapping[str, LoadedMigration],
    db: Any,
    store: HistoryStore,
    *,
    hello: Callable[[Any], Mapping[str, Any]] = hello_of,
) -> None:
    """Refuse, before anything runs, a plan with a step that declared a transaction it
    cannot have: the step takes ``step`` (the batch helpers checkpoint outside any
    transaction and build indexes), the server cannot run transactions, or the history
    store cannot write the record in the migration's transaction.

    The server is asked (one ``hello``) only when some step declared a transaction.

    :raises ConfigError: naming the first such file and why (exit 3).
    """
    from alley.dry_run import takes_step
    from alley.store import JoinsTransactions

    wanted = transactional_steps(plan, loaded)
    if not wanted:
        return
    steps = {s.migration.filename: s.migration for s in plan.steps if s.migration is not None}
    for filename in wanted:
        module = loaded[filename]
        # Both functions: redo runs the one direction after the other's pre-flight.
        for name, function in (("up", module.up), ("down", module.down)):
            if inspect.iscoroutinefunction(function):
                raise ConfigError(
                    f"{steps[filename].location} declares transaction = True and its "
                    f"{name}() is async: async migrations cannot run in a transaction yet",
                    hint=f"write def {name}(db), or remove 'transaction = True'; nothing ran",
                )
            if takes_step(function):
                raise ConfigError(
                    f"{steps[filename].location} declares transaction = True and its "
                    f"{name}() takes step: the batch helpers checkpoint outside a "
                    "transaction and build indexes, which a transaction cannot",
                    hint="use one or the other; nothing ran",
                )
    first = steps[wanted[0]].location
    reason = server_refusal(hello(db))
    if reason is not None:
        raise ConfigError(
            f"{first} declares transaction = True, but this server cannot run "
            f"transactions: {reason}",
            hint="run it against a replica set, or remove 'transaction = True'; nothing ran",
        )
    client = getattr(db, "client", None)
    if not (isinstance(store, JoinsTransactions) and store.joins_transactions_of(client)):
        raise ConfigError(
            f"{first} declares transaction = True, but the history store "
            f"({type(store).__name__}) cannot write its record in the migration's transaction",
            hint="use a history store on the same MongoDB client, or remove "
            "'transaction = True'; nothing ran",
        )


# ---------------------------------------------------------------------------
# The database a transactional migration gets
# ---------------------------------------------------------------------------

_INDEX_FIX = "create the index in a migration without a transaction"
_DDL_FIX = "do it in a migration without a transaction"
_READ_FIX = "read it in a migration without a transaction, or before this one"

#: Collection methods MongoDB refuses in a transaction: what each is, and the fix.
_COLLECTION_REFUSED: Mapping[str, tuple[str, str]] = {
    "create_index": ("creating an index", _INDEX_FIX),
    "create_indexes": ("creating indexes", _INDEX_FIX),
    "create_search_index": ("creating a search index", _INDEX_FIX),
    "create_search_indexes": ("creating search indexes", _INDEX_FIX),
    "drop_index": ("dropping an index", "drop the index in a migration without a transaction"),
    "drop_indexes": ("dropping indexes", "drop the indexes in a migration without a transaction"),
    "drop_search_index": ("dropping a search index", _DDL_FIX),
    "update_search_index": ("updating a search index", _DDL_FIX),
    "list_search_indexes": ("listing search indexes", _READ_FIX),
    "drop": ("dropping a collection", "drop it in a migration without a transaction"),
    "rename": ("renaming a collection", _DDL_FIX),
    "list_indexes": ("listing indexes (listIndexes)", _READ_FIX),
    "index_information": ("listing indexes (listIndexes)", _READ_FIX),
    "options": ("reading collection options (listCollections)", _READ_FIX),
    "estimated_document_count": ("the count command", "use count_documents({})"),
    "watch": ("a change stream", _DDL_FIX),
}
#: Database methods MongoDB refuses in a transaction.
_DATABASE_REFUSED: Mapping[str, tuple[str, str]] = {
    "drop_collection": ("dropping a collection", "drop it in a migration without a transaction"),
    "list_collections": ("listing collections (listCollections)", _READ_FIX),
    "list_collection_names": ("listing collections (listCollections)", _READ_FIX),
    "validate_collection": ("validating a collection", _DDL_FIX),
    "watch": ("a change stream", _DDL_FIX),
}
#: ``db.command(NAME)`` allowed in a transaction (MongoDB's CRUD and informational
#: commands); any other command is refused. ``create`` (of a collection) is allowed
#: from MongoDB 4.4, which the pre-flight requires; ``createIndexes`` is refused: on an
#: existing collection MongoDB refuses it.
_COMMANDS_ALLOWED = frozenset(
    c.lower()
    for c in (
        "find",
        "insert",
        "update",
        "delete",
        "findAndModify",
        "aggregate",
        "distinct",
        "getMore",
        "killCursors",
        "create",
        "hello",
        "isMaster",
        "buildInfo",
        "connectionStatus",
    )
)
#: Aggregation stages MongoDB refuses in a transaction.
_STAGES_REFUSED = (
    "$out",
    "$merge",
    "$collStats",
    "$currentOp",
    "$indexStats",
    "$listSessions",
    "$listLocalSessions",
    "$planCacheStats",
)


def _refusal(what: str, fix: str) -> NotInTransaction:
    return NotInTransaction(f"{what} is not allowed in a transaction; {fix}")


def _refused_stage(pipeline: object) -> str | None:
    if not isinstance(pipeline, Sequence) or isinstance(pipeline, str | bytes):
        return None
    for stage in pipeline:
        if isinstance(stage, Mapping):
            for name in stage:
                if name in _STAGES_REFUSED:
                    return str(name)
    return None


def _check_pipeline(pipeline: object) -> None:
    stage = _refused_stage(pipeline)
    if stage is not None:
        raise _refusal(f"an aggregation with {stage}", _DDL_FIX)


def _check_command(command: Any) -> None:
    name = command if isinstance(command, str) else next(iter(command), "")
    if str(name).lower() not in _COMMANDS_ALLOWED:
        raise _refusal(f"the {name} command", _DDL_FIX)
    if isinstance(command, Mapping):
        _check_pipeline(command.get("pipeline"))


#: Methods that take ``session=`` through ``**kwargs`` (their signature does not say so).
_SESSION_IN_KWARGS = frozenset({"find", "find_one", "find_raw_batches"})


def _takes_session(function: Callable[..., Any]) -> bool:
    try:
        return "session" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


class _Injecting:
    """The part both proxies share: a wrapped PyMongo object and the session."""

    _alley_refused: Mapping[str, tuple[str, str]] = {}

    def __init__(self, target: Any, session: Any) -> None:
        self._target = target
        self._session = session

    @property
    def session(self) -> Any:
        """The ``ClientSession`` of the transaction, for code that needs it by hand
        (a raw ``db.client``, another library)."""
        return self._session

    def _wrap(self, value: Any) -> Any:
        from pymongo.collection import Collection
        from pymongo.database import Database

        if isinstance(value, Collection):
            return TransactionalCollection(value, self._session)
        if isinstance(value, Database):
            return TransactionalDatabase(value, self._session)
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy/pickle probes; PyMongo has no such collections
            raise AttributeError(name)
        if name in self._alley_refused:
            what, fix = self._alley_refused[name]
            refusal = _refusal(f"{what} ({name})", fix)

            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise refusal

            return refuse
        attribute = getattr(self._target, name)
        wrapped = self._wrap(attribute)  # db.users, db.users.archive, collection.database
        if wrapped is not attribute or not callable(attribute):
            return wrapped
        if name in ("with_options", "get_collection"):
            return lambda *a, **k: self._wrap(attribute(*a, **k))
        if not (name in _SESSION_IN_KWARGS or _takes_session(attribute)):
            return attribute
        session = self._session

        def in_transaction(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("session", session)
            return attribute(*args, **kwargs)

        return in_transaction

    def __getitem__(self, name: str) -> Any:
        return self._wrap(self._target[name])

    def aggregate(self, pipeline: Any, *args: Any, **kwargs: Any) -> Any:
        _check_pipeline(pipeline)
        kwargs.setdefault("session", self._session)
        return self._target.aggregate(pipeline, *args, **kwargs)

    def aggregate_raw_batches(self, pipeline: Any, *args: Any, **kwargs: Any) -> Any:
        _check_pipeline(pipeline)
        kwargs.setdefault("session", self._session)
        return self._target.aggregate_raw_batches(pipeline, *args, **kwargs)


class TransactionalCollection(_Injecting):
    """A PyMongo ``Collection`` whose operations go through the transaction's session,
    and whose operations MongoDB refuses in a transaction raise
    :class:`NotInTransaction` before anything is sent."""

    _alley_refused = _COLLECTION_REFUSED

    def __repr__(self) -> str:
        return f"TransactionalCollection({self._target.full_name})"


class TransactionalDatabase(_Injecting):
    """The ``db`` a transactional migration gets: a PyMongo ``Database`` whose
    operations (and its collections' operations) go through the transaction's session.

    ``db.session`` is the session. ``db.client`` is the plain client: what is done
    through it without ``session=db.session`` is not in the transaction.
    """

    _alley_refused = _DATABASE_REFUSED

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        _check_command(command)
        kwargs.setdefault("session", self._session)
        return self._target.command(command, *args, **kwargs)

    def cursor_command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        _check_command(command)
        kwargs.setdefault("session", self._session)
        return self._target.cursor_command(command, *args, **kwargs)

    def __repr__(self) -> str:
        return f"TransactionalDatabase({self._target.name})"


# ---------------------------------------------------------------------------
# Running one step in a transaction
# ---------------------------------------------------------------------------


class CommitFailed(Exception):
    """The server refused to commit (a write conflict, the transaction's time limit):
    the transaction is aborted, so the step wrote nothing."""


class CommitUnknown(Exception):
    """The commit was sent but its outcome never confirmed: the step may or may not be
    applied (its record says which, once the server answers again)."""


def run_in_transaction(
    db: Any,
    body: Callable[[TransactionalDatabase], None],
    record: Callable[[Any], None],
    fence: Callable[[], None],
) -> None:
    """Run ``body`` (the migration) then ``record`` (the history write, given the
    session) in one transaction on ``db``'s client, and commit.

    The lease is checked (``fence``) after the body and after the record, so a run that
    lost its lease never commits. Any error aborts the transaction, and is raised: the
    step wrote nothing. ``body`` runs once (see the module's note on
    ``with_transaction``).

    :raises CommitFailed: the server refused the commit (nothing was written).
    :raises CommitUnknown: the commit's outcome could not be confirmed.
    """
    from pymongo.errors import PyMongoError

    from alley.hookcalls import driver_message

    with db.client.start_session() as session:
        session.start_transaction()
        try:
            body(TransactionalDatabase(db, session))
            fence()
            record(session)
            fence()
        except BaseException:
            _abort(session)
            raise
        for attempt in range(1, COMMIT_TRIES + 1):
            try:
                session.commit_transaction()
                return
            except PyMongoError as error:
                if not error.has_error_label("UnknownTransactionCommitResult"):
                    raise CommitFailed(driver_message(error)) from error
                if attempt == COMMIT_TRIES:
                    raise CommitUnknown(driver_message(error)) from error


def _abort(session: Any) -> None:
    """Abort, if the transaction is still open; an abort that fails changes nothing
    (the server aborts a transaction whose session ends, or that times out)."""
    from pymongo.errors import PyMongoError

    if session.in_transaction:
        with contextlib.suppress(PyMongoError):
            session.abort_transaction()


__all__ = [
    "ATTRIBUTE",
    "MIN_WIRE_VERSION",
    "CommitFailed",
    "CommitUnknown",
    "NotInTransaction",
    "TransactionalCollection",
    "TransactionalDatabase",
    "check_plan",
    "declared",
    "flag",
    "hello_of",
    "run_in_transaction",
    "server_refusal",
    "transactional_steps",
]
