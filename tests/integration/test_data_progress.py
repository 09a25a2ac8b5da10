"""Progress of backfills from a real ``alley`` process: lines off a terminal (at most one
per ``ALLEY_PROGRESS_INTERVAL`` per step, a last line per backfill), a bar on a
pseudo-terminal, and ``--events FILE`` JSON lines."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli_progress import read_to_end

from conftest import Project, finish, wait_for

BACKFILL = """\
def up(db, step):
    step.backfill(
        "items",
        where={{"done": {{"$ne": True}}}},
        update={{"$set": {{"done": True}}}},
        batch_size={size},
        pause={pause},
    )


def down(db, step):
    db.items.update_many({{}}, {{"$unset": {{"done": ""}}}})
"""


@pytest.fixture
def backfill(project: Project, mongo_db: Any) -> Any:
    """Write ``0003_backfill.py`` (a backfill of ``items`` in batches) over ``count``
    fresh documents."""

    def write(count: int, size: int = 100, pause: float = 0.0) -> Path:
        mongo_db.items.insert_many([{"_id": i, "n": i} for i in range(count)])
        path = project.folder / "0003_backfill.py"
        path.write_text(BACKFILL.format(size=size, pause=pause))
        return path

    return write


def run(project: Project, *args: str, env: dict[str, str] | None = None) -> Any:
    return project.alley_process(*args, env=env)


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("0003_backfill.py items:")]


LINE = re.compile(r"0003_backfill\.py items: (\d+)/(\d+) \((\d+)%\) \d+ docs/s(, ETA \d+\S*)?")


def test_off_a_terminal_a_quick_backfill_prints_one_last_line(
    project: Project, mongo_db: Any, backfill: Any
) -> None:
    backfill(1000)

    # An interval longer than the run, whatever the machine's load: no progress line,
    # only the last one, after the start line.
    result = run(project, "up", env={"ALLEY_PROGRESS_INTERVAL": "3600"})

    assert result.returncode == 0, result.output
    assert mongo_db.items.count_documents({"done": True}) == 1000
    assert progress_lines(result.stderr) == [
        progress_lines(result.stderr)[0],
    ]
    assert re.fullmatch(
        r"0003_backfill\.py items: 1000 done in \d+\.\ds", progress_lines(result.stderr)[0]
    )
    assert result.stderr.index("running         0003_backfill.py") < result.stderr.index(
        "0003_backfill.py items: 1000 done"
    )
    assert "\r" not in result.output


def test_off_a_terminal_every_interval_a_line(
    project: Project, mongo_db: Any, backfill: Any
) -> None:
    backfill(1000)

    result = run(project, "up", env={"ALLEY_PROGRESS_INTERVAL": "0"})

    assert result.returncode == 0, result.output
    shown = progress_lines(result.stderr)
    # Interval 0: a line per batch (10 of 100), then the last line.
    assert len(shown) == 11, result.stderr
    for number, line in enumerate(shown[:-1], 1):
        match = LINE.fullmatch(line)
        assert match, line
        assert int(match[1]) == number * 100
        assert int(match[2]) == 1000
        assert int(match[3]) == number * 10
    assert shown[-1].startswith("0003_backfill.py items: 1000 done in ")


def test_off_a_terminal_at_most_one_line_per_interval(
    project: Project, mongo_db: Any, backfill: Any
) -> None:
    backfill(2000, size=100, pause=0.05)  # 20 batches, about 1 s or more
    began = time.monotonic()
    result = run(project, "up", env={"ALLEY_PROGRESS_INTERVAL": "0.4"})
    took = time.monotonic() - began

    assert result.returncode == 0, result.output
    shown = progress_lines(result.stderr)[:-1]
    assert 1 <= len(shown) <= took / 0.4 + 1, (took, result.stderr)
    assert all(LINE.fullmatch(line) for line in shown), shown
    done = [int(LINE.fullmatch(line)[1]) for line in shown]  # type: ignore[index]
    assert done == sorted(done)


def test_on_a_terminal_a_bar_shows_done_and_total(
    project: Project, mongo_db: Any, backfill: Any
) -> None:
    backfill(1500, size=100, pause=0.05)
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            project.command("up"),
            cwd=project.root,
            env=project.environment({"COLUMNS": "200"}),
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
        )
    finally:
        os.close(terminal)
    seen = bytearray()
    try:
        read_to_end(controller, seen)
    finally:
        process.wait(timeout=60)
        os.close(controller)

    assert process.returncode == 0, seen
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode())
    assert "running         0003_backfill.py …" in shown
    assert re.search(r"0003_backfill\.py items\s.*1500/1500\s+100%", shown), shown
    assert "done in " in shown
    # Redrawn as it went (4 times a second, over about 1.5 s): some frames before the end.
    partial = {int(m[1]) for m in re.finditer(r" (\d+)/1500 ", shown)} - {0, 1500}
    assert partial, shown
    # The bar ends before the step's result.
    assert shown.rindex("1500/1500") < shown.index("applied         0003_backfill.py")
    assert mongo_db.items.count_documents({"done": True}) == 1500


def test_events_one_json_line_per_batch(
    project: Project, mongo_db: Any, backfill: Any, tmp_path: Path
) -> None:
    backfill(1050, size=100)
    events = tmp_path / "events.jsonl"

    result = run(project, "up", "--events", str(events))

    assert result.returncode == 0, result.output
    objects = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [o["event"] for o in objects]
    assert kinds[0] == "step-started"
    assert kinds[-1] == "step-finished"
    batches = [o for o in objects if o["event"] == "batch"]
    assert len(batches) == math.ceil(1050 / 100)
    assert [b["batch"] for b in batches] == list(range(1, len(batches) + 1))
    assert batches[-1]["done"] == 1050
    steps = [b["done"] - a["done"] for a, b in zip([{"done": 0}, *batches], batches, strict=False)]
    assert sum(steps) == 1050
    assert all(0 < s <= 100 for s in steps)
    for b in batches:
        assert b["filename"] == "0003_backfill.py"
        assert b["collection"] == "items"
        assert b["total"] == 1050
        assert isinstance(b["rate_per_s"], float | int)
        assert isinstance(b["last_id"], str)
    assert batches[-1]["last_id"] == "1049"
    # Progress lines still go to stderr; the events only to the file.
    assert "0003_backfill.py items: 1050 done in " in result.stderr
    assert '"event"' not in result.output


def test_events_of_a_failed_step(project: Project, tmp_path: Path) -> None:
    project.counter("0001_a.py")
    project.write("0002_boom.py", up="raise KeyError('k')")
    events = tmp_path / "events.jsonl"

    result = run(project, "up", "--events", str(events))

    assert result.returncode == 1, result.output
    objects = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(o["event"], o["filename"]) for o in objects] == [
        ("step-started", "0001_a.py"),
        ("step-finished", "0001_a.py"),
        ("step-started", "0002_boom.py"),
        ("step-failed", "0002_boom.py"),
    ]
    assert "KeyError" in objects[-1]["error"]


def test_events_to_stderr_beside_the_json_report(project: Project) -> None:
    project.counter("0001_a.py")

    result = run(project, "up", "--json", "--events", "-")

    assert result.returncode == 0, result.output
    report = json.loads(result.stdout)
    assert [s["filename"] for s in report["steps"]] == ["0001_a.py"]
    objects = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [o["event"] for o in objects] == ["step-started", "step-finished"]
    assert "running " not in result.stderr  # --json: no progress lines


def test_events_on_down_and_redo_append(project: Project, tmp_path: Path) -> None:
    project.counter("0001_a.py")
    events = tmp_path / "events.jsonl"
    assert run(project, "up").returncode == 0

    assert run(project, "redo", "--events", str(events)).returncode == 0
    assert run(project, "down", "--events", str(events)).returncode == 0

    objects = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(o["event"], o["direction"]) for o in objects] == [
        ("step-started", "down"),
        ("step-finished", "down"),
        ("step-started", "up"),
        ("step-finished", "up"),
        ("step-started", "down"),
        ("step-finished", "down"),
    ]


def test_an_events_file_that_cannot_be_opened_runs_nothing(
    project: Project, mongo_db: Any, tmp_path: Path
) -> None:
    project.counter("0001_a.py")

    result = run(project, "up", "--events", str(tmp_path / "missing" / "events.jsonl"))

    assert result.returncode == 3, result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("alley: error:")]
    assert len(errors) == 1
    assert "--events" in errors[0]
    assert "missing/events.jsonl" in errors[0]
    assert mongo_db.db_migrations.count_documents({}) == 0
    assert mongo_db.counters.count_documents({}) == 0


FAILING = """\
def boom(doc):
    if doc["_id"] >= 500:
        raise ValueError("boom at " + str(doc["_id"]))
    return {"$set": {"done": True}}


