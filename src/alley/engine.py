"""The run engine: one object per command that reads, plans, checks and applies.

:class:`Engine` is a command's context -- its settings, plugins, database and history
store, each made on first use so ``create`` never connects. It reads a
:class:`Snapshot` (migrations + records + open attempts + lock) once, and runs the
same pre-flight for a plan, a CI gate and the real command: every file the plan needs
is loaded and has its functions before anything is written.

:class:`Run` is a command's work under the lock, and the only writer of history: it
holds the lease and the holder, numbers the run-log entries, and fences every write
(:meth:`alley.lease.Lease.fence`). What becomes of each step's attempt is the state
machine of :mod:`alley.attempts`.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from alley import attempts, data, lint, planning, transactions, write_watch
from alley.errors import (
    AlleyError,
    ConfigError,
    DiscoveryError,
    MigrationFailed,
    MigrationsFolderMissing,
    Terminated,
    UsageError,
)
from alley.hookcalls import Hooks, as_connection_error
from alley.lease import Clock, Lease, StepUnrecorded, acquire, make_holder
from alley.model import (
    Attempt,
    Checkpoint,
    Direction,
    Drift,
    Event,
    HistoryRecord,
    Holder,
    LoadedMigration,
    LockState,
    LogEntry,
    Migration,
    MigrationStatus,
    Plan,
    ProgressCallback,
    StepResult,
)
from alley.plugins import build_plugin_manager
from alley.settings import Settings
from alley.store import HistoryStore, JoinsTransactions, RecordExists, Records, ReplacesRecords

StepCallback = Callable[[StepResult], None]
# Called as a step starts, with its ``started`` log entry (filename, direction, fake).
StartCallback = Callable[[LogEntry], None]
WaitCallback = Callable[[LockState], None]
WriteWatch = Callable[[Any], AbstractContextManager[write_watch.Writes]]

# How far the run log may lag behind the steps of a running run.
LOG_EVERY_S = 1.0
# A step that starts this long after the last time its open attempt (or, for ``up``,
# its run's last record) tells gets its start written to its open attempt first, so an
# interrupted step says when it started; faster steps cost no write.
MARK_START_AFTER_S = 1.0


@dataclass(frozen=True)
class Snapshot:
    """What a command read, once: the migrations, the records, the open attempts and
    the lock. Statuses and plans are made from exactly this."""

    migrations: tuple[Migration, ...]
    records: tuple[HistoryRecord, ...]
    open_attempts: tuple[LogEntry, ...]
    lock: LockState | None

    @cached_property
    def statuses(self) -> tuple[MigrationStatus, ...]:
        reconciled = planning.reconcile(self.migrations, self.records)
        return attempts.annotate(reconciled, self.open_attempts, self.lock)


@dataclass(frozen=True)
class Checked:
    """A plan that passed the pre-flight, with every step's code loaded."""

    plan: Plan
    loaded: dict[str, LoadedMigration]


