"""alley.data's Step in-process: batching, checkpoints, rate and pause with a fake clock,
and the engine's resume rules on the memory store, with a small in-memory collection
standing in for the server (tests/integration/test_data_resume.py runs the real one).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alley import api
from alley.data import Step
from alley.engine import Engine
from alley.errors import IntegrityError, MigrationFailed, UsageError
from alley.hookspecs import hookimpl
from alley.memory_store import MemoryStore
from alley.model import Attempt, BatchProgress, Checkpoint, Event
from alley.settings import load_settings
from alley.write_watch import Writes

# -- a collection small enough to read ------------------------------------------------------


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$and":
            if not all(_matches(document, part) for part in condition):
                return False
            continue
        value = document.get(key)
        if isinstance(condition, Mapping) and any(k.startswith("$") for k in condition):
            for op, operand in condition.items():
                if not _test(op, value, operand, key in document):
                    return False
        elif value != condition:
            return False
    return True


def _test(op: str, value: Any, operand: Any, present: bool) -> bool:
    if op == "$exists":
        return present == bool(operand)
    if op == "$ne":
        return bool(value != operand)
    if value is None:
        return False
    if op == "$gt":
        return bool(value > operand)
    if op == "$lte":
        return bool(value <= operand)
    assert op == "$lt", op
    return bool(value < operand)


def _apply(document: dict[str, Any], update: Any) -> bool:
    before = dict(document)
    for field, value in update.get("$set", {}).items():
        document[field] = value
    for field, value in update.get("$inc", {}).items():
        document[field] = document.get(field, 0) + value
    return document != before


class Cursor:
    def __init__(self, documents: list[dict[str, Any]], projection: Any) -> None:
        self.documents = documents
        self.projection = projection
        self._skip = 0
        self._limit = 0

    def sort(self, key: str, direction: int) -> Cursor:
        self.documents.sort(key=lambda d: d[key], reverse=direction < 0)
        return self

    def skip(self, n: int) -> Cursor:
        self._skip = n
        return self

    def limit(self, n: int) -> Cursor:
        self._limit = n
        return self

    def batch_size(self, n: int) -> Cursor:
        return self

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[dict[str, Any]]:
        chosen = self.documents[self._skip :]
        if self._limit:
            chosen = chosen[: self._limit]
        for document in chosen:
            yield {"_id": document["_id"]} if self.projection else dict(document)


class Result:
    def __init__(self, matched: int, modified: int) -> None:
        self.matched_count = matched
        self.modified_count = modified


class Collection:
    def __init__(self, db: FakeDB, name: str) -> None:
        self.db = db
        self.name = name
        self.documents: list[dict[str, Any]] = []
        self.finds: list[dict[str, Any]] = []

    @property
    def database(self) -> FakeDB:
        return self.db

    def _write(self, command: str) -> None:
        if self.db.writes is not None:
            self.db.writes.add(f"{command} {self.name}")

    def find(self, query: Mapping[str, Any], projection: Any = None) -> Cursor:
        self.finds.append(dict(query))
        return Cursor([d for d in self.documents if _matches(d, query)], projection)

    def count_documents(self, query: Mapping[str, Any]) -> int:
        return sum(1 for d in self.documents if _matches(d, query))

    def estimated_document_count(self) -> int:
        return len(self.documents)

    def insert_one(self, document: dict[str, Any]) -> None:
        self._write("insert")
        self.documents.append(document)

    def update_many(self, query: Mapping[str, Any], update: Any) -> Result:
        self._write("update")
        chosen = [d for d in self.documents if _matches(d, query)]
        return Result(len(chosen), sum(_apply(d, update) for d in chosen))

    def bulk_write(self, operations: list[Any], ordered: bool = True) -> Result:
        self._write("update")
        matched = modified = 0
        for operation in operations:
            chosen = [d for d in self.documents if _matches(d, operation._filter)][:1]
            matched += len(chosen)
            modified += sum(_apply(d, operation._doc) for d in chosen)
        return Result(matched, modified)


class FakeClient:
    """What the helper asks of the client: the server's buildInfo (here not FerretDB's)."""

    def __init__(self) -> None:
        self.admin = self

    def command(self, name: str) -> dict[str, Any]:
        assert name == "buildInfo"
        return {"version": "7.0.0"}


class FakeDB:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.collections: dict[str, Collection] = {}
        self.writes: Writes | None = None
        self.calls: list[Any] = []  # what migrations call through db.during

    def __getitem__(self, name: str) -> Collection:
        return self.collections.setdefault(name, Collection(self, name))

    def seed(self, name: str, n: int) -> Collection:
        collection = self[name]
        collection.documents = [{"_id": i, "v": 1} for i in range(n)]
        return collection


def times(collection: Collection) -> list[int]:
    return [d.get("times", 0) for d in collection.documents]


INC = {"$set": {"v": 2}, "$inc": {"times": 1}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# -- the helper -------------------------------------------------------------------------------


def test_transform_walks_in_batches_checkpointing_after_each() -> None:
    db = FakeDB()
    items = db.seed("items", 25)
    checkpoints: list[tuple[Checkpoint, ...]] = []
    events: list[BatchProgress] = []
    step = Step(db, "0001_x.py", on_checkpoint=checkpoints.append, on_progress=events.append)

    result = step.backfill("items", where={"v": 1}, transform=lambda d: INC, batch_size=10)

    assert (result.matched, result.modified, result.batches, result.resumed_from) == (25, 25, 3, 0)
    assert times(items) == [1] * 25
    assert [c[0].last_id for c in checkpoints] == [None, 9, 19, 24]  # None: before any write
    assert [c[0].done for c in checkpoints] == [0, 10, 20, 25]
    assert checkpoints[-1][0].finished
    assert [(e.batch, e.done, e.total) for e in events] == [
        (0, 0, 25),
        (1, 10, 25),
        (2, 20, 25),
        (3, 25, 25),
        (3, 25, 25),
    ]
    assert events[-1].finished


def test_server_side_updates_ranges_and_keeps_where() -> None:
    db = FakeDB()
    items = db.seed("items", 23)
    items.documents[5]["v"] = 2  # already done: never updated again
    step = Step(db, "0001_x.py")

    result = step.backfill("items", where={"v": 1}, update=INC, batch_size=10)

    assert (result.matched, result.batches) == (22, 3)
    assert times(items) == [1] * 5 + [0] + [1] * 17


def test_a_resumed_helper_starts_after_its_checkpoint_and_a_finished_one_is_skipped() -> None:
    db = FakeDB()
    items = db.seed("items", 30)
    db.seed("other", 5)
    step = Step(
        db,
        "0001_x.py",
        checkpoints=[Checkpoint("other#1", 4, 5, finished=True), Checkpoint("items#2", 19, 20)],
    )

    skipped = step.backfill("other", transform=lambda d: INC)
    result = step.backfill("items", transform=lambda d: INC, batch_size=10)

    assert step.resumed
    assert (skipped.matched, skipped.resumed_from) == (0, 5)
    assert (result.matched, result.resumed_from) == (10, 20)
    assert times(items) == [0] * 20 + [1] * 10
    assert times(db["other"]) == [0] * 5
    assert step.checkpoints[-1] == Checkpoint("items#2", 29, 30, finished=True)


def test_without_where_it_warns_once_that_a_batch_may_be_replayed() -> None:
    db = FakeDB()
    db.seed("items", 3)
    step = Step(db, "0001_x.py")
    step.backfill("items", transform=lambda d: INC)
    assert len(step.notes) == 1
    assert "no where=" in step.notes[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of"),
        ({"set": {"a": 1}, "transform": lambda d: None}, "exactly one of"),
        ({"set": {"a": 1}, "batch_size": 0}, "batch_size"),
        ({"set": {"a": 1}, "rate": 0}, "rate"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Step(FakeDB(), "0001_x.py").backfill("items", **kwargs)


def test_a_name_used_twice_is_refused() -> None:
    db = FakeDB()
    step = Step(db, "0001_x.py")
    step.backfill("items", set={"a": 1}, name="x")
    with pytest.raises(UsageError, match="used twice"):
        step.backfill("items", set={"a": 1}, name="x")


def test_rate_keeps_under_the_documents_per_second_without_real_sleeping() -> None:
    db = FakeDB()
    db.seed("items", 50)
    clock = FakeClock()
    step = Step(db, "0001_x.py", clock=clock, sleep=clock.sleep)

    step.backfill("items", transform=lambda d: INC, batch_size=10, rate=100)

    # 10 documents per batch at 100/s: each batch is due 0.1 s after the one before.
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(0.4)


def test_pause_waits_between_batches_not_after_the_last() -> None:
    db = FakeDB()
    db.seed("items", 30)
    clock = FakeClock()
    step = Step(db, "0001_x.py", clock=clock, sleep=clock.sleep)

    step.backfill("items", update=INC, batch_size=10, pause=0.5)

    assert clock.sleeps == [0.5, 0.5]


def test_progress_reports_rate_and_eta_from_the_clock() -> None:
    db = FakeDB()
    db.seed("items", 40)
    clock = FakeClock()
    events: list[BatchProgress] = []
    step = Step(db, "0001_x.py", clock=clock, sleep=clock.sleep, on_progress=events.append)

    step.backfill("items", where={"v": 1}, update=INC, batch_size=10, pause=1.0)

    second = events[2]  # batch 2: 20 done after 1 s
    assert (second.batch, second.done, second.total) == (2, 20, 40)
    assert second.rate_per_s == pytest.approx(20.0)
    assert second.eta_s == pytest.approx(1.0)


def test_a_dry_run_counts_and_writes_nothing() -> None:
    db = FakeDB()
    items = db.seed("items", 12)
    items.documents[0]["v"] = 2
    step = Step(db, "0001_x.py", dry_run=True)

    result = step.backfill("items", where={"v": 1}, set={"v": 2})

    assert result.matched == 11
    assert step.planned[0].documents == 11
    assert times(items) == [0] * 12


# -- the engine: checkpoints in the run log and resume ----------------------------------------


BACKFILL = """
def up(db, step):
    step.backfill("items", where={"v": 1}, transform=transform, batch_size=10)
    db.calls.append("done")


