"""Unit tests of alley.planning: pure functions, no files, no server."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alley.errors import DiscoveryError, IntegrityError, UsageError
from alley.model import Direction, Drift, HistoryRecord, Migration, MigrationStatus, State
from alley.planning import (
    check_unique_ids,
    next_id,
    normalise_name,
    parse_target,
    plan_down,
    plan_redo,
    plan_up,
    reconcile,
)

DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
NAME = re.compile(r"[a-z0-9_]+")


def migration(
    migration_id: int, name: str = "step", *, source: str | None = None, location: str = ""
) -> Migration:
    filename = f"{migration_id:04}_{name}.py"
    return Migration(
        id=migration_id,
        name=name,
        filename=filename,
        source=source if source is not None else f"def up(db):\n    x = {migration_id}\n",
        location=location or f"/project/migrations/{filename}",
    )


def record_of(m: Migration, *, checksum: str | bool | None = True) -> HistoryRecord:
    """A history record for ``m``; checksum True = the file's own checksum."""
    value = m.checksum if checksum is True else checksum
    return HistoryRecord(id=m.id, filename=m.filename, date=DATE, checksum=value or None)


def record(migration_id: int, name: str = "step", checksum: str | None = None) -> HistoryRecord:
    return HistoryRecord(migration_id, f"{migration_id:04}_{name}.py", DATE, checksum)


def statuses_for(ids: set[int], applied: set[int]) -> tuple[MigrationStatus, ...]:
    migrations = [migration(i) for i in sorted(ids)]
    history = [record_of(m) for m in migrations if m.id in applied]
    return reconcile(migrations, history)


def ids(plan_or_statuses) -> list[int]:
    steps = getattr(plan_or_statuses, "steps", plan_or_statuses)
    return [s.id for s in steps]


# --- normalise_name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("add_users", "add_users"),
        ("AddUsers", "addusers"),
        ("Add Users", "add_users"),
        ("add-users.v2", "add_users_v2"),
        ("  spaced  ", "spaced"),
        ("ÄBC", "_bc"),
        ("0003", "0003"),
        ("_a_", "_a_"),
    ],
)
def test_normalise_name(name: str, expected: str) -> None:
    assert normalise_name(name) == expected


@pytest.mark.parametrize("name", ["", " ", "___", "---", "é", "!!", "\t\n"])
def test_normalise_name_rejects_names_with_nothing_usable(name: str) -> None:
    with pytest.raises(UsageError, match="invalid migration name"):
        normalise_name(name)


@given(st.text())
def test_normalise_name_output_is_a_filename_part_and_idempotent(name: str) -> None:
    try:
        normalised = normalise_name(name)
    except UsageError:
        # Rejected only when nothing but underscores would remain.
        assert not re.sub(r"[^a-z0-9]", "", name.strip().lower())
        return
    assert NAME.fullmatch(normalised)
    assert normalised.strip("_")
    assert normalise_name(normalised) == normalised


# --- next_id ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "expected"),
    [([], 1), ([1], 2), ([1, 2, 3], 4), ([3, 1], 4), ([7], 8), ((i for i in (2, 5)), 6)],
)
def test_next_id(existing, expected: int) -> None:
    assert next_id(existing) == expected


@given(st.sets(st.integers(min_value=0, max_value=10**6)))
def test_next_id_is_higher_than_every_existing_id(existing: set[int]) -> None:
    new = next_id(existing)
    assert new not in existing
    assert all(new > i for i in existing)
    assert new == max(existing, default=0) + 1


# --- parse_target -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("0003", 3),
        ("0003_add_users.py", 3),
        ("0003_add_users", 3),
        ("12", 12),
        ("0", 0),
        (3, 3),
        (12, 12),
    ],
)
def test_parse_target(text: str | int, expected: int) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["abc", "", "-1", "3.5", "x3", "0003-add.py", "  "])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid migration id"):
        parse_target(text)


@given(st.integers(min_value=0, max_value=10**9), st.from_regex(NAME, fullmatch=True))
def test_parse_target_reads_the_number_of_any_filename(number: int, name: str) -> None:
    assert parse_target(str(number)) == number
    assert parse_target(f"{number:04}") == number
    assert parse_target(f"{number:04}_{name}.py") == number


