"""Data migrations on big collections: the step context a migration may take.

A migration function that takes two parameters gets a :class:`Step` as its second::

    def up(db, step):
        step.backfill(
            "users",
            where={"full_name": {"$exists": False}},  # the documents still to do
            set={"full_name": {"$concat": ["$first", " ", "$last"]}},
        )

:meth:`Step.backfill` walks a collection in ``_id`` order, one batch at a time, and
after each batch writes a *checkpoint* (the batch's last ``_id``) into the step's open
attempt in the run log. A step that failed, was interrupted (Ctrl-C, ``kill -9``, a
server restart) having written only through these helpers is *resumable*: the next
``alley up`` runs it again and each helper starts after its checkpoint. ``where`` is
part of every update's filter, so a document already done is never updated again, even
when the batch in flight at a crash is replayed.

The helper streams: it holds one batch at a time, whatever the collection's size.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from alley.errors import UsageError
from alley.model import (
    BatchProgress,
    Checkpoint,
    Direction,
    Migration,
    ProgressCallback,
)

if TYPE_CHECKING:
    from alley.write_watch import Writes

#: Called with all the step's checkpoints after each batch; the engine writes them
#: into the step's open attempt (a fenced write: a run that lost its lock stops there).
CheckpointCallback = Callable[[tuple[Checkpoint, ...]], None]

#: A transform: a document in, an update document (or pipeline) or ``None`` out.
Transform = Callable[[dict[str, Any]], "Mapping[str, Any] | Sequence[Mapping[str, Any]] | None"]


_T = TypeVar("_T")


class AsyncConnection(Protocol):
    """What an ``async def`` migration runs on: PyMongo's ``AsyncDatabase`` (``db``)
    and the event loop its client belongs to (``run`` runs a coroutine to its end on
    it, in the calling thread, raising ``KeyboardInterrupt`` at Ctrl-C); ``closed``
    once closed. Made by the ``alley_connect_async`` hook."""

    @property
    def db(self) -> Any: ...

    @property
    def closed(self) -> bool: ...

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T: ...

    def close(self) -> None: ...


class DryRunStop(Exception):
    """Raised by a dry run's read-only database when a migration writes outside
    alley's helpers: what it would have written is not counted."""


@dataclass(frozen=True)
class BackfillResult:
    """What one :meth:`Step.backfill` did.

    :ivar matched: documents its batches went through in this attempt (for a dry run:
        how many its filter selects now, after its checkpoint).
    :ivar modified: documents the server reports changed in this attempt.
    :ivar batches: batches applied in this attempt.
    :ivar resumed_from: documents earlier attempts had done (its checkpoint's ``done``).
    """

    matched: int
    modified: int
    batches: int
    resumed_from: int = 0


@dataclass(frozen=True)
class PlannedWork:
    """What a dry run of a step would do: one per helper call.

    :ivar kind: ``backfill``, ``create_index``, ``drop_index`` or ``rebuild_index``.
    :ivar collection: the collection. :ivar name: the backfill's checkpoint name, or
        the index's keys/name as given.
    :ivar documents: for a backfill, how many documents its filter selects now (after
        its checkpoint, when resuming).
    :ivar keys: an index's keys; :ivar options: its options.
    """

    kind: str
    collection: str
    name: str
    documents: int | None = None
    keys: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _monotonic() -> float:
    return time.monotonic()


