"""Run a plan: load every step first, then execute and record each step in turn.

Loading all steps before the first one runs means a file that does not compile, or
lacks the function the plan needs, stops the command with nothing done. Each step is
recorded right after it ran, so a failure leaves history exactly as far as it got.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alley.errors import DiscoveryError
from alley.hookcalls import Hooks
from alley.model import (
    Direction,
    HistoryRecord,
    HistoryStore,
    LoadedMigration,
    Migration,
    Plan,
    StepResult,
)

StepCallback = Callable[[StepResult], None]


def run_plan(
    plan: Plan,
    *,
    hooks: Hooks,
    store: HistoryStore,
    db: Any,
    fake: bool = False,
    on_step: StepCallback | None = None,
) -> tuple[StepResult, ...]:
    """Execute ``plan`` step by step and record each step; return what ran.

    :raises MigrationFailed: a migration raised; the steps before it stay recorded.
    """
    loaded = {} if fake else load_steps(plan, hooks)
    results = []
    for step in plan.steps:
        migration = step.migration
        assert migration is not None  # planning refuses steps without a migration
        started = time.perf_counter()
        if not fake:
            hooks.execute(migration, loaded[migration.id], plan.direction, db)
        duration = time.perf_counter() - started
        if plan.direction is Direction.UP:
            record = applied_record(migration, duration_s=duration, fake=fake)
            hooks.store_call(store.record_applied, migration, record)
        else:
            assert step.record is not None
            hooks.store_call(store.remove_applied, step.record)
        result = StepResult(migration.id, migration.filename, plan.direction, fake, duration)
        results.append(result)
        if on_step is not None:
            on_step(result)
    return tuple(results)


def load_steps(plan: Plan, hooks: Hooks) -> dict[int, LoadedMigration]:
    """Load every migration of ``plan``; fail before anything runs if one is unusable."""
    loaded = {}
    for step in plan.steps:
        migration = step.migration
        assert migration is not None
        module = hooks.load(migration)
        function = module.up if plan.direction is Direction.UP else module.down
        if function is None:
            raise DiscoveryError(
                f"{migration.location} has no {plan.direction}(db) function",
                hint="nothing ran",
            )
        loaded[migration.id] = module
    return loaded


def applied_record(migration: Migration, *, duration_s: float, fake: bool) -> HistoryRecord:
    """The history record of a migration that was just applied (or faked)."""
    from alley import __version__

    return HistoryRecord(
        id=migration.id,
        filename=migration.filename,
        date=datetime.now(UTC),
        checksum=migration.checksum,
        extra={
            "duration_s": round(duration_s, 6),
            "fake": fake,
            "alley_version": __version__,
            "host": socket.gethostname(),
            "user": _user(),
            "pid": os.getpid(),
        },
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
