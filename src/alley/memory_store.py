"""A history store in memory: thread-safe, with a clock a test can control.

The engine's own tests run on it, in-process and fast, and ``alley test`` keeps its
rehearsal's history in one (:mod:`alley.rehearsal`); it passes the same contract
suite as the MongoDB store (:mod:`alley.testing.store_contract`). One lock guards every
method, so each is atomic, as a store's writes must be where the contract asks for
race safety. It lives in one process: processes cannot share it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from alley.model import HistoryRecord, Holder, LockState, LogEntry
from alley.store import ClaimConflict, RecordExists

ONE_MS = timedelta(milliseconds=1)


class ManualClock:
    """The store's clock: starts at a fixed time and moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@dataclasses.dataclass
class _Generation:
    holder: Holder
    acquired_at: datetime
    heartbeat_at: datetime
    lease_s: float
    released: bool = False


class MemoryStore:
    """An :class:`alley.store.HistoryStore` in memory.

    :param clock: The store's clock (aware UTC); the wall clock by default.
    :param records: Records to start with (e.g. 0.0.3's), kept as given.
    """

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        records: Sequence[HistoryRecord] = (),
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self._mutex = threading.RLock()
        self.records: list[HistoryRecord] = list(records)
        self.generations: list[_Generation] = []
        self.entries: list[LogEntry] = []
        self.attempts: dict[str, LogEntry] = {}

    # -- Records ------------------------------------------------------------------

    def read_records(self) -> list[HistoryRecord]:
        with self._mutex:
            return list(self.records)

    def add_record(self, record: HistoryRecord) -> None:
        with self._mutex:
            if any(r.filename == record.filename for r in self.records):
                raise RecordExists(record.filename)
            dates = [r.date for r in self.records if r.date is not None]
            if record.date is not None and dates and record.date < max(dates) + ONE_MS:
                # Dates only move forward (alley.store.Records.add_record).
                record = dataclasses.replace(record, date=max(dates) + ONE_MS)
            self.records.append(record)

    def replace_record(self, old: HistoryRecord, new: HistoryRecord) -> None:
        with self._mutex:
            kept = [r for r in self.records if r.filename not in (old.filename, new.filename)]
            date = old.date if old.date is not None else new.date
            self.records = [*kept, dataclasses.replace(new, date=date)]

    def remove_record(self, record: HistoryRecord) -> None:
        with self._mutex:
            self.records = [r for r in self.records if r.filename != record.filename]

    # -- Lock ---------------------------------------------------------------------

    def _state(self, index: int) -> LockState:
        generation = self.generations[index]
        return LockState(
            generation=index + 1,
            holder=generation.holder,
            acquired_at=generation.acquired_at,
            heartbeat_at=generation.heartbeat_at,
            lease_s=generation.lease_s,
            released=generation.released,
            server_now=self.clock(),
        )

    def lock_state(self) -> LockState | None:
        with self._mutex:
            return self._state(len(self.generations) - 1) if self.generations else None

    def try_lock(self, holder: Holder, lease_s: float) -> LockState:
        with self._mutex:
            current = self.lock_state()
            if current is None or current.free:
                now = self.clock()
                self.generations.append(_Generation(holder, now, now, lease_s))
            state = self.lock_state()
            assert state is not None
            return state

    def renew_lock(self, generation: int) -> bool:
        with self._mutex:
            if generation != len(self.generations):
                return False
            newest = self.generations[-1]
            newest.heartbeat_at = self.clock()
            return not newest.released

    def release_lock(self, generation: int) -> None:
        with self._mutex:
            if generation == len(self.generations):
                self.generations[-1].released = True

    # -- RunLog -------------------------------------------------------------------

    def read_open(self) -> list[LogEntry]:
        with self._mutex:
            return list(self.attempts.values())

    def open_attempts(self, claims: Sequence[LogEntry]) -> None:
        with self._mutex:
            for claim in claims:
                if claim.filename in self.attempts:
                    raise ClaimConflict(claim.filename)
            seen: set[str] = set()
            for claim in claims:
                if claim.filename in seen:
                    raise ClaimConflict(claim.filename)
                seen.add(claim.filename)
            self.attempts.update((claim.filename, claim) for claim in claims)

    def log(
        self,
        entries: Sequence[LogEntry],
        *,
        close: Sequence[str] = (),
        keep_open: Sequence[LogEntry] = (),
    ) -> None:
        with self._mutex:
            self.entries.extend(entries)
            for filename in close:
                self.attempts.pop(filename, None)
            for entry in keep_open:
                self.attempts[entry.filename] = entry

    def read_log(self) -> list[LogEntry]:
        with self._mutex:
            return sorted(self.entries, key=lambda e: (e.generation, e.seq))


__all__ = ["ManualClock", "MemoryStore"]
