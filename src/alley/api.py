"""The programmatic API: every command of the CLI as a function that returns data.

Each function takes :class:`~alley.settings.Settings` first and returns a report; none
prints or exits. The work is the run engine's (:mod:`alley.engine`): these functions
only say which reads, plans and checks a command makes. The CLI is a thin skin over
them, and :class:`alley.Migrations` (the 0.0.3 API) wraps them too.

Every function accepts ``project=``, an :class:`~alley.engine.Engine` (also exported
as ``Project``), to reuse one connection and plugin manager across calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alley import attempts, planning
from alley.engine import (
    Checked,
    Engine,
    StartCallback,
    StepCallback,
    WaitCallback,
    read_without_files,
)
from alley.errors import AlleyError, LockBusy, MigrationsFolderMissing
from alley.import_history import ImportReport, UndoReport
from alley.lease import describe_lock
from alley.lint import LintReport, lint_source
from alley.model import (
    Attempt,
    CreateResult,
    Direction,
    Drift,
    Event,
    LockState,
    LogEntry,
    MigrationStatus,
    Plan,
    PluginInfo,
    ProgressCallback,
    RunReport,
    State,
    StatusReport,
    StepResult,
)

if TYPE_CHECKING:
    # pymongo comes with these: commands that never connect (create) must not import it.
    from alley.autogenerate import AutogenerateReport, CheckReport
    from alley.dry_run import StepForecast
    from alley.fleet import FleetReport, OutcomeCallback
    from alley.rehearsal import RehearsalReport, RehearsedCallback
from alley.plugins import plugin_infos
from alley.settings import Settings

#: The engine under the name the API documented first.
Project = Engine


@dataclass(frozen=True)
class PlanReport:
    """What ``up --plan`` / ``down --plan`` / ``redo --plan`` would do, and the lock as
    it is now. For ``redo``, ``plan`` is the roll-back and ``then`` the re-apply."""

    plan: Plan
    lock: LockState | None
    notes: tuple[str, ...] = ()
    then: Plan | None = None
    #: ``up --plan``: for each pending step whose ``up`` takes ``step``, what its
    #: helpers would do (a dry run on a read-only database; :mod:`alley.dry_run`).
    forecasts: tuple[StepForecast, ...] = ()

    def forecast(self, filename: str) -> StepForecast | None:
        """The forecast of the step ``filename``, if it was planned with its helpers."""
        return next((f for f in self.forecasts if f.filename == filename), None)

    @property
    def lock_description(self) -> str:
        return describe_lock(self.lock) if self.lock is not None else "never taken"


@dataclass(frozen=True)
class RedoReport:
    """What ``redo`` did: the roll-back step, then the re-apply step (none when nothing
    was applied)."""

    steps: tuple[StepResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def direction(self) -> str:
        return "redo"


@dataclass(frozen=True)
class StepFailure:
    """The step a run stopped on, and why."""

    id: int
    filename: str
    direction: Direction
    fake: bool
    error: str


@dataclass(frozen=True)
class FailedRun:
    """What a run had done when an error stopped it: the steps that ran, the step it
    stopped on (``None`` when it stopped between steps), the error and its exit code.

    Attached to the error raised by :func:`up`, :func:`down` and :func:`redo` once
    their first step started; read it with :func:`failed_run`.
    """

    direction: str
    steps: tuple[StepResult, ...]
    failed: StepFailure | None
    error: str
    exit_code: int
    notes: tuple[str, ...] = ()


_FAILED_RUN = "alley_failed_run"


def failed_run(error: BaseException) -> FailedRun | None:
    """The :class:`FailedRun` attached to an error raised by ``up``, ``down`` or
    ``redo`` after a step started, else ``None``."""
    found = getattr(error, _FAILED_RUN, None)
    return found if isinstance(found, FailedRun) else None


class _Steps:
    """Follows a run's steps through its callbacks, to tell what ran if it fails."""

    def __init__(self, on_step: StepCallback | None, on_start: StartCallback | None) -> None:
        self._on_step = on_step
        self._on_start = on_start
        self.done: list[StepResult] = []
        self.current: LogEntry | None = None
        self.started = False

    def start(self, entry: LogEntry) -> None:
        self.started = True
        self.current = entry
        if self._on_start is not None:
            self._on_start(entry)

    def step(self, result: StepResult) -> None:
        self.done.append(result)
        self.current = None
        if self._on_step is not None:
            self._on_step(result)

    @contextmanager
    def reported(self, direction: str, engine: Engine) -> Iterator[None]:
        """Attach a :class:`FailedRun` to an error raised once a step started."""
        try:
            yield
        except AlleyError as error:
            if self.started:
                current = self.current
                failed = (
                    StepFailure(
                        current.migration_id,
                        current.filename,
                        current.direction,
                        bool(current.fake),
                        str(error),
                    )
                    if current is not None
                    else None
                )
                run = FailedRun(
                    direction,
                    tuple(self.done),
                    failed,
                    str(error),
                    int(error.exit_code),
                    tuple(engine.notes),
                )
                setattr(error, _FAILED_RUN, run)
            raise


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


