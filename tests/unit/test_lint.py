"""The lint rules (:mod:`alley.lint`, :mod:`alley_plugins.lint_rules`) on source text.

Pure: no server, no files. Each rule has a case it finds, at the right line, and look-alikes
it must not find (a dict's ``update``, alley's helpers, a ``drop`` in ``down``).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from alley import lint
from alley_plugins.lint_rules import RULES

ROOT = Path(__file__).parents[2]


def findings(source: str, ignore: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    text = textwrap.dedent(source)
    found = lint.lint_source("0001_m.py", "migrations/0001_m.py", text, RULES, ignore=ignore)
    return [(f.line, f.rule) for f in found]


CLEAN_DOWN = "\n\ndef down(db):\n    db.users.delete_many({'new': True})\n"


@pytest.mark.parametrize(
    "call",
    [
        "db.users.insert({'a': 1})",
        "db.users.save({'a': 1})",
        "db.users.update({}, {'$set': {'a': 1}})",
        "db.users.remove({'a': 1})",
        "db.users.find_and_modify({'a': 1}, {'$set': {'b': 1}})",
        "db.users.ensure_index('a')",
        "db['users'].count()",
        "db.get_collection('users').count()",
    ],
)
def test_pymongo3_calls_are_errors_at_their_line(call: str) -> None:
    source = f"def up(db):\n    x = 1\n    {call}\n" + CLEAN_DOWN
    assert findings(source) == [(3, "pymongo3-removed")]


def test_a_collection_held_in_a_variable_is_followed() -> None:
    source = "def up(db):\n    users = db.users\n    users.save({})\n" + CLEAN_DOWN
    assert findings(source) == [(3, "pymongo3-removed")]


def test_pymongo4_calls_and_look_alikes_are_not_flagged() -> None:
    source = """
    from alley import indexes
    from alley.indexes import ensure_index

    def up(db, step):
        db.users.count_documents({})
        db.users.update_one({}, {'$set': {'a': 1}})
        options = {}
        options.update({'a': 1})
        names = ['a']
        names.remove('a')
        'abc'.count('a')
        ensure_index(db, 'users', 'email')
        indexes.ensure_index(db, 'users', 'login')

    def down(db):
        db.users.delete_many({'a': 1})
    """
    assert findings(source) == []


def test_missing_down_is_an_error_and_empty_down_a_warning() -> None:
    assert findings("def up(db):\n    db.a.insert_one({})\n") == [(1, "missing-down")]
    empty = 'def up(db):\n    db.a.insert_one({})\n\n\ndef down(db):\n    """Nothing."""\n'
    assert findings(empty) == [(5, "empty-down")]
    assert findings("def up(db):\n    db.a.insert_one({})\n\n\ndef down(db):\n    pass\n") == [
        (5, "empty-down")
    ]


def test_destructive_operations_outside_down_are_warnings() -> None:
    source = """
    def up(db):
        db.users.drop()
        db.drop_collection('old')
        db.logs.delete_many({})
        db.logs.delete_many({'old': True})
        db.users.update_many({}, {'$unset': {'legacy': ''}})

    def down(db):
        db.users.drop()
    """
    assert findings(source) == [
        (3, "destructive"),
        (4, "destructive"),
        (5, "destructive"),
        (7, "destructive"),
    ]


def test_unique_index_needs_a_duplicate_check_unless_alley_does_it() -> None:
    plain = "def up(db):\n    db.users.create_index('email', unique=True)\n" + CLEAN_DOWN
    assert findings(plain) == [(2, "unique-without-check")]
    checked = (
        "def up(db):\n"
        "    dups = list(db.users.aggregate([{'$group': {'_id': '$email', 'n': {'$sum': 1}}}]))\n"
        "    assert not [d for d in dups if d['n'] > 1]\n"
        "    db.users.create_index('email', unique=True)\n" + CLEAN_DOWN
    )
    assert findings(checked) == []
    helpers = (
        "def up(db, step):\n    step.create_index('users', 'email', unique=True)\n" + CLEAN_DOWN
    )
    assert findings(helpers) == []


def test_index_creation_in_a_transactional_migration_is_an_error() -> None:
    source = "transaction = True\n\n\ndef up(db):\n    db.users.create_index('a')\n" + CLEAN_DOWN
    assert findings(source) == [(5, "index-in-transaction")]
    assert findings(source.replace("True", "False", 1)) == []


def test_a_line_comment_silences_one_rule_or_all() -> None:
    source = """
    def up(db):
        db.users.save({})  # alley: ignore[pymongo3-removed]
        db.users.drop()  # alley: ignore[pymongo3-removed]
        db.users.count()  # alley: ignore
        text = "# alley: ignore"; db.users.insert({})

    def down(db):  # alley: ignore[empty-down, destructive]
        pass
    """
    assert findings(source) == [(4, "destructive"), (6, "pymongo3-removed")]


def test_project_ignores_silence_a_rule_everywhere() -> None:
    source = "def up(db):\n    db.users.drop()\n\n\ndef down(db):\n    pass\n"
    assert findings(source, ignore=("destructive", "empty-down")) == []
    assert lint.project_ignores({"lint_ignore": ["destructive"]}) == ("destructive",)
    with pytest.raises(ValueError, match="lint_ignore must be a list of rule ids"):
        lint.project_ignores({"lint_ignore": 3})


def test_a_file_that_does_not_parse_is_one_syntax_error() -> None:
    assert findings("def up(db)\n    pass\n") == [(1, "syntax")]


def test_the_json_shape() -> None:
    found = lint.lint_source("0001_m.py", "m/0001_m.py", "def up(db):\n    pass\n", RULES)
    report = lint.LintReport(tuple(found), files=1)
    data = json.loads(json.dumps(report.as_dict()))
    assert data == {
        "files": 1,
        "errors": 1,
        "warnings": 0,
        "findings": [
            {
                "file": "m/0001_m.py",
                "line": 1,
                "rule": "missing-down",
                "severity": "error",
                "message": "no down(db) function: up refuses a migration it could not roll back",
            }
        ],
    }
    assert str(found[0]) == (
        "m/0001_m.py:1: missing-down no down(db) function: "
        "up refuses a migration it could not roll back"
    )


def test_a_rule_given_twice_keeps_the_first() -> None:
    mine = lint.Rule("destructive", lint.Severity.ERROR, lambda source: [])
    assert lint.unique_rules([mine, *RULES])[0] is mine
    assert len(lint.unique_rules([mine, *RULES])) == len(RULES)


def python_blocks(text: str) -> list[tuple[str, str]]:
    """Each fenced ``python`` block of a Markdown page: (the rest of its fence line, code)."""
    return re.findall(r"^[ \t]*```python([^\n]*)\n(.*?)```", text, re.M | re.S)


def test_the_projects_own_migration_snippets_have_no_errors() -> None:
    """The docs' and README's migrations (``def up(db...)`` blocks) pass the error rules.

    A block fenced ```` ```python planted ```` is a sample with an error planted on
    purpose (docs/lint.md): lint must find an error in it instead."""
    errors, planted = [], 0
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for info, code in python_blocks(page.read_text()):
            if "planted" in info.split():
                found = lint.lint_source(page.name, str(page), code, RULES)
                assert any(f.severity is lint.Severity.ERROR for f in found), (page, code)
                planted += 1
                continue
            if not all(re.search(rf"^(async )?def {f}\(", code, re.M) for f in ("up", "down")):
                continue  # not a whole migration file
            try:
                compile(code, str(page), "exec")
            except SyntaxError:
                continue  # a fragment, not a file
            for f in lint.lint_source(page.name, str(page), code, RULES):
                if f.severity is lint.Severity.ERROR:
                    errors.append(str(f))
    assert errors == []
    assert planted == 4  # docs/lint.md's sample: 0002, 0003, 0007, 0008


def test_the_projects_own_migration_files_have_no_findings() -> None:
    """Every migration file shipped in ``examples/`` lints clean: no error, no warning."""
    files = sorted(ROOT.glob("examples/**/migrations/[0-9]*_*.py"))
    assert files, "the examples hold migration files"
    found = [
        str(f)
        for path in files
        for f in lint.lint_source(path.name, str(path), path.read_text(), RULES)
    ]
    assert found == []
