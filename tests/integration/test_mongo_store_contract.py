"""The MongoDB store (``db_migrations`` and its ``_lock``, ``_log``, ``_open``) passes the
store contract on the session's real server.

Every handle is a new ``MongoClient`` on the same database, made from the URI and the
database name, so racing threads and spawned processes each talk to the server through
their own connection, as separate alley runs do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from bson import ObjectId

from alley.testing.store_contract import Seed003, StoreContract
from alley_plugins.mongo_history import COLLECTION, MongoHistoryStore

# The clients this process made; closed when the test ends (a child process's die with it).
_clients: list[Any] = []


@dataclass(frozen=True)
class MongoStoreFactory:
    """A new client, and a store on it, per call: picklable for spawned processes."""

    uri: str
    database: str

    def __call__(self) -> MongoHistoryStore:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(self.uri, serverSelectionTimeoutMS=10_000)
        _clients.append(client)
        return MongoHistoryStore(client[self.database])


def close_clients() -> None:
    while _clients:
        _clients.pop().close()


class TestMongoHistoryStore(StoreContract):
    @pytest.fixture
    def database(self, new_mongo_db: Callable[[str], Any]) -> Any:
        return new_mongo_db("alley_contract")

    @pytest.fixture
    def store_factory(self, mongodb_server: Any, database: Any) -> Iterator[MongoStoreFactory]:
        yield MongoStoreFactory(mongodb_server.uri, database.name)
        close_clients()

    @pytest.fixture
    def seed_003_record(self, database: Any) -> Seed003:
        """As 0.0.3 wrote them: an ObjectId ``_id``, ``id``, ``filename``, ``date``."""

        def seed(filename: str, migration_id: int, date: datetime) -> None:
            database[COLLECTION].insert_one(
                {"_id": ObjectId(), "id": migration_id, "filename": filename, "date": date}
            )

        return seed
