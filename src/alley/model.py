"""The values alley works with: migrations, history records, statuses, plans and reports.

Plain frozen dataclasses with no I/O, so planning can be tested without files or a
server, and reports can be rendered as a table or as JSON alike. Every ``datetime``
in them is timezone-aware UTC, read off the history store's clock (the server's, for a
server), never this machine's. The store protocols are in :mod:`alley.store`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
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

    :ivar id: the migration's id.
    :ivar filename: the migration's filename when it was applied; records match
        migrations by it (0.0.3's rule), and a store keeps at most one per filename.
    :ivar date: when it was applied, aware UTC on the store's clock; ``None`` when a
        foreign record has no usable date.
    :ivar checksum: :attr:`Migration.checksum` of the source that was applied;
        ``None`` for records written by 0.0.3 (no drift check is possible).
    :ivar extra: everything else the record holds, kept as is: alley writes
        ``duration_s``, ``fake``, ``alley_version``, ``host``, ``user``, ``pid``,
        ``run_id`` (and ``marked`` for ``alley mark``); a store may add its own keys.
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
    """The default LoadedMigration: the two functions found in a migration module.

    ``idempotent`` is the module's ``idempotent = True``: the migration declares it is
    safe to run again after it failed part-way, so such a failure never waits for a
    person.

    ``transaction`` is the module's ``transaction = True``: its ``up``/``down`` and its
    history record are written in one transaction (:mod:`alley.transactions`), so a
    failure leaves neither.
    """

    up: Callable[..., Any] | None
    down: Callable[..., Any] | None
    idempotent: bool = False
    transaction: bool = False


@dataclass(frozen=True)
class Holder:
    """Who runs a command: written into the lock and every run-log entry.

    :ivar run_id: random, unique per command run; what the lock and attempts compare.
    :ivar host: the machine's host name. :ivar pid: its process id.
    :ivar user: the OS user. :ivar alley_version: alley's version.
    :ivar command: ``up``, ``down`` or ``mark``.
    """

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

    Expiry is judged on the store's clock only: ``heartbeat_at`` is written with the
    store's time and compared with ``server_now``, so a client with a wrong clock can
    neither steal a live lock nor keep a dead one.

    :ivar generation: 1, 2, 3...: one per taking of the lock.
    :ivar holder: who took this generation.
    :ivar acquired_at: when it was taken (aware UTC, store's clock).
    :ivar heartbeat_at: its last renewal (aware UTC, store's clock).
    :ivar lease_s: how long after ``heartbeat_at`` the lease ends.
    :ivar released: whether its holder (or ``unlock``) released it.
    :ivar server_now: the store's clock when this state was read (aware UTC).
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

    :ivar step: ``<direction>:<filename>:<run id>``, the same for a step's attempt
        and all its log entries.
    :ivar event: what this entry says happened.
    :ivar migration_id: the migration's id. :ivar filename: its filename (the open
        attempt's key). :ivar direction: ``up`` or ``down``.
    :ivar at: when the step started (for a decision: when it was made); aware UTC on
        the store's clock.
    :ivar holder: the run that wrote it.
    :ivar checksum: the source's checksum when the step ran.
    :ivar duration_s: how long the step ran (outcomes only).
    :ivar fake: recorded without running (``--fake``).
    :ivar error: one line: why it failed, or what settled it.
    :ivar resolves: for a decision, the ``step`` keys of the attempts it settled.
    :ivar generation: the lock generation held when written; with ``seq`` it orders
        entries across runs. :ivar seq: the order within one run.
    :ivar writes: for a failed step, how many write commands its code sent before it
        raised (``None``: unknown, counted as some).
    :ivar checkpoints: where each of the step's batch helpers
        (:meth:`alley.data.Step.backfill`) got to: the step resumes from them when it
        failed or was interrupted having written only through them.
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
    generation: int = 0
    seq: int = 0
    writes: int | None = None
    checkpoints: tuple[Checkpoint, ...] = ()

    @property
    def checkpointed_done(self) -> int:
        """How many documents the step's batch helpers did, from its checkpoints."""
        return sum(c.done for c in self.checkpoints)