class Engine:
    """One command's context: settings, plugins, database and history store.

    :param settings: Resolved settings.
    :param db: A pymongo ``Database`` to use instead of connecting (``Migrations(path, db)``).
    :param plugins: Extra ``(name, plugin)`` pairs registered after all others.
    :param clock: The monotonic clock of the lease (tests inject one).
    :param sleep: How to wait between tries of a busy lock (tests inject one).
    :param heartbeat: Renew the lease from a thread (tests renew by hand).
    :param watch_writes: Counts what a step's code writes (tests inject one).
    :param hooks: The plugins' hooks to use instead of loading plugins (a
        multi-database command shares one set across its databases).
    :param migrations: The migrations to use instead of discovering them (likewise).
    :param store: The history store to use instead of the plugins' (``alley test``
        rehearses on a throwaway database with its history in memory).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        db: Any = None,
        plugins: Sequence[tuple[str, object]] = (),
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat: bool = True,
        watch_writes: WriteWatch = write_watch.watch,
        hooks: Hooks | None = None,
        migrations: tuple[Migration, ...] | None = None,
        store: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self._db = db
        self._extra_plugins = plugins
        self.clock = clock
        self.sleep = sleep
        self.heartbeat = heartbeat
        self.watch_writes = watch_writes
        self.notes: list[str] = []
        # Given ones fill the cached properties below, which then never compute.
        if hooks is not None:
            self.__dict__["hooks"] = hooks
        if migrations is not None:
            self.__dict__["migrations"] = migrations
        if store is not None:
            self.__dict__["store"] = store

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
        if self._db is not None:
            return self._db
        write_watch.install()  # before the client exists, so it reports to the watcher
        return self.hooks.connect(self.settings)

    @cached_property
    def store(self) -> HistoryStore:
        return self.hooks.history_store(self.settings, self.db)

    def async_connection(self) -> data.AsyncConnection:
        """The command's connection for ``async def`` migrations (the
        ``alley_connect_async`` hook's): PyMongo's ``AsyncMongoClient`` on the server and
        database of :attr:`db`, made once and reused by every async step (its client
        belongs to one event loop). The connection plugin closes it at the end of the
        command (:func:`alley.hookcalls.close_connections`), or :meth:`close_async`
        does; an engine used again after that makes a new one.

        :raises ConfigError: no plugin can make one for :attr:`db` (an application's
            own ``Database``, or a connection plugin without async support).
        """
        made: data.AsyncConnection | None = self.__dict__.get("_async_connection")
        if made is not None and not made.closed:
            return made
        # Connected first: the settings and the credentials are checked by then, and
        # the write watcher is registered before the async client is made.
        made = self.hooks.connect_async(self.settings, self.db)
        if made is None:
            raise ConfigError(ASYNC_NEEDS_OWN_CONNECTION, hint=ASYNC_HINT)
        self.__dict__["_async_connection"] = made
        return made

    def close_async(self) -> None:
        """Close the async connection this engine made, if any (the end of a call of
        :mod:`alley.aio`; the CLI closes it with every other connection)."""
        made = self.__dict__.pop("_async_connection", None)
        if made is not None:
            made.close()

    @contextmanager
    def attributed(self) -> Iterator[None]:
        """Around a whole command: an unexpected error raised by a plugin (the store's
        included) becomes a :class:`~alley.errors.PluginError` that names it."""
        try:
            yield
        except Exception as error:
            # The store is known once made; pluggy knows which plugin made it.
            self.hooks.reraise_attributed(error, self.__dict__.get("store"))
            raise

    # -- reading ----------------------------------------------------------------

    @cached_property
    def migrations(self) -> tuple[Migration, ...]:
        """Every migration, in the order they apply; read once per command."""
        found = self.hooks.discover(self.settings)
        planning.check_unique_ids(found.migrations)
        self.notes.extend(found.notes)
        return tuple(found.migrations)

    def snapshot(self, lock: LockState | None = None) -> Snapshot:
        """Read records, open attempts and the lock (unless this run holds it: ``lock``),
        once each. Reading the lock, it notes the attempts a record written since by
        another tool settles (a run holding the lock closes them, and says so)."""
        migrations = self.migrations
        store = self.store
        state = store.lock_state() if lock is None else lock
        snapshot = Snapshot(
            migrations, tuple(store.read_records()), tuple(store.read_open()), state
        )
        if lock is None:
            settled = attempts.recorded_elsewhere(
                snapshot.statuses, snapshot.open_attempts, snapshot.lock
            )
            self.note(*(attempts.settled_note(a, closed=False) for a in settled))
        return snapshot

    def note(self, *notes: str) -> None:
        """Add notes to the command's report, each once."""
        self.notes.extend(n for n in dict.fromkeys(notes) if n not in self.notes)

    # -- the pre-flight -----------------------------------------------------------

    def preflight(
        self,
        statuses: Sequence[MigrationStatus],
        plan: Plan,
        *,
        fake: bool = False,
        allow_drift: bool = False,
        retry: bool = False,
    ) -> Checked:
        """Everything the real command checks before it writes, for the real command,
        its ``--plan`` and the CI gates alike: load every step's file (``up`` needs
        both functions, so that it can be rolled back; ``down`` needs ``down``), then
        refuse steps that wait for a person, and drift; then a step that declared a
        transaction the server or the history store cannot give it.

        :raises DiscoveryError: a file does not compile, fails to import, or lacks a
            function (exit 3).
        :raises IntegrityError: an interrupted step, a step that failed after writing,
            or drift (exit 6).
        :raises ConfigError: a step declared ``transaction = True`` and cannot have one
            (:func:`alley.transactions.check_plan`, exit 3); an error-level lint rule
            found something in a step of an ``up`` plan (:meth:`lint_plan`, exit 3).
        """
        loaded = {} if fake else self.load(plan)
        if loaded and plan.direction is Direction.UP:
            self.lint_plan(plan)
        idempotent = {name for name, module in loaded.items() if _idempotent(module)}
        planning.check_runnable(
            statuses, allow_drift=allow_drift, retry=retry, idempotent=idempotent
        )
        if loaded and transactions.transactional_steps(plan, loaded):
            transactions.check_plan(plan, loaded, self.db, self.store)
        return Checked(plan, loaded)

    def lint_plan(self, plan: Plan) -> None:
        """Refuse an ``up`` plan whose files an error-level lint rule finds fault with
        (a PyMongo 3 call would fail half-way through the run; ``alley lint`` lists
        them all). Skipped with ``[tool.alley] lint = false`` (``--no-lint``).

        :raises ConfigError: the first error finding, with how many more there are.
        """
        setting = self.settings.options.get("lint", True)
        if setting is False or str(setting).strip().lower() in ("false", "0", "no", "off"):
            return  # lint = false in [tool.alley], -o lint=false, or --no-lint
        rules = [r for r in self.lint_rules() if r.severity is lint.Severity.ERROR]
        ignored = self.lint_ignores()
        errors = [
            finding
            for step in plan.steps
            if step.migration is not None
            for finding in lint.lint_source(
                step.migration.filename,
                step.migration.location,
                step.migration.source,
                rules,
                ignore=ignored,
            )
        ]
        if errors:
            more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
            raise ConfigError(
                f"{errors[0]}{more}; nothing ran",
                hint=f"run 'alley lint'; fix it, add '# alley: ignore[{errors[0].rule}]' "
                "to the line, or run with --no-lint",
            )

    def lint_rules(self) -> list[lint.Rule]:
        """Every plugin's lint rules (:func:`alley.hookspecs.alley_lint_rules`), one per id."""
        provided = self.hooks.manager.hook.alley_lint_rules()
        return lint.unique_rules(rule for rules in provided for rule in rules)

    def lint_ignores(self) -> tuple[str, ...]:
        """``[tool.alley] lint_ignore``: the rule ids silenced in the whole project.

        :raises ConfigError: it is not a list of rule ids.
        """
        try:
            return lint.project_ignores(self.settings.options)
        except ValueError as error:
            raise ConfigError(f"invalid [tool.alley] {error}") from None

    def load(self, plan: Plan) -> dict[str, LoadedMigration]:
        loaded: dict[str, LoadedMigration] = {}
        if plan:
            _prepend_sys_path(self.settings.sys_path)
        needed = ("up", "down") if plan.direction is Direction.UP else ("down",)
        for step in plan.steps:
            migration = step.migration
            assert migration is not None  # planning refuses steps without a file
            module = self.hooks.load(migration)
            missing = [name for name in needed if getattr(module, name, None) is None]
            if missing:
                raise DiscoveryError(
                    f"{migration.location} has no {missing[0]}(db) function",
                    hint="define it (a down that cannot undo may raise); nothing ran",
                )
            if any(inspect.iscoroutinefunction(getattr(module, n, None)) for n in needed):
                try:
                    self.async_connection()
                except ConfigError as refused:
                    raise ConfigError(
                        f"{migration.location}: {refused.message}; nothing ran", hint=refused.hint
                    ) from None
            loaded[migration.filename] = module
        return loaded

    # -- running ------------------------------------------------------------------

    @contextmanager
    def locked(self, command: str, on_wait: WaitCallback | None = None) -> Iterator[Run]:
        """Hold the lock for a command; yield its :class:`Run`, its snapshot read after
        taking the lock and dead runs' attempts settled."""
        _ = self.migrations  # files first: a broken folder fails before waiting
        holder = make_holder(command)
        lease = acquire(
            self.store,
            holder,
            lease_s=self.settings.lease,
            wait_s=self.settings.lock_timeout,
            on_wait=on_wait,
            clock=self.clock,
            sleep=self.sleep,
        )
        if self.heartbeat:
            lease.start()
        run = Run(self, lease, holder)
        try:
            run.settle_dead_runs()
            yield run
        finally:
            lease.stop()
            run.release()


