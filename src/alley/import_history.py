"""History from other tools: ``alley import-history --from TOOL``.

A project that switches to alley from migrate-mongo, pymongo-migrate,
mongodb-migrations or flask-mongoengine-migrations (alley's ancestor) rewrites its
migrations as alley files, but the database already went through them: their history
is in the old tool's collection, not in alley's. Importing it writes one alley record
per entry of that history, so ``alley status`` shows them applied and ``alley up`` runs
only the rest, without running anything again.

Three parts, each testable on its own:

- a :class:`HistoryImporter` per tool reads its collection (never writes it) into
  :class:`ForeignEntry` values: what the tool recorded, its id and name, when it was
  applied. The importers come from plugins (the ``alley_history_importers`` hook; the
  four above are the default plugin ``alley_plugins.history_importers``), so another
  tool is one plugin away;
- :func:`map_entries` (pure) maps each entry to the alley migration with its id or its
  name (``20240101120000-add-index.js`` to ``0007_add_index.py`` or to
  ``20240101120000_whatever.py``): an entry matching none, or two files, or a file
  another entry matches too, is a :class:`Problem`;
- :func:`import_history` and :func:`undo_import` write and remove the records through
  the engine's history store (any store, not only MongoDB's), under alley's lock.

An imported record is a record like ``alley mark ID --applied`` writes: the file's
current checksum (drift is detected from now on), ``fake: true``, and in ``extra``
``imported_from`` (the tool), ``imported_entry`` (what the tool recorded),
``imported_collection``, ``import_id`` (one per import, what ``--undo`` removes by),
``imported_at`` and ``imported_applied_at`` (the tool's date). Its date is the tool's
applied date, unless the store moves it forward: dates only move forward in a history
store, so a migration alley applied before the import dates the imported records after
it (the report shows the date stored; ``imported_applied_at`` keeps the tool's).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alley.errors import IntegrityError, UsageError
from alley.model import Direction, Event, HistoryRecord, LogEntry, Migration, MigrationStatus

if TYPE_CHECKING:
    from alley.engine import Engine, Run, WaitCallback

#: The keys alley writes into an imported record's ``extra``.
IMPORTED_FROM = "imported_from"
IMPORTED_ENTRY = "imported_entry"
IMPORTED_COLLECTION = "imported_collection"
IMPORT_ID = "import_id"
IMPORTED_AT = "imported_at"
IMPORTED_APPLIED_AT = "imported_applied_at"

# Leading digits (the id), one optional separator, the rest (the name), of a file stem.
_KEY = re.compile(r"^(?P<id>\d+)?[-_. ]?(?P<name>.*)$")
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_EXTENSIONS = (".py", ".js", ".cjs", ".mjs", ".ts")


@dataclass(frozen=True)
class ForeignEntry:
    """One applied migration as another tool recorded it.

    :ivar key: what the tool recorded to identify it, as it is (``fileName``, ``name``,
        ``migration_datetime``, ``filename``): shown in reports and kept in the record.
    :ivar id: the number it carries (the leading digits), ``None`` if none.
    :ivar name: its name, normalised as alley names files (lower case, every run of
        other characters one ``_``), ``None`` if the tool records none.
    :ivar applied_at: when the tool applied it (aware UTC), ``None`` if it says not.
    """

    key: str
    id: int | None
    name: str | None
    applied_at: datetime | None


Reader = Callable[[Any], Sequence[ForeignEntry]]


@dataclass(frozen=True)
class HistoryImporter:
    """How to read one tool's history.

    :ivar tool: the name given to ``--from`` (``migrate-mongo``).
    :ivar collection: the collection the tool keeps its history in by default
        (``--collection`` overrides it).
    :ivar read: gets the pymongo ``Collection`` (to read only) and returns the entries
        of the migrations it records as applied, in any order.
    :ivar description: one line for ``--help`` and errors.
    """

    tool: str
    collection: str
    read: Reader
    description: str = ""


def normalise(name: str) -> str | None:
    """``Add-Index`` and ``add index`` to ``add_index``; ``None`` when nothing is left."""
    normalised = _NOT_NAME.sub("_", name.lower()).strip("_")
    return normalised or None


def split_key(key: str) -> tuple[int | None, str | None]:
    """The id and the normalised name of a file name or a name a tool recorded:
    ``20240101120000-add-index.js`` -> ``(20240101120000, "add_index")``,
    ``0003_backfill.py`` -> ``(3, "backfill")``, ``m0001`` -> ``(None, "m0001")``."""
    stem = key.strip()
    for extension in _EXTENSIONS:
        if stem.lower().endswith(extension):
            stem = stem[: -len(extension)]
            break
    match = _KEY.match(stem)
    assert match is not None  # every group is optional
    digits = match.group("id")
    return (int(digits) if digits else None), normalise(match.group("name"))


def entry(key: str, applied_at: Any) -> ForeignEntry:
    """A :class:`ForeignEntry` of ``key``, its id and name split off it, with
    ``applied_at`` made aware UTC (PyMongo reads naive UTC datetimes) or ``None`` if it
    is not a date."""
    migration_id, name = split_key(key)
    return ForeignEntry(key, migration_id, name, aware(applied_at))


def aware(value: Any) -> datetime | None:
    """A ``datetime`` as aware UTC (a naive one is UTC, as BSON dates are); else None."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class Mapped:
    """An entry and the alley migration it maps to."""

    entry: ForeignEntry
    migration: Migration


