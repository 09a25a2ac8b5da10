"""alley plugin: migration history in a SQLite file beside the project.

A history store on another engine than MongoDB, written against alley's store contract
(:mod:`alley.store`: the protocols ``Records``, ``Lock`` and ``RunLog``) with nothing
but the standard library's :mod:`sqlite3`. It subclasses nothing of alley's; it passes
``alley.testing.store_contract``.

::

    alley up      # history in <project>/alley-history.sqlite3; nothing in db_migrations

Settings (``[tool.alley]`` or ``-o KEY=VALUE``):

- ``sqlite_history``: the file. Relative to the folder of the pyproject.toml when set
  there, to the current directory when given with ``-o``. Default:
  ``alley-history.sqlite3`` in the project folder: PATH, else the folder holding the
  ``migrations/`` folder found from the current directory up, else the current
  directory.

How it keeps the contract:

- Four tables: ``records`` (one row per filename: its primary key), ``lock_generations``
  (one row per taking of the lock: the generation is the primary key), ``run_log``
  (append-only) and ``open_attempts`` (one row per filename: its primary key).
- Every method is one transaction. Writes begin with ``BEGIN IMMEDIATE``, which takes
  SQLite's write lock at once, so of two racing writers (threads or processes) one
  goes first and the other sees what it wrote; a writer waits up to ``BUSY_TIMEOUT_S``
  for the file, then the command fails with exit 5 (lock busy).
- The store's clock is this host's clock, in UTC. Every process using the file runs on
  this host (SQLite's file locking is not to be trusted on a network file system), so
  they all judge leases by the same clock. Keep the file on a local disk, one host.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson import json_util

from alley.errors import ConfigError, LockBusy
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
from alley.settings import find_pyproject, read_config
from alley.store import ClaimConflict, RecordExists
from alley_plugins.filesystem import migrations_folder

if TYPE_CHECKING:
    from alley.settings import Settings
    from alley.store import HistoryStore

__version__ = "0.1.0"

OPTION = "sqlite_history"
FILENAME = "alley-history.sqlite3"
#: How long a write waits for another process's transaction on the file.
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    filename TEXT PRIMARY KEY,
    id INTEGER NOT NULL,
    date TEXT,
    checksum TEXT,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS lock_generations (
    generation INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    lease_s REAL NOT NULL,
    released INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS run_log (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    step TEXT NOT NULL,
    event TEXT NOT NULL,
    migration_id INTEGER NOT NULL,
    filename TEXT NOT NULL,
    direction TEXT NOT NULL,
    at TEXT NOT NULL,
    holder TEXT NOT NULL,
    checksum TEXT,
    duration_s REAL,
    fake INTEGER NOT NULL,
    error TEXT,
    resolves TEXT NOT NULL,
    generation INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    writes INTEGER,
    checkpoints TEXT
);
CREATE INDEX IF NOT EXISTS run_log_order ON run_log (generation, seq, position);
CREATE TABLE IF NOT EXISTS open_attempts (
    filename TEXT PRIMARY KEY,
    step TEXT NOT NULL,
    event TEXT NOT NULL,
    migration_id INTEGER NOT NULL,
    direction TEXT NOT NULL,
    at TEXT NOT NULL,
    holder TEXT NOT NULL,
    checksum TEXT,
    duration_s REAL,
    fake INTEGER NOT NULL,
    error TEXT,
    resolves TEXT NOT NULL,
    generation INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    writes INTEGER,
    checkpoints TEXT
);
"""

# A log entry's columns, in the order of _entry_row and _entry.
_ENTRY = (
    "step, event, migration_id, filename, direction, at, holder, checksum, duration_s, "
    "fake, error, resolves, generation, seq, writes, checkpoints"
)
_GENERATION = "generation, holder, acquired_at, heartbeat_at, lease_s, released"


