"""A database migrated by alley 0.0.3 ({id, filename, date} records) works unconverted."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from conftest import Project


def seed_0_0_3_history(db: Any, *filenames: str) -> None:
    """Records exactly as 0.0.3 wrote them: no checksum, nothing beside the three fields."""
    for filename in filenames:
        db.db_migrations.insert_one(
            {"id": int(filename.split("_")[0]), "filename": filename, "date": datetime(2019, 5, 1)}
        )


def test_status_and_up_after_0_0_3(project: Project, mongo_db: Any) -> None:
    for name in ("0001_a.py", "0002_b.py", "0003_c.py"):
        project.counter(name)
    seed_0_0_3_history(mongo_db, "0001_a.py", "0002_b.py")

    status = json.loads(project.alley("status", "--json").stdout)
    assert [(m["filename"], m["state"], m["drift"]) for m in status["migrations"]] == [
        ("0001_a.py", "applied", "unknown"),
        ("0002_b.py", "applied", "unknown"),
        ("0003_c.py", "pending", None),
    ]

    result = project.alley("up")

    assert result.returncode == 0, result.output
    assert {d["_id"] for d in mongo_db.counters.find()} == {"0003"}
    old = mongo_db.db_migrations.find_one({"filename": "0001_a.py"})
    assert set(old) == {"_id", "id", "filename", "date"}  # old records left as they were


def test_down_after_0_0_3_removes_only_what_it_rolls_back(project: Project, mongo_db: Any) -> None:
    for name in ("0001_a.py", "0002_b.py", "0003_c.py"):
        project.counter(name)
    seed_0_0_3_history(mongo_db, "0001_a.py", "0002_b.py")
    assert project.alley("up").returncode == 0

    result = project.alley("down", "2")

    assert result.returncode == 0, result.output
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_a.py"]


def test_file_renamed_after_it_was_applied_is_not_run_again(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_add_user.py")
    assert project.alley("up").returncode == 0
    (project.folder / "0001_add_user.py").rename(project.folder / "0001_add_users.py")

    status = json.loads(project.alley("status", "--json").stdout)
    up = project.alley("up")

    [entry] = status["migrations"]
    assert (entry["state"], entry["drift"]) == ("applied", "renamed")
    assert entry["recorded_filename"] == "0001_add_user.py"
    assert up.returncode == 6  # a rename is drift: refused until accepted
    assert "renamed" in up.stderr
    assert project.alley("up", "--allow-drift").returncode == 0
    assert mongo_db.counters.find_one({"_id": "0001"})["n"] == 1

    accepted = project.alley("mark", "1", "--applied")
    assert accepted.returncode == 0, accepted.output
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_add_users.py"]
    assert project.alley("up").returncode == 0
    assert mongo_db.counters.find_one({"_id": "0001"})["n"] == 1

    down = project.alley("down", "1")
    assert down.returncode == 0, down.output
    assert mongo_db.db_migrations.count_documents({}) == 0


def test_a_migration_recorded_twice_by_0_0_3_shows_once_and_down_removes_both(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    seed_0_0_3_history(mongo_db, "0001_a.py", "0001_a.py")  # two parallel 0.0.3 deploys

    status = json.loads(project.alley("status", "--json").stdout)
    down = project.alley("down", "1")

    assert [m["filename"] for m in status["migrations"]] == ["0001_a.py"]
    assert down.returncode == 0, down.output
    assert mongo_db.db_migrations.count_documents({}) == 0


def test_deleted_applied_file_commands_that_get_the_old_behaviour(
    project: Project, mongo_db: Any
) -> None:
    """0.0.3 skipped a deleted file's record; now it is drift, with two ways past it
    (docs/upgrading.md)."""
    for name in ("0001_a.py", "0002_b.py"):
        project.counter(name)
    seed_0_0_3_history(mongo_db, "0001_a.py")
    (project.folder / "0001_a.py").unlink()

    refused = project.alley("up")
    allowed = project.alley("up", "--allow-drift")

    assert refused.returncode == 6, refused.output
    assert allowed.returncode == 0, allowed.output
    assert {d["_id"] for d in mongo_db.counters.find()} == {"0002"}

    marked = project.alley("mark", "1", "--pending")

    assert marked.returncode == 0, marked.output
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0002_b.py"]
    assert project.alley("verify").returncode == 0


def test_files_without_up_or_down_are_refused_and_fake_gets_past_them(
    project: Project, mongo_db: Any
) -> None:
    """0.0.3 recorded a file without up() and ran one without down(); now both are refused
    before anything runs, and --fake records or forgets them (docs/upgrading.md)."""
    (project.folder / "0001_no_up.py").write_text("def down(db):\n    pass\n")
    (project.folder / "0002_no_down.py").write_text("def up(db):\n    db.x.insert_one({})\n")

    refused = project.alley("up")
    faked = project.alley("up", "--fake")

    assert refused.returncode == 3, refused.output
    assert "has no up(db) function" in refused.stderr
    assert faked.returncode == 0, faked.output
    assert mongo_db.x.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 2

    assert project.alley("down").returncode == 3
    forgot = project.alley("down", "--fake")

    assert forgot.returncode == 0, forgot.output
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_no_up.py"]