@dataclass(frozen=True)
class Problem:
    """An entry that maps to no alley migration, or not to exactly one.

    :ivar kind: ``unmatched`` or ``ambiguous``.
    :ivar reason: one line saying why.
    """

    entry: ForeignEntry
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.entry.key}: {self.reason}"


def _describe(entry: ForeignEntry) -> str:
    parts = []
    if entry.id is not None:
        parts.append(f"id {entry.id}")
    if entry.name is not None:
        parts.append(f"name {entry.name!r}")
    return " or ".join(parts) or "no id or name"


def map_entries(
    entries: Iterable[ForeignEntry], migrations: Sequence[Migration]
) -> tuple[tuple[Mapped, ...], tuple[Problem, ...]]:
    """Map each entry to the one alley migration with its id or its name.

    An entry whose id is one file's and whose name is another's is ambiguous; so are
    entries that map to one file (each of them). An entry a tool recorded twice (the
    same key) counts once, with its earliest date. Entries are returned in the order
    they were applied (undated last), problems in the order of the entries.
    """
    by_key: dict[str, ForeignEntry] = {}
    for e in entries:
        seen = by_key.get(e.key)
        if seen is None or (
            e.applied_at is not None and (seen.applied_at is None or e.applied_at < seen.applied_at)
        ):
            by_key[e.key] = e
    ordered = sorted(
        by_key.values(),
        key=lambda e: (
            e.applied_at is None,
            e.applied_at or datetime.min.replace(tzinfo=UTC),
            e.key,
        ),
    )
    found: list[Mapped] = []
    problems: list[Problem] = []
    for e in ordered:
        by_id = [m for m in migrations if e.id is not None and m.id == e.id]
        by_name = [m for m in migrations if e.name is not None and m.name == e.name]
        candidates = list({m.filename: m for m in [*by_id, *by_name]}.values())
        if not candidates:
            problems.append(Problem(e, "unmatched", f"no alley migration has its {_describe(e)}"))
        elif len(candidates) > 1:
            how = ", ".join(
                f"{m.filename} (by {'id' if m in by_id else 'name'})" for m in candidates
            )
            problems.append(Problem(e, "ambiguous", f"matches {how}"))
        else:
            found.append(Mapped(e, candidates[0]))
    files: dict[str, list[Mapped]] = {}
    for mapped in found:
        files.setdefault(mapped.migration.filename, []).append(mapped)
    shared = {filename for filename, many in files.items() if len(many) > 1}
    for mapped in found:
        if mapped.migration.filename in shared:
            others = [m.entry.key for m in files[mapped.migration.filename] if m is not mapped]
            problems.append(
                Problem(
                    mapped.entry,
                    "ambiguous",
                    f"maps to {mapped.migration.filename}, as {', '.join(others)} does",
                )
            )
    order = {e.key: i for i, e in enumerate(ordered)}
    problems.sort(key=lambda p: order[p.entry.key])
    return tuple(m for m in found if m.migration.filename not in shared), tuple(problems)


