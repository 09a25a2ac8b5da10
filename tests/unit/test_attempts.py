"""Open attempts (pure planning): running, failed, interrupted, or finished by a dead run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from alley.attempts import annotate, recorded_elsewhere, settled_note, started_at
from alley.attempts import dead_attempts as dead_attempts_of
from alley.model import (
    Attempt,
    Direction,
    Event,
    HistoryRecord,
    Holder,
    LockState,
    LogEntry,
    Migration,
    MigrationStatus,
    State,
)
from alley.planning import reconcile

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def dead_attempts(
    statuses: Sequence[MigrationStatus], open_attempts: Sequence[LogEntry], lock: LockState | None
) -> tuple[list[LogEntry], list[LogEntry], list[LogEntry]]:
    dead = dead_attempts_of(statuses, open_attempts, lock)
    return list(dead.finished), list(dead.interrupted), list(dead.unstarted)


LIVE = Holder("live-run", "h", 1, "u", "0", "up")
DEAD = Holder("dead-run", "h", 2, "u", "0", "up")


def migration(number: int) -> Migration:
    name = f"{number:04}_m.py"
    return Migration(number, "m", name, "def up(db):\n    pass\n", name)


def record(number: int, run_id: str | None) -> HistoryRecord:
    extra = {"run_id": run_id} if run_id else {}
    return HistoryRecord(number, f"{number:04}_m.py", NOW, None, extra)


def attempt(
    number: int,
    event: Event,
    holder: Holder,
    direction: Direction = Direction.UP,
    seq: int | None = None,
    writes: int | None = None,
) -> LogEntry:
    name = f"{number:04}_m.py"
    return LogEntry(
        f"{direction}:{name}:{holder.run_id}",
        event,
        number,
        name,
        direction,
        NOW,
        holder,
        seq=number if seq is None else seq,
        writes=writes,
    )


def lock(holder: Holder, *, expired: bool = False, released: bool = False) -> LockState:
    beat = NOW - timedelta(seconds=60 if expired else 1)
    return LockState(1, holder, beat, beat, 30.0, released, NOW)


def statuses(*records: HistoryRecord, count: int = 2) -> tuple[MigrationStatus, ...]:
    return reconcile([migration(n) for n in range(1, count + 1)], list(records))


def attempts_of(result: tuple[MigrationStatus, ...]) -> list[Attempt | None]:
    return [s.attempt for s in result]


def test_no_open_attempt_means_no_attempt_state() -> None:
    assert attempts_of(annotate(statuses(), [], None)) == [None, None]


@pytest.mark.parametrize(
    ("event", "writes", "expected"),
    [
        (Event.FAILED, 0, Attempt.FAILED),
        (Event.FAILED, 3, Attempt.FAILED_AFTER_WRITING),
        (Event.FAILED, None, Attempt.FAILED_AFTER_WRITING),
        (Event.INTERRUPTED, None, Attempt.INTERRUPTED),
    ],
    ids=["failed-wrote-nothing", "failed-after-writes", "failed-writes-unknown", "interrupted"],
)
def test_settled_outcomes_are_reported_as_such(
    event: Event, writes: int | None, expected: Attempt
) -> None:
    result = annotate(statuses(), [attempt(2, event, DEAD, writes=writes)], None)
    assert attempts_of(result) == [None, expected]
    assert result[1].attempt_entry is not None


def test_a_started_attempt_of_the_live_holder_is_running() -> None:
    result = annotate(statuses(), [attempt(1, Event.STARTED, LIVE)], lock(LIVE))
    assert attempts_of(result) == [Attempt.RUNNING, None]


@pytest.mark.parametrize(
    "current_lock",
    [None, lock(LIVE), lock(DEAD, expired=True), lock(DEAD, released=True)],
    ids=["never-locked", "other-holder", "expired", "released"],
)
def test_a_started_attempt_of_a_dead_run_without_its_record_is_interrupted(
    current_lock: LockState | None,
) -> None:
    result = annotate(statuses(), [attempt(1, Event.STARTED, DEAD)], current_lock)
    assert attempts_of(result) == [Attempt.INTERRUPTED, None]
    finished, interrupted, unstarted = dead_attempts(
        statuses(), [attempt(1, Event.STARTED, DEAD)], current_lock
    )
    assert (finished, [a.filename for a in interrupted], unstarted) == ([], ["0001_m.py"], [])


def test_an_up_recorded_by_the_dead_run_itself_finished() -> None:
    current = statuses(record(1, "dead-run"))
    open_attempts = [attempt(1, Event.STARTED, DEAD)]

    assert attempts_of(annotate(current, open_attempts, None)) == [None, None]
    finished, interrupted, unstarted = dead_attempts(current, open_attempts, None)
    assert ([a.filename for a in finished], interrupted, unstarted) == (["0001_m.py"], [], [])


def test_an_up_recorded_by_another_run_did_not_finish_in_this_attempt() -> None:
    current = statuses(record(1, "some-earlier-run"))
    result = annotate(current, [attempt(1, Event.STARTED, DEAD)], None)
    assert attempts_of(result) == [Attempt.INTERRUPTED, None]


def test_a_down_whose_record_is_gone_finished_and_one_whose_record_stays_did_not() -> None:
    down = attempt(1, Event.STARTED, DEAD, Direction.DOWN)

    gone = statuses()
    stays = statuses(record(1, "some-run"))

    assert gone[0].state is State.PENDING
    assert attempts_of(annotate(gone, [down], None)) == [None, None]
    assert attempts_of(annotate(stays, [down], None)) == [Attempt.INTERRUPTED, None]


def test_the_live_holders_own_attempts_are_never_dead() -> None:
    assert dead_attempts(statuses(), [attempt(1, Event.STARTED, LIVE)], lock(LIVE)) == ([], [], [])


# A run claims its whole plan before the first step, so a dead run leaves claims it
# never started beside the one it was on.


def names(entries: list[LogEntry]) -> list[str]:
    return [e.filename for e in entries]


def test_a_dead_run_was_on_its_first_unrecorded_step_and_never_started_the_rest() -> None:
    current = statuses(record(1, "dead-run"), record(2, "dead-run"), count=5)
    claims = [attempt(n, Event.STARTED, DEAD) for n in (5, 3, 1, 4, 2)]  # any store order

    finished, interrupted, unstarted = dead_attempts(current, claims, None)

    assert names(finished) == ["0001_m.py", "0002_m.py"]
    assert names(interrupted) == ["0003_m.py"]
    assert names(unstarted) == ["0004_m.py", "0005_m.py"]
    shown = attempts_of(annotate(current, claims, None))
    assert shown == [None, None, Attempt.INTERRUPTED, None, None]


def test_claims_after_a_failed_step_never_started_and_the_failure_stays() -> None:
    current = statuses(record(1, "dead-run"), count=4)
    claims = [
        attempt(1, Event.STARTED, DEAD),
        attempt(2, Event.FAILED, DEAD, seq=9, writes=0),  # its outcome's seq: after every claim's
        attempt(3, Event.STARTED, DEAD),
        attempt(4, Event.STARTED, DEAD),
    ]

    finished, interrupted, unstarted = dead_attempts(current, claims, None)

    assert (names(finished), interrupted) == (["0001_m.py"], [])
    assert names(unstarted) == ["0003_m.py", "0004_m.py"]
    assert attempts_of(annotate(current, claims, None)) == [None, Attempt.FAILED, None, None]


def test_a_live_run_is_running_its_first_unrecorded_step_only() -> None:
    current = statuses(record(1, "live-run"), count=3)
    claims = [attempt(n, Event.STARTED, LIVE) for n in (1, 2, 3)]

    result = annotate(current, claims, lock(LIVE))

    assert attempts_of(result) == [None, Attempt.RUNNING, None]
    assert dead_attempts(current, claims, lock(LIVE)) == ([], [], [])


def test_runs_are_judged_apart() -> None:
    current = statuses(record(1, "dead-run"), count=4)
    claims = [
        attempt(1, Event.STARTED, DEAD, seq=1),
        attempt(2, Event.STARTED, DEAD, seq=2),
        attempt(3, Event.STARTED, LIVE, seq=1),
        attempt(4, Event.STARTED, LIVE, seq=2),
    ]

    result = annotate(current, claims, lock(LIVE))

    assert attempts_of(result) == [None, Attempt.INTERRUPTED, Attempt.RUNNING, None]


def test_a_down_run_that_died_removed_what_it_finished() -> None:
    current = statuses(record(1, "r"), record(2, "r"), count=3)  # 3's record is gone
    claims = [attempt(n, Event.STARTED, DEAD, Direction.DOWN, seq=4 - n) for n in (3, 2, 1)]

    finished, interrupted, unstarted = dead_attempts(current, claims, None)

    assert (names(finished), names(interrupted)) == (["0003_m.py"], ["0002_m.py"])
    assert names(unstarted) == ["0001_m.py"]


# -- a record another tool (alley 0.0.3) wrote since -------------------------------------


@pytest.mark.parametrize("event", [Event.STARTED, Event.INTERRUPTED, Event.FAILED])
def test_an_up_left_open_that_003_recorded_since_counts_as_applied(event: Event) -> None:
    current = statuses(record(1, "dead-run"), record(2, None), count=3)
    claims = [attempt(2, event, DEAD, writes=1), attempt(3, Event.STARTED, DEAD)]

    dead = dead_attempts_of(current, claims, None)

    assert names(list(dead.recorded)) == ["0002_m.py"]
    assert dead.interrupted == ()
    assert names(list(dead.unstarted)) == ["0003_m.py"]  # claimed after it, never started
    assert attempts_of(annotate(current, claims, None)) == [None, None, None]
    assert names(list(recorded_elsewhere(current, claims, None))) == ["0002_m.py"]
    what = "failed" if event is Event.FAILED else "interrupted"
    assert settled_note(claims[0], closed=True) == (
        f"0002_m.py: its {what} step was since recorded as applied "
        "(by alley 0.0.3 or another tool); closed"
    )


def test_the_live_runs_step_is_running_whatever_record_appears() -> None:
    current = statuses(record(1, None))
    claims = [attempt(1, Event.STARTED, LIVE)]

    assert attempts_of(annotate(current, claims, lock(LIVE))) == [Attempt.RUNNING, None]
    assert recorded_elsewhere(current, claims, lock(LIVE)) == ()


def test_a_down_left_open_is_not_settled_by_the_record_it_did_not_remove() -> None:
    current = statuses(record(1, None))
    claims = [attempt(1, Event.STARTED, DEAD, Direction.DOWN)]

    assert attempts_of(annotate(current, claims, None)) == [Attempt.INTERRUPTED, None]
    assert recorded_elsewhere(current, claims, None) == ()


# -- when a step started ---------------------------------------------------------------


def test_an_interrupted_up_started_when_its_run_recorded_the_step_before() -> None:
    before = dataclasses.replace(record(1, "dead-run"), date=NOW + timedelta(seconds=42))
    current = statuses(before, count=3)
    claims = [attempt(n, Event.STARTED, DEAD) for n in (2, 3)]  # claimed at NOW

    [entry] = [s.attempt_entry for s in annotate(current, claims, None) if s.attempt_entry]

    assert entry.at == NOW + timedelta(seconds=42)
    assert started_at(claims[0], current) == NOW + timedelta(seconds=42)
    # Never after the store's now; a down step's start is its open attempt's.
    assert started_at(claims[0], current, NOW + timedelta(seconds=1)) == NOW + timedelta(seconds=1)
    down = attempt(1, Event.STARTED, DEAD, Direction.DOWN)
    assert started_at(down, current) == NOW