class SqliteHistoryStore:
    """An :class:`alley.store.HistoryStore` in the SQLite file at ``path``.

    One handle is one connection, safe to share between threads (alley renews its lease
    from a heartbeat thread): a mutex lets one method at a time use it.

    :raises ConfigError: the file cannot be opened, is not a database, or was written
        by a newer version of this plugin.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._mutex = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._create_schema()
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"cannot use {self.path} as the SQLite history: {error}",
                hint=f"set {OPTION} to a file in an existing folder",
            ) from None

    def _create_schema(self) -> None:
        with self._transaction() as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} was written by a newer alley-sqlite-history "
                    f"(schema {version}, this one knows {SCHEMA_VERSION})",
                    hint="upgrade alley-sqlite-history",
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                if version == 1:  # schema 2 keeps the batch helpers' checkpoints
                    for table in ("run_log", "open_attempts"):
                        db.execute(f"ALTER TABLE {table} ADD COLUMN checkpoints TEXT")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` (the write lock, taken at once) for a
        write, ``BEGIN`` for a read; committed at the end, rolled back on an error."""
        with self._mutex:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                finally:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                raise LockBusy(
                    f"the SQLite history {self.path} stayed locked by another process "
                    f"for {self.busy_timeout_s:g}s",
                    hint="another alley is writing history; see 'alley status'",
                ) from error

    # -- Records --------------------------------------------------------------------------

    def read_records(self) -> list[HistoryRecord]:
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT id, filename, date, checksum, extra FROM records ORDER BY rowid"
            ).fetchall()
        return [
            HistoryRecord(
                id=migration_id,
                filename=filename,
                date=_time(date) if date is not None else None,
                checksum=checksum,
                extra=json.loads(extra),
            )
            for migration_id, filename, date, checksum, extra in rows
        ]

    def add_record(self, record: HistoryRecord) -> None:
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM records WHERE filename = ?", (record.filename,)
            ).fetchone():
                raise RecordExists(record.filename)
            date = record.date
            (newest,) = db.execute("SELECT MAX(date) FROM records").fetchone()
            if date is not None and newest is not None:
                # Dates only move forward: never before the newest record's, plus 1 ms
                # (alley.store.Records.add_record). ISO text in UTC sorts as time does.
                date = max(date, _time(newest) + timedelta(milliseconds=1))
            db.execute(
                "INSERT INTO records (filename, id, date, checksum, extra) VALUES (?, ?, ?, ?, ?)",
                (
                    record.filename,
                    record.id,
                    _text(date) if date is not None else None,
                    record.checksum,
                    _json(record.extra),
                ),
            )

    def remove_record(self, record: HistoryRecord) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM records WHERE filename = ?", (record.filename,))

    def replace_record(self, old: HistoryRecord, new: HistoryRecord) -> None:
        # Optional (alley.store.ReplacesRecords): accepting an edit or a rename keeps the
        # old record's date, in one transaction.
        date = old.date if old.date is not None else new.date
        with self._transaction() as db:
            db.execute("DELETE FROM records WHERE filename IN (?, ?)", (old.filename, new.filename))
            db.execute(
                "INSERT INTO records (filename, id, date, checksum, extra) VALUES (?, ?, ?, ?, ?)",
                (
                    new.filename,
                    new.id,
                    _text(date) if date is not None else None,
                    new.checksum,
                    _json(new.extra),
                ),
            )

    # -- Lock -----------------------------------------------------------------------------

    def lock_state(self) -> LockState | None:
        with self._transaction(write=False) as db:
            row = _newest(db)
            now = _now()
        return None if row is None else _lock_state(row, now)

    def try_lock(self, holder: Holder, lease_s: float) -> LockState:
        with self._transaction() as db:
            # Read the clock holding the write lock: transactions on the file are in
            # order, and so are their times.
            now = _now()
            row = _newest(db)
            if row is None or _lock_state(row, now).free:
                generation = 1 if row is None else int(row[0]) + 1
                row = (
                    generation,
                    _json(_holder_fields(holder)),
                    _text(now),
                    _text(now),
                    lease_s,
                    0,
                )
                db.execute(
                    f"INSERT INTO lock_generations ({_GENERATION}) VALUES (?, ?, ?, ?, ?, ?)", row
                )
        return _lock_state(row, now)

    def renew_lock(self, generation: int) -> bool:
        with self._transaction() as db:
            row = _newest(db)
            if row is None or row[0] != generation or row[5]:
                return False
            db.execute(
                "UPDATE lock_generations SET heartbeat_at = ? WHERE generation = ?",
                (_text(_now()), generation),
            )
            return True

    def release_lock(self, generation: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE lock_generations SET released = 1 WHERE generation = ? "
                "AND generation = (SELECT MAX(generation) FROM lock_generations)",
                (generation,),
            )

    # -- RunLog ---------------------------------------------------------------------------

    def read_open(self) -> list[LogEntry]:
        with self._transaction(write=False) as db:
            rows = db.execute(f"SELECT {_ENTRY} FROM open_attempts").fetchall()
        return [_entry(row) for row in rows]

    def open_attempts(self, claims: Sequence[LogEntry]) -> None:
        # One transaction: a conflict raises inside it, which rolls back this call's
        # claims; none is ever seen by another connection.
        with self._transaction() as db:
            for claim in claims:
                taken = db.execute(
                    "SELECT 1 FROM open_attempts WHERE filename = ?", (claim.filename,)
                ).fetchone()
                if taken:
                    raise ClaimConflict(claim.filename)
                db.execute(
                    f"INSERT INTO open_attempts ({_ENTRY}) VALUES ({_MARKS})", _entry_row(claim)
                )

    def log(
        self,
        entries: Sequence[LogEntry],
        *,
        close: Sequence[str] = (),
        keep_open: Sequence[LogEntry] = (),
    ) -> None:
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO run_log ({_ENTRY}) VALUES ({_MARKS})",
                [_entry_row(entry) for entry in entries],
            )
            db.executemany(
                "DELETE FROM open_attempts WHERE filename = ?", [(name,) for name in close]
            )
            db.executemany(
                f"INSERT OR REPLACE INTO open_attempts ({_ENTRY}) VALUES ({_MARKS})",
                [_entry_row(entry) for entry in keep_open],
            )

    def read_log(self) -> list[LogEntry]:
        with self._transaction(write=False) as db:
            rows = db.execute(
                f"SELECT {_ENTRY} FROM run_log ORDER BY generation, seq, position"
            ).fetchall()
        return [_entry(row) for row in rows]


