"""Resumable backfills (:mod:`alley.data`) against the real server: kill -9, Ctrl-C, a
server restart and a failure half-way, each resumed by the next ``alley up`` with every
document transformed exactly once (a counter field ``times`` proves it).

The kill is deterministic: the migration's ``transform`` waits, at the first document
of batch 6 (50 done and checkpointed), while the test's *armed* file exists, and says so
by creating a *waiting* file. Nothing sleeps for a fixed time.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import monitoring
from test_safety import RestartableFerretDB

from alley.data import Step
from alley.model import BatchProgress, Checkpoint
from conftest import Project, finish, wait_for

CONNECTION, INTEGRITY = 4, 6
DOCUMENTS, BATCH = 100, 10

GATED = """
import os, time

ARMED = {armed!r}
WAITING = {waiting!r}
seen = []


def transform(doc):
    seen.append(doc["_id"])
    if len(seen) == {stop_at} and os.path.exists(ARMED):
        if {fail!r}:
            raise ValueError("half-way")
        open(WAITING, "w").close()
        while os.path.exists(ARMED):
            time.sleep(0.02)
    return {{"$set": {{"v": 2}}, "$inc": {{"times": 1}}}}


def up(db, step):
    step.backfill("items", where={{"v": {{"$ne": 2}}}}, transform=transform, batch_size={batch})


def down(db, step):
    pass
