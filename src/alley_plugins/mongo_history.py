"""History in the ``db_migrations`` collection, with alley 0.0.3's record format.

Each applied migration is one document ``{id, filename, date}`` (0.0.3's fields,
never renamed) plus what alley records beside them: ``checksum``, ``duration_s``,
``fake``, ``alley_version``, ``host``, ``user``, ``pid``. The collection name can be
changed with ``history_collection`` in ``[tool.alley]``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alley.hookspecs import hookimpl
from alley.model import HistoryRecord, HistoryStore, Migration

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from alley.settings import Settings

COLLECTION = "db_migrations"
_ORIGINAL_FIELDS = ("_id", "id", "filename", "date", "checksum")


class MongoHistoryStore:
    """A :class:`alley.model.HistoryStore` over one MongoDB collection."""

    def __init__(self, collection: Collection[Any]) -> None:
        self.collection = collection

    def read(self) -> list[HistoryRecord]:
        return [_record(document) for document in self.collection.find({})]

    def record_applied(self, migration: Migration, record: HistoryRecord) -> None:
        self.collection.insert_one(
            {
                "id": record.id,
                "filename": record.filename,
                "date": record.date,
                "checksum": record.checksum,
                **record.extra,
            }
        )

    def remove_applied(self, record: HistoryRecord) -> None:
        # 0.0.3 removed every record with the filename (a migration recorded twice by
        # parallel 0.0.3 runs included); a renamed file's old record goes too.
        self.collection.delete_many({"filename": record.filename})


def _record(document: dict[str, Any]) -> HistoryRecord:
    filename = str(document.get("filename", ""))
    date = document.get("date")
    if isinstance(date, datetime) and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
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
    return MongoHistoryStore(db[name])
