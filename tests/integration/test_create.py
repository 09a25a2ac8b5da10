"""``create`` and discovery at the edges of the filesystem layout.

Numbered files the pattern ignores keep their ids, a PATH that is itself the
migrations folder is refused, ids past int64 are refused before anything runs, and
the ``migrations_directory`` setting names the folder (empty: PATH itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alley import Migrations
from alley.errors import DiscoveryError, ExitCode
from alley_plugins.filesystem import MAX_ID
from conftest import Project


def test_create_numbers_above_an_ignored_file_and_shows_the_warning(project: Project) -> None:
    project.write("0001_first.py")
    project.write("0002_second.py")
    ignored = project.write("0003_AddUsers.py")

    result = project.alley("create", "add_users", url=False)

    assert result.returncode == 0, result.output
    assert (project.folder / "0004_add_users.py").is_file()
    assert not list(project.folder.glob("0003_add_users*"))
    assert f"alley: warning: ignored {ignored}" in result.stderr
    assert sorted(p.name for p in project.folder.iterdir()) == [
        "0001_first.py",
        "0002_second.py",
        "0003_AddUsers.py",
        "0004_add_users.py",
    ]


def test_create_from_the_api_numbers_above_ignored_files(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0007-hyphenated.py").write_text("def up(db): pass\ndef down(db): pass\n")

    with pytest.warns(UserWarning, match="ignored .*0007-hyphenated.py"):
        created = Migrations(tmp_path).create("next")

    assert created.id == 8
    assert Path(created.location) == folder / "0008_next.py"


@pytest.mark.parametrize("command", [("create", "x"), ("status",)])
def test_path_that_is_itself_the_migrations_folder_is_refused(
    tmp_path: Path, mongo_db_uri: str, command: tuple[str, ...]
) -> None:
    project = Project(tmp_path / "app", mongo_db_uri)
    project.write("0001_first.py")

    # From the project's folder, PATH given as migrations/ instead of its parent.
    result = project.alley("migrations", *command, cwd=project.root)

    assert result.returncode == ExitCode.CONFIG, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alley: error: ")
    assert "(PATH is the folder that contains migrations/; run it from the parent)" in lines[0]
    assert not (project.folder / "migrations").exists()
    assert [p.name for p in project.folder.iterdir()] == ["0001_first.py"]


def test_a_folder_named_migrations_without_migration_files_is_still_created(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "migrations"
    empty.mkdir()

    created = Migrations(empty).create("first")

    assert Path(created.location) == empty / "migrations" / "0001_first.py"


def test_an_id_too_large_for_int64_is_refused_at_discovery(project: Project, mongo_db: Any) -> None:
    project.counter("0001_fine.py")
    huge = project.counter("12345678901234567890_huge.py")

    for command in (("status",), ("up",), ("up", "--plan")):
        result = project.alley(*command)

        assert result.returncode == ExitCode.CONFIG, (command, result.output)
        lines = result.stderr.strip().splitlines()
        assert lines == [
            f"alley: error: {huge}: id 12345678901234567890 is too large "
            f"(at most {MAX_ID}) (renumber it with a smaller id)"
        ]
    assert mongo_db.counters.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 0


def test_the_largest_int64_id_is_applied_and_create_refuses_to_go_past_it(
    tmp_path: Path, mongo_db: Any
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / f"{MAX_ID}_last.py").write_text(
        "def up(db):\n    db.marks.insert_one({'x': 1})\n\n\ndef down(db):\n    pass\n"
    )
    migrations = Migrations(tmp_path, mongo_db)

    report = migrations.up()

    assert [s.id for s in report.steps] == [MAX_ID]
    assert mongo_db.db_migrations.find_one()["id"] == MAX_ID
    with pytest.raises(DiscoveryError, match="ids are at most"):
        migrations.create("past_it")
    assert len(list(folder.iterdir())) == 1


def test_migrations_directory_setting_names_the_folder(
    tmp_path: Path, mongo_db_uri: str, mongo_db: Any
) -> None:
    project = Project(tmp_path / "app", mongo_db_uri)
    (project.root / "pyproject.toml").write_text('[tool.alley]\nmigrations_directory = "db"\n')

    created = project.alley("create", "first", url=False)
    assert created.returncode == 0, created.output
    assert (project.root / "db" / "0001_first.py").is_file()

    up = project.alley("up")
    assert up.returncode == 0, up.output
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_first.py"]


def test_empty_migrations_directory_means_path_itself(
    tmp_path: Path, mongo_db_uri: str, mongo_db: Any
) -> None:
    project = Project(tmp_path / "app", mongo_db_uri)
    project.counter("0001_a.py")  # in app/migrations/, which is PATH here

    status = project.alley("-o", "migrations_directory=", str(project.folder), "status")
    assert status.returncode == 0, status.output
    assert "0001_a.py" in status.stdout

    created = project.alley(
        "-o", "migrations_directory=", str(project.folder), "create", "b", url=False
    )
    assert created.returncode == 0, created.output
    assert (project.folder / "0002_b.py").is_file()
    assert not (project.folder / "migrations").exists()


def test_missing_folder_with_a_custom_name_is_named_in_the_error(project: Project) -> None:
    result = project.alley("-o", "migrations_directory=db", str(project.root), "status")

    assert result.returncode == ExitCode.CONFIG
    assert f"no db/ folder in {project.root}" in result.stderr