"""


def gated_backfill(project: Project, *, fail: bool = False, stop_at: int = 51) -> tuple[Path, Path]:
    """``0001_backfill.py``: a transform backfill of ``items`` that stops at its
    ``stop_at``-th document (default: the first of batch 6) while the returned *armed*
    file exists (creating *waiting*), or raises there (``fail``)."""
    armed, waiting = project.root / "armed", project.root / "waiting"
    armed.touch()
    (project.folder / "0001_backfill.py").write_text(
        GATED.format(
            armed=str(armed), waiting=str(waiting), fail=fail, batch=BATCH, stop_at=stop_at
        )
    )
    return armed, waiting


def seed(db: Any, n: int = DOCUMENTS) -> None:
    db.items.insert_many([{"_id": i, "v": 1} for i in range(n)])


def assert_each_once(db: Any, n: int = DOCUMENTS) -> None:
    times = sorted(d.get("times", 0) for d in db.items.find())
    assert times == [1] * n, f"times per document: {times}"
    assert db.items.count_documents({"v": 2}) == n


def open_checkpoints(db: Any) -> list[dict[str, Any]]:
    attempt = db.db_migrations_open.find_one({"_id": "0001_backfill.py"})
    assert attempt is not None, "no open attempt"
    return list(attempt.get("checkpoints") or [])


def test_kill_9_half_way_resumes_and_transforms_each_document_once(
    project: Project, mongo_db: Any
) -> None:
    seed(mongo_db)
    armed, waiting = gated_backfill(project)
    project.counter("0002_after.py")

    victim = project.spawn("--lease", "2", "up")
    wait_for(waiting.exists, what="the backfill to reach batch 6")
    assert open_checkpoints(mongo_db)[0]["done"] == 50
    victim.send_signal(signal.SIGKILL)
    finish(victim)
    armed.unlink()
    assert mongo_db.items.count_documents({"times": 1}) == 50

    resumed = project.alley("--lease", "2", "--lock-timeout", "30", "up")

    assert resumed.returncode == 0, resumed.output
    assert "resuming 0001_backfill.py from its checkpoint (50 documents done)" in (resumed.output)
    assert_each_once(mongo_db)
    assert mongo_db.counters.find_one({"_id": "0002"})["n"] == 1
    assert mongo_db.db_migrations_open.count_documents({}) == 0
    events = [(d["filename"], d["event"]) for d in mongo_db.db_migrations_log.find()]
    assert ("0001_backfill.py", "interrupted") in events
    assert ("0001_backfill.py", "succeeded") in events
    assert project.alley("verify").returncode == 0


def test_kill_9_in_the_first_batch_resumes_from_the_start(project: Project, mongo_db: Any) -> None:
    """Killed before its first checkpoint: the checkpoint written before the first write
    makes the step resumable (not 'interrupted, effect unknown')."""
    seed(mongo_db)
    armed, waiting = gated_backfill(project, stop_at=5)

    victim = project.spawn("--lease", "2", "up")
    wait_for(waiting.exists, what="the backfill to reach its 5th document")
    assert open_checkpoints(mongo_db) == [
        {"name": "items#1", "last_id": None, "done": 0, "finished": False}
    ]
    victim.send_signal(signal.SIGKILL)
    finish(victim)
    armed.unlink()

    resumed = project.alley("--lease", "2", "--lock-timeout", "30", "up")

    assert resumed.returncode == 0, resumed.output
    assert "resuming 0001_backfill.py from its checkpoint (0 documents done)" in resumed.output
    assert_each_once(mongo_db)


def test_ctrl_c_half_way_resumes_without_retry(project: Project, mongo_db: Any) -> None:
    seed(mongo_db)
    armed, waiting = gated_backfill(project)

    run = project.spawn("--lease", "30", "up")
    wait_for(waiting.exists, what="the backfill to reach batch 6")
    run.send_signal(signal.SIGINT)
    stopped = finish(run)
    armed.unlink()

    assert stopped.returncode == 130, stopped.output
    status = project.alley("status")
    assert status.returncode == 0, status.output
    assert "after 50 documents: the next 'alley up' resumes it" in status.stdout
    resumed = project.alley("--lock-timeout", "20", "up")

    assert resumed.returncode == 0, resumed.output
    assert "resuming 0001_backfill.py from its checkpoint (50 documents done)" in (resumed.output)
    assert_each_once(mongo_db)


def test_a_failure_half_way_resumes_on_the_next_up_and_says_so(
    project: Project, mongo_db: Any
) -> None:
    seed(mongo_db)
    armed, _ = gated_backfill(project, fail=True)

    failed = project.alley("up")
    assert failed.returncode != 0
    assert "half-way" in failed.output
    assert mongo_db.items.count_documents({"times": 1}) == 50
    [checkpoint] = open_checkpoints(mongo_db)
    assert (checkpoint["name"], checkpoint["last_id"], checkpoint["done"]) == ("items#1", 49, 50)

    armed.unlink()
    resumed = project.alley("up")

    assert resumed.returncode == 0, resumed.output
    assert "resuming 0001_backfill.py from its checkpoint (50 documents done)" in (resumed.output)
    assert_each_once(mongo_db)


def test_a_step_that_wrote_outside_the_helpers_still_waits_for_retry(
    project: Project, mongo_db: Any
) -> None:
    seed(mongo_db)
    armed, _ = gated_backfill(project, fail=True)
    path = project.folder / "0001_backfill.py"
    path.write_text(
        path.read_text().replace(
            "def up(db, step):\n", "def up(db, step):\n    db.other.insert_one({})\n"
        )
    )
    assert project.alley("up").returncode != 0
    armed.unlink()

    refused = project.alley("up")

    assert refused.returncode == INTEGRITY, refused.output
    assert "--retry" in refused.stderr


def pipeline_updates(db: Any) -> bool:
    """Whether the server takes an update pipeline (FerretDB 1.24 does not)."""
    from pymongo.errors import OperationFailure

    db.probe.insert_one({"_id": 1})
    try:
        db.probe.update_one({"_id": 1}, [{"$set": {"x": 1}}])
    except OperationFailure:
        return False
    finally:
        db.probe.drop()
    return True


def test_server_side_set_and_several_helpers_resume_each_from_its_own_checkpoint(
    project: Project, mongo_db: Any
) -> None:
    server_side = (
        """set={"full": {"$concat": ["$first", " ", "$last"]},
             "times": {"$add": [{"$ifNull": ["$times", 0]}, 1]}},"""
        if pipeline_updates(mongo_db)
        else """update={"$set": {"full": "a x"}, "$inc": {"times": 1}},"""
    )
    seed(mongo_db)
    mongo_db.names.insert_many([{"_id": i, "first": "a", "last": str(i)} for i in range(25)])
    armed = project.root / "armed"
    armed.touch()
    (project.folder / "0001_backfill.py").write_text(
        f"""
import os


def up(db, step):
    step.backfill(
        "names",
        where={{"full": {{"$exists": False}}}},
        {server_side}
        batch_size=10,
    )
    seen = []

    def transform(doc):
        seen.append(1)
        if len(seen) == 31 and os.path.exists({str(armed)!r}):
            raise RuntimeError("stop")
        return {{"$set": {{"v": 2}}, "$inc": {{"times": 1}}}}

    step.backfill("items", where={{"v": 1}}, transform=transform, batch_size=10)


def down(db, step):
    pass
