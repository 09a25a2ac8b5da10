"""The run engine in-process, on the in-memory store, with clocks the test moves.

Fencing, the failure rules, the pre-flight of plans and gates, required capabilities
and the ordering hook: no server, no process, no sleep.
"""

from __future__ import annotations

import textwrap
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alley import api
from alley.engine import Engine
from alley.errors import (
    DiscoveryError,
    ExitCode,
    IntegrityError,
    LockBusy,
    MigrationFailed,
    PluginError,
)
from alley.hookspecs import hookimpl
from alley.lease import LeaseLost, StepUnrecorded, make_holder
from alley.memory_store import ManualClock, MemoryStore
from alley.model import Attempt, Event, HistoryRecord, Migration
from alley.settings import Settings, load_settings
from alley.write_watch import Writes


class FakeMonotonic:
    """The lease's monotonic clock, moved by the test (and by migrations through ``db``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """One project: a migrations folder, a store, both clocks, and what migrations wrote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "migrations").mkdir(parents=True)
        self.store_clock = ManualClock()
        self.store = MemoryStore(clock=self.store_clock)
        self.monotonic = FakeMonotonic()
        self.data: list[str] = []
        self.writes: dict[str, int | None] = {}  # filename -> writes its failure reports
        self.during: dict[str, Any] = {}  # callbacks migrations call through db.world

    def write(self, filename: str, up: str = "pass", down: str = "pass", header: str = "") -> None:
        body = (
            f"{textwrap.dedent(header)}\n"
            f"def up(db):\n{textwrap.indent(textwrap.dedent(up).strip(), '    ')}\n\n\n"
            f"def down(db):\n{textwrap.indent(textwrap.dedent(down).strip(), '    ')}\n"
        )
        (self.root / "migrations" / filename).write_text(body)

    def settings(self, **overrides: Any) -> Settings:
        return load_settings({"path": self.root, "lease": 30, "lock_timeout": 0.001, **overrides})

    def engine(self, *plugins: tuple[str, object], **overrides: Any) -> Engine:
        world = self

        class Store:
            @hookimpl
            def alley_history_store(self, settings: Any, db: Any) -> Any:
                return world.store

        @contextmanager
        def watch(db: Any) -> Iterator[Writes]:
            yield DataWrites(world)

        return Engine(
            self.settings(**overrides),
            db=self,
            plugins=[("memory", Store()), *plugins],
            clock=self.monotonic,
            sleep=lambda seconds: None,
            heartbeat=False,
            watch_writes=watch,
        )

    def call(self, key: str) -> None:
        """What a migration does 'meanwhile' (``db.call('0001')``), set by the test."""
        callback = self.during.get(key)
        if callback is not None:
            callback()

    def elapse(self, seconds: float) -> None:
        """Time passes for everybody: the store's clock and this machine's."""
        self.store_clock.advance(seconds)
        self.monotonic.now += seconds

    def records(self) -> list[str]:
        return sorted(r.filename for r in self.store.read_records())