def create(settings: Settings, name: str, *, project: Engine | None = None) -> CreateResult:
    """Write a new empty migration with the next id. Never connects to the server."""
    engine = project or Engine(settings)
    normalised = planning.normalise_name(name)
    with engine.attributed():
        try:
            existing = [m.id for m in engine.migrations]
        except MigrationsFolderMissing:
            existing = []
        if engine.hooks.manager.has_plugin("filesystem"):
            from alley_plugins import filesystem

            # Numbered files discovery ignores (0003_AddUsers.py) keep their ids.
            existing += filesystem.numbered_ids(settings)
        migration_id = planning.next_id(existing)
        location = engine.hooks.create(settings, migration_id, normalised)
    return CreateResult(migration_id, normalised, location)


def lint(settings: Settings, *, project: Engine | None = None) -> LintReport:
    """Every lint finding in every migration file (:mod:`alley.lint`). Never connects.

    The rules are every plugin's (``alley_lint_rules``); ``[tool.alley] lint_ignore``
    and ``# alley: ignore[rule]`` comments silence them. The caller decides what an
    error means (the CLI exits 3; ``up``'s pre-flight refuses the plan).

    With the ``models`` setting, the models are imported (never connected) so that the
    rule ``destructive`` flags an ``$unset`` only of a field a model declares.
    """
    engine = project or Engine(settings)
    with engine.attributed():
        migrations = engine.migrations
        rules = engine.lint_rules()
        ignored = engine.lint_ignores()
        fields = None
        if settings.models:
            from alley.autogenerate import model_fields

            fields = model_fields(settings)
        findings = [
            finding
            for migration in migrations
            for finding in lint_source(
                migration.filename,
                migration.location,
                migration.source,
                rules,
                ignore=ignored,
                model_fields=fields,
            )
        ]
    return LintReport(tuple(findings), len(migrations), tuple(engine.notes))


def status(
    settings: Settings, *, check: bool = False, project: Engine | None = None
) -> StatusReport:
    """Every migration with its state: applied (with date, drift) or pending, and attempts.

    :param check: Also run ``up``'s pre-flight over what is pending (the CI gate
        ``status --check``): it fails exactly as ``up`` would, writing nothing.
    """
    engine = project or Engine(settings)
    with engine.attributed():
        snapshot = engine.snapshot()
        if check:
            _preflight_up(engine, snapshot.statuses, allow_drift=True)
    return StatusReport(snapshot.statuses, tuple(engine.notes))


def _preflight_up(
    engine: Engine,
    statuses: tuple[MigrationStatus, ...],
    target: int | str | None = None,
    *,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    retry: bool = False,
    fake: bool = False,
) -> Plan:
    wanted = None if target is None else planning.parse_target(target)
    plan = planning.plan_up(statuses, wanted, allow_out_of_order=allow_out_of_order)
    engine.preflight(statuses, plan, fake=fake, allow_drift=allow_drift, retry=retry)
    return plan


def plan_up(
    settings: Settings,
    target: int | str | None = None,
    *,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    retry: bool = False,
    fake: bool = False,
    project: Engine | None = None,
) -> PlanReport:
    """What ``up`` would run, in order, with the lock state, after ``up``'s own
    pre-flight. Writes nothing.

    Each pending step whose ``up`` takes ``step`` is run as a dry run
    (``step.dry_run``, a read-only ``db``): the report's ``forecasts`` say what its
    helpers would do (documents a backfill selects now, whether an index exists or
    would be built, and on how large a collection). Not with ``fake``."""
    engine = project or Engine(settings)
    with engine.attributed():
        snapshot = engine.snapshot()
        wanted = None if target is None else planning.parse_target(target)
        plan = planning.plan_up(snapshot.statuses, wanted, allow_out_of_order=allow_out_of_order)
        checked = engine.preflight(
            snapshot.statuses, plan, fake=fake, allow_drift=allow_drift, retry=retry
        )
        from alley import dry_run
        from alley.indexes import large_collection_threshold

        forecasts = dry_run.forecast_plan(
            checked.plan.steps,
            checked.loaded,
            engine.db,
            large_collection=large_collection_threshold(settings),
        )
    return PlanReport(plan, snapshot.lock, tuple(engine.notes), forecasts=forecasts)