ASYNC_NEEDS_OWN_CONNECTION = (
    "an async migration needs alley's own connection, not a Database passed in "
    "(no plugin could make an async client for it)"
)
ASYNC_HINT = (
    "let alley connect (Migrations(path, url=..., database=...) or Engine(settings)), "
    "or write def up(db) / def down(db)"
)


def _idempotent(module: LoadedMigration) -> bool:
    return bool(getattr(module, "idempotent", False))


@dataclass
class Run:
    """A command's work under the lock: the only writer of history.

    Every write goes through :meth:`_fenced`, which checks the lease first: a run that
    lost its lease writes nothing -- no record, no outcome, no release.
    """

    engine: Engine
    lease: Lease
    holder: Holder
    snapshot: Snapshot | None = None
    _seq: int = 0
    _started: float = field(default_factory=time.monotonic)
    _told: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))

    @property
    def store(self) -> HistoryStore:
        return self.engine.store

    @property
    def generation(self) -> int:
        return self.lease.generation

    def now(self) -> datetime:
        """The store's time: its clock when the lock was taken, plus the time elapsed
        here. Entries and records agree with the lock's times on a wrong-clock client."""
        server_time = self.lease.state.server_now
        return server_time + timedelta(seconds=time.monotonic() - self._started)

    def _fenced(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.lease.fence()
        return write(*args, **kwargs)

    # -- the run log ----------------------------------------------------------------

    def entry(
        self, event: Event, migration: Migration, direction: Direction, **details: Any
    ) -> LogEntry:
        return LogEntry(
            step=f"{direction}:{migration.filename}:{self.holder.run_id}",
            event=event,
            migration_id=migration.id,
            filename=migration.filename,
            direction=direction,
            at=self.now(),
            holder=self.holder,
            generation=self.generation,
            seq=self._next_seq(),
            **details,
        )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def outcome(self, entry: LogEntry, event: Event, **details: Any) -> LogEntry:
        """The outcome of an attempt: its start time and who ran it stay, the order
        (``generation``, ``seq``) is this run's."""
        return dataclasses.replace(
            entry, event=event, generation=self.generation, seq=self._next_seq(), **details
        )

    # -- settling what dead runs left -------------------------------------------------

    def settle_dead_runs(self) -> Snapshot:
        """Read the snapshot under the lock and close what dead runs left open:
        finished steps logged as such, the step each was on logged interrupted (it
        stays open for a person), the claims they never started dropped, and steps
        another tool recorded since settled as applied."""
        snapshot = self.engine.snapshot(lock=self.lease.state)
        dead = attempts.dead_attempts(snapshot.statuses, snapshot.open_attempts, snapshot.lock)
        if dead:
            settled = self._settle_recorded(dead.recorded)
            completed = [
                self.outcome(
                    a,
                    Event.SUCCEEDED,
                    error=f"logged by run {self.holder.run_id}: its record shows it completed",
                )
                for a in dead.finished
            ]
            stopped = [
                self.outcome(
                    a,
                    Event.INTERRUPTED,
                    error=f"found unfinished by run {self.holder.run_id}: its process "
                    f"({a.holder.describe()}) died or lost the lock",
                )
                for a in dead.interrupted
            ]
            self._fenced(
                self.store.log,
                [*completed, *stopped, *settled],
                close=[a.filename for a in (*dead.finished, *dead.unstarted, *dead.recorded)],
                keep_open=stopped,
            )
            self.engine.note(*(attempts.settled_note(a, closed=True) for a in dead.recorded))
            snapshot = self.engine.snapshot(lock=self.lease.state)
        self.snapshot = snapshot
        return snapshot

    def _settle_recorded(self, recorded: Sequence[LogEntry]) -> list[LogEntry]:
        """Entries for dead runs' steps that another tool (alley 0.0.3) recorded since:
        the interruption, if not logged yet, then the settlement, as a decision."""
        entries: list[LogEntry] = []
        for attempt in recorded:
            if attempt.event is Event.STARTED:
                entries.append(
                    self.outcome(
                        attempt,
                        Event.INTERRUPTED,
                        error=f"found unfinished by run {self.holder.run_id}: its process "
                        f"({attempt.holder.describe()}) died or lost the lock",
                    )
                )
            entries.append(
                LogEntry(
                    step=f"mark:{attempt.filename}:{self.holder.run_id}",
                    event=Event.MARKED_APPLIED,
                    migration_id=attempt.migration_id,
                    filename=attempt.filename,
                    direction=Direction.UP,
                    at=self.now(),
                    holder=self.holder,
                    checksum=attempt.checksum,
                    error=attempts.settled_note(attempt, closed=True).partition(": ")[2],
                    resolves=(attempt.step,),
                    generation=self.generation,
                    seq=self._next_seq(),
                )
            )
        return entries

    # -- applying a plan ------------------------------------------------------------

    def apply(
        self,
        checked: Checked,
        *,
        fake: bool = False,
        on_step: StepCallback | None = None,
        on_start: StartCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[StepResult, ...]:
        """Claim every step, then run each, record it, and log its outcome.

        :raises MigrationFailed: a migration raised; the steps before it stay recorded.
        :raises LeaseLost: the lease was lost before a step; nothing more was written.
        :raises StepUnrecorded: a step finished after the lease was lost (or another run
            recorded it meanwhile); it is left for a person.
        :raises ClaimConflict: another run holds an attempt at one of the steps.
        """
        plan = checked.plan
        if not plan:
            return ()
        claims = [
            self.entry(
                Event.STARTED,
                _file(s),
                plan.direction,
                checksum=_file(s).checksum,
                fake=fake,
                # A resumable step's claim keeps its checkpoints, should it stop again
                # before its first batch.
                **_resume_details(s, fake),
            )
            for s in plan.steps
        ]
        retried = [c.filename for s, c in zip(plan.steps, claims, strict=True) if s.attempt]
        if retried:  # failed attempts of earlier runs, run again now
            self._fenced(self.store.log, [], close=retried)
        self._fenced(self.store.open_attempts, claims)
        batch = _Batch(self)
        results: list[StepResult] = []
        current: str | None = None  # its claim stays open if the run stops here
        # What a reader would take for the next step's start: see attempts.started_at.
        self._told = claims[0].at
        try:
            for step, claim in zip(plan.steps, claims, strict=True):
                self.lease.fence()
                started = self._start(claim)
                if on_start is not None:
                    on_start(started)
                current = claim.filename
                results.append(self._step(step, started, checked, fake, batch, on_progress))
                current = None
                if on_step is not None:
                    on_step(results[-1])
                batch.flush_if_due()
        finally:
            if self.lease.lost is None:
                unstarted = [c.filename for c in claims[len(results) :] if c.filename != current]
                try:
                    batch.flush(also_close=unstarted)
                except AlleyError as error:
                    # The records are written: the next run logs these steps and closes them.
                    self.engine.notes.append(f"could not log this run's last steps: {error}")
        return tuple(results)

    def _start(self, claim: LogEntry) -> LogEntry:
        """The step's ``started`` entry, at its start. Its open attempt says when it was
        claimed, and for ``up`` the run's last record when the step before it ended
        (:func:`alley.attempts.started_at`); a step that starts a second or more after
        what those tell has its start written first, so an interrupted step says when
        it started, to within a second. A run of quick steps writes nothing more than
        its records."""
        started = dataclasses.replace(claim, at=self.now())
        told = max(claim.at, self._told) if claim.direction is Direction.UP else claim.at
        if started.at - told >= timedelta(seconds=MARK_START_AFTER_S):
            self._fenced(self.store.log, [], keep_open=[started])
        return started

    def _step(
        self,
        step: MigrationStatus,
        started: LogEntry,
        checked: Checked,
        fake: bool,
        batch: _Batch,
        on_progress: ProgressCallback | None = None,
    ) -> StepResult:
        migration = _file(step)
        direction = started.direction
        clock = time.perf_counter()
        if started.checkpoints and not fake:
            done = started.checkpointed_done
            self.engine.note(
                f"resuming {migration.filename} from its checkpoint "
                f"({done} document{'s' if done != 1 else ''} done)"
            )
        loaded = None if fake else checked.loaded[migration.filename]
        # Its code and its record in one transaction: recorded when it commits.
        transactional = loaded is not None and transactions.declared(loaded)
        with self.engine.watch_writes(self.engine.db) as writes:
            context = self._step_context(migration, started, writes, on_progress)
            try:
                if loaded is not None:
                    with data.running(context.step):
                        if transactional:
                            self._execute_in_transaction(step, migration, loaded, direction, clock)
                        else:
                            self._execute(migration, loaded, direction)
            except MigrationFailed as error:
                started = context.entry
                lost_connection = as_connection_error(error.cause)
                if lost_connection is not None:
                    # Whether its last write reached the server is unknown: the attempt
                    # stays open as it is, and the next run finds it interrupted.
                    raise lost_connection from error
                failed = self.outcome(
                    started,
                    Event.FAILED,
                    duration_s=time.perf_counter() - clock,
                    error=f"{error}; its transaction was rolled back: it wrote nothing"
                    if transactional
                    else f"{error}; it wrote {writes.describe()}",
                    writes=0 if transactional else writes.count,
                )
                batch.add(failed, keep_open=True)
                if self.lease.lost is None:
                    batch.flush()
                raise
            except KeyboardInterrupt as interruption:
                # Its effect is unknown: logged interrupted, so the next run asks a person
                # (unless it wrote only through checkpointed helpers: it resumes).
                started = context.entry
                stopped = self.outcome(
                    started,
                    Event.INTERRUPTED,
                    duration_s=time.perf_counter() - clock,
                    error="terminated (SIGTERM)"
                    if isinstance(interruption, Terminated)
                    else "interrupted by the user (Ctrl-C)",
                    writes=writes.count,
                )
                batch.add(stopped, keep_open=True)
                if self.lease.lost is None:
                    batch.flush()
                raise
            finally:
                self.engine.note(*context.step.notes)
        duration = time.perf_counter() - clock
        if not transactional:
            self._record(step, migration, direction, duration, fake)
        batch.add(self.outcome(context.entry, Event.SUCCEEDED, duration_s=round(duration, 6)))
        return StepResult(migration.id, migration.filename, direction, fake, duration)

    def _step_context(
        self,
        migration: Migration,
        started: LogEntry,
        writes: write_watch.Writes,
        on_progress: ProgressCallback | None,
    ) -> _StepContext:
        """The :class:`alley.data.Step` a migration may take, wired to this run: its
        checkpoints go into the step's open attempt, fenced by the lease."""
        context = _StepContext(started)

        def checkpoint(checkpoints: tuple[Checkpoint, ...]) -> None:
            entry = dataclasses.replace(context.entry, checkpoints=checkpoints, writes=writes.count)
            self._fenced(self.store.log, [], keep_open=[entry])
            context.entry = entry

        context.step = data.Step(
            self.engine.db,
            migration,
            started.direction,
            checkpoints=started.checkpoints,
            on_checkpoint=checkpoint,
            on_progress=on_progress,
            writes=writes,
            clock=self.engine.clock,
            sleep=self.engine.sleep,
            async_connection=self.engine.async_connection,
        )
        return context

    def _execute(
        self, migration: Migration, loaded: LoadedMigration, direction: Direction, db: Any = None
    ) -> None:
        try:
            self.engine.hooks.execute(
                migration, loaded, direction, self.engine.db if db is None else db
            )
        except SystemExit as error:
            # An executor plugin let the migration's sys.exit() through: still its failure.
            raise MigrationFailed(
                f"{migration.filename} failed ({direction}): it called sys.exit({error.code!r})",
                cause=error,
            ) from error

    def _execute_in_transaction(
        self,
        step: MigrationStatus,
        migration: Migration,
        loaded: LoadedMigration,
        direction: Direction,
        clock: float,
    ) -> None:
        """Run the step's code with a :class:`~alley.transactions.TransactionalDatabase`
        and write its record, in one transaction, committed only while the lease holds
        (:func:`alley.transactions.run_in_transaction`). Any failure rolls both back."""
        store = self.store
        assert isinstance(store, JoinsTransactions)  # the pre-flight checked it

        def body(db: Any) -> None:
            try:
                self._execute(migration, loaded, direction, db)
            except transactions.NotInTransaction as refused:
                raise MigrationFailed(
                    f"{migration.filename} failed ({direction}): {refused}", cause=refused
                ) from None

        def record(session: Any) -> None:
            duration = time.perf_counter() - clock
            self._record(step, migration, direction, duration, False, store.records_in(session))

        try:
            transactions.run_in_transaction(self.engine.db, body, record, self.lease.fence)
        except transactions.CommitFailed as error:
            raise MigrationFailed(
                f"{migration.filename} failed ({direction}): its transaction did not "
                f"commit: {error}",
                cause=error,
            ) from error
        except transactions.CommitUnknown as error:
            raise StepUnrecorded(
                f"{migration.filename} ({direction}): the server did not confirm the commit "
                f"of its transaction ({error}); its changes and its record are both there "
                "or both not",
                hint="'alley status' shows which; if it is not applied, "
                f"'alley mark {migration.id} --pending' and run it again",
            ) from error

    def _record(
        self,
        step: MigrationStatus,
        migration: Migration,
        direction: Direction,
        duration: float,
        fake: bool,
        records: Records | None = None,
    ) -> None:
        """Record the step (``down``: remove its record), fenced; through ``records``
        (the store's records in a transaction) when given."""
        store: Records = self.store if records is None else records
        lost = self.lease.lost
        if lost is not None:
            raise StepUnrecorded(
                f"{migration.filename} finished ({direction}) after this run lost the lock "
                f"({lost}); it is not recorded and nothing more ran",
                hint=f"check the database, then 'alley mark {migration.id} --applied' or "
                f"'alley mark {migration.id} --pending'",
            )
        if direction is Direction.DOWN:
            assert step.record is not None
            self._fenced(store.remove_record, step.record)
            return
        record = applied_record(
            migration, duration_s=duration, fake=fake, holder=self.holder, date=self.now()
        )
        assert record.date is not None
        self._told = record.date
        try:
            self._fenced(store.add_record, record)
        except RecordExists as error:
            raise StepUnrecorded(
                f"{migration.filename} finished, but another run recorded it meanwhile; "
                "this run did not record it and stopped",
                hint=f"check the database for changes made twice, then decide with "
                f"'alley mark {migration.id} --applied' or '--pending'",
            ) from error

    # -- decisions ----------------------------------------------------------------------

    def mark(self, wanted: int, *, applied: bool) -> tuple[str, tuple[str, ...]]:
        """Decide a migration's state by hand; return its filename and the attempts
        the decision settled."""
        snapshot = self.snapshot or self.settle_dead_runs()
        statuses = [s for s in snapshot.statuses if s.id == wanted]
        if not statuses:
            raise UsageError(f"no migration has id {wanted}", hint="see 'alley status'")
        current = next((s for s in statuses if s.migration is not None), statuses[0])
        if applied and current.migration is None:
            raise UsageError(
                f"cannot mark {current.filename} applied: its file is gone",
                hint=f"mark it pending with 'alley mark {wanted} --pending'",
            )
        if applied:
            self._mark_applied(statuses, current)
        else:
            for status in statuses:
                if status.record is not None:
                    self._fenced(self.store.remove_record, status.record)
        filenames = {s.filename for s in statuses} | {
            s.migration.filename for s in statuses if s.migration is not None
        }
        unresolved = tuple(s.attempt_entry.step for s in statuses if s.attempt_entry is not None)
        filename = current.migration.filename if current.migration else current.filename
        decision = LogEntry(
            step=f"mark:{filename}:{self.holder.run_id}",
            event=Event.MARKED_APPLIED if applied else Event.MARKED_PENDING,
            migration_id=wanted,
            filename=filename,
            direction=Direction.UP if applied else Direction.DOWN,
            at=self.now(),
            holder=self.holder,
            checksum=current.migration.checksum if current.migration else None,
            resolves=unresolved,
            generation=self.generation,
            seq=self._next_seq(),
        )
        self._fenced(self.store.log, [decision], close=sorted(filenames))
        return filename, unresolved

    def _mark_applied(self, statuses: Sequence[MigrationStatus], current: MigrationStatus) -> None:
        """Record ``current``'s file as applied. A record that matches it (a 0.0.3 record
        has no checksum: nothing to differ) stays exactly as it is; one whose file was
        edited or renamed since is replaced, keeping its date, so the order of the
        records' dates (0.0.3's ``down`` starts from the newest) does not change."""
        assert current.migration is not None
        record = applied_record(
            current.migration,
            duration_s=0.0,
            fake=True,
            holder=self.holder,
            date=self.now(),
            marked=True,
        )
        for status in statuses:
            old = status.record
            if old is None:
                continue
            if status is not current:
                self._fenced(self.store.remove_record, old)
            elif status.drift in (Drift.CHANGED, Drift.RENAMED):
                if isinstance(self.store, ReplacesRecords):
                    self._fenced(self.store.replace_record, old, record)
                else:  # a store without it: the new record is dated now
                    self._fenced(self.store.remove_record, old)
                    self._fenced(self.store.add_record, record)
        if current.record is None:
            self._fenced(self.store.add_record, record)

    def release(self) -> None:
        """Release the lock, unless it was lost (then it is not this run's to release)."""
        if self.lease.lost is not None:
            return
        try:
            self._fenced(self.store.release_lock, self.generation)
        except Exception as error:
            # The error that brought us here matters more; the lease expires on its own.
            self.engine.notes.append(
                f"could not release the lock ({error}); it frees itself when the "
                f"{self.lease.state.lease_s:g}s lease runs out"
            )


@dataclass
class _Batch:
    """Outcome entries not yet in the run log; logging them settles their attempts."""

    run: Run
    entries: list[LogEntry] = field(default_factory=list)
    closable: list[str] = field(default_factory=list)
    keep_open: list[LogEntry] = field(default_factory=list)
    _flushed_at: float = field(default_factory=time.monotonic)

    def add(self, entry: LogEntry, *, keep_open: bool = False) -> None:
        self.entries.append(entry)
        if keep_open:
            self.keep_open.append(entry)
        else:
            self.closable.append(entry.filename)

    def flush_if_due(self) -> None:
        if time.monotonic() - self._flushed_at >= LOG_EVERY_S:
            self.flush()

    def flush(self, also_close: Sequence[str] = ()) -> None:
        close = [*self.closable, *also_close]
        if self.entries or close or self.keep_open:
            self.run._fenced(
                self.run.store.log, self.entries, close=close, keep_open=self.keep_open
            )
        self.entries, self.closable, self.keep_open = [], [], []
        self._flushed_at = time.monotonic()


@dataclass
class _StepContext:
    """A running step's :class:`alley.data.Step` and its open attempt as last written."""

    entry: LogEntry
    step: data.Step = field(init=False)


def _resume_details(status: MigrationStatus, fake: bool) -> dict[str, Any]:
    """A claim's checkpoints and write count when it resumes a resumable attempt."""
    entry = status.attempt_entry
    if fake or status.attempt is not Attempt.RESUMABLE or entry is None:
        return {}
    return {"checkpoints": entry.checkpoints, "writes": 0}


def _file(step: MigrationStatus) -> Migration:
    assert step.migration is not None  # planning refuses steps without a file
    return step.migration


def _prepend_sys_path(folders: Sequence[Path]) -> None:
    """Let migrations import the project's own code, as they could when run with
    ``python -m`` from the project's root; the ``alley`` script's own folder is first
    on sys.path otherwise."""
    for folder in reversed(folders):
        entry = str(folder)
        if entry not in sys.path:
            sys.path.insert(0, entry)


def applied_record(
    migration: Migration,
    *,
    duration_s: float,
    fake: bool,
    holder: Holder,
    date: datetime,
    **extra: Any,
) -> HistoryRecord:
    """The history record of a migration that was just applied (or faked, or marked)."""
    return HistoryRecord(
        id=migration.id,
        filename=migration.filename,
        date=date,
        checksum=migration.checksum,
        extra={
            "duration_s": round(duration_s, 6),
            "fake": fake,
            "alley_version": holder.alley_version,
            "host": holder.host,
            "user": holder.user,
            "pid": holder.pid,
            "run_id": holder.run_id,
            **extra,
        },
    )


def read_without_files(engine: Engine) -> tuple[Migration, ...]:
    """The migrations, or none when their source is missing (``history`` reads the log
    from the store alone)."""
    try:
        return engine.migrations
    except MigrationsFolderMissing:
        return ()


__all__ = [
    "LOG_EVERY_S",
    "Checked",
    "Engine",
    "Run",
    "Snapshot",
    "applied_record",
    "read_without_files",
]
