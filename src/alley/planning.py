"""Pure planning: discovered migrations + history + a request → statuses or a plan.

No I/O here: every function takes values and returns values or raises a precise
error, so all of it is unit-tested without files or a server.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alley.errors import DiscoveryError, IntegrityError, UsageError
from alley.model import (
    Attempt,
    Direction,
    Drift,
    Event,
    HistoryRecord,
    LockState,
    LogEntry,
    Migration,
    MigrationStatus,
    Plan,
    State,
)

_NOT_NAME_CHARACTER = re.compile(r"[^a-z0-9_]")


def normalise_name(name: str) -> str:
    """Turn a human name into the ``[a-z0-9_]`` part of a migration filename.

    Lower-cased first (0.0.3 did not), then every other character becomes ``_``.
    """
    normalised = _NOT_NAME_CHARACTER.sub("_", name.strip().lower())
    if not normalised.strip("_"):
        raise UsageError(
            f"invalid migration name {name!r}",
            hint="use letters, digits or underscores, e.g. 'add_users'",
        )
    return normalised


def next_id(existing_ids: Iterable[int]) -> int:
    """The id for a new migration: the highest id so far plus one (1 for the first)."""
    return max(existing_ids, default=0) + 1


def parse_target(text: str | int) -> int:
    """Parse a MIGRATION_ID argument: ``3``, ``0003`` and ``0003_add_users.py`` are all 3."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*0*(\d+)(?:_[A-Za-z0-9_]*(?:\.py)?)?\s*", text)
    if not match:
        raise UsageError(
            f"invalid migration id {text!r}", hint="give the number at the start of its filename"
        )
    return int(match.group(1))


def check_unique_ids(migrations: Sequence[Migration]) -> None:
    """Refuse two migrations with one id: their order, and which ran, would be ambiguous."""
    by_id: dict[int, Migration] = {}
    for migration in migrations:
        other = by_id.setdefault(migration.id, migration)
        if other is not migration:
            raise DiscoveryError(
                f"two migrations have id {migration.id}: {other.location} and {migration.location}",
                hint="renumber one of them",
            )


def reconcile(
    migrations: Sequence[Migration], history: Sequence[HistoryRecord]
) -> tuple[MigrationStatus, ...]:
    """Match each migration with its history record and say what state it is in.

    A record matches the migration with the same filename (0.0.3's rule). A file renamed
    after it was applied (same id, new name, its old name matching no file) still counts
    as applied, flagged ``renamed``, so it never runs twice. A record whose file is gone
    is applied and ``deleted``. Applied files whose source changed are ``changed``;
    records without a checksum (written by 0.0.3) are ``unknown``, never drift.
    """
    by_filename = {m.filename: m for m in migrations}
    unmatched_records: list[HistoryRecord] = []
    statuses: list[MigrationStatus] = []
    matched: set[str] = set()

    for record in history:
        if record.filename in matched:
            continue  # recorded twice (0.0.3 had no lock): one migration, one status
        migration = by_filename.get(record.filename)
        if migration is None:
            if all(r.filename != record.filename for r in unmatched_records):
                unmatched_records.append(record)
            continue
        matched.add(migration.filename)
        statuses.append(_applied(migration, record, renamed=False))

    for migration in migrations:
        if migration.filename in matched:
            continue
        renamed_from = next((r for r in unmatched_records if r.id == migration.id), None)
        if renamed_from is not None:
            unmatched_records.remove(renamed_from)
            statuses.append(_applied(migration, renamed_from, renamed=True))
        else:
            statuses.append(
                MigrationStatus(
                    migration.id, migration.filename, State.PENDING, migration, None, None
                )
            )

    for record in unmatched_records:
        statuses.append(
            MigrationStatus(record.id, record.filename, State.APPLIED, None, record, Drift.DELETED)
        )
    return tuple(sorted(statuses, key=lambda s: (s.id, s.filename)))


def _applied(migration: Migration, record: HistoryRecord, *, renamed: bool) -> MigrationStatus:
    drift: Drift | None
    if renamed:
        drift = Drift.RENAMED
    elif record.checksum is None:
        drift = Drift.UNKNOWN
    elif record.checksum != migration.checksum:
        drift = Drift.CHANGED
    else:
        drift = None
    return MigrationStatus(migration.id, record.filename, State.APPLIED, migration, record, drift)


