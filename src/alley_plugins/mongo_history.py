"""History in the ``db_migrations`` collection, with alley 0.0.3's record format.

Each applied migration is one document ``{id, filename, date}`` (0.0.3's fields,
never renamed; alley sets ``_id`` to the filename, so one migration can have one
record however runs interleave) plus what alley records beside them: ``checksum``, ``duration_s``,
``fake``, ``alley_version``, ``host``, ``user``, ``pid``. The collection name can be
changed with ``history_collection`` in ``[tool.alley]``.

Beside it live ``<name>_lock`` (one document per lock generation, the newest few
kept), ``<name>_log`` (the append-only run log) and ``<name>_open`` (open attempts,
``_id`` = filename: each planned step's claim, guard and crash marker, removed once
the step's outcome is logged). The lock is built on
the one write that is race-safe on every server alley supports, FerretDB's SQLite
backend included: the insert of a unique ``_id``. Taking the lock, or taking over an
expired one, inserts the next generation; of many racers exactly one insert succeeds.
Compare-and-swap updates (``findAndModify`` with a filter) are never relied on: on
FerretDB they are not atomic (FerretDB issue 3040; see docs/testing.md). Time is the
server's: ``hello``'s ``localTime`` and ``$currentDate``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from alley.hookspecs import hookimpl
from alley.model import (
    Checkpoint,
    Direction,
    Event,
    HistoryRecord,
    Holder,
    LockState,
    LogEntry,
)
from alley.store import ClaimConflict, HistoryStore, RecordExists, Records

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from alley.settings import Settings

COLLECTION = "db_migrations"
# heartbeat_database: decide from the server (a sibling database on FerretDB's SQLite
# backend, the lock document elsewhere), or NONE for the lock document always.
AUTO: Any = None
NONE = "-"
# Lock generations kept: the newest few, for 'alley status' and post-mortems (the run
# log keeps who ran what); older ones are deleted every PRUNE_EVERY generations.
KEEP_GENERATIONS = 10
PRUNE_EVERY = 10
# Reads ask for everything in the first reply (up to 16 MB) instead of a first batch of
# 101 and more round trips, so a read is one round trip however long history is.
ONE_BATCH = 100_000
_ORIGINAL_FIELDS = ("_id", "id", "filename", "date", "checksum")
# BSON dates keep milliseconds: a record dated after another is at least this later.
ONE_MS = timedelta(milliseconds=1)


class MongoHistoryStore:
    """A :class:`alley.store.HistoryStore` over ``<name>`` and its ``_lock``, ``_log`` and
    ``_open`` collections."""

    def __init__(
        self, db: Database[Any], name: str = COLLECTION, heartbeat_database: str | None = AUTO
    ) -> None:
        self.db = db
        self.name = name
        self._heartbeat_database = heartbeat_database
        self.collection: Collection[Any] = db[name]
        self.locks: Collection[Any] = db[f"{name}_lock"]
        self.log_collection: Collection[Any] = db[f"{name}_log"]
        self.open: Collection[Any] = db[f"{name}_open"]
        # The newest record date this handle knows of (read_records, its own adds);
        # looked up once if it read none. See _record_date.
        self._newest_date: datetime | None = None
        self._newest_known = False

    # -- applied migrations (0.0.3's records) ------------------------------

    def read_records(self) -> list[HistoryRecord]:
        records: dict[str, HistoryRecord] = {}
        ids: dict[str, list[Any]] = {}
        newest: datetime | None = None
        for document in self.collection.find({}, batch_size=ONE_BATCH):
            record = _record(document)
            records.setdefault(record.filename, record)
            ids.setdefault(record.filename, []).append(document.get("_id"))
            if record.date is not None and (newest is None or record.date > newest):
                newest = record.date
        self._newest_date, self._newest_known = newest, True
        return [
            dataclasses.replace(record, extra={**record.extra, "_ids": ids[filename]})
            for filename, record in records.items()
        ]

    def add_record(self, record: HistoryRecord, *, session: Any = None) -> None:
        from pymongo.errors import PyMongoError

        # _id = filename: the one race-safe write on every server makes a second record
        # of one migration impossible, whoever writes it (0.0.3 wrote ObjectIds; both
        # read the same).
        document = _record_document(record, self._record_date(record.date))
        try:
            self.collection.insert_one(document, session=session)
        except PyMongoError as error:
            if _is_duplicate_key(error):
                raise RecordExists(record.filename) from None
            raise
        self._saw_date(document["date"])

    def replace_record(self, old: HistoryRecord, new: HistoryRecord) -> None:
        # The new record first, under the key alley writes (a crash leaves both, never
        # neither), then the old ones; old.date kept, so the order of the records'
        # dates, which 0.0.3's down reads, does not change.
        date = old.date if old.date is not None else self._record_date(new.date)
        document = _record_document(new, _to_ms(date) if date is not None else None)
        self.collection.replace_one({"_id": new.filename}, document, upsert=True)
        ids = old.extra.get("_ids")
        if ids is None:
            self.collection.delete_many({"filename": old.filename, "_id": {"$ne": new.filename}})
        elif others := [i for i in ids if i != new.filename]:
            self.collection.delete_many({"_id": {"$in": others}})

    def _record_date(self, date: datetime | None) -> datetime | None:
        """``date`` to the millisecond, or a millisecond after the newest record date if
        that is later: alley 0.0.3 dated records with its client's clock, which may be
        ahead of the server's, and its ``down`` rolls back from the newest-dated record.
        Under the lock no other alley adds records, so the newest date this handle read
        (the run read the records after taking the lock) or wrote is the newest there."""
        if date is None:
            return None
        if not self._newest_known:
            newest = next(
                iter(
                    self.collection.find({"date": {"$type": "date"}}, {"date": 1})
                    .sort("date", -1)
                    .limit(1)
                ),
                None,
            )
            self._newest_date = None if newest is None else _aware(newest["date"])
            self._newest_known = True
        date = _to_ms(date)
        if self._newest_date is not None and date < self._newest_date + ONE_MS:
            return self._newest_date + ONE_MS
        return date

    def _saw_date(self, date: datetime | None) -> None:
        if date is not None and (self._newest_date is None or date > self._newest_date):
            self._newest_date = date

    def remove_record(self, record: HistoryRecord, *, session: Any = None) -> None:
        # 0.0.3 removed every record with the filename (a migration recorded twice by
        # parallel 0.0.3 runs included). Deleting by _id is what the server finds fast
        # (FerretDB scans the collection for any other filter); read_records collected
        # them.
        ids = record.extra.get("_ids")
        if not ids:
            self.collection.delete_many({"filename": record.filename}, session=session)
            return
        # With the key alley writes under, so a record added since the read goes too.
        self.collection.delete_many({"_id": {"$in": [*ids, record.filename]}}, session=session)

    # -- a migration's transaction (alley.store.JoinsTransactions) ----------

    def joins_transactions_of(self, client: Any) -> bool:
        # The records must be written through a session of the migrations' client, and
        # MongoDB allows no transaction in admin, config or local.
        return client is self.db.client and self.db.name not in ("admin", "config", "local")

    def records_in(self, session: Any) -> Records:
        return _SessionRecords(self, session)

    # -- the lock -----------------------------------------------------------

    def server_now(self) -> datetime:
        return _server_time(self.db)

    def lock_state(self) -> LockState | None:
        newest = next(iter(self.locks.find({}).sort("_id", -1).limit(1)), None)
        if newest is None:
            return None
        return _lock_state(self._with_heartbeat(newest), self.server_now())

    # -- the heartbeat's own database ----------------------------------------------
    #
    # FerretDB's SQLite backend keeps each database in one file with one writer at a
    # time, and runs update_many as one short transaction per document that takes the
    # writer lock straight back: a heartbeat written to the migration's own database
    # waits 6 s typically and fails with SQLITE_BUSY after 10 s (measured, 5,000-doc
    # $rename: a 37 s gap between renewals). Reads and other databases are not blocked.
    # So on such a server the holder renews in a sibling database, and the lock
    # document names where (``heartbeat_in``) for every reader.

    def _heartbeat_collection(self) -> Collection[Any] | None:
        """Where this holder writes its heartbeat: ``None`` for the lock document itself."""
        name = self._heartbeat_database
        if name is AUTO:
            name = f"{self.db.name}_alley" if _single_writer_per_database(self.db) else None
        elif name in ("", NONE):
            name = None
        if name is None or name == self.db.name:
            return None
        return self.db.client[name][f"{self.name}_heartbeat"]

    def _with_heartbeat(self, document: dict[str, Any]) -> dict[str, Any]:
        where = document.get("heartbeat_in")
        if not where:
            return document
        database, _, collection = str(where).partition(".")
        beat = self.db.client[database][collection].find_one({"_id": document["_id"]})
        if beat is not None and _aware(beat["heartbeat_at"]) > _aware(document["heartbeat_at"]):
            return {**document, "heartbeat_at": beat["heartbeat_at"]}
        return document

    def try_lock(self, holder: Holder, lease_s: float) -> LockState:
        from pymongo.errors import PyMongoError

        current = self.lock_state()
        if current is not None and not current.free:
            return current
        now = current.server_now if current is not None else self.server_now()
        generation = current.generation + 1 if current is not None else 1
        heartbeats = self._heartbeat_collection()
        document = {
            "_id": generation,
            "holder": _holder_document(holder),
            "acquired_at": now,
            "heartbeat_at": now,
            "lease_s": lease_s,
            "released": False,
            "took_over_expired": current is not None and not current.released,
        }
        if heartbeats is not None:
            document["heartbeat_in"] = heartbeats.full_name
        try:
            self.locks.insert_one(document)
        except PyMongoError as error:
            if not _is_duplicate_key(error):
                raise
            return self.lock_state() or current  # type: ignore[return-value]
        if generation % PRUNE_EVERY == 0:
            # FerretDB reads a whole collection for any lookup by an int _id and never
            # sorts on the server: without pruning every command slows as runs pile up.
            self.locks.delete_many({"_id": {"$lte": generation - KEEP_GENERATIONS}})
            if heartbeats is not None:
                heartbeats.delete_many({"_id": {"$lte": generation - KEEP_GENERATIONS}})
        # Pruning breaks the one thing the unique _id guarantees, that a generation can
        # be inserted once: a racer that read the lock long ago and stalled could insert
        # a generation pruned since. Such an insert is never the newest, and this sees it.
        newest = self._newest_generation()
        if newest != generation:
            return self.lock_state() or _lock_state(document, now)
        if heartbeats is not None:
            # Made by the winner alone, now, before any migration runs: creating it
            # later would be DDL, which FerretDB serialises with everything else.
            try:
                heartbeats.insert_one({"_id": generation, "heartbeat_at": now})
            except PyMongoError as error:
                if not _is_duplicate_key(error):  # left by a pruned generation's racer
                    raise
                heartbeats.update_one({"_id": generation}, {"$set": {"heartbeat_at": now}})
        return _lock_state(document, now)

    def _newest_generation(self) -> int | None:
        newest = next(iter(self.locks.find({}, {"_id": 1}).sort("_id", -1).limit(1)), None)
        return None if newest is None else int(newest["_id"])

    def renew_lock(self, generation: int) -> bool:
        # Read first (reads are never blocked): an old generation's heartbeat is not moved.
        newest = next(
            iter(self.locks.find({}, {"released": 1, "heartbeat_in": 1}).sort("_id", -1).limit(1)),
            None,
        )
        if newest is None or newest["_id"] != generation or newest["released"]:
            return False
        where = newest.get("heartbeat_in")
        if where:
            database, _, collection = str(where).partition(".")
            beats = self.db.client[database][collection]
            beats.update_one({"_id": generation}, {"$currentDate": {"heartbeat_at": True}})
        else:
            self.locks.update_one({"_id": generation}, {"$currentDate": {"heartbeat_at": True}})
        return True

    def release_lock(self, generation: int) -> None:
        self.locks.update_one(
            {"_id": generation},
            {"$set": {"released": True}, "$currentDate": {"released_at": True}},
        )

    # -- the run log and open attempts ------------------------------------------

    def read_open(self) -> list[LogEntry]:
        return [_log_entry(d) for d in self.open.find({}, batch_size=ONE_BATCH)]

    def open_attempts(self, claims: Sequence[LogEntry]) -> None:
        from pymongo.errors import BulkWriteError

        if not claims:
            return
        documents = [{"_id": entry.filename, **_log_document(entry)} for entry in claims]
        try:
            self.open.insert_many(documents, ordered=True)
        except BulkWriteError as error:
            # Ordered: the claims before the conflict were inserted; take them back
            # (only this run's, never the other run's).
            self.open.delete_many(
                {
                    "_id": {"$in": [e.filename for e in claims]},
                    "holder.run_id": claims[0].holder.run_id,
                }
            )
            write_errors = error.details.get("writeErrors") or [{}]
            first = write_errors[0]
            if not _is_duplicate_key(first):
                raise
            raise ClaimConflict(claims[int(first.get("index", 0))].filename) from None

    def log(
        self,
        entries: Sequence[LogEntry],
        *,
        close: Sequence[str] = (),
        keep_open: Sequence[LogEntry] = (),
    ) -> None:
        if entries:
            self.log_collection.insert_many([_log_document(entry) for entry in entries])
        if close:
            # One command for a whole batch; the collection holds only open attempts,
            # so the scan FerretDB does for an $in filter stays small.
            self.open.delete_many({"_id": {"$in": list(close)}})
        for entry in keep_open:
            self.open.replace_one({"_id": entry.filename}, _log_document(entry), upsert=True)

    def read_log(self) -> list[LogEntry]:
        entries = [_log_entry(d) for d in self.log_collection.find({}, batch_size=ONE_BATCH)]
        return sorted(entries, key=lambda e: (e.generation, e.seq))


# Duplicate key: E11000 everywhere, but FerretDB 2.5 answers an upsert conflict with
# code 1 (InternalError) and the same words.
_DUPLICATE_CODES = frozenset({11000, 11001, 12582})


class _SessionRecords:
    """The store's records, written through a session (in a migration's transaction)."""

    def __init__(self, store: MongoHistoryStore, session: Any) -> None:
        self._store = store
        self._session = session

    def read_records(self) -> list[HistoryRecord]:
        return self._store.read_records()

    def add_record(self, record: HistoryRecord) -> None:
        self._store.add_record(record, session=self._session)

    def remove_record(self, record: HistoryRecord) -> None:
        self._store.remove_record(record, session=self._session)


def _is_duplicate_key(error: Any) -> bool:
    if isinstance(error, dict):
        code, message = error.get("code"), str(error.get("errmsg", ""))
    else:
        code, message = getattr(error, "code", None), str(error)
    return code in _DUPLICATE_CODES or "duplicate key" in message.lower()


def _single_writer_per_database(db: Database[Any]) -> bool:
    """Whether the server writes each database through one writer at a time: FerretDB
    1.x (its SQLite backend; PostgreSQL's FerretDB 1.x is treated alike) and FerretDB 2
    report themselves in ``buildInfo``."""
    info = db.command("buildInfo")
    ferret = info.get("ferretdb")
    return bool(info.get("ferretdbVersion") or (isinstance(ferret, dict) and ferret.get("version")))


def _server_time(db: Database[Any]) -> datetime:
    """The server's clock: ``hello.localTime`` (``isMaster`` where there is no ``hello``).

    DocumentDB's gateway answers an Int64 of epoch milliseconds instead of a date.
    """
    from pymongo.errors import OperationFailure

    try:
        reply = db.command("hello")
    except OperationFailure:
        reply = db.command("isMaster")
    value = reply["localTime"]
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    return _aware(value)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _holder(document: dict[str, Any]) -> Holder:
    fields = {f.name for f in dataclasses.fields(Holder)}
    values = {k: v for k, v in document.items() if k in fields}
    values.setdefault("run_id", "?")
    return Holder(
        run_id=str(values["run_id"]),
        host=str(values.get("host", "?")),
        pid=int(values.get("pid", 0)),
        user=str(values.get("user", "?")),
        alley_version=str(values.get("alley_version", "?")),
        command=str(values.get("command", "?")),
    )


def _lock_state(document: dict[str, Any], server_now: datetime) -> LockState:
    return LockState(
        generation=int(document["_id"]),
        holder=_holder(document.get("holder", {})),
        acquired_at=_aware(document["acquired_at"]),
        heartbeat_at=_aware(document["heartbeat_at"]),
        lease_s=float(document["lease_s"]),
        released=bool(document.get("released")),
        server_now=server_now,
    )


def _log_document(entry: LogEntry) -> dict[str, Any]:
    # Field by field: dataclasses.asdict deep-copies, a measurable cost per step.
    return {
        "step": entry.step,
        "event": entry.event.value,
        "migration_id": entry.migration_id,
        "filename": entry.filename,
        "direction": entry.direction.value,
        "at": entry.at,
        "holder": _holder_document(entry.holder),
        "checksum": entry.checksum,
        "duration_s": entry.duration_s,
        "fake": entry.fake,
        "error": entry.error,
        "resolves": list(entry.resolves),
        "generation": entry.generation,
        "seq": entry.seq,
        "writes": entry.writes,
        **(
            {"checkpoints": [c.to_document() for c in entry.checkpoints]}
            if entry.checkpoints
            else {}
        ),
    }


def _holder_document(holder: Holder) -> dict[str, Any]:
    return {
        "run_id": holder.run_id,
        "host": holder.host,
        "pid": holder.pid,
        "user": holder.user,
        "alley_version": holder.alley_version,
        "command": holder.command,
    }


def _log_entry(document: dict[str, Any]) -> LogEntry:
    return LogEntry(
        step=str(document["step"]),
        event=Event(document["event"]),
        migration_id=int(document["migration_id"]),
        filename=str(document["filename"]),
        direction=Direction(document["direction"]),
        at=_aware(document["at"]),
        holder=_holder(document.get("holder", {})),
        checksum=document.get("checksum"),
        duration_s=document.get("duration_s"),
        fake=bool(document.get("fake")),
        error=document.get("error"),
        resolves=tuple(document.get("resolves", ())),
        generation=int(document.get("generation", 0)),
        seq=int(document.get("seq", 0)),
        writes=None if document.get("writes") is None else int(document["writes"]),
        checkpoints=tuple(Checkpoint.from_document(c) for c in document.get("checkpoints") or ()),
    )


def _to_ms(value: datetime) -> datetime:
    """Aware UTC, to the millisecond, as BSON keeps it."""
    value = _aware(value).astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _record_document(record: HistoryRecord, date: datetime | None) -> dict[str, Any]:
    extra = {k: v for k, v in record.extra.items() if k != "_ids"}
    return {
        "_id": record.filename,
        "id": record.id,
        "filename": record.filename,
        "date": date,
        "checksum": record.checksum,
        **extra,
    }


def _record(document: dict[str, Any]) -> HistoryRecord:
    filename = str(document.get("filename", ""))
    date = document.get("date")
    if isinstance(date, datetime) and date.tzinfo is None:
        date = _aware(date)
    return HistoryRecord(
        id=_id_of(document, filename),
        filename=filename,
        date=date if isinstance(date, datetime) else None,
        checksum=document.get("checksum"),
        extra={k: v for k, v in document.items() if k not in _ORIGINAL_FIELDS},
    )


def _id_of(document: dict[str, Any], filename: str) -> int:
    try:
        return int(document["id"])
    except (KeyError, TypeError, ValueError):
        match = re.match(r"0*(\d+)_", filename)
        return int(match.group(1)) if match else -1


@hookimpl(trylast=True)
def alley_history_store(settings: Settings, db: Database[Any]) -> HistoryStore:
    name = str(settings.options.get("history_collection", COLLECTION))
    heartbeat = settings.options.get("heartbeat_database")
    return MongoHistoryStore(db, name, None if heartbeat is None else str(heartbeat))
