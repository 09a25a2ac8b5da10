"""The programmatic API: every command of the CLI as a function that returns data.

Each function takes :class:`~alley.settings.Settings` first, does its work through the
plugin hooks, and returns a report; none prints or exits. The CLI is a thin skin over
these, and :class:`alley.Migrations` (the 0.0.3 API) wraps them too.

Commands that write (``up``, ``down``, ``mark``) hold the lock and plan again from
history read *after* taking it, so a deploy that waited finds the work done.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from alley import planning
from alley.errors import AlleyWarning, LockBusy, MigrationsFolderMissing, UsageError
from alley.hookcalls import Hooks
from alley.locking import Lease, describe_lock, hold_lock, make_holder
from alley.model import (
    Attempt,
    CreateResult,
    Direction,
    Drift,
    Event,
    HistoryRecord,
    HistoryStore,
    LockState,
    LogEntry,
    Migration,
    MigrationStatus,
    Plan,
    PluginInfo,
    RunReport,
    State,
    StatusReport,
)
from alley.plugins import build_plugin_manager, plugin_infos
from alley.runner import RunLog, StepCallback, applied_record, run_plan
from alley.settings import Settings

WaitCallback = Callable[[LockState], None]


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
        manager = build_plugin_manager(
            self.settings.disable_plugins,
            load_only=self.settings.load_plugins,
            extra_plugins=self._extra_plugins,
        )
        return Hooks(manager)

    @cached_property
    def db(self) -> Any:
        return self._db if self._db is not None else self.hooks.connect(self.settings)

    @cached_property
    def store(self) -> HistoryStore:
        return self.hooks.history_store(self.settings, self.db)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call a store method; an unexpected error names the plugin that raised it."""
        return self.hooks.store_call(function, *args)

    def migrations(self) -> list[Migration]:
        migrations = self.hooks.discover(self.settings)
        planning.check_unique_ids(migrations)
        return migrations

    def statuses(self, lock: LockState | None = None) -> tuple[MigrationStatus, ...]:
        """Every migration's state, with its open attempt if any."""
        migrations = self.migrations()
        history = self.call(self.store.read)
        open_attempts = self.call(self.store.read_open)
        return planning.annotate(planning.reconcile(migrations, history), open_attempts, lock)

    @contextmanager
    def locked(self, command: str, on_wait: WaitCallback | None = None) -> Iterator[Session]:
        """Hold the lock; yield a session with the run log read after taking it."""
        holder = make_holder(command)
        with hold_lock(
            self.store,
            holder,
            lease_s=self.settings.lease,
            wait_s=self.settings.lock_timeout,
            call=self.call,
            on_wait=on_wait,
        ) as lease:
            log = RunLog(
                self.hooks, self.store, holder, lease.generation, server_time=lease.state.server_now
            )
            migrations = self.migrations()
            history = self.call(self.store.read)
            open_attempts = self.call(self.store.read_open)
            if log.settle_dead_attempts(
                planning.reconcile(migrations, history), open_attempts, lease.state
            ):
                open_attempts = self.call(self.store.read_open)
            # Read once under the lock: the plan is made from exactly what was read here.
            yield Session(self, lease, log, (migrations, history, open_attempts))


@dataclass
class Session:
    """A command's work under the lock."""

    project: Project
    lease: Lease
    log: RunLog
    # What was read when the lock was taken: migrations, records, open attempts.
    _read: tuple[list[Migration], list[HistoryRecord], list[LogEntry]] | None = None

    def statuses(self) -> tuple[MigrationStatus, ...]:
        if self._read is None:
            return self.project.statuses(self.lease.state)
        (migrations, history, open_attempts), self._read = self._read, None
        return planning.annotate(
            planning.reconcile(migrations, history), open_attempts, self.lease.state
        )

    def run(self, plan: Plan, *, fake: bool, on_step: StepCallback | None) -> RunReport:
        project = self.project
        if not fake:
            _prepend_sys_path(project.settings.sys_path)
        steps = run_plan(
            plan,
            hooks=project.hooks,
            store=project.store,
            db=project.db,
            log=self.log,
            lease=self.lease,
            fake=fake,
            on_step=on_step,
        )
        return RunReport(plan.direction, steps)


def _prepend_sys_path(folders: Sequence[Path]) -> None:
    """Let migrations import the project's own code, as they could when run with
    ``python -m`` from the project's root; the ``alley`` script's own folder is first
    on sys.path otherwise."""
    for folder in reversed(folders):
        entry = str(folder)
        if entry not in sys.path:
            sys.path.insert(0, entry)