# --------------------------------------------------------------------------- reports

IMPORTED, WOULD_IMPORT, ALREADY, SKIPPED = "imported", "would import", "already recorded", "skipped"


@dataclass(frozen=True)
class ImportLine:
    """What became of one entry of the tool's history.

    :ivar key: the entry as the tool recorded it.
    :ivar filename: the alley migration it maps to (``None``: a problem).
    :ivar applied_at: the tool's date; :ivar recorded_at: the date of alley's record
        (``None`` until written, or the existing record's for ``already recorded``).
    :ivar state: ``imported``, ``would import`` (a dry run), ``already recorded``
        (alley has a record of that file: left as it is), ``unmatched``, ``ambiguous``
        (with ``--skip-unmatched``, or in a dry run), or ``skipped`` (an open attempt).
    :ivar reason: for a problem, why.
    """

    key: str
    filename: str | None
    applied_at: datetime | None
    state: str
    recorded_at: datetime | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry": self.key,
            "migration": self.filename,
            "applied_at": _iso(self.applied_at),
            "recorded_at": _iso(self.recorded_at),
            "state": self.state,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ImportReport:
    """What ``import-history`` did (or, ``dry_run``, would do), one line per entry."""

    tool: str
    collection: str
    import_id: str | None
    dry_run: bool
    lines: tuple[ImportLine, ...]
    notes: tuple[str, ...] = ()

    @property
    def imported(self) -> tuple[ImportLine, ...]:
        return tuple(line for line in self.lines if line.state in (IMPORTED, WOULD_IMPORT))

    @property
    def already(self) -> tuple[ImportLine, ...]:
        return tuple(line for line in self.lines if line.state == ALREADY)

    @property
    def problems(self) -> tuple[ImportLine, ...]:
        return tuple(line for line in self.lines if line.filename is None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "collection": self.collection,
            "import_id": self.import_id,
            "dry_run": self.dry_run,
            "entries": [line.as_dict() for line in self.lines],
            "imported": 0 if self.dry_run else len(self.imported),
            "would_import": len(self.imported) if self.dry_run else 0,
            "already_recorded": len(self.already),
            "problems": len(self.problems),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class UndoReport:
    """What ``import-history --undo`` removed: the records one import wrote."""

    import_id: str | None
    tool: str | None
    removed: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "tool": self.tool,
            "removed": list(self.removed),
            "notes": list(self.notes),
        }


class ImportMismatch(IntegrityError):
    """Entries of the tool's history map to no alley migration, or not to exactly one;
    nothing was written. ``report`` lists every entry (the problems have no filename)."""

    def __init__(self, report: ImportReport) -> None:
        problems = report.problems
        super().__init__(
            f"{len(problems)} of {len(report.lines)} {report.tool} entries "
            f"(collection {report.collection!r}) do not map to exactly one alley "
            "migration; nothing was imported",
            hint="give the alley files the ids or names of the entries, or pass "
            "--skip-unmatched to import the others",
        )
        self.report = report


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --------------------------------------------------------------------------- commands


def importers(engine: Engine) -> dict[str, HistoryImporter]:
    """Every plugin's importers by tool name (an installed plugin's over a default's)."""
    found: dict[str, HistoryImporter] = {}
    for provided in engine.hooks.manager.hook.alley_history_importers():
        for importer in provided or ():
            found.setdefault(importer.tool, importer)
    return found


def importer_for(engine: Engine, tool: str) -> HistoryImporter:
    """The importer of ``tool``. :raises UsageError: no plugin reads that tool."""
    known = importers(engine)
    if tool not in known:
        names = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"alley cannot read the history of {tool!r}",
            hint=f"--from takes one of: {names}",
        )
    return known[tool]


def read_entries(engine: Engine, importer: HistoryImporter, collection: str) -> list[ForeignEntry]:
    """The tool's entries, read from ``collection`` of alley's database (read only).

    :raises UsageError: the database has no such collection.
    """
    db = engine.db
    if collection not in db.list_collection_names():
        raise UsageError(
            f"database {db.name} has no collection {collection!r} "
            f"({importer.tool}'s history): nothing to import",
            hint="pass --collection NAME if the tool was configured with another one",
        )
    return list(importer.read(db[collection]))


