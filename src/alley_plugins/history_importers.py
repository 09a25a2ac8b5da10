"""Readers of the history other MongoDB migration tools keep, for ``alley import-history``.

One :class:`~alley.import_history.HistoryImporter` per tool: its default collection and
how to turn each of its documents into a :class:`~alley.import_history.ForeignEntry`.
Each reads only (``find``), and only the entries the tool counts as applied. The
formats, from each tool's own source:

- ``migrate-mongo`` (npm): ``changelog`` holds ``{fileName, appliedAt, migrationBlock}``
  (``fileHash`` too with ``useFileHash``), inserted by ``up`` and deleted by ``down``;
- ``pymongo-migrate`` (PyPI): ``pymongo_migrate`` holds ``{name, applied}``, one per
  migration ever seen; ``downgrade`` sets ``applied`` to ``null`` and keeps it;
- ``mongodb-migrations`` (PyPI): ``database_migrations`` holds
  ``{migration_datetime, created_at}``: only the file's leading digits, no name, and
  ``created_at`` from the client's local clock (``datetime.now()``), stored as if UTC;
- ``flask-mongoengine-migrations`` (alley's ancestor, on Bitbucket, never on PyPI):
  ``migrations`` holds ``{id, filename, date}`` (alley 0.0.3 kept the same fields in
  ``db_migrations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alley.hookspecs import hookimpl
from alley.import_history import ForeignEntry, HistoryImporter, entry


def migrate_mongo(collection: Any) -> list[ForeignEntry]:
    return [
        entry(str(doc["fileName"]), doc.get("appliedAt"))
        for doc in collection.find({}, {"fileName": 1, "appliedAt": 1})
        if doc.get("fileName")
    ]


def pymongo_migrate(collection: Any) -> list[ForeignEntry]:
    return [
        entry(str(doc["name"]), doc.get("applied"))
        for doc in collection.find({"applied": {"$ne": None}}, {"name": 1, "applied": 1})
        if doc.get("name") and doc.get("applied") is not None
    ]


def mongodb_migrations(collection: Any) -> list[ForeignEntry]:
    return [
        entry(str(doc["migration_datetime"]), doc.get("created_at"))
        for doc in collection.find({}, {"migration_datetime": 1, "created_at": 1})
        if doc.get("migration_datetime")
    ]


def flask_mongoengine_migrations(collection: Any) -> list[ForeignEntry]:
    found = []
    for doc in collection.find({}, {"id": 1, "filename": 1, "date": 1}):
        if not doc.get("filename"):
            continue
        read = entry(str(doc["filename"]), doc.get("date"))
        if isinstance(doc.get("id"), int):  # its own id field wins over the file name's
            read = ForeignEntry(read.key, doc["id"], read.name, read.applied_at)
        found.append(read)
    return found


IMPORTERS = (
    HistoryImporter(
        "migrate-mongo", "changelog", migrate_mongo, "migrate-mongo (npm): its changelog"
    ),
    HistoryImporter(
        "pymongo-migrate",
        "pymongo_migrate",
        pymongo_migrate,
        "pymongo-migrate (PyPI): its pymongo_migrate collection",
    ),
    HistoryImporter(
        "mongodb-migrations",
        "database_migrations",
        mongodb_migrations,
        "mongodb-migrations (PyPI): its database_migrations collection",
    ),
    HistoryImporter(
        "flask-mongoengine-migrations",
        "migrations",
        flask_mongoengine_migrations,
        "flask-mongoengine-migrations (alley's ancestor): its migrations collection",
    ),
)


@hookimpl
def alley_history_importers() -> Sequence[HistoryImporter]:
    return IMPORTERS