"""
    )
    failed = project.alley("up")
    assert "RuntimeError: stop" in failed.output
    checkpoints = {c["name"]: c for c in open_checkpoints(mongo_db)}
    assert checkpoints["names#1"]["finished"] is True
    assert checkpoints["names#1"]["done"] == 25
    assert checkpoints["items#2"]["done"] == 30
    armed.unlink()

    resumed = project.alley("up")

    assert resumed.returncode == 0, resumed.output
    assert "(55 documents done)" in resumed.output
    assert sorted(d["times"] for d in mongo_db.names.find()) == [1] * 25
    if "$concat" in server_side:
        assert mongo_db.names.find_one({"_id": 7})["full"] == "a 7"
    assert_each_once(mongo_db)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RestartableFerretDB]:
    """A FerretDB of the test's own, killed and restarted on its data (test_safety's)."""
    from alley.testing import build_ferretdb, find_ferretdb

    if find_ferretdb() is None:  # the mongo-java-server pass alone: build it (cached)
        build_ferretdb()
    server = RestartableFerretDB(tmp_path / "own-server")
    server.start()
    yield server
    server.stop()


def test_server_restart_half_way_resumes_after_the_lease(
    tmp_path: Path, own_server: RestartableFerretDB
) -> None:
    from pymongo import MongoClient

    project = Project(tmp_path / "app", own_server.uri + "restart")
    client: MongoClient[dict[str, Any]] = MongoClient(own_server.uri)
    db = client["restart"]
    seed(db)
    armed, waiting = gated_backfill(project)

    run = project.spawn("--lease", "2", "--timeout", "2", "up")
    wait_for(waiting.exists, what="the backfill to reach batch 6")
    own_server.stop()
    armed.unlink()  # its batch meets the stopped server
    failed = finish(run)
    own_server.start()

    assert failed.returncode == CONNECTION, failed.output
    resumed = project.alley("--lease", "2", "--lock-timeout", "30", "up")

    assert resumed.returncode == 0, resumed.output
    assert "resuming 0001_backfill.py from its checkpoint (50 documents done)" in (resumed.output)
    assert_each_once(db)
    client.close()


# -- the helper in-process, on the real server ------------------------------------------------


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.started_events: list[monitoring.CommandStartedEvent] = []
        self.succeeded_events: list[monitoring.CommandSucceededEvent] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.started_events.append(event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.succeeded_events.append(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def watched_db(mongo_db_uri: str, mongo_db: Any) -> Iterator[Any]:
    from pymongo import MongoClient

    listener = Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_db_uri, event_listeners=[listener])
    db = client[mongo_db.name]
    db.listener = listener  # type: ignore[attr-defined]
    yield db
    client.close()


def test_the_helper_streams_one_batch_at_a_time(watched_db: Any, mongo_db: Any) -> None:
    seed(mongo_db, 95)
    listener = watched_db.listener
    checkpoints: list[tuple[Checkpoint, ...]] = []
    events: list[BatchProgress] = []
    step = Step(
        watched_db, "0001_x.py", on_checkpoint=checkpoints.append, on_progress=events.append
    )

    result = step.backfill(
        "items",
        where={"v": 1},
        transform=lambda doc: {"$set": {"v": 2}, "$inc": {"times": 1}},
        batch_size=BATCH,
    )

    assert (result.matched, result.modified, result.batches) == (95, 95, 10)
    # One query for the whole walk, read a batch at a time: never the collection at once.
    [find] = [e.command for e in listener.started_events if e.command_name == "find"]
    assert find["batchSize"] == BATCH
    more = [e.command for e in listener.started_events if e.command_name == "getMore"]
    assert more
    assert all(m["batchSize"] == BATCH for m in more)
    replies = [e.reply for e in listener.succeeded_events if e.command_name in {"find", "getMore"}]
    assert (
        max(len(r["cursor"].get("firstBatch", r["cursor"].get("nextBatch", []))) for r in replies)
        == BATCH
    )
    assert checkpoints[0] == (Checkpoint("items#1", None, 0),)  # before the first write
    assert len(checkpoints) == 11
    assert checkpoints[-1][0].finished
    assert [e.done for e in events if not e.finished][-1] == 95
    assert events[-1].finished
    assert events[-1].total == 95
    assert_each_once(mongo_db, 95)


def test_server_side_update_walks_id_ranges(watched_db: Any, mongo_db: Any) -> None:
    seed(mongo_db, 42)
    listener = watched_db.listener
    step = Step(watched_db, "0001_x.py")

    result = step.backfill(
        "items", where={"v": 1}, update={"$set": {"v": 2}, "$inc": {"times": 1}}, batch_size=BATCH
    )

    assert (result.matched, result.batches) == (42, 5)
    updates = [e.command for e in listener.started_events if e.command_name == "update"]
    assert len(updates) == 5
    assert all(u["updates"][0]["multi"] for u in updates)
    assert_each_once(mongo_db, 42)


def test_a_dry_run_counts_and_writes_nothing(watched_db: Any, mongo_db: Any) -> None:
    seed(mongo_db, 30)
    mongo_db.items.update_many({"_id": {"$lt": 10}}, {"$set": {"v": 2}})
    listener = watched_db.listener
    step = Step(watched_db, "0001_x.py", dry_run=True)

    result = step.backfill("items", where={"v": 1}, set={"v": 2})
    step.create_index("items", [("v", 1)])
    step.rebuild_index("items", [("v", 1)], unique=True, replaces="v_1")

    assert (result.matched, result.batches) == (20, 0)
    assert [(p.kind, p.documents) for p in step.planned] == [
        ("backfill", 20),
        ("create_index", None),
        ("rebuild_index", None),
    ]
    assert step.planned[-1].options == {"unique": True, "replaces": "v_1"}
    names = {e.command_name for e in listener.started_events}
    assert names <= {"aggregate", "count", "find", "endSessions", "hello", "isMaster", "ping"}
    assert mongo_db.items.count_documents({"v": 2}) == 10


def test_a_default_batch_of_1000_updates_goes_through_on_every_server(
    project: Project, mongo_db: Any
) -> None:
    """FerretDB 1.24 never answers an update command of 100 or more statements (and its
    database stays stuck): the helper splits a batch's updates there."""
    seed(mongo_db, 300)  # one default batch (1000) of 300 updates: over 99
    (project.folder / "0001_backfill.py").write_text(
        "def up(db, step):\n"
        '    step.backfill("items", where={"v": {"$ne": 2}},\n'
        '                  transform=lambda d: {"$set": {"v": 2}, "$inc": {"times": 1}})\n\n\n'
        "def down(db):\n    pass\n"
    )

    # A process, so that a server that never answers fails the test instead of hanging it.
    result = project.alley("up", process=True, timeout=60)

    assert result.returncode == 0, result.output
    assert_each_once(mongo_db, 300)


