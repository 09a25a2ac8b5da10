"""alley.model_indexes without a server: MongoEngine models → the indexes their
``ensure_indexes()`` would create, each form of ``meta['indexes']`` and of the fields;
the comparison with ``listIndexes`` answers (plain dicts, as the server sends them);
the migration written from the differences (compiled and run against a recording
database object that stands for the helpers' ``db``).
"""

# MongoEngine's meta is a plain dict on the class.
# ruff: noqa: RUF012

from __future__ import annotations

import ast
import sys
from typing import Any

import mongoengine as me
import pytest

from alley import model_indexes
from alley.errors import ConfigError
from alley.model_indexes import (
    MONGOENGINE_META_KEYS,
    MONGOENGINE_PRIVATE_NAMES,
    compare_collection,
    declared_indexes,
    indexes_of,
    option_differences,
    render_migration,
)


def spec(document: type) -> list[tuple[str, tuple[tuple[str, Any], ...], dict[str, Any]]]:
    return [(i.name, i.keys, i.wanted) for i in indexes_of(document)]


class Plain(me.Document):
    a = me.StringField()
    b = me.StringField()
    c = me.StringField()
    meta = {"indexes": ["a", "-b", "+c", ("a", "-b"), ["b", "c"]]}


class Unique(me.Document):
    email = me.StringField(unique=True)
    handle = me.StringField(unique_with="tenant")
    tenant = me.StringField()
    nick = me.StringField(unique=True, sparse=True)
    code = me.StringField(unique=True, db_field="c")


class Options(me.Document):
    at = me.DateTimeField()
    status = me.StringField()
    title = me.StringField()
    body = me.StringField()
    token = me.StringField()
    meta = {
        "collection": "opts",
        "index_background": True,
        "indexes": [
            {"fields": ["at"], "expireAfterSeconds": 60},
            {
                "fields": ["status"],
                "name": "open",
                "partialFilterExpression": {"status": "open"},
                "unique": True,
            },
            {"fields": ["title"], "collation": {"locale": "fr"}, "name": "t_fr", "sparse": True},
            {"fields": ["$title", "$body"], "weights": {"title": 5}},
            "#token",
        ],
    }


class Geo(me.Document):
    where = me.PointField()
    legacy = me.GeoPointField()
    meta = {"indexes": ["(where", "*legacy"]}


class Base(me.Document):
    created = me.DateTimeField()
    meta = {"abstract": True, "indexes": ["-created"]}


class Concrete(Base):
    x = me.StringField()


class Animal(me.Document):
    name = me.StringField()
    tag = me.StringField()
    meta = {"allow_inheritance": True, "indexes": ["name", {"fields": ["tag"], "cls": False}]}


class Dog(Animal):
    breed = me.StringField()
    meta = {"indexes": ["breed"]}


class Bare(me.Document):
    x = me.StringField()
    meta = {"allow_inheritance": True}


class NoClsIndex(me.Document):
    at = me.DateTimeField()
    meta = {"allow_inheritance": True, "index_cls": False, "indexes": ["at"]}


class Manual(me.Document):
    x = me.StringField()
    meta = {"auto_create_index": False, "indexes": ["x"], "index_opts": {"sparse": True}}


def test_the_mongoengine_private_names_still_exist() -> None:
    """A MongoEngine release that moves one of these breaks this module: fail here."""
    for name in MONGOENGINE_PRIVATE_NAMES:
        assert hasattr(Plain, name), name
    # index_cls is only there when a class sets it (MongoEngine reads it with a default)
    for key in set(MONGOENGINE_META_KEYS) - {"index_cls"}:
        assert key in Plain._meta, key
    assert NoClsIndex._meta["index_cls"] is False
    from mongoengine.document import includes_cls

    assert includes_cls([("_cls", 1), ("a", 1)])
    assert not includes_cls([("a", 1)])


def test_string_and_list_forms() -> None:
    assert spec(Plain) == [
        ("a_1", (("a", 1),), {}),
        ("b_-1", (("b", -1),), {}),
        ("c_1", (("c", 1),), {}),
        ("a_1_b_-1", (("a", 1), ("b", -1)), {}),
        ("b_1_c_1", (("b", 1), ("c", 1)), {}),
    ]
    assert {i.collection for i in indexes_of(Plain)} == {"plain"}
    assert {i.declared_by for i in indexes_of(Plain)} == {(f"{__name__}.Plain",)}


