"""What a test server can do, per kind of server: the capability table of ``docs/testing.md``.

Every row is measured on the running server by ``tests/integration/test_server_capabilities.py``,
which asserts the measurement equals the table (for a server alley cannot identify, that
nothing is claimed that the server lacks). Tests key on these capabilities, never on
"is it FerretDB": ``server_capabilities.require("transactions")`` or
``@pytest.mark.requires("transactions")`` skip with a reason naming what is missing and
on which server.

Only the standard library is imported (pytest only inside :meth:`Capabilities.require`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "FERRETDB_1_SQLITE",
    "MONGOD_REPLICA_SET",
    "MONGOD_STANDALONE",
    "MONGO_JAVA_SERVER_MEMORY",
    "UNKNOWN_SERVER",
    "Capabilities",
    "capabilities_from_server_info",
]


@dataclass(frozen=True)
class Capabilities:
    """What one server does (``True``) or lacks (``False``); ``server`` names the row.

    ``exact`` is ``False`` for a server alley could not identify: then the flags are a
    conservative guess (a capability may be there although the table says ``False``,
    never the other way round).
    """

    server: str
    #: ``find_one_and_update({_id, owner: None}, {$set: {owner: me}})`` from racing
    #: clients has exactly one winner.
    atomic_compare_and_swap: bool
    #: ``$inc`` on one document from racing clients loses no increment.
    atomic_increments: bool
    #: A unique index rejects a second document that lacks the indexed field (MongoDB
    #: indexes a missing field as ``null``).
    unique_index_rejects_missing_field_duplicates: bool
    #: The driver can run operations in an explicit session (``start_session``).
    sessions: bool
    #: ``with_transaction`` commits, and an aborted transaction leaves nothing behind.
    transactions: bool
    #: ``collection.watch()`` opens a change stream.
    change_streams: bool
    #: ``create_index(..., expireAfterSeconds=N)`` is accepted.
    ttl_index: bool
    #: Documents past a TTL index's expiry are deleted by the server.
    ttl_expiry: bool
    #: A ``$jsonSchema`` validator rejects a document that breaks it (code 121).
    json_schema: bool
    #: The ``hello`` command answers, with ``isWritablePrimary`` and ``localTime``.
    hello: bool
    #: The server authenticates users: a wrong password fails with code 18.
    auth: bool
    exact: bool = True

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The capability flags, in table order (every field but ``server``/``exact``)."""
        return tuple(f.name for f in fields(cls) if f.name not in {"server", "exact"})

    def has(self, name: str) -> bool:
        """Whether the server has capability ``name`` (``ValueError`` for an unknown name)."""
        if name not in self.names():
            raise ValueError(
                f"unknown server capability {name!r}; known: {', '.join(self.names())}"
            )
        return bool(getattr(self, name))

    def missing(self, *names: str) -> list[str]:
        """Those of ``names`` the server lacks (all lacking capabilities without names)."""
        return [name for name in names or self.names() if not self.has(name)]

    def skip_reason(self, *names: str) -> str | None:
        """Why a test needing ``names`` cannot run here, or ``None`` if it can."""
        missing = self.missing(*names)
        if not missing:
            return None
        guess = "" if self.exact else " (assumed: alley could not identify this server)"
        return f"needs {', '.join(missing)}, which {self.server} lacks{guess}"

    def require(self, *names: str) -> None:
        """Skip the calling test (``pytest.skip``) unless the server has all of ``names``."""
        reason = self.skip_reason(*names)
        if reason is not None:
            import pytest

            pytest.skip(reason)

    def as_dict(self) -> dict[str, bool]:
        """The flags by name (for reports)."""
        return {name: self.has(name) for name in self.names()}


