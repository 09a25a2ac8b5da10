"""Load a migration's Python source and call its ``up(db)`` / ``down(db)``."""

from __future__ import annotations

import inspect
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any

from alley.data import Step, current_step
from alley.errors import DiscoveryError, MigrationFailed
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
    return MigrationFunctions(
        up=_callable(module, "up"),
        down=_callable(module, "down"),
        idempotent=getattr(module, "idempotent", False) is True,
    )


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
        if _takes_step(function):
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