def plan_down(
    settings: Settings,
    target: int | str | None = None,
    *,
    steps: int | None = None,
    retry: bool = False,
    fake: bool = False,
    project: Engine | None = None,
) -> PlanReport:
    """What ``down`` would roll back, newest first, with the lock state, after
    ``down``'s own pre-flight (see :func:`down` for ``target`` and ``steps``). Writes
    nothing."""
    engine = project or Engine(settings)
    wanted = None if target is None else planning.parse_target(target)
    planning.check_down_request(wanted, steps)
    with engine.attributed():
        snapshot = engine.snapshot()
        plan = planning.plan_down(snapshot.statuses, wanted, steps=steps)
        engine.preflight(snapshot.statuses, plan, fake=fake, allow_drift=True, retry=retry)
    return PlanReport(plan, snapshot.lock, tuple(engine.notes))


def plan_redo(
    settings: Settings,
    *,
    retry: bool = False,
    fake: bool = False,
    project: Engine | None = None,
) -> PlanReport:
    """What ``redo`` would do: roll back the last applied migration (``plan``), then
    apply it again (``then``), after ``redo``'s own pre-flight. Writes nothing."""
    engine = project or Engine(settings)
    with engine.attributed():
        snapshot = engine.snapshot()
        back, again = _preflight_redo(engine, snapshot.statuses, retry=retry, fake=fake)
    return PlanReport(back.plan, snapshot.lock, tuple(engine.notes), then=again.plan)


def _preflight_redo(
    engine: Engine, statuses: tuple[MigrationStatus, ...], *, retry: bool, fake: bool
) -> tuple[Checked, Checked]:
    """``down``'s pre-flight of the roll-back, and the file loaded for the re-apply
    (``up`` needs both functions), before anything is written. Drift is not refused: a
    migration is usually redone because its file was edited."""
    back, again = planning.plan_redo(statuses)
    checked_back = engine.preflight(statuses, back, fake=fake, allow_drift=True, retry=retry)
    return checked_back, Checked(again, {} if fake else engine.load(again))


