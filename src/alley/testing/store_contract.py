"""The contract suite that proves a history store: subclass one class, give it one fixture.

Every promise of :mod:`alley.store` (the protocols ``Records``, ``Lock`` and ``RunLog``,
11 methods, and the optional ``ReplacesRecords``) is a test here, run against your store::

    import functools

    import pytest

    from alley.testing.store_contract import StoreContract
    from my_store import MyStore


    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path):
            return functools.partial(MyStore, tmp_path / "history.db")

``store_factory`` returns a callable that makes a **new handle on the same store** at
each call (a new connection or client to the same file or database). Racing threads
and processes each call it and race through their own handle, as separate alley runs
would. Each test gets a fresh, empty store: a new file or database per test.

Optional, on the subclass:

- ``supports_processes = False`` when the store cannot be shared across processes (the
  in-memory one): the process races then skip, saying so. Otherwise they run with the
  ``process_start_method`` context (``"spawn"`` by default), so the factory must be
  picklable: a module-level class, or ``functools.partial`` of a module-level
  function; each child process calls it to get its own handle.
- an ``advance_clock`` fixture returning ``advance(seconds)`` when the test can move
  the store's clock. Without it, lease-expiry tests take short leases
  (``short_lease_s``, 0.5 s) and poll ``lock_state()`` until the store says the lease
  expired: the store's clock is the judge, never this machine's.
- a ``seed_003_record`` fixture returning ``seed(filename, id, date)`` that writes a
  record the way alley 0.0.3 did (only ``id``, ``filename``, ``date``; no uniqueness:
  a filename may be seeded twice). Without it, the tests of 0.0.3 records skip: a
  store on a new backend never held any.

Times are compared with a tolerance of a millisecond (MongoDB keeps milliseconds), and
must come back timezone-aware UTC.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pytest

from alley.model import (
    Checkpoint,
    Direction,
    Event,
    HistoryRecord,
    Holder,
    LockState,
    LogEntry,
)
from alley.store import (
    ClaimConflict,
    HistoryStore,
    Lock,
    RecordExists,
    Records,
    ReplacesRecords,
    RunLog,
)

StoreFactory = Callable[[], HistoryStore]
AdvanceClock = Callable[[float], None]
Seed003 = Callable[[str, int, datetime], None]

#: A lease that never runs out during a test.
LONG_LEASE_S = 60.0
#: How far a returned time may be from the one written (MongoDB keeps milliseconds).
TOLERANCE = timedelta(milliseconds=1)
#: A time written into entries and records, with microseconds to see truncation.
AT = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

T = TypeVar("T")


# -- values -------------------------------------------------------------------------------


def holder(name: str, command: str = "up") -> Holder:
    """A run: ``name`` plus a random suffix as its ``run_id``."""
    return Holder(
        run_id=f"{name}-{uuid.uuid4().hex[:8]}",
        host=f"host-{name}",
        pid=1000 + len(name),
        user=f"user-{name}",
        alley_version="9.8.7",
        command=command,
    )


def attempt(
    filename: str,
    run: Holder,
    *,
    event: Event = Event.STARTED,
    direction: Direction = Direction.UP,
    generation: int = 1,
    seq: int = 1,
    **fields: Any,
) -> LogEntry:
    """A step's entry (``started`` unless said otherwise), as the engine writes one."""
    return LogEntry(
        step=f"{direction}:{filename}:{run.run_id}",
        event=event,
        migration_id=int(filename.split("_", 1)[0]),
        filename=filename,
        direction=direction,
        at=AT,
        holder=run,
        generation=generation,
        seq=seq,
        **fields,
    )


def record(filename: str, run: Holder | None = None, **fields: Any) -> HistoryRecord:
    """A record as alley writes it, with everything it keeps in ``extra``."""
    run = run or holder("recorder")
    values: dict[str, Any] = {
        "id": int(filename.split("_", 1)[0]),
        "filename": filename,
        "date": AT,
        "checksum": f"sha256:{filename}:{run.run_id}",
        "extra": {
            "duration_s": 1.25,
            "fake": False,
            "alley_version": run.alley_version,
            "host": run.host,
            "user": run.user,
            "pid": run.pid,
            "run_id": run.run_id,
        },
    }
    values.update(fields)
    return HistoryRecord(**values)


# -- assertions ---------------------------------------------------------------------------


def assert_utc(value: datetime | None, what: str) -> None:
    assert isinstance(value, datetime), f"{what} is {value!r}, not a datetime"
    assert value.tzinfo is not None, f"{what} is naive: {value!r} (must be aware UTC)"
    assert value.utcoffset() == timedelta(0), f"{what} is not UTC: {value!r}"


def assert_close(actual: datetime | None, expected: datetime, what: str) -> None:
    assert_utc(actual, what)
    assert actual is not None
    assert abs(actual - expected) <= TOLERANCE, f"{what}: wrote {expected}, read {actual}"


