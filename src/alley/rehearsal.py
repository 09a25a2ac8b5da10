"""``alley test``: a rehearsal of the pending migrations on a throwaway database.

The real database is only read: its history (through the usual discovery and history
hooks, never taking its lock), and the structure and a sample of its collections,
copied into a throwaway database on the same server (``<db>_alley_test_<6 hex>``).
Each pending migration then runs there, in order, through the same engine ``up``
uses -- the executor plugin, ``Step`` helpers, async migrations -- with its history
in memory: up, down, up again. Snapshots taken around each phase tell which
migrations' ``down`` does not undo their ``up`` (*irreversible*: the state after
``down`` is not the state before ``up``) and which do something else the second
time (*not repeatable*: the state after the second ``up`` is not the state after the
first). The throwaway database is dropped at the end, on failure, Ctrl-C and SIGTERM
too, unless asked to keep it.

A snapshot is, per collection, its documents in ``_id`` order as raw BSON (compared
byte for byte, through a SHA-256 of each document and of the whole collection) and
its indexes as ``listIndexes`` reports them, normalised as :mod:`alley.indexes`
compares them. The comparison and its wording are pure functions, tested without a
server.

With ``server`` (``alley test --server URL``) the throwaway database is made on that
other server instead -- typically a local one from ``python -m alley.testing
--detach`` -- for production credentials that may not create databases, and to add no
load there: the real server is read exactly as without it, and nothing is created on
it at all. The other server's URL is never printed (its ``host:port`` is).

Only ``db`` is redirected: a migration that reaches another database through
``db.client`` (or MongoEngine documents on their own connection) writes there for real.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alley import planning, transactions
from alley.engine import Checked, Engine, Run
from alley.errors import AlleyError, ConfigError, ConnectionFailed, ExitCode, UsageError
from alley.lint import Rule, Severity, Source, lint_source, root_name
from alley.model import Direction, LoadedMigration, MigrationStatus, Plan, State, StepResult

if TYPE_CHECKING:
    from alley.settings import Settings

#: Documents copied from each collection of the real database unless told otherwise:
#: enough for a migration's filters and transforms to meet real shapes of data, few
#: enough that copying a collection takes a moment on any server.
DEFAULT_SAMPLE = 100
#: Documents copied per insert (a large ``--sample`` is not held in memory at once).
COPY_BATCH = 1000
#: The throwaway database's name: the real one's, this, and 6 hex digits.
THROWAWAY_INFIX = "_alley_test_"
THROWAWAY_PATTERN = re.compile(r"_alley_test_[0-9a-f]{6}\Z")
#: MongoDB refuses database names of 64 bytes or more.
MAX_DATABASE_NAME = 63
#: The phases of each migration, in order; the last only for ``idempotent = True``.
PHASES = ("up", "down", "up again", "up over itself")
#: The exit code when a migration is irreversible or not repeatable.
FOUND_EXIT_CODE = ExitCode.INTEGRITY


def is_throwaway(name: str) -> bool:
    """Whether ``name`` is the name of a rehearsal's throwaway database (which the
    multi-database commands' patterns never match)."""
    return THROWAWAY_PATTERN.search(name) is not None


def throwaway_name(database: str, taken: Sequence[str] = (), token: str | None = None) -> str:
    """``<database>_alley_test_<6 hex>``, the real name shortened (at a character) to
    stay within MongoDB's 63 bytes, and none of ``taken``."""
    room = MAX_DATABASE_NAME - len(THROWAWAY_INFIX) - 6
    prefix = database
    while len(prefix.encode()) > room:
        prefix = prefix[:-1]
    while True:
        name = f"{prefix}{THROWAWAY_INFIX}{token or secrets.token_hex(3)}"
        if name not in taken:
            return name
        token = None


# ---------------------------------------------------------------------------
# Snapshots and their differences (pure)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionShot:
    """One collection as a snapshot keeps it.

    :ivar digest: SHA-256 of its documents' raw BSON, in ``_id`` order.
    :ivar documents: each document's ``_id`` (as BSON) and the SHA-256 of its raw BSON.
    :ivar indexes: index name -> its keys and options, normalised, as text.
    """

    digest: str
    documents: Mapping[bytes, str]
    indexes: Mapping[str, str]