def up(
    settings: Settings,
    target: int | str | None = None,
    *,
    fake: bool = False,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    retry: bool = False,
    project: Engine | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
    on_start: StartCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """Apply pending migrations in order, up to and including ``target``.

    :param fake: Record the migrations as applied without running them.
    :param allow_out_of_order: Apply pending ids lower than the newest applied one.
    :param allow_drift: Run although applied migrations' files changed.
    :param retry: Run again a step that failed after writing.
    :raises IntegrityError: a step waits for a person, or drift / out-of-order refused.
    :raises LockBusy: another run held the lock for longer than ``lock_timeout``.
    :raises StepUnrecorded: a step finished after this run lost its lease.

    ``on_start`` is called with each step's ``started`` log entry just before it runs,
    ``on_step`` with its :class:`StepResult` once it is recorded, ``on_progress`` with
    a :class:`~alley.model.BatchProgress` per batch of a step's batch helpers
    (:class:`alley.data.Step`). An error raised once
    a step started carries what ran (:func:`failed_run`).
    """
    engine = project or Engine(settings)
    wanted = None if target is None else planning.parse_target(target)
    follow = _Steps(on_step, on_start)
    with (
        follow.reported("up", engine),
        engine.attributed(),
        engine.locked("up", on_wait) as run,
    ):
        assert run.snapshot is not None
        statuses = run.snapshot.statuses
        plan = planning.plan_up(statuses, wanted, allow_out_of_order=allow_out_of_order)
        checked = engine.preflight(statuses, plan, fake=fake, allow_drift=allow_drift, retry=retry)
        steps = run.apply(
            checked, fake=fake, on_step=follow.step, on_start=follow.start, on_progress=on_progress
        )
    return RunReport(plan.direction, steps, tuple(engine.notes))


def down(
    settings: Settings,
    target: int | str | None = None,
    *,
    steps: int | None = None,
    fake: bool = False,
    retry: bool = False,
    project: Engine | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
    on_start: StartCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """Roll back applied migrations, newest first: down to and including ``target``;
    or the last ``steps`` applied ones; or, with neither, the last applied one only.
    "Last" follows the order migrations apply in (the ``alley_order_migrations`` hook).

    :param steps: How many to roll back (1 or more; refused when fewer are applied).
    :param fake: Remove the records without running ``down``.
    :param retry: Run again a ``down`` that failed after writing.
    :raises UsageError: both ``target`` and ``steps``, ``steps`` < 1, or a ``target``
        that is not applied.
    """
    engine = project or Engine(settings)
    wanted = None if target is None else planning.parse_target(target)
    planning.check_down_request(wanted, steps)
    follow = _Steps(on_step, on_start)
    with (
        follow.reported("down", engine),
        engine.attributed(),
        engine.locked("down", on_wait) as run,
    ):
        assert run.snapshot is not None
        statuses = run.snapshot.statuses
        plan = planning.plan_down(statuses, wanted, steps=steps)
        checked = engine.preflight(statuses, plan, fake=fake, allow_drift=True, retry=retry)
        done = run.apply(
            checked, fake=fake, on_step=follow.step, on_start=follow.start, on_progress=on_progress
        )
    return RunReport(plan.direction, done, tuple(engine.notes))


def redo(
    settings: Settings,
    *,
    fake: bool = False,
    retry: bool = False,
    project: Engine | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
    on_start: StartCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> RedoReport:
    """Roll back the last applied migration, then apply it again, under one lock.

    Both steps are checked before the first runs (``down`` for the roll-back, and
    the file must have ``up`` and ``down``); applied files that changed are not refused
    (redoing an edited migration is what this is for). If the roll-back fails, nothing
    is applied again.
    """
    engine = project or Engine(settings)
    follow = _Steps(on_step, on_start)
    with (
        follow.reported("redo", engine),
        engine.attributed(),
        engine.locked("redo", on_wait) as run,
    ):
        assert run.snapshot is not None
        back, again = _preflight_redo(engine, run.snapshot.statuses, retry=retry, fake=fake)
        done = run.apply(
            back, fake=fake, on_step=follow.step, on_start=follow.start, on_progress=on_progress
        )
        done += run.apply(
            again, fake=fake, on_step=follow.step, on_start=follow.start, on_progress=on_progress
        )
    return RedoReport(done, tuple(engine.notes))


def mark(
    settings: Settings,
    target: int | str,
    *,
    applied: bool,
    project: Engine | None = None,
    on_wait: WaitCallback | None = None,
) -> MarkReport:
    """Decide a migration's state by hand, after an interruption or to accept an edit.

    ``applied=True`` records it as applied with its current file's checksum (accepting an
    edit or a rename); ``applied=False`` removes its records. Either way the decision is
    logged and settles any open attempt at it. Nothing is executed.
    """
    engine = project or Engine(settings)
    wanted = planning.parse_target(target)
    with engine.attributed(), engine.locked("mark", on_wait) as run:
        filename, resolved = run.mark(wanted, applied=applied)
    return MarkReport(wanted, filename, State.APPLIED if applied else State.PENDING, resolved)


def import_history(
    settings: Settings,
    tool: str,
    *,
    collection: str | None = None,
    dry_run: bool = False,
    skip_unmatched: bool = False,
    project: Engine | None = None,
    on_wait: WaitCallback | None = None,
) -> ImportReport:
    """Record as applied, in alley's history, what another tool recorded as applied
    (``migrate-mongo``, ``pymongo-migrate``, ``mongodb-migrations``,
    ``flask-mongoengine-migrations``, or a plugin's: :mod:`alley.import_history`).

    Each entry of the tool's collection (``collection``, default the tool's own) maps
    to the alley migration with its id or its name; each that maps to one without a
    record gets one, dated when the tool applied it, with the file's checksum and
    ``imported_from``/``import_id`` in its extra fields, under the lock. Entries
    already recorded are left as they are, so importing again does nothing. The tool's
    collection is only read.

    :param dry_run: Read and map only; the report says what would be imported.
    :param skip_unmatched: Import the entries that map, listing the others, instead of
        refusing the whole import.
    :raises ImportMismatch: (an IntegrityError, exit 6) an entry maps to no alley
        migration or not to exactly one, without ``skip_unmatched``; nothing written.
        Its ``report`` lists every entry.
    :raises UsageError: an unknown tool, or no such collection.
    """
    from alley import import_history as importing

    engine = project or Engine(settings)
    with engine.attributed():
        return importing.import_history(
            engine,
            tool,
            collection=collection,
            dry_run=dry_run,
            skip_unmatched=skip_unmatched,
            on_wait=on_wait,
        )


def undo_import(
    settings: Settings,
    import_id: str | None = None,
    *,
    project: Engine | None = None,
    on_wait: WaitCallback | None = None,
) -> UndoReport:
    """Remove exactly the records one :func:`import_history` wrote (``import_id``, by
    default the newest import), under the lock: those migrations are pending again.

    :raises UsageError: no records carry that import id.
    """
    from alley import import_history as importing

    engine = project or Engine(settings)
    with engine.attributed():
        return importing.undo_import(engine, import_id, on_wait=on_wait)


def unlock(
    settings: Settings, *, force: bool = False, project: Engine | None = None
) -> UnlockReport:
    """Release the lock of a dead run (or, with ``force``, of a live one)."""
    engine = project or Engine(settings)
    with engine.attributed():
        state = engine.store.lock_state()
        if state is None or state.released:
            return UnlockReport(state, released=False)
        if not state.expired and not force:
            raise LockBusy(
                f"the lock is {describe_lock(state)}",
                hint="if that run is really dead, release it with 'alley unlock --force'",
            )
        engine.store.release_lock(state.generation)
    return UnlockReport(state, released=True)


def history(
    settings: Settings, target: int | str | None = None, *, project: Engine | None = None
) -> list[LogEntry]:
    """The run log, oldest first, with the step each run is on (or died on) as
    ``started``; only one migration's entries when ``target`` is given."""
    engine = project or Engine(settings)
    with engine.attributed():
        logged = engine.store.read_log()
        migrations = read_without_files(engine)  # the log is readable without the files
        store = engine.store
        statuses = planning.reconcile(migrations, store.read_records())
        runs = attempts.runs_of(statuses, store.read_open(), store.lock_state())
    on = [r.current for r in runs if r.current is not None and r.current.event is Event.STARTED]
    entries = sorted([*logged, *on], key=lambda e: e.at)
    if target is None:
        return entries
    wanted = planning.parse_target(target)
    return [e for e in entries if e.migration_id == wanted]


def verify(settings: Settings, *, project: Engine | None = None) -> VerifyReport:
    """Problems that make history untrustworthy: drift, steps waiting for a person,
    out-of-order; and ``up``'s pre-flight of what is pending (a broken pending file
    fails here as it would fail ``up``)."""
    engine = project or Engine(settings)
    with engine.attributed():
        snapshot = engine.snapshot()
        statuses = snapshot.statuses
        pending = Plan(Direction.UP, tuple(s for s in statuses if s.state is State.PENDING))
        engine.load(pending)
    report = StatusReport(statuses, tuple(engine.notes))
    problems = []
    for s in statuses:
        if s.drift is Drift.CHANGED:
            problems.append(f"{s.filename}: changed since it was applied")
        elif s.drift is Drift.DELETED:
            problems.append(f"{s.filename}: applied, but the file is gone")
        elif s.drift is Drift.RENAMED and s.migration is not None:
            problems.append(f"{s.migration.filename}: renamed (applied as {s.filename})")
        if s.attempt is Attempt.INTERRUPTED:
            problems.append(f"{s.filename}: interrupted; decide with 'alley mark {s.id}'")
        elif s.attempt is Attempt.FAILED_AFTER_WRITING:
            problems.append(
                f"{s.filename}: failed after writing; 'alley up --retry' or 'alley mark {s.id}'"
            )
    newest = max((s.id for s in report.applied), default=None)
    if newest is not None:
        problems += [
            f"{s.filename}: pending, but older than applied migration {newest}"
            for s in report.pending
            if s.id < newest
        ]
    return VerifyReport(tuple(problems), report)


def over_databases(
    settings: Settings,
    command: str,
    *,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_outcome: OutcomeCallback | None = None,
    project: Engine | None = None,
    **arguments: Any,
) -> FleetReport:
    """Run ``command`` (``"status"``, ``"up"``, ``"down"``, ``"verify"``, ``"check"``,
    ``"plan_up"`` or ``"plan_down"``, with its own ``arguments``) on every database of
    ``settings.databases``, ``jobs`` at a time, each as if alley had been run once on
    it: its own history and lock. One failing does not stop the others unless
    ``fail_fast``. Returns each database's outcome and the worst exit code
    (:mod:`alley.fleet`); raises only for what concerns them all (no database matched,
    the server unreachable, a bad setting)."""
    from alley import fleet

    return fleet.run(
        settings,
        command,
        jobs=jobs,
        fail_fast=fail_fast,
        on_outcome=on_outcome,
        project=project,
        **arguments,
    )


def rehearse(
    settings: Settings,
    *,
    sample: int | None = None,
    keep: bool = False,
    project: Engine | None = None,
    on_migration: RehearsedCallback | None = None,
    server: str | None = None,
) -> RehearsalReport:
    """``alley test``: rehearse every pending migration -- up, down, up again -- on a
    throwaway copy of the database (its collections' structure and the first
    ``sample`` documents of each by ``_id``; 100 by default, 0 for structure only), and
    report which are irreversible, which are not repeatable, and how long each phase
    took (:mod:`alley.rehearsal`). The real database is only read: no lock, no run log,
    no record. The copy is dropped at the end, also on failure, Ctrl-C and SIGTERM,
    unless ``keep``. ``on_migration`` is called with each migration's result as it is
    done. ``server``: a ``mongodb://`` URL of another server to make the copy on
    (``alley test --server``), for credentials that may not create databases and to
    add no load to the real server, which is then only read.

    :raises UsageError: ``sample`` is negative.
    :raises ConfigError: a pending file fails ``up``'s pre-flight, or ``server`` is not
        a valid URL (exit 3).
    :raises ConnectionFailed: ``server`` does not answer or refuses its credentials
        (exit 4); nothing is written anywhere.
    """
    from alley.rehearsal import DEFAULT_SAMPLE
    from alley.rehearsal import rehearse as run_rehearsal

    engine = project or Engine(settings)
    with engine.attributed():
        return run_rehearsal(
            engine,
            sample=DEFAULT_SAMPLE if sample is None else sample,
            keep=keep,
            on_migration=on_migration,
            server=server,
        )


def check(
    settings: Settings,
    *,
    models: Sequence[str] | str | None = None,
    project: Engine | None = None,
) -> CheckReport:
    """``alley check``: how the indexes the MongoEngine models declare (the ``models``
    setting, or ``models``) and the database's differ, one change per index; the
    report's ``ok`` is true when they agree. Pending migrations are named (their ``up``
    may be what makes them agree). Only reads (:mod:`alley.autogenerate`).

    :raises ConfigError: no models named, a module that does not import or defines no
        ``Document`` (exit 3).
    """
    from alley import autogenerate

    engine = project or Engine(settings)
    with engine.attributed():
        return autogenerate.check(engine, models)


def autogenerate(
    settings: Settings,
    name: str,
    *,
    drop: bool = False,
    models: Sequence[str] | str | None = None,
    project: Engine | None = None,
) -> AutogenerateReport:
    """``alley create NAME --autogenerate``: write the migration that creates the
    indexes the models declare and the database lacks, rebuilds those it has with
    other options, and drops those no model declares (written commented out unless
    ``drop``); its ``down`` undoes it. Nothing to do: nothing is written (the report's
    ``created`` is ``None``).

    :raises MigrationsPending: migrations are pending (exit 7); apply them first.
    :raises ConfigError: as :func:`check`.
    """
    from alley import autogenerate as generate

    engine = project or Engine(settings)
    with engine.attributed():
        return generate.autogenerate(engine, name, drop=drop, models=models)


def plugins(settings: Settings, *, project: Engine | None = None) -> list[PluginInfo]:
    """Every registered plugin, with its distribution, version and hooks."""
    engine = project or Engine(settings)
    return plugin_infos(engine.hooks.manager)


__all__ = [
    "FailedRun",
    "MarkReport",
    "PlanReport",
    "Project",
    "RedoReport",
    "StepFailure",
    "UnlockReport",
    "VerifyReport",
    "autogenerate",
    "check",
    "create",
    "down",
    "failed_run",
    "history",
    "import_history",
    "mark",
    "plan_down",
    "plan_redo",
    "plan_up",
    "plugins",
    "redo",
    "rehearse",
    "status",
    "undo_import",
    "unlock",
    "up",
    "verify",
]