# --- check_unique_ids ---------------------------------------------------------------------


def test_check_unique_ids_accepts_distinct_ids() -> None:
    check_unique_ids([migration(1), migration(2), migration(10)])
    check_unique_ids([])


def test_check_unique_ids_names_both_locations() -> None:
    first = migration(3, "a", location="/p/migrations/0003_a.py")
    second = migration(3, "b", location="/p/migrations/0003_b.py")
    with pytest.raises(DiscoveryError) as caught:
        check_unique_ids([migration(1), first, migration(2), second])
    message = str(caught.value)
    assert "/p/migrations/0003_a.py" in message
    assert "/p/migrations/0003_b.py" in message
    assert "3" in message


# --- reconcile ----------------------------------------------------------------------------


def test_reconcile_filename_match_is_applied_without_drift() -> None:
    m = migration(1)
    [status] = reconcile([m], [record_of(m)])
    assert status.state is State.APPLIED
    assert status.drift is None
    assert status.migration == m
    assert status.record == record_of(m)
    assert status.applied_at == DATE


def test_reconcile_file_without_record_is_pending() -> None:
    m = migration(1)
    [status] = reconcile([m], [])
    assert status.state is State.PENDING
    assert status.record is None
    assert status.drift is None
    assert status.applied_at is None


def test_reconcile_renamed_file_is_applied_and_flagged() -> None:
    renamed = migration(2, "new_name")
    old = HistoryRecord(2, "0002_old_name.py", DATE, renamed.checksum)
    [status] = reconcile([renamed], [old])
    assert status.state is State.APPLIED
    assert status.drift is Drift.RENAMED
    assert status.migration == renamed
    assert status.record == old


def test_reconcile_same_id_but_old_file_still_there_is_not_a_rename() -> None:
    # The record's filename matches an existing file: the other file with that id is new.
    old, new = migration(2, "old_name"), migration(2, "new_name")
    statuses = reconcile([old, new], [record_of(old)])
    by_filename = {s.filename: s for s in statuses}
    assert by_filename["0002_old_name.py"].state is State.APPLIED
    assert by_filename["0002_old_name.py"].drift is None
    assert by_filename["0002_new_name.py"].state is State.PENDING


def test_reconcile_record_without_file_is_applied_and_deleted() -> None:
    gone = record(4, "gone", "v1:abc")
    [status] = reconcile([], [gone])
    assert status.state is State.APPLIED
    assert status.drift is Drift.DELETED
    assert status.migration is None
    assert status.record == gone
    assert status.filename == "0004_gone.py"


def test_reconcile_changed_source_is_flagged() -> None:
    m = migration(1)
    [status] = reconcile([m], [record_of(m, checksum="v1:" + "0" * 64)])
    assert status.state is State.APPLIED
    assert status.drift is Drift.CHANGED


def test_reconcile_record_of_0_0_3_without_checksum_is_unknown() -> None:
    m = migration(1)
    legacy = HistoryRecord(1, m.filename, DATE)  # what 0.0.3 wrote: id, filename, date
    [status] = reconcile([m], [legacy])
    assert status.state is State.APPLIED
    assert status.drift is Drift.UNKNOWN


def test_reconcile_keeps_the_order_it_is_given_and_places_deleted_records_by_id() -> None:
    ms = [migration(i) for i in (1, 3, 5)]
    statuses = reconcile(ms, [record(4, "gone"), record_of(ms[2]), record(2, "gone")])
    assert ids(statuses) == [1, 2, 3, 4, 5]
    assert [s.state for s in statuses] == [
        State.PENDING,
        State.APPLIED,
        State.PENDING,
        State.APPLIED,
        State.APPLIED,
    ]
    reordered = reconcile(list(reversed(ms)), [])
    assert ids(reordered) == [5, 3, 1]


