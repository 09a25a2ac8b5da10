"""The in-memory store (the engine's tests run on it) passes the store contract."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from alley.memory_store import ManualClock, MemoryStore
from alley.model import HistoryRecord
from alley.testing.store_contract import AdvanceClock, Seed003, StoreContract


class TestMemoryStore(StoreContract):
    # One process's memory: handles in other processes cannot share it.
    supports_processes = False

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def memory_store(self, clock: ManualClock) -> MemoryStore:
        return MemoryStore(clock=clock)

    @pytest.fixture
    def store_factory(self, memory_store: MemoryStore) -> Callable[[], MemoryStore]:
        # Every "handle" is the store itself: it is thread-safe, and lives in one process.
        return lambda: memory_store

    @pytest.fixture
    def advance_clock(self, clock: ManualClock) -> AdvanceClock:
        return clock.advance

    @pytest.fixture
    def seed_003_record(self, memory_store: MemoryStore) -> Seed003:
        def seed(filename: str, migration_id: int, date: datetime) -> None:
            with memory_store._mutex:
                memory_store.records.append(HistoryRecord(migration_id, filename, date))

        return seed
