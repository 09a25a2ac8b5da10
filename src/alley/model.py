"""The values alley works with: migrations, history records, statuses, plans and reports.

Plain frozen dataclasses with no I/O, so planning can be tested without files or a
server, and reports can be rendered as a table or as JSON alike.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from alley.checksum_cache import cached_checksum


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class Migration:
    """A migration as found by a discovery plugin, not yet loaded.

    :ivar id: the number that orders migrations (``0003`` in ``0003_add_users.py``).
    :ivar name: the normalised name (``add_users``).
    :ivar filename: the name recorded in history; 0.0.3 matched records on it.
    :ivar source: the Python source text, compiled by the executor.
    :ivar location: where it came from, for messages and tracebacks (a path or URL).
    """

    id: int
    name: str
    filename: str
    source: str
    location: str

    @cached_property
    def checksum(self) -> str:
        return cached_checksum(self.source)


@dataclass(frozen=True)
class HistoryRecord:
    """One applied migration, as a history store keeps it.

    ``id``, ``filename`` and ``date`` are the fields of alley 0.0.3 and never change
    meaning; everything alley added since is optional so 0.0.3 records read as is.
    """

    id: int
    filename: str
    date: datetime | None
    checksum: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class LoadedMigration(Protocol):
    """What an executor needs of a loaded migration: its ``up`` and ``down`` callables."""

    @property
    def up(self) -> Callable[..., Any] | None: ...

    @property
    def down(self) -> Callable[..., Any] | None: ...


@dataclass(frozen=True)
class MigrationFunctions:
    """The default LoadedMigration: the two functions found in a migration module."""

    up: Callable[..., Any] | None
    down: Callable[..., Any] | None


@dataclass(frozen=True)
class Holder:
    """Who runs a command: written into the lock and every run-log entry."""

    run_id: str
    host: str
    pid: int
    user: str
    alley_version: str
    command: str

    def describe(self) -> str:
        return f"{self.user}@{self.host} pid {self.pid} ({self.command}, run {self.run_id})"


@dataclass(frozen=True)
class LockState:
    """The newest lock generation, read together with the server's clock.

    Expiry is judged on the server's clock only: ``heartbeat_at`` is written with the
    server's time and compared with ``server_now``, so a client with a wrong clock can
    neither steal a live lock nor keep a dead one.
    """

    generation: int
    holder: Holder
    acquired_at: datetime
    heartbeat_at: datetime
    lease_s: float
    released: bool
    server_now: datetime

    @property
    def expires_in_s(self) -> float:
        return self.lease_s - (self.server_now - self.heartbeat_at).total_seconds()

    @property
    def expired(self) -> bool:
        return self.expires_in_s <= 0

    @property
    def free(self) -> bool:
        return self.released or self.expired


class Event(enum.StrEnum):
    """What a run-log entry says about a step."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    MARKED_APPLIED = "marked-applied"
    MARKED_PENDING = "marked-pending"


@dataclass(frozen=True)
class LogEntry:
    """One entry of the append-only run log, or one open attempt.

    The run log gets one entry per step when its outcome is known (``succeeded``,
    ``failed``, ``interrupted``) and one per decision (``marked-*``). From before a
    run's first step until its outcome is logged, and after it failed or was
    interrupted, each step's attempt is also *open*: kept by the store under the
    migration's filename, which only one run at a time can hold. The ``step`` key
    (``up:0003_x.py:<run id>``) ties an open attempt to its log entry.
    """

    step: str
    event: Event
    migration_id: int
    filename: str
    direction: Direction
    at: datetime
    holder: Holder
    checksum: str | None = None
    duration_s: float | None = None
    fake: bool = False
    error: str | None = None
    resolves: tuple[str, ...] = ()
    generation: int = 0  # of the lock held when written: orders entries across runs
    seq: int = 0  # within one run


