"""The history store contract: three small protocols a store implements and proves.

A history store keeps what alley must never lose: which migrations are applied, the
lock that lets one run at a time change that, and the run log with the open attempts
that make a crash visible. Lock and history share one backend (a lock kept elsewhere
would guard nothing), so one plugin returns one object implementing all three
protocols (:class:`HistoryStore`), but each protocol is small and stands alone:

- :class:`Records` -- what is applied (3 methods);
- :class:`Lock` -- a lease lock judged on the store's own clock (4 methods);
- :class:`RunLog` -- the append-only log and the open attempts (4 methods).

A store on another engine (SQLite, PostgreSQL, a file) implements these directly;
it never subclasses the MongoDB store. ``alley.testing.store_contract`` holds the
suite that proves a store: subclass its test class, return your store from one
fixture, and run it.

Times: every ``datetime`` a store returns is timezone-aware UTC. The store decides
"now" by its own clock -- the server's for a server (MongoDB's ``hello.localTime``
and ``$currentDate``), the file system's host for an embedded store -- never the
caller's, so clients with wrong clocks agree on who holds the lock.

Fencing is the engine's job, not the store's: a run checks its lease before every
write it makes (see :mod:`alley.lease`). The store's part is that the writes that
could collide are unique inserts: one record per filename, one open attempt per
filename, one holder per lock generation. So no interleaving of runs, however
paused, can leave two records for one migration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from alley.errors import IntegrityError
from alley.model import HistoryRecord, Holder, LockState, LogEntry


class ClaimConflict(IntegrityError):
    """Another run has an attempt open at one of the filenames a run tried to claim."""

    def __init__(self, filename: str) -> None:
        super().__init__(
            f"{filename}: another run has an attempt at it open",
            hint="another alley ran at the same time; see 'alley status'",
        )
        self.filename = filename


class RecordExists(IntegrityError):
    """A record for this filename exists already: somebody else recorded the migration."""

    def __init__(self, filename: str) -> None:
        super().__init__(
            f"{filename} is already recorded as applied by another run",
            hint="see 'alley history' and 'alley status'",
        )
        self.filename = filename


@runtime_checkable
class Records(Protocol):
    """The applied migrations: alley 0.0.3's ``db_migrations``, one record each."""

    def read_records(self) -> list[HistoryRecord]:
        """Every record, in any order, in one read.

        Records written by other tools or by alley 0.0.3 are returned as they are
        (``checksum`` ``None``, nothing in ``extra``); a filename recorded twice (0.0.3
        had no lock) comes back once or twice, as the store prefers.
        """
        ...

    def add_record(self, record: HistoryRecord) -> None:
        """Record a migration as applied.

        Unique by ``record.filename`` among the records added here: if one with that
        filename exists, raise :class:`RecordExists` and change nothing. Race-safe: of
        two concurrent adds of one filename, exactly one succeeds. (A record another
        tool wrote, such as 0.0.3's, need not be checked: alley never adds a record for
        a migration it reads as applied, and such tools do not race through here.)

        Dates only move forward: the record is stored with ``record.date``, or with the
        newest date among the records already there plus one millisecond if that is
        later (a store with a clock behind another tool's, such as alley 0.0.3's
        client-side ``utcnow()``; 0.0.3's ``down`` takes the newest-dated record as the
        last applied). "The records already there" may be those this handle read with
        :meth:`read_records` or added since (a run adds records under the lock, after
        reading them); a handle that read none looks.
        """
        ...

    def remove_record(self, record: HistoryRecord) -> None:
        """Forget a migration (its ``down`` ran, or it was marked pending): remove every
        record with ``record.filename``. Removing what is not there is not an error."""
        ...


@runtime_checkable
class ReplacesRecords(Protocol):
    """Optional, beside :class:`Records`: accept an applied migration's edit or rename
    without changing the order of the records' dates.

    ``alley mark ID --applied`` on drift uses it when the store has it; otherwise it
    removes the old record and adds the new one, which dates it now.
    """

    def replace_record(self, old: HistoryRecord, new: HistoryRecord) -> None:
        """Put ``new`` in the place of every record with ``old.filename``, with
        ``old.date`` as its date (``new.date`` is ignored). A crash part-way may leave
        both, never neither."""
        ...


