"""Typed calls of alley's hooks: ``manager.hook.*`` is untyped, so every call goes here.

Each call checks what the plugins returned and turns an unexpected exception raised
inside a plugin into an error that names the plugin.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pluggy

from alley.errors import ConnectionFailed, MigrationsFolderMissing, PluginError, SourceMissing
from alley.model import Direction, HistoryStore, LoadedMigration, Migration
from alley.plugins import blame

if TYPE_CHECKING:
    from pymongo.database import Database

    from alley.settings import Settings


class Hooks:
    """The hooks of one plugin manager, as typed methods."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._hook = manager.hook

    @contextmanager
    def _attributed(self, owner_module: str | None = None) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            connection_error = _as_connection_error(error)
            if connection_error is not None:
                raise connection_error from error
            plugin_error = blame(self.manager, error, owner_module)
            if plugin_error is not None:
                raise plugin_error from error
            raise

    def _required(self, result: Any, hook: str) -> Any:
        if result is None:
            raise PluginError(
                f"no plugin implements {hook}",
                hint="a default plugin was disabled without a replacement; see 'alley plugins'",
            )
        return result

    def connect(self, settings: Settings) -> Database[Any]:
        with self._attributed():
            result = self._hook.alley_connect(settings=settings)
        return self._required(result, "alley_connect")  # type: ignore[no-any-return]

    def discover(self, settings: Settings) -> list[Migration]:
        """Every plugin's migrations, ordered.

        :raises MigrationsFolderMissing: no plugin found a migration and one of them
            said its source does not exist.
        """
        with warnings.catch_warnings(record=True) as caught, self._attributed():
            warnings.simplefilter("always")
            results = self._hook.alley_discover_migrations(settings=settings)
        missing = [w.message for w in caught if isinstance(w.message, SourceMissing)]
        for warning in caught:
            if not isinstance(warning.message, SourceMissing):
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        migrations = [m for result in results if result for m in result]
        if not migrations and missing:
            raise MigrationsFolderMissing(missing[0].message, hint=missing[0].hint)
        with self._attributed():
            ordered = self._hook.alley_order_migrations(migrations=migrations)
        return list(self._required(ordered, "alley_order_migrations"))

    def create(self, settings: Settings, migration_id: int, name: str) -> str:
        with self._attributed():
            result = self._hook.alley_create_migration(
                settings=settings, migration_id=migration_id, name=name
            )
        return str(self._required(result, "alley_create_migration"))

    def load(self, migration: Migration) -> LoadedMigration:
        with self._attributed():
            result = self._hook.alley_load_migration(migration=migration)
        return self._required(result, "alley_load_migration")  # type: ignore[no-any-return]

    def execute(
        self, migration: Migration, loaded: LoadedMigration, direction: Direction, db: Any
    ) -> None:
        with self._attributed():
            result = self._hook.alley_execute_migration(
                migration=migration, loaded=loaded, direction=direction, db=db
            )
        self._required(result, "alley_execute_migration")

    def history_store(self, settings: Settings, db: Any) -> HistoryStore:
        with self._attributed():
            result = self._hook.alley_history_store(settings=settings, db=db)
        return self._required(result, "alley_history_store")  # type: ignore[no-any-return]

    def store_call(self, call: Any, *args: Any) -> Any:
        """Call a history store method; an error is blamed on the plugin of the store's class."""
        owner = getattr(call, "__self__", None)
        with self._attributed(type(owner).__module__ if owner is not None else None):
            return call(*args)


def _as_connection_error(error: BaseException) -> ConnectionFailed | None:
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
