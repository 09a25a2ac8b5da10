"""Pure planning: discovered migrations + history + a request → statuses or a plan.

No I/O here: every function takes values and returns values or raises a precise
error, so all of it is unit-tested without files or a server.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

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
# The run log: attempts, interruptions, and what blocks a run
# -------------------------------------------------------------------------

_ENDS = (Event.SUCCEEDED, Event.FAILED, Event.INTERRUPTED)


def next_step_key(log: Sequence[LogEntry], direction: Direction, filename: str) -> str:
    """The unique key of the next attempt at a step: ``up:0003_x.py:2``.

    Two runs that read the same log compute the same key, and the store lets only one
    of them write a ``started`` entry with it: a guard that holds even without the lock.
    """
    attempts = sum(
        1
        for entry in log
        if entry.event is Event.STARTED
        and entry.direction is direction
        and entry.filename == filename
    )
    return f"{direction}:{filename}:{attempts + 1}"


def unfinished_steps(log: Sequence[LogEntry], lock: LockState | None) -> list[LogEntry]:
    """``started`` entries with no end, except those of the run holding a live lock.

    Called by a run that holds the lock, these are steps whose process died.
    """
    ended = {entry.step for entry in log if entry.event in _ENDS}
    resolved = {step for entry in log for step in entry.resolves}
    live_run = lock.holder.run_id if lock is not None and not lock.free else None
    return [
        entry
        for entry in log
        if entry.event is Event.STARTED
        and entry.step not in ended
        and entry.step not in resolved
        and entry.holder.run_id != live_run
    ]


def annotate(
    statuses: Sequence[MigrationStatus], log: Sequence[LogEntry], lock: LockState | None
) -> tuple[MigrationStatus, ...]:
    """Add what became of each migration's latest attempt (running, interrupted, failed).

    ``log`` is oldest first. An attempt is settled by its latest end entry, or by a
    ``marked-*`` entry that resolves it (``alley mark``).
    """
    latest_start: dict[str, LogEntry] = {}
    last_end: dict[str, LogEntry] = {}
    resolved: set[str] = set()
    for entry in log:
        if entry.event is Event.STARTED:
            latest_start[entry.filename] = entry
        elif entry.event in _ENDS:
            last_end[entry.step] = entry
        resolved.update(entry.resolves)
    live_run = lock.holder.run_id if lock is not None and not lock.free else None

    annotated = []
    for status in statuses:
        names = {status.filename}
        if status.migration is not None:
            names.add(status.migration.filename)
        starts = [latest_start[name] for name in names if name in latest_start]
        if not starts:
            annotated.append(status)
            continue
        start = max(starts, key=lambda e: (e.generation, e.seq))
        end = last_end.get(start.step)
        attempt: Attempt | None
        if start.step in resolved or (end is not None and end.event is Event.SUCCEEDED):
            attempt = None
        elif end is not None:
            attempt = Attempt.FAILED if end.event is Event.FAILED else Attempt.INTERRUPTED
        else:
            attempt = Attempt.RUNNING if start.holder.run_id == live_run else Attempt.INTERRUPTED
        annotated.append(dataclasses.replace(status, attempt=attempt, attempt_entry=start))
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
