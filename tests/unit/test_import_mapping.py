"""The pure part of ``alley import-history``: splitting what a tool recorded into an id
and a name, and mapping entries to alley migrations (:mod:`alley.import_history`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alley.import_history import (
    IMPORT_ID,
    IMPORTED_AT,
    IMPORTED_FROM,
    ForeignEntry,
    entry,
    imported_records,
    map_entries,
    newest_import,
    split_key,
)
from alley.model import HistoryRecord, Migration

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def migration(filename: str) -> Migration:
    number, name = filename.removesuffix(".py").split("_", 1)
    return Migration(int(number), name, filename, "def up(db): pass\n", f"/m/{filename}")


FILES = [
    migration("0001_add_index.py"),
    migration("0002_backfill_users.py"),
    migration("20240301090000_rename.py"),
]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("20240101120000-add-index.js", (20240101120000, "add_index")),
        ("0003_backfill.py", (3, "backfill")),
        ("0003-Backfill Users.js", (3, "backfill_users")),
        ("m0001", (None, "m0001")),
        ("20240101120000", (20240101120000, None)),
        ("20240101120000_add_index", (20240101120000, "add_index")),
        ("add--index", (None, "add_index")),
        ("0004_x.cjs", (4, "x")),
    ],
)
def test_split_key_takes_the_leading_digits_as_id_and_normalises_the_rest(
    key: str, expected: tuple[int | None, str | None]
) -> None:
    assert split_key(key) == expected


def test_entries_map_by_name_or_by_id_in_the_order_they_were_applied() -> None:
    entries = [
        entry("20240201000000-backfill-users.js", T0 + timedelta(days=31)),  # by name
        entry("20240101120000-add-index.js", T0),  # by name
        entry("20240301090000", T0 + timedelta(days=60)),  # by id only
    ]
    mapped, problems = map_entries(entries, FILES)
    assert problems == ()
    assert [(m.entry.key, m.migration.filename) for m in mapped] == [
        ("20240101120000-add-index.js", "0001_add_index.py"),
        ("20240201000000-backfill-users.js", "0002_backfill_users.py"),
        ("20240301090000", "20240301090000_rename.py"),
    ]


def test_an_entry_no_file_has_the_id_or_name_of_is_unmatched() -> None:
    mapped, problems = map_entries([entry("20240105-drop-legacy.js", T0)], FILES)
    assert mapped == ()
    assert [(p.kind, str(p)) for p in problems] == [
        (
            "unmatched",
            "20240105-drop-legacy.js: no alley migration has its id 20240105 or name 'drop_legacy'",
        )
    ]


def test_an_entry_whose_id_is_one_file_and_name_another_is_ambiguous() -> None:
    mapped, problems = map_entries([entry("0001_backfill_users.py", T0)], FILES)
    assert mapped == ()
    assert [p.kind for p in problems] == ["ambiguous"]
    assert "0001_add_index.py (by id)" in problems[0].reason
    assert "0002_backfill_users.py (by name)" in problems[0].reason


def test_two_entries_mapping_to_one_file_are_both_ambiguous_and_the_others_still_map() -> None:
    entries = [
        entry("0001-add-index.js", T0),
        entry("add_index", T0 + timedelta(hours=1)),
        entry("0002-backfill-users.js", T0 + timedelta(hours=2)),
    ]
    mapped, problems = map_entries(entries, FILES)
    assert [m.migration.filename for m in mapped] == ["0002_backfill_users.py"]
    assert [(p.entry.key, p.kind) for p in problems] == [
        ("0001-add-index.js", "ambiguous"),
        ("add_index", "ambiguous"),
    ]
    assert "as add_index does" in problems[0].reason


def test_an_entry_recorded_twice_counts_once_with_its_earliest_date() -> None:
    entries = [
        entry("0001-add-index.js", T0 + timedelta(days=1)),
        entry("0001-add-index.js", T0),
    ]
    mapped, problems = map_entries(entries, FILES)
    assert problems == ()
    assert [(m.migration.filename, m.entry.applied_at) for m in mapped] == [
        ("0001_add_index.py", T0)
    ]


def test_undated_entries_come_last_and_naive_dates_are_utc() -> None:
    naive = datetime(2024, 1, 1, 12, 0)
    assert entry("0001-add-index.js", naive).applied_at == T0
    assert entry("0001-add-index.js", "yesterday").applied_at is None
    mapped, _ = map_entries(
        [ForeignEntry("0001-add-index.js", 1, "add_index", None), entry("0002", T0)], FILES
    )
    assert [m.migration.id for m in mapped] == [2, 1]


def test_the_records_of_an_import_are_found_by_its_id_and_the_newest_import_by_its_time() -> None:
    def record(filename: str, import_id: str | None, at: datetime) -> HistoryRecord:
        extra = {IMPORTED_FROM: "migrate-mongo", IMPORT_ID: import_id, IMPORTED_AT: at}
        return HistoryRecord(1, filename, T0, extra=extra if import_id else {})

    records = [
        record("0001_a.py", "migrate-mongo-1", T0),
        record("0002_b.py", "migrate-mongo-2", T0 + timedelta(days=1)),
        record("0003_c.py", "migrate-mongo-2", T0 + timedelta(days=1)),
        record("0004_d.py", None, T0 + timedelta(days=2)),  # alley's own: never an import's
    ]
    found = imported_records(records)
    assert {k: [r.filename for r in v] for k, v in found.items()} == {
        "migrate-mongo-1": ["0001_a.py"],
        "migrate-mongo-2": ["0002_b.py", "0003_c.py"],
    }
    assert newest_import(found) == "migrate-mongo-2"
    assert newest_import({}) is None