def down(db, step):
    pass


def transform(doc):
    if doc["_id"] == FAIL_AT and not db_fixed():
        raise ValueError("half-way")
    return {"$set": {"v": 2}, "$inc": {"times": 1}}
"""


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "migrations").mkdir(parents=True)
        self.store = MemoryStore()
        self.db = FakeDB()
        self.fixed = False

    def write(self, filename: str, body: str, fail_at: int = -1) -> None:
        header = f"FAIL_AT = {fail_at}\nimport builtins\n"
        header += "def db_fixed():\n    return builtins.__dict__.get('alley_test_fixed', False)\n"
        (self.root / "migrations" / filename).write_text(header + textwrap.dedent(body))

    def engine(self) -> Engine:
        world = self

        class Store:
            @hookimpl
            def alley_history_store(self, settings: Any, db: Any) -> Any:
                return world.store

        @contextmanager
        def watch(db: Any) -> Iterator[Writes]:
            writes = Writes()
            world.db.writes = writes
            try:
                yield writes
            finally:
                world.db.writes = None

        return Engine(
            load_settings({"path": self.root, "lease": 30, "lock_timeout": 0.001}),
            db=self.db,
            plugins=[("memory", Store())],
            sleep=lambda seconds: None,
            heartbeat=False,
            watch_writes=watch,
        )

    def up(self, **kwargs: Any) -> Any:
        engine = self.engine()
        return api.up(engine.settings, project=engine, **kwargs)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    import builtins

    yield World(tmp_path / "app")
    builtins.__dict__.pop("alley_test_fixed", None)


def test_a_failure_half_way_is_resumable_and_the_next_up_resumes_and_says_so(
    world: World,
) -> None:
    import builtins

    items = world.db.seed("items", 50)
    world.write("0001_backfill.py", BACKFILL, fail_at=25)

    with pytest.raises(MigrationFailed, match="half-way"):
        world.up()

    [attempt] = world.store.read_open()
    assert attempt.event is Event.FAILED
    assert attempt.writes == 0
    assert attempt.checkpoints == (Checkpoint("items#1", 19, 20),)
    status = api.status(world.engine().settings, project=world.engine())
    assert status.statuses[0].attempt is Attempt.RESUMABLE

    builtins.__dict__["alley_test_fixed"] = True
    events: list[BatchProgress] = []
    report = world.up(on_progress=events.append)

    assert [s.filename for s in report.steps] == ["0001_backfill.py"]
    assert "resuming 0001_backfill.py from its checkpoint (20 documents done)" in report.notes
    assert times(items) == [1] * 50
    assert events[0].resumed_from == 20
    assert events[-1].done == 50
    assert world.store.read_open() == []
    assert world.db.calls == ["done"]


def test_writes_outside_the_helpers_make_a_failed_step_wait_for_retry(world: World) -> None:
    world.db.seed("items", 50)
    world.write(
        "0001_backfill.py",
        BACKFILL.replace(
            "def up(db, step):\n", 'def up(db, step):\n    db["log"].insert_one({})\n'
        ),
        fail_at=25,
    )
    with pytest.raises(MigrationFailed):
        world.up()

    [attempt] = world.store.read_open()
    assert attempt.writes == 1
    with pytest.raises(IntegrityError, match="after it wrote"):
        world.up()


def test_the_checkpoints_are_fenced_writes_into_the_open_attempt(world: World) -> None:
    world.db.seed("items", 30)
    world.write("0001_backfill.py", BACKFILL)
    seen: list[tuple[Checkpoint, ...]] = []

    def progress(event: BatchProgress) -> None:
        if event.batch and not event.finished:
            [attempt] = world.store.read_open()
            seen.append(attempt.checkpoints)

    world.up(on_progress=progress)

    assert [c[0].done for c in seen] == [10, 20, 30]
    [*_, succeeded] = world.store.read_log()
    assert succeeded.event is Event.SUCCEEDED
    assert succeeded.checkpoints[0].finished