_MARKS = ", ".join("?" * len(_ENTRY.split(",")))


def _now() -> datetime:
    """The store's clock: this host's, in UTC."""
    return datetime.now(UTC)


def _text(value: datetime) -> str:
    """Aware UTC, as ISO 8601 text with microseconds (naive times are taken as UTC)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _json(value: Mapping[str, Any]) -> str:
    # Values that JSON cannot hold (a datetime in a record's extra) are kept as text.
    return json.dumps(dict(value), default=str)


def _holder_fields(holder: Holder) -> dict[str, Any]:
    return {
        "run_id": holder.run_id,
        "host": holder.host,
        "pid": holder.pid,
        "user": holder.user,
        "alley_version": holder.alley_version,
        "command": holder.command,
    }


def _newest(db: sqlite3.Connection) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = db.execute(
        f"SELECT {_GENERATION} FROM lock_generations ORDER BY generation DESC LIMIT 1"
    ).fetchone()
    return row


def _lock_state(row: Sequence[Any], now: datetime) -> LockState:
    generation, holder, acquired_at, heartbeat_at, lease_s, released = row
    return LockState(
        generation=int(generation),
        holder=Holder(**json.loads(holder)),
        acquired_at=_time(acquired_at),
        heartbeat_at=_time(heartbeat_at),
        lease_s=float(lease_s),
        released=bool(released),
        server_now=now,
    )


def _entry_row(entry: LogEntry) -> tuple[Any, ...]:
    return (
        entry.step,
        entry.event.value,
        entry.migration_id,
        entry.filename,
        entry.direction.value,
        _text(entry.at),
        _json(_holder_fields(entry.holder)),
        entry.checksum,
        entry.duration_s,
        int(entry.fake),
        entry.error,
        json.dumps(list(entry.resolves)),
        entry.generation,
        entry.seq,
        entry.writes,
        _checkpoints_text(entry.checkpoints),
    )


def _entry(row: Sequence[Any]) -> LogEntry:
    (
        step,
        event,
        migration_id,
        filename,
        direction,
        at,
        holder,
        checksum,
        duration_s,
        fake,
        error,
        resolves,
        generation,
        seq,
        writes,
        checkpoints,
    ) = row
    return LogEntry(
        step=step,
        event=Event(event),
        migration_id=int(migration_id),
        filename=filename,
        direction=Direction(direction),
        at=_time(at),
        holder=Holder(**json.loads(holder)),
        checksum=checksum,
        duration_s=duration_s,
        fake=bool(fake),
        error=error,
        resolves=tuple(json.loads(resolves)),
        generation=int(generation),
        seq=int(seq),
        writes=writes,
        checkpoints=_checkpoints(checkpoints),
    )


def _checkpoints_text(checkpoints: Sequence[Checkpoint]) -> str | None:
    # Extended JSON: a checkpoint's last _id may be any BSON value (an ObjectId...).
    if not checkpoints:
        return None
    return json_util.dumps(
        [c.to_document() for c in checkpoints], json_options=json_util.CANONICAL_JSON_OPTIONS
    )


def _checkpoints(text: str | None) -> tuple[Checkpoint, ...]:
    if not text:
        return ()
    return tuple(Checkpoint.from_document(c) for c in json_util.loads(text))


# -- where the file is ------------------------------------------------------------------------


def project_folder(settings: Settings) -> Path:
    """PATH, else the folder holding the ``migrations/`` found from the current directory
    up, else the current directory."""
    if settings.path is not None:
        return settings.path
    folder = migrations_folder(settings)
    return folder.parent if folder is not None else settings.cwd


def history_path(settings: Settings) -> Path:
    """The history file: ``sqlite_history`` if set, else ``alley-history.sqlite3`` in the
    project folder.

    A relative ``sqlite_history`` from ``[tool.alley]`` is relative to that
    pyproject.toml's folder; from ``-o``, to the current directory.
    """
    value = settings.options.get(OPTION)
    if not value:
        return project_folder(settings) / FILENAME
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return path
    pyproject = find_pyproject(settings.cwd)
    if pyproject is not None and read_config(pyproject).get(OPTION) == value:
        return (pyproject.parent / path).resolve()
    return (settings.cwd / path).resolve()


@hookimpl
def alley_history_store(settings: Settings) -> HistoryStore:
    path = history_path(settings)
    if not path.parent.is_dir():
        raise ConfigError(
            f"the folder of the SQLite history {path} does not exist",
            hint=f"create it, or set {OPTION} to a file in an existing folder",
        )
    return SqliteHistoryStore(path)