def up(db, step):
    # 50 a batch: FerretDB 1.24 (SQLite) hangs on a bulk_write of 100 updates.
    step.backfill("items", where={"done": {"$ne": True}}, transform=boom, batch_size=50)


def down(db, step):
    pass
"""


def test_a_failing_backfill_says_where_it_stopped(
    project: Project, mongo_db: Any, backfill: Any, tmp_path: Path
) -> None:
    backfill(1000)
    (project.folder / "0003_backfill.py").write_text(FAILING)
    events = tmp_path / "events.jsonl"

    result = run(project, "up", "--events", str(events), env={"ALLEY_PROGRESS_INTERVAL": "0"})

    assert result.returncode == 1, result.output
    shown = progress_lines(result.stderr)
    assert shown[-1].startswith("0003_backfill.py items: 500/1000 (50%) ")
    assert shown[-1].endswith(" (stopped)")
    assert result.stderr.index("(stopped)") < result.stderr.index("alley: error:")
    objects = [json.loads(line) for line in events.read_text().splitlines()]
    assert [o["event"] for o in objects][-2:] == ["batch", "step-failed"]
    assert objects[-2]["done"] == 500
    assert "boom at 500" in objects[-1]["error"]


def test_on_a_terminal_a_failing_backfill_stops_its_bar(
    project: Project, mongo_db: Any, backfill: Any
) -> None:
    backfill(1000)
    (project.folder / "0003_backfill.py").write_text(FAILING)
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            project.command("up"),
            cwd=project.root,
            env=project.environment({"COLUMNS": "200"}),
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
        )
    finally:
        os.close(terminal)
    seen = bytearray()
    try:
        read_to_end(controller, seen)
    finally:
        process.wait(timeout=60)
        os.close(controller)

    assert process.returncode == 1, seen
    shown = seen.decode().replace("\r\n", "\n")
    assert "500/1000" in shown
    # The bar is put away (cursor shown again) and the error starts its own line.
    assert "\x1b[?25h" in shown
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert "\nalley: error: 0003_backfill.py failed (up): ValueError: boom at 500" in plain


def test_events_of_a_backfill_stopped_by_ctrl_c(
    project: Project, mongo_db: Any, backfill: Any, tmp_path: Path
) -> None:
    backfill(2000, size=100, pause=0.2)
    events = tmp_path / "events.jsonl"
    process = project.spawn("up", "--events", str(events))

    def batches() -> int:
        text = events.read_text() if events.exists() else ""
        return text.count('"event": "batch"')

    try:
        wait_for(lambda: batches() >= 2, what="two batches")
        process.send_signal(signal.SIGINT)
    finally:
        result = finish(process)

    assert result.returncode == 130, result.output
    objects = [json.loads(line) for line in events.read_text().splitlines()]
    assert objects[-1]["event"] == "step-failed"
    assert objects[-1]["filename"] == "0003_backfill.py"
    assert objects[-1]["error"] == "interrupted"
    last = [o for o in objects if o["event"] == "batch"][-1]
    assert 0 < last["done"] < 2000
    # Off a terminal the last line says where it stopped.
    assert f"0003_backfill.py items: {last['done']}/2000 " in result.stderr
    assert "(stopped)" in result.stderr
