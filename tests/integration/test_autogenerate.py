"""``alley create --autogenerate`` and ``alley check`` against the real servers, with
the sample shop (tests/integration/sample_apps/shop) as the project's models.

The full round trip (every index form: ``shop.models``) needs TTL indexes, and text,
hashed, 2dsphere, partial and collation indexes, which FerretDB 1.24 lacks (it has no
capability flag for the last ones; the TTL flag stands for them all); the same round
trip with ``shop.basic`` (the forms FerretDB builds) runs on both servers. Each: the
database starts with an index no model declares and one whose options the models
changed; autogenerate writes a migration (ruff- and ``alley lint``-clean); ``up``;
``check`` exits 0; autogenerate again writes nothing; ``down`` gives back exactly
the ``listIndexes`` of before.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Project

OK, USAGE, CONFIG, INTEGRITY, PENDING = 0, 2, 3, 6, 7
SAMPLE = Path(__file__).parent / "sample_apps" / "shop"
RUFF = Path(sys.executable).with_name("ruff")
AGREE = "nothing to do: the models and the database agree on indexes"


def shop(project: Project, models: str | None = "shop.models") -> None:
    """The sample app in the project's folder, named by ``[tool.alley] models``."""
    shutil.copytree(SAMPLE, project.root / "shop")
    table = f'models = "{models}"\n' if models else ""
    (project.root / "pyproject.toml").write_text(f"[tool.alley]\n{table}")


def indexes(db: Any) -> dict[str, list[dict[str, Any]]]:
    """Every collection's ``listIndexes``, each index as a plain dict, by name."""
    return {
        name: sorted(
            (json.loads(json.dumps(dict(i), default=str)) for i in db[name].list_indexes()),
            key=lambda i: i["name"],
        )
        for name in sorted(db.list_collection_names())
        if not name.startswith("db_migrations")
    }


def prepare(db: Any) -> None:
    """An index no model declares (``legacy_1``), and ``email_1`` without the
    ``unique`` the model declares; documents that satisfy the models' unique indexes."""
    db.customers.insert_many([{"email": "a@x", "handle": "a"}, {"email": "b@x", "handle": "b"}])
    db.customers.create_index("legacy")
    db.customers.create_index("email")


def migrations(project: Project) -> list[str]:
    return sorted(p.name for p in project.folder.glob("*.py"))


def assert_clean(project: Project, path: Path) -> None:
    """The generated file passes ruff (check and format, default rules) and alley lint."""
    for command in (["check", "--isolated"], ["format", "--check", "--isolated"]):
        ruff = subprocess.run(
            [str(RUFF), *command, str(path)], capture_output=True, text=True, check=False
        )
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    lint = project.alley("lint")
    assert lint.returncode == OK, lint.output
    assert "0 errors, 0 warnings" in lint.stdout


def round_trip(project: Project, db: Any, models: str, more: bool = False) -> str:
    """``more``: also a TTL index with another expiry than the model's, and a text
    index no model declares, whose options ``down`` must give back exactly."""
    shop(project, models)
    prepare(db)
    if more:
        db.session.create_index("created", expireAfterSeconds=60)
        db.customers.create_index([("bio", "text")], weights={"bio": 3}, name="bio_text")
    before = indexes(db)

    check = project.alley("check")
    assert check.returncode == INTEGRITY, check.output
    assert "extra: customers legacy_1 declared by no model" in check.stdout
    assert (
        "differs: customers email_1 (unique: model True, database False) "
        "declared by shop.basic.Customer" in check.stdout
    )
    assert "missing: customers handle_1_tenant_1 (unique) declared by shop.basic.Customer" in (
        check.stdout
    )

    created = project.alley("create", "models_indexes", "--autogenerate", "--drop")
    assert created.returncode == OK, created.output
    path = project.folder / "0001_models_indexes.py"
    assert created.stdout.splitlines()[-1] == f"created {path}"
    source = path.read_text()
    assert (
        "    step.rebuild_index(\n"
        '        "customers",\n'
        '        [("email", 1)],\n'
        "        unique=True,\n"
        '        name="email_1",\n'
        '        replaces="email_1",\n'
        "    )\n"
    ) in source
    assert '    step.drop_index("customers", "legacy_1")\n' in source
    assert '    step.create_index("customers", [("legacy", 1)], name="legacy_1")\n' in source
    assert_clean(project, path)

    up = project.alley("up")
    assert up.returncode == OK, up.output
    check = project.alley("check")
    assert (check.returncode, check.stdout) == (
        OK,
        "ok: the models and the database agree on indexes\n",
    ), check.output

    again = project.alley("create", "again", "--autogenerate", "--drop")
    assert (again.returncode, again.stdout) == (OK, AGREE + "\n"), again.output
    assert migrations(project) == ["0001_models_indexes.py"]

    down = project.alley("down")
    assert down.returncode == OK, down.output
    after = indexes(db)
    assert {c: after[c] for c in before} == before
    new = {c: [i["name"] for i in after[c]] for c in after if c not in before}
    assert all(names == ["_id_"] for names in new.values()), new
    return source