class Step:
    """The step context a migration function gets as its second parameter.

    :param db: the database (a pymongo ``Database``) the migration runs on.
    :param migration: the migration (or its filename).
    :param direction: ``up`` or ``down``.
    :param dry_run: count what would change; write nothing (``up --plan``).
    :param checkpoints: where each helper of an earlier attempt got to; its helpers
        resume after them (given by the engine when the step is resumable).
    :param on_checkpoint: called with all the step's checkpoints after each batch.
    :param on_progress: called with a :class:`~alley.model.BatchProgress` as each helper
        starts, after each batch, and as it finishes.
    :param writes: the engine's write count for the step; the helpers' own writes are
        not counted in it (a resumable step writes only through them).
    :param clock: a monotonic clock (seconds); :param sleep: how to wait (``rate`` and
        ``pause``). Tests inject both.
    :param async_connection: gives the command's :class:`AsyncConnection`, made on
        first use and reused by every async step of the command (the engine passes it;
        it raises an :class:`~alley.errors.AlleyError` where async migrations cannot
        run). ``None``: this step has none.

    :ivar db: :ivar filename: :ivar direction: :ivar dry_run: as given.
    :ivar resumed: whether this attempt resumes an earlier one from its checkpoints.
    :ivar planned: in a dry run, what each helper would do.
    :ivar notes: what the step's helpers want the user told (once).
    """

    def __init__(
        self,
        db: Any,
        migration: Migration | str,
        direction: Direction | str = Direction.UP,
        *,
        dry_run: bool = False,
        checkpoints: Sequence[Checkpoint] = (),
        on_checkpoint: CheckpointCallback | None = None,
        on_progress: ProgressCallback | None = None,
        writes: Writes | None = None,
        clock: Callable[[], float] = _monotonic,
        sleep: Callable[[float], None] = time.sleep,
        async_connection: Callable[[], AsyncConnection] | None = None,
    ) -> None:
        self.db = db
        self.async_connection = async_connection
        self.filename = migration if isinstance(migration, str) else migration.filename
        self.direction = Direction(direction)
        self.dry_run = dry_run
        self.resumed = bool(checkpoints)
        self.planned: list[PlannedWork] = []
        self.notes: list[str] = []
        self._resume_from = {c.name: c for c in checkpoints}
        # Every checkpoint of the step, this attempt's and those it resumed from, in order.
        self._checkpoints: dict[str, Checkpoint] = dict(self._resume_from)
        self._on_checkpoint = on_checkpoint
        self._on_progress = on_progress
        self._writes = writes
        self._clock = clock
        self._sleep = sleep
        self._helpers = 0
        self._names: set[str] = set()

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        """Where each helper of the step got to, so far."""
        return tuple(self._checkpoints.values())

    # -- backfill -------------------------------------------------------------------------

    def backfill(
        self,
        collection: str,
        *,
        where: Mapping[str, Any] | None = None,
        set: Mapping[str, Any] | None = None,
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        transform: Transform | None = None,
        batch_size: int = 1000,
        rate: float | None = None,
        pause: float = 0.0,
        name: str | None = None,
    ) -> BackfillResult:
        """Update every document of ``collection`` that ``where`` selects, in ``_id``
        order, ``batch_size`` at a time, checkpointing after each batch.

        Exactly one of:

        - ``set``: fields computed on the server (a ``$set`` pipeline stage's document),
          applied with one ``update_many`` per batch over its ``_id`` range;
        - ``update``: an update document or pipeline, applied the same way;
        - ``transform``: a Python function from a document to an update document (or
          pipeline, or ``None`` to leave it), applied with one ``bulk_write`` per batch.

        :param where: the documents still to do. Recommended: it is part of every
            update's filter, so a document already done is never updated twice, even
            when a batch is replayed after a crash.
        :param rate: at most this many documents per second (sleeps between batches).
        :param pause: seconds to wait between batches.
        :param name: the checkpoint's name; default ``<collection>#<n>``, ``n`` the
            helper's place in the step (give one when the step's code may change order).
        :raises UsageError: not exactly one of ``set``, ``update``, ``transform``; a
            batch size under 1; a name used twice in the step.
        """
        given = [k for k, v in (("set", set), ("update", update), ("transform", transform)) if v]
        if len(given) != 1:
            raise UsageError(
                f"step.backfill({collection!r}) needs exactly one of set=, update= or "
                f"transform= (got {', '.join(given) or 'none'})"
            )
        if batch_size < 1:
            raise UsageError(f"step.backfill({collection!r}): batch_size must be 1 or more")
        if rate is not None and rate <= 0:
            raise UsageError(f"step.backfill({collection!r}): rate must be above 0")
        self._helpers += 1
        name = name or f"{collection}#{self._helpers}"
        if name in self._names:
            raise UsageError(
                f"step.backfill({collection!r}): the name {name!r} is used twice in "
                f"{self.filename}",
                hint="give each backfill of a step its own name=",
            )
        self._names.add(name)
        where = dict(where or {})
        start = self._resume_from.get(name)
        if not where and not self.dry_run:
            self._note(
                f"{self.filename}: backfill {name} has no where=: a resume after a crash "
                "may apply its last batch again (see docs/data-migrations.md)"
            )
        if start is not None and start.finished:
            self._checkpoints[name] = start
            return BackfillResult(0, 0, 0, resumed_from=start.done)
        walk = _Walk(
            step=self,
            collection=self.db[collection],
            name=name,
            where=where,
            start=start,
            batch_size=batch_size,
        )
        if self.dry_run:
            count = walk.count_left()
            self.planned.append(PlannedWork("backfill", collection, name, documents=count))
            return BackfillResult(count, 0, 0, resumed_from=walk.done_before)
        if transform is not None:
            return walk.run(
                lambda batch, last: walk.transform_batch(batch, last, transform), None, rate, pause
            )
        change: Any = [{"$set": dict(set)}] if set else update
        if isinstance(change, Mapping):
            change = dict(change)
        elif isinstance(change, Sequence):
            change = [dict(stage) for stage in change]
        return walk.run(
            lambda batch, last: walk.server_batch(batch, last, change), {"_id": 1}, rate, pause
        )

    # -- indexes ----------------------------------------------------------------------------

    def create_index(self, collection: str, keys: Any, **options: Any) -> Any:
        """Create an index unless an equivalent one exists (:func:`alley.indexes.ensure_index`).

        In a dry run it writes nothing and is listed in :attr:`planned`."""
        if self.dry_run:
            self.planned.append(
                PlannedWork("create_index", collection, str(keys), keys=keys, options=options)
            )
            return None
        from alley import indexes

        with self.helper_writes():
            return indexes.ensure_index(self.db, collection, keys, **options)

    def drop_index(self, collection: str, name_or_keys: Any) -> Any:
        """Drop an index by name or keys if it exists (:func:`alley.indexes.drop_index`).

        In a dry run it writes nothing and is listed in :attr:`planned`."""
        if self.dry_run:
            self.planned.append(
                PlannedWork("drop_index", collection, str(name_or_keys), keys=name_or_keys)
            )
            return None
        from alley import indexes

        with self.helper_writes():
            return indexes.drop_index(self.db, collection, name_or_keys)

    def rebuild_index(self, collection: str, keys: Any, *, replaces: str, **options: Any) -> Any:
        """Replace index ``replaces`` with one of other keys or options, checking first
        what could refuse it (:func:`alley.indexes.rebuild_index`).

        In a dry run it writes nothing and is listed in :attr:`planned`."""
        if self.dry_run:
            self.planned.append(
                PlannedWork(
                    "rebuild_index",
                    collection,
                    str(keys),
                    keys=keys,
                    options={**options, "replaces": replaces},
                )
            )
            return None
        from alley import indexes

        with self.helper_writes():
            return indexes.rebuild_index(self.db, collection, keys, replaces=replaces, **options)

    # -- for the helpers ----------------------------------------------------------------------

    @contextlib.contextmanager
    def helper_writes(self) -> Iterator[None]:
        """Writes in this block are the helpers' own: not counted as the step's."""
        if self._writes is None:
            yield
            return
        with self._writes.paused():
            yield

    def _checkpoint(self, checkpoint: Checkpoint) -> None:
        self._checkpoints[checkpoint.name] = checkpoint
        if self._on_checkpoint is not None:
            self._on_checkpoint(self.checkpoints)

    def _progress(self, event: BatchProgress) -> None:
        if self._on_progress is not None:
            self._on_progress(event)

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