def assert_same_record(actual: HistoryRecord, expected: HistoryRecord) -> None:
    """Equal fields, ``date`` within :data:`TOLERANCE`; ``extra`` keeps every key written
    (a store may add keys of its own)."""
    assert (actual.id, actual.filename, actual.checksum) == (
        expected.id,
        expected.filename,
        expected.checksum,
    ), f"read {actual}, wrote {expected}"
    if expected.date is None:
        assert actual.date is None
    else:
        assert_close(actual.date, expected.date, f"{expected.filename} date")
    written = dict(expected.extra)
    kept = {key: actual.extra.get(key, "<missing>") for key in written}
    assert kept == written, f"{expected.filename} extra: wrote {written}, read {actual.extra}"


def assert_same_entries(actual: Sequence[LogEntry], expected: Sequence[LogEntry]) -> None:
    """The same entries in the same order; each field equal, ``at`` within tolerance."""
    assert len(actual) == len(expected), f"read {len(actual)} entries, expected {len(expected)}"
    for index, (read, written) in enumerate(zip(actual, expected, strict=True)):
        assert_close(read.at, written.at, f"entry {index} ({written.step}) at")
        assert dataclasses.replace(read, at=written.at) == written, (
            f"entry {index}: read {read}, expected {written}"
        )


def assert_open(store: HistoryStore, expected: Iterable[LogEntry]) -> None:
    """``read_open()`` is exactly ``expected`` (any order)."""
    expected = sorted(expected, key=lambda entry: entry.filename)
    actual = sorted(store.read_open(), key=lambda entry: entry.filename)
    assert [e.filename for e in actual] == [e.filename for e in expected], "open attempts"
    assert_same_entries(actual, expected)


def assert_state(state: LockState | None, generation: int, run: Holder) -> LockState:
    """``state`` is ``generation``, held (not released) by ``run``, its times aware UTC."""
    assert state is not None, "no lock state"
    assert (state.generation, state.holder.run_id) == (generation, run.run_id), (
        f"generation {state.generation} held by {state.holder.run_id}; "
        f"expected {generation} held by {run.run_id}"
    )
    assert state.holder == run
    assert not state.released
    for name in ("acquired_at", "heartbeat_at", "server_now"):
        assert_utc(getattr(state, name), f"LockState.{name}")
    return state


