"""The control-history store passes alley's history store contract.

``alley.testing.store_contract.StoreContract`` holds the tests; this gives it a factory
of handles: each call is a new ``MongoClient`` on the control database, so racing threads
and spawned processes talk to the server through their own connections, as separate
alley runs would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from alley_control_history import ControlHistoryStore, collection_name
from bson import ObjectId

from alley.testing.store_contract import Seed003, StoreContract

TARGET = "tenant_a"

# The clients this process made; closed when the test ends (a child process's die with it).
_clients: list[Any] = []


@dataclass(frozen=True)
class ControlStoreFactory:
    """A new client, and the store of ``target`` on it, per call (picklable)."""

    uri: str
    control_database: str
    target: str

    def __call__(self) -> ControlHistoryStore:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(self.uri, serverSelectionTimeoutMS=10_000)
        _clients.append(client)
        return ControlHistoryStore(client[self.control_database], self.target)


class TestControlHistoryStore(StoreContract):
    @pytest.fixture
    def control_db(self, new_mongo_db: Callable[[str], Any]) -> Any:
        return new_mongo_db("alley_control")

    @pytest.fixture
    def store_factory(self, mongodb_server: Any, control_db: Any) -> Iterator[ControlStoreFactory]:
        yield ControlStoreFactory(mongodb_server.uri, control_db.name, TARGET)
        while _clients:
            _clients.pop().close()

    @pytest.fixture
    def seed_003_record(self, control_db: Any) -> Seed003:
        """A record as alley 0.0.3 wrote it (ObjectId ``_id``, ``id``, ``filename``,
        ``date``), as if copied into the control collection."""

        def seed(filename: str, migration_id: int, date: datetime) -> None:
            control_db[collection_name(TARGET)].insert_one(
                {"_id": ObjectId(), "id": migration_id, "filename": filename, "date": date}
            )

        return seed