class DataWrites(Writes):
    """A step's writes: what it appended to ``world.data`` (PyMongo's monitoring stands
    in for this against a server)."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.start = len(world.data)

    @property  # type: ignore[override]
    def commands(self) -> Counter[str]:
        added = len(self.world.data) - self.start
        return Counter({"insert": added} if added else {})

    @commands.setter
    def commands(self, value: Counter[str]) -> None:
        pass


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "app")


def up(world: World, *plugins: tuple[str, object], **kwargs: Any) -> Any:
    engine = world.engine(*plugins)
    return api.up(engine.settings, project=engine, **kwargs)


# -- the happy path ---------------------------------------------------------------------


def test_up_records_logs_and_releases(world: World) -> None:
    world.write("0001_a.py", up="db.data.append('a')")
    world.write("0002_b.py", up="db.data.append('b')")

    report = up(world)

    assert [s.filename for s in report.steps] == ["0001_a.py", "0002_b.py"]
    assert world.data == ["a", "b"]
    assert world.records() == ["0001_a.py", "0002_b.py"]
    assert [e.event for e in world.store.read_log()] == [Event.SUCCEEDED, Event.SUCCEEDED]
    assert world.store.read_open() == []
    state = world.store.lock_state()
    assert state is not None
    assert state.released


def test_an_ordering_plugin_decides_the_order(world: World) -> None:
    class Reverse:
        @hookimpl
        def alley_order_migrations(self, migrations: list[Migration]) -> list[Migration]:
            return sorted(migrations, key=lambda m: m.id, reverse=True)

    for name in ("0001_a.py", "0002_b.py", "0003_c.py"):
        world.write(name, up=f"db.data.append({name[:4]!r})")

    up(world, ("reverse", Reverse()))

    assert world.data == ["0003", "0002", "0001"]


# -- fencing ------------------------------------------------------------------------------


def test_a_step_that_outlives_the_lease_is_not_recorded_and_nothing_more_is_written(
    world: World,
) -> None:
    world.write("0001_slow.py", up="db.elapse(31)\ndb.data.append('slow')")
    world.write("0002_b.py", up="db.data.append('b')")

    with pytest.raises(StepUnrecorded) as raised:
        up(world)

    assert raised.value.exit_code == ExitCode.LEASE_LOST == 9
    assert "0001_slow.py finished (up) after this run lost the lock" in str(raised.value)
    assert world.data == ["slow"]
    assert world.records() == []  # no record
    assert world.store.read_log() == []  # no outcome
    state = world.store.lock_state()
    assert state is not None
    assert not state.released
    claims = world.store.read_open()  # left for the next run: interrupted, and unstarted
    assert sorted((a.filename, a.event) for a in claims) == [
        ("0001_slow.py", Event.STARTED),
        ("0002_b.py", Event.STARTED),
    ]

    world.elapse(1)
    with pytest.raises(IntegrityError, match=r"0001_slow\.py was interrupted"):
        up(world)


def test_pause_takeover_mark_rerun_resume_leaves_one_record(world: World) -> None:
    """While the first run is 'paused' in its step, the lease lapses, a person decides and
    another run re-applies the step; then the first run's step returns."""

    def meanwhile() -> None:
        world.elapse(31)
        with pytest.raises(IntegrityError, match="interrupted"):
            up(world)
        mark = world.engine()
        api.mark(mark.settings, 1, applied=False, project=mark)
        world.during.clear()  # the re-run's own step runs normally
        up(world)

    world.during["0001"] = meanwhile
    world.write("0001_a.py", up="db.data.append('a')\ndb.call('0001')")
    world.write("0002_b.py", up="db.data.append('b')")

    with pytest.raises(StepUnrecorded):
        up(world)

    assert world.records() == ["0001_a.py", "0002_b.py"]
    assert len(world.store.read_records()) == 2  # one record per migration, never two
    assert world.data == ["a", "a", "b"]  # 0001's code ran twice: why a person decides


def test_a_record_written_meanwhile_by_another_run_is_never_doubled(world: World) -> None:
    # The last line of defence: the fence passed, but another writer recorded the step.
    def meanwhile() -> None:
        migration = world.engine().migrations[0]
        world.store.add_record(HistoryRecord(1, migration.filename, None, migration.checksum))

    world.during["0001"] = meanwhile
    world.write("0001_a.py", up="db.call('0001')")

    with pytest.raises(StepUnrecorded, match="another run recorded it meanwhile"):
        up(world)
    assert len(world.store.read_records()) == 1


def test_a_run_whose_lease_lapsed_between_steps_stops_before_the_next(world: World) -> None:
    world.write("0001_a.py", up="db.data.append('a')")
    world.write("0002_b.py", up="db.data.append('b')")
    calls: list[str] = []

    def on_step(result: Any) -> None:
        calls.append(result.filename)
        world.elapse(31)

    with pytest.raises(LeaseLost):
        up(world, on_step=on_step)
    assert world.data == ["a"]
    assert world.records() == ["0001_a.py"]