class HistoryStore(Protocol):
    """Where applied migrations are recorded, with the lock and run log that guard them.

    The default keeps the ``db_migrations`` collection (0.0.3's records) and, beside
    it, a lock collection, the run log and the open attempts. A store reads each kind
    of record in one round trip, and writes one record per applied migration right after
    it ran; the attempts of a run are opened in one batch, and its log entries appended
    in batches. Commands read the records, the open attempts and the lock, never the
    whole run log, so they do not slow down as history grows.
    """

    def read(self) -> list[HistoryRecord]:
        """Return every applied-migration record, in any order."""
        ...

    def record_applied(self, migration: Migration, record: HistoryRecord) -> None:
        """Record that ``migration`` was applied (or faked)."""
        ...

    def remove_applied(self, record: HistoryRecord) -> None:
        """Forget an applied migration after its ``down`` ran; matched by filename."""
        ...

    def lock_state(self) -> LockState | None:
        """The newest lock generation and the server's time, or ``None`` if never locked."""
        ...

    def try_lock(self, holder: Holder, lease_s: float) -> LockState:
        """Try once to take the lock; return the lock as it now is.

        Taking a free lock (never taken, released, or expired on the server's clock)
        must be race-safe: of many callers exactly one may succeed. The caller holds the
        lock when the returned state's holder is ``holder``.
        """
        ...

    def renew_lock(self, generation: int) -> bool:
        """Refresh the heartbeat of ``generation``; ``False`` if it is no longer the newest."""
        ...

    def release_lock(self, generation: int) -> None:
        """Release ``generation`` (a no-op if it is no longer the newest)."""
        ...

    def append_log(self, entries: Sequence[LogEntry]) -> None:
        """Append entries to the run log, a run's batch at once (never changed or removed
        afterwards)."""
        ...

    def read_log(self) -> list[LogEntry]:
        """Every run-log entry, oldest first (for ``alley history``)."""
        ...

    def open_attempts(self, entries: Sequence[LogEntry]) -> None:
        """Claim every step of a plan (one attempt per filename) before the first runs.

        All or nothing, and race-safe: if an attempt at any of these filenames is
        already open, raise :class:`alley.errors.IntegrityError` and leave none of
        ``entries`` open. This is the guard against a double run that holds even
        without the lock, and what a crash leaves behind.
        """
        ...

    def update_attempt(self, entry: LogEntry) -> None:
        """Replace the open attempt at ``entry.filename`` (it failed or was interrupted)."""
        ...

    def close_attempts(self, filenames: Sequence[str], run_id: str | None = None) -> None:
        """Close the open attempts at these filenames (settled, or decided by ``mark``);
        with ``run_id``, only those that run opened."""
        ...

    def read_open(self) -> list[LogEntry]:
        """Every open attempt: few, whatever the length of history."""
        ...


class State(enum.StrEnum):
    APPLIED = "applied"
    PENDING = "pending"


class Attempt(enum.StrEnum):
    """What became of the latest attempt at a migration, from the run log."""

    RUNNING = "running"  # started by a run that still holds the lock
    INTERRUPTED = "interrupted"  # started by a run that died: a person must decide
    FAILED = "failed"  # raised; pending, and runs again on the next up


class Drift(enum.StrEnum):
    """How an applied migration's file differs from what was applied."""

    CHANGED = "changed"
    RENAMED = "renamed"
    DELETED = "deleted"
    UNKNOWN = "unknown"  # a 0.0.3 record: no checksum to compare with


@dataclass(frozen=True)
class MigrationStatus:
    """A migration's state, from its file (if any) and its history record (if any)."""

    id: int
    filename: str
    state: State
    migration: Migration | None
    record: HistoryRecord | None
    drift: Drift | None = None
    attempt: Attempt | None = None
    attempt_entry: LogEntry | None = None

    @property
    def applied_at(self) -> datetime | None:
        return self.record.date if self.record else None


@dataclass(frozen=True)
class Plan:
    """What a command will run, in order. An empty plan means there is nothing to do."""

    direction: Direction
    steps: tuple[MigrationStatus, ...]
    target: int | None = None

    def __bool__(self) -> bool:
        return bool(self.steps)


@dataclass(frozen=True)
class StatusReport:
    statuses: tuple[MigrationStatus, ...]
    warnings: tuple[str, ...] = ()

    @property
    def pending(self) -> tuple[MigrationStatus, ...]:
        return tuple(s for s in self.statuses if s.state is State.PENDING)

    @property
    def applied(self) -> tuple[MigrationStatus, ...]:
        return tuple(s for s in self.statuses if s.state is State.APPLIED)


@dataclass(frozen=True)
class StepResult:
    id: int
    filename: str
    direction: Direction
    fake: bool
    duration_s: float


@dataclass(frozen=True)
class RunReport:
    direction: Direction
    steps: tuple[StepResult, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreateResult:
    id: int
    name: str
    location: str


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    default: bool