def test_unique_unique_with_sparse_and_db_field() -> None:
    assert spec(Unique) == [
        ("email_1", (("email", 1),), {"unique": True}),
        ("handle_1_tenant_1", (("handle", 1), ("tenant", 1)), {"unique": True}),
        ("nick_1", (("nick", 1),), {"unique": True, "sparse": True}),
        ("c_1", (("c", 1),), {"unique": True}),
    ]


def test_dict_options_text_hashed_and_the_collection_name() -> None:
    assert spec(Options) == [
        ("at_1", (("at", 1),), {"expireAfterSeconds": 60}),
        ("open", (("status", 1),), {"partialFilterExpression": {"status": "open"}, "unique": True}),
        ("t_fr", (("title", 1),), {"collation": {"locale": "fr"}, "sparse": True}),
        ("title_text_body_text", (("title", "text"), ("body", "text")), {"weights": {"title": 5}}),
        ("token_hashed", (("token", "hashed"),), {}),
    ]
    assert {i.collection for i in indexes_of(Options)} == {"opts"}
    # index_background is not an option of the index
    assert all("background" not in i.options for i in indexes_of(Options))


def test_geo_forms() -> None:
    assert spec(Geo) == [
        ("where_2dsphere", (("where", "2dsphere"),), {}),
        ("legacy_2d", (("legacy", "2d"),), {}),
    ]


def test_abstract_bases_give_their_indexes_to_subclasses() -> None:
    assert model_indexes.documents_of(__import__(__name__, fromlist=["x"])).count(Base) == 0
    assert spec(Concrete) == [("created_-1", (("created", -1),), {})]


def test_inheritance_cls_prefix_cls_false_and_the_shared_collection() -> None:
    assert spec(Animal) == [
        ("_cls_1_name_1", (("_cls", 1), ("name", 1)), {}),
        ("tag_1", (("tag", 1),), {}),
    ]
    declared = declared_indexes([Animal, Dog])
    assert list(declared) == ["animal"]
    assert [(i.name, i.declared_by) for i in declared["animal"]] == [
        ("_cls_1_name_1", (f"{__name__}.Animal", f"{__name__}.Dog")),
        ("tag_1", (f"{__name__}.Animal", f"{__name__}.Dog")),
        ("_cls_1_breed_1", (f"{__name__}.Dog",)),
    ]


def test_the_cls_index_mongoengine_adds_and_index_cls_false() -> None:
    assert spec(Bare) == [("_cls_1", (("_cls", 1),), {})]
    assert spec(NoClsIndex) == [("at_1", (("at", 1),), {})]


def test_auto_create_index_false_still_declares_and_index_opts_apply() -> None:
    assert spec(Manual) == [("x_1", (("x", 1),), {"sparse": True})]


def test_one_name_declared_twice_differently_is_refused() -> None:
    class First(me.Document):
        x = me.StringField()
        meta = {"collection": "twice", "indexes": [{"fields": ["x"], "name": "x"}]}

    class Second(me.Document):
        y = me.StringField()
        meta = {"collection": "twice", "indexes": [{"fields": ["y"], "name": "x"}]}

    with pytest.raises(ConfigError, match="index x on twice is declared twice"):
        declared_indexes([First, Second])


# ---------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------

ID = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def test_agreeing_indexes_give_nothing_whatever_their_name() -> None:
    declared = declared_indexes([Unique])["unique"]
    existing = [
        ID,
        {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True},
        {"v": 2, "key": {"handle": 1, "tenant": 1}, "name": "other", "unique": True},
        {"v": 2, "key": {"nick": 1}, "name": "nick_1", "unique": True, "sparse": True},
        {"v": 2, "key": {"c": 1.0}, "name": "c_1", "unique": True, "background": True},
    ]
    assert compare_collection("unique", declared, existing) == []