@dataclass(frozen=True)
class Snapshot:
    """A database's collections (by name) as :func:`take_snapshot` read them."""

    collections: Mapping[str, CollectionShot]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def differences(before: Snapshot, after: Snapshot) -> tuple[str, ...]:
    """What changed from ``before`` to ``after``, briefly, one phrase each:
    ``collection x missing``, ``collection x added``, ``users changed (3 documents)``,
    ``index users.email_1 missing`` (or ``added``, or ``changed``).
    Empty when they are the same byte for byte."""
    found: list[str] = []
    names = sorted(set(before.collections) | set(after.collections))
    for name in names:
        old, new = before.collections.get(name), after.collections.get(name)
        if old is None:
            found.append(f"collection {name} added")
            continue
        if new is None:
            found.append(f"collection {name} missing")
            continue
        if old.digest != new.digest:
            ids = set(old.documents) | set(new.documents)
            changed = sum(1 for i in ids if old.documents.get(i) != new.documents.get(i))
            # The same documents in the same order and still a difference: never, as
            # the digest covers only them; said anyway rather than hidden.
            found.append(f"{name} changed ({_plural(changed, 'document')})")
        for index in sorted(set(old.indexes) | set(new.indexes)):
            was, now = old.indexes.get(index), new.indexes.get(index)
            if was == now:
                continue
            state = "missing" if now is None else "added" if was is None else "changed"
            found.append(f"index {name}.{index} {state}")
    return tuple(found)


def take_snapshot(db: Any) -> Snapshot:
    """Every collection of ``db`` (but ``system.*``): its documents in ``_id`` order as
    raw BSON and its indexes from ``listIndexes``."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    from alley.indexes import list_indexes, normalise_options, reported_keys

    raw = CodecOptions(document_class=RawBSONDocument)
    collections: dict[str, CollectionShot] = {}
    described = {str(c["name"]): c.get("type") for c in db.list_collections()}
    for name in sorted(described):
        if name.startswith("system."):
            continue
        whole = hashlib.sha256()
        documents: dict[bytes, str] = {}
        for document in db.get_collection(name, codec_options=raw).find().sort("_id", 1):
            whole.update(document.raw)
            documents[_id_bytes(document)] = hashlib.sha256(document.raw).hexdigest()
        indexes = {
            str(index.get("name")): repr(
                (reported_keys(index), sorted(normalise_options(index).items()))
            )
            # A view has no indexes of its own (listIndexes refuses it).
            for index in ([] if described[name] == "view" else list_indexes(db, name))
        }
        collections[name] = CollectionShot(whole.hexdigest(), documents, indexes)
    return Snapshot(collections)


def _id_bytes(document: Any) -> bytes:
    """A document's ``_id`` as BSON (``{"_id": value}`` encoded): a key for any type."""
    import bson

    return bson.encode({"_id": document["_id"]})


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rehearsed:
    """One migration's rehearsal.

    :ivar durations: seconds per phase that finished, in the order of :data:`PHASES`.
    :ivar irreversible: how the state after ``down`` differs from the state before
        ``up`` (empty: reversible).
    :ivar not_repeatable: how the state after the second ``up`` differs from the state
        after the first (empty: repeatable).
    :ivar not_idempotent: for a migration that declares ``idempotent = True`` (alley
        runs it again after a failure without asking), how the state after a third
        ``up``, over the second's complete result, differs from it (empty: it is).
    :ivar failed_phase: the phase that raised, if one did; :ivar error: its error.
    :ivar ran: whether it was rehearsed at all (one before it failed: not).
    """

    id: int
    filename: str
    durations: tuple[float, ...] = ()
    irreversible: tuple[str, ...] = ()
    not_repeatable: tuple[str, ...] = ()
    not_idempotent: tuple[str, ...] = ()
    failed_phase: str | None = None
    error: str | None = None
    ran: bool = True

    @property
    def result(self) -> str:
        """``ok``, ``not run``, or what went wrong, comma-separated: ``failed``,
        ``irreversible`` (with ``failed`` when up again raised after such a down),
        ``not repeatable``, ``not idempotent``."""
        if not self.ran:
            return "not run"
        found = [
            word
            for word, what in (
                ("failed", self.failed_phase is not None),
                ("irreversible", bool(self.irreversible)),
                ("not repeatable", bool(self.not_repeatable)),
                ("not idempotent", bool(self.not_idempotent)),
            )
            if what
        ]
        return ", ".join(found) or "ok"


