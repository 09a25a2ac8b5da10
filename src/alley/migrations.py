"""The Python API of alley 0.0.3, on today's engine.

:class:`Migrations` is both APIs at once. Its ``up``/``down``/``status``/``create``
return reports and raise :class:`~alley.errors.AlleyError` subclasses
(``docs/api.md``); ``create``/``up``/``down`` also log 0.0.3's lines. The rest of
0.0.3's surface -- :class:`MigrationFile`, ``get_migration_files``, ``show_status``,
``get_migrations_to_up``... and :class:`MongoMigrations` -- is kept for code written
against 0.0.3: every call goes through :mod:`alley.api` (lock, run log, checksums,
records), logs 0.0.3's messages on the ``alley.migrations`` logger, and issues a
:class:`DeprecationWarning` naming what to use instead.

A subclass's ``MIGRATIONS_COLLECTION`` is the ``history_collection`` option and its
``MIGRATIONS_DIRECTORY`` the ``migrations_directory`` option (``""``: PATH itself holds
the migrations), as 0.0.3 subclasses expect.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from alley import api, planning
from alley.errors import AlleyError, MigrationsFolderMissing, UsageError
from alley.model import CreateResult, Direction, LogEntry, RunReport, State, StatusReport
from alley.settings import Settings, load_settings

logger = logging.getLogger(__name__)

_NEW_API = "alley.Migrations(path, db)"


def _deprecated(old: str, new: str) -> None:
    """Warn at the caller of the deprecated method (not at alley's own lines)."""
    warnings.warn(f"{old} is alley 0.0.3's API; use {new}", DeprecationWarning, stacklevel=3)


class MigrationFile:
    """A migration file as 0.0.3 listed it: its id and filename."""

    PATTERN = r"^(?P<id>[0-9]+)_[a-z0-9_]+\.py$"

    def __init__(self, id: int | str, filename: str) -> None:
        self.id = int(id)
        self.filename = filename

    def __str__(self) -> str:
        return f"{self.id}: {self.filename}"

    def __repr__(self) -> str:
        return f"MigrationFile({self.id!r}, {self.filename!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MigrationFile):
            return NotImplemented
        return self.id == other.id and self.filename == other.filename

    def __hash__(self) -> int:
        return hash((self.id, self.filename))

    @staticmethod
    def normalize_name(name: str) -> str:
        """0.0.3's normalisation, kept exactly: not lower-cased (``create`` lower-cases)."""
        return re.sub("[^a-z0-9_]", "_", name)

    @staticmethod
    def validate_id(migration_id: int | str) -> int | None:
        """The id as an int (``3``, ``"3"``, ``"0003_add_users.py"``); ``None``, logged
        as an error, when it is not one."""
        try:
            return planning.parse_target(migration_id)
        except UsageError:
            logger.error("Invalid migration_id %s ", migration_id)
            return None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "filename": self.filename}


def _overridden(cls: type, attribute: str) -> bool:
    """Whether a subclass of :class:`Migrations` sets ``attribute`` itself."""
    for klass in cls.__mro__:
        if klass is Migrations:
            return False
        if attribute in vars(klass):
            return True
    return False


