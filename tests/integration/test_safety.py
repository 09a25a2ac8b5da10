"""Parallel deploys, crashes, pauses, wrong clocks, a vanishing server, edits, dry runs.

Every test runs real ``alley`` processes against the real server. Leases are short
(1 to 3 s) so that expiry happens within the test.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
import pytest

from conftest import Project, Result, finish, wait_for

BUSY, INTEGRITY, CONNECTION, PENDING, LEASE_LOST = 5, 6, 4, 7, 9


def counters(db: Any) -> dict[str, int]:
    return {doc["_id"]: doc["n"] for doc in db.counters.find()}


def slow(project: Project, filename: str, seconds: float, mark: str = "") -> None:
    """A migration that notes it started (in ``marks``), sleeps, then counts itself."""
    key = filename.split("_", 1)[0]
    project.write(
        filename,
        header="import time\n",
        up=f"db.marks.insert_one({{'m': {key!r}, 'mark': {mark!r}}})\n"
        f"time.sleep({seconds})\n"
        f"db.counters.update_one({{'_id': {key!r}}}, {{'$inc': {{'n': 1}}}}, upsert=True)",
    )


# -------------------------------------------------------------------------
# Parallel deploys
# -------------------------------------------------------------------------


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_eight_concurrent_ups_run_each_of_thirty_migrations_exactly_once(
    project: Project, mongo_db: Any, round_: int
) -> None:
    for number in range(1, 31):
        project.counter(f"{number:04}_m{number}.py")

    processes = [project.spawn("--lock-timeout", "120", "up") for _ in range(8)]
    results = [finish(p, timeout=300) for p in processes]

    assert [r.returncode for r in results] == [0] * 8, [r.output for r in results]
    assert counters(mongo_db) == {f"{n:04}": 1 for n in range(1, 31)}
    records = list(mongo_db.db_migrations.find())
    assert sorted(r["id"] for r in records) == list(range(1, 31))
    applied_by = [r for r in results if "30 migrations applied" in r.stdout]
    assert len(applied_by) == 1  # one run did the work; the others found it done
    assert sum("nothing to do" in r.stdout for r in results) == 7


def test_a_waiting_deploy_says_who_holds_the_lock_and_then_finds_nothing_to_do(
    project: Project, mongo_db: Any
) -> None:
    slow(project, "0001_slow.py", 3)

    first = project.spawn("--lease", "1", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the slow migration")
    second = project.alley("--lease", "1", "--lock-timeout", "30", "up")
    first_result = finish(first)

    assert first_result.returncode == 0, first_result.output
    assert second.returncode == 0, second.output
    assert "waiting for the lock" in second.stderr
    assert "held by" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert "nothing to do" in second.stdout
    # The heartbeat kept a 1 s lease alive through a 3 s migration: nobody took over.
    assert counters(mongo_db) == {"0001": 1}
    assert mongo_db.db_migrations_lock.count_documents({"took_over_expired": True}) == 0


def gated(project: Project, filename: str) -> Path:
    """A migration that notes it started (in ``marks``), then runs until the test opens
    its gate (creates the returned file), then counts itself: no timing assumptions."""
    key = filename.split("_", 1)[0]
    gate = project.root / f"gate-{key}"
    project.write(
        filename,
        header="import os, time\n",
        up=f"db.marks.insert_one({{'m': {key!r}}})\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\n"
        f"db.counters.update_one({{'_id': {key!r}}}, {{'$inc': {{'n': 1}}}}, upsert=True)",
    )
    return gate


def test_lock_busy_after_the_wait_exits_5_naming_the_holder(
    project: Project, mongo_db: Any
) -> None:
    gate = gated(project, "0001_slow.py")
    first = project.spawn("--lease", "2", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the gated migration")

    busy = project.alley("--lease", "2", "--lock-timeout", "0.5", "up")
    unlock = project.alley("unlock")
    gate.touch()
    assert finish(first).returncode == 0

    assert busy.returncode == BUSY
    assert "held by" in busy.stderr
    assert f"pid {first.pid}" in busy.stderr
    assert unlock.returncode == BUSY  # a live lease is not released without --force
    assert counters(mongo_db) == {"0001": 1}


def test_racers_taking_over_one_expired_lock_have_exactly_one_winner(
    project: Project, mongo_db: Any
) -> None:
    mongo_db.db_migrations_lock.insert_one(
        {
            "_id": 1,
            "holder": {"run_id": "dead", "host": "gone", "pid": 1, "user": "x"},
            "acquired_at": datetime(2001, 1, 1),
            "heartbeat_at": datetime(2001, 1, 1),
            "lease_s": 1.0,
            "released": False,
        }
    )
    project.counter("0001_a.py")

    processes = [project.spawn("--lock-timeout", "60", "up") for _ in range(6)]
    results = [finish(p) for p in processes]

    assert [r.returncode for r in results] == [0] * 6, [r.output for r in results]
    assert counters(mongo_db) == {"0001": 1}
    assert mongo_db.db_migrations_lock.count_documents({"took_over_expired": True}) == 1
    generations = [d["_id"] for d in mongo_db.db_migrations_lock.find()]
    assert sorted(generations) == list(range(1, len(generations) + 1))


def test_old_lock_generations_are_pruned_so_commands_do_not_slow_down(
    project: Project, mongo_db: Any
) -> None:
    # FerretDB reads the whole lock collection to find the newest generation: 10,000
    # runs would cost every command seconds.
    long_ago = datetime(2001, 1, 1)
    mongo_db.db_migrations_lock.insert_many(
        {
            "_id": generation,
            "holder": {"run_id": f"old{generation}", "host": "h", "pid": 1, "user": "u"},
            "acquired_at": long_ago,
            "heartbeat_at": long_ago,
            "lease_s": 30.0,
            "released": True,
        }
        for generation in range(1, 996)
    )
    project.counter("0001_a.py")

    for _ in range(6):
        assert project.alley("up").returncode == 0

    generations = sorted(d["_id"] for d in mongo_db.db_migrations_lock.find())
    assert generations == list(range(991, 1002))  # pruned at 1000, kept 991-1000, then 1001
    assert mongo_db.db_migrations_lock.find_one({"_id": 1001})["released"] is True
    assert counters(mongo_db) == {"0001": 1}


def test_a_stalled_racer_inserting_a_pruned_generation_does_not_get_the_lock(
    mongo_db: Any,
) -> None:
    from alley.lease import make_holder
    from alley.model import LockState
    from alley_plugins.mongo_history import MongoHistoryStore

    store = MongoHistoryStore(mongo_db)
    first = make_holder("up")
    for _ in range(20):  # generations 1-20; 1-10 pruned at 20
        state = store.try_lock(first, 30.0)
        assert state.holder == first
        store.release_lock(state.generation)
    stale = dataclasses.replace(state, generation=4, released=True)  # read long ago

    class Stalled(MongoHistoryStore):
        stalled = True

        def lock_state(self) -> LockState | None:
            if self.stalled:  # its first read is the one from long ago
                self.stalled = False
                return stale
            return super().lock_state()

    owner = store.try_lock(first, 30.0)  # generation 21, live
    result = Stalled(mongo_db).try_lock(make_holder("up"), 30.0)  # inserts 5, pruned long ago

    assert mongo_db.db_migrations_lock.count_documents({"_id": 5}) == 1
    assert result.generation == owner.generation == 21
    assert result.holder == first  # the racer sees it does not hold the lock


def test_claiming_a_plan_is_all_or_nothing_and_names_the_conflict(mongo_db: Any) -> None:
    from alley.errors import IntegrityError
    from alley.model import Direction, Event, Holder, LogEntry
    from alley_plugins.mongo_history import MongoHistoryStore

    def claim(number: int, holder: Holder) -> LogEntry:
        name = f"{number:04}_m.py"
        return LogEntry(
            f"up:{name}:{holder.run_id}", Event.STARTED, number, name, Direction.UP,
            datetime(2026, 1, 1), holder, seq=number,
        )  # fmt: skip

    store = MongoHistoryStore(mongo_db)
    other = Holder("other-run", "h", 1, "u", "0", "up")
    mine = Holder("my-run", "h", 2, "u", "0", "up")
    store.open_attempts([claim(2, other)])

    with pytest.raises(IntegrityError, match=r"0002_m\.py: another run has an attempt at it open"):
        store.open_attempts([claim(n, mine) for n in (1, 2, 3)])

    left = {d["_id"]: d["holder"]["run_id"] for d in mongo_db.db_migrations_open.find()}
    assert left == {"0002_m.py": "other-run"}  # its own claim 0001 taken back, 0003 never made


# -------------------------------------------------------------------------
# Crashes and pauses
# -------------------------------------------------------------------------


def test_kill_9_mid_migration_is_found_interrupted_and_blocks_until_marked(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    slow(project, "0002_slow.py", 60)
    project.counter("0003_c.py")

    victim = project.spawn("--lease", "2", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the slow migration")
    victim.send_signal(signal.SIGKILL)
    finish(victim)

    started = time.monotonic()
    blocked = project.alley("--lease", "2", "--lock-timeout", "30", "up")
    waited = time.monotonic() - started

    assert blocked.returncode == INTEGRITY, blocked.output
    assert "0002_slow.py was interrupted" in blocked.stderr
    assert f"pid {victim.pid}" in blocked.stderr
    assert "alley mark 2" in blocked.stderr
    assert waited >= 0.5  # it waited for the dead run's lease to expire
    # The killed run had claimed all three: 0001 is logged from its record, 0002 stays
    # open as interrupted, and 0003, which it never started, is dropped.
    assert [d["_id"] for d in mongo_db.db_migrations_open.find()] == ["0002_slow.py"]
    logged = {(d["filename"], d["event"]) for d in mongo_db.db_migrations_log.find()}
    assert logged == {("0001_a.py", "succeeded"), ("0002_slow.py", "interrupted")}
    status = project.alley("status")
    assert "INTERRUPTED" in status.stdout
    history = project.alley("history", "2")
    assert "interrupted" in history.stdout
    assert project.alley("up").returncode == INTEGRITY  # still blocked: nobody decided
    assert project.alley("verify").returncode == INTEGRITY

    slow(project, "0002_slow.py", 0, mark="rerun")  # the fixed, pending migration
    decided = project.alley("mark", "2", "--pending")
    assert decided.returncode == 0, decided.output
    finished = project.alley("up")

    assert finished.returncode == 0, finished.output
    assert counters(mongo_db) == {"0001": 1, "0002": 1, "0003": 1}
    # 0002 started twice: once by the killed run, once after a person asked for it.
    assert mongo_db.marks.count_documents({}) == 2
    assert project.alley("verify").returncode == 0


def test_a_run_paused_past_its_lease_writes_nothing_after_a_takeover_a_mark_and_a_rerun(
    project: Project, mongo_db: Any
) -> None:
    """The fencing scenario: pause, takeover, a person's decision, a re-run, resume."""
    gate = gated(project, "0001_slow.py")
    project.counter("0002_b.py")
    project.counter("0003_c.py")

    paused = project.spawn("--lease", "1.5", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the gated migration")
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        other = project.alley("--lease", "1.5", "--lock-timeout", "30", "up")
        decided = project.alley("mark", "1", "--pending")
        gate.touch()  # the re-run's step, and the paused one once it resumes, finish
        rerun = project.alley("up")
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    resumed = finish(paused)

    assert other.returncode == INTEGRITY, other.output  # it found 0001 unfinished
    assert "0001_slow.py was interrupted" in other.stderr
    assert decided.returncode == 0, decided.output
    assert rerun.returncode == 0, rerun.output
    # The paused run finished its step after losing the lease: it says so, records nothing.
    assert resumed.returncode == LEASE_LOST, resumed.output
    assert "0001_slow.py finished (up) after this run lost the lock" in resumed.stderr
    assert "0002_b.py" not in resumed.stdout
    records = [d["filename"] for d in mongo_db.db_migrations.find()]
    assert sorted(records) == ["0001_slow.py", "0002_b.py", "0003_c.py"]
    holders = {d["filename"]: d["run_id"] for d in mongo_db.db_migrations.find()}
    assert len(set(holders.values())) == 1  # all three by the re-run
    # Its code did run twice (the pause came mid-step): what a person was asked to judge.
    assert counters(mongo_db) == {"0001": 2, "0002": 1, "0003": 1}
    assert mongo_db.db_migrations_lock.count_documents({"took_over_expired": True}) == 1
    assert project.alley("verify").returncode == 0


def test_a_run_paused_before_recording_leaves_its_step_for_a_person(
    project: Project, mongo_db: Any
) -> None:
    gate = gated(project, "0001_slow.py")
    project.counter("0002_b.py")

    paused = project.spawn("--lease", "1.5", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the gated migration")
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        # Nobody takes over; the lease just runs out on the server's clock.
        wait_for(lambda: project.alley("unlock").stdout.startswith("released"), what="expiry")
        gate.touch()
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    resumed = finish(paused)

    assert resumed.returncode == LEASE_LOST, resumed.output
    assert mongo_db.db_migrations.count_documents({}) == 0  # no record, no outcome
    assert not list(mongo_db.db_migrations_log.find({"event": "succeeded"}))
    after = project.alley("up")
    assert after.returncode == INTEGRITY, after.output
    assert "0001_slow.py was interrupted" in after.stderr


def test_a_client_with_a_wrong_clock_never_steals_a_live_lock(
    project: Project, mongo_db: Any, tmp_path: Path
) -> None:
    fake_clock = tmp_path / "fakeclock"
    fake_clock.mkdir()
    (fake_clock / "sitecustomize.py").write_text(
        "import datetime as _dt, os, time as _time\n"
        "_OFFSET = float(os.environ['FAKE_CLOCK_OFFSET'])\n"
        "_real_time = _time.time\n"
        "_time.time = lambda: _real_time() + _OFFSET\n"
        "_time.time_ns = lambda: int((_real_time() + _OFFSET) * 1e9)\n"
        "class _Shifted(_dt.datetime):\n"
        "    @classmethod\n"
        "    def now(cls, tz=None):\n"
        "        return super().now(tz) + _dt.timedelta(seconds=_OFFSET)\n"
        "    @classmethod\n"
        "    def utcnow(cls):\n"
        "        return super().utcnow() + _dt.timedelta(seconds=_OFFSET)\n"
        "_dt.datetime = _Shifted\n"
    )
    shifted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import datetime, time; print(time.time(), datetime.datetime.now().timestamp())",
        ],
        env={**os.environ, "PYTHONPATH": str(fake_clock), "FAKE_CLOCK_OFFSET": "3600"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(abs(float(t) - time.time() - 3600) < 60 for t in shifted.stdout.split())

    slow(project, "0001_slow.py", 12)
    holder = project.spawn("--lease", "2", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the slow migration")

    skewed = [
        project.spawn(
            "--lease",
            "2",
            "--lock-timeout",
            "3",
            "up",
            env={"PYTHONPATH": str(fake_clock), "FAKE_CLOCK_OFFSET": str(offset)},
        )
        for offset in (3600, -3600)
    ]
    results = [finish(process) for process in skewed]
    assert holder.poll() is None, "the holder must still be running: the test needs a live lock"
    held = finish(holder)

    assert held.returncode == 0, held.output
    for result in results:
        assert result.returncode == BUSY, result.output
        assert "held by" in result.stderr
    assert counters(mongo_db) == {"0001": 1}
    assert mongo_db.db_migrations_lock.count_documents({"took_over_expired": True}) == 0


class RestartableFerretDB:
    """A FerretDB of this test's own, which can be stopped and started on the same data."""

    def __init__(self, workdir: Path) -> None:
        from alley.testing import find_ferretdb
        from alley.testing.server import _free_port

        binary = find_ferretdb()
        assert binary is not None, "own_server checked that a FerretDB binary exists"
        self.binary = binary
        self.port = _free_port()
        self.data = workdir / "data"
        self.data.mkdir(parents=True)
        self.state = workdir / "state"
        self.state.mkdir()
        self.log = workdir / "server.log"
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from pymongo import MongoClient

        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--handler=sqlite",
                f"--sqlite-url=file:{self.data}/",
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--state-dir={self.state}",
                "--debug-addr=-",
                "--telemetry=disable",
                "--log-level=warn",
            ],
            env={**os.environ, "DO_NOT_TRACK": "1"},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )
        with MongoClient(self.uri, serverSelectionTimeoutMS=200) as client:
            wait_for(lambda: _pings(client), timeout=20, what="FerretDB to answer")

    def stop(self) -> None:
        """Kill it: a crash (a graceful SIGTERM would wait for alley's connection to end)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)


def _pings(client: Any) -> bool:
    try:
        client.admin.command("ping")
    except Exception:
        return False
    return True


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RestartableFerretDB]:
    """A server of the test's own, killed and restarted on its data: FerretDB, whichever
    server the session uses (an in-memory server would lose its data)."""
    from alley.testing import find_ferretdb

    if find_ferretdb() is None:
        pytest.skip(
            "needs a server that keeps its data across a kill and a restart: "
            "no FerretDB 1.24 binary on PATH or in the cache"
        )
    server = RestartableFerretDB(tmp_path / "own-server")
    server.start()
    yield server
    server.stop()


def test_server_stopped_mid_run_fails_clearly_and_the_next_run_continues_after_a_decision(
    tmp_path: Path, own_server: RestartableFerretDB
) -> None:
    from pymongo import MongoClient

    project = Project(tmp_path / "app", own_server.uri + "stopped")
    project.counter("0001_a.py")
    slow(project, "0002_slow.py", 3)
    project.counter("0003_c.py")
    client: MongoClient[dict[str, Any]] = MongoClient(own_server.uri)
    db = client["stopped"]

    run = project.spawn("--lease", "2", "--timeout", "2", "up")
    wait_for(lambda: db.marks.count_documents({}) == 1, what="the slow migration")
    own_server.stop()
    failed = finish(run)
    own_server.start()

    assert failed.returncode == CONNECTION, failed.output
    assert "lost the connection to the server" in failed.stderr
    assert "Traceback" not in failed.stderr
    after = project.alley("--lease", "2", "--lock-timeout", "30", "up")
    assert after.returncode == INTEGRITY, after.output
    assert "0002_slow.py was interrupted" in after.stderr
    history = project.alley("history", "--json")
    assert '"interrupted"' in history.stdout

    # Its counter update met the stopped server, so it did not finish: run it again.
    assert "0002" not in {d["_id"] for d in db.counters.find()}
    assert project.alley("mark", "2", "--pending").returncode == 0
    resumed = project.alley("up")
    assert resumed.returncode == 0, resumed.output
    assert {d["_id"]: d["n"] for d in db.counters.find()} == {"0001": 1, "0002": 1, "0003": 1}
    client.close()


# -------------------------------------------------------------------------
# Failures, drift, dry runs
# -------------------------------------------------------------------------


def test_a_failed_migration_is_logged_failed_and_retried_after_the_fix(
    project: Project, mongo_db: Any
) -> None:
    project.write("0001_bad.py", up="raise RuntimeError('not yet')")

    assert project.alley("up").returncode == 1
    status = project.alley("status")
    history = project.alley("history", "--json")

    assert "last up failed" in status.stdout
    assert '"failed"' in history.stdout
    assert "not yet" in history.stdout
    project.counter("0001_bad.py")
    assert project.alley("up").returncode == 0
    assert counters(mongo_db) == {"0001": 1}


def test_drift_edits_deletions_and_renames_are_shown_and_fail_verify(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    project.counter("0002_b.py")
    project.counter("0003_c.py")
    project.counter("0004_d.py")
    assert project.alley("up").returncode == 0
    assert project.alley("verify").returncode == 0

    first = project.folder / "0001_a.py"
    first.write_text("# a comment\n\n" + first.read_text().replace("(", "( ") + "\n\n# more\n")
    assert project.alley("verify").returncode == 0  # formatting and comments: not drift

    second = project.folder / "0002_b.py"
    second.write_text(second.read_text().replace("'n': 1", "'n': 2"))
    (project.folder / "0003_c.py").unlink()
    (project.folder / "0004_d.py").rename(project.folder / "0004_dd.py")

    status = project.alley("status")
    verify = project.alley("verify")
    up = project.alley("up")

    assert "file changed since applied" in status.stdout
    assert "file deleted" in status.stdout
    assert "renamed: recorded as 0004_d.py" in status.stdout
    assert verify.returncode == INTEGRITY
    assert "0002_b.py: changed" in verify.stdout
    assert "0003_c.py: applied, but the file is gone" in verify.stdout
    assert "0004_dd.py: renamed" in verify.stdout
    assert up.returncode == INTEGRITY
    assert "--allow-drift" in up.stderr

    for decision in (("2", "--applied"), ("3", "--pending"), ("4", "--applied")):
        assert project.alley("mark", *decision).returncode == 0
    assert project.alley("verify").returncode == 0


def test_records_of_0_0_3_have_unknown_checksums_never_drift(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    mongo_db.db_migrations.insert_one(
        {"id": 1, "filename": "0001_a.py", "date": datetime(2019, 1, 1)}
    )
    assert project.alley("verify").returncode == 0
    assert project.alley("up").returncode == 0


def snapshot(db: Any) -> dict[str, list[bytes]]:
    return {
        name: [bson.encode(d) for d in db[name].find().sort("_id", 1)]
        for name in sorted(db.list_collection_names())
    }


def test_plans_and_reads_change_nothing_at_all(project: Project, mongo_db: Any) -> None:
    for number in range(1, 4):
        project.counter(f"{number:04}_m.py")

    empty = snapshot(mongo_db)
    fresh_plan = project.alley("up", "--plan")
    assert snapshot(mongo_db) == empty == {}  # not even a collection was created
    assert fresh_plan.returncode == PENDING
    assert "0001_m.py" in fresh_plan.stdout

    assert project.alley("up", "2").returncode == 0
    before = snapshot(mongo_db)
    results = [
        project.alley("up", "--plan"),
        project.alley("up", "--plan", "--json"),
        project.alley("down", "1", "--plan"),
        project.alley("status"),
        project.alley("status", "--check"),
        project.alley("verify"),
        project.alley("history"),
        project.alley("unlock"),
    ]
    after = snapshot(mongo_db)

    assert after == before
    assert [r.returncode for r in results] == [PENDING, PENDING, PENDING, 0, PENDING, 0, 0, 0]
    assert results[0].stdout.splitlines()[1:] == ["would apply, in this order:", "  0003_m.py"]
    assert "lock: free" in results[0].stdout
    assert results[2].stdout.splitlines()[2:] == ["  0002_m.py", "  0001_m.py"]
    assert project.alley("up").returncode == 0
    nothing: Result = project.alley("up", "--plan")
    assert nothing.returncode == 0
    assert "nothing to apply" in nothing.stdout


def test_unlock_releases_a_dead_runs_lock_and_force_releases_a_live_one(
    project: Project, mongo_db: Any
) -> None:
    mongo_db.db_migrations_lock.insert_one(
        {
            "_id": 7,
            "holder": {"run_id": "r", "host": "h", "pid": 9, "user": "u"},
            "acquired_at": datetime(2001, 1, 1),
            "heartbeat_at": datetime(2001, 1, 1),
            "lease_s": 5.0,
            "released": False,
        }
    )
    expired = project.alley("unlock")
    assert expired.returncode == 0, expired.output
    assert "released" in expired.stdout
    assert mongo_db.db_migrations_lock.find_one({"_id": 7})["released"] is True

    slow(project, "0001_slow.py", 3)
    project.counter("0002_b.py")
    holder = project.spawn("--lease", "3", "up")  # renewed every second
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the slow migration")
    forced = project.alley("unlock", "--force")
    stopped = finish(holder)

    assert forced.returncode == 0, forced.output
    # Its next renewal found the lock released: the step it finished is not recorded.
    assert stopped.returncode == LEASE_LOST, stopped.output
    assert "0001_slow.py finished (up) after this run lost the lock" in stopped.stderr
    assert mongo_db.db_migrations.count_documents({}) == 0
    assert "0002" not in counters(mongo_db)


def test_ctrl_c_mid_migration_releases_the_lock_and_logs_the_step_interrupted(
    project: Project, mongo_db: Any
) -> None:
    slow(project, "0001_slow.py", 30)
    project.counter("0002_b.py")

    run = project.spawn("--lease", "30", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the slow migration")
    run.send_signal(signal.SIGINT)
    stopped = finish(run)
    started = time.monotonic()
    after = project.alley("--lock-timeout", "20", "up")

    assert stopped.returncode == 130, stopped.output
    assert "interrupted" in stopped.stderr
    assert time.monotonic() - started < 10  # the lock was released, not left to expire
    assert after.returncode == INTEGRITY
    assert "0001_slow.py was interrupted" in after.stderr
    assert "Ctrl-C" in project.alley("history", "1").stdout
    assert counters(mongo_db) == {}


def test_sigterm_mid_migration_stops_like_ctrl_c_and_exits_143(
    project: Project, mongo_db: Any
) -> None:
    slow(project, "0001_slow.py", 30)

    run = project.spawn("--lease", "30", "up")
    wait_for(lambda: mongo_db.marks.count_documents({}) == 1, what="the slow migration")
    run.send_signal(signal.SIGTERM)
    stopped = finish(run)
    started = time.monotonic()
    after = project.alley("--lock-timeout", "20", "up")

    assert stopped.returncode == 143, stopped.output
    assert stopped.stderr.splitlines()[-1] == "alley: error: terminated (SIGTERM)"
    assert time.monotonic() - started < 10  # the lock was released, not left to expire
    assert after.returncode == INTEGRITY
    assert "0001_slow.py was interrupted" in after.stderr
    assert "terminated (SIGTERM)" in project.alley("history", "1").stdout


def test_refused_mark_changes_nothing(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    assert project.alley("up").returncode == 0
    (project.folder / "0001_a.py").unlink()

    refused = project.alley("mark", "1", "--applied")

    assert refused.returncode == 2
    assert "file is gone" in refused.stderr
    assert mongo_db.db_migrations.count_documents({"filename": "0001_a.py"}) == 1
    pending = project.alley("mark", "1", "--pending")
    assert pending.returncode == 0, pending.output
    assert mongo_db.db_migrations.count_documents({}) == 0
    assert "marked-pending" in project.alley("history", "1").stdout


def test_a_step_recorded_before_its_run_died_is_closed_as_finished_not_interrupted(
    project: Project, mongo_db: Any
) -> None:
    from alley.model import Direction, Event, Holder, LogEntry
    from alley_plugins.mongo_history import MongoHistoryStore

    project.counter("0001_a.py")
    project.counter("0002_b.py")
    assert project.alley("up", "1").returncode == 0
    record = mongo_db.db_migrations.find_one({"filename": "0001_a.py"})
    # What a run that died between recording 0001 and closing its attempt leaves behind.
    dead = Holder(record["run_id"], "gone", 1, "u", "0", "up")
    MongoHistoryStore(mongo_db).open_attempts(
        [
        LogEntry(
            f"up:0001_a.py:{dead.run_id}", Event.STARTED, 1, "0001_a.py", Direction.UP,
            datetime(2001, 1, 1), dead,
        )]
    )  # fmt: skip

    status = project.alley("status")
    finished = project.alley("up")

    assert "INTERRUPTED" not in status.stdout
    assert finished.returncode == 0, finished.output
    assert counters(mongo_db) == {"0001": 1, "0002": 1}
    assert mongo_db.db_migrations_open.count_documents({}) == 0
    assert "its record shows it completed" in project.alley("history", "1").stdout


def test_status_reads_the_open_attempts_never_the_run_log(
    project: Project, mongo_db: Any, mongodb_uri: str
) -> None:
    from pymongo import MongoClient, monitoring

    from alley import Migrations

    class Collections(monitoring.CommandListener):
        def __init__(self) -> None:
            self.read: list[str] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name in ("find", "aggregate", "count"):
                self.read.append(str(event.command[event.command_name]))

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    for number in range(1, 6):
        project.counter(f"{number:04}_m.py")
    for _ in range(3):  # history grows: 3 rounds of up and down
        assert project.alley("up").returncode == 0
        assert project.alley("down", "1").returncode == 0
    assert mongo_db.db_migrations_log.count_documents({}) == 30

    listener = Collections()
    with MongoClient(mongodb_uri, event_listeners=[listener]) as client:
        Migrations(project.root, client[mongo_db.name]).status()

    assert "db_migrations_log" not in listener.read
    # The lock's heartbeat sits in a sibling database on FerretDB (one read more).
    heartbeat = ["db_migrations_heartbeat"] if "db_migrations_heartbeat" in listener.read else []
    assert sorted(listener.read) == [
        "db_migrations",
        *heartbeat,
        "db_migrations_lock",
        "db_migrations_open",
    ]


DOCUMENTS = 1500  # a $rename over them holds FerretDB's writer for ~5 s


def test_a_long_write_does_not_cost_a_live_run_its_lease(project: Project, mongo_db: Any) -> None:
    """On FerretDB an update_many holds its database's one SQLite writer for seconds; the
    heartbeat renews in a sibling database and is never starved (docs/safety.md). With
    the heartbeat in the lock document (``-o heartbeat_database=-``) this run loses its
    lease and exits 9 on FerretDB 1.24 (measured)."""
    mongo_db.big.insert_many([{"_id": n, "a": n} for n in range(DOCUMENTS)])
    project.write("0001_rename.py", up="db.big.update_many({}, {'$rename': {'a': 'b'}})")
    project.counter("0002_b.py")

    run = project.spawn("--lease", "1", "up")  # renewed every 0.33 s, lost after 0.8 s
    # Taken, never untaken: the second deploy starts once the first holds the lock
    # (where the write is fast it may be done already; then the second finds nothing).
    wait_for(lambda: mongo_db.db_migrations_lock.count_documents({}) == 1, what="the lock")
    other = project.alley("--lease", "1", "--lock-timeout", "120", "up")
    done = finish(run)

    assert done.returncode == 0, done.output
    assert other.returncode == 0, other.output  # it waited for a live run, then had nothing
    assert "interrupted" not in other.output
    assert mongo_db.big.count_documents({"b": {"$exists": True}}) == DOCUMENTS
    assert sorted(d["filename"] for d in mongo_db.db_migrations.find()) == [
        "0001_rename.py",
        "0002_b.py",
    ]
