"""Pure planning: discovered migrations + history + a request → statuses or a plan.

No I/O here: every function takes values and returns values or raises a precise
error, so all of it is unit-tested without files or a server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence

from alley.errors import DiscoveryError, IntegrityError, UsageError
from alley.model import (
    Attempt,
    Direction,
    Drift,
    HistoryRecord,
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
    return tuple(sorted(statuses, key=_rank_in(migrations)))


def _rank_in(migrations: Sequence[Migration]) -> Callable[[MigrationStatus], tuple[float, str]]:
    """Sort key: a status's position in ``migrations`` (the order the
    ``alley_order_migrations`` hook decided); a record whose file is gone goes where its
    id would fall among the files' ids."""
    position = {m.filename: index for index, m in enumerate(migrations)}
    ids = sorted((m.id, index) for index, m in enumerate(migrations))

    def rank(status: MigrationStatus) -> tuple[float, str]:
        if status.migration is not None:
            return (position[status.migration.filename], status.filename)
        before = [index for migration_id, index in ids if migration_id < status.id]
        return (max(before, default=-1) + 0.5, status.filename)

    return rank


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
    """Pending migrations to apply, in order, up to and including ``target``.

    ``statuses`` are in the order migrations apply (:func:`reconcile` keeps the order
    the ``alley_order_migrations`` hook decided; by id by default). A ``target`` that is
    applied already gives an empty plan (0.0.3 said "nothing to execute" and succeeded,
    so a deploy pinned to a target runs again without error); one that exists nowhere is
    an error. A pending migration that comes before an applied one (merged branches) is
    refused unless ``allow_out_of_order``.
    """
    position = {id(s): index for index, s in enumerate(statuses)}
    pending = [s for s in statuses if s.state is State.PENDING]
    if target is not None:
        _require_known(statuses, target)
        wanted = next((s for s in pending if s.id == target), None)
        if wanted is None:  # applied already: nothing to do, as 0.0.3 said
            return Plan(Direction.UP, (), target)
        pending = [s for s in pending if position[id(s)] <= position[id(wanted)]]

    newest = max(
        (s for s in statuses if s.state is State.APPLIED),
        key=lambda s: position[id(s)],
        default=None,
    )
    if not allow_out_of_order and newest is not None:
        behind = [s for s in pending if position[id(s)] < position[id(newest)]]
        if behind:
            names = ", ".join(s.filename for s in behind)
            raise IntegrityError(
                f"pending {names} is older than applied migration {newest.id}",
                hint="renumber it, or run it anyway with --allow-out-of-order",
            )
    return Plan(Direction.UP, tuple(pending), target)


def plan_down(
    statuses: Sequence[MigrationStatus],
    target: int | None = None,
    *,
    steps: int | None = None,
) -> Plan:
    """Applied migrations to roll back, newest first.

    With ``target``: down to and including it (it must be applied). With ``steps``: the
    last ``steps`` applied ones (at least 1; refused when fewer are applied). With
    neither: the last applied one only (an empty plan when nothing is applied). "Last"
    is in the order migrations apply (the ``alley_order_migrations`` hook's, by id by
    default), the order of ``statuses``.

    Every step needs its file (to call ``down``); a deleted one stops the plan before
    anything runs or is removed.
    """
    check_down_request(target, steps)
    applied = [s for s in statuses if s.state is State.APPLIED]
    if target is not None:
        _require_known(statuses, target)
        if not any(s.id == target for s in applied):
            raise UsageError(
                f"migration {target} is not applied", hint="run 'alley status' to see what is"
            )
        # Newest first: the reverse of the order they apply in.
        first = next(
            i for i, s in enumerate(statuses) if s.id == target and s.state is State.APPLIED
        )
        chosen = [s for s in reversed(statuses[first:]) if s.state is State.APPLIED]
    else:
        count = 1 if steps is None else steps
        if steps is not None and count > len(applied):
            raise UsageError(
                f"cannot roll back {count} migrations: only {len(applied)} "
                f"{'is' if len(applied) == 1 else 'are'} applied",
                hint="run 'alley status' to see what is",
            )
        chosen = list(reversed(applied))[:count]
    missing = [s for s in chosen if s.migration is None]
    if missing:
        names = ", ".join(s.filename for s in missing)
        raise IntegrityError(
            f"cannot roll back {names}: the migration file is gone",
            hint="restore it from version control; nothing was rolled back",
        )
    return Plan(Direction.DOWN, tuple(chosen), target)


def check_down_request(target: int | None, steps: int | None) -> None:
    """Refuse a ``down`` request that cannot mean anything, before anything is read."""
    if target is not None and steps is not None:
        raise UsageError("give either a migration id or --steps, not both")
    if steps is not None and steps < 1:
        raise UsageError(f"invalid --steps {steps}", hint="give a number of migrations, 1 or more")


def plan_redo(statuses: Sequence[MigrationStatus]) -> tuple[Plan, Plan]:
    """``redo``: roll back the last applied migration, then apply it again.

    Returns the ``down`` plan and the ``up`` plan of the same migration (as the pending
    migration it is once rolled back); both empty when nothing is applied.
    """
    down = plan_down(statuses)
    again = tuple(
        MigrationStatus(s.id, _file(s).filename, State.PENDING, s.migration, None, None)
        for s in down.steps
    )
    return down, Plan(Direction.UP, again, down.target)


def _file(status: MigrationStatus) -> Migration:
    assert status.migration is not None  # plan_down refuses steps without a file
    return status.migration


def _require_known(statuses: Sequence[MigrationStatus], target: int) -> None:
    if not any(s.id == target for s in statuses):
        raise UsageError(f"no migration has id {target}", hint="run 'alley status' to see the ids")


def check_runnable(
    statuses: Sequence[MigrationStatus],
    *,
    allow_drift: bool = False,
    retry: bool = False,
    idempotent: Collection[str] = (),
) -> None:
    """Refuse to run while a step waits for a person, or (unless allowed) past drift.

    A step waits for a person when it was interrupted, or when it failed after writing
    (unless ``retry`` was asked for, or its migration is in ``idempotent``, the
    filenames that declared themselves safe to run again).
    """
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
    half_done = [
        s
        for s in statuses
        if s.attempt is Attempt.FAILED_AFTER_WRITING
        and not retry
        and (s.migration is None or s.migration.filename not in idempotent)
    ]
    if half_done:
        first = half_done[0]
        entry = first.attempt_entry
        assert entry is not None
        wrote = (entry.error or "").rpartition("; it wrote ")[2] or "something"
        raise IntegrityError(
            f"{first.filename} failed ({entry.direction}) after it wrote {wrote}; "
            "running it again could apply part of it twice",
            hint=f"check the database, then run it again with 'alley {entry.direction} "
            f"--retry', or decide with 'alley mark {first.id} --applied' or "
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
