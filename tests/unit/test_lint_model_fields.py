"""The lint rule ``destructive`` with the ``models`` setting: an ``$unset`` is flagged
only when it removes a field a model declares (pure: source text and the fields the
models declare, as :func:`alley.model_indexes.declared_fields` gives them)."""

# MongoEngine's meta is a plain dict on the class.
# ruff: noqa: RUF012

from __future__ import annotations

import textwrap

import mongoengine as me
import pytest

from alley.lint import lint_source
from alley.model_indexes import declared_fields
from alley_plugins.lint_rules import RULES

FIELDS = {"users": {"email": "shop.models.User", "_id": "shop.models.User"}}


def unset_findings(up: str, fields: dict[str, dict[str, str]] | None = FIELDS) -> list[str]:
    text = (
        f"def up(db):\n{textwrap.indent(textwrap.dedent(up), '    ')}\n\ndef down(db):\n    pass\n"
    )
    findings = lint_source("0001_x.py", "0001_x.py", text, RULES, model_fields=fields)
    return [f.message for f in findings if f.rule == "destructive"]


def test_without_models_every_unset_is_flagged() -> None:
    assert unset_findings('db.users.update_many({}, {"$unset": {"legacy": ""}})', None) == [
        "$unset removes a field's values: down cannot restore them"
    ]


@pytest.mark.parametrize(
    "up",
    [
        'db.users.update_many({}, {"$unset": {"email": ""}})',
        'db["users"].update_many({}, {"$unset": {"email.verified": 1}})',
        'users = db.users\nusers.update_one({"_id": 1}, {"$unset": {"email": ""}})',
        'db.users.update_many({}, {"$set": {"a": 1}, "$unset": {"legacy": 1, "email": 1}})',
    ],
)
def test_an_unset_of_a_declared_field_is_flagged(up: str) -> None:
    found = unset_findings(up)
    assert len(found) == 1
    assert "email, which shop.models.User declares: down cannot restore its values" in found[0]


def test_the_collection_is_named_when_the_file_says_which() -> None:
    assert unset_findings('db.users.update_many({}, {"$unset": {"email": ""}})') == [
        "$unset removes users.email, which shop.models.User declares: "
        "down cannot restore its values"
    ]


@pytest.mark.parametrize(
    "up",
    [
        'db.users.update_many({}, {"$unset": {"legacy": ""}})',  # no model declares it
        'db.orders.update_many({}, {"$unset": {"email": ""}})',  # not the users' field
        'db.users.update_many({}, {"$set": {"email": "x"}})',
    ],
)
def test_an_unset_of_an_undeclared_field_is_not(up: str) -> None:
    assert unset_findings(up) == []


def test_computed_fields_are_flagged_they_may_be_declared_ones() -> None:
    found = unset_findings('fields = {"email": ""}\ndb.users.update_many({}, {"$unset": fields})')
    assert found == ["$unset removes a field's values: down cannot restore them"]


def test_an_unset_in_down_is_never_flagged() -> None:
    text = (
        "def up(db):\n    pass\n\n"
        'def down(db):\n    db.users.update_many({}, {"$unset": {"email": ""}})\n'
    )
    findings = lint_source("0001_x.py", "0001_x.py", text, RULES, model_fields=FIELDS)
    assert [f for f in findings if f.rule == "destructive"] == []


def test_declared_fields_by_collection_with_db_field_names() -> None:
    class Member(me.Document):
        email = me.StringField()
        nick = me.StringField(db_field="n")
        meta = {"collection": "members", "allow_inheritance": True}

    class Admin(Member):
        level = me.IntField()

    fields = declared_fields([Member, Admin])
    name = f"{__name__}.test_declared_fields_by_collection_with_db_field_names.<locals>"
    assert fields == {
        "members": {
            "_id": f"{name}.Member",
            "email": f"{name}.Member",
            "n": f"{name}.Member",
            "level": f"{name}.Admin",
        }
    }