@dataclass(frozen=True)
class PlanReport:
    """What ``up --plan`` / ``down --plan`` would do, and the lock as it is now."""

    plan: Plan
    lock: LockState | None
    warnings: tuple[str, ...] = ()

    @property
    def lock_description(self) -> str:
        return describe_lock(self.lock) if self.lock is not None else "never taken"


@dataclass(frozen=True)
class MarkReport:
    id: int
    filename: str
    state: State
    resolved: tuple[str, ...]


@dataclass(frozen=True)
class UnlockReport:
    before: LockState | None
    released: bool


@dataclass(frozen=True)
class VerifyReport:
    problems: tuple[str, ...]
    status: StatusReport


@contextmanager
def _collect_warnings() -> Iterator[list[str]]:
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AlleyWarning)
        yield messages
    messages.extend(str(w.message) for w in caught if issubclass(w.category, AlleyWarning))


def _with_warnings(report: Any, messages: list[str]) -> Any:
    return dataclasses.replace(report, warnings=(*report.warnings, *messages))


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
    """Every migration with its state: applied (with date, drift) or pending, and attempts."""
    project = project or Project(settings)
    with _collect_warnings() as messages:
        _lock, statuses = _current(project)
    return StatusReport(statuses, tuple(messages))


def _current(project: Project) -> tuple[LockState | None, tuple[MigrationStatus, ...]]:
    """The lock and every migration's state, read without taking the lock."""
    lock = project.call(project.store.lock_state)
    return lock, project.statuses(lock=lock)


def plan_up(
    settings: Settings,
    target: int | str | None = None,
    *,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    project: Project | None = None,
) -> PlanReport:
    """What ``up`` would run, in order, with the lock state. Writes nothing."""
    project = project or Project(settings)
    with _collect_warnings() as messages:
        lock, statuses = _current(project)
        planning.check_runnable(statuses, allow_drift=allow_drift)
        wanted = None if target is None else planning.parse_target(target)
        plan = planning.plan_up(statuses, wanted, allow_out_of_order=allow_out_of_order)
    return PlanReport(plan, lock, tuple(messages))


def plan_down(
    settings: Settings, target: int | str, *, project: Project | None = None
) -> PlanReport:
    """What ``down`` would roll back, newest first, with the lock state. Writes nothing."""
    project = project or Project(settings)
    with _collect_warnings() as messages:
        lock, statuses = _current(project)
        planning.check_runnable(statuses, allow_drift=True)
        plan = planning.plan_down(statuses, planning.parse_target(target))
    return PlanReport(plan, lock, tuple(messages))


def up(
    settings: Settings,
    target: int | str | None = None,
    *,
    fake: bool = False,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    project: Project | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
) -> RunReport:
    """Apply pending migrations in id order, up to and including ``target``.

    :param fake: Record the migrations as applied without running them.
    :param allow_out_of_order: Apply pending ids lower than the newest applied one.
    :param allow_drift: Run although applied migrations' files changed.
    :raises IntegrityError: a step was interrupted, or drift / out-of-order refused.
    :raises LockBusy: another run held the lock for longer than ``lock_timeout``.
    """
    project = project or Project(settings)
    with _collect_warnings() as messages:
        wanted = None if target is None else planning.parse_target(target)
        with project.locked("up", on_wait) as session:
            statuses = session.statuses()
            planning.check_runnable(statuses, allow_drift=allow_drift)
            plan = planning.plan_up(statuses, wanted, allow_out_of_order=allow_out_of_order)
            report = session.run(plan, fake=fake, on_step=on_step)
    return _with_warnings(report, messages)  # type: ignore[no-any-return]


def down(
    settings: Settings,
    target: int | str,
    *,
    fake: bool = False,
    project: Project | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
) -> RunReport:
    """Roll back applied migrations newest first, down to and including ``target``.

    :param fake: Remove the records without running ``down``.
    """
    project = project or Project(settings)
    with _collect_warnings() as messages:
        wanted = planning.parse_target(target)
        with project.locked("down", on_wait) as session:
            statuses = session.statuses()
            planning.check_runnable(statuses, allow_drift=True)
            plan = planning.plan_down(statuses, wanted)
            report = session.run(plan, fake=fake, on_step=on_step)
    return _with_warnings(report, messages)  # type: ignore[no-any-return]