@dataclass(frozen=True)
class Checkpoint:
    """Where one batch helper of a step got to, written after each batch it applied.

    :ivar name: the helper's name in the step (``users#1``: its collection and its
        place among the step's helpers, or the ``name=`` it was given).
    :ivar last_id: the ``_id`` of the last document of the last batch applied (any
        BSON value); the helper resumes after it.
    :ivar done: how many documents it went through so far (all batches, all attempts).
    :ivar finished: whether it went through its whole collection.
    """

    name: str
    last_id: Any
    done: int
    finished: bool = False

    def to_document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "last_id": self.last_id,
            "done": self.done,
            "finished": self.finished,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Checkpoint:
        return cls(
            name=str(document["name"]),
            last_id=document.get("last_id"),
            done=int(document.get("done") or 0),
            finished=bool(document.get("finished", False)),
        )


@dataclass(frozen=True)
class BatchProgress:
    """A progress event: one batch of a batch helper applied (or a helper started,
    ``batch == 0``, or finished, ``finished``).

    :ivar filename: the migration's filename. :ivar name: the helper's checkpoint name
        (``users#1``). :ivar collection: the collection it walks.
    :ivar done: documents gone through so far (including those of earlier attempts it
        resumed from). :ivar total: the estimate of all it will go through (done so
        far plus what its filter still selects), ``None`` when unknown.
    :ivar batch: the batch's number in this attempt (1, 2, ...).
    :ivar last_id: the last ``_id`` of the batch.
    :ivar rate_per_s: documents per second in this attempt.
    :ivar elapsed_s: seconds since the helper started in this attempt.
    :ivar eta_s: seconds left at this rate, ``None`` when unknown.
    :ivar direction: ``up`` or ``down``.
    :ivar finished: the helper's last event: it went through its collection.
    :ivar resumed_from: documents done by earlier attempts it resumed after.
    """

    filename: str
    name: str
    collection: str
    done: int
    total: int | None
    batch: int
    last_id: Any
    rate_per_s: float
    elapsed_s: float
    eta_s: float | None
    direction: Direction = Direction.UP
    finished: bool = False
    resumed_from: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``last_id`` as its string form)."""
        return {
            "filename": self.filename,
            "name": self.name,
            "collection": self.collection,
            "direction": str(self.direction),
            "done": self.done,
            "total": self.total,
            "batch": self.batch,
            "last_id": None if self.last_id is None else str(self.last_id),
            "rate_per_s": round(self.rate_per_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 3),
            "finished": self.finished,
            "resumed_from": self.resumed_from,
        }


ProgressCallback = Callable[[BatchProgress], None]


class State(enum.StrEnum):
    APPLIED = "applied"
    PENDING = "pending"


class Attempt(enum.StrEnum):
    """What became of the latest attempt at a migration, from the run log."""

    RUNNING = "running"  # started by a run that still holds the lock
    INTERRUPTED = "interrupted"  # started by a run that died: a person must decide
    FAILED = "failed"  # raised having written nothing (or idempotent): runs again
    FAILED_AFTER_WRITING = "failed-after-writing"  # raised after writing: a person decides
    RESUMABLE = "resumable"  # failed or stopped having written only through checkpointed
    # batch helpers: the next up runs it again, each helper resuming after its checkpoint


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
    notes: tuple[str, ...] = ()

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
    notes: tuple[str, ...] = ()


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


def __getattr__(name: str) -> Any:
    # ``alley.model.HistoryStore`` was the store protocol's home before alley.store.
    if name == "HistoryStore":
        from alley.store import HistoryStore

        return HistoryStore
    raise AttributeError(f"module 'alley.model' has no attribute {name!r}")
