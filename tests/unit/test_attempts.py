"""Open attempts (pure planning): running, failed, interrupted, or finished by a dead run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
from alley.planning import annotate, dead_attempts, reconcile

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIVE = Holder("live-run", "h", 1, "u", "0", "up")
DEAD = Holder("dead-run", "h", 2, "u", "0", "up")


def migration(number: int) -> Migration:
    name = f"{number:04}_m.py"
    return Migration(number, "m", name, "def up(db):\n    pass\n", name)


def record(number: int, run_id: str | None) -> HistoryRecord:
    extra = {"run_id": run_id} if run_id else {}
    return HistoryRecord(number, f"{number:04}_m.py", NOW, None, extra)


def attempt(
    number: int, event: Event, holder: Holder, direction: Direction = Direction.UP
) -> LogEntry:
    name = f"{number:04}_m.py"
    return LogEntry(
        f"{direction}:{name}:{holder.run_id}", event, number, name, direction, NOW, holder
    )


def lock(holder: Holder, *, expired: bool = False, released: bool = False) -> LockState:
    beat = NOW - timedelta(seconds=60 if expired else 1)
    return LockState(1, holder, beat, beat, 30.0, released, NOW)


def statuses(*records: HistoryRecord) -> tuple[MigrationStatus, ...]:
    return reconcile([migration(1), migration(2)], list(records))


def attempts_of(result: tuple[MigrationStatus, ...]) -> list[Attempt | None]:
    return [s.attempt for s in result]


def test_no_open_attempt_means_no_attempt_state() -> None:
    assert attempts_of(annotate(statuses(), [], None)) == [None, None]


@pytest.mark.parametrize(
    ("event", "expected"),
    [(Event.FAILED, Attempt.FAILED), (Event.INTERRUPTED, Attempt.INTERRUPTED)],
)
def test_settled_outcomes_are_reported_as_such(event: Event, expected: Attempt) -> None:
    result = annotate(statuses(), [attempt(2, event, DEAD)], None)
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
    finished, interrupted = dead_attempts(
        statuses(), [attempt(1, Event.STARTED, DEAD)], current_lock
    )
    assert (finished, [a.filename for a in interrupted]) == ([], ["0001_m.py"])


def test_an_up_recorded_by_the_dead_run_itself_finished() -> None:
    current = statuses(record(1, "dead-run"))
    open_attempts = [attempt(1, Event.STARTED, DEAD)]

    assert attempts_of(annotate(current, open_attempts, None)) == [None, None]
    finished, interrupted = dead_attempts(current, open_attempts, None)
    assert ([a.filename for a in finished], interrupted) == (["0001_m.py"], [])


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
    finished, interrupted = dead_attempts(statuses(), [attempt(1, Event.STARTED, LIVE)], lock(LIVE))
    assert (finished, interrupted) == ([], [])