def plan_up(
    statuses: Sequence[MigrationStatus],
    target: int | None = None,
    *,
    allow_out_of_order: bool = False,
) -> Plan:
    """Pending migrations to apply, in id order, up to and including ``target``.

    ``target`` must be a pending migration (0.0.3's rule). A pending migration with an id
    lower than an applied one (merged branches) is refused unless ``allow_out_of_order``.
    """
    pending = [s for s in statuses if s.state is State.PENDING]
    if target is not None:
        _require_known(statuses, target)
        if not any(s.id == target for s in pending):
            raise UsageError(
                f"migration {target} is already applied", hint="run 'alley status' to see pending"
            )
        pending = [s for s in pending if s.id <= target]

    newest_applied = max((s.id for s in statuses if s.state is State.APPLIED), default=None)
    if not allow_out_of_order and newest_applied is not None:
        behind = [s for s in pending if s.id < newest_applied]
        if behind:
            names = ", ".join(s.filename for s in behind)
            raise IntegrityError(
                f"pending {names} is older than applied migration {newest_applied}",
                hint="renumber it, or run it anyway with --allow-out-of-order",
            )
    return Plan(Direction.UP, tuple(sorted(pending, key=lambda s: s.id)), target)


def plan_down(statuses: Sequence[MigrationStatus], target: int) -> Plan:
    """Applied migrations to roll back, newest first, down to and including ``target``.

    Every step needs its file (to call ``down``); a deleted one stops the plan before
    anything runs or is removed.
    """
    _require_known(statuses, target)
    applied = [s for s in statuses if s.state is State.APPLIED]
    if not any(s.id == target for s in applied):
        raise UsageError(
            f"migration {target} is not applied", hint="run 'alley status' to see what is"
        )
    steps = sorted((s for s in applied if s.id >= target), key=lambda s: s.id, reverse=True)
    missing = [s for s in steps if s.migration is None]
    if missing:
        names = ", ".join(s.filename for s in missing)
        raise IntegrityError(
            f"cannot roll back {names}: the migration file is gone",
            hint="restore it from version control; nothing was rolled back",
        )
    return Plan(Direction.DOWN, tuple(steps), target)


def _require_known(statuses: Sequence[MigrationStatus], target: int) -> None:
    if not any(s.id == target for s in statuses):
        raise UsageError(f"no migration has id {target}", hint="run 'alley status' to see the ids")


# -------------------------------------------------------------------------
# Open attempts: running, interrupted, failed
# -------------------------------------------------------------------------


def _by_filename(statuses: Sequence[MigrationStatus]) -> dict[str, MigrationStatus]:
    """Each status under its recorded and its current filename (they differ after a
    rename); the first status wins, as in a scan."""
    found: dict[str, MigrationStatus] = {}
    for status in statuses:
        found.setdefault(status.filename, status)
        if status.migration is not None:
            found.setdefault(status.migration.filename, status)
    return found


def finished_by_its_run(attempt: LogEntry, status: MigrationStatus | None) -> bool:
    """Whether a ``started`` attempt's step completed although it was never closed.

    A run records a step right after it ran and closes its attempts later; if it died
    in between, the record tells: for ``up``, a record written by that run; for
    ``down``, no record left.
    """
    if attempt.direction is Direction.UP:
        return (
            status is not None
            and status.record is not None
            and status.record.extra.get("run_id") == attempt.holder.run_id
        )
    return status is None or status.record is None


@dataclass(frozen=True)
class RunAttempts:
    """A run's open attempts, sorted by what became of each.

    A run claims every step of its plan before the first one runs, then runs them one
    at a time in plan order and stops at the first that fails. So of its attempts still
    open, those its records show completed are *finished*; the first one that is not is
    the step it was on (*current*: still running if the run holds the lock, else
    interrupted, unless it was settled as failed or interrupted); the ones after it
    never started (*unstarted*) and can be dropped without asking anybody.
    """

    run_id: str
    live: bool
    finished: tuple[LogEntry, ...]
    current: LogEntry | None
    unstarted: tuple[LogEntry, ...]


