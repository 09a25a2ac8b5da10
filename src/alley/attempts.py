"""What became of each step a run claimed: the crash-recovery state machine.

A step's *attempt* is the open :class:`~alley.model.LogEntry` a history store keeps
under the migration's filename (:class:`alley.store.RunLog`). Its states and the
transitions between them, all of them, with who makes each::

    (none) ──claim──▶ CLAIMED                    the run opens every step of its plan
                                                 at once, before the first runs
    CLAIMED ──its turn──▶ RUNNING                same entry; the run holds the lock
    RUNNING ──ran, recorded──▶ SUCCEEDED         outcome logged, attempt closed
    RUNNING ──raised, wrote nothing──▶ FAILED    open; the next ``up`` runs it again
    RUNNING ──raised after writing──▶ FAILED_AFTER_WRITING
                                                 open; waits for ``up --retry`` or
                                                 ``mark`` (unless ``idempotent``)
    RUNNING ──Ctrl-C──▶ INTERRUPTED              open, logged ``interrupted``
    FAILED, INTERRUPTED ──wrote only through checkpointed batch helpers──▶ RESUMABLE
                                                 its open attempt holds the helpers'
                                                 checkpoints and no other write: the
                                                 next ``up`` runs it again, each helper
                                                 resuming after its checkpoint
    RUNNING ──run died, or lost its lease──▶ INTERRUPTED
                                                 seen by the next run: the entry is
                                                 still ``started`` and its run's lease
                                                 is gone; logged then by that run
    CLAIMED ──run stopped before it──▶ (none)    dropped by the run that stopped, or
                                                 by the next run if it died
    RUNNING ──run died after recording──▶ SUCCEEDED
                                                 the record carries the run's id: the
                                                 next run logs it and closes it
    INTERRUPTED, FAILED_AFTER_WRITING ──mark──▶ DECIDED   closed, ``marked-*`` logged
    INTERRUPTED, FAILED ──a record appeared──▶ DECIDED
                                                 an ``up`` step of a dead run that
                                                 another tool (alley 0.0.3) since
                                                 recorded as applied: it counts as
                                                 applied; the next run logs
                                                 ``marked-applied`` with a note, closes it
    FAILED (or --retry) ──next up──▶ CLAIMED     closed and claimed again

A run that lost its lease writes nothing (:mod:`alley.lease`): a step it finished
afterwards stays RUNNING in the store and is found INTERRUPTED, so a person decides.

When a step started: its open attempt says when it was claimed, or (written when the
step started a second or more after that) when it started. An ``up`` step starts right
after its run recorded the one before, so the date of that record is its start too
(:func:`started_at`): a run writes nothing more per step to keep that time.

Everything here is pure: open attempts, statuses and the lock in, states out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alley.model import (
    Attempt,
    Direction,
    Event,
    LockState,
    LogEntry,
    MigrationStatus,
)


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


def recorded_by_another(attempt: LogEntry, status: MigrationStatus | None) -> bool:
    """Whether an ``up`` step's attempt that its run did not finish has a record all the
    same, written since by another tool (alley 0.0.3, which takes no lock and reads no
    attempts; its records carry no ``run_id``). The record says it is applied: the
    attempt has nothing left to decide. (A record of another alley run does not settle
    it: alley never records a step another run holds open, so a person looks.)"""
    return (
        attempt.direction is Direction.UP
        and status is not None
        and status.record is not None
        and status.record.extra.get("run_id") is None
    )


def started_at(
    attempt: LogEntry, statuses: Sequence[MigrationStatus], now: datetime | None = None
) -> datetime:
    """When a ``started`` attempt's step started: its ``at``, or for ``up`` the date of
    the newest record its run wrote if later (the step before it ended there, and this
    one started then), but never after ``now``."""
    if attempt.event is not Event.STARTED or attempt.direction is not Direction.UP:
        return attempt.at
    dates = [
        s.record.date
        for s in statuses
        if s.record is not None
        and s.record.date is not None
        and s.record.extra.get("run_id") == attempt.holder.run_id
    ]
    start = max([attempt.at, *dates])
    return min(start, now) if now is not None and now > attempt.at else start


def resumable(entry: LogEntry) -> bool:
    """Whether a failed or interrupted attempt can resume from its checkpoints: its
    batch helpers checkpointed (:mod:`alley.data`), and it wrote nothing else (a
    ``writes`` of 0: the helpers' own writes are not counted; ``None``, unknown, is not
    resumable)."""
    return bool(entry.checkpoints) and entry.writes == 0


def wrote_something(entry: LogEntry) -> bool:
    """Whether a failed step may have changed data: it sent writes, or nobody knows."""
    return entry.writes is None or entry.writes > 0


@dataclass(frozen=True)
class RunAttempts:
    """A run's open attempts, sorted by what became of each.

    A run claims every step of its plan before the first one runs, then runs them one
    at a time in plan order and stops at the first that fails. So of its attempts still
    open, those its records show completed are *finished*; the first one that is not is
    the step it was on (*current*: still running if the run holds the lock, else
    interrupted, unless it was settled as failed or interrupted; its ``at`` is when
    the step started, :func:`started_at`); the ones after it never started
    (*unstarted*) and can be dropped without asking anybody. A dead run's current
    ``up`` step that another tool recorded since is *recorded* instead.
    """

    run_id: str
    live: bool
    finished: tuple[LogEntry, ...]
    current: LogEntry | None
    unstarted: tuple[LogEntry, ...]
    recorded: LogEntry | None = None


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
        live = run_id == live_run
        recorded: LogEntry | None = None
        if current is not None:
            if not live and recorded_by_another(current, status_of.get(current.filename)):
                recorded, current = current, None
            else:
                now = lock.server_now if lock is not None else None
                current = dataclasses.replace(current, at=started_at(current, statuses, now))
        runs.append(RunAttempts(run_id, live, tuple(finished), current, tuple(unstarted), recorded))
    return runs


@dataclass(frozen=True)
class DeadAttempts:
    """Open ``started`` attempts of runs that no longer hold a live lease.

    :ivar finished: their step completed (its record says so): log them, close them.
    :ivar interrupted: the step each dead run was on: its effect is unknown.
    :ivar unstarted: claims the dead run never started: drop them.
    :ivar recorded: the step a dead run was on (or that failed, or was interrupted)
        that another tool recorded as applied since: log it settled, close it.
    """

    finished: tuple[LogEntry, ...] = ()
    interrupted: tuple[LogEntry, ...] = ()
    unstarted: tuple[LogEntry, ...] = ()
    recorded: tuple[LogEntry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.finished or self.interrupted or self.unstarted or self.recorded)


def dead_attempts(
    statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: LockState | None
) -> DeadAttempts:
    """What runs that died (or lost their lease) left open, sorted for settling."""
    finished: list[LogEntry] = []
    interrupted: list[LogEntry] = []
    unstarted: list[LogEntry] = []
    recorded: list[LogEntry] = []
    for run in runs_of(statuses, open_attempts, lock):
        if run.live:
            continue
        finished += run.finished
        if run.current is not None and run.current.event is Event.STARTED:
            interrupted.append(run.current)
        if run.recorded is not None:
            recorded.append(run.recorded)
        unstarted += [a for a in run.unstarted if a.event is Event.STARTED]
    return DeadAttempts(tuple(finished), tuple(interrupted), tuple(unstarted), tuple(recorded))


def recorded_elsewhere(
    statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: LockState | None
) -> tuple[LogEntry, ...]:
    """Open attempts that a record written since by another tool settles as applied."""
    return tuple(run.recorded for run in runs_of(statuses, open_attempts, lock) if run.recorded)


def settled_note(attempt: LogEntry, *, closed: bool) -> str:
    """What ``status``, plans and runs say about an attempt :func:`recorded_by_another`
    settles."""
    what = "failed" if attempt.event is Event.FAILED else "interrupted"
    then = "closed" if closed else "it counts as applied; the next up, down or mark closes it"
    return (
        f"{attempt.filename}: its {what} step was since recorded as applied "
        f"(by alley 0.0.3 or another tool); {then}"
    )


def annotate(
    statuses: Sequence[MigrationStatus],
    open_attempts: Sequence[LogEntry],
    lock: LockState | None,
) -> tuple[MigrationStatus, ...]:
    """Add what became of each migration's open attempt (see the states above)."""
    states: dict[str, tuple[Attempt, LogEntry]] = {}
    for run in runs_of(statuses, open_attempts, lock):
        current = run.current
        if current is None:
            continue
        if run.live and current.event is Event.STARTED:
            state = Attempt.RUNNING
        elif resumable(current):
            state = Attempt.RESUMABLE
        elif current.event is Event.FAILED:
            state = Attempt.FAILED_AFTER_WRITING if wrote_something(current) else Attempt.FAILED
        elif current.event is Event.INTERRUPTED or not run.live:
            state = Attempt.INTERRUPTED
        else:
            state = Attempt.RUNNING
        states[current.filename] = (state, current)
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
