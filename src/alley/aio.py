"""The Python API, awaitable: for applications that migrate inside an event loop.

An application that migrates as it starts (a FastAPI ``lifespan``, an aiohttp
``on_startup``) runs in an event loop that must keep running: its health checks,
its other start-up work. Each function here runs the function of the same name in
:mod:`alley.api` -- same parameters, same reports, same errors -- in a worker thread
(:func:`asyncio.to_thread`), so the caller's loop never blocks on the server, the
lock or a migration. ``async def`` migrations run in that thread on an event loop of
their own (an ``AsyncMongoClient`` belongs to one loop; the caller's is busy).

Callbacks (``on_step``, ``on_start``, ``on_wait``, ``on_progress``) are called from
the worker thread: hand what they see to the loop with
``loop.call_soon_threadsafe``. Cancelling the awaiting task does not stop the run: a
migration cannot be stopped half-way safely, so the thread finishes its steps (or
fails) and the lock is released as usual; the cancelled caller just stops waiting.

See docs/async.md.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TypeVar

from alley import api
from alley.api import PlanReport, RedoReport, VerifyReport
from alley.engine import Engine, StartCallback, StepCallback, WaitCallback
from alley.model import ProgressCallback, RunReport, StatusReport
from alley.settings import Settings

T = TypeVar("T")


async def _in_thread(call: Callable[..., T], settings: Settings, project: Engine | None) -> T:
    """``call(settings, project=engine)`` in a worker thread; the async connection an
    engine made here for the call is closed there, before the thread is given back."""

    def work() -> T:
        engine = project or Engine(settings)
        try:
            return call(settings, project=engine)
        finally:
            if project is None:
                engine.close_async()

    return await asyncio.to_thread(work)


async def status(
    settings: Settings, *, check: bool = False, project: Engine | None = None
) -> StatusReport:
    """:func:`alley.api.status`, awaitable: every migration with its state."""
    return await _in_thread(functools.partial(api.status, check=check), settings, project)


async def plan_up(
    settings: Settings,
    target: int | str | None = None,
    *,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    retry: bool = False,
    fake: bool = False,
    project: Engine | None = None,
) -> PlanReport:
    """:func:`alley.api.plan_up`, awaitable: what ``up`` would run. Writes nothing."""
    call = functools.partial(
        _positional(api.plan_up, target),
        allow_out_of_order=allow_out_of_order,
        allow_drift=allow_drift,
        retry=retry,
        fake=fake,
    )
    return await _in_thread(call, settings, project)


async def up(
    settings: Settings,
    target: int | str | None = None,
    *,
    fake: bool = False,
    allow_out_of_order: bool = False,
    allow_drift: bool = False,
    retry: bool = False,
    project: Engine | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
    on_start: StartCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """:func:`alley.api.up`, awaitable: apply pending migrations in order, up to and
    including ``target``, while the caller's loop keeps running."""
    call = functools.partial(
        _positional(api.up, target),
        fake=fake,
        allow_out_of_order=allow_out_of_order,
        allow_drift=allow_drift,
        retry=retry,
        on_step=on_step,
        on_wait=on_wait,
        on_start=on_start,
        on_progress=on_progress,
    )
    return await _in_thread(call, settings, project)


async def down(
    settings: Settings,
    target: int | str | None = None,
    *,
    steps: int | None = None,
    fake: bool = False,
    retry: bool = False,
    project: Engine | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
    on_start: StartCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """:func:`alley.api.down`, awaitable: roll back applied migrations, newest first."""
    call = functools.partial(
        _positional(api.down, target),
        steps=steps,
        fake=fake,
        retry=retry,
        on_step=on_step,
        on_wait=on_wait,
        on_start=on_start,
        on_progress=on_progress,
    )
    return await _in_thread(call, settings, project)


async def redo(
    settings: Settings,
    *,
    fake: bool = False,
    retry: bool = False,
    project: Engine | None = None,
    on_step: StepCallback | None = None,
    on_wait: WaitCallback | None = None,
    on_start: StartCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> RedoReport:
    """:func:`alley.api.redo`, awaitable: roll back the last applied migration, then
    apply it again, under one lock."""
    call = functools.partial(
        api.redo,
        fake=fake,
        retry=retry,
        on_step=on_step,
        on_wait=on_wait,
        on_start=on_start,
        on_progress=on_progress,
    )
    return await _in_thread(call, settings, project)


async def verify(settings: Settings, *, project: Engine | None = None) -> VerifyReport:
    """:func:`alley.api.verify`, awaitable: problems that make history untrustworthy."""
    return await _in_thread(api.verify, settings, project)


def _positional(function: Callable[..., T], target: int | str | None) -> Callable[..., T]:
    """``function(settings, target, ...)``, with ``settings`` still to give."""

    def call(settings: Settings, **kwargs: object) -> T:
        return function(settings, target, **kwargs)

    return call


__all__ = ["down", "plan_up", "redo", "status", "up", "verify"]
