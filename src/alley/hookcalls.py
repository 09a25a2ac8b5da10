"""Typed calls of alley's hooks: ``manager.hook.*`` is untyped, so every call goes here.

Each call checks that some plugin provides the capability (exit 8 when none does) and
what the plugins returned. :meth:`Hooks.attributed` wraps a whole command: an
unexpected exception raised inside a plugin -- the history store's methods included --
becomes an error that names the plugin.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from alley.errors import ConnectionFailed, MigrationsFolderMissing, PluginError, SourceMissing
from alley.model import Direction, LoadedMigration, Migration
from alley.plugins import blame
from alley.settings import DEFAULT_DATABASE

if TYPE_CHECKING:
    from pymongo.database import Database

    from alley.settings import Connection, Settings
    from alley.store import HistoryStore

#: hook name → the capability it provides, for "no plugin provides ..." (exit 8).
CAPABILITIES = {
    "alley_connect": "connecting to the server",
    "alley_discover_migrations": "discovering migrations",
    "alley_order_migrations": "ordering migrations",
    "alley_create_migration": "creating migrations",
    "alley_load_migration": "loading migrations",
    "alley_execute_migration": "executing migrations",
    "alley_history_store": "a history store",
}


_NOT_A_STORE_MODULE = frozenset({"builtins", "typing", "abc", "alley.store"})


@dataclass(frozen=True)
class Found:
    """What discovery found, in order, and notes about sources that do not exist."""

    migrations: list[Migration]
    notes: tuple[str, ...] = ()


class Hooks:
    """The hooks of one plugin manager, as typed methods."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._hook = manager.hook
        self._connected: Settings | None = None  # the settings of the last connect

    @contextmanager
    def attributed(self) -> Iterator[None]:
        """Around one hook call: see :meth:`reraise_attributed`."""
        try:
            yield
        except Exception as error:
            self.reraise_attributed(error)
            raise

    def reraise_attributed(self, error: Exception, store: object | None = None) -> None:
        """Raise ``error`` as a PluginError naming the plugin it came from, or a lost
        connection as ConnectionFailed; return if it is neither. ``store``'s class (and
        its bases) name the history store's plugin."""
        connection_error = as_connection_error(error)
        if connection_error is not None:
            raise connection_error from error
        if self._connected is not None:
            target = self._connected.connection()
            refused = refusal(error, target, target.database or DEFAULT_DATABASE)
            if refused is not None:
                raise refused from error
        owners = [
            c.__module__
            for c in (type(store).__mro__ if store is not None else ())
            if c.__module__ not in _NOT_A_STORE_MODULE
        ]
        plugin_error = blame(self.manager, error, owners)
        if plugin_error is not None:
            raise plugin_error from error

    def _require(self, hook: str) -> None:
        if not getattr(self._hook, hook).get_hookimpls():
            raise PluginError(
                f"no plugin provides {CAPABILITIES[hook]} ({hook})",
                hint="a default plugin was disabled without a replacement; see 'alley plugins'",
            )

    def _result(self, result: Any, hook: str) -> Any:
        if result is None:
            raise PluginError(
                f"no plugin provided {CAPABILITIES[hook]}: every {hook} returned None",
                hint="see 'alley plugins'",
            )
        return result

    def connect(self, settings: Settings) -> Database[Any]:
        self._require("alley_connect")
        self._connected = settings
        with self.attributed():
            result = self._hook.alley_connect(settings=settings)
        return self._result(result, "alley_connect")  # type: ignore[no-any-return]

    def connect_async(self, settings: Settings, db: Any) -> Any:
        """A plugin's connection for ``async def`` migrations on ``db``, or ``None``."""
        with self.attributed():
            return self._hook.alley_connect_async(settings=settings, db=db)

    def redirect_documents(self, settings: Settings, db: Any) -> AbstractContextManager[None]:
        """A plugin's redirection of its models' database to ``db`` (a no-op if none)."""
        with self.attributed():
            found = self._hook.alley_redirect_documents(settings=settings, db=db)
        return contextlib.nullcontext() if found is None else found

    def databases(self, settings: Settings, client: Any) -> list[str]:
        """Every plugin's databases for ``settings.databases``, in order, each once."""
        with self.attributed():
            results = self._hook.alley_databases(
                settings=settings, client=client, requested=settings.databases
            )
        # pluggy calls the last registered first: reversed, the defaults' names come first.
        names = (name for result in reversed(results) if result for name in result)
        return list(dict.fromkeys(names))

    def discover(self, settings: Settings) -> Found:
        """Every plugin's migrations, in the order the ``alley_order_migrations`` hook
        decides.

        :raises MigrationsFolderMissing: no plugin found a migration and one of them
            said its source does not exist.
        """
        self._require("alley_discover_migrations")
        self._require("alley_order_migrations")
        with warnings.catch_warnings(record=True) as caught, self.attributed():
            warnings.simplefilter("always")
            results = self._hook.alley_discover_migrations(settings=settings)
        missing = [w.message for w in caught if isinstance(w.message, SourceMissing)]
        for warning in caught:  # every other warning reaches the user as it was raised
            if not isinstance(warning.message, SourceMissing):
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        migrations = [m for result in results if result for m in result]
        if not migrations and missing:
            raise MigrationsFolderMissing(missing[0].message, hint=missing[0].hint)
        with self.attributed():
            ordered = self._hook.alley_order_migrations(migrations=migrations)
        ordered = list(self._result(ordered, "alley_order_migrations"))
        if sorted(id(m) for m in ordered) != sorted(id(m) for m in migrations):
            raise PluginError(
                "alley_order_migrations returned other migrations than it was given",
                hint="an ordering plugin must return the same migrations, reordered",
            )
        return Found(ordered, tuple(str(m) for m in missing))

    def create(self, settings: Settings, migration_id: int, name: str) -> str:
        self._require("alley_create_migration")
        with self.attributed():
            result = self._hook.alley_create_migration(
                settings=settings, migration_id=migration_id, name=name
            )
        return str(self._result(result, "alley_create_migration"))

    def load(self, migration: Migration) -> LoadedMigration:
        self._require("alley_load_migration")
        with self.attributed():
            result = self._hook.alley_load_migration(migration=migration)
        return self._result(result, "alley_load_migration")  # type: ignore[no-any-return]

    def execute(
        self, migration: Migration, loaded: LoadedMigration, direction: Direction, db: Any
    ) -> None:
        self._require("alley_execute_migration")
        with self.attributed():
            result = self._hook.alley_execute_migration(
                migration=migration, loaded=loaded, direction=direction, db=db
            )
        self._result(result, "alley_execute_migration")

    def history_store(self, settings: Settings, db: Any) -> HistoryStore:
        self._require("alley_history_store")
        with self.attributed():
            result = self._hook.alley_history_store(settings=settings, db=db)
        return self._result(result, "alley_history_store")  # type: ignore[no-any-return]