MONGOD_STANDALONE = Capabilities(
    server="MongoDB (standalone mongod)",
    atomic_compare_and_swap=True,
    atomic_increments=True,
    unique_index_rejects_missing_field_duplicates=True,
    sessions=True,
    transactions=False,  # IllegalOperation (20): transactions need a replica set
    change_streams=False,  # likewise
    ttl_index=True,
    ttl_expiry=True,
    json_schema=True,
    hello=True,
    auth=True,
)

MONGOD_REPLICA_SET = replace(
    MONGOD_STANDALONE,
    server="MongoDB (replica set or sharded)",
    transactions=True,
    change_streams=True,
)

FERRETDB_1_SQLITE = Capabilities(
    server="FerretDB 1.24 (SQLite)",
    atomic_compare_and_swap=False,  # FerretDB issue 3040: 1-8 winners per round
    atomic_increments=False,  # read-modify-write in Go: increments are lost
    unique_index_rejects_missing_field_duplicates=False,  # SQLite NULLs are distinct
    sessions=True,
    transactions=False,  # the first operation is refused with code 9
    change_streams=False,
    ttl_index=False,  # NotImplemented (238)
    ttl_expiry=False,
    json_schema=False,  # the validator option is refused
    hello=True,
    auth=True,  # with --test-enable-new-auth, which alley passes given credentials
)

MONGO_JAVA_SERVER_MEMORY = Capabilities(
    server="mongo-java-server 1.47.0 (memory backend)",
    atomic_compare_and_swap=True,
    atomic_increments=True,
    unique_index_rejects_missing_field_duplicates=True,
    sessions=False,  # no logicalSessionTimeoutMinutes: the driver refuses sessions
    transactions=False,
    change_streams=False,
    ttl_index=True,  # accepted ...
    ttl_expiry=False,  # ... but nothing ever expires
    json_schema=False,  # the validator is accepted and ignored
    hello=True,  # answered as isMaster by alley's launcher (the server has no hello)
    auth=False,  # no authentication at all
)

UNKNOWN_SERVER = Capabilities(
    server="an unidentified MongoDB-compatible server",
    atomic_compare_and_swap=False,
    atomic_increments=False,
    unique_index_rejects_missing_field_duplicates=False,
    sessions=False,
    transactions=False,
    change_streams=False,
    ttl_index=False,
    ttl_expiry=False,
    json_schema=False,
    hello=False,
    auth=False,
    exact=False,
)


def capabilities_from_server_info(
    build_info: Mapping[str, Any], hello: Mapping[str, Any] | None
) -> Capabilities:
    """The row for a server given by URI, from its ``buildInfo`` and ``hello`` answers.

    ``hello`` is ``None`` when the server did not answer it.
    FerretDB 1.x says ``ferretdbVersion``; the mongo-java-server alley starts says
    ``mongoJavaServerVersion``; a MongoDB says ``gitVersion`` and none of FerretDB's
    keys. Anything else gets :data:`UNKNOWN_SERVER` (nothing claimed).
    """
    answered_hello = hello is not None
    ferret = build_info.get("ferretdbVersion")
    if ferret is not None:
        if str(ferret).startswith("v1."):
            return replace(FERRETDB_1_SQLITE, server=f"FerretDB {ferret}")
        return replace(UNKNOWN_SERVER, server=f"FerretDB {ferret}", hello=answered_hello)
    mjs = build_info.get("mongoJavaServerVersion")
    if mjs is not None:
        return replace(MONGO_JAVA_SERVER_MEMORY, server=f"mongo-java-server {mjs} (memory)")
    version = build_info.get("version", "unknown")
    if "gitVersion" in build_info and "ferretdb" not in build_info and hello is not None:
        replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
        sessions = "logicalSessionTimeoutMinutes" in hello
        row = MONGOD_REPLICA_SET if replicated and sessions else MONGOD_STANDALONE
        kind = "replica set or sharded" if replicated else "standalone"
        return replace(row, server=f"MongoDB {version} ({kind})", sessions=sessions)
    return replace(
        UNKNOWN_SERVER, server=f"a server reporting version {version}", hello=answered_hello
    )