def test_plans_follow_the_order_the_ordering_hook_decided() -> None:
    ms = [migration(i) for i in (3, 2, 1)]  # a plugin that reverses the order
    statuses = reconcile(ms, [record_of(ms[0])])
    assert ids(plan_up(statuses).steps) == [2, 1]
    assert ids(plan_up(statuses, 2).steps) == [2]
    applied = reconcile(ms, [record_of(m) for m in ms])
    assert ids(plan_down(applied, 2).steps) == [1, 2]


def test_reconcile_keeps_two_deleted_records_with_one_id() -> None:
    # Two branches each added an 0003 migration, both ran, both files are gone since.
    records = [record(3, "from_branch_a", "v1:a"), record(3, "from_branch_b", "v1:b")]
    statuses = reconcile([], records)
    assert sorted(s.filename for s in statuses) == [
        "0003_from_branch_a.py",
        "0003_from_branch_b.py",
    ]
    assert all(s.drift is Drift.DELETED for s in statuses)


# A project history: a set of file ids, and records; a record may match its file, be for a
# renamed file (same id, other name), or be for a deleted file.
record_kinds = st.sampled_from(["none", "same", "renamed", "changed", "legacy"])


@st.composite
def projects(
    draw, *, one_record_per_id: bool = False
) -> tuple[list[Migration], list[HistoryRecord]]:
    file_ids = draw(st.sets(st.integers(min_value=1, max_value=60), max_size=15))
    migrations = [migration(i) for i in sorted(file_ids)]
    history: list[HistoryRecord] = []
    for m in migrations:
        kind = draw(record_kinds)
        if kind == "same":
            history.append(record_of(m))
        elif kind == "renamed":
            history.append(HistoryRecord(m.id, f"{m.id:04}_old.py", DATE, m.checksum))
        elif kind == "changed":
            history.append(record_of(m, checksum="v1:other"))
        elif kind == "legacy":
            history.append(record_of(m, checksum=None))
    deleted_ids = draw(st.sets(st.integers(min_value=1, max_value=60), max_size=8))
    if one_record_per_id:
        deleted_ids -= file_ids
    for i in deleted_ids:
        history.append(record(i, "deleted", "v1:gone"))
    return migrations, draw(st.permutations(history))


def check_nothing_lost(migrations: list[Migration], history: list[HistoryRecord]) -> None:
    statuses = reconcile(migrations, history)
    seen_migrations = [s.migration.filename for s in statuses if s.migration is not None]
    seen_records = [s.record.filename for s in statuses if s.record is not None]
    assert sorted(seen_migrations) == sorted(m.filename for m in migrations)
    assert sorted(seen_records) == sorted(r.filename for r in history)
    assert ids(statuses) == sorted(ids(statuses))
    for status in statuses:
        assert (status.state is State.PENDING) == (status.record is None)
        assert (status.drift is Drift.DELETED) == (status.migration is None)


@given(projects(one_record_per_id=True))
def test_reconcile_never_loses_a_migration_or_a_record_one_record_per_id(project) -> None:
    check_nothing_lost(*project)


@given(projects())
def test_reconcile_never_loses_a_migration_or_a_record(project) -> None:
    # Also records sharing an id with a renamed or another deleted record.
    check_nothing_lost(*project)


# --- plan_up ------------------------------------------------------------------------------


def test_plan_up_plans_every_pending_migration_in_id_order() -> None:
    statuses = statuses_for({1, 2, 3, 4}, applied={1, 2})
    plan = plan_up(statuses)
    assert plan.direction is Direction.UP
    assert ids(plan) == [3, 4]
    assert plan.target is None
    assert bool(plan)


def test_plan_up_with_nothing_pending_is_empty() -> None:
    plan = plan_up(statuses_for({1, 2}, applied={1, 2}))
    assert ids(plan) == []
    assert not plan


def test_plan_up_to_a_pending_target_includes_it() -> None:
    plan = plan_up(statuses_for({1, 2, 3, 4, 5}, applied={1}), 3)
    assert ids(plan) == [2, 3]
    assert plan.target == 3


def test_plan_up_to_an_unknown_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no migration has id 9"):
        plan_up(statuses_for({1, 2}, applied=set()), 9)


