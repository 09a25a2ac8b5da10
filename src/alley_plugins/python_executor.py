"""Load a migration's Python source and call its ``up(db)`` / ``down(db)``."""

from __future__ import annotations

import asyncio
import inspect
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any

from alley.data import Step, current_step
from alley.errors import ConfigError, DiscoveryError, MigrationFailed
from alley.hookcalls import driver_message
from alley.hookspecs import hookimpl
from alley.model import Direction, LoadedMigration, Migration, MigrationFunctions

if TYPE_CHECKING:
    from pymongo.database import Database


@hookimpl(trylast=True)
def alley_load_migration(migration: Migration) -> LoadedMigration:
    try:
        code = compile(migration.source, migration.location, "exec")
    except SyntaxError as error:
        raise DiscoveryError(
            f"{migration.location}:{error.lineno}: {error.msg}",
            hint="fix the file; nothing ran",
        ) from error
    module = types.ModuleType(f"alley_migration_{migration.id:04}_{migration.name}")
    module.__file__ = migration.location
    # Registered while it runs so that pickling, dataclasses and typing can find it.
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as error:
        raise DiscoveryError(
            f"{migration.location} failed to load: {_describe(error, migration)}",
            hint="fix the file; nothing ran",
        ) from error
    finally:
        sys.modules.pop(module.__name__, None)
    _refuse_async_with_step(module, migration)
    return MigrationFunctions(
        up=_callable(module, "up"),
        down=_callable(module, "down"),
        idempotent=getattr(module, "idempotent", False) is True,
        transaction=_transaction(module, migration),
    )


def _transaction(module: types.ModuleType, migration: Migration) -> bool:
    """The module's ``transaction = True`` (see :mod:`alley.transactions`); anything
    but a bool is refused, so a ``transaction = "yes"`` never runs without one."""
    from alley import transactions

    return transactions.flag(getattr(module, transactions.ATTRIBUTE, None), migration.location)


def _callable(module: types.ModuleType, name: str) -> Any:
    function = getattr(module, name, None)
    return function if callable(function) else None


@hookimpl(trylast=True)
def alley_execute_migration(
    migration: Migration, loaded: LoadedMigration, direction: Direction, db: Database[Any]
) -> bool:
    function = loaded.up if direction is Direction.UP else loaded.down
    if function is None:
        raise DiscoveryError(f"{migration.location} has no {direction}(db) function")
    try:
        if inspect.iscoroutinefunction(function):
            _run_async(function)
        elif _takes_step(function):
            function(db, current_step() or Step(db, migration, direction))
        else:
            function(db)
    except (Exception, SystemExit) as error:
        # sys.exit() in a migration is its failure, whatever the code: a deploy script
        # must not see success, nor alley's own exit codes.
        raise MigrationFailed(
            f"{migration.filename} failed ({direction}): {_describe(error, migration)}",
            cause=error,
        ) from error
    return True


def _refuse_async_with_step(module: types.ModuleType, migration: Migration) -> None:
    """``async def up(db, step)`` is refused when the file loads: the batch helpers of
    :class:`alley.data.Step` are synchronous and would block the event loop. So is a
    function with ``yield``, ``async`` or not (called, it would run nothing and be
    recorded)."""
    for name in ("up", "down"):
        function = getattr(module, name, None)
        if inspect.isgeneratorfunction(function):
            raise DiscoveryError(
                f"{migration.location}: {name} is a generator (def with yield): called, it "
                "would run nothing",
                hint=f"remove the yield from def {name}(db)",
            )
        if inspect.isasyncgenfunction(function):
            raise DiscoveryError(
                f"{migration.location}: {name} is an async generator (async def with "
                "yield): alley cannot run it",
                hint=f"remove the yield from async def {name}(db)",
            )
        if not inspect.iscoroutinefunction(function):
            continue
        if _takes_step(function):
            raise DiscoveryError(
                f"{migration.location}: async def {name}(db, step) is not supported "
                "(alley's batch helpers are synchronous)",
                hint=f"write def {name}(db, step) for batch helpers, or async def {name}(db)",
            )
        if getattr(module, "transaction", False) is True:
            # Its AsyncDatabase could not join the sync client's transaction.
            raise DiscoveryError(
                f"{migration.location}: async def {name}(db) cannot run in a transaction",
                hint=f"write def {name}(db) with transaction = True, or drop transaction",
            )


def _run_async(function: Any) -> None:
    """Run ``async def up(db)`` / ``down(db)`` to its end in this (the engine's)
    thread, on the command's event loop, with PyMongo's ``AsyncDatabase`` of the same
    database; its errors are the step's, as a sync function's are."""
    step = current_step()
    connect = step.async_connection if step is not None else None
    if connect is None:
        raise ConfigError(
            "no async connection for this step (it was not run by alley's engine)",
            hint="run async migrations with alley's engine, or write def up(db)",
        )
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop runs in this thread: the engine's own can
        pass
    else:
        raise ConfigError(
            "an async migration cannot run from inside a running event loop "
            "(alley's sync API was called from async code)",
            hint="await alley.aio.up(...) and the other functions of alley.aio instead",
        )
    connection = connect()
    connection.run(function(connection.db))


def _takes_step(function: Any) -> bool:
    """Whether a migration function takes the step context: two positional parameters
    (or ``*args``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in positional)


def _describe(error: BaseException, migration: Migration) -> str:
    """``KeyError: 'x' at 0002_x.py:7``, pointing at the user's line, not alley's."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if frame.filename == migration.location]
    if isinstance(error, SystemExit):
        message = f"it called sys.exit({error.code!r})"
    else:
        text = driver_message(error) if str(error) else ""
        message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if not (own or frames):
        return message
    frame = (own or frames)[-1]
    return f"{message} (at {frame.filename}:{frame.lineno})"
