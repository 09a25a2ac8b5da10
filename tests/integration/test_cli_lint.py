"""``alley lint`` and the lint step of ``up``'s pre-flight, through the command.

``lint`` never connects: it is run against a port where nothing listens. ``up`` (and
``up --plan``, ``status --check``) refuses a plan with an error finding before anything
runs: the database is checked to hold no record and no write of the clean step before it.
A plugin's rule, installed for real (a ``*.dist-info`` on ``PYTHONPATH``), is used by both.
docs/lint.md's outputs are checked by test_lint_page.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_plugin_errors import install

from conftest import Project

OK, MIGRATION_FAILED, CONFIG, PENDING = 0, 1, 3, 7
NOWHERE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"


def plant(project: Project) -> None:
    """A clean step, then a 0.0.3-era step that calls ``save`` (removed in PyMongo 4)."""
    project.counter("0001_clean.py")
    project.write("0002_old.py", up="db.users.save({'_id': 1})", down="db.users.delete_many({})")


def test_lint_needs_no_server_and_prints_one_line_per_finding(project: Project) -> None:
    plant(project)
    project.write("0003_dropper.py", up="db.logs.drop()", down="db.logs.insert_one({})")

    result = project.alley("--url", NOWHERE, "lint", url=False)

    assert result.returncode == CONFIG, result.output
    lines = result.stdout.splitlines()
    assert [line.split(" ", 2)[:2] for line in lines[:-1]] == [
        [f"{project.folder / '0002_old.py'}:3:", "pymongo3-removed"],
        [f"{project.folder / '0003_dropper.py'}:3:", "destructive"],
    ]
    assert lines == [
        f"{project.folder / '0002_old.py'}:3: pymongo3-removed save() was removed in PyMongo 4: "
        "use insert_one() or replace_one(..., upsert=True)",
        f"{project.folder / '0003_dropper.py'}:3: destructive drop() deletes data for good: "
        "make sure down can restore it",
        "3 files checked: 1 error, 1 warning",
    ]
    assert result.stderr == ""


def test_lint_json_and_warnings_only_exit_0(project: Project) -> None:
    project.write("0001_dropper.py", up="db.logs.drop()", down="db.logs.insert_one({})")

    result = project.alley("--url", NOWHERE, "lint", "--json", url=False)

    assert result.returncode == OK, result.output
    data = json.loads(result.stdout)
    assert data["files"] == 1
    assert (data["errors"], data["warnings"]) == (0, 1)
    assert data["findings"][0] | {"message": ""} == {
        "file": str(project.folder / "0001_dropper.py"),
        "line": 3,
        "rule": "destructive",
        "severity": "warning",
        "message": "",
    }


def test_up_refuses_an_error_finding_and_writes_nothing(project: Project, mongo_db: Any) -> None:
    plant(project)

    for command in (("up",), ("up", "--plan"), ("status", "--check")):
        refused = project.alley(*command)
        assert refused.returncode == CONFIG, (command, refused.output)
        lines = refused.stderr.splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith(
            f"alley: error: {project.folder / '0002_old.py'}:3: pymongo3-removed save() was "
            "removed in PyMongo 4"
        ), lines[0]
        assert lines[0].endswith(
            "; nothing ran (run 'alley lint'; fix it, add '# alley: ignore[pymongo3-removed]' "
            "to the line, or run with --no-lint)"
        ), lines[0]
        assert "Traceback" not in refused.output
    assert mongo_db.counters.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 0


@pytest.mark.parametrize("skip", [("up", "--no-lint"), ("-o", "lint=false", "up")])
def test_no_lint_runs_up_as_before_and_the_pymongo3_call_then_fails(
    project: Project, mongo_db: Any, skip: tuple[str, ...]
) -> None:
    plant(project)

    result = project.alley(*skip)

    assert result.returncode == MIGRATION_FAILED, result.output
    assert "0002_old.py failed (up)" in result.stderr
    assert mongo_db.counters.find_one({"_id": "0001"}) == {"_id": "0001", "n": 1}
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_clean.py"]


def test_silenced_on_the_line_or_in_the_project_up_runs(project: Project, mongo_db: Any) -> None:
    project.write(
        "0001_count.py",
        up="if False:\n    db.users.count()  # alley: ignore[pymongo3-removed]\n"
        "db.users.insert_one({'_id': 'a'})",
        down="db.users.delete_many({})",
    )
    project.write(
        "0002_remove.py",
        up="if False:\n    db.users.remove({})\ndb.users.insert_one({'_id': 'b'})",
        down="db.users.delete_many({})",
    )
    refused = project.alley("up")
    assert refused.returncode == CONFIG, refused.output
    assert "0002_remove.py:4: pymongo3-removed" in refused.stderr

    (project.root / "pyproject.toml").write_text(
        '[tool.alley]\nlint_ignore = ["pymongo3-removed"]\n'
    )
    assert project.alley("--url", NOWHERE, "lint", url=False).returncode == OK
    result = project.alley("up")

    assert result.returncode == OK, result.output
    assert sorted(d["_id"] for d in mongo_db.users.find()) == ["a", "b"]


def test_a_bad_lint_ignore_is_a_config_error(project: Project) -> None:
    project.counter("0001_clean.py")
    (project.root / "pyproject.toml").write_text("[tool.alley]\nlint_ignore = 3\n")

    result = project.alley("--url", NOWHERE, "lint", url=False)

    assert result.returncode == CONFIG, result.output
    assert result.stderr.splitlines() == [
        "alley: error: invalid [tool.alley] lint_ignore must be a list of rule ids, not 3"
    ]


PLUGIN_RULE = """
import ast

from alley.hookspecs import hookimpl
from alley.lint import Rule, Severity


def no_print(source):
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            yield node.lineno, "print() in a migration: use the run's notes"


@hookimpl
def alley_lint_rules():
    return [Rule("no-print", Severity.ERROR, no_print)]
"""


def test_a_plugin_adds_a_rule_through_the_hook(
    project: Project, mongo_db: Any, tmp_path: Path
) -> None:
    env = install(tmp_path / "site", "noprint", "1.0", {"noprint_plugin.py": PLUGIN_RULE})
    project.write("0001_chatty.py", up="print('hi')\ndb.users.insert_one({})", down="pass")

    linted = project.alley("--url", NOWHERE, "lint", env=env, url=False, process=True)
    refused = project.alley("up", env=env, process=True)
    without = project.alley("--url", NOWHERE, "lint", url=False, process=True)

    assert linted.returncode == CONFIG, linted.output
    assert f"{project.folder / '0001_chatty.py'}:3: no-print print() in a migration" in (
        linted.stdout
    )
    assert refused.returncode == CONFIG, refused.output
    assert "0001_chatty.py:3: no-print" in refused.stderr
    assert mongo_db.users.count_documents({}) == 0
    assert without.returncode == OK, without.output
    assert "no-print" not in without.stdout