def test_plan_up_to_an_applied_target_is_nothing_to_do() -> None:
    plan = plan_up(statuses_for({1, 2, 3}, applied={1, 2}), 2)
    assert not plan
    assert plan.target == 2


def test_plan_up_refuses_a_pending_migration_older_than_an_applied_one() -> None:
    statuses = statuses_for({1, 2, 3}, applied={1, 3})
    with pytest.raises(IntegrityError, match=r"0002_step\.py"):
        plan_up(statuses)


def test_plan_up_allows_out_of_order_when_asked() -> None:
    statuses = statuses_for({1, 2, 3, 4}, applied={1, 3})
    assert ids(plan_up(statuses, allow_out_of_order=True)) == [2, 4]


def test_plan_up_out_of_order_is_judged_against_deleted_records_too() -> None:
    statuses = reconcile([migration(1)], [record(2, "gone", "v1:x")])
    with pytest.raises(IntegrityError):
        plan_up(statuses)


@given(
    st.sets(st.integers(min_value=1, max_value=200), min_size=1, max_size=30).flatmap(
        lambda all_ids: st.tuples(st.just(all_ids), st.sets(st.sampled_from(sorted(all_ids))))
    )
)
def test_plan_up_plans_exactly_the_pending_ids_sorted(case) -> None:
    all_ids, applied = case
    statuses = statuses_for(all_ids, applied)
    pending = sorted(all_ids - applied)
    assert ids(plan_up(statuses, allow_out_of_order=True)) == pending
    if any(p < max(applied, default=0) for p in pending):
        with pytest.raises(IntegrityError):
            plan_up(statuses)
    else:
        assert ids(plan_up(statuses)) == pending


# --- plan_down ----------------------------------------------------------------------------


def test_plan_down_rolls_back_newest_first_down_to_the_target() -> None:
    plan = plan_down(statuses_for({1, 2, 3, 4, 5}, applied={1, 2, 3, 4}), 2)
    assert plan.direction is Direction.DOWN
    assert ids(plan) == [4, 3, 2]
    assert plan.target == 2
    assert all(s.state is State.APPLIED for s in plan.steps)


def test_plan_down_to_the_newest_rolls_back_only_it() -> None:
    assert ids(plan_down(statuses_for({1, 2, 3}, applied={1, 2, 3}), 3)) == [3]


def test_plan_down_to_a_pending_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not applied"):
        plan_down(statuses_for({1, 2, 3}, applied={1}), 3)


def test_plan_down_to_an_unknown_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no migration has id 7"):
        plan_down(statuses_for({1, 2, 3}, applied={1, 2, 3}), 7)


def test_plan_down_through_a_deleted_file_plans_nothing() -> None:
    ms = [migration(1), migration(3)]
    statuses = reconcile(ms, [record_of(ms[0]), record(2, "gone", "v1:x"), record_of(ms[1])])
    with pytest.raises(IntegrityError, match=r"0002_gone\.py"):
        plan_down(statuses, 1)
    # Above the deleted one the plan is fine.
    assert ids(plan_down(statuses, 3)) == [3]


def test_plan_down_to_a_deleted_target_is_an_integrity_error() -> None:
    statuses = reconcile([migration(1)], [record_of(migration(1)), record(2, "gone", "v1:x")])
    with pytest.raises(IntegrityError):
        plan_down(statuses, 2)


def test_plan_down_keeps_renamed_and_changed_migrations() -> None:
    renamed, changed = migration(1, "new"), migration(2)
    statuses = reconcile(
        [renamed, changed],
        [
            HistoryRecord(1, "0001_old.py", DATE, renamed.checksum),
            record_of(changed, checksum="v1:x"),
        ],
    )
    plan = plan_down(statuses, 1)
    assert ids(plan) == [2, 1]
    # Removal matches records by filename: the renamed step carries the recorded name.
    assert plan.steps[1].record.filename == "0001_old.py"


