"""Run a plan under the lock: load every step first, claim them all, then run each.

Loading all steps before the first one runs means a file that does not compile, or
lacks the function the plan needs, stops the command with nothing done. Then every
step of the plan is claimed in one write (an open attempt per migration, which only
one run can hold), and each step is executed and recorded right after it ran: one
acknowledged write per step, as 0.0.3 did. The outcome entries of the run log are
appended in batches, at most a second behind; a run that dies first leaves its
attempts open, and the next run logs the steps its records show as completed, reports
the one it was on as interrupted, and drops the claims it never started.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alley import planning
from alley.errors import AlleyError, AlleyWarning, DiscoveryError, MigrationFailed
from alley.hookcalls import Hooks
from alley.locking import Lease
from alley.model import (
    Direction,
    Event,
    HistoryRecord,
    HistoryStore,
    Holder,
    LoadedMigration,
    LogEntry,
    Migration,
    MigrationStatus,
    Plan,
    StepResult,
)

StepCallback = Callable[[StepResult], None]

# How far the run log may lag behind the steps of a running run.
LOG_EVERY_S = 1.0


@dataclass
class RunLog:
    """This run's writes to the run log and to the open attempts."""

    hooks: Hooks
    store: HistoryStore
    holder: Holder
    generation: int
    server_time: datetime | None = None  # the server's clock when the lock was taken
    _seq: int = 0
    _started: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        """The server's time, from its clock at lock time plus this process's elapsed time.

        Log entries and records are stamped with it, so their times agree with the
        lock's even when this machine's clock is wrong.
        """
        if self.server_time is None:
            return datetime.now(UTC)
        return self.server_time + timedelta(seconds=time.monotonic() - self._started)

    def entry(
        self, event: Event, migration_id: int, filename: str, direction: Direction, **details: Any
    ) -> LogEntry:
        return LogEntry(
            step=f"{direction}:{filename}:{self.holder.run_id}",
            event=event,
            migration_id=migration_id,
            filename=filename,
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

    def append(self, *entries: LogEntry) -> None:
        if entries:
            self.hooks.store_call(self.store.append_log, list(entries))

    def outcome(self, entry: LogEntry, event: Event, **details: Any) -> LogEntry:
        """The outcome of an attempt: its start time and who ran it stay, the order
        (``generation``, ``seq``) is this run's."""
        return dataclasses.replace(
            entry, event=event, generation=self.generation, seq=self._next_seq(), **details
        )

    def settle_dead_attempts(
        self, statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: Any
    ) -> bool:
        """Close what dead runs left open: finished steps logged as such, the step each
        was on as interrupted, and the claims they never started dropped.

        :returns: whether any open attempt changed.
        """
        finished, interrupted, unstarted = planning.dead_attempts(statuses, open_attempts, lock)
        completed = [
            self.outcome(
                attempt,
                Event.SUCCEEDED,
                error=f"logged by run {self.holder.run_id}: its record shows it completed",
            )
            for attempt in finished
        ]
        stopped = [
            self.outcome(
                attempt,
                Event.INTERRUPTED,
                error=f"found unfinished by run {self.holder.run_id}: its process "
                f"({attempt.holder.describe()}) died or lost the lock",
            )
            for attempt in interrupted
        ]
        self.append(*completed, *stopped)
        for outcome in stopped:
            self.hooks.store_call(self.store.update_attempt, outcome)
        closed = [a.filename for a in (*finished, *unstarted)]
        if closed:
            self.hooks.store_call(self.store.close_attempts, closed)
        return bool(closed or stopped)


@dataclass
class _Outcomes:
    """Outcome entries not yet in the run log; appending them closes their attempts."""

    log: RunLog
    entries: list[LogEntry] = field(default_factory=list)
    closable: list[str] = field(default_factory=list)
    _appended_at: float = field(default_factory=time.monotonic)

    def add(self, entry: LogEntry, *, close: bool) -> None:
        self.entries.append(entry)
        if close:
            self.closable.append(entry.filename)

    def append_if_due(self) -> None:
        if time.monotonic() - self._appended_at >= LOG_EVERY_S:
            self.append()

    def append(self, also_close: Sequence[str] = ()) -> None:
        log = self.log
        # Log first, then close: a crash in between logs an outcome twice, never zero times.
        log.append(*self.entries)
        closing = [*self.closable, *also_close]
        if closing:
            log.hooks.store_call(log.store.close_attempts, closing, log.holder.run_id)
        self.entries, self.closable = [], []
        self._appended_at = time.monotonic()


def run_plan(
    plan: Plan,
    *,
    hooks: Hooks,
    store: HistoryStore,
    db: Any,
    log: RunLog,
    lease: Lease,
    fake: bool = False,
    on_step: StepCallback | None = None,
) -> tuple[StepResult, ...]:
    """Execute ``plan`` step by step; record and log each step; return what ran.

    Every step is claimed (an open attempt) before the first runs: the guard, and what
    a crash leaves behind. Each is recorded right after it ran; outcomes are logged in
    batches, which also close their attempts.

    :raises MigrationFailed: a migration raised; the steps before it stay recorded.
    :raises LockBusy: the lease was lost; nothing more runs.
    :raises IntegrityError: another run holds an attempt at one of the steps.
    """
    loaded = {} if fake else load_steps(plan, hooks)
    claims = [_claim(step, plan.direction, log, fake) for step in plan.steps]
    retried = [c.filename for s, c in zip(plan.steps, claims, strict=True) if s.attempt]
    if retried:  # failed attempts of earlier runs, run again now
        hooks.store_call(store.close_attempts, retried)
    hooks.store_call(store.open_attempts, claims)
    outcomes = _Outcomes(log)
    results: list[StepResult] = []
    in_progress: str | None = None  # its claim stays open if the run stops here
    try:
        for step, claim in zip(plan.steps, claims, strict=True):
            lease.check()
            in_progress = claim.filename
            results.append(_run_step(step, claim, hooks, store, db, log, fake, loaded, outcomes))
            in_progress = None
            if on_step is not None:
                on_step(results[-1])
            outcomes.append_if_due()
    finally:
        unstarted = [c.filename for c in claims[len(results) :] if c.filename != in_progress]
        try:
            outcomes.append(also_close=unstarted)
        except AlleyError as error:
            # The records are written: the next run logs these steps and closes them.
            warnings.warn(
                AlleyWarning(f"could not log this run's last steps: {error}"), stacklevel=1
            )
    return tuple(results)


def _claim(step: MigrationStatus, direction: Direction, log: RunLog, fake: bool) -> LogEntry:
    migration = step.migration
    assert migration is not None  # planning refuses steps without a migration
    return log.entry(
        Event.STARTED,
        migration.id,
        migration.filename,
        direction,
        checksum=migration.checksum,
        fake=fake,
    )


def _run_step(
    step: MigrationStatus,
    claim: LogEntry,
    hooks: Hooks,
    store: HistoryStore,
    db: Any,
    log: RunLog,
    fake: bool,
    loaded: dict[int, LoadedMigration],
    outcomes: _Outcomes,
) -> StepResult:
    migration = step.migration
    assert migration is not None
    # The attempt's time is when the step started, not when it was claimed.
    started = dataclasses.replace(claim, at=log.now())
    clock = time.perf_counter()
    try:
        if not fake:
            hooks.execute(migration, loaded[migration.id], claim.direction, db)
    except MigrationFailed as error:
        failed = log.outcome(
            started, Event.FAILED, duration_s=time.perf_counter() - clock, error=str(error)
        )
        hooks.store_call(store.update_attempt, failed)
        outcomes.add(failed, close=False)
        raise
    except KeyboardInterrupt:
        # Its effect is unknown: logged interrupted, so the next run asks a person.
        stopped = log.outcome(
            started,
            Event.INTERRUPTED,
            duration_s=time.perf_counter() - clock,
            error="interrupted by the user (Ctrl-C)",
        )
        hooks.store_call(store.update_attempt, stopped)
        outcomes.add(stopped, close=False)
        raise
    duration = time.perf_counter() - clock
    _record(step, migration, claim.direction, hooks, store, duration, fake, log)
    outcomes.add(log.outcome(started, Event.SUCCEEDED, duration_s=round(duration, 6)), close=True)
    return StepResult(migration.id, migration.filename, claim.direction, fake, duration)


def _record(
    step: MigrationStatus,
    migration: Migration,
    direction: Direction,
    hooks: Hooks,
    store: HistoryStore,
    duration: float,
    fake: bool,
    log: RunLog,
) -> None:
    holder = log.holder
    if direction is Direction.UP:
        record = applied_record(
            migration, duration_s=duration, fake=fake, holder=holder, date=log.now()
        )
        hooks.store_call(store.record_applied, migration, record)
    else:
        assert step.record is not None
        hooks.store_call(store.remove_applied, step.record)


def load_steps(plan: Plan, hooks: Hooks) -> dict[int, LoadedMigration]:
    """Load every migration of ``plan``; fail before anything runs if one is unusable."""
    loaded = {}
    for step in plan.steps:
        migration = step.migration
        assert migration is not None
        module = hooks.load(migration)
        function = module.up if plan.direction is Direction.UP else module.down
        if function is None:
            raise DiscoveryError(
                f"{migration.location} has no {plan.direction}(db) function",
                hint="nothing ran",
            )
        loaded[migration.id] = module
    return loaded


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
    who = holder
    return HistoryRecord(
        id=migration.id,
        filename=migration.filename,
        date=date,
        checksum=migration.checksum,
        extra={
            "duration_s": round(duration_s, 6),
            "fake": fake,
            "alley_version": who.alley_version,
            "host": who.host,
            "user": who.user,
            "pid": who.pid,
            "run_id": who.run_id,
            **extra,
        },
    )