def plan_lines(
    mapped: Sequence[Mapped],
    problems: Sequence[Problem],
    statuses: Sequence[MigrationStatus],
    *,
    dry_run: bool,
) -> list[tuple[ImportLine, Mapped | None]]:
    """One line per entry: to import (with its :class:`Mapped`), already recorded, a
    file with an open attempt (skipped), or a problem; in the order of the entries."""
    recorded = {s.migration.filename: s for s in statuses if s.migration is not None}
    lines: list[tuple[ImportLine, Mapped | None]] = []
    for m in mapped:
        status = recorded.get(m.migration.filename)
        e, filename = m.entry, m.migration.filename
        if status is not None and status.record is not None:
            line = ImportLine(e.key, filename, e.applied_at, ALREADY, status.record.date)
            lines.append((line, None))
        elif status is not None and status.attempt_entry is not None:
            reason = f"alley has an open attempt at it ({status.attempt}); decide it first"
            lines.append((ImportLine(e.key, filename, e.applied_at, SKIPPED, None, reason), None))
        else:
            state = WOULD_IMPORT if dry_run else IMPORTED
            lines.append((ImportLine(e.key, filename, e.applied_at, state), m))
    lines += [
        (ImportLine(p.entry.key, None, p.entry.applied_at, p.kind, None, p.reason), None)
        for p in problems
    ]
    return lines


def import_history(
    engine: Engine,
    tool: str,
    *,
    collection: str | None = None,
    dry_run: bool = False,
    skip_unmatched: bool = False,
    on_wait: WaitCallback | None = None,
) -> ImportReport:
    """Read ``tool``'s history and write an alley record per entry that maps to one
    alley migration without a record. All or nothing about problems: unless
    ``skip_unmatched``, one unmatched or ambiguous entry writes nothing
    (:class:`ImportMismatch`). A dry run writes nothing and takes no lock; neither
    does an import with nothing to write (every entry already recorded)."""
    importer = importer_for(engine, tool)
    name = collection or importer.collection
    entries = read_entries(engine, importer, name)
    migrations = engine.migrations
    mapped, problems = map_entries(entries, migrations)

    def report(lines: Sequence[ImportLine], import_id: str | None) -> ImportReport:
        return ImportReport(tool, name, import_id, dry_run, tuple(lines), tuple(engine.notes))

    planned = plan_lines(mapped, problems, engine.snapshot().statuses, dry_run=True)
    if dry_run:
        return report([line for line, _ in planned], None)
    if problems and not skip_unmatched:
        raise ImportMismatch(report([line for line, _ in planned], None))
    if not any(m for _, m in planned):
        return report([line for line, _ in planned], None)
    import_id = f"{tool}-{secrets.token_hex(4)}"
    with engine.locked("import-history", on_wait) as run:
        assert run.snapshot is not None
        planned = plan_lines(mapped, problems, run.snapshot.statuses, dry_run=False)
        written = _write(run, importer.tool, name, import_id, [m for _, m in planned if m])
    lines = [
        dataclasses.replace(line, recorded_at=written.get(line.filename or ""))
        if line.state == IMPORTED
        else line
        for line, _ in planned
    ]
    return report(lines, import_id if written else None)


def _write(
    run: Run, tool: str, collection: str, import_id: str, mapped: Sequence[Mapped]
) -> dict[str, datetime | None]:
    """Add the records (oldest first, so the store keeps their dates in order), log
    one ``marked-applied`` decision per record, and return the dates stored."""
    from alley.engine import applied_record

    if not mapped:
        return {}
    store = run.store
    now = run.now()
    decisions: list[LogEntry] = []
    for m in mapped:
        record = applied_record(
            m.migration,
            duration_s=0.0,
            fake=True,
            holder=run.holder,
            date=m.entry.applied_at or now,
            **{
                IMPORTED_FROM: tool,
                IMPORTED_ENTRY: m.entry.key,
                IMPORTED_COLLECTION: collection,
                IMPORT_ID: import_id,
                IMPORTED_AT: now,
                IMPORTED_APPLIED_AT: m.entry.applied_at,
            },
        )
        run.lease.fence()
        store.add_record(record)
        applied = _date(m.entry.applied_at)
        decisions.append(
            _decision(
                run,
                Event.MARKED_APPLIED,
                m.migration,
                f"imported from {tool} ({m.entry.key}, applied {applied}; import {import_id})",
            )
        )
    run.lease.fence()
    store.log(decisions)
    stored = {r.filename: r.date for r in store.read_records()}
    return {m.migration.filename: stored.get(m.migration.filename) for m in mapped}


