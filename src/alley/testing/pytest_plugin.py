"""pytest fixtures giving tests a real MongoDB-wire-compatible server.

Registered through the ``pytest11`` entry point ``alley``. Nothing starts until a test
asks for one of the fixtures: ``mongodb_server``, ``mongodb_uri``, ``mongo_client``,
``server_capabilities`` (session scope), ``mongo_db`` and ``mongo_db_uri`` (one fresh
database per test), and ``s3_server`` (a real S3 server, session scope). When no
server can be provided the fixtures raise :class:`ServerUnavailable`, so the tests
**error** with a message saying how to provide one; they are never skipped.

A test that needs something not every test server has says so, and is skipped with a
reason naming the capability and the server where it is missing::

    @pytest.mark.requires("atomic_compare_and_swap")
    def test_racing_lock(mongo_db): ...

    def test_other(server_capabilities):
        server_capabilities.require("transactions")
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from alley.testing.capabilities import Capabilities
from alley.testing.server import Server, start_server

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

    from alley.testing.s3 import S3Server

_SERVER = pytest.StashKey[Server]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``requires`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip unless the test server has these capabilities "
        f"(alley.testing.Capabilities: {', '.join(Capabilities.names())})",
    )


def _log_to_terminal(message: str) -> None:
    sys.stderr.write(f"alley.testing: {message}\n")
    sys.stderr.flush()


@pytest.fixture(scope="session")
def mongodb_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The server of this test session (started on first use, stopped at the end)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    # Show provisioning (and a first-time FerretDB build) as it happens, not captured.
    quiet = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
    with quiet:
        server = start_server(log=_log_to_terminal)
        _log_to_terminal(f"using {server.description}")
    request.config.stash[_SERVER] = server
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """A real S3 server (MinIO, :mod:`alley.testing.s3`) for the session: built once
    into the cache with the machine's Go, started on first use, stopped at the end.

    ``s3_server.env()`` holds boto3's own variables (endpoint, region, credentials) for
    a subprocess; the server is empty: tests make their buckets.
    """
    from alley.testing.s3 import start_s3

    capman = request.config.pluginmanager.getplugin("capturemanager")
    quiet = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
    with quiet:
        server = start_s3(log=_log_to_terminal)
        _log_to_terminal(f"using MinIO at {server.endpoint_url}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_capabilities(mongodb_server: Server) -> Capabilities:
    """What the session's server can do; ``.require(name, ...)`` skips the test otherwise."""
    return mongodb_server.capabilities


@pytest.fixture(autouse=True)
def _alley_requires_capabilities(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``@pytest.mark.requires(...)`` on a server lacking any of them.

    Costs nothing (and starts no server) for tests without the marker.
    """
    names = [name for mark in request.node.iter_markers("requires") for name in mark.args]
    if names:
        capabilities: Capabilities = request.getfixturevalue("server_capabilities")
        capabilities.require(*names)


@pytest.fixture(scope="session")
def mongodb_uri(mongodb_server: Server) -> str:
    """The URI of the session's server."""
    return mongodb_server.uri


@pytest.fixture(scope="session")
def mongo_client(mongodb_server: Server) -> Iterator[MongoClient[dict[str, Any]]]:
    """A pymongo client connected to the session's server."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        mongodb_server.uri, serverSelectionTimeoutMS=5000
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def new_mongo_db(
    mongo_client: MongoClient[dict[str, Any]],
) -> Iterator[Callable[[str], Database[dict[str, Any]]]]:
    """A factory of fresh, uniquely named databases (``new_mongo_db("alley_tenant")``),
    all dropped after the test: for tests that need more than ``mongo_db``."""
    names: list[str] = []

    def make(prefix: str = "alley_test") -> Database[dict[str, Any]]:
        names.append(f"{prefix}_{uuid.uuid4().hex[:8]}")
        return mongo_client[names[-1]]

    try:
        yield make
    finally:
        for name in names:
            mongo_client.drop_database(name)


@pytest.fixture
def mongo_db(
    new_mongo_db: Callable[[str], Database[dict[str, Any]]],
) -> Database[dict[str, Any]]:
    """A fresh, uniquely named database, dropped after the test."""
    return new_mongo_db("alley_test")


@pytest.fixture
def mongo_db_uri(mongodb_server: Server, mongo_db: Database[dict[str, Any]]) -> str:
    """A URI naming ``mongo_db`` as its database (for running ``alley`` as a subprocess)."""
    return mongodb_server.uri_for_database(mongo_db.name)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which server and version the run used, if it used one."""
    server = config.stash.get(_SERVER, None)
    if server is not None:
        terminalreporter.write_line(f"alley.testing: {server.description}")
        missing = server.capabilities.missing()
        if missing:
            terminalreporter.write_line(
                f"alley.testing: {server.capabilities.server} lacks {', '.join(missing)}"
            )