class Migrations:
    """The migrations under ``path`` (the parent of ``migrations/``), run against ``db``.

    :param path: The folder that contains ``migrations/``; ``None`` auto-detects it.
    :param db: A pymongo ``Database`` (MongoEngine's ``get_db()`` or a ``MongoClient``'s);
        ``None`` connects with the settings from the environment and pyproject.toml.
    :param plugins: Extra ``(name, plugin)`` pairs, registered after all others.
    :param settings: Any other setting, as on the command line (``database=``, ``url=``…).
    """

    #: 0.0.3's history collection; a subclass's value is the ``history_collection`` option.
    MIGRATIONS_COLLECTION: ClassVar[str] = "db_migrations"
    #: 0.0.3's folder under PATH; a subclass's value is the ``migrations_directory``
    #: option (``""``: PATH itself).
    MIGRATIONS_DIRECTORY: ClassVar[str] = "migrations"
    NO_MIGRATIONS_MSG: ClassVar[str] = "All migrations registered, nothing to execute"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        db: Any = None,
        *,
        plugins: Sequence[tuple[str, object]] = (),
        **settings: Any,
    ) -> None:
        resolved = load_settings({"path": path, **settings})
        given = {str(pair).partition("=")[0].strip() for pair in settings.get("options") or ()}
        overrides = {
            option: getattr(self, attribute)
            for attribute, option in (
                ("MIGRATIONS_COLLECTION", "history_collection"),
                ("MIGRATIONS_DIRECTORY", "migrations_directory"),
            )
            if _overridden(type(self), attribute) and option not in given
        }
        if overrides:
            resolved = dataclasses.replace(resolved, options={**resolved.options, **overrides})
        self.settings: Settings = resolved
        self.project = api.Project(self.settings, db=db, plugins=plugins)
        self.path: Any = path if path is not None else resolved.path
        folder = self._folder_name
        if path is not None:
            self.directory: str | None = os.path.join(path, folder)
        else:
            from alley_plugins.filesystem import migrations_folder

            found = migrations_folder(resolved)
            self.directory = str(found) if found is not None else None

    # -- 0.0.3's attributes -------------------------------------------------------------

    @property
    def _folder_name(self) -> str:
        return str(self.settings.options.get("migrations_directory", self.MIGRATIONS_DIRECTORY))

    @property
    def _collection_name(self) -> str:
        return str(self.settings.options.get("history_collection", self.MIGRATIONS_COLLECTION))

    @property
    def db(self) -> Any:
        """The database migrations run against (connecting first when none was given)."""
        return self.project.db

    @property
    def collection(self) -> Any:
        """The history collection: ``db[MIGRATIONS_COLLECTION]`` (the
        ``history_collection`` option when set)."""
        return self.db[self._collection_name]

    # -- the API of both versions ------------------------------------------------------

    def up(self, migration_id: int | str | None = None, fake: bool = False) -> RunReport:
        """Apply pending migrations up to and including ``migration_id`` (all if ``None``).

        A ``migration_id`` that is applied already is a successful no-op (as in 0.0.3).
        Logs ``Executing migration: <filename>`` before each step.

        :raises UsageError: an invalid id, or one that no migration has.
        :raises MigrationsFolderMissing: no migrations folder (0.0.3 logged and returned).
        """
        target = self._target(migration_id)
        self._new_command()
        try:
            report = api.up(self.settings, target, fake=fake, project=self.project, on_start=_log)
        except MigrationsFolderMissing:
            self._log_missing_directory()
            raise
        except UsageError:
            if target is not None:
                logger.error("Migration is not in unregistered list: %s", target)
            raise
        if not report.steps:
            if target is None:
                logger.info(self.NO_MIGRATIONS_MSG)
            else:
                logger.info("Migration %s is already applied, nothing to execute", target)
        return report

    def down(
        self, migration_id: int | str | None = None, fake: bool = False, *, steps: int | None = None
    ) -> RunReport:
        """Roll back applied migrations, newest first, down to and including ``migration_id``;
        the last ``steps`` of them; or, with neither, the last applied one.

        Logs ``Rollback migration <filename>`` before each step.

        :raises UsageError: an invalid id, one that no migration has, or a pending one.
        :raises MigrationsFolderMissing: no migrations folder (0.0.3 logged and returned).
        """
        target = self._target(migration_id)
        self._new_command()
        try:
            return api.down(
                self.settings, target, steps=steps, fake=fake, project=self.project, on_start=_log
            )
        except MigrationsFolderMissing:
            self._log_missing_directory()
            raise
        except UsageError:
            self._log_not_down(target)
            raise

    def redo(self, fake: bool = False) -> api.RedoReport:
        """Roll back the last applied migration, then apply it again, under one lock."""
        self._new_command()
        return api.redo(self.settings, fake=fake, project=self.project, on_start=_log)

    def status(self) -> StatusReport:
        """Every migration and its state."""
        self._new_command()
        return api.status(self.settings, project=self.project)

    def create(self, name: str) -> CreateResult:
        """Write ``migrations/<next id>_<name>.py``; logs its filename, as 0.0.3 did."""
        self._new_command()
        result = api.create(self.settings, name, project=self.project)
        logger.info(Path(result.location).name)
        return result

    # -- alley 0.0.3 only --------------------------------------------------------------

    def get_migration_files(self) -> list[MigrationFile]:
        """Every migration, sorted by id.

        :raises MigrationsFolderMissing: no migrations folder.
        """
        _deprecated("Migrations.get_migration_files()", f"{_NEW_API}.status().statuses")
        return self._migration_files()

    def get_unregistered_migrations(self) -> list[MigrationFile]:
        """The pending migrations, in the order they apply."""
        _deprecated("Migrations.get_unregistered_migrations()", f"{_NEW_API}.status().pending")
        return self._unregistered()

    def check_directory(self) -> bool:
        """Whether the migrations folder exists; logs 0.0.3's errors when it does not."""
        _deprecated("Migrations.check_directory()", f"{_NEW_API}.status()")
        return self._check_directory()

    def show_status(self) -> None:
        """Log the pending migrations (``Unregistered migrations:`` then one filename a
        line), or ``NO_MIGRATIONS_MSG``. A missing folder is logged, never raised."""
        _deprecated("Migrations.show_status()", f"{_NEW_API}.status()")
        self._show_status()

    def get_new_filename(self, name: str) -> str:
        """The filename 0.0.3 would have given a new migration: the next id, and NAME
        normalised as 0.0.3 did (not lower-cased; ``create`` lower-cases)."""
        _deprecated("Migrations.get_new_filename()", f"{_NEW_API}.create(name)")
        return f"{self._next_id():04}_{MigrationFile.normalize_name(name)}.py"

    def load_migration_file(self, filename: str) -> ModuleType:
        """Execute ``filename`` (in the migrations folder) and return it as a module."""
        _deprecated(
            "Migrations.load_migration_file()",
            f"{_NEW_API}.up()/down(), which load, check and run migrations",
        )
        location = os.path.join(self.directory or ".", filename)
        spec = importlib.util.spec_from_file_location("migration", location)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {location}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def get_migrations_to_up(self, migration_id: int | str | None = None) -> list[MigrationFile]:
        """What ``up(migration_id)`` would apply, in order: ``up``'s own plan and
        pre-flight (``alley.api.plan_up``), writing nothing. An invalid or unknown id
        is logged (0.0.3's messages) and gives ``[]``."""
        _deprecated(
            "Migrations.get_migrations_to_up()",
            "alley.api.plan_up(migrations.settings, migration_id)",
        )
        target = None
        if migration_id is not None:
            target = MigrationFile.validate_id(migration_id)
            if not target:
                return []
        self._new_command()
        try:
            planned = api.plan_up(self.settings, target, project=self.project)
        except UsageError:
            logger.error("Migration is not in unregistered list: %s", target)
            self._show_status()
            return []
        if not planned.plan:
            if target is None:
                logger.info(self.NO_MIGRATIONS_MSG)
            else:
                logger.info("Migration %s is already applied, nothing to execute", target)
        return [
            MigrationFile(s.id, s.migration.filename if s.migration else s.filename)
            for s in planned.plan.steps
        ]

    def get_last_migrated_id(self) -> int | None:
        """The id of the most recently applied migration (by record date); ``None`` when
        none is (0.0.3 raised ``IndexError``)."""
        _deprecated("Migrations.get_last_migrated_id()", f"{_NEW_API}.status().applied")
        self._new_command()
        with self.project.attributed():
            records = self.project.store.read_records()
        if not records:
            return None
        newest = max(records, key=lambda r: (r.date is not None, r.date or 0, r.id))
        return newest.id

    def get_migrations_to_down(self, migration_id: int | str) -> list[MigrationFile]:
        """What ``down(migration_id)`` would roll back, newest first
        (``alley.api.plan_down``), writing nothing. An invalid, unknown or pending id is
        logged (0.0.3's messages) and gives ``[]``."""
        _deprecated(
            "Migrations.get_migrations_to_down()",
            "alley.api.plan_down(migrations.settings, migration_id)",
        )
        target = MigrationFile.validate_id(migration_id)
        if not target:
            return []
        self._new_command()
        try:
            planned = api.plan_down(self.settings, target, project=self.project)
        except UsageError:
            self._log_not_down(target)
            return []
        return [
            MigrationFile(s.id, s.migration.filename if s.migration else s.filename)
            for s in planned.plan.steps
        ]

    # -- the work behind 0.0.3's methods (which call each other without warning) -------

    def _new_command(self) -> None:
        """Each call is a command of its own: read the files again (one created or
        edited since the last call counts) and start with no notes. The connection,
        plugins and store are kept."""
        self.project.__dict__.pop("migrations", None)
        self.project.notes.clear()

    def _target(self, migration_id: int | str | None) -> int | None:
        if migration_id is None:
            return None
        target = MigrationFile.validate_id(migration_id)
        if target is None:
            raise UsageError(
                f"invalid migration id {migration_id!r}",
                hint="give the number at the start of its filename",
            )
        return target

    def _migration_files(self) -> list[MigrationFile]:
        self._new_command()
        with self.project.attributed():
            found = self.project.migrations
        return sorted((MigrationFile(m.id, m.filename) for m in found), key=lambda m: m.id)

    def _unregistered(self) -> list[MigrationFile]:
        self._new_command()
        report = api.status(self.settings, project=self.project)
        return [
            MigrationFile(s.id, s.migration.filename)
            for s in report.statuses
            if s.state is State.PENDING and s.migration is not None
        ]

    def _check_directory(self) -> bool:
        exists = self.directory is not None and os.path.exists(self.directory)
        if not exists:
            self._log_missing_directory()
        return exists

    def _log_missing_directory(self) -> None:
        logger.error("No migrations directory found. Check your path or create a migration first.")
        logger.error("Directory: %s", self.directory)

    def _show_status(self) -> None:
        if not self._check_directory():
            return
        try:
            pending = self._unregistered()
        except MigrationsFolderMissing:
            self._log_missing_directory()
            return
        if pending:
            logger.info("Unregistered migrations:")
            for migration in pending:
                logger.info(migration.filename)
        else:
            logger.info(self.NO_MIGRATIONS_MSG)

    def _next_id(self) -> int:
        try:
            existing = [m.id for m in self._migration_files()]
        except MigrationsFolderMissing:
            existing = []
        if self.project.hooks.manager.has_plugin("filesystem"):
            from alley_plugins import filesystem

            existing += filesystem.numbered_ids(self.settings)
        return planning.next_id(existing)

    def _log_not_down(self, target: int | None) -> None:
        """0.0.3's error for a ``down`` target: unknown, or not applied."""
        try:
            statuses = api.status(self.settings, project=self.project).statuses
        except AlleyError:
            return
        if not any(s.id == target for s in statuses):
            logger.error("Migration does not exists %s", target)
        else:
            logger.error("Migration is not applied %s", target)


