"""Rollbacks: ``down`` (the last applied only), ``down --to ID``/``down ID``,
``down --steps N``, ``redo``; their ``--plan``, ``--fake``, ``--json``; the report of a
run an error stopped; the Python API of the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alley import api
from alley.errors import MigrationFailed, UsageError
from alley.hookspecs import hookimpl
from alley.model import Direction
from alley.settings import load_settings
from conftest import Project

USAGE, PENDING = 2, 7


def journaled(project: Project, *filenames: str) -> None:
    """Migrations that append ``up NAME`` / ``down NAME`` to ``journal`` in order."""
    entry = "db.journal.insert_one({'n': db.journal.count_documents({}), 'what': '%s %s'})"
    for filename in filenames:
        project.write(filename, up=entry % ("up", filename), down=entry % ("down", filename))


def journal(db: Any) -> list[str]:
    return [d["what"] for d in db.journal.find().sort("n", 1)]


def applied(db: Any) -> list[str]:
    return sorted(r["filename"] for r in db.db_migrations.find())


def usage_error(result: Any) -> str:
    assert result.returncode == USAGE, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alley: error: ")
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def three(project: Project, mongo_db: Any) -> Project:
    journaled(project, "0001_a.py", "0002_b.py", "0003_c.py")
    assert project.alley("up").returncode == 0
    mongo_db.journal.delete_many({})
    return project


def test_down_without_an_id_rolls_back_the_last_applied_only(three: Project, mongo_db: Any) -> None:
    result = three.alley("down")

    assert result.returncode == 0, result.output
    assert journal(mongo_db) == ["down 0003_c.py"]
    assert applied(mongo_db) == ["0001_a.py", "0002_b.py"]
    assert result.stdout.splitlines()[0].startswith("rolled back     0003_c.py  (")
    assert result.stdout.splitlines()[-1].startswith("1 migration rolled back in ")

    again = three.alley("down")
    assert again.returncode == 0
    assert journal(mongo_db) == ["down 0003_c.py", "down 0002_b.py"]


def test_down_with_nothing_applied_rolls_back_nothing(project: Project, mongo_db: Any) -> None:
    journaled(project, "0001_a.py")

    result = project.alley("down")

    assert result.returncode == 0, result.output
    assert result.stdout == "nothing rolled back\n"
    assert journal(mongo_db) == []


@pytest.mark.parametrize("form", [["--to", "2"], ["2"], ["--to", "0002_b.py"]])
def test_down_to_an_id_rolls_back_down_to_and_including_it(
    three: Project, mongo_db: Any, form: list[str]
) -> None:
    result = three.alley("down", *form)

    assert result.returncode == 0, result.output
    assert journal(mongo_db) == ["down 0003_c.py", "down 0002_b.py"]
    assert applied(mongo_db) == ["0001_a.py"]


def test_down_steps_rolls_back_the_last_n(three: Project, mongo_db: Any) -> None:
    result = three.alley("down", "--steps", "2")

    assert result.returncode == 0, result.output
    assert journal(mongo_db) == ["down 0003_c.py", "down 0002_b.py"]
    assert applied(mongo_db) == ["0001_a.py"]
    assert "2 migrations rolled back" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "invalid --steps 0"),
        (["--steps", "-1"], "invalid --steps -1"),
        (["--steps", "4"], "cannot roll back 4 migrations: only 3 are applied"),
        (["2", "--steps", "1"], "give one of MIGRATION_ID, --to ID or --steps N"),
        (["2", "--to", "1"], "give one of MIGRATION_ID, --to ID or --steps N"),
        (["--to", "2", "--steps", "1"], "give one of MIGRATION_ID, --to ID or --steps N"),
        (["--steps", "4", "--plan"], "cannot roll back 4 migrations: only 3 are applied"),
    ],
)
def test_down_refuses_bad_counts_and_conflicts_with_one_line(
    three: Project, mongo_db: Any, args: list[str], message: str
) -> None:
    result = three.alley("down", *args)

    assert message in usage_error(result)
    assert journal(mongo_db) == []
    assert len(applied(mongo_db)) == 3


def test_down_plan_fake_and_json(three: Project, mongo_db: Any) -> None:
    plan = three.alley("down", "--steps", "2", "--plan")
    plan_json = three.alley("down", "--plan", "--json")
    assert journal(mongo_db) == []
    assert len(applied(mongo_db)) == 3

    faked = three.alley("down", "--fake", "--json")

    assert plan.returncode == PENDING, plan.output
    assert plan.stdout.splitlines()[1:] == [
        "would roll back, in this order:",
        "  0003_c.py",
        "  0002_b.py",
    ]
    assert plan_json.returncode == PENDING
    data = json.loads(plan_json.stdout)
    assert data["steps"] == [{"id": 3, "filename": "0003_c.py", "direction": "down"}]
    assert faked.returncode == 0, faked.output
    report = json.loads(faked.stdout)
    assert [(s["filename"], s["fake"]) for s in report["steps"]] == [("0003_c.py", True)]
    assert (report["failed"], report["error"]) == (None, None)
    assert journal(mongo_db) == []  # faked: down(db) did not run
    assert applied(mongo_db) == ["0001_a.py", "0002_b.py"]


def test_redo_rolls_back_and_applies_again_the_last_one_in_one_run(
    three: Project, mongo_db: Any
) -> None:
    result = three.alley("redo")

    assert result.returncode == 0, result.output
    assert journal(mongo_db) == ["down 0003_c.py", "up 0003_c.py"]
    assert applied(mongo_db) == ["0001_a.py", "0002_b.py", "0003_c.py"]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("rolled back     0003_c.py")
    assert lines[1].startswith("applied         0003_c.py")
    assert lines[2].startswith("redid 0003_c.py in ")
    history = json.loads(three.alley("history", "3", "--json").stdout)
    redo_entries = history[-2:]
    assert [(e["direction"], e["event"]) for e in redo_entries] == [
        ("down", "succeeded"),
        ("up", "succeeded"),
    ]
    assert redo_entries[0]["holder"]["run_id"] == redo_entries[1]["holder"]["run_id"]
    assert redo_entries[0]["holder"]["command"] == "redo"


def test_redo_runs_the_edited_file(three: Project, mongo_db: Any) -> None:
    # Redoing is what one does after editing the last migration: drift is no refusal.
    three.write("0003_c.py", up="db.journal.insert_one({'n': 99, 'what': 'edited up'})")

    result = three.alley("redo")

    assert result.returncode == 0, result.output
    assert journal(mongo_db) == ["edited up"]  # the edited file's down is `pass`
    assert "file changed" not in three.alley("status").stdout


def test_redo_plan_shows_both_and_writes_nothing(three: Project, mongo_db: Any) -> None:
    before = applied(mongo_db)
    log_before = mongo_db.db_migrations_log.count_documents({})

    plan = three.alley("redo", "--plan")
    plan_json = three.alley("redo", "--plan", "--json")

    assert plan.returncode == PENDING, plan.output
    assert plan.stdout.splitlines()[1:] == [
        "would roll back, then apply again:",
        "  down  0003_c.py",
        "  up    0003_c.py",
    ]
    assert plan_json.returncode == PENDING
    data = json.loads(plan_json.stdout)
    assert data["direction"] == "redo"
    assert [(s["direction"], s["filename"]) for s in data["steps"]] == [
        ("down", "0003_c.py"),
        ("up", "0003_c.py"),
    ]
    assert journal(mongo_db) == []
    assert applied(mongo_db) == before
    assert mongo_db.db_migrations_log.count_documents({}) == log_before


def test_redo_plan_refuses_a_file_without_up_as_redo_does(three: Project, mongo_db: Any) -> None:
    (three.folder / "0003_c.py").write_text("def down(db):\n    pass\n")

    plan = three.alley("redo", "--plan")
    real = three.alley("redo")

    for result in (plan, real):
        assert result.returncode == 3, result.output
        assert "0003_c.py has no up(db) function" in result.stderr
    assert journal(mongo_db) == []
    assert len(applied(mongo_db)) == 3


def test_redo_fake_and_json(three: Project, mongo_db: Any) -> None:
    result = three.alley("redo", "--fake", "--json")

    assert result.returncode == 0, result.output
    data = json.loads(result.stdout)
    assert data["direction"] == "redo"
    assert [(s["direction"], s["filename"], s["fake"]) for s in data["steps"]] == [
        ("down", "0003_c.py", True),
        ("up", "0003_c.py", True),
    ]
    assert journal(mongo_db) == []
    record = mongo_db.db_migrations.find_one({"id": 3})
    assert record is not None
    assert record["fake"] is True


def test_redo_with_nothing_applied(project: Project, mongo_db: Any) -> None:
    journaled(project, "0001_a.py")

    assert project.alley("redo").stdout == "nothing to redo\n"
    plan = project.alley("redo", "--plan")
    assert (plan.returncode, plan.stdout.splitlines()[1:]) == (0, ["nothing to redo"])


# --- the report of a run an error stopped ---------------------------------------------------


def test_up_json_when_a_later_step_fails_reports_what_ran(project: Project, mongo_db: Any) -> None:
    journaled(project, "0001_a.py")
    project.write("0002_boom.py", up="db.journal.insert_one({'n': 1, 'what': 'x'})\n{}['k']")
    journaled(project, "0003_c.py")

    result = project.alley("up", "--json")

    assert result.returncode == 1, result.output
    data = json.loads(result.stdout)
    assert data["direction"] == "up"
    assert [s["filename"] for s in data["steps"]] == ["0001_a.py"]
    failed = data["failed"]
    assert (failed["id"], failed["filename"], failed["direction"]) == (2, "0002_boom.py", "up")
    assert "KeyError: 'k'" in failed["error"]
    assert data["error"]["exit_code"] == 1
    assert data["error"]["message"] == failed["error"]
    error_lines = [line for line in result.stderr.splitlines() if "alley: error:" in line]
    assert len(error_lines) == 1
    assert "0002_boom.py failed (up)" in error_lines[0]
    assert applied(mongo_db) == ["0001_a.py"]


def test_down_json_when_a_later_step_fails_reports_what_ran(three: Project, mongo_db: Any) -> None:
    three.write("0002_b.py", down="raise RuntimeError('cannot undo')")

    result = three.alley("down", "--to", "1", "--json")

    assert result.returncode == 1, result.output
    data = json.loads(result.stdout)
    assert data["direction"] == "down"
    assert [s["filename"] for s in data["steps"]] == ["0003_c.py"]
    assert data["failed"]["filename"] == "0002_b.py"
    assert "RuntimeError: cannot undo" in data["failed"]["error"]
    assert applied(mongo_db) == ["0001_a.py", "0002_b.py"]


def test_redo_json_when_up_fails_reports_the_roll_back(three: Project, mongo_db: Any) -> None:
    three.write("0003_c.py", up="raise ValueError('nope')")

    result = three.alley("redo", "--json")

    assert result.returncode == 1, result.output
    data = json.loads(result.stdout)
    assert data["direction"] == "redo"
    assert [(s["direction"], s["filename"]) for s in data["steps"]] == [("down", "0003_c.py")]
    assert (data["failed"]["direction"], data["failed"]["filename"]) == ("up", "0003_c.py")
    assert applied(mongo_db) == ["0001_a.py", "0002_b.py"]


def test_a_refusal_before_any_step_prints_no_json(project: Project) -> None:
    project.write("0001_a.py", up="pass")
    (project.folder / "0002_b.py").write_text("def up(db):\n    pass\n")  # no down

    result = project.alley("up", "--json")

    assert result.returncode == 3
    assert result.stdout == ""


# --- the Python API ---------------------------------------------------------------------------


class NewestFirst:
    """An ordering plugin: migrations apply by descending id."""

    @hookimpl
    def alley_order_migrations(self, migrations: Any) -> Any:
        return sorted(migrations, key=lambda m: -m.id)


def test_api_down_steps_and_redo_follow_the_ordering_hook(project: Project, mongo_db: Any) -> None:
    journaled(project, "0001_a.py", "0002_b.py", "0003_c.py")
    settings = load_settings({"path": project.root, "url": project.uri}, environ={})

    def engine() -> api.Project:
        return api.Project(settings, db=mongo_db, plugins=[("newest-first", NewestFirst())])

    api.up(settings, project=engine())
    assert journal(mongo_db) == ["up 0003_c.py", "up 0002_b.py", "up 0001_a.py"]
    mongo_db.journal.delete_many({})

    plan = api.plan_down(settings, steps=2, project=engine())
    assert [s.id for s in plan.plan.steps] == [1, 2]
    report = api.down(settings, steps=2, project=engine())
    assert [s.id for s in report.steps] == [1, 2]
    assert report.direction is Direction.DOWN

    redone = api.redo(settings, project=engine())
    assert [(s.direction, s.id) for s in redone.steps] == [(Direction.DOWN, 3), (Direction.UP, 3)]
    last = api.down(settings, project=engine())  # no id, no steps: the last applied one
    assert [s.id for s in last.steps] == [3]
    assert journal(mongo_db) == [
        "down 0001_a.py",
        "down 0002_b.py",
        "down 0003_c.py",
        "up 0003_c.py",
        "down 0003_c.py",
    ]
    with pytest.raises(UsageError):
        api.down(settings, 1, steps=1, project=engine())
    assert api.down(settings, project=engine()).steps == ()


def test_api_errors_carry_what_ran(project: Project, mongo_db: Any, tmp_path: Path) -> None:
    journaled(project, "0001_a.py")
    project.write("0002_boom.py", up="raise KeyError('k')")
    settings = load_settings({"path": project.root, "url": project.uri}, environ={})
    started: list[str] = []

    with pytest.raises(MigrationFailed) as raised:
        api.up(
            settings,
            project=api.Project(settings, db=mongo_db),
            on_start=lambda entry: started.append(entry.filename),
        )

    assert started == ["0001_a.py", "0002_boom.py"]
    failed = api.failed_run(raised.value)
    assert failed is not None
    assert [s.filename for s in failed.steps] == ["0001_a.py"]
    assert failed.failed is not None
    assert failed.failed.filename == "0002_boom.py"
    assert failed.exit_code == 1
    assert api.failed_run(ValueError()) is None


# --- plans go through the same checks as the real command ------------------------------------


def _no_down(project: Project) -> list[str]:
    project.counter("0001_a.py")
    (project.folder / "0002_b.py").write_text("def up(db):\n    pass\n")
    return ["up"]


def _drift(project: Project) -> list[str]:
    project.counter("0001_a.py")
    assert project.alley("up").returncode == 0
    project.write("0001_a.py", up="db.other.insert_one({})")
    project.counter("0002_b.py")
    return ["up"]


def _out_of_order(project: Project) -> list[str]:
    project.counter("0002_b.py")
    assert project.alley("up").returncode == 0
    project.counter("0001_a.py")
    return ["up"]


def _down_without_down(project: Project) -> list[str]:
    project.counter("0001_a.py")
    assert project.alley("up").returncode == 0
    (project.folder / "0001_a.py").write_text("def up(db):\n    pass\n")
    return ["down"]


def _down_of_a_deleted_file(project: Project) -> list[str]:
    project.counter("0001_a.py")
    assert project.alley("up").returncode == 0
    (project.folder / "0001_a.py").unlink()
    return ["down", "--steps", "1"]


def _failed_after_writing(project: Project) -> list[str]:
    project.write("0001_a.py", up="db.counters.insert_one({'_id': 'x'})\nraise ValueError('half')")
    assert project.alley("up").returncode == 1
    return ["up"]


@pytest.mark.parametrize(
    ("scenario", "code", "message"),
    [
        (_no_down, 3, "0002_b.py has no down(db) function"),
        (_drift, 6, "applied migrations differ from their files"),
        (_out_of_order, 6, "pending 0001_a.py is older than applied migration 2"),
        (_down_without_down, 3, "0001_a.py has no down(db) function"),
        (_down_of_a_deleted_file, 6, "cannot roll back 0001_a.py: the migration file is gone"),
        (_failed_after_writing, 6, "0001_a.py failed (up) after it wrote"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_plan_refuses_what_the_real_command_refuses(
    project: Project, mongo_db: Any, scenario: Any, code: int, message: str
) -> None:
    command = scenario(project)
    before = {name: list(mongo_db[name].find()) for name in mongo_db.list_collection_names()}

    plan = project.alley(*command, "--plan")
    plan_json = project.alley(*command, "--plan", "--json")
    after_plans = {name: list(mongo_db[name].find()) for name in mongo_db.list_collection_names()}
    real = project.alley(*command)

    assert after_plans == before  # plans write nothing
    for result in (plan, plan_json, real):
        assert result.returncode == code, result.output
        assert message in result.stderr
        assert result.stdout == ""
    assert plan.stderr == real.stderr
