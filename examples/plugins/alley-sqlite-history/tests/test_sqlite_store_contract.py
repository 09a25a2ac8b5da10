"""The SQLite store passes alley's history store contract.

The whole of it: ``StoreContract`` holds the tests, this gives it a factory of handles
on one fresh file per test. Each call opens a new connection, so racing threads and
(spawned) processes each race through their own, as separate alley runs would. There
is no ``advance_clock``: the store's clock is the host's, so lease-expiry tests take
short leases and wait for the store to say they expired. There is no
``seed_003_record``: alley 0.0.3 never wrote to SQLite, so those tests skip.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from alley_sqlite_history import SqliteHistoryStore

from alley.testing.store_contract import StoreContract


class TestSqliteHistoryStore(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> functools.partial[SqliteHistoryStore]:
        return functools.partial(SqliteHistoryStore, tmp_path / "alley-history.sqlite3")
