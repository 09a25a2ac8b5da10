"""The values alley works with: migrations, history records, statuses, plans and reports.

Plain frozen dataclasses with no I/O, so planning can be tested without files or a
server, and reports can be rendered as a table or as JSON alike.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from alley.checksum import source_checksum

if TYPE_CHECKING:
    from pymongo.database import Database


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
        return source_checksum(self.source)


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


class HistoryStore(Protocol):
    """Where applied migrations are recorded. The default is the ``db_migrations`` collection.

    A store reads all of its records at once (one round trip), and writes one record per
    applied migration right after the migration ran.
    """

    def read(self) -> list[HistoryRecord]:
        """Return every record, in any order."""
        ...

    def record_applied(self, migration: Migration, record: HistoryRecord) -> None:
        """Record that ``migration`` was applied (or faked)."""
        ...

    def remove_applied(self, record: HistoryRecord) -> None:
        """Forget an applied migration after its ``down`` ran; matched by filename."""
        ...


class State(enum.StrEnum):
    APPLIED = "applied"
    PENDING = "pending"


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

    @property
    def drifted(self) -> tuple[MigrationStatus, ...]:
        return tuple(s for s in self.statuses if s.drift not in (None, Drift.UNKNOWN))


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


if TYPE_CHECKING:
    MigrationDatabase = Database[Mapping[str, Any]]