def test_every_index_form_round_trip(
    project: Project, mongo_db: Any, server_capabilities: Any
) -> None:
    server_capabilities.require("ttl_index")  # FerretDB 1.24 lacks TTL and text indexes
    source = round_trip(project, mongo_db, "shop.models", more=True)
    up, down = source.split("def down(db, step):")
    assert '    step.rebuild_index(\n        "session",\n' in up  # another expiry
    assert (
        'expireAfterSeconds=3600,\n        name="created_1",\n        replaces="created_1",' in up
    )
    assert '    step.drop_index("customers", "bio_text")\n' in up
    assert (
        'expireAfterSeconds=60,\n        name="created_1",\n        replaces="created_1",' in down
    )
    assert '[("bio", "text")],\n        weights={"bio": 3},\n        name="bio_text",' in down
    for line in (
        '"session",\n        [("created", 1)],\n        expireAfterSeconds=3600,\n',
        'step.create_index("product", [("sku", "hashed")], name="sku_hashed")',
        'step.create_index("store", [("location", "2dsphere")], name="location_2dsphere")',
        'step.create_index("animal", [("_cls", 1), ("breed", 1)], name="_cls_1_breed_1")',
        '    [("name", "text"), ("description", "text")],\n'
        '        weights={"name": 10, "description": 2},',
        'partialFilterExpression={"status": "open"},',
        'collation={"locale": "en", "strength": 2},',
        '[("voucher", 1)],\n        unique=True,\n        sparse=True,\n        name="voucher_1",',
    ):
        assert line in source, line


def test_supported_index_forms_round_trip(project: Project, mongo_db: Any) -> None:
    source = round_trip(project, mongo_db, "shop.basic")
    assert "# animal: shop.basic.Animal, shop.basic.Dog\n" in source
    assert 'step.create_index("animal", [("tag", 1)], name="tag_1")' in source  # cls: False
    assert 'step.create_index("event", [("at", -1)], name="at_-1")' in source  # no _cls
    assert '"_cls", 1)], name="_cls_1"' not in source
    assert 'step.create_index("supplier", [("c", 1)], unique=True, name="c_1")' in source
    assert '[("account", 1), ("entry.at", 1)]' in source
    assert "warehouse" not in source


def test_drops_are_commented_out_without_drop(project: Project, mongo_db: Any) -> None:
    shop(project, "shop.basic")
    prepare(mongo_db)

    created = project.alley("create", "indexes", "--autogenerate")
    assert created.returncode == OK, created.output
    source = (project.folder / "0001_indexes.py").read_text()
    assert '    # step.drop_index("customers", "legacy_1")\n' in source
    assert '    # step.create_index("customers", [("legacy", 1)], name="legacy_1")\n' in source
    assert "(commented out: --drop drops them)" in source
    assert_clean(project, project.folder / "0001_indexes.py")
    assert project.alley("up").returncode == OK
    assert "legacy_1" in mongo_db.customers.index_information()

    check = project.alley("check")
    assert (check.returncode, check.stdout) == (
        INTEGRITY,
        "extra: customers legacy_1 declared by no model\n1 difference\n",
    )
    again = project.alley("create", "again", "--autogenerate")
    assert again.returncode == OK, again.output
    assert again.stdout == (
        "extra: customers legacy_1 declared by no model\n"
        "nothing to do: 1 index no model declares kept "
        "(--drop writes a migration that drops them)\n"
    )
    assert migrations(project) == ["0001_indexes.py"]