@given(
    st.sets(st.integers(min_value=1, max_value=200), min_size=1, max_size=30).flatmap(
        lambda all_ids: st.sets(st.sampled_from(sorted(all_ids)), min_size=1).flatmap(
            lambda applied: st.tuples(
                st.just(all_ids), st.just(applied), st.sampled_from(sorted(applied))
            )
        )
    )
)
def test_plan_down_plans_exactly_the_applied_ids_from_the_target_up(case) -> None:
    all_ids, applied, target = case
    plan = plan_down(statuses_for(all_ids, applied), target)
    assert ids(plan) == sorted((i for i in applied if i >= target), reverse=True)


def test_plan_down_runs_a_migration_recorded_twice_only_once() -> None:
    # 0.0.3 had no lock: two parallel deploys could both record one migration.
    first, second = migration(1), migration(2)
    history = [record_of(first, checksum=None), record_of(second), record_of(second)]
    plan = plan_down(reconcile([first, second], history), 1)
    filenames = [s.migration.filename for s in plan.steps if s.migration is not None]
    assert filenames == ["0002_step.py", "0001_step.py"]


# --- plan_down without a target, --steps, plan_redo ---------------------------------------


def test_plan_down_without_a_target_rolls_back_the_last_applied_only() -> None:
    plan = plan_down(statuses_for({1, 2, 3, 4}, applied={1, 2, 3}))
    assert ids(plan) == [3]
    assert plan.direction is Direction.DOWN
    assert plan.target is None


def test_plan_down_without_a_target_and_nothing_applied_is_empty() -> None:
    assert not plan_down(statuses_for({1, 2}, applied=set()))


@pytest.mark.parametrize(("steps", "expected"), [(1, [4]), (2, [4, 3]), (4, [4, 3, 2, 1])])
def test_plan_down_steps_rolls_back_the_last_n(steps: int, expected: list[int]) -> None:
    assert ids(plan_down(statuses_for({1, 2, 3, 4, 5}, applied={1, 2, 3, 4}), steps=steps)) == (
        expected
    )


@pytest.mark.parametrize("steps", [0, -1])
def test_plan_down_steps_below_one_is_a_usage_error(steps: int) -> None:
    with pytest.raises(UsageError, match=f"invalid --steps {steps}"):
        plan_down(statuses_for({1, 2}, applied={1, 2}), steps=steps)


def test_plan_down_more_steps_than_applied_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot roll back 3 migrations: only 2 are applied"):
        plan_down(statuses_for({1, 2, 3}, applied={1, 2}), steps=3)


def test_plan_down_target_and_steps_together_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not both"):
        plan_down(statuses_for({1, 2}, applied={1, 2}), 1, steps=1)


def test_plan_down_steps_follow_the_order_migrations_apply_in() -> None:
    # The ordering hook decided 3, 1, 2 (statuses come in that order): the last two
    # applied are 2 then 1, whatever their ids.
    m1, m2, m3 = migration(1), migration(2), migration(3)
    statuses = reconcile([m3, m1, m2], [record_of(m) for m in (m1, m2, m3)])
    assert ids(plan_down(statuses, steps=2)) == [2, 1]
    assert ids(plan_down(statuses)) == [2]


def test_plan_down_steps_refuses_a_deleted_file_among_them() -> None:
    kept = migration(1)
    statuses = reconcile([kept], [record_of(kept), record(2, "gone", "v1:x")])
    with pytest.raises(IntegrityError, match=r"0002_gone\.py: the migration file is gone"):
        plan_down(statuses)
    assert ids(plan_down(reconcile([kept], [record_of(kept)]), steps=1)) == [1]


def test_plan_redo_is_the_last_applied_down_then_up_again() -> None:
    back, again = plan_redo(statuses_for({1, 2, 3}, applied={1, 2}))
    assert (back.direction, ids(back)) == (Direction.DOWN, [2])
    assert (again.direction, ids(again)) == (Direction.UP, [2])
    assert again.steps[0].state is State.PENDING
    assert again.steps[0].record is None
    assert again.steps[0].migration is back.steps[0].migration


def test_plan_redo_with_nothing_applied_is_empty() -> None:
    back, again = plan_redo(statuses_for({1}, applied=set()))
    assert not back
    assert not again
