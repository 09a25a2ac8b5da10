"""Progress of ``up``/``down``/``redo``: a line when a step starts (stderr), and on a
terminal its elapsed time while it runs; where a command looks (``status`` header,
``--verbose``). Real processes: output order and terminals are the point."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import Project, finish, wait_for


def gated(project: Project, filename: str) -> Path:
    """A migration that notes it started (in ``marks``), then runs until the test opens
    its gate (creates the returned file)."""
    key = filename.split("_", 1)[0]
    gate = project.root / f"gate-{key}"
    project.write(
        filename,
        header="import os, time\n",
        up=f"db.marks.insert_one({{'m': {key!r}}})\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)",
    )
    return gate


def read_until(fd: int, pattern: str, seen: bytearray, timeout: float = 60) -> None:
    """Read ``fd`` into ``seen`` until ``pattern`` (a regex) matches what was read."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern.encode(), bytes(seen)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {pattern!r} in {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # a pty whose other end closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"output ended before {pattern!r}: {bytes(seen)!r}")
            seen.extend(chunk)


def read_to_end(fd: int, seen: bytearray, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        seen.extend(chunk)
    raise AssertionError(f"output did not end: {bytes(seen)!r}")


def merged(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``alley ARGS`` as a process, stderr into stdout: the order a terminal shows."""
    return subprocess.run(
        project.command(*args),
        cwd=project.root,
        env=project.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_line_when_each_step_starts_before_its_result(project: Project) -> None:
    project.counter("0001_a.py")
    project.counter("0002_b.py")

    up = merged(project, "up")
    down = merged(project, "down", "--steps", "2", "--fake")

    assert up.returncode == 0, up.stdout
    lines = up.stdout.splitlines()
    assert lines[0] == "running         0001_a.py …"
    assert lines[1].startswith("applied         0001_a.py  (")
    assert lines[2] == "running         0002_b.py …"
    assert lines[3].startswith("applied         0002_b.py  (")
    assert lines[4].startswith("2 migrations applied in ")
    assert "\r" not in up.stdout  # not a terminal: nothing but the start lines
    assert down.returncode == 0, down.stdout
    assert down.stdout.splitlines()[:2] == [
        "forgetting (fake) 0002_b.py …",
        down.stdout.splitlines()[1],
    ]
    assert down.stdout.splitlines()[1].startswith("forgot (fake)   0002_b.py")


def test_the_start_line_is_out_while_the_step_runs(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    gate = gated(project, "0002_slow.py")
    process = project.spawn("up")
    assert process.stderr is not None
    seen = bytearray()
    try:
        read_until(process.stderr.fileno(), r"running +0002_slow\.py …\n", seen)
        # The step cannot end before its gate opens: the line came out as it started.
        wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the gated step")
        assert mongo_db.db_migrations.count_documents({"id": 2}) == 0
    finally:
        gate.touch()
    result = finish(process)

    assert result.returncode == 0, result.output
    assert (
        seen.decode() + result.stderr
        == "running         0001_a.py …\nrunning         0002_slow.py …\n"
    )
    assert "applied         0002_slow.py" in result.stdout


def test_on_a_terminal_the_running_step_shows_its_elapsed_time(
    project: Project, mongo_db: Any
) -> None:
    gate = gated(project, "0001_slow.py")
    project.counter("0002_quick.py")
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
        # The ticker rewrites the line once a second: the step is still running.
        read_until(controller, r"\rrunning +0001_slow\.py … 1s", seen)
        assert mongo_db.db_migrations.count_documents({}) == 0
        gate.touch()
        read_to_end(controller, seen)
    finally:
        gate.touch()
        process.wait(timeout=60)
        os.close(controller)

    assert process.returncode == 0, seen
    shown = seen.decode().replace("\r\n", "\n")
    # The live line ends (newline) before the step's result; the quick step follows.
    slow_line, rest = shown.split("\n", 1)
    assert re.fullmatch(r"running +0001_slow\.py …(\r\S.*)*", slow_line), slow_line
    assert rest.startswith("applied         0001_slow.py  (")
    assert "running         0002_quick.py …" in rest
    assert rest.index("running         0002_quick.py") < rest.index("applied         0002_quick")


def test_status_names_where_it_looked(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")

    human = project.alley("status")
    data = json.loads(project.alley("status", "--json").stdout)

    header = human.stdout.splitlines()[0]
    assert header.startswith(f"migrations: {project.folder.resolve()} · server: ")
    assert header.endswith(f" · database: {mongo_db.name}")
    assert data["folder"] == str(project.folder.resolve())
    assert data["database"] == mongo_db.name
    assert data["server"] in header
    assert data["server"]


def test_verbose_says_where_and_never_the_password(project: Project) -> None:
    url = "mongodb://bob:hunter2@127.0.0.1:9/shop"
    for command in (["status"], ["up"], ["down"], ["redo", "--plan"], ["history"]):
        result = project.alley(
            "--url", url, "--timeout", "0.2", "-v", *command, url=False, process=True
        )

        assert result.returncode == 4, result.output
        first = result.stderr.splitlines()[0]
        assert first.startswith(f"migrations: {project.folder.resolve()} · server: ")
        assert "127.0.0.1:9" in first
        assert first.endswith(" · database: shop")
        assert "hunter2" not in result.output


def test_verbose_status_repeats_its_header_on_stderr(project: Project) -> None:
    project.counter("0001_a.py")

    result = project.alley("status", "--verbose")

    assert result.returncode == 0, result.output
    assert result.stderr.splitlines()[0] == result.stdout.splitlines()[0]


def test_redo_holds_the_lock_through_both_steps(project: Project, mongo_db: Any) -> None:
    # redo holds the lock for both of its steps: a second run waits for it.
    project.counter("0001_a.py")
    assert project.alley("up").returncode == 0
    gate = gated(project, "0001_a.py")  # its up now waits on the gate
    process = project.spawn("redo")
    try:
        wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the redone up")
        busy = project.alley("--lock-timeout", "0.3", "down")
    finally:
        gate.touch()
    result = finish(process)

    assert result.returncode == 0, result.output
    assert busy.returncode == 5, busy.output
    assert mongo_db.db_migrations.count_documents({"id": 1}) == 1