@dataclass(frozen=True)
class RehearsalReport:
    """What ``alley test`` found.

    :ivar database: the real database. :ivar throwaway: the throwaway one (``None``
        when nothing was pending: none was made). :ivar kept: it was not dropped.
    :ivar sample: the documents asked per collection; :ivar seeded: collection ->
        documents copied (every collection copied, 0 included).
    :ivar server: ``host:port`` of the server the throwaway database is on (``""``
        when not known); :ivar other_server: whether that is another server than the
        real database's (``--server``).
    """

    database: str
    throwaway: str | None
    kept: bool
    sample: int
    seeded: Mapping[str, int] = field(default_factory=dict)
    migrations: tuple[Rehearsed, ...] = ()
    notes: tuple[str, ...] = ()
    server: str = ""
    other_server: bool = False

    @property
    def failed(self) -> Rehearsed | None:
        return next((m for m in self.migrations if m.failed_phase is not None), None)

    @property
    def irreversible(self) -> tuple[Rehearsed, ...]:
        return tuple(m for m in self.migrations if m.irreversible)

    @property
    def not_repeatable(self) -> tuple[Rehearsed, ...]:
        return tuple(m for m in self.migrations if m.not_repeatable)

    @property
    def not_idempotent(self) -> tuple[Rehearsed, ...]:
        return tuple(m for m in self.migrations if m.not_idempotent)

    @property
    def exit_code(self) -> int:
        """0: every migration reversible and repeatable (or none pending); 1: one
        raised (the rehearsal stopped there); 6: one or more irreversible, not
        repeatable, or declared idempotent and not."""
        if self.failed is not None:
            return int(ExitCode.MIGRATION_FAILED)
        if self.irreversible or self.not_repeatable or self.not_idempotent:
            return int(FOUND_EXIT_CODE)
        return int(ExitCode.OK)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "throwaway": self.throwaway,
            "kept": self.kept,
            "server": self.server,
            "other_server": self.other_server,
            "sample": self.sample,
            "seeded": dict(self.seeded),
            "migrations": [
                {
                    "id": m.id,
                    "filename": m.filename,
                    "result": m.result,
                    "durations_s": {
                        phase.replace(" ", "_"): round(seconds, 6)
                        for phase, seconds in zip(PHASES, m.durations, strict=False)
                    },
                    "irreversible": list(m.irreversible),
                    "not_repeatable": list(m.not_repeatable),
                    "not_idempotent": list(m.not_idempotent),
                    "failed": None
                    if m.failed_phase is None
                    else {"phase": m.failed_phase, "error": m.error},
                }
                for m in self.migrations
            ],
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------
# The rehearsal
# ---------------------------------------------------------------------------


#: Called with each migration's :class:`Rehearsed` as it is done.
RehearsedCallback = Callable[[Rehearsed], None]


def own_collections(settings: Settings) -> frozenset[str]:
    """alley's collections in the real database, never copied: the history collection
    and its ``_lock``, ``_log``, ``_open`` and ``_heartbeat`` siblings."""
    name = str(settings.options.get("history_collection", "db_migrations"))
    return frozenset({name, *(f"{name}_{s}" for s in ("lock", "log", "open", "heartbeat"))})