def test_missing_extra_and_differs() -> None:
    declared = declared_indexes([Unique])["unique"]
    existing = [
        ID,
        {"v": 2, "key": {"email": 1}, "name": "email_1"},
        {"v": 2, "key": {"nick": 1}, "name": "nick_1", "unique": True},
        {"v": 2, "key": {"c": -1}, "name": "c_1", "unique": True},
        {"v": 2, "key": {"old": 1}, "name": "old_1", "unique": True},
    ]
    changes = compare_collection("unique", declared, existing)
    assert [c.describe() for c in changes] == [
        "differs: unique email_1 (unique: model True, database False) "
        f"declared by {__name__}.Unique",
        f"missing: unique handle_1_tenant_1 (unique) declared by {__name__}.Unique",
        "differs: unique nick_1 (sparse: model True, database False) "
        f"declared by {__name__}.Unique",
        "differs: unique c_1 (keys: model {c: 1}, database {c: -1}) "
        f"declared by {__name__}.Unique",
        "extra: unique old_1 (unique) declared by no model",
    ]


def test_a_collation_is_compared_on_the_fields_the_model_gives() -> None:
    wanted = {"collation": {"locale": "fr"}}
    filled = {"collation": {"locale": "fr", "strength": 3, "caseLevel": False}, "name": "t"}
    assert option_differences(wanted, filled) == []
    assert option_differences(wanted, {"collation": {"locale": "en"}}) == [
        'collation: model {"locale": "fr"}, database {"locale": "en"}'
    ]


def test_text_weights_of_one_are_the_default() -> None:
    declared = declared_indexes([Options])["opts"]
    text = next(i for i in declared if i.name == "title_text_body_text")
    mongodb = {
        "v": 2,
        "key": {"_fts": "text", "_ftsx": 1},
        "name": "title_text_body_text",
        "weights": {"title": 5, "body": 1},
        "default_language": "english",
        "language_override": "language",
        "textIndexVersion": 3,
    }
    assert compare_collection("opts", [text], [ID, mongodb]) == []


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


class Recorder:
    """Stands for the ``step`` of the migration: records each index helper call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def create_index(self, collection: str, keys: Any, **options: Any) -> None:
        self.calls.append(("create", collection, tuple(map(tuple, keys)), options))

    def drop_index(self, collection: str, name: str) -> None:
        self.calls.append(("drop", collection, name))

    def rebuild_index(self, collection: str, keys: Any, **options: Any) -> None:
        self.calls.append(("rebuild", collection, tuple(map(tuple, keys)), options))


def run(source: str, function: str) -> list[tuple[Any, ...]]:
    recorder = Recorder()
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    namespace[function](object(), recorder)
    return recorder.calls


def changes_for_render() -> list[model_indexes.IndexChange]:
    declared = declared_indexes([Unique])["unique"]
    existing = [
        ID,
        {"v": 2, "key": {"email": 1}, "name": "email_1"},
        {"v": 2, "key": {"nick": 1}, "name": "nick_1", "unique": True, "sparse": True},
        {"v": 2, "key": {"c": 1}, "name": "c_1", "unique": True},
        {"v": 2, "key": {"old": 1, "at": -1}, "name": "old", "unique": True},
    ]
    return compare_collection("unique", declared, existing)


def test_the_migration_creates_rebuilds_and_comments_out_drops() -> None:
    source = render_migration(changes_for_render(), name="idx", models=["m"], drop=False)
    ast.parse(source)
    assert source.startswith(
        '"""idx\n\nWritten by alley create --autogenerate from m. Indexes:\n'
        "- 1 to create\n"
        "- 1 to rebuild with the models' options\n"
        "- 1 that no model declares, to drop (commented out: --drop drops them)\n"
        '"""\n'
    )
    assert "    # unique: tests.unit.test_model_indexes.Unique\n" in source.replace(
        __name__, "tests.unit.test_model_indexes"
    )
    assert '    # step.drop_index("unique", "old")\n' in source
    assert (
        '    # step.create_index("unique", [("old", 1), ("at", -1)], unique=True, name="old")\n'
        in source
    )
    assert "import" not in source
    assert run(source, "up") == [
        (
            "rebuild",
            "unique",
            (("email", 1),),
            {"unique": True, "name": "email_1", "replaces": "email_1"},
        ),
        (
            "create",
            "unique",
            (("handle", 1), ("tenant", 1)),
            {"unique": True, "name": "handle_1_tenant_1"},
        ),
    ]
    assert run(source, "down") == [
        ("drop", "unique", "handle_1_tenant_1"),
        ("rebuild", "unique", (("email", 1),), {"name": "email_1", "replaces": "email_1"}),
    ]


