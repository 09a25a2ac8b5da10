"""The pure parts of async migrations: what the executor refuses at load, the async
connection's loop and client settings, and :mod:`alley.aio` mirroring :mod:`alley.api`.
No server: an ``AsyncMongoClient`` connects only when a command is sent.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from alley import aio, api
from alley.data import Step
from alley.errors import ConfigError, DiscoveryError, MigrationFailed
from alley.model import Direction, Migration
from alley.settings import load_settings
from alley_plugins import mongoengine_connection, python_executor


def migration(source: str) -> Migration:
    return Migration(1, "m", "0001_m.py", source, "/project/migrations/0001_m.py")


# -------------------------------------------------------------------------
# Loading
# -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["up", "down"])
def test_async_with_a_step_parameter_is_refused_at_load(name: str) -> None:
    other = "down" if name == "up" else "up"
    source = f"async def {name}(db, step):\n    pass\n\ndef {other}(db):\n    pass\n"

    with pytest.raises(DiscoveryError) as refused:
        python_executor.alley_load_migration(migration(source))

    assert str(refused.value).startswith(
        f"/project/migrations/0001_m.py: async def {name}(db, step) is not supported"
    )
    assert refused.value.hint == (
        f"write def {name}(db, step) for batch helpers, or async def {name}(db)"
    )


def test_async_with_transaction_is_refused_at_load() -> None:
    source = "transaction = True\n\nasync def up(db):\n    pass\n\ndef down(db):\n    pass\n"

    with pytest.raises(DiscoveryError, match=r"async def up\(db\) cannot run in a transaction"):
        python_executor.alley_load_migration(migration(source))


def test_an_async_generator_is_refused_at_load() -> None:
    source = "async def up(db):\n    yield\n\ndef down(db):\n    pass\n"

    with pytest.raises(DiscoveryError, match="up is an async generator") as refused:
        python_executor.alley_load_migration(migration(source))

    assert refused.value.hint == "remove the yield from async def up(db)"


def test_a_generator_is_refused_at_load() -> None:
    """A sync ``def down(db)`` with ``yield`` would run nothing and be recorded too."""
    source = "def up(db):\n    pass\n\ndef down(db):\n    yield db.items.drop()\n"

    with pytest.raises(DiscoveryError, match=r"down is a generator \(def with yield\)") as refused:
        python_executor.alley_load_migration(migration(source))

    assert refused.value.hint == "remove the yield from def down(db)"


def test_async_and_sync_functions_load_as_they_are() -> None:
    source = "async def up(db):\n    pass\n\ndef down(db, step):\n    pass\n"

    loaded = python_executor.alley_load_migration(migration(source))

    assert inspect.iscoroutinefunction(loaded.up)
    assert not inspect.iscoroutinefunction(loaded.down)


# -------------------------------------------------------------------------
# Executing
# -------------------------------------------------------------------------


class RecordingConnection:
    """An AsyncConnection on a plain object as ``db``: records what ran, on one loop."""

    def __init__(self) -> None:
        self.db = object()
        self.closed = False
        self.runner = asyncio.Runner()
        self.made = 0

    def run(self, coroutine: Any) -> Any:
        return self.runner.run(coroutine)


@pytest.fixture
def connection() -> Iterator[RecordingConnection]:
    made = RecordingConnection()
    yield made
    made.runner.close()


def execute(source: str, connection: RecordingConnection | None, times: int = 1) -> Any:
    """Load ``source`` and execute its ``up`` ``times``, each as the engine would (a
    step context that gives ``connection``); return the functions loaded."""
    from alley.data import running

    m = migration(source)
    loaded = python_executor.alley_load_migration(m)

    def connect() -> RecordingConnection:
        assert connection is not None
        connection.made += 1
        return connection

    for _ in range(times):
        step = Step(None, m, Direction.UP, async_connection=connect if connection else None)
        with running(step):
            python_executor.alley_execute_migration(m, loaded, Direction.UP, db=None)
    return loaded


def test_an_async_up_gets_the_async_database_and_runs_on_the_connections_loop(
    connection: RecordingConnection,
) -> None:
    source = (
        "import asyncio\nseen = []\n"
        "async def up(db):\n    seen.append((db, asyncio.get_running_loop()))\n"
        "def down(db):\n    pass\n"
    )

    loaded = execute(source, connection, times=2)

    assert connection.made == 2  # asked by each step; the engine makes it once
    [(db1, loop1), (db2, loop2)] = loaded.up.__globals__["seen"]
    assert db1 is db2 is connection.db
    assert loop1 is loop2 is connection.runner.get_loop()


def test_an_async_failure_is_the_steps_failure_pointing_at_its_line(
    connection: RecordingConnection,
) -> None:
    source = "async def up(db):\n    raise ValueError('boom')\n\ndef down(db):\n    pass\n"

    with pytest.raises(MigrationFailed) as failed:
        execute(source, connection)

    assert str(failed.value) == (
        "0001_m.py failed (up): ValueError: boom (at /project/migrations/0001_m.py:2)"
    )


def test_keyboard_interrupt_in_an_async_step_propagates(connection: RecordingConnection) -> None:
    source = "async def up(db):\n    raise KeyboardInterrupt\n\ndef down(db):\n    pass\n"

    with pytest.raises(KeyboardInterrupt):
        execute(source, connection)


def test_an_async_step_without_an_async_connection_fails_saying_so() -> None:
    source = "async def up(db):\n    pass\n\ndef down(db):\n    pass\n"

    with pytest.raises(MigrationFailed, match="no async connection for this step"):
        execute(source, None)


# -------------------------------------------------------------------------
# The async connection
# -------------------------------------------------------------------------


def test_the_async_client_has_the_sync_clients_settings_and_hides_the_password() -> None:
    settings = load_settings(
        {
            "url": "mongodb://db1.example:27018,db2.example:27019/?replicaSet=rs0",
            "username": "ada",
            "password": "s3cret-pw",
            "auth_source": "admin",
            "timeout": 2.5,
        },
        environ={},
    )
    made = mongoengine_connection.async_connection(settings, "shop")
    try:
        options = made.client.options
        assert made.db.name == "shop"
        assert options.server_selection_timeout == 2.5
        assert options.pool_options.connect_timeout == 2.5
        assert options.pool_options.metadata["application"] == {"name": "alley"}
        assert options.replica_set_name == "rs0"
        assert sorted(made.client.topology_description.server_descriptions()) == [
            ("db1.example", 27018),
            ("db2.example", 27019),
        ]
        assert "s3cret-pw" not in repr(made.client)
        assert "authsource='admin'" in repr(made.client)
    finally:
        mongoengine_connection.close_connections()
    assert made not in mongoengine_connection._opened_async


def test_one_connection_runs_every_coroutine_on_the_same_loop() -> None:
    settings = load_settings({"host": "localhost", "port": 1}, environ={})
    made = mongoengine_connection.async_connection(settings, "x")
    try:

        async def loop() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        assert made.run(loop()) is made.run(loop())
    finally:
        mongoengine_connection.close_connections()


# -------------------------------------------------------------------------
# alley.aio mirrors alley.api
# -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["status", "up", "down", "redo", "verify", "plan_up"])
def test_each_aio_function_takes_the_api_functions_parameters(name: str) -> None:
    mirrored = inspect.signature(getattr(aio, name))
    original = inspect.signature(getattr(api, name))

    assert inspect.iscoroutinefunction(getattr(aio, name))
    assert list(mirrored.parameters.values()) == list(original.parameters.values())
    assert mirrored.return_annotation == original.return_annotation


def test_engine_given_a_database_refuses_an_async_migration_before_anything_runs(
    tmp_path: Any,
) -> None:
    from alley.engine import Engine
    from alley.model import MigrationStatus, Plan, State

    folder = tmp_path / "migrations"
    folder.mkdir()
    source = "async def up(db):\n    pass\n\ndef down(db):\n    pass\n"
    (folder / "0001_m.py").write_text(source)
    engine = Engine(load_settings({"path": str(tmp_path)}, environ={}), db=object())
    [found] = engine.migrations
    status = MigrationStatus(found.id, found.filename, State.PENDING, found, None)

    with pytest.raises(ConfigError, match="needs alley's own connection") as refused:
        engine.load(Plan(Direction.UP, (status,)))

    assert refused.value.hint is not None
    assert "write def up(db)" in refused.value.hint