def test_a_cursor_the_server_drops_is_reopened_after_the_last_batch_done(
    watched_db: Any, mongo_db: Any
) -> None:
    """The walk reads one cursor; a server that drops it (idle past its timeout during a
    long pause) costs a new query after the last batch applied, not a failed step."""
    seed(mongo_db, 35)
    listener = watched_db.listener
    killed: list[int] = []

    def transform(doc: dict[str, Any]) -> dict[str, Any]:
        if doc["_id"] == 15 and not killed:  # batch 2: the cursor has a batch to go
            [reply] = [e.reply for e in listener.succeeded_events if e.command_name == "find"]
            killed.append(reply["cursor"]["id"])
            mongo_db.command("killCursors", "items", cursors=killed)
        return {"$set": {"v": 2}, "$inc": {"times": 1}}

    step = Step(watched_db, "0001_x.py")
    result = step.backfill("items", where={"v": 1}, transform=transform, batch_size=BATCH)

    assert killed
    assert (result.matched, result.modified) == (35, 35)
    finds = [e.command for e in listener.started_events if e.command_name == "find"]
    assert len(finds) == 2
    assert finds[1]["filter"] == {"$and": [{"v": 1}, {"_id": {"$gt": 19}}]}
    assert_each_once(mongo_db, 35)


def test_a_fixed_migration_resumes_from_the_checkpoint_of_the_failed_one(
    project: Project, mongo_db: Any
) -> None:
    """The usual way out of a failure half-way: fix the code, run ``up`` again. The fixed
    file resumes where the failed one stopped; the documents done keep their result."""
    seed(mongo_db)
    armed, _ = gated_backfill(project, fail=True)
    assert project.alley("up").returncode != 0
    assert mongo_db.items.count_documents({"times": 1}) == 50

    path = project.folder / "0001_backfill.py"
    path.write_text(path.read_text().replace('"$set": {"v": 2}', '"$set": {"v": 2, "fixed": True}'))
    resumed = project.alley("up")

    assert resumed.returncode == 0, resumed.output
    assert "resuming 0001_backfill.py from its checkpoint (50 documents done)" in resumed.output
    assert_each_once(mongo_db)
    assert mongo_db.items.count_documents({"fixed": True}) == 50
    assert mongo_db.items.find_one({"_id": 49}).get("fixed") is None
    assert mongo_db.items.find_one({"_id": 50})["fixed"] is True
    assert armed.exists()  # the fix, not the test's gate, let it through
    verify = project.alley("verify")
    assert verify.returncode == 0, verify.output