def mark(
    settings: Settings,
    target: int | str,
    *,
    applied: bool,
    project: Project | None = None,
    on_wait: WaitCallback | None = None,
) -> MarkReport:
    """Decide a migration's state by hand, after an interruption or to accept an edit.

    ``applied=True`` records it as applied with its current file's checksum (accepting an
    edit or a rename); ``applied=False`` removes its records. Either way the decision is
    logged and settles any interrupted attempt at it. Nothing is executed.
    """
    project = project or Project(settings)
    wanted = planning.parse_target(target)
    with project.locked("mark", on_wait) as session:
        statuses = [s for s in session.statuses() if s.id == wanted]
        if not statuses:
            raise UsageError(f"no migration has id {wanted}", hint="see 'alley status'")
        log = session.log
        current = next((s for s in statuses if s.migration is not None), statuses[0])
        if applied and current.migration is None:
            raise UsageError(
                f"cannot mark {current.filename} applied: its file is gone",
                hint=f"mark it pending with 'alley mark {wanted} --pending'",
            )
        for status in statuses:
            if status.record is not None:
                project.call(project.store.remove_applied, status.record)
        if applied:
            assert current.migration is not None
            record = applied_record(
                current.migration,
                duration_s=0.0,
                fake=True,
                holder=log.holder,
                date=log.now(),
                marked=True,
            )
            project.call(project.store.record_applied, current.migration, record)
        filenames = {s.filename for s in statuses} | {
            s.migration.filename for s in statuses if s.migration is not None
        }
        unresolved = tuple(s.attempt_entry.step for s in statuses if s.attempt_entry is not None)
        project.call(project.store.close_attempts, sorted(filenames))
        filename = current.migration.filename if current.migration else current.filename
        log.append(
            log.entry(
                Event.MARKED_APPLIED if applied else Event.MARKED_PENDING,
                wanted,
                filename,
                Direction.UP if applied else Direction.DOWN,
                checksum=current.migration.checksum if current.migration else None,
                resolves=unresolved,
            )
        )
    return MarkReport(wanted, filename, State.APPLIED if applied else State.PENDING, unresolved)


def unlock(
    settings: Settings, *, force: bool = False, project: Project | None = None
) -> UnlockReport:
    """Release the lock of a dead run (or, with ``force``, of a live one)."""
    project = project or Project(settings)
    state = project.call(project.store.lock_state)
    if state is None or state.released:
        return UnlockReport(state, released=False)
    if not state.expired and not force:
        raise LockBusy(
            f"the lock is {describe_lock(state)}",
            hint="if that run is really dead, release it with 'alley unlock --force'",
        )
    project.call(project.store.release_lock, state.generation)
    return UnlockReport(state, released=True)


def history(
    settings: Settings, target: int | str | None = None, *, project: Project | None = None
) -> list[LogEntry]:
    """The run log, oldest first, with the step each run is on (or died on) as
    ``started``; only one migration's entries when ``target`` is given."""
    project = project or Project(settings)
    logged: list[LogEntry] = project.call(project.store.read_log)
    try:
        migrations = project.migrations()
    except MigrationsFolderMissing:
        migrations = []  # the log is in the database: readable without the files
    runs = planning.runs_of(
        planning.reconcile(migrations, project.call(project.store.read)),
        project.call(project.store.read_open),
        project.call(project.store.lock_state),
    )
    on = [r.current for r in runs if r.current is not None and r.current.event is Event.STARTED]
    entries = sorted([*logged, *on], key=lambda e: e.at)
    if target is None:
        return entries
    wanted = planning.parse_target(target)
    return [e for e in entries if e.migration_id == wanted]


def verify(settings: Settings, *, project: Project | None = None) -> VerifyReport:
    """Problems that make history untrustworthy: drift, interruptions, out-of-order."""
    report = status(settings, project=project)
    problems = []
    for s in report.statuses:
        if s.drift is Drift.CHANGED:
            problems.append(f"{s.filename}: changed since it was applied")
        elif s.drift is Drift.DELETED:
            problems.append(f"{s.filename}: applied, but the file is gone")
        elif s.drift is Drift.RENAMED and s.migration is not None:
            problems.append(f"{s.migration.filename}: renamed (applied as {s.filename})")
        if s.attempt is Attempt.INTERRUPTED:
            problems.append(f"{s.filename}: interrupted; decide with 'alley mark {s.id}'")
    newest = max((s.id for s in report.applied), default=None)
    if newest is not None:
        problems += [
            f"{s.filename}: pending, but older than applied migration {newest}"
            for s in report.pending
            if s.id < newest
        ]
    return VerifyReport(tuple(problems), report)


def plugins(settings: Settings, *, project: Project | None = None) -> list[PluginInfo]:
    """Every registered plugin, with its distribution, version and hooks."""
    project = project or Project(settings)
    return plugin_infos(project.hooks.manager)


__all__ = [
    "MarkReport",
    "PlanReport",
    "Project",
    "UnlockReport",
    "VerifyReport",
    "create",
    "down",
    "history",
    "mark",
    "plan_down",
    "plan_up",
    "plugins",
    "status",
    "unlock",
    "up",
    "verify",
]
