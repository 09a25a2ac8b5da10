"""Run a plan under the lock: load every step first, then execute, record and log each.

Loading all steps before the first one runs means a file that does not compile, or
lacks the function the plan needs, stops the command with nothing done. Each step is
opened in the run log with a unique attempt key before it runs, and recorded and closed
right after, so a crash leaves a ``started`` entry that the next run reports as
interrupted, and a failure leaves history exactly as far as it got.
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

    def append(self, entry: LogEntry) -> LogEntry:
        self.hooks.store_call(self.store.append_log, entry)
        return entry

    def settle(self, entry: LogEntry, event: Event, **details: Any) -> LogEntry:
        """Log the outcome of an attempt: its start time and who ran it stay, the order
        (``generation``, ``seq``) is this run's."""
        outcome = dataclasses.replace(
            entry, event=event, generation=self.generation, seq=self._next_seq(), **details
        )
        return self.append(outcome)

    def settle_dead_attempts(
        self, statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: Any
    ) -> None:
        """Close what dead runs left open: finished steps as such, the rest interrupted."""
        finished, interrupted = planning.dead_attempts(statuses, open_attempts, lock)
        for attempt in finished:
            self.settle(
                attempt,
                Event.SUCCEEDED,
                error=f"closed by run {self.holder.run_id}: its record shows it completed",
            )
        if finished:
            self.hooks.store_call(self.store.close_attempts, [a.filename for a in finished])
        for attempt in interrupted:
            outcome = self.settle(
                attempt,
                Event.INTERRUPTED,
                error=f"found unfinished by run {self.holder.run_id}: its process "
                f"({attempt.holder.describe()}) died or lost the lock",
            )
            self.hooks.store_call(self.store.update_attempt, outcome)


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

    Each step opens an attempt before it runs (the guard, and what a crash leaves
    behind), is recorded right after it ran, and gets its outcome logged. The attempts
    of completed steps are closed together at the end.

    :raises MigrationFailed: a migration raised; the steps before it stay recorded.
    :raises LockBusy: the lease was lost; nothing more runs.
    """
    loaded = {} if fake else load_steps(plan, hooks)
    results: list[StepResult] = []
    completed: list[str] = []
    try:
        for step in plan.steps:
            result = _run_step(step, plan.direction, hooks, store, db, log, lease, fake, loaded)
            completed.append(result.filename)
            results.append(result)
            if on_step is not None:
                on_step(result)
    finally:
        _close(completed, hooks, store)
    return tuple(results)


def _run_step(
    step: MigrationStatus,
    direction: Direction,
    hooks: Hooks,
    store: HistoryStore,
    db: Any,
    log: RunLog,
    lease: Lease,
    fake: bool,
    loaded: dict[int, LoadedMigration],
) -> StepResult:
    migration = step.migration
    assert migration is not None  # planning refuses steps without a migration
    lease.check()
    if step.attempt is not None:  # a failed attempt being retried
        hooks.store_call(store.close_attempts, [migration.filename])
    started = log.entry(
        Event.STARTED,
        migration.id,
        migration.filename,
        direction,
        checksum=migration.checksum,
        fake=fake,
    )
    hooks.store_call(store.open_attempt, started)
    clock = time.perf_counter()
    try:
        if not fake:
            hooks.execute(migration, loaded[migration.id], direction, db)
    except MigrationFailed as error:
        failed = log.settle(
            started, Event.FAILED, duration_s=time.perf_counter() - clock, error=str(error)
        )
        hooks.store_call(store.update_attempt, failed)
        raise
    except KeyboardInterrupt:
        # Its effect is unknown: logged interrupted, so the next run asks a person.
        stopped = log.settle(
            started,
            Event.INTERRUPTED,
            duration_s=time.perf_counter() - clock,
            error="interrupted by the user (Ctrl-C)",
        )
        hooks.store_call(store.update_attempt, stopped)
        raise
    duration = time.perf_counter() - clock
    _record(step, migration, direction, hooks, store, duration, fake, log)
    log.settle(started, Event.SUCCEEDED, duration_s=round(duration, 6))
    return StepResult(migration.id, migration.filename, direction, fake, duration)


def _close(filenames: list[str], hooks: Hooks, store: HistoryStore) -> None:
    if not filenames:
        return
    try:
        hooks.store_call(store.close_attempts, filenames)
    except AlleyError as error:
        # Their records show they completed: the next run closes them.
        warnings.warn(AlleyWarning(f"could not close finished attempts: {error}"), stacklevel=1)


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