def test_check_json_and_a_changed_option(project: Project, mongo_db: Any) -> None:
    shop(project, "shop.basic")
    mongo_db.supplier.create_index("c", name="c_1")  # the model says unique

    check = project.alley("check", "--json")
    assert check.returncode == INTEGRITY, check.output
    data = json.loads(check.stdout)
    assert data["ok"] is False
    assert data["models"] == ["shop.basic"]
    assert data["pending"] == []
    differs = [d for d in data["differences"] if d["kind"] == "differs"]
    assert differs == [
        {
            "kind": "differs",
            "collection": "supplier",
            "name": "c_1",
            "keys": [["c", 1]],
            "options": {"unique": True},
            "declared_by": ["shop.basic.Supplier"],
            "database": {"name": "c_1", "keys": [["c", 1]], "options": {}},
            "details": ["unique: model True, database False"],
        }
    ]
    assert {d["kind"] for d in data["differences"]} == {"missing", "differs"}

    created = project.alley("create", "unique_code", "--autogenerate", "--models", "shop.basic")
    assert created.returncode == OK, created.output
    source = (project.folder / "0001_unique_code.py").read_text()
    up, down = source.split("def down(db, step):")
    assert (
        '    step.rebuild_index("supplier", [("c", 1)], unique=True, name="c_1", replaces="c_1")\n'
        in up
    )
    assert '    step.rebuild_index("supplier", [("c", 1)], name="c_1", replaces="c_1")\n' in down
    assert project.alley("up").returncode == OK
    assert mongo_db.supplier.index_information()["c_1"].get("unique") is True
    assert project.alley("check").returncode == OK
    assert project.alley("down").returncode == OK
    assert mongo_db.supplier.index_information()["c_1"].get("unique", False) is False


def test_pending_migrations_refuse_autogenerate_and_are_named_by_check(
    project: Project, mongo_db: Any
) -> None:
    shop(project, "shop.basic")
    project.write("0001_by_hand.py", up="db.category.create_index('slug')", down="pass")

    refused = project.alley("create", "indexes", "--autogenerate")
    assert refused.returncode == PENDING, refused.output
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "1 migration pending (0001_by_hand.py)" in refused.stderr
    assert migrations(project) == ["0001_by_hand.py"]

    check = project.alley("check")
    assert check.returncode == INTEGRITY
    assert "1 migration pending (0001_by_hand.py): 'alley up' may change the indexes" in (
        check.stdout
    )


@pytest.mark.parametrize(
    ("table", "arguments", "code", "message"),
    [
        ("", ("check",), CONFIG, "no models to read: the models setting is not set"),
        ('models = "shop.nothere"', ("check",), CONFIG, "cannot import models module shop.nothere"),
        ('models = "shop"', ("check",), CONFIG, "models module shop ("),
        ("models = 3", ("check",), CONFIG, "invalid models 3"),
        ('models = "shop-app"', ("check",), CONFIG, "invalid models 'shop-app'"),
        ('models = "shop.basic"', ("check", "--models", "a b"), CONFIG, "invalid models 'a b'"),
        ('models = "shop.basic"', ("create", "x", "--drop"), USAGE, "--drop goes with"),
        ('models = "shop.basic"', ("create", "x", "--models", "shop"), USAGE, "--models goes"),
    ],
)
def test_models_setting_errors_are_one_line(
    project: Project, table: str, arguments: tuple[str, ...], code: int, message: str
) -> None:
    shop(project, None)
    (project.root / "pyproject.toml").write_text(f"[tool.alley]\n{table}\n")

    result = project.alley(*arguments)

    assert result.returncode == code, result.output
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert migrations(project) == []


def test_models_from_the_environment(project: Project, mongo_db: Any) -> None:
    shop(project, None)
    result = project.alley("check", env={"ALLEY_MODELS": "shop.basic"})
    assert result.returncode == INTEGRITY, result.output
    assert "missing: supplier c_1 (unique) declared by shop.basic.Supplier" in result.stdout


DOCS = Path(__file__).parents[2] / "docs" / "models.md"


def documented_runs() -> list[tuple[list[str], str]]:
    """Every ``$ alley ARGS`` block of docs/models.md, in order, with its output."""
    blocks = re.findall(r"```console\n\$ alley (.*?)\n(.*?)```", DOCS.read_text(), re.S)
    return [(args.split(), output) for args, output in blocks]


def documented_file(name: str) -> str:
    return DOCS.read_text().split(f"`{name}`:\n\n```python\n", 1)[1].split("```", 1)[0]


def test_docs_models_page_is_this_run(project: Project, mongo_db: Any) -> None:
    """docs/models.md: its models are the sample's, and each command it shows prints
    what is shown, and writes the files shown, in /tmp/demo."""
    page = DOCS.read_text()
    assert (SAMPLE / "basic.py").read_text() in page
    shop(project, "shop.basic")
    prepare(mongo_db)
    codes = {"check": [INTEGRITY, INTEGRITY, INTEGRITY], "create": [OK, OK, OK], "up": [PENDING]}
    runs = documented_runs()
    assert [args[0] for args in (r[0] for r in runs)] == [
        "check",
        "create",
        "up",
        "check",
        "create",
        "create",
        "check",
    ]
    for args, output in runs:
        result = project.alley(*args)
        assert result.returncode == codes[args[0]].pop(0), result.output
        assert result.stdout.replace(str(project.root), "/tmp/demo") == output, args
        if args[:2] == ["create", "add_model_indexes"]:
            written = project.folder / "0001_add_model_indexes.py"
            assert written.read_text() == documented_file(
                "/tmp/demo/migrations/0001_add_model_indexes.py"
            )
        if args == ["up", "--plan"]:
            assert project.alley("up").returncode == OK
        if args[:2] == ["create", "drop_legacy"]:
            written = project.folder / "0002_drop_legacy.py"
            assert written.read_text() == documented_file(
                "/tmp/demo/migrations/0002_drop_legacy.py"
            )

    refused = project.alley("create", "more", "--autogenerate")
    assert refused.returncode == PENDING
    shown = page.split("### Pending migrations", 1)[1].split("```text\n", 1)[1]
    assert refused.stderr == shown.split("```", 1)[0]