def runs_of(
    statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: LockState | None
) -> list[RunAttempts]:
    """Group open attempts by the run that opened them and classify each (see
    :class:`RunAttempts`)."""
    live_run = lock.holder.run_id if lock is not None and not lock.free else None
    status_of = _by_filename(statuses)
    by_run: dict[str, list[LogEntry]] = {}
    for attempt in open_attempts:
        by_run.setdefault(attempt.holder.run_id, []).append(attempt)
    runs = []
    for run_id, attempts in by_run.items():
        # Plan order (up: ascending ids, down: descending). Not seq: an attempt that
        # failed or was interrupted carries its outcome's seq, later than any claim's.
        attempts.sort(
            key=lambda a: a.migration_id if a.direction is Direction.UP else -a.migration_id
        )
        finished: list[LogEntry] = []
        current: LogEntry | None = None
        unstarted: list[LogEntry] = []
        for attempt in attempts:
            if current is not None:
                unstarted.append(attempt)
            elif attempt.event is Event.STARTED and finished_by_its_run(
                attempt, status_of.get(attempt.filename)
            ):
                finished.append(attempt)
            else:
                current = attempt
        runs.append(
            RunAttempts(run_id, run_id == live_run, tuple(finished), current, tuple(unstarted))
        )
    return runs


def dead_attempts(
    statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: LockState | None
) -> tuple[list[LogEntry], list[LogEntry], list[LogEntry]]:
    """Open ``started`` attempts of runs that no longer hold a live lock.

    :returns: ``(finished, interrupted, unstarted)``: those whose step completed (their
        record says so), those whose effect is unknown, and those that never started.
    """
    finished: list[LogEntry] = []
    interrupted: list[LogEntry] = []
    unstarted: list[LogEntry] = []
    for run in runs_of(statuses, open_attempts, lock):
        if run.live:
            continue
        finished += run.finished
        if run.current is not None and run.current.event is Event.STARTED:
            interrupted.append(run.current)
        unstarted += [a for a in run.unstarted if a.event is Event.STARTED]
    return finished, interrupted, unstarted


def annotate(
    statuses: Sequence[MigrationStatus],
    open_attempts: Sequence[LogEntry],
    lock: LockState | None,
) -> tuple[MigrationStatus, ...]:
    """Add what became of each migration's open attempt: running, interrupted, failed."""
    states: dict[str, tuple[Attempt, LogEntry]] = {}
    for run in runs_of(statuses, open_attempts, lock):
        current = run.current
        if current is None:
            continue
        if current.event is Event.FAILED:
            states[current.filename] = (Attempt.FAILED, current)
        elif current.event is Event.INTERRUPTED or not run.live:
            states[current.filename] = (Attempt.INTERRUPTED, current)
        else:
            states[current.filename] = (Attempt.RUNNING, current)
    annotated = []
    for status in statuses:
        names = [status.filename]
        if status.migration is not None:
            names.append(status.migration.filename)
        found = next((states[n] for n in names if n in states), None)
        annotated.append(
            dataclasses.replace(
                status,
                attempt=found[0] if found else None,
                attempt_entry=found[1] if found else None,
            )
        )
    return tuple(annotated)


def check_runnable(statuses: Sequence[MigrationStatus], *, allow_drift: bool = False) -> None:
    """Refuse to run while a step was interrupted, or (unless allowed) past drift."""
    interrupted = [s for s in statuses if s.attempt is Attempt.INTERRUPTED]
    if interrupted:
        first = interrupted[0]
        entry = first.attempt_entry
        where = (
            f" ({entry.direction} started {entry.at:%Y-%m-%d %H:%M:%S} UTC by "
            f"{entry.holder.describe()})"
            if entry is not None
            else ""
        )
        raise IntegrityError(
            f"{first.filename} was interrupted{where}; its effect is unknown",
            hint=f"check the database, then 'alley mark {first.id} --applied' or "
            f"'alley mark {first.id} --pending'",
        )
    drifted = [s for s in statuses if s.drift in (Drift.CHANGED, Drift.DELETED, Drift.RENAMED)]
    if drifted and not allow_drift:
        details = ", ".join(f"{s.filename} ({s.drift})" for s in drifted)
        raise IntegrityError(
            f"applied migrations differ from their files: {details}",
            hint="restore them, accept an edit with 'alley mark ID --applied', "
            "or run anyway with --allow-drift",
        )
