"""Run a plan under the lock: load every step first, then execute, record and log each.

Loading all steps before the first one runs means a file that does not compile, or
lacks the function the plan needs, stops the command with nothing done. Each step is
opened in the run log with a unique attempt key before it runs, and recorded and closed
right after, so a crash leaves a ``started`` entry that the next run reports as
interrupted, and a failure leaves history exactly as far as it got.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alley import planning
from alley.errors import DiscoveryError, MigrationFailed
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
    """The run log as this run sees it: what was read, plus what this run appended."""

    hooks: Hooks
    store: HistoryStore
    holder: Holder
    generation: int
    entries: list[LogEntry] = field(default_factory=list)
    server_time: datetime | None = None  # the server's clock when the lock was taken
    _attempts: Counter[tuple[Direction, str]] = field(default_factory=Counter)
    _started: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        """The server's time, from its clock at lock time plus this process's elapsed time.

        Log entries and records are stamped with it, so their times agree with the
        lock's even when this machine's clock is wrong.
        """
        if self.server_time is None:
            return datetime.now(UTC)
        return self.server_time + timedelta(seconds=time.monotonic() - self._started)

    def extend(self, entries: Sequence[LogEntry]) -> None:
        """Take in entries read from the store (before this run appends its own)."""
        for entry in entries:
            self._count(entry)
        self.entries.extend(entries)

    def _count(self, entry: LogEntry) -> None:
        if entry.event is Event.STARTED:
            self._attempts[entry.direction, entry.filename] += 1

    def next_step_key(self, direction: Direction, filename: str) -> str:
        """The key of the next attempt, as :func:`planning.next_step_key` computes it."""
        return f"{direction}:{filename}:{self._attempts[direction, filename] + 1}"

    def append(
        self,
        event: Event,
        step: str,
        migration_id: int,
        filename: str,
        direction: Direction,
        **details: Any,
    ) -> LogEntry:
        entry = LogEntry(
            step=step,
            event=event,
            migration_id=migration_id,
            filename=filename,
            direction=direction,
            at=self.now(),
            holder=self.holder,
            generation=self.generation,
            seq=len(self.entries),
            **details,
        )
        self.hooks.store_call(self.store.append_log, entry)
        self._count(entry)
        self.entries.append(entry)
        return entry

    def mark_dead_steps_interrupted(self, lock_state: Any) -> None:
        """Close every step left ``started`` by a run that no longer holds the lock."""
        for entry in planning.unfinished_steps(self.entries, lock_state):
            self.append(
                Event.INTERRUPTED,
                entry.step,
                entry.migration_id,
                entry.filename,
                entry.direction,
                error=f"found unfinished by run {self.holder.run_id}: "
                f"its process ({entry.holder.describe()}) died or lost the lock",
            )


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

    :raises MigrationFailed: a migration raised; the steps before it stay recorded.
    :raises LockBusy: the lease was lost; nothing more runs.
    """
    loaded = {} if fake else load_steps(plan, hooks)
    results = []
    for step in plan.steps:
        migration = step.migration
        assert migration is not None  # planning refuses steps without a migration
        lease.check()
        key = log.next_step_key(plan.direction, migration.filename)
        log.append(
            Event.STARTED,
            key,
            migration.id,
            migration.filename,
            plan.direction,
            checksum=migration.checksum,
            fake=fake,
        )
        started = time.perf_counter()
        try:
            if not fake:
                hooks.execute(migration, loaded[migration.id], plan.direction, db)
        except MigrationFailed as error:
            log.append(
                Event.FAILED,
                key,
                migration.id,
                migration.filename,
                plan.direction,
                duration_s=time.perf_counter() - started,
                error=str(error),
                fake=fake,
            )
            raise
        except KeyboardInterrupt:
            # Its effect is unknown: logged interrupted, so the next run asks a person.
            log.append(
                Event.INTERRUPTED,
                key,
                migration.id,
                migration.filename,
                plan.direction,
                duration_s=time.perf_counter() - started,
                error="interrupted by the user (Ctrl-C)",
                fake=fake,
            )
            raise
        duration = time.perf_counter() - started
        _record(step, migration, plan.direction, hooks, store, duration, fake, log)
        log.append(
            Event.SUCCEEDED,
            key,
            migration.id,
            migration.filename,
            plan.direction,
            checksum=migration.checksum,
            duration_s=round(duration, 6),
            fake=fake,
        )
        result = StepResult(migration.id, migration.filename, plan.direction, fake, duration)
        results.append(result)
        if on_step is not None:
            on_step(result)
    return tuple(results)


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