def test_docs_models_python_example_runs(
    project: Project, mongo_db: Any, mongo_db_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """docs/models.md's Python example, with this test's server and project folder."""
    example = DOCS.read_text().split("## From Python\n\n```python\n", 1)[1].split("```", 1)[0]
    assert '"mongodb://localhost/shop"' in example
    shop(project, None)
    monkeypatch.chdir(project.root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        exec(compile(example.replace("mongodb://localhost/shop", mongo_db_uri), "docs", "exec"), {})
    finally:
        for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
            del sys.modules[name]
    printed = capsys.readouterr().out.splitlines()
    assert "missing: supplier c_1 (unique) declared by shop.basic.Supplier" in printed
    assert printed[-1] == f"created {project.folder / '0001_add_indexes.py'}"
    assert "def down(db, step):" in (project.folder / "0001_add_indexes.py").read_text()


NOWHERE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"


def test_lint_flags_an_unset_only_of_a_declared_field(project: Project) -> None:
    """With ``models``, ``alley lint`` imports them (it still never connects: the URL
    is a port where nothing listens) and the rule ``destructive`` flags an ``$unset``
    only of a field a model declares."""
    shop(project, "shop.basic")
    project.write(
        "0001_unset.py",
        up='db.customers.update_many({}, {"$unset": {"legacy": "", "email": ""}})\n'
        'db.customers.update_many({}, {"$unset": {"nickname": ""}})',
        down='db.customers.update_many({}, {"$set": {"back": True}})',
    )

    result = project.alley("--url", NOWHERE, "lint", url=False)

    assert result.returncode == OK, result.output
    assert result.stdout.splitlines() == [
        f"{project.folder / '0001_unset.py'}:3: destructive $unset removes customers.email, "
        "which shop.basic.Customer declares: down cannot restore its values",
        "1 file checked: 0 errors, 1 warning",
    ]

    (project.root / "pyproject.toml").write_text("[tool.alley]\n")
    unset = project.alley("--url", NOWHERE, "lint", url=False)
    assert [line.split(" ", 2)[1] for line in unset.stdout.splitlines()[:-1]] == [
        "destructive",
        "destructive",
    ]

    broken = project.alley(
        "--url", NOWHERE, "lint", env={"ALLEY_MODELS": "shop.nothere"}, url=False
    )
    assert broken.returncode == CONFIG
    assert len(broken.stderr.splitlines()) == 1
    assert "cannot import models module shop.nothere" in broken.stderr


@pytest.mark.parametrize("models", ["shop.basic", "shop.models"])
def test_check_agrees_with_what_mongoengine_itself_builds(
    project: Project,
    mongo_db: Any,
    mongo_db_uri: str,
    server_capabilities: Any,
    monkeypatch: pytest.MonkeyPatch,
    models: str,
) -> None:
    """The indexes MongoEngine's own ``ensure_indexes()`` builds for every model are
    exactly those ``check`` expects: nothing missing, nothing extra, nothing differs."""
    import importlib

    import mongoengine

    from alley.model_indexes import documents_of

    if models == "shop.models":
        server_capabilities.require("ttl_index")  # and text, hashed, 2dsphere, collation
    shop(project, models)
    monkeypatch.syspath_prepend(str(project.root))

    def forget() -> None:
        for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
            del sys.modules[name]

    forget()
    mongoengine.connect(host=mongo_db_uri, alias="default", uuidRepresentation="standard")
    try:
        documents = documents_of(importlib.import_module(models))
        assert len(documents) >= 9
        for document in documents:
            document.ensure_indexes()
    finally:
        mongoengine.disconnect(alias="default")
        forget()
    assert len(mongo_db.customers.index_information()) > 1

    result = project.alley("check")
    assert (result.returncode, result.stdout) == (
        OK,
        "ok: the models and the database agree on indexes\n",
    ), result.output