@runtime_checkable
class JoinsTransactions(Protocol):
    """Optional, beside :class:`Records`: write a migration's record inside the
    migration's own MongoDB transaction (``transaction = True``, see
    :mod:`alley.transactions`), so the step's data and its record commit together.

    A store without it cannot: the pre-flight refuses a transactional migration with
    it (exit 3) before anything runs. A store in another system (SQLite, PostgreSQL, a
    file) cannot take part in a MongoDB transaction and should not implement it.
    """

    def joins_transactions_of(self, client: Any) -> bool:
        """Whether :meth:`records_in` can write through a session of ``client`` (the
        pymongo ``MongoClient`` the migrations use): the store's records live on that
        client, in a database where MongoDB allows transactions."""
        ...

    def records_in(self, session: Any) -> Records:
        """The records, written through ``session`` (a pymongo ``ClientSession`` in a
        transaction): ``add_record`` and ``remove_record`` as :class:`Records` says,
        their writes committed or aborted with the transaction. Reads need not go
        through it."""
        ...


@runtime_checkable
class Lock(Protocol):
    """A lease lock in generations: each taking of the lock is a new generation.

    A generation is *free* when released or when its lease ran out on the store's
    clock (``heartbeat_at + lease_s <= now``); only then can the next be taken.
    """

    def lock_state(self) -> LockState | None:
        """The newest generation with the store's current time, or ``None`` if the lock
        was never taken."""
        ...

    def try_lock(self, holder: Holder, lease_s: float) -> LockState:
        """Try once, without waiting, to take the lock for ``holder``.

        If the newest generation is free, take generation *newest + 1* for ``holder``,
        with its heartbeat at the store's now. Of many concurrent callers (threads or
        processes) exactly one may take a given generation. Return the newest
        generation as it now is: the caller holds the lock when its holder's
        ``run_id`` is ``holder.run_id``.
        """
        ...

    def renew_lock(self, generation: int) -> bool:
        """Move ``generation``'s heartbeat to the store's now.

        Return ``True`` only if ``generation`` is still the newest and not released;
        ``False`` tells its holder the lock was taken over or force-released.
        """
        ...

    def release_lock(self, generation: int) -> None:
        """Release ``generation``; a no-op when a newer generation exists."""
        ...


@runtime_checkable
class RunLog(Protocol):
    """The append-only run log, and the open attempts (at most one per filename).

    An *open attempt* is a :class:`~alley.model.LogEntry` kept under its migration's
    filename from the moment a run claims the step until its outcome is logged, and
    after that while the step failed or was interrupted and nobody decided yet. It is
    the guard against two runs doing one step, and what a crash leaves behind.
    """

    def read_open(self) -> list[LogEntry]:
        """Every open attempt, in any order: few, however long history is."""
        ...

    def open_attempts(self, claims: Sequence[LogEntry]) -> None:
        """Open an attempt per entry (a run's whole plan, before its first step runs).

        All or nothing, race-safe: if an attempt is open at any of these filenames,
        raise :class:`ClaimConflict` naming the first and leave none of ``claims``
        open.
        """
        ...

    def log(
        self,
        entries: Sequence[LogEntry],
        *,
        close: Sequence[str] = (),
        keep_open: Sequence[LogEntry] = (),
    ) -> None:
        """Append ``entries`` to the run log, then settle open attempts.

        In this order, so that a crash in between logs an outcome twice rather than
        never: append ``entries`` (never changed or removed afterwards); close the
        attempts at the filenames ``close``; replace (or open) the attempts at the
        filenames of ``keep_open`` with those entries (a step that failed or was
        interrupted stays open with its outcome).
        """
        ...

    def read_log(self) -> list[LogEntry]:
        """Every run-log entry, oldest first by ``(generation, seq)``."""
        ...


@runtime_checkable
class HistoryStore(Records, Lock, RunLog, Protocol):
    """What ``alley_history_store`` returns: the three protocols on one backend."""


__all__ = [
    "ClaimConflict",
    "HistoryStore",
    "JoinsTransactions",
    "Lock",
    "RecordExists",
    "Records",
    "ReplacesRecords",
    "RunLog",
]
