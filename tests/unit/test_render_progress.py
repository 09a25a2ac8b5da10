"""Progress of backfills as the CLI shows it: lines off a terminal (throttled, with a
clock the test moves), bars on one, and ``--events`` JSON lines. No server, no process."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from alley import render
from alley.model import BatchProgress, Direction, Event, Holder, LogEntry, StepResult

HOLDER = Holder("run1", "host", 42, "me", "1.0", "up")
AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def entry(filename: str = "0003_backfill.py") -> LogEntry:
    return LogEntry(
        step=f"up:{filename}:run1",
        event=Event.STARTED,
        migration_id=int(filename[:4]),
        filename=filename,
        direction=Direction.UP,
        at=AT,
        holder=HOLDER,
    )


def result(filename: str = "0003_backfill.py") -> StepResult:
    return StepResult(int(filename[:4]), filename, Direction.UP, False, 8.3)


def batch(
    done: int,
    number: int,
    *,
    total: int | None = 100000,
    name: str = "users#1",
    collection: str = "users",
    filename: str = "0003_backfill.py",
    rate: float = 12000.0,
    elapsed: float = 3.0,
    eta: float | None = 5.0,
    finished: bool = False,
    last_id: Any = 41,
) -> BatchProgress:
    return BatchProgress(
        filename=filename,
        name=name,
        collection=collection,
        done=done,
        total=total,
        batch=number,
        last_id=last_id,
        rate_per_s=rate,
        elapsed_s=elapsed,
        eta_s=eta,
        finished=finished,
    )


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


# -- the line format -------------------------------------------------------------------


def test_a_batch_line_says_done_total_percent_rate_and_eta() -> None:
    assert (
        render.batch_line(batch(40000, 40))
        == "0003_backfill.py users: 40000/100000 (40%) 12000 docs/s, ETA 5s"
    )


def test_a_batch_line_without_a_total_or_eta() -> None:
    assert (
        render.batch_line(batch(40000, 40, total=None, eta=None))
        == "0003_backfill.py users: 40000 done 12000 docs/s"
    )


def test_done_beyond_the_estimate_counts_as_all() -> None:
    # The total is an estimate: documents added since make done pass it.
    assert render.batch_line(batch(1200, 2, total=1000)).startswith(
        "0003_backfill.py users: 1200/1200 (100%)"
    )


def test_a_named_backfill_shows_its_name() -> None:
    assert render.backfill_label(batch(1, 1, name="emails")) == "0003_backfill.py emails"
    assert render.backfill_label(batch(1, 1, name="users#2")) == "0003_backfill.py users"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (5.2, "5s"), (59.6, "1m00s"), (125, "2m05s"), (3720, "1h02m"), (-1, "0s")],
)
def test_durations(seconds: float, shown: str) -> None:
    assert render.duration(seconds) == shown


def test_the_last_line_of_a_backfill() -> None:
    assert (
        render.backfill_done_line(batch(100000, 100, elapsed=8.26, finished=True))
        == "0003_backfill.py users: 100000 done in 8.3s"
    )


# -- off a terminal: throttled lines ---------------------------------------------------


def test_off_a_terminal_at_most_one_line_every_interval_per_step() -> None:
    err, clock = io.StringIO(), Clock()
    progress = render.Progress(err, io.StringIO(), interval=5, clock=clock, live=False)
    progress.start(entry())
    progress.batch(batch(0, 0, rate=0, eta=None))  # started: no line
    for number in range(1, 31):  # a batch every 0.5 s for 15 s
        clock.now += 0.5
        progress.batch(batch(number * 1000, number))
    progress.batch(batch(30000, 30, finished=True, elapsed=15.0))
    progress.step(result())

    shown = lines(err)
    assert shown[0] == "running         0003_backfill.py …"
    # 5 s after the start, then every 5 s: batches 10, 20, 30.
    assert shown[1:4] == [
        "0003_backfill.py users: 10000/100000 (10%) 12000 docs/s, ETA 5s",
        "0003_backfill.py users: 20000/100000 (20%) 12000 docs/s, ETA 5s",
        "0003_backfill.py users: 30000/100000 (30%) 12000 docs/s, ETA 5s",
    ]
    assert shown[4:] == ["0003_backfill.py users: 30000 done in 15.0s"]


def test_a_quick_backfill_prints_only_its_last_line() -> None:
    err, clock = io.StringIO(), Clock()
    progress = render.Progress(err, io.StringIO(), interval=5, clock=clock, live=False)
    progress.start(entry())
    for number in range(1, 5):
        clock.now += 0.1
        progress.batch(batch(number * 100, number))
    progress.batch(batch(400, 4, finished=True, elapsed=0.4))
    progress.step(result())

    assert lines(err)[1:] == ["0003_backfill.py users: 400 done in 0.4s"]


def test_the_interval_is_per_step_not_per_backfill() -> None:
    err, clock = io.StringIO(), Clock()
    progress = render.Progress(err, io.StringIO(), interval=5, clock=clock, live=False)
    progress.start(entry())
    clock.now += 6
    progress.batch(batch(10, 1))
    progress.batch(batch(10, 1, finished=True))
    clock.now += 1
    progress.batch(batch(10, 1, name="orders#1", collection="orders"))  # 1 s later: no line
    clock.now += 4
    progress.batch(batch(20, 2, name="orders#1", collection="orders"))  # 5 s after: a line

    assert lines(err)[1:] == [
        "0003_backfill.py users: 10/100000 (0%) 12000 docs/s, ETA 5s",
        "0003_backfill.py users: 10 done in 3.0s",
        "0003_backfill.py orders: 20/100000 (0%) 12000 docs/s, ETA 5s",
    ]


def test_a_backfill_stopped_by_a_failure_says_where_it_got() -> None:
    err, clock = io.StringIO(), Clock()
    progress = render.Progress(err, io.StringIO(), interval=5, clock=clock, live=False)
    progress.start(entry())
    progress.batch(batch(2000, 2))
    progress.stop()
    progress.stop()  # twice: nothing more

    assert lines(err)[1:] == [
        "0003_backfill.py users: 2000/100000 (2%) 12000 docs/s, ETA 5s (stopped)"
    ]


def test_a_new_step_resets_the_interval() -> None:
    err, clock = io.StringIO(), Clock()
    progress = render.Progress(err, io.StringIO(), interval=5, clock=clock, live=False)
    progress.start(entry())
    clock.now += 10
    progress.step(result())
    progress.start(entry("0004_more.py"))
    clock.now += 1
    progress.batch(batch(5, 1, filename="0004_more.py"))

    assert lines(err) == ["running         0003_backfill.py …", "running         0004_more.py …"]


@pytest.mark.parametrize(
    ("value", "interval"),
    [(None, 5.0), ("0.5", 0.5), ("0", 0.0), ("x", 5.0), ("-1", 5.0), ("nan", 5.0), ("inf", 5.0)],
)
def test_the_interval_from_the_environment(value: str | None, interval: float) -> None:
    environ = {} if value is None else {"ALLEY_PROGRESS_INTERVAL": value}
    assert render.progress_interval(environ) == interval


# -- on a terminal: bars -----------------------------------------------------------------


def test_on_a_terminal_a_bar_replaces_the_elapsed_time() -> None:
    err = Terminal()
    progress = render.Progress(err, io.StringIO(), interval=5)
    assert progress.live
    progress.start(entry())
    progress.batch(batch(0, 0, rate=0, eta=None))
    progress.batch(batch(40000, 40))
    progress.batch(batch(100000, 100, finished=True, elapsed=8.3))
    progress.step(result())

    shown = err.getvalue()
    assert shown.startswith("running         0003_backfill.py …\n")
    assert "0003_backfill.py users" in shown
    assert "100000/100000" in shown
    assert "100%" in shown
    assert "done in 8.3s" in shown
    assert progress._bars is None  # stopped with the step
    assert progress._ticker is None


def test_on_a_terminal_a_bar_per_backfill() -> None:
    err = Terminal()
    progress = render.Progress(err, io.StringIO(), interval=5)
    progress.start(entry())
    progress.batch(batch(50, 1, total=50))
    progress.batch(batch(50, 1, total=50, finished=True, elapsed=1.0))
    progress.batch(batch(0, 0, name="orders#2", collection="orders", total=70, rate=0))
    progress.batch(batch(70, 1, name="orders#2", collection="orders", total=70))
    bars = progress._bars
    assert bars is not None
    assert [t.description for t in bars.tasks] == [
        "0003_backfill.py users",
        "0003_backfill.py orders",
    ]
    assert [t.completed for t in bars.tasks] == [50, 70]
    progress.step(result())

    assert "done in 1.0s" in err.getvalue()
    assert "70/70" in err.getvalue()


def test_on_a_terminal_a_failed_step_stops_its_bar() -> None:
    err = Terminal()
    progress = render.Progress(err, io.StringIO(), interval=5)
    progress.start(entry())
    progress.batch(batch(40000, 40))
    progress.stop()

    assert progress._bars is None
    assert "40000/100000" in err.getvalue()


# -- --events: JSON lines ------------------------------------------------------------------


def events_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_one_object_per_batch_between_step_start_and_end() -> None:
    stream = io.StringIO()
    events = render.Events(stream, now=lambda: AT)
    events.start(entry())
    events.batch(batch(0, 0, rate=0, eta=None, last_id=None))
    oid = ObjectId()
    events.batch(batch(1000, 1, last_id=oid))
    events.batch(batch(1500, 2, last_id=7, eta=None))
    events.batch(batch(1500, 2, last_id=7, finished=True))  # the last batch again, finished
    events.step(result())

    objects = events_of(stream)
    assert [o["event"] for o in objects] == [
        "step-started",
        "backfill-started",
        "batch",
        "batch",
        "backfill-finished",
        "step-finished",
    ]
    assert all(o["at"] == AT.isoformat() for o in objects)
    assert objects[0] == {
        "event": "step-started",
        "at": AT.isoformat(),
        "id": 3,
        "filename": "0003_backfill.py",
        "direction": "up",
        "fake": False,
    }
    first = objects[2]
    assert {k: first[k] for k in ("filename", "collection", "done", "total", "batch")} == {
        "filename": "0003_backfill.py",
        "collection": "users",
        "done": 1000,
        "total": 100000,
        "batch": 1,
    }
    assert first["rate_per_s"] == 12000.0
    assert first["eta_s"] == 5.0
    assert first["last_id"] == str(oid)
    assert objects[3]["last_id"] == "7"
    assert objects[3]["eta_s"] is None
    assert objects[-1]["duration_s"] == 8.3


def test_a_finished_event_with_a_new_batch_is_a_batch_too() -> None:
    stream = io.StringIO()
    events = render.Events(stream, now=lambda: AT)
    events.batch(batch(100, 1))
    events.batch(batch(150, 2, finished=True))

    assert [(o["event"], o["done"]) for o in events_of(stream)] == [
        ("batch", 100),
        ("batch", 150),
        ("backfill-finished", 150),
    ]


def test_a_failed_step_is_said_once() -> None:
    stream = io.StringIO()
    events = render.Events(stream, now=lambda: AT)
    events.start(entry())
    events.failed(RuntimeError("0003_backfill.py failed (up):\n  KeyError"))
    events.failed(RuntimeError("again"))

    assert events_of(stream) == [
        events_of(stream)[0],
        {
            "event": "step-failed",
            "at": AT.isoformat(),
            "id": 3,
            "filename": "0003_backfill.py",
            "direction": "up",
            "fake": False,
            "error": "0003_backfill.py failed (up): KeyError",
        },
    ]


def test_ctrl_c_is_said_as_interrupted() -> None:
    stream = io.StringIO()
    events = render.Events(stream, now=lambda: AT)
    events.start(entry())
    events.failed(KeyboardInterrupt())

    assert events_of(stream)[-1]["error"] == "interrupted"


def test_no_step_failed_between_steps() -> None:
    stream = io.StringIO()
    events = render.Events(stream, now=lambda: AT)
    events.start(entry())
    events.step(result())
    events.failed(KeyboardInterrupt())

    assert [o["event"] for o in events_of(stream)] == ["step-started", "step-finished"]


def test_each_event_is_flushed_as_written() -> None:
    class Counting(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    stream = Counting()
    events = render.Events(stream, now=lambda: AT)
    events.start(entry())
    events.batch(batch(10, 1))

    assert stream.flushes == 2
