"""The MongoDB store across the DocumentDB family's small differences (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson.int64 import Int64
from pymongo.errors import DuplicateKeyError, OperationFailure

from alley_plugins.mongo_history import _is_duplicate_key, _server_time


class Answers:
    """A database that answers ``hello`` (or only ``isMaster``) with a given ``localTime``."""

    def __init__(self, local_time: Any, *, hello: bool = True) -> None:
        self.local_time = local_time
        self.hello = hello

    def command(self, name: str) -> dict[str, Any]:
        if name == "hello" and not self.hello:
            raise OperationFailure("no such command: 'hello'", code=59)
        return {"localTime": self.local_time, "ok": 1}


NOW = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "local_time",
    [NOW, NOW.replace(tzinfo=None), Int64(int(NOW.timestamp() * 1000))],
    ids=["aware", "naive-utc", "documentdb-int64-epoch-ms"],
)
def test_the_servers_clock_reads_as_aware_utc(local_time: Any) -> None:
    assert _server_time(Answers(local_time)) == NOW  # type: ignore[arg-type]


def test_a_server_without_hello_is_asked_is_master() -> None:
    assert _server_time(Answers(NOW, hello=False)) == NOW  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "duplicate"),
    [
        (DuplicateKeyError("E11000 duplicate key error", code=11000), True),
        # FerretDB 2.5 answers an upsert conflict with InternalError, code 1.
        (OperationFailure("duplicate key value violates unique constraint", code=1), True),
        ({"code": 11000, "errmsg": "E11000 duplicate key"}, True),
        (OperationFailure("not authorized", code=13), False),
        ({"code": 2, "errmsg": "bad value"}, False),
    ],
)
def test_duplicate_keys_are_recognised_whatever_the_code(error: Any, duplicate: bool) -> None:
    assert _is_duplicate_key(error) is duplicate