def filenames(records: Iterable[HistoryRecord]) -> list[str]:
    return sorted(r.filename for r in records)


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """``work(0)`` ... ``work(count - 1)``, each in its own thread; their results."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(work, index) for index in range(count)]
        return [future.result(timeout=300) for future in futures]


# -- one racer ------------------------------------------------------------------------------

SHARED = "0001_shared.py"


def _own(index: int) -> str:
    return f"{index + 100:04}_own.py"


def race_once(store: HistoryStore, race: str, index: int) -> tuple[str, str]:
    """One racer's single attempt: ``("won", ...)`` or ``("lost", what it saw)``.

    ``lock``: take the free lock; ``claim``: claim a plan ``[own file, SHARED]``;
    ``record``: record ``SHARED``.
    """
    run = holder(f"racer{index}")
    if race == "lock":
        state = store.try_lock(run, LONG_LEASE_S)
        seen = f"{state.generation}:{state.holder.run_id}"
        return ("won" if state.holder.run_id == run.run_id else "lost", seen)
    if race == "claim":
        try:
            store.open_attempts([attempt(_own(index), run), attempt(SHARED, run)])
        except ClaimConflict as conflict:
            return ("lost", conflict.filename)
        return ("won", run.run_id)
    if race == "record":
        try:
            store.add_record(record(SHARED, run))
        except RecordExists as exists:
            return ("lost", exists.filename)
        return ("won", run.run_id)
    raise ValueError(race)


RACES = ("lock", "claim", "record")


def race_in_process(factory: StoreFactory, index: int, barrier: Any, results: Any) -> None:
    """A child process: its own handle from ``factory``, then each of :data:`RACES`, all
    children starting each race together at ``barrier``. Errors go to the parent."""
    try:
        store = factory()
    except BaseException as error:
        barrier.abort()  # the others stop waiting for this one
        for race in RACES:
            results.put((race, index, "error", f"store_factory(): {error!r}"))
        return
    for race in RACES:
        try:
            barrier.wait()
            outcome = race_once(store, race, index)
        except BaseException as error:
            outcome = ("error", f"{type(error).__name__}: {error}")
        results.put((race, index, *outcome))


# -- the suite ------------------------------------------------------------------------------


class StoreContract:
    """Subclass as ``Test...`` with a ``store_factory`` fixture; see the module's docs."""

    #: Whether handles in other processes share the store (False: process tests skip).
    supports_processes: ClassVar[bool] = True
    #: The multiprocessing start method of the process races.
    process_start_method: ClassVar[str] = "spawn"
    #: How many threads, or processes, race.
    racers: ClassVar[int] = 8
    #: The lease of expiry tests when there is no ``advance_clock``.
    short_lease_s: ClassVar[float] = 0.5
    #: The longest wait for the store's clock to let a lease expire (or time pass).
    clock_wait_s: ClassVar[float] = 30.0

    # -- fixtures a store gives ------------------------------------------------------------

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Override: a callable returning a new handle on one fresh store."""
        raise NotImplementedError(
            f"{type(self).__name__} must define the store_factory fixture "
            "(see alley.testing.store_contract)"
        )

    @pytest.fixture
    def advance_clock(self) -> AdvanceClock | None:
        """Override to move the store's clock: ``advance(seconds)``."""
        return None

    @pytest.fixture
    def seed_003_record(self) -> Seed003 | None:
        """Override to write a record as alley 0.0.3 did: ``seed(filename, id, date)``."""
        return None

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> HistoryStore:
        return store_factory()

    @pytest.fixture
    def seed(self, seed_003_record: Seed003 | None) -> Seed003:
        if seed_003_record is None:
            pytest.skip(
                f"{type(self).__name__} has no seed_003_record fixture: "
                "this store holds no records written by alley 0.0.3"
            )
        return seed_003_record

    # -- time on the store's clock ---------------------------------------------------------

    def lease(self, advance_clock: AdvanceClock | None) -> float:
        """A lease that a test will let run out."""
        return LONG_LEASE_S if advance_clock is not None else self.short_lease_s

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.clock_wait_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {self.clock_wait_s}s for {what}")
            time.sleep(0.02)

    def expire(self, store: HistoryStore, advance_clock: AdvanceClock | None) -> None:
        """Let the newest generation's lease run out, on the store's clock."""
        state = store.lock_state()
        assert state is not None
        if advance_clock is not None:
            advance_clock(max(state.expires_in_s, 0.0))
        else:
            self.wait_for(lambda: _current(store).expired, "the lease to expire")
        assert _current(store).expired, "the lease did not expire on the store's clock"

    def let_time_pass(
        self, store: HistoryStore, advance_clock: AdvanceClock | None, seconds: float
    ) -> None:
        """Let ``seconds`` pass on the store's clock (read through ``lock_state``)."""
        start = _current(store).server_now
        if advance_clock is not None:
            advance_clock(seconds)
        else:
            self.wait_for(
                lambda: _current(store).server_now - start >= timedelta(seconds=seconds),
                f"{seconds}s to pass on the store's clock",
            )

    # -- the protocols ---------------------------------------------------------------------

    def test_the_store_implements_the_three_protocols(self, store: HistoryStore) -> None:
        for protocol in (Records, Lock, RunLog, HistoryStore):
            assert isinstance(store, protocol), f"not a {protocol.__name__}"

    # -- Records -----------------------------------------------------------------------------

    def test_a_new_store_has_no_records(self, store: HistoryStore) -> None:
        assert store.read_records() == []

    def test_a_record_reads_back_with_every_field(self, store: HistoryStore) -> None:
        written = record(
            "0007_everything.py",
            extra={
                "duration_s": 12.5,
                "fake": True,
                "alley_version": "1.2.3",
                "host": "web-1.example",
                "user": "ada",
                "pid": 4242,
                "run_id": "3f2a9c",
                "marked": True,
                "plugin_key": {"nested": [1, "two", None]},
            },
        )

        store.add_record(written)

        [read] = store.read_records()
        assert_same_record(read, written)

    def test_records_of_many_migrations_read_back_together(self, store: HistoryStore) -> None:
        written = [record(f"{n:04}_step.py", date=AT + timedelta(seconds=n)) for n in (1, 2, 3)]
        for each in written:
            store.add_record(each)

        read = {r.filename: r for r in store.read_records()}

        assert sorted(read) == filenames(written)
        for each in written:
            assert_same_record(read[each.filename], each)

    def test_adding_a_record_twice_raises_record_exists_and_keeps_the_first(
        self, store: HistoryStore
    ) -> None:
        first = record("0001_a.py", holder("first"))
        second = record("0001_a.py", holder("second"), id=1, date=AT + timedelta(hours=1))
        store.add_record(first)

        with pytest.raises(RecordExists) as raised:
            store.add_record(second)

        assert raised.value.filename == "0001_a.py"
        [read] = store.read_records()
        assert_same_record(read, first)

    def test_remove_record_forgets_that_migration_only(self, store: HistoryStore) -> None:
        a, b = record("0001_a.py"), record("0002_b.py")
        store.add_record(a)
        store.add_record(b)
        [read_a] = [r for r in store.read_records() if r.filename == a.filename]

        store.remove_record(read_a)

        assert filenames(store.read_records()) == ["0002_b.py"]
        store.add_record(a)  # recorded again (an up after a down)
        assert filenames(store.read_records()) == ["0001_a.py", "0002_b.py"]
        store.remove_record(record("0001_a.py"))  # a record not read from the store
        assert filenames(store.read_records()) == ["0002_b.py"]

    def test_removing_a_record_that_is_not_there_is_not_an_error(self, store: HistoryStore) -> None:
        store.remove_record(record("0001_a.py"))
        store.add_record(record("0002_b.py"))
        store.remove_record(record("0001_a.py"))

        assert filenames(store.read_records()) == ["0002_b.py"]

    def test_threads_adding_one_record_at_once_record_it_once(
        self, store_factory: StoreFactory
    ) -> None:
        barrier = threading.Barrier(self.racers, timeout=60)

        def add(index: int) -> tuple[str, str]:
            handle = store_factory()
            barrier.wait()
            return race_once(handle, "record", index)

        outcomes = in_threads(self.racers, add)

        winners = [seen for status, seen in outcomes if status == "won"]
        assert len(winners) == 1, outcomes
        assert sorted(outcomes)[:-1] == [("lost", SHARED)] * (self.racers - 1), outcomes
        [read] = store_factory().read_records()
        assert read.filename == SHARED
        assert read.extra.get("run_id") == winners[0]

    # -- dates only move forward (alley 0.0.3's down takes the newest-dated as the last) ---

    def test_a_record_dated_after_the_others_keeps_its_date(self, store: HistoryStore) -> None:
        store.add_record(record("0001_a.py", date=AT))
        later = record("0002_b.py", date=AT + timedelta(seconds=1))

        store.add_record(later)

        read = {r.filename: r for r in store.read_records()}
        assert_same_record(read["0002_b.py"], later)

    def test_a_record_dated_before_the_newest_is_dated_a_millisecond_after_it(
        self, store: HistoryStore
    ) -> None:
        # The store's clock behind the one that dated the newest record (0.0.3's client).
        ahead = AT + timedelta(seconds=120)
        store.add_record(record("0001_a.py", date=ahead))

        store.add_record(record("0002_b.py", date=AT))

        read = {r.filename: r for r in store.read_records()}
        first, second = read["0001_a.py"].date, read["0002_b.py"].date
        assert first is not None
        assert second is not None
        assert_close(second, ahead + timedelta(milliseconds=1), "the later record's date")
        assert second > first, f"{second} is not after {first}"

    def test_a_record_dated_the_same_millisecond_as_the_newest_is_dated_after_it(
        self, store: HistoryStore
    ) -> None:
        store.add_record(record("0001_a.py", date=AT))

        store.add_record(record("0002_b.py", date=AT))
        store.add_record(record("0003_c.py", date=AT))

        dates = {r.filename: r.date for r in store.read_records()}
        assert dates["0001_a.py"] is not None
        assert dates["0002_b.py"] is not None
        assert dates["0003_c.py"] is not None
        assert dates["0001_a.py"] < dates["0002_b.py"] < dates["0003_c.py"], dates
        assert_close(dates["0003_c.py"], AT + timedelta(milliseconds=2), "0003_c.py date")

    def test_a_new_handle_dates_a_record_after_the_newest_another_wrote(
        self, store_factory: StoreFactory
    ) -> None:
        ahead = AT + timedelta(seconds=120)
        store_factory().add_record(record("0001_a.py", date=ahead))
        reader = store_factory()
        reader.read_records()  # read first, as a run does under the lock
        fresh = store_factory()  # or not at all

        reader.add_record(record("0002_b.py", date=AT))
        fresh.add_record(record("0003_c.py", date=AT))

        dates = {r.filename: r.date for r in store_factory().read_records()}
        for filename in ("0002_b.py", "0003_c.py"):
            date = dates[filename]
            assert date is not None, filename
            assert date > ahead, f"{filename}: {date} is not after {ahead}"

    def test_replace_record_keeps_the_old_records_date(self, store: HistoryStore) -> None:
        if not isinstance(store, ReplacesRecords):
            pytest.skip(f"{type(store).__name__} has no replace_record (it is optional)")
        old = record("0001_a.py", date=AT)
        store.add_record(old)
        store.add_record(record("0002_b.py", date=AT + timedelta(seconds=5)))
        [read_old] = [r for r in store.read_records() if r.filename == old.filename]
        edited = record("0001_a.py", checksum="v1:edited", date=AT + timedelta(hours=1))
        renamed = record("0001_renamed.py", checksum="v1:renamed", date=AT + timedelta(hours=1))

        store.replace_record(read_old, edited)
        [read_edited] = [r for r in store.read_records() if r.filename == "0001_a.py"]
        store.replace_record(read_edited, renamed)

        read = {r.filename: r for r in store.read_records()}
        assert sorted(read) == ["0001_renamed.py", "0002_b.py"]
        assert_same_record(read["0001_renamed.py"], dataclasses.replace(renamed, date=AT))

    # -- records alley 0.0.3 wrote ------------------------------------------------------------

    def test_a_003_record_reads_as_it_was_written(self, store: HistoryStore, seed: Seed003) -> None:
        seed("0001_first.py", 1, AT)

        [read] = store.read_records()

        assert (read.id, read.filename, read.checksum) == (1, "0001_first.py", None)
        assert_close(read.date, AT, "0.0.3 date")

    def test_a_003_filename_recorded_twice_reads_as_applied(
        self, store: HistoryStore, seed: Seed003
    ) -> None:
        # 0.0.3 had no lock: two runs at once could record one migration twice.
        seed("0001_first.py", 1, AT)
        seed("0001_first.py", 1, AT + timedelta(seconds=1))

        assert set(filenames(store.read_records())) == {"0001_first.py"}

    def test_a_record_is_dated_after_a_003_record_dated_ahead(
        self, store_factory: StoreFactory, seed: Seed003
    ) -> None:
        # 0.0.3 dated records with its client's clock, here two minutes ahead.
        ahead = AT + timedelta(seconds=120)
        seed("0001_first.py", 1, ahead)

        store_factory().add_record(record("0002_second.py", date=AT))

        dates = {r.filename: r.date for r in store_factory().read_records()}
        second = dates["0002_second.py"]
        assert second is not None
        assert second > ahead, f"{second} is not after {ahead}"

    def test_replace_record_of_a_003_record_keeps_its_date(
        self, store: HistoryStore, seed: Seed003
    ) -> None:
        if not isinstance(store, ReplacesRecords):
            pytest.skip(f"{type(store).__name__} has no replace_record (it is optional)")
        seed("0001_first.py", 1, AT)
        seed("0002_second.py", 2, AT + timedelta(seconds=1))
        [old] = [r for r in store.read_records() if r.filename == "0001_first.py"]

        store.replace_record(old, record("0001_renamed.py", date=AT + timedelta(hours=1)))

        read = {r.filename: r for r in store.read_records()}
        assert sorted(read) == ["0001_renamed.py", "0002_second.py"]
        assert_close(read["0001_renamed.py"].date, AT, "the renamed record's date")

    def test_remove_record_removes_every_record_of_a_filename(
        self, store: HistoryStore, seed: Seed003
    ) -> None:
        seed("0001_first.py", 1, AT)
        seed("0001_first.py", 1, AT + timedelta(seconds=1))
        seed("0002_second.py", 2, AT)
        first = next(r for r in store.read_records() if r.filename == "0001_first.py")

        store.remove_record(first)

        assert filenames(store.read_records()) == ["0002_second.py"]

    # -- Lock -----------------------------------------------------------------------------------

    def test_a_lock_never_taken_has_no_state(self, store: HistoryStore) -> None:
        assert store.lock_state() is None

    def test_try_lock_on_a_free_lock_takes_generation_1(self, store: HistoryStore) -> None:
        run = holder("first")

        taken = store.try_lock(run, LONG_LEASE_S)

        assert_state(taken, 1, run)
        assert taken.lease_s == LONG_LEASE_S
        assert taken.acquired_at == taken.heartbeat_at
        assert taken.heartbeat_at <= taken.server_now + TOLERANCE  # taken now, not later
        assert not taken.free
        read = assert_state(store.lock_state(), 1, run)
        assert (read.acquired_at, read.heartbeat_at, read.lease_s) == (
            taken.acquired_at,
            taken.heartbeat_at,
            taken.lease_s,
        )

    def test_a_held_lock_is_not_taken_by_another(self, store: HistoryStore) -> None:
        first, second = holder("first"), holder("second")
        store.try_lock(first, LONG_LEASE_S)

        refused = store.try_lock(second, LONG_LEASE_S)
        again = store.try_lock(first, LONG_LEASE_S)  # its holder trying again: no new one

        assert_state(refused, 1, first)
        assert_state(again, 1, first)
        assert_state(store.lock_state(), 1, first)

    def test_renew_lock_is_true_for_the_holder_and_moves_the_heartbeat(
        self, store: HistoryStore, advance_clock: AdvanceClock | None
    ) -> None:
        run = holder("first")
        taken = store.try_lock(run, LONG_LEASE_S)
        passed = 5.0 if advance_clock is not None else 0.05
        self.let_time_pass(store, advance_clock, passed)

        renewed = store.renew_lock(1)

        assert renewed is True
        state = assert_state(store.lock_state(), 1, run)
        assert state.acquired_at == taken.acquired_at
        # The lease now runs from the renewal: the heartbeat moved by the time that passed.
        assert state.heartbeat_at - taken.heartbeat_at >= timedelta(seconds=passed) - TOLERANCE
        assert state.heartbeat_at <= state.server_now + TOLERANCE

    def test_release_frees_the_lock_for_the_next_generation(self, store: HistoryStore) -> None:
        first, second = holder("first"), holder("second")
        store.try_lock(first, LONG_LEASE_S)

        store.release_lock(1)

        released = store.lock_state()
        assert released is not None
        assert (released.generation, released.holder, released.released) == (1, first, True)
        assert released.free
        assert store.renew_lock(1) is False
        assert_state(store.try_lock(second, LONG_LEASE_S), 2, second)
        store.release_lock(1)  # again, now that 2 is newer: nothing happens
        assert_state(store.lock_state(), 2, second)

    def test_an_expired_lease_can_be_taken_over(
        self, store: HistoryStore, advance_clock: AdvanceClock | None
    ) -> None:
        first, second = holder("first"), holder("second")
        lease_s = self.lease(advance_clock)
        store.try_lock(first, lease_s)
        if advance_clock is not None:  # one second before the end it is still held
            advance_clock(lease_s - 1)
            assert_state(store.try_lock(second, LONG_LEASE_S), 1, first)

        self.expire(store, advance_clock)
        taken = store.try_lock(second, LONG_LEASE_S)

        assert_state(taken, 2, second)
        assert_state(store.lock_state(), 2, second)

    def test_release_of_an_old_generation_does_not_release_the_newest(
        self, store: HistoryStore, advance_clock: AdvanceClock | None
    ) -> None:
        first, second, third = holder("first"), holder("second"), holder("third")
        store.try_lock(first, self.lease(advance_clock))
        self.expire(store, advance_clock)
        store.try_lock(second, LONG_LEASE_S)

        store.release_lock(1)  # the first run, not knowing it lost the lock, releases

        assert_state(store.lock_state(), 2, second)
        assert_state(store.try_lock(third, LONG_LEASE_S), 2, second)
        assert store.renew_lock(2) is True

    def test_renew_lock_of_a_generation_that_is_not_the_newest_is_false(
        self, store: HistoryStore
    ) -> None:
        assert store.renew_lock(1) is False  # never taken
        run = holder("first")
        store.try_lock(run, LONG_LEASE_S)

        assert store.renew_lock(2) is False
        assert store.renew_lock(0) is False
        assert_state(store.lock_state(), 1, run)

    def test_lock_times_are_aware_utc_on_the_stores_clock_and_it_advances(
        self, store: HistoryStore, advance_clock: AdvanceClock | None
    ) -> None:
        taken = store.try_lock(holder("first"), LONG_LEASE_S)
        before = _current(store)
        passed = 5.0 if advance_clock is not None else 0.05

        self.let_time_pass(store, advance_clock, passed)

        after = _current(store)
        for state in (taken, before, after):
            for name in ("acquired_at", "heartbeat_at", "server_now"):
                assert_utc(getattr(state, name), f"LockState.{name}")
        assert before.server_now >= taken.heartbeat_at - TOLERANCE
        assert after.server_now - before.server_now >= timedelta(seconds=passed) - TOLERANCE
        assert after.expires_in_s < before.expires_in_s

    def test_threads_racing_for_the_lock_take_each_generation_once(
        self, store_factory: StoreFactory
    ) -> None:
        rounds = 5
        barrier = threading.Barrier(self.racers, timeout=60)
        seen: list[list[tuple[int, int, str]]] = [[] for _ in range(rounds)]
        wins: list[list[tuple[int, str]]] = [[] for _ in range(rounds)]

        def contend(index: int) -> None:
            handle = store_factory()
            for round_ in range(rounds):
                run = holder(f"racer{index}")
                barrier.wait()  # everybody tries at once, on a free lock
                state = handle.try_lock(run, LONG_LEASE_S)
                won = state.holder.run_id == run.run_id and not state.released
                seen[round_].append((index, state.generation, state.holder.run_id))
                if won:
                    wins[round_].append((state.generation, run.run_id))
                barrier.wait()  # everybody tried; the winner releases
                if won:
                    handle.release_lock(state.generation)

        in_threads(self.racers, contend)

        for round_, (winners, views) in enumerate(zip(wins, seen, strict=True)):
            assert len(winners) == 1, f"round {round_}: {len(winners)} holders: {winners}"
            [(generation, run_id)] = winners
            assert generation == round_ + 1
            # Everybody saw the winner: the newest generation as it now is.
            assert {(g, r) for _, g, r in views} == {(generation, run_id)}, views
        state = store_factory().lock_state()
        assert state is not None
        assert (state.generation, state.released) == (rounds, True)

    def test_processes_racing_for_the_lock_a_claim_and_a_record_win_once(
        self, store_factory: StoreFactory
    ) -> None:
        if not self.supports_processes:
            pytest.skip(
                f"{type(self).__name__}.supports_processes is False: "
                "this store cannot be shared across processes"
            )
        outcomes = self.race_in_processes(store_factory)

        errors = [o for o in outcomes if o[2] == "error"]
        assert not errors, errors
        store = store_factory()
        for race in RACES:
            mine = [o for o in outcomes if o[0] == race]
            winners = [o for o in mine if o[2] == "won"]
            assert len(winners) == 1, f"{race}: {len(winners)} processes won: {mine}"
            [(_, index, _, detail)] = winners
            losers = sorted(o[3] for o in mine if o[2] == "lost")
            if race == "lock":
                state = store.lock_state()
                assert state is not None
                assert (state.generation, state.holder.run_id) == (1, detail.split(":", 1)[1])
                assert losers == [detail] * (self.racers - 1), f"lock: losers saw {losers}"
            elif race == "claim":
                assert losers == [SHARED] * (self.racers - 1), f"claim: {losers}"
                open_ = store.read_open()
                assert sorted(e.filename for e in open_) == [SHARED, _own(index)], open_
                assert {e.holder.run_id for e in open_} == {detail}
            else:
                assert losers == [SHARED] * (self.racers - 1), f"record: {losers}"
                [read] = store.read_records()
                assert read.extra.get("run_id") == detail

    def race_in_processes(self, factory: StoreFactory) -> list[tuple[str, int, str, str]]:
        """``racers`` processes that each call ``factory`` and run :data:`RACES`; their
        outcomes ``(race, index, "won" | "lost" | "error", detail)``."""
        # Any: typeshed's BaseContext lacks Process (only the concrete contexts have it).
        context: Any = multiprocessing.get_context(self.process_start_method)
        barrier = context.Barrier(self.racers, timeout=120)
        results = context.Queue()
        processes = [
            context.Process(
                target=race_in_process, args=(factory, index, barrier, results), daemon=True
            )
            for index in range(self.racers)
        ]
        try:
            for process in processes:
                try:
                    process.start()
                except (pickle.PicklingError, AttributeError, TypeError) as error:
                    pytest.fail(
                        f"store_factory cannot be sent to a {self.process_start_method!r} "
                        f"process ({error}): make it picklable (a module-level class, or "
                        "functools.partial of a module-level function), or set "
                        "supports_processes = False"
                    )
            return [results.get(timeout=300) for _ in range(len(processes) * len(RACES))]
        finally:
            barrier.abort()  # a child still waiting (the parent failed) stops now
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
                    process.join()

    # -- fencing: what makes a paused run harmless -------------------------------------------

    def test_after_a_takeover_the_old_holder_cannot_renew(
        self, store: HistoryStore, advance_clock: AdvanceClock | None
    ) -> None:
        first, second = holder("first"), holder("second")
        store.try_lock(first, self.lease(advance_clock))
        self.expire(store, advance_clock)
        store.try_lock(second, LONG_LEASE_S)

        assert store.renew_lock(1) is False
        assert store.renew_lock(1) is False  # and stays lost
        assert store.renew_lock(2) is True
        assert_state(store.lock_state(), 2, second)

    def test_a_run_that_lost_the_lock_cannot_record_what_the_new_holder_did(
        self, store: HistoryStore, advance_clock: AdvanceClock | None
    ) -> None:
        first, second = holder("first"), holder("second")
        store.try_lock(first, self.lease(advance_clock))
        self.expire(store, advance_clock)  # the first run is paused past its lease
        store.try_lock(second, LONG_LEASE_S)
        store.add_record(record("0001_a.py", second))

        with pytest.raises(RecordExists):  # the first run wakes up and records too
            store.add_record(record("0001_a.py", first))

        [read] = store.read_records()
        assert read.extra.get("run_id") == second.run_id

    # -- RunLog ---------------------------------------------------------------------------------

    def test_a_new_store_has_no_log_and_no_open_attempts(self, store: HistoryStore) -> None:
        assert store.read_log() == []
        assert store.read_open() == []

    def test_open_attempts_opens_one_per_claim(self, store: HistoryStore) -> None:
        run = holder("run")
        claims = [attempt(f"{n:04}_step.py", run, seq=n) for n in (1, 2, 3)]

        store.open_attempts(claims)
        store.open_attempts([])  # nothing to claim: nothing happens

        assert_open(store, claims)
        assert store.read_log() == []  # claims are not log entries

    def test_open_attempts_is_all_or_nothing_on_a_conflict(self, store: HistoryStore) -> None:
        other, run, later = holder("other"), holder("run"), holder("later")
        held = attempt("0002_b.py", other)
        store.open_attempts([held])
        claims = [
            attempt("0001_a.py", run, seq=1),
            attempt("0003_c.py", run, seq=2),
            attempt("0002_b.py", run, seq=3),
        ]

        with pytest.raises(ClaimConflict) as raised:
            store.open_attempts(claims)

        assert raised.value.filename == "0002_b.py"
        assert_open(store, [held])  # none of this call's claims; the other run's stays
        free = [attempt("0001_a.py", later), attempt("0003_c.py", later)]
        store.open_attempts(free)  # what did not conflict was left free
        assert_open(store, [held, *free])

    def test_a_closed_attempt_can_be_claimed_again(self, store: HistoryStore) -> None:
        first, second = holder("first"), holder("second")
        claim = attempt("0001_a.py", first)
        store.open_attempts([claim])
        with pytest.raises(ClaimConflict):
            store.open_attempts([attempt("0001_a.py", second)])

        store.log([dataclasses.replace(claim, event=Event.SUCCEEDED)], close=["0001_a.py"])
        again = attempt("0001_a.py", second, direction=Direction.DOWN)
        store.open_attempts([again])

        assert_open(store, [again])

    def test_threads_claiming_one_filename_at_once_open_it_once(
        self, store_factory: StoreFactory
    ) -> None:
        barrier = threading.Barrier(self.racers, timeout=60)

        def claim(index: int) -> tuple[str, str]:
            handle = store_factory()
            barrier.wait()
            return race_once(handle, "claim", index)

        outcomes = in_threads(self.racers, claim)

        winners = [index for index, (status, _) in enumerate(outcomes) if status == "won"]
        assert len(winners) == 1, outcomes
        [winner] = winners
        assert sorted(outcomes)[:-1] == [("lost", SHARED)] * (self.racers - 1), outcomes
        open_ = store_factory().read_open()
        assert sorted(e.filename for e in open_) == [SHARED, _own(winner)]  # no loser's own
        assert {e.holder.run_id for e in open_} == {outcomes[winner][1]}

    def test_log_appends_closes_and_keeps_open(self, store: HistoryStore) -> None:
        run = holder("run")
        a, b = attempt("0001_a.py", run, seq=1), attempt("0002_b.py", run, seq=2)
        store.open_attempts([a, b])
        succeeded = dataclasses.replace(a, event=Event.SUCCEEDED, duration_s=0.5)
        failed = dataclasses.replace(b, event=Event.FAILED, duration_s=0.25, error="boom")
        interrupted = attempt("0003_c.py", run, event=Event.INTERRUPTED, seq=3)

        store.log(
            [succeeded, failed, interrupted],
            close=["0001_a.py", "0009_never_open.py"],
            keep_open=[failed, interrupted],  # replaces b's attempt; opens c's
        )

        assert_same_entries(store.read_log(), [succeeded, failed, interrupted])
        assert_open(store, [failed, interrupted])
        store.log([], close=["0002_b.py", "0003_c.py"])  # decided: closed, nothing logged
        assert store.read_open() == []
        assert_same_entries(store.read_log(), [succeeded, failed, interrupted])

    def test_read_log_is_ordered_by_generation_then_seq(self, store: HistoryStore) -> None:
        run = holder("run")
        g2s1 = attempt("0004_d.py", run, event=Event.SUCCEEDED, generation=2, seq=1)
        g1s2 = attempt("0002_b.py", run, event=Event.SUCCEEDED, generation=1, seq=2)
        g1s1 = attempt("0001_a.py", run, event=Event.SUCCEEDED, generation=1, seq=1)
        g10s0 = attempt("0003_c.py", run, event=Event.MARKED_PENDING, generation=10, seq=0)

        store.log([g2s1])
        store.log([g10s0, g1s2])
        store.log([g1s1])

        assert_same_entries(store.read_log(), [g1s1, g1s2, g2s1, g10s0])

    def test_the_log_is_append_only(self, store: HistoryStore) -> None:
        run, decider = holder("run"), holder("decider", command="mark")
        failed = attempt("0001_a.py", run, event=Event.FAILED, error="boom", duration_s=1.0)
        store.log([failed], keep_open=[failed])
        # A crash between appending and settling: the retry logs the outcome again.
        store.log([failed], keep_open=[failed])
        decision = attempt(
            "0001_a.py",
            decider,
            event=Event.MARKED_PENDING,
            generation=2,
            resolves=(failed.step,),
        )

        store.log([decision], close=["0001_a.py"])

        assert_same_entries(store.read_log(), [failed, failed, decision])
        assert store.read_open() == []

    def test_a_log_entry_reads_back_with_every_field(self, store: HistoryStore) -> None:
        run = Holder(
            run_id="3f2a9c0d1e2f",
            host="web-1.example.com",
            pid=4242,
            user="ada",
            alley_version="1.2.3",
            command="down",
        )
        everything = LogEntry(
            step=f"down:0042_everything.py:{run.run_id}",
            event=Event.FAILED,
            migration_id=42,
            filename="0042_everything.py",
            direction=Direction.DOWN,
            at=AT,
            holder=run,
            checksum="sha256:0123456789abcdef",
            duration_s=12.375,
            fake=True,
            error="ValueError: no 'users' in db",
            resolves=("up:0041_a.py:r1", "up:0040_b.py:r2"),
            generation=7,
            seq=3,
            writes=5,
        )
        kept = dataclasses.replace(everything, seq=4, writes=0, error="again")

        store.open_attempts([everything])
        assert_open(store, [everything])
        store.log([everything], keep_open=[kept])

        assert_same_entries(store.read_log(), [everything])
        assert_open(store, [kept])

    def test_every_event_direction_and_writes_count_reads_back(self, store: HistoryStore) -> None:
        run = holder("run")
        writes_counts = itertools.cycle([None, 0, 3])
        entries = [
            attempt(
                f"{n + 1:04}_step.py",
                run,
                event=event,
                direction=direction,
                seq=n,
                writes=next(writes_counts),
                fake=n % 2 == 0,
            )
            for n, (event, direction) in enumerate(itertools.product(Event, Direction))
        ]

        store.log(entries)

        assert_same_entries(store.read_log(), entries)

    def test_checkpoints_round_trip_in_open_attempts_and_the_log(self, store: HistoryStore) -> None:
        """A step's batch helpers checkpoint into its open attempt after each batch
        (``log([], keep_open=[...])``); their ``last_id`` is any BSON value."""
        from bson import ObjectId

        run = holder("run")
        claim = attempt("0003_backfill.py", run)
        first = dataclasses.replace(
            claim,
            writes=0,
            checkpoints=(Checkpoint("users#1", ObjectId("65a1b2c3d4e5f60718293a4b"), 1000),),
        )
        later = dataclasses.replace(
            first,
            checkpoints=(
                Checkpoint("users#1", ObjectId("65a1b2c3d4e5f60718293a4c"), 2000, finished=True),
                Checkpoint("orders", 41, 7),
                Checkpoint("names#3", "zoe", 3),
            ),
        )
        store.open_attempts([claim])
        store.log([], keep_open=[first])
        assert_open(store, [first])
        store.log([], keep_open=[later])
        assert_open(store, [later])

        failed = dataclasses.replace(later, event=Event.FAILED, seq=2, error="boom")
        store.log([failed], keep_open=[failed])

        assert_same_entries(store.read_log(), [failed])
        assert_open(store, [failed])
        assert store.read_open()[0].checkpoints[0].last_id == ObjectId("65a1b2c3d4e5f60718293a4c")


def _current(store: HistoryStore) -> LockState:
    state = store.lock_state()
    assert state is not None, "the lock was never taken"
    return state


__all__ = [
    "AT",
    "LONG_LEASE_S",
    "TOLERANCE",
    "StoreContract",
    "attempt",
    "holder",
    "record",
]