def _log(step: LogEntry) -> None:
    """0.0.3's line before each step of ``up``/``down``."""
    if step.direction is Direction.UP:
        logger.info("Executing migration: %s", step.filename)
    else:
        logger.info("Rollback migration %s", step.filename)


class MongoMigrations:
    """alley 0.0.3's helper for command-line tools: connection arguments, then
    :attr:`migrations`. Connects as 0.0.3 did -- MongoEngine's ``connect`` with host
    ``localhost`` and port 27017 by default, the credentials, ``authentication_source=
    auth``, and database ``test`` when ``database`` is ``None`` -- through alley's own
    connection plugin, on first use (``create`` never connects).
    """

    path: Any = None

    def __init__(
        self,
        path: str | os.PathLike[str],
        database: str | None,
        username: str | None,
        password: str | None,
        host: str | None = None,
        port: int | None = None,
        auth: str | None = None,
    ) -> None:
        _deprecated(
            "alley.MongoMigrations",
            f"{_NEW_API} (or Migrations(path, database=..., "
            "host=..., port=..., username=..., password=..., auth_source=...)) and its "
            "up()/down()/status()/create(), or the alley command",
        )
        self.path = path
        self._connection: dict[str, Any] = {
            "database": database or "test",  # MongoEngine's default, as in 0.0.3
            "username": username,
            "password": password,
            "auth_source": auth,
            "host": host or "localhost",
            "port": port or 27017,
        }
        self._project = api.Project(load_settings(self._connection))

    @property
    def db(self) -> Any:
        """The pymongo ``Database`` (connects on first use)."""
        return self._project.db

    @property
    def migrations(self) -> Migrations:
        """A new :class:`Migrations` for ``path``, on this connection."""
        connected = self._project.__dict__.get("db")
        return Migrations(self.path, connected, **self._connection)


__all__ = ["MigrationFile", "Migrations", "MongoMigrations"]
