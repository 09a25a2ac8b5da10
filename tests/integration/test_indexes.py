"""alley.indexes against the real servers: create only what is missing, refuse what
conflicts, look for duplicates before a unique build, drop by name or keys."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from alley.errors import DuplicateKeys, ExitCode, IndexConflict, IndexUnsupported
from alley.indexes import (
    comparable_keys,
    differences,
    drop_index,
    ensure_index,
    find_duplicates,
    index_name,
    is_large,
    large_collection_threshold,
    normalise_options,
    rebuild_index,
    reported_keys,
)
from alley.settings import load_settings
from conftest import Project

DB = Database[dict[str, Any]]


def _names(db: DB, collection: str) -> list[str]:
    return sorted(str(i["name"]) for i in db[collection].list_indexes())


def _is_ferretdb(capabilities: Any) -> bool:
    return "ferretdb" in capabilities.server.lower()


def test_an_equivalent_index_is_not_built_again(mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a@x", "at": 1}, {"email": "b@x", "at": 2}])
    first = ensure_index(mongo_db, "users", [("email", 1), ("at", -1)])
    assert (first.name, first.created, first.action) == ("email_1_at_-1", True, "created")
    # The same index spelled otherwise: a mapping, doubles, background, a default option.
    again = ensure_index(
        mongo_db, "users", {"email": 1.0, "at": -1.0}, background=True, unique=False
    )
    assert (again.name, again.created, again.existed, again.action) == (
        "email_1_at_-1",
        False,
        True,
        "exists",
    )
    # Same keys and options under another name: the index that is there is enough.
    named = ensure_index(mongo_db, "users", [("email", 1), ("at", -1)], name="by_email")
    assert (named.name, named.created) == ("email_1_at_-1", False)
    assert _names(mongo_db, "users") == ["_id_", "email_1_at_-1"]


def test_a_unique_index_is_equivalent_to_itself(mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a@x"}, {"email": "b@x"}])
    assert ensure_index(mongo_db, "users", "email", unique=True).created
    assert not ensure_index(mongo_db, "users", [("email", 1)], unique=True).created
    with pytest.raises(DuplicateKeyError):
        mongo_db.users.insert_one({"email": "a@x"})


def test_the_same_name_with_other_options_is_a_clear_error(mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a@x"}, {"email": "b@x"}])
    ensure_index(mongo_db, "users", [("email", 1)])
    with pytest.raises(IndexConflict) as raised:
        ensure_index(mongo_db, "users", [("email", 1)], unique=True)
    message = str(raised.value)
    assert "email_1" in message
    assert "unique" in message
    assert "users" in message
    assert raised.value.exit_code == ExitCode.MIGRATION_FAILED
    # Nothing changed: the index there is still the plain one.
    index = next(i for i in mongo_db.users.list_indexes() if i["name"] == "email_1")
    assert not index.get("unique")


def test_the_same_name_on_other_keys_is_a_clear_error(mongo_db: DB) -> None:
    mongo_db.users.insert_one({"email": "a@x", "login": "a"})
    ensure_index(mongo_db, "users", [("email", 1)], name="lookup")
    with pytest.raises(IndexConflict, match=r"lookup.*other keys.*'login': 1"):
        ensure_index(mongo_db, "users", [("login", 1)], name="lookup")
    assert _names(mongo_db, "users") == ["_id_", "lookup"]


def test_unique_over_duplicates_fails_before_building_and_names_them(mongo_db: DB) -> None:
    mongo_db.users.insert_many(
        [
            {"email": "a@x", "org": 1},
            {"email": "dup@x", "org": 7},
            {"email": "dup@x", "org": 7},
            {"email": "dup@x", "org": 7},
            {"email": "dup@x", "org": 8},
        ]
    )
    with pytest.raises(DuplicateKeys) as raised:
        ensure_index(mongo_db, "users", [("email", 1), ("org", 1)], unique=True)
    error = raised.value
    assert error.keys == {"email": "dup@x", "org": 7}
    assert error.count == 3
    assert "3 documents share email='dup@x', org=7" in str(error)
    assert "nothing was built" in str(error)
    assert _names(mongo_db, "users") == ["_id_"]


def test_duplicates_on_a_dotted_key(mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"p": {"e": "x"}}, {"p": {"e": "x"}}, {"p": {"e": "y"}}])
    assert find_duplicates(mongo_db, "users", [("p.e", 1)]) == ({"p.e": "x"}, 2)
    assert find_duplicates(mongo_db, "users", [("p.e", 1)], {"partialFilterExpression": {}}) == (
        {"p.e": "x"},
        2,
    )
    mongo_db.users.delete_one({"p.e": "x"})
    assert find_duplicates(mongo_db, "users", [("p.e", 1)]) is None


def test_a_sparse_duplicate_check_leaves_out_documents_without_the_keys(mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a@x"}, {"other": 1}, {"other": 2}])
    assert find_duplicates(mongo_db, "users", "email", {"sparse": True}) is None


def test_drop_by_name_and_by_keys(mongo_db: DB) -> None:
    mongo_db.users.insert_one({"email": "a@x", "at": 1})
    ensure_index(mongo_db, "users", [("email", 1)])
    ensure_index(mongo_db, "users", [("at", -1)], name="recent")
    by_name = drop_index(mongo_db, "users", "email_1")
    assert (by_name.name, by_name.dropped, by_name.action) == ("email_1", True, "dropped")
    by_keys = drop_index(mongo_db, "users", [("at", -1)])
    assert (by_keys.name, by_keys.dropped) == ("recent", True)
    assert _names(mongo_db, "users") == ["_id_"]
    # Not there: nothing to do, and the result says so.
    missing = drop_index(mongo_db, "users", [("email", 1)])
    assert (missing.dropped, missing.existed, missing.action) == (False, False, "missing")
    assert drop_index(mongo_db, "nowhere", "email_1").action == "missing"


def test_a_bare_field_name_drops_its_ascending_index(mongo_db: DB) -> None:
    mongo_db.users.insert_one({"email": "a@x"})
    ensure_index(mongo_db, "users", "email")
    assert drop_index(mongo_db, "users", "email").name == "email_1"
    assert _names(mongo_db, "users") == ["_id_"]


def test_down_reverses_what_up_created(project: Project, mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a@x", "at": 1}, {"email": "b@x", "at": 2}])
    mongo_db.users.create_index([("at", 1)])  # there before: not the migration's
    project.write(
        "0001_email_index.py",
        header="from alley.indexes import drop_index, ensure_index",
        up="ensure_index(db, 'users', [('email', 1)], unique=True)\n"
        "ensure_index(db, 'users', [('at', 1)])",
        down="drop_index(db, 'users', [('email', 1)])",
    )
    before = _names(mongo_db, "users")
    assert project.alley("up").returncode == 0
    assert _names(mongo_db, "users") == ["_id_", "at_1", "email_1"]
    assert project.alley("down").returncode == 0
    assert _names(mongo_db, "users") == before
    # up again after down: built again, then nothing on a third ensure.
    assert project.alley("up").returncode == 0
    assert _names(mongo_db, "users") == ["_id_", "at_1", "email_1"]


def test_a_conflict_in_a_migration_fails_it_with_the_message(
    project: Project, mongo_db: DB
) -> None:
    mongo_db.users.insert_many([{"email": "a@x"}, {"email": "a@x"}])
    project.write(
        "0001_email_index.py",
        header="from alley.indexes import ensure_index",
        up="ensure_index(db, 'users', [('email', 1)], unique=True)",
    )
    result = project.alley("up")
    assert result.returncode == ExitCode.MIGRATION_FAILED
    assert "DuplicateKeys" in result.stderr
    assert "2 documents share email='a@x'" in result.stderr
    assert _names(mongo_db, "users") == ["_id_"]


def test_large_collection_detection_with_a_small_threshold(mongo_db: DB) -> None:
    mongo_db.events.insert_many([{"n": i} for i in range(5)])
    assert not is_large(mongo_db, "events")  # the default: 1,000,000
    assert is_large(mongo_db, "events", threshold=5)
    assert not is_large(mongo_db, "events", threshold=6)
    assert not is_large(mongo_db, "nowhere", threshold=1)
    settings = load_settings({"options": ["large_collection=5"]})
    assert large_collection_threshold(settings) == 5
    assert large_collection_threshold(None) == 1_000_000


def test_options_each_server_supports(mongo_db: DB, server_capabilities: Any) -> None:
    """sparse and partial indexes where the server keeps them; refused with nothing
    left built where it does not (FerretDB 1.24 ignores sparse and refuses partial)."""
    mongo_db.users.insert_many([{"email": "a@x", "active": True}, {"other": 1}])
    ferretdb = _is_ferretdb(server_capabilities)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("email", {"sparse": True}),
        ("active", {"partialFilterExpression": {"active": {"$eq": True}}}),
    ]
    for field, options in cases:
        if ferretdb:
            with pytest.raises(IndexUnsupported):
                ensure_index(mongo_db, "users", field, **options)
            assert _names(mongo_db, "users") == ["_id_"]
        else:
            assert ensure_index(mongo_db, "users", field, **options).created
            assert not ensure_index(mongo_db, "users", field, **options).created
            with pytest.raises(IndexConflict):
                ensure_index(mongo_db, "users", field)  # same name, without the option


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"v": 2, "ns": "db.c", "name": "x", "key": {"a": 1}}, {}),
        ({"unique": False, "sparse": False, "background": True}, {}),
        ({"unique": True, "expireAfterSeconds": 60.0}, {"unique": True, "expireAfterSeconds": 60}),
    ],
)
def test_options_are_normalised(options: dict[str, Any], expected: dict[str, Any]) -> None:
    assert normalise_options(options) == expected


def test_index_names() -> None:
    assert index_name([("email", 1), ("at", -1.0)]) == "email_1_at_-1"
    assert index_name("email") == "email_1"


def test_a_text_index_as_mongodb_reports_it_is_equivalent() -> None:
    """MongoDB lists a text index as ``_fts``/``_ftsx`` keys with its fields in
    ``weights`` and its defaults filled in; none of the test servers does."""
    reported = {
        "v": 2,
        "key": {"org": 1, "_fts": "text", "_ftsx": 1},
        "name": "org_1_title_text_body_text",
        "weights": {"body": 1, "title": 1},
        "default_language": "english",
        "language_override": "language",
        "textIndexVersion": 3,
    }
    assert reported_keys(reported) == comparable_keys(
        [("org", 1), ("title", "text"), ("body", "text")]
    )
    assert differences(normalise_options({}), reported) == []
    assert differences(normalise_options({"weights": {"title": 5}}), reported) == [
        "it lacks weights={'title': 5}"
    ]


def test_a_collation_is_compared_on_the_fields_given() -> None:
    reported = {"collation": {"locale": "en", "strength": 3, "caseLevel": False, "version": "57.1"}}
    assert differences(normalise_options({"collation": {"locale": "en"}}), reported) == []
    assert differences(normalise_options({"collation": {"locale": "fr"}}), reported) != []


def test_a_text_index_is_ensured_once(mongo_db: DB, server_capabilities: Any) -> None:
    if _is_ferretdb(server_capabilities):
        pytest.skip("FerretDB 1.24 has no text indexes")
    mongo_db.posts.insert_one({"title": "a", "body": "b"})
    assert ensure_index(mongo_db, "posts", [("title", "text"), ("body", "text")]).created
    again = ensure_index(mongo_db, "posts", [("title", "text"), ("body", "text")])
    assert (again.created, again.existed) == (False, True)
    assert drop_index(mongo_db, "posts", "title_text_body_text").dropped


def test_step_helpers_build_once_and_down_drops_by_the_same_keys(
    project: Project, mongo_db: DB
) -> None:
    mongo_db.users.insert_many([{"email": "a@x"}, {"email": "b@x"}])
    (project.folder / "0001_email_index.py").write_text(
        "def up(db, step):\n"
        "    result = step.create_index('users', [('email', 1)], unique=True)\n"
        "    db.results.insert_one({'created': result.created})\n"
        "\n\n"
        "def down(db, step):\n"
        "    step.drop_index('users', [('email', 1)])\n"
    )
    assert project.alley("up").returncode == 0
    assert _names(mongo_db, "users") == ["_id_", "email_1"]
    assert project.alley("up", "--plan").returncode == 0  # nothing pending
    assert project.alley("down").returncode == 0
    assert _names(mongo_db, "users") == ["_id_"]
    mongo_db.users.create_index([("email", 1)], unique=True)  # built by someone else
    assert project.alley("up").returncode == 0
    created = [d["created"] for d in mongo_db.results.find({}, sort=[("_id", 1)])]
    assert created == [True, False]


def indexes_of(db: DB, collection: str) -> dict[str, Any]:
    return {
        str(i["name"]): (reported_keys(i), normalise_options(i))
        for i in db[collection].list_indexes()
    }


def test_rebuild_replaces_an_index_with_other_options_and_is_harmless_twice(
    mongo_db: DB,
) -> None:
    mongo_db.users.insert_many([{"email": "a"}, {"email": "b"}])
    mongo_db.users.create_index("email")

    result = rebuild_index(
        mongo_db, "users", [("email", 1)], unique=True, name="email_1", replaces="email_1"
    )

    assert (result.action, result.created) == ("rebuilt", True)
    assert indexes_of(mongo_db, "users")["email_1"] == ((("email", 1),), {"unique": True})
    again = rebuild_index(
        mongo_db, "users", [("email", 1)], unique=True, name="email_1", replaces="email_1"
    )
    assert (again.action, again.existed) == ("exists", True)
    back = rebuild_index(mongo_db, "users", [("email", 1)], name="email_1", replaces="email_1")
    assert back.action == "rebuilt"
    assert indexes_of(mongo_db, "users")["email_1"] == ((("email", 1),), {})


def test_rebuild_over_duplicates_refuses_before_dropping_anything(mongo_db: DB) -> None:
    mongo_db.users.insert_many([{"email": "a"}, {"email": "a"}])
    mongo_db.users.create_index("email")
    before = indexes_of(mongo_db, "users")

    with pytest.raises(DuplicateKeys, match="2 documents share email='a'") as raised:
        rebuild_index(
            mongo_db, "users", [("email", 1)], unique=True, name="email_1", replaces="email_1"
        )

    assert "email_1 was not dropped" in str(raised.value.hint)
    assert indexes_of(mongo_db, "users") == before


def test_rebuild_puts_the_old_index_back_when_the_build_fails(
    mongo_db: DB, server_capabilities: Any
) -> None:
    """A build the checks could not foresee fails after the drop: on FerretDB 1.24 a
    TTL index (the server refuses it); elsewhere arrays that share an element (the
    duplicate check compares arrays whole, a multikey unique build their elements)."""
    if server_capabilities.has("ttl_index"):
        mongo_db.users.insert_many([{"tags": [1, 2]}, {"tags": [2, 3]}])
        options: dict[str, Any] = {"unique": True}
        refused: type[Exception] = DuplicateKeyError
    else:
        options, refused = {"expireAfterSeconds": 60}, IndexUnsupported
    mongo_db.users.create_index("tags")
    before = indexes_of(mongo_db, "users")

    with pytest.raises(refused):
        rebuild_index(mongo_db, "users", [("tags", 1)], name="tags_1", replaces="tags_1", **options)

    assert indexes_of(mongo_db, "users") == before


def test_rebuild_in_a_plan_is_one_action_with_the_duplicates_as_its_conflict(
    project: Project, mongo_db: DB
) -> None:
    mongo_db.users.insert_many([{"email": "a"}, {"email": "a"}])
    mongo_db.users.create_index("email")
    project.folder.mkdir(parents=True, exist_ok=True)
    (project.folder / "0001_unique.py").write_text(
        "def up(db, step):\n"
        '    step.rebuild_index("users", [("email", 1)], unique=True, replaces="email_1")\n'
        "\n\n"
        "def down(db, step):\n"
        '    step.rebuild_index("users", [("email", 1)], replaces="email_1")\n'
    )

    plan = project.alley("up", "--plan")

    assert plan.returncode == int(ExitCode.PENDING), plan.output
    assert (
        "index users email_1: conflicts: cannot build unique index email_1 on users: "
        "2 documents share email='a'" in plan.stdout
    ), plan.stdout
    mongo_db.users.delete_one({"email": "a"})
    clean = project.alley("up", "--plan")
    assert "index users email_1: to rebuild" in clean.stdout, clean.stdout
    assert project.alley("up").returncode == 0
    assert indexes_of(mongo_db, "users")["email_1"] == ((("email", 1),), {"unique": True})