def _decision(run: Run, event: Event, migration: Migration, why: str) -> LogEntry:
    direction = Direction.UP if event is Event.MARKED_APPLIED else Direction.DOWN
    made = run.entry(event, migration, direction, fake=True, checksum=migration.checksum, error=why)
    return dataclasses.replace(made, step=f"import:{migration.filename}:{run.holder.run_id}")


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "at an unknown time"


def imported_records(records: Iterable[HistoryRecord]) -> dict[str, list[HistoryRecord]]:
    """The records an import wrote, by import id."""
    found: dict[str, list[HistoryRecord]] = {}
    for record in records:
        import_id = record.extra.get(IMPORT_ID)
        if isinstance(import_id, str) and record.extra.get(IMPORTED_FROM):
            found.setdefault(import_id, []).append(record)
    return found


def newest_import(by_import: Mapping[str, Sequence[HistoryRecord]]) -> str | None:
    """The import id whose records were written last (``imported_at``)."""

    def written(import_id: str) -> datetime:
        dates = [aware(r.extra.get(IMPORTED_AT)) for r in by_import[import_id]]
        return max((d for d in dates if d is not None), default=datetime.min.replace(tzinfo=UTC))

    return max(by_import, key=written, default=None)


def undo_import(
    engine: Engine, import_id: str | None = None, *, on_wait: WaitCallback | None = None
) -> UndoReport:
    """Remove the records import ``import_id`` wrote (default: the newest import), and
    log one ``marked-pending`` decision each. Records of other imports, and records
    alley wrote itself, are not touched.

    :raises UsageError: no import has that id.
    """
    if import_id is None and not imported_records(engine.store.read_records()):
        return UndoReport(None, None, (), tuple(engine.notes))  # nothing to lock for
    with engine.locked("import-history", on_wait) as run:
        assert run.snapshot is not None
        by_import = imported_records(run.snapshot.records)
        wanted = import_id or newest_import(by_import)
        if wanted is None:
            return UndoReport(None, None, (), tuple(engine.notes))
        if wanted not in by_import:
            known = ", ".join(sorted(by_import)) or "none"
            raise UsageError(
                f"no records of import {wanted!r}", hint=f"imports with records: {known}"
            )
        records = sorted(by_import[wanted], key=lambda r: r.filename)
        files = {m.filename: m for m in engine.migrations}
        decisions = []
        for record in records:
            run.lease.fence()
            run.store.remove_record(record)
            migration = files.get(record.filename) or _gone(record)
            decisions.append(
                _decision(
                    run,
                    Event.MARKED_PENDING,
                    migration,
                    f"import {wanted} undone (it was imported from "
                    f"{record.extra.get(IMPORTED_FROM)}: {record.extra.get(IMPORTED_ENTRY)})",
                )
            )
        run.lease.fence()
        run.store.log(decisions)
    tool = str(records[0].extra.get(IMPORTED_FROM)) if records else None
    return UndoReport(wanted, tool, tuple(r.filename for r in records), tuple(engine.notes))


def _gone(record: HistoryRecord) -> Migration:
    """A stand-in for a migration whose file is gone (its record is undone all the same)."""
    return Migration(record.id, "", record.filename, "", record.filename)


__all__ = [
    "ForeignEntry",
    "HistoryImporter",
    "ImportLine",
    "ImportMismatch",
    "ImportReport",
    "Mapped",
    "Problem",
    "UndoReport",
    "entry",
    "import_history",
    "importers",
    "map_entries",
    "normalise",
    "split_key",
    "undo_import",
]