def test_the_heartbeat_keeps_the_lease_and_notices_a_takeover(world: World) -> None:
    from alley.lease import acquire

    lease = acquire(world.store, make_holder("up"), lease_s=30, wait_s=0, clock=world.monotonic)
    for _ in range(5):  # renewed every 10 s: a long step keeps its lease
        world.elapse(10)
        assert lease.beat()
    lease.fence()
    world.store.release_lock(lease.generation)  # 'alley unlock --force'
    world.elapse(10)
    assert not lease.beat()
    with pytest.raises(LeaseLost, match="released"):
        lease.fence()


def test_a_busy_lock_is_waited_for_then_named(world: World) -> None:
    world.store.try_lock(make_holder("up"), 30)
    waited: list[Any] = []
    engine = world.engine(lock_timeout=5)
    engine.sleep = world.elapse
    world.write("0001_a.py")

    with pytest.raises(LockBusy, match="held by"):
        api.up(engine.settings, project=engine, on_wait=waited.append)
    assert len(waited) == 1
    assert world.data == []


# -- honest failures -------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["sys.exit(0)", "sys.exit(3)", "raise SystemExit"])
def test_sys_exit_in_a_migration_is_its_failure(world: World, code: str) -> None:
    world.write("0001_a.py", header="import sys", up=code)
    world.write("0002_b.py", up="db.data.append('b')")

    with pytest.raises(MigrationFailed) as raised:
        up(world)

    assert raised.value.exit_code == 1
    assert "0001_a.py failed (up): it called sys.exit(" in str(raised.value)
    assert "0001_a.py:" in str(raised.value)  # file and line
    assert world.data == []
    state = world.store.lock_state()
    assert state is not None
    assert state.released
    [failed] = world.store.read_open()
    assert failed.event is Event.FAILED


def test_a_failed_step_that_wrote_nothing_runs_again(world: World) -> None:
    world.write("0001_a.py", up="raise RuntimeError('not yet')")
    with pytest.raises(MigrationFailed):
        up(world)
    world.write("0001_a.py", up="db.data.append('a')")

    up(world)

    assert world.records() == ["0001_a.py"]
    assert world.store.read_open() == []


def test_a_failed_step_that_wrote_waits_for_retry_or_mark(world: World) -> None:
    world.write("0001_a.py", up="db.data.append('half')\nraise RuntimeError('boom')")
    with pytest.raises(MigrationFailed):
        up(world)
    status = api.status(world.settings(), project=world.engine())
    assert status.statuses[0].attempt is Attempt.FAILED_AFTER_WRITING

    for attempt in (
        lambda: up(world),
        lambda: api.plan_up(world.settings(), project=world.engine()),
        lambda: api.status(world.settings(), check=True, project=world.engine()),
    ):
        with pytest.raises(IntegrityError, match="after it wrote insert"):
            attempt()
    assert world.data == ["half"]

    world.write("0001_a.py", up="db.data.append('whole')")
    up(world, retry=True)
    assert world.data == ["half", "whole"]
    assert world.records() == ["0001_a.py"]


def test_an_idempotent_migration_runs_again_after_writing(world: World) -> None:
    world.write(
        "0001_a.py",
        header="idempotent = True",
        up="db.data.append('x')\nif len(db.data) == 1:\n    raise RuntimeError('once')",
    )
    with pytest.raises(MigrationFailed):
        up(world)
    up(world)
    assert world.records() == ["0001_a.py"]


def test_ctrl_c_leaves_the_step_interrupted_and_releases_the_lock(world: World) -> None:
    world.write("0001_a.py", up="raise KeyboardInterrupt")
    with pytest.raises(KeyboardInterrupt):
        up(world)
    [stopped] = world.store.read_open()
    assert stopped.event is Event.INTERRUPTED
    state = world.store.lock_state()
    assert state is not None
    assert state.released


def test_a_warning_from_a_migration_reaches_the_caller(world: World) -> None:
    world.write("0001_a.py", header="import warnings", up="warnings.warn('mind the index')")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        up(world)
    assert [str(w.message) for w in caught] == ["mind the index"]


