"""The hooks through which alley does everything that touches the outside world.

The core plans and orders; discovering, loading, executing and recording migrations,
and connecting to the server, are all asked of plugins. The defaults are plugins too
(``alley_plugins``), registered first and marked ``trylast`` so any installed plugin
that implements a ``firstresult`` hook wins over them.

Each hook is documented here, where it is declared; ``docs/hooks.md`` is generated
from these docstrings.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

    from alley.data import AsyncConnection
    from alley.import_history import HistoryImporter
    from alley.lint import Rule
    from alley.model import Direction, LoadedMigration, Migration
    from alley.settings import Settings
    from alley.store import HistoryStore

PROJECT_NAME = "alley"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------
# Connecting
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def alley_connect(settings: Settings) -> Database[Any] | None:
    """Connect to the server and return the database migrations run against.

    Called once per command that needs the database (never by ``create``), and only
    when the caller did not pass a database of its own (``Migrations(path, db)``).
    The returned database must answer: raise :class:`alley.errors.ConnectionFailed`
    with a one-line message (never containing the password) if it does not.

    Stops at first non-None result. Returning ``None`` leaves it to the next plugin.

    :param settings: The resolved settings (URL, host, port, credentials, timeout).
    :returns: A pymongo ``Database``.

    Default: ``alley_plugins.mongoengine_connection`` (``mongoengine.connect`` and
    ``get_db``, as alley 0.0.3 did).
    """


@hookspec(firstresult=True)
def alley_connect_async(settings: Settings, db: Database[Any]) -> AsyncConnection | None:
    """Return the connection ``async def`` migrations run on: an object with ``db``
    (PyMongo's ``AsyncDatabase`` of the same database as ``db``), ``run(coroutine)``
    (runs it to its end on the event loop the client belongs to, in the calling thread,
    raising ``KeyboardInterrupt`` at Ctrl-C), ``closed`` and ``close()``
    (:class:`alley.data.AsyncConnection`).

    Called once per command (per database of a multi-database command), when a plan
    with an ``async def`` step is checked, so that a refusal comes before anything runs.
    Return ``None`` for a ``db`` this plugin did not connect: an application's own
    ``Database`` (``Migrations(path, db)``) gives no way to make an async client with
    its settings, and alley then refuses the async step (exit 3).

    Stops at first non-None result.

    :param settings: The resolved settings.
    :param db: The database the command's sync migrations run against.
    :returns: An :class:`alley.data.AsyncConnection`, or ``None``.

    Default: ``alley_plugins.mongoengine_connection``, for the databases of clients it
    connected: an ``AsyncMongoClient`` with the sync client's settings.
    """


@hookspec(firstresult=True)
def alley_redirect_documents(
    settings: Settings, db: Database[Any]
) -> AbstractContextManager[None] | None:
    """Return a context manager inside which the models migrations use through this
    plugin's connection (MongoEngine documents on the aliases it registered) read and
    write ``db`` instead of the command's database.

    ``alley test`` enters it around its rehearsal, whose ``db`` is a throwaway
    database (on the same server or another): a migration's documents must not reach
    the real database while its ``db`` is redirected. Leaving the block must put
    everything back, also on an error or Ctrl-C.

    Stops at first non-None result. Return ``None`` when this plugin connected nothing
    such models use (an application's own connection is not its to redirect).

    :param settings: The resolved settings.
    :param db: The database to redirect to.
    :returns: A context manager, or ``None``.

    Default: ``alley_plugins.mongoengine_connection``, for the MongoEngine aliases it
    registered (the default alias, unless the application had registered it).
    """


@hookspec
def alley_databases(
    settings: Settings, client: MongoClient[Any], requested: Sequence[str]
) -> Sequence[str] | None:
    """Return the databases a multi-database command runs over.

    Called once per command when the ``databases`` setting is given (``--databases``,
    ``ALLEY_DATABASES``, ``databases`` in ``[tool.alley]``), after connecting. Every
    plugin's names are taken, in order, each once; the command then runs over each
    database exactly as if alley had been run once per database (its own history, its
    own lock). A plugin that finds its targets elsewhere (a tenants collection, a
    service) claims an entry of ``requested`` that starts with ``@`` (e.g.
    ``--databases @tenants``), or reads its own keys of ``settings.options``.

    :param settings: The resolved settings.
    :param client: The ``MongoClient`` the command connected with.
    :param requested: The entries of the ``databases`` setting, as given.
    :returns: Database names, or ``None`` for none.

    Default: ``alley_plugins.databases`` takes the names in ``requested`` and matches its
    glob patterns (``tenant_*``, ``?``, ``[...]``) against ``listDatabaseNames``; it
    leaves ``@…`` entries to other plugins.
    """


# -------------------------------------------------------------------------
# Discovering and ordering
# -------------------------------------------------------------------------


@hookspec
def alley_discover_migrations(settings: Settings) -> Sequence[Migration] | None:
    """Return the migrations this plugin provides.

    Called by every command that needs the list of migrations (``create`` included, to
    find the next id). Every plugin contributes: results are concatenated, and two
    migrations with one id are an error whichever plugins they came from.

    When the source does not exist (yet), warn with
    :class:`alley.errors.SourceMissing` (``warnings.warn``) and return nothing: other
    sources may still provide migrations. Only when no plugin found any does the first
    such warning become the error (``create`` then starts from id 1). Raise
    :class:`alley.errors.DiscoveryError` for a source that exists but is unreadable.

    :param settings: The resolved settings; ``settings.path`` may be ``None``.
    :returns: The migrations found, in any order, or ``None`` for none.

    Default: ``alley_plugins.filesystem`` (``<PATH>/migrations/NNNN_name.py``).
    """


@hookspec(firstresult=True)
def alley_order_migrations(migrations: Sequence[Migration]) -> Sequence[Migration] | None:
    """Return the migrations in the order they apply.

    Called once after discovery. The order decided here is the order of ``status``,
    of ``up`` (a target means "up to and including it in this order"), of the
    out-of-order check, and, reversed, of ``down``. Returning other migrations than
    those given is a plugin error.

    Stops at first non-None result.

    :param migrations: Every discovered migration, ids unique.
    :returns: The same migrations, ordered.

    Default: ``alley_plugins.ordering`` orders by id.
    """


@hookspec(firstresult=True)
def alley_create_migration(settings: Settings, migration_id: int, name: str) -> str | None:
    """Write a new, empty migration and return where it was written.

    Called by ``create`` with the next id and the normalised name; makes whatever
    folder it needs. Must not connect to the server.

    Stops at first non-None result.

    :param settings: The resolved settings.
    :param migration_id: The id of the new migration (highest so far + 1).
    :param name: The normalised name, ``[a-z0-9_]+``.
    :returns: The location of the new migration (a path, for the default).

    Default: ``alley_plugins.filesystem`` writes ``migrations/NNNN_name.py``.
    """


# -------------------------------------------------------------------------
# Loading and executing
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def alley_load_migration(migration: Migration) -> LoadedMigration | None:
    """Load a migration's code and return its ``up`` and ``down`` callables.

    Called for every step of a plan **before any step runs**, so a file that does not
    compile or import stops the command with nothing done. Raise
    :class:`alley.errors.DiscoveryError` naming the file and line for such a file.

    Stops at first non-None result.

    :param migration: The migration to load.
    :returns: An object with ``up`` and ``down`` attributes (``None`` when absent).

    Default: ``alley_plugins.python_executor`` compiles ``migration.source``.
    """


@hookspec(firstresult=True)
def alley_execute_migration(
    migration: Migration, loaded: LoadedMigration, direction: Direction, db: Database[Any]
) -> bool | None:
    """Run one step of a plan: the migration's ``up`` or ``down`` against ``db``.

    Called once per step, in plan order, right before the step is recorded. Raise
    :class:`alley.errors.MigrationFailed` (with the user's file and line in the message)
    when the migration's code raises anything, ``SystemExit`` included; the step is
    then not recorded and nothing after it runs. Wrap this hook (``wrapper=True``) to
    time, log or guard each step.

    Stops at first non-None result.

    :param migration: The migration of this step.
    :param loaded: What :func:`alley_load_migration` returned for it.
    :param direction: ``Direction.UP`` or ``Direction.DOWN``.
    :param db: The database the migration runs against; for a migration that declares
        ``transaction = True``, an :class:`alley.transactions.TransactionalDatabase` that
        puts every operation in the step's transaction (docs/transactions.md).
    :returns: ``True`` once executed.

    Default: ``alley_plugins.python_executor`` calls ``loaded.up(db)`` / ``loaded.down(db)``
    (``async def`` ones on PyMongo's ``AsyncMongoClient``: docs/async.md).
    """


# -------------------------------------------------------------------------
# Recording
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def alley_history_store(settings: Settings, db: Database[Any]) -> HistoryStore | None:
    """Return the store that records which migrations are applied.

    Called once per command that reads or writes history. A plugin that returns a store
    owns all of history: the records, the lock and the run log
    (:class:`alley.store.HistoryStore`: three small protocols, 11 methods; prove a store
    with ``alley.testing.store_contract``). An unexpected error raised by the store's
    methods is reported naming this plugin.

    Stops at first non-None result.

    :param settings: The resolved settings (``settings.options`` holds ``[tool.alley]``).
    :param db: The database migrations run against.
    :returns: A :class:`alley.store.HistoryStore`.

    Default: ``alley_plugins.mongo_history`` (the ``db_migrations`` collection of ``db``).
    """


# -------------------------------------------------------------------------
# Checking
# -------------------------------------------------------------------------


@hookspec
def alley_lint_rules() -> Sequence[Rule] | None:
    """Return lint rules: static checks of migration files for ``alley lint``.

    Called once per ``lint``, and by ``up``, ``up --plan`` and ``status --check``,
    whose pre-flight refuses a plan when an error-level rule finds something in a
    pending step (exit 3; ``--no-lint`` skips it). Each :class:`alley.lint.Rule` has an
    id, a severity and a check that gets a file's :class:`alley.lint.Source` (its name,
    text and ``ast`` tree) and returns ``(line, message)`` pairs. A check must not
    import the migration nor connect: ``lint`` runs without a server. Every plugin's
    rules are used; when two give the same id, the first called wins (an installed
    plugin's over the defaults').

    :returns: The rules this plugin adds (``None``: none).

    Default: ``alley_plugins.lint_rules`` (``pymongo3-removed``, ``missing-down``,
    ``empty-down``, ``destructive``, ``unique-without-check``, ``index-in-transaction``).
    """


# -------------------------------------------------------------------------
# Switching tools
# -------------------------------------------------------------------------


@hookspec
def alley_history_importers() -> Sequence[HistoryImporter] | None:
    """Return readers of other migration tools' history, for ``alley import-history``.

    Called once per ``import-history``. Each :class:`alley.import_history.HistoryImporter`
    names a tool (what ``--from`` takes), the collection it keeps its history in by
    default (``--collection`` overrides it), and a function that gets that pymongo
    ``Collection`` and returns a :class:`alley.import_history.ForeignEntry` (what the
    tool recorded, its id and name, when it was applied) per migration the tool counts
    as applied. It must only read: the other tool's history is never written. When two
    plugins read the same tool, the first called wins (an installed plugin's over the
    defaults').

    :returns: The importers this plugin adds (``None``: none).

    Default: ``alley_plugins.history_importers`` (``migrate-mongo``,
    ``pymongo-migrate``, ``mongodb-migrations``, ``flask-mongoengine-migrations``).
    """