def test_with_drop_the_drops_run_and_down_rebuilds_them_exactly() -> None:
    source = render_migration(changes_for_render(), name="idx", models=["m"], drop=True)
    assert run(source, "up")[-1] == ("drop", "unique", "old")
    assert run(source, "down")[0] == (
        "create",
        "unique",
        (("old", 1), ("at", -1)),
        {"unique": True, "name": "old"},
    )


def test_only_commented_drops_still_make_valid_functions() -> None:
    extra = [c for c in changes_for_render() if c.kind == "extra"]
    source = render_migration(extra, name="idx", models=["m"], drop=False)
    assert run(source, "up") == []
    assert run(source, "down") == []
    assert "    pass\n" in source


def test_long_calls_are_wrapped_as_ruff_format_does() -> None:
    declared = declared_indexes([Options])["opts"]
    changes = compare_collection("opts", declared, [ID])
    source = render_migration(changes, name="idx", models=["m"], drop=False)
    assert (
        "    step.create_index(\n"
        '        "opts",\n'
        '        [("status", 1)],\n'
        '        partialFilterExpression={"status": "open"},\n'
        "        unique=True,\n"
        '        name="open",\n'
        "    )\n"
    ) in source
    assert all(len(line) <= 88 for line in source.splitlines() if "create_index(" in line)


# ---------------------------------------------------------------------------
# Importing
# ---------------------------------------------------------------------------


def write_app(root: Any, field: str) -> None:
    package = root / "appx"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(
        "import mongoengine as me\n\n\n"
        f"class Thing(me.Document):\n    {field} = me.StringField(unique=True)\n"
    )


def test_models_of_another_project_imported_before_are_imported_again(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two projects with one package name, in one process (the API serving both): the
    second gets its own models, not the first's cached module."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m == "appx" or m.startswith("appx.")]:
        monkeypatch.delitem(sys.modules, name)
    first, second = tmp_path / "first", tmp_path / "second"
    write_app(first, "email")
    write_app(second, "login")
    try:
        [one] = model_indexes.import_models(["appx.models"], [first])
        [two] = model_indexes.import_models(["appx.models"], [second])
        assert [i.name for i in indexes_of(one)] == ["email_1"]
        assert [i.name for i in indexes_of(two)] == ["login_1"]
        [again] = model_indexes.import_models(["appx.models"], [second])
        assert again is two  # from the same project: the module imported already
    finally:
        for name in [m for m in sys.modules if m == "appx" or m.startswith("appx.")]:
            del sys.modules[name]


def test_import_errors_are_one_line_config_errors(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "broken_models.py").write_text(
        "import mongoengine\nraise RuntimeError('no\\nway')\n"
    )
    (tmp_path / "empty_models.py").write_text("X = 1\n")
    with pytest.raises(ConfigError) as raised:
        model_indexes.import_models(["broken_models"], [tmp_path])
    assert str(raised.value).startswith(
        "cannot import models module broken_models: RuntimeError: no way"
    )
    with pytest.raises(ConfigError, match="defines no mongoengine Document"):
        model_indexes.import_models(["empty_models"], [tmp_path])
    sys.modules.pop("empty_models", None)


def _package(root: Any, package: str, collection: str) -> None:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "models.py").write_text(
        "import mongoengine as me\n\n\n"
        "class Thing(me.Document):\n"
        f"    meta = {{'collection': {collection!r}}}\n"
    )


def test_models_in_the_project_are_imported_from_it_not_from_an_earlier_copy(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API may serve two projects with a ``shop`` package each in one process."""
    _package(tmp_path / "elsewhere", "twinpkg", "from_elsewhere")
    _package(tmp_path / "project", "twinpkg", "from_project")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # the imports below are undone
    __import__("twinpkg.models")
    found = model_indexes.import_models(["twinpkg.models"], [tmp_path / "project"])
    assert [model_indexes.collection_of(d) for d in found] == ["from_project"]


def test_models_installed_outside_the_project_keep_the_applications_classes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A models package installed elsewhere (site-packages) is not imported a second
    time: the application that imported it keeps one copy of each Document class."""
    _package(tmp_path / "site", "installedpkg", "installed")
    (tmp_path / "project").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    imported = __import__("installedpkg.models").models
    found = model_indexes.import_models(["installedpkg.models"], [tmp_path / "project"])
    assert found == [imported.Thing]
    assert sys.modules["installedpkg.models"] is imported