def copy_structure(
    source: Any, target: Any, sample: int, skip: frozenset[str]
) -> tuple[dict[str, int], list[str]]:
    """Create each collection of ``source`` (but ``skip`` and ``system.*``) in
    ``target`` with its options where the server accepts them, its indexes but
    ``_id_``, and its first ``sample`` documents by ``_id``, as raw BSON. Returns the
    documents copied per collection and notes on what could not be copied."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    from pymongo.errors import OperationFailure

    raw = CodecOptions(document_class=RawBSONDocument)
    seeded: dict[str, int] = {}
    notes: list[str] = []
    described = sorted(source.list_collections(), key=lambda c: str(c["name"]))
    for info in described:
        name = str(info["name"])
        if name in skip or name.startswith("system."):
            continue
        options = dict(info.get("options") or {})
        try:
            target.command({"create": name, **options})
        except OperationFailure as error:
            if not options:
                raise
            target.command({"create": name})
            notes.append(f"collection {name} copied without its options ({error.details})")
        if info.get("type") == "view":
            continue
        specs = [
            {k: v for k, v in index.items() if k not in ("v", "ns")}
            for index in source[name].list_indexes()
            if index.get("name") != "_id_"
        ]
        for spec in specs:
            try:
                target.command("createIndexes", name, indexes=[spec])
            except OperationFailure as error:
                notes.append(f"index {spec.get('name')} of {name} not copied: {error}")
        seeded[name] = 0
        if sample > 0:
            cursor = source.get_collection(name, codec_options=raw).find()
            copy = target.get_collection(name, codec_options=raw)
            batch: list[Any] = []
            for document in cursor.sort("_id", 1).limit(sample):
                batch.append(document)
                if len(batch) == COPY_BATCH:
                    copy.insert_many(batch, ordered=True)
                    seeded[name], batch = seeded[name] + len(batch), []
            if batch:
                copy.insert_many(batch, ordered=True)
                seeded[name] += len(batch)
    return seeded, notes


def _reaching_beyond_db(source: Source) -> Iterator[tuple[int, str]]:
    """``db.client`` (the server's other databases) and clients a migration makes."""
    for node in ast.walk(source.tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "client"
            and root_name(node.value) in source.database_names
        ):
            yield node.lineno, "db.client"
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("MongoClient", "AsyncMongoClient"):
                yield node.lineno, f"{called}()"


#: Not a lint rule (nothing is wrong with such a migration): what a rehearsal says it
#: cannot redirect to its throwaway copy.
BEYOND_DB = Rule("beyond-db", Severity.WARNING, _reaching_beyond_db, "reaches beyond db")


def beyond_db(plan: Plan) -> list[str]:
    """A note for each place a planned migration reaches beyond its ``db``: what it
    writes there, a rehearsal writes for real (only ``db`` and alley's MongoEngine
    aliases are redirected). Found in the source, so a client reached another way
    is not."""
    notes = []
    for step in plan.steps:
        migration = step.migration
        if migration is None:
            continue
        for found in lint_source(
            migration.filename, migration.location, migration.source, [BEYOND_DB]
        ):
            notes.append(
                f"{found.location}:{found.line}: {found.message} reaches beyond db: "
                "what the migration writes through it, the rehearsal writes for real"
            )
    return notes


class _WithoutTransaction:
    """A loaded migration as it is, but for ``transaction = True``: rehearsed on a
    server that has transactions, it runs without one (its history is in memory, which
    cannot join a MongoDB transaction)."""

    transaction = False

    def __init__(self, module: LoadedMigration) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def rehearse(
    engine: Engine,
    *,
    sample: int = DEFAULT_SAMPLE,
    keep: bool = False,
    on_migration: RehearsedCallback | None = None,
    server: str | None = None,
) -> RehearsalReport:
    """Rehearse ``engine``'s pending migrations on a throwaway copy of its database
    (see the module's docstring). ``on_migration`` is called with each
    :class:`Rehearsed` as it is done. ``server``: a ``mongodb://`` URL of another
    server to make the throwaway database on (the real one is then only read).

    :raises UsageError: ``sample`` is negative.
    :raises ConfigError: ``server`` is not a valid URL (exit 3).
    :raises ConnectionFailed: ``server`` does not answer or refuses the credentials
        (exit 4); nothing was written anywhere.
    """
    if sample < 0:
        raise UsageError(f"--sample must be 0 or more, not {sample}")
    other = server_settings(engine.settings, server) if server is not None else None
    snapshot = engine.snapshot()
    plan = planning.plan_up(snapshot.statuses)
    real = engine.db
    if other is not None:  # the URL names no database of its own: the real one's name
        other = dataclasses.replace(other, database=other.connection().database or real.name)
    client = real.client if other is None else connect_server(engine, other)
    try:
        where = other.redacted_target() if other is not None else _address(client)
        if not plan:
            return RehearsalReport(
                real.name,
                None,
                False,
                sample,
                notes=tuple(engine.notes),
                server=where,
                other_server=other is not None,
            )
        # up's own pre-flight, on the real database and its history store (read
        # only): files load, lint, steps waiting for a person, transactions the
        # server lacks.
        checked = engine.preflight(snapshot.statuses, plan, allow_drift=True, retry=True)
        # Not a name the target server already has (on another server, a name the
        # real one has does not matter: nothing is created there).
        name = throwaway_name(real.name, client.list_database_names())
        rehearsed: list[Rehearsed] = []
        seeded: dict[str, int] = {}
        notes: list[str] = beyond_db(plan)
        with _throwaway(client, name, keep):
            target = client[name]
            skip = own_collections(engine.settings)
            seeded, copy_notes = copy_structure(real, target, sample, skip)
            notes += copy_notes
            rehearsed = _rehearse_plan(engine, target, plan, checked.loaded, on_migration, other)
    finally:
        if other is not None:
            client.close()
    notes += [n for n in engine.notes if n not in notes]
    return RehearsalReport(
        real.name,
        name,
        keep,
        sample,
        seeded,
        tuple(rehearsed),
        tuple(dict.fromkeys(notes)),
        server=where,
        other_server=other is not None,
    )


#: The settings that say where and as whom to connect: none of the real database's
#: is carried over to the other server.
_CONNECTION_KEYS = ("url", "database", "username", "password", "auth_source", "host", "port")


def server_settings(settings: Settings, url: str) -> Settings:
    """``settings`` with the connection replaced by ``url`` alone (the real
    database's host, port, credentials and database are not carried over; every other
    setting is): the other server of ``alley test --server``.

    :raises ConfigError: ``url`` is not a valid ``mongodb://`` / ``mongodb+srv://``
        URL (the message never shows its password).
    """
    from alley.settings import DEFAULT_HOST, DEFAULT_PORT

    if not url.strip():
        # Not the default localhost:27017: an empty "$REHEARSAL_URL" is a mistake.
        raise ConfigError(
            "--server: invalid URL '' (empty)", hint="it starts with mongodb:// or mongodb+srv://"
        )
    other = dataclasses.replace(
        settings,
        url=url,
        database=None,
        username=None,
        password=None,
        auth_source=None,
        host=DEFAULT_HOST,
        port=DEFAULT_PORT,
        origins={k: v for k, v in settings.origins.items() if k not in _CONNECTION_KEYS},
    )
    try:
        other.connection()
    except ConfigError as error:
        raise ConfigError(f"--server: {error.message}", hint=error.hint) from None
    return other


def connect_server(engine: Engine, settings: Settings) -> Any:
    """The other server's client (``settings`` from :func:`server_settings`), connected
    by the connection plugin as the command's own is: after alley's write watcher is
    registered, with the plugin's checks and errors, and so with what the plugin gives
    the clients it connected (a connection for ``async def`` migrations, its models'
    documents redirected).

    :raises ConfigError: the driver refuses the URL's options (exit 3).
    :raises ConnectionFailed: the server does not answer within ``--timeout``, or
        refuses the credentials (exit 4).
    """
    from alley import write_watch

    write_watch.install()
    try:
        return engine.hooks.connect(settings).client
    except ConnectionFailed as error:
        unreachable = error.message.startswith("cannot reach")
        raise ConnectionFailed(
            f"--server: {error.message}",
            hint="check its URL and that it runs; python -m alley.testing --detach starts one"
            if unreachable
            else "check the user, password and authSource in its URL",
        ) from None
    except ConfigError as error:
        raise ConfigError(f"--server: {error.message}", hint=error.hint) from None


def _without(message: str, password: str | None) -> str:
    """The first line of a driver message, without the password if it shows."""
    line = _one_line(message.splitlines()[0] if message else "unknown error")
    if password:
        from urllib.parse import quote_plus

        line = line.replace(password, "***").replace(quote_plus(password), "***")
    return line


def _address(client: Any) -> str:
    """``host:port`` of the server ``client`` talks to (``""`` when it cannot say)."""
    try:
        address = client.address
    except Exception:  # an application's client in a state alley does not know
        return ""
    return "" if address is None else f"{address[0]}:{address[1]}"


@contextmanager
def _throwaway(client: Any, name: str, keep: bool) -> Iterator[None]:
    """The throwaway database's life: dropped when the block ends, however it ends
    (an error, Ctrl-C, SIGTERM), unless ``keep``."""
    try:
        yield
    finally:
        if not keep:
            client.drop_database(name)


def _rehearse_plan(
    engine: Engine,
    target: Any,
    plan: Plan,
    loaded: Mapping[str, LoadedMigration],
    on_migration: RehearsedCallback | None,
    other: Settings | None = None,
) -> list[Rehearsed]:
    from alley.memory_store import MemoryStore

    store = MemoryStore(records=engine.store.read_records())
    parts: dict[str, Any] = {
        "db": target,
        "hooks": engine.hooks,
        "migrations": engine.migrations,
        "store": store,
    }
    # On another server, its settings: an async migration's connection is made to it.
    rehearsal = Engine(engine.settings if other is None else other, **parts)
    modules: dict[str, LoadedMigration] = {
        filename: _WithoutTransaction(module) if transactions.declared(module) else module
        for filename, module in loaded.items()
    }
    done: list[Rehearsed] = []
    # The migrations' MongoEngine documents use the throwaway database too (only the
    # connection plugin knows the aliases it registered).
    documents = engine.hooks.redirect_documents(engine.settings, target)
    try:
        with documents, rehearsal.locked("test") as run:
            for position, step in enumerate(plan.steps):
                item = _rehearse_one(run, target, step, modules)
                done.append(item)
                if on_migration is not None:
                    on_migration(item)
                if item.failed_phase is not None:
                    for later in plan.steps[position + 1 :]:
                        skipped = Rehearsed(later.id, later.filename, ran=False)
                        done.append(skipped)
                        if on_migration is not None:
                            on_migration(skipped)
                    break
    finally:
        rehearsal.close_async()
        engine.note(*rehearsal.notes)
    return done


def _rehearse_one(
    run: Run,
    target: Any,
    step: MigrationStatus,
    modules: Mapping[str, LoadedMigration],
) -> Rehearsed:
    """up, down, up again (and up over itself, for ``idempotent = True``); a snapshot
    before and after each."""
    migration = step.migration
    assert migration is not None  # planning refuses steps without a file
    filename = migration.filename
    declared_idempotent = getattr(modules[filename], "idempotent", False) is True
    durations: list[float] = []
    shots = [take_snapshot(target)]
    for phase in PHASES if declared_idempotent else PHASES[:3]:
        direction = Direction.DOWN if phase == "down" else Direction.UP
        if phase == "up over itself":
            # As alley's retry runs it: over what it did, its record forgotten (in the
            # rehearsal's own history).
            applied = _status_in(run, step.id, filename, Direction.DOWN)
            assert applied.record is not None
            run.store.remove_record(applied.record)
        status = _status_in(run, step.id, filename, direction)
        plan = Plan(direction, (status,))
        started = time.perf_counter()
        try:
            results: tuple[StepResult, ...] = run.apply(Checked(plan, dict(modules)))
        except AlleyError as error:
            if error.exit_code != ExitCode.MIGRATION_FAILED:
                raise
            # up again failing after a down that did not undo up: said, as its cause.
            left = differences(shots[0], shots[2]) if phase == "up again" else ()
            return Rehearsed(
                step.id,
                filename,
                tuple(durations),
                irreversible=left,
                failed_phase=phase,
                error=_one_line(str(error)).removeprefix(f"{filename} failed ({direction}): "),
            )
        durations.append(results[0].duration_s if results else time.perf_counter() - started)
        shots.append(take_snapshot(target))
    before, after_up, after_down, after_again = shots[:4]
    return Rehearsed(
        step.id,
        filename,
        tuple(durations),
        irreversible=differences(before, after_down),
        not_repeatable=differences(after_up, after_again),
        not_idempotent=differences(after_again, shots[4]) if declared_idempotent else (),
    )


def _status_in(run: Run, migration_id: int, filename: str, direction: Direction) -> MigrationStatus:
    """The migration's status in the rehearsal's own (in-memory) history, as the next
    phase needs it: pending before ``up``, applied (with its record) before ``down``.
    Attempts of the real history are not carried over: a rehearsal starts afresh."""
    statuses = run.engine.snapshot(lock=run.lease.state).statuses
    wanted = State.APPLIED if direction is Direction.DOWN else State.PENDING
    found = next(
        s for s in statuses if s.id == migration_id and s.filename == filename and s.state is wanted
    )
    return dataclasses.replace(found, attempt=None, attempt_entry=None)


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = [
    "DEFAULT_SAMPLE",
    "PHASES",
    "THROWAWAY_PATTERN",
    "CollectionShot",
    "RehearsalReport",
    "Rehearsed",
    "Snapshot",
    "connect_server",
    "copy_structure",
    "differences",
    "is_throwaway",
    "own_collections",
    "rehearse",
    "server_settings",
    "take_snapshot",
    "throwaway_name",
]