# -- the pre-flight: plans and gates fail as the real command does ----------------------------


@pytest.mark.parametrize(
    ("source", "error"),
    [("def up(db):\n    pass\n", r"has no down\(db\)"), ("def up(db) pass\n", "0002_b.py:1")],
    ids=["missing-down", "syntax-error"],
)
def test_plans_gates_and_up_fail_alike_on_a_broken_pending_file(
    world: World, source: str, error: str
) -> None:
    world.write("0001_a.py")
    (world.root / "migrations" / "0002_b.py").write_text(source)
    settings = world.settings()
    commands = {
        "up": lambda: up(world),
        "up --plan": lambda: api.plan_up(settings, project=world.engine()),
        "status --check": lambda: api.status(settings, check=True, project=world.engine()),
        "verify": lambda: api.verify(settings, project=world.engine()),
    }
    for name, command in commands.items():
        with pytest.raises(DiscoveryError, match=error) as raised:
            command()
        assert raised.value.exit_code == 3, name
    assert world.records() == []
    assert world.store.read_log() == []
    state = world.store.lock_state()
    assert state is None or state.released


# -- required capabilities ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "missing"),
    [
        ("filesystem", "discovering migrations"),
        ("ordering", "ordering migrations"),
        ("python", "loading migrations"),
    ],
)
def test_a_missing_capability_fails_every_command_with_exit_8(
    world: World, disabled: str, missing: str
) -> None:
    world.write("0001_a.py")
    engine = world.engine(disable_plugins=(disabled,))
    for command in (
        lambda: api.up(engine.settings, project=engine),
        lambda: api.plan_up(engine.settings, project=engine),
        lambda: api.status(engine.settings, check=True, project=engine),
    ):
        with pytest.raises(PluginError, match=f"no plugin provides {missing}") as raised:
            command()
        assert raised.value.exit_code == 8
    assert world.data == []


def test_no_history_store_is_exit_8(world: World, tmp_path: Path) -> None:
    world.write("0001_a.py")
    settings = load_settings({"path": world.root, "disable_plugins": ("mongo-history",)})
    engine = Engine(settings, db=world)
    with pytest.raises(PluginError, match="no plugin provides a history store"):
        api.status(settings, project=engine)


# -- when a step started ------------------------------------------------------------------


@pytest.mark.parametrize("mark_after_s", [0.0, 3600.0], ids=["slow-start", "quick-start"])
def test_a_step_that_starts_late_writes_its_start_to_its_open_attempt_first(
    world: World, monkeypatch: pytest.MonkeyPatch, mark_after_s: float
) -> None:
    monkeypatch.setattr("alley.engine.MARK_START_AFTER_S", mark_after_s)
    world.write("0001_a.py")
    world.write("0002_b.py", up="db.call('0002')")
    seen: list[Any] = []
    world.during["0002"] = lambda: seen.extend(world.store.read_open())

    api.up(world.settings(), project=world.engine())

    claimed = {e.filename: e for e in seen}["0002_b.py"]
    first = {e.filename: e for e in seen}["0001_a.py"]
    succeeded = {e.filename: e for e in world.store.read_log() if e.event is Event.SUCCEEDED}
    if mark_after_s:  # no write: the claim's time (the run's records tell past it)
        assert claimed.at < succeeded["0002_b.py"].at
    else:  # written before it ran: what its log entry says too
        assert claimed.at == succeeded["0002_b.py"].at > first.at
    assert succeeded["0002_b.py"].at >= succeeded["0001_a.py"].at


def test_mark_applied_leaves_a_003_record_as_it_is(world: World) -> None:
    world.write("0001_a.py")
    old = HistoryRecord(1, "0001_a.py", world.store_clock(), None, {})
    world.store.records.append(old)

    api.mark(world.settings(), 1, applied=True, project=world.engine())

    assert world.store.read_records() == [old]
    assert [e.event for e in world.store.read_log()] == [Event.MARKED_APPLIED]