def as_connection_error(error: BaseException | None) -> ConnectionFailed | None:
    # pymongo is only imported once something connected; no connection, no such error.
    errors = sys.modules.get("pymongo.errors")
    if errors is None or not isinstance(error, errors.ConnectionFailure):
        return None
    return ConnectionFailed(f"lost the connection to the server: {driver_message(error)}")


def driver_message(error: BaseException) -> str:
    """The useful first part of a pymongo error: no topology dump, no timeout settings."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = text.split(" (configured timeouts", 1)[0]
    return text.split(", Timeout:", 1)[0].rstrip(" ,")


def refusal(error: BaseException, target: Connection, database: str) -> ConnectionFailed | None:
    """The server's refusal of the credentials as exit 4, else ``None``: authentication
    failed (code 18), or a command refused as unauthorized (code 13), which without
    credentials means the server requires authentication."""
    errors = sys.modules.get("pymongo.errors")
    if errors is None or not isinstance(error, errors.OperationFailure):
        return None
    user = target.username or "(from the URL)"
    if error.code == 18:
        return ConnectionFailed(
            f"authentication failed for user {user} at {target.where}",
            hint="check the username, password and -a/--auth database",
        )
    if error.code != 13:
        return None
    if target.username:
        return ConnectionFailed(
            f"user {user} is not authorized on database {database} at {target.where}",
            hint="check the user's roles and the -a/--auth database",
        )
    return ConnectionFailed(
        f"the server at {target.where} requires authentication to use database {database}",
        hint="pass -u USER and set ALLEY_PASSWORD, or pass -w",
    )


def close_connections() -> None:
    """Close the clients alley's connection plugin opened: the end of a command.

    Never raises (it runs after the command's outcome is decided).
    """
    plugin = sys.modules.get("alley_plugins.mongoengine_connection")
    if plugin is None:  # nothing connected
        return
    with contextlib.suppress(Exception):  # best effort: the outcome is already decided
        plugin.close_connections()
