"""The programmatic API: every command of the CLI as a function that returns data.

Each function takes :class:`~alley.settings.Settings` first, does its work through the
plugin hooks, and returns a report; none prints or exits. The CLI is a thin skin over
these, and :class:`alley.Migrations` (the 0.0.3 API) wraps them too.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from alley import planning
from alley.errors import AlleyWarning, MigrationsFolderMissing
from alley.hookcalls import Hooks
from alley.model import (
    CreateResult,
    Direction,
    HistoryStore,
    Migration,
    MigrationStatus,
    PluginInfo,
    RunReport,
    StatusReport,
)
from alley.plugins import build_plugin_manager, plugin_infos
from alley.runner import StepCallback, run_plan
from alley.settings import Settings


class Project:
    """One command's view of a project: its settings, plugins, database and history.

    Everything is computed on first use, so a command pays only for what it needs
    (``create`` never connects).

    :param settings: Resolved settings.
    :param db: A pymongo ``Database`` to use instead of connecting (``Migrations(path, db)``).
    :param plugins: Extra ``(name, plugin)`` pairs registered after all others.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        db: Any = None,
        plugins: Sequence[tuple[str, object]] = (),
    ) -> None:
        self.settings = settings
        self._db = db
        self._extra_plugins = plugins

    @cached_property
    def hooks(self) -> Hooks:
        return Hooks(
            build_plugin_manager(self.settings.disable_plugins, extra_plugins=self._extra_plugins)
        )

    @cached_property
    def db(self) -> Any:
        return self._db if self._db is not None else self.hooks.connect(self.settings)

    @cached_property
    def store(self) -> HistoryStore:
        return self.hooks.history_store(self.settings, self.db)

    def migrations(self) -> list[Migration]:
        migrations = self.hooks.discover(self.settings)
        planning.check_unique_ids(migrations)
        return migrations

    def statuses(self) -> tuple[MigrationStatus, ...]:
        migrations = self.migrations()
        history = self.hooks.store_call(self.store.read)
        return planning.reconcile(migrations, history)


@contextmanager
def _collect_warnings() -> Iterator[list[str]]:
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AlleyWarning)
        yield messages
    messages.extend(str(w.message) for w in caught if issubclass(w.category, AlleyWarning))


def create(settings: Settings, name: str, *, project: Project | None = None) -> CreateResult:
    """Write a new empty migration with the next id. Never connects to the server."""
    project = project or Project(settings)
    normalised = planning.normalise_name(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlleyWarning)
        try:
            existing = [m.id for m in project.migrations()]
        except MigrationsFolderMissing:
            existing = []
    migration_id = planning.next_id(existing)
    location = project.hooks.create(settings, migration_id, normalised)
    return CreateResult(migration_id, normalised, location)


def status(settings: Settings, *, project: Project | None = None) -> StatusReport:
    """Every migration with its state: applied (with date, drift) or pending."""
    project = project or Project(settings)
    with _collect_warnings() as messages:
        statuses = project.statuses()
    return StatusReport(statuses, tuple(messages))


def up(
    settings: Settings,
    target: int | str | None = None,
    *,
    fake: bool = False,
    allow_out_of_order: bool = False,
    project: Project | None = None,
    on_step: StepCallback | None = None,
) -> RunReport:
    """Apply pending migrations in id order, up to and including ``target``.

    :param fake: Record the migrations as applied without running them.
    """
    project = project or Project(settings)
    with _collect_warnings() as messages:
        wanted = None if target is None else planning.parse_target(target)
        plan = planning.plan_up(project.statuses(), wanted, allow_out_of_order=allow_out_of_order)
        steps = run_plan(
            plan,
            hooks=project.hooks,
            store=project.store,
            db=project.db,
            fake=fake,
            on_step=on_step,
        )
    return RunReport(Direction.UP, steps, tuple(messages))


def down(
    settings: Settings,
    target: int | str,
    *,
    fake: bool = False,
    project: Project | None = None,
    on_step: StepCallback | None = None,
) -> RunReport:
    """Roll back applied migrations newest first, down to and including ``target``.

    :param fake: Remove the records without running ``down``.
    """
    project = project or Project(settings)
    with _collect_warnings() as messages:
        plan = planning.plan_down(project.statuses(), planning.parse_target(target))
        steps = run_plan(
            plan,
            hooks=project.hooks,
            store=project.store,
            db=project.db,
            fake=fake,
            on_step=on_step,
        )
    return RunReport(Direction.DOWN, steps, tuple(messages))


def plugins(settings: Settings, *, project: Project | None = None) -> list[PluginInfo]:
    """Every registered plugin, with its distribution, version and hooks."""
    project = project or Project(settings)
    return plugin_infos(project.hooks.manager)


__all__ = ["Project", "create", "down", "plugins", "status", "up"]