_current: contextvars.ContextVar[Step | None] = contextvars.ContextVar(
    "alley_current_step", default=None
)


@contextlib.contextmanager
def running(step: Step) -> Iterator[Step]:
    """Make ``step`` the one :func:`current_step` returns while a migration runs (the
    engine does, around each step; an executor plugin passes it on)."""
    token = _current.set(step)
    try:
        yield step
    finally:
        _current.reset(token)


def current_step() -> Step | None:
    """The step context of the migration running now, for executor plugins."""
    return _current.get()


def _and(*filters: Mapping[str, Any]) -> dict[str, Any]:
    parts = [dict(f) for f in filters if f]
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    return {"$and": parts}


@dataclass
class _Walk:
    """One backfill's walk through its collection, batch by batch."""

    step: Step
    collection: Any
    name: str
    where: dict[str, Any]
    start: Checkpoint | None
    batch_size: int
    matched: int = 0
    modified: int = 0
    batches: int = 0
    rate: float | None = None
    pause: float = 0.0
    began: float = 0.0

    @property
    def done_before(self) -> int:
        return self.start.done if self.start is not None else 0

    def _after(self, last_id: Any) -> dict[str, Any]:
        return {} if last_id is None else {"_id": {"$gt": last_id}}

    def count_left(self) -> int:
        last = self.start.last_id if self.start is not None else None
        return int(self.collection.count_documents(_and(self.where, self._after(last))))

    def _estimate(self) -> int | None:
        try:
            if self.where or self.start is not None:
                return self.done_before + self.count_left()
            return int(self.collection.estimated_document_count())
        except Exception:  # an estimate is optional; the walk is not
            return None

    def run(
        self,
        apply: Callable[[list[dict[str, Any]], Any], tuple[int, int]],
        projection: Mapping[str, Any] | None,
        rate: float | None,
        pause: float,
    ) -> BackfillResult:
        step = self.step
        last = self.start.last_id if self.start is not None else None
        done = self.done_before
        total = self._estimate()
        began = self.began = step._clock()
        self.rate, self.pause = rate, pause
        step._progress(self._event(done, total, 0, last, began, resumed_from=done))
        if self.start is None:
            # Written before the first batch's write, so that a step killed in its first
            # batch is resumable (from the start; ``where`` skips what that batch did)
            # rather than interrupted with an unknown effect.
            with step.helper_writes():
                step._checkpoint(Checkpoint(self.name, None, 0))
        for batch in self._batches(projection):
            matched, modified = apply(batch, last)
            finished = len(batch) < self.batch_size
            self.batches += 1
            self.matched += matched
            self.modified += modified
            done += matched
            last = batch[-1]["_id"]
            if total is not None and done > total:
                total = done
            with step.helper_writes():
                step._checkpoint(Checkpoint(self.name, last, done, finished=finished))
            step._progress(self._event(done, total, self.batches, last, began))
        final = Checkpoint(self.name, last, done, finished=True)
        if step._checkpoints.get(self.name) != final:
            with step.helper_writes():
                step._checkpoint(final)
        step._progress(self._event(done, done, self.batches, last, began, finished=True))
        return BackfillResult(self.matched, self.modified, self.batches, self.done_before)

    def _batches(self, projection: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        """The documents still to do, in ``_id`` order, ``batch_size`` at a time, read
        from one cursor: one query for the whole walk, not one per batch (a query per
        batch costs a sort on servers without MongoDB's ``_id`` index scans). A batch is
        asked for only once the one before it is applied, so if the server drops the
        cursor (idle past its timeout during a long ``pause``), the walk reopens it after
        the last ``_id`` given out."""
        from pymongo.errors import CursorNotFound

        last = self.start.last_id if self.start is not None else None
        while True:
            cursor = (
                self.collection.find(_and(self.where, self._after(last)), projection)
                .sort("_id", 1)
                .batch_size(self.batch_size)
            )
            batch: list[dict[str, Any]] = []
            with contextlib.closing(cursor):
                try:
                    for document in cursor:
                        batch.append(document)
                        if len(batch) == self.batch_size:
                            yield batch
                            last = batch[-1]["_id"]
                            batch = []
                except CursorNotFound:
                    continue  # reopened after ``last``; a partial batch is read again
            if batch:
                yield batch
            return

    def _wait(self) -> None:
        """Before a batch's write, from the second on: ``pause``, and what ``rate``
        asks for (this attempt's documents so far are due at ``matched / rate``)."""
        if not self.batches:
            return
        step = self.step
        wait = self.pause
        if self.rate is not None:
            due = self.matched / self.rate - (step._clock() - self.began)
            wait = max(wait, due)
        if wait > 0:
            step._sleep(wait)

    def _event(
        self,
        done: int,
        total: int | None,
        batch: int,
        last: Any,
        began: float,
        *,
        finished: bool = False,
        resumed_from: int | None = None,
    ) -> BatchProgress:
        elapsed = max(self.step._clock() - began, 0.0)
        rate = self.matched / elapsed if elapsed > 0 else 0.0
        left = None if total is None else max(total - done, 0)
        eta = None if left is None or rate <= 0 else left / rate
        if finished:
            eta = 0.0
        return BatchProgress(
            filename=self.step.filename,
            name=self.name,
            collection=self.collection.name,
            done=done,
            total=total,
            batch=batch,
            last_id=last,
            rate_per_s=rate,
            elapsed_s=elapsed,
            eta_s=eta,
            direction=self.step.direction,
            finished=finished,
            resumed_from=self.done_before if resumed_from is None else resumed_from,
        )

    # -- the two ways to apply a batch -------------------------------------------------------

    def server_batch(self, batch: list[dict[str, Any]], last: Any, change: Any) -> tuple[int, int]:
        """One ``update_many`` over the batch's ``_id`` range (after the previous batch's
        last ``_id``, up to this one's): the server computes the change."""
        bounds = {"_id": {**self._after(last).get("_id", {}), "$lte": batch[-1]["_id"]}}
        self._wait()
        with self.step.helper_writes():
            result = self.collection.update_many(_and(self.where, bounds), change)
        return result.matched_count, result.modified_count

    def transform_batch(
        self, batch: list[dict[str, Any]], last: Any, transform: Transform
    ) -> tuple[int, int]:
        """The batch's documents transformed in Python, written with one ``bulk_write``
        (each update's filter keeps ``where``)."""
        from pymongo import UpdateOne

        operations = []
        for document in batch:
            change = transform(document)
            if change is None:
                continue
            if not isinstance(change, Mapping):
                change = [dict(stage) for stage in change]
            operations.append(UpdateOne(_and({"_id": document["_id"]}, self.where), change))
        modified = 0
        if operations:
            self._wait()
            chunk = _updates_per_command(self.collection.database)
            with self.step.helper_writes():
                for first in range(0, len(operations), chunk):
                    result = self.collection.bulk_write(
                        operations[first : first + chunk], ordered=False
                    )
                    modified += result.modified_count
        return len(batch), modified


#: FerretDB 1.24 never answers an ``update`` command of 100 or more statements, and the
#: database stays stuck behind it (measured: 99 take 0.8 s, 100 time out; reads of that
#: database then hang too). pymongo sends a ``bulk_write`` as one command per 100,000
#: statements, so on FerretDB the helper splits a batch's updates itself.
FERRETDB_UPDATES_PER_COMMAND = 99
_UPDATES_PER_COMMAND: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _updates_per_command(db: Any) -> int:
    """How many update statements one command may carry on ``db``'s server (asked once
    per client)."""
    client = db.client
    if client not in _UPDATES_PER_COMMAND:
        info = client.admin.command("buildInfo")
        _UPDATES_PER_COMMAND[client] = (
            FERRETDB_UPDATES_PER_COMMAND if "ferretdbVersion" in info else 100_000
        )
    return _UPDATES_PER_COMMAND[client]


__all__ = [
    "AsyncConnection",
    "BackfillResult",
    "CheckpointCallback",
    "DryRunStop",
    "PlannedWork",
    "Step",
    "current_step",
    "running",
]
