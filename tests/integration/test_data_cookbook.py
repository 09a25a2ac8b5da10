"""docs/data-migrations.md, as written: every recipe through ``alley up`` and ``alley down``.

Each recipe's code block (the ```python block after ``<!-- recipe: NAME -->``) is
copied into a project's ``migrations/`` unchanged, the collection it works on is seeded,
and the database is checked after ``up``, after a second ``up`` (nothing to do) and
after ``down``.

The collections stay under 100 documents where a recipe uses ``transform=`` (one
``bulk_write`` per batch): FerretDB 1.24 stops answering an ``update`` command of 100
statements or more (measured: 90 return in 0.16 s, 100 never return), and the
recipes' batches are 1000. The batching itself is tested in the helper's own tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conftest import Project

ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = ROOT / "docs" / "data-migrations.md"


def recipes() -> dict[str, str]:
    text = COOKBOOK.read_text(encoding="utf-8")
    found = re.findall(r"<!-- recipe: ([\w-]+) -->\n```python\n(.*?)```", text, re.DOTALL)
    return dict(found)


def install(project: Project, name: str) -> None:
    (project.folder / f"0001_{name.replace('-', '_')}.py").write_text(recipes()[name])


def up_and_down(project: Project) -> tuple[str, str]:
    up = project.alley("up")
    assert up.returncode == 0, up.output
    again = project.alley("up")
    assert again.returncode == 0, again.output
    return up.output, again.output


def down(project: Project) -> None:
    result = project.alley("down", "1")
    assert result.returncode == 0, result.output


def pipeline_updates(db: Any) -> bool:
    db.pipeline_probe.insert_one({"a": 1})
    try:
        db.pipeline_probe.update_one({}, [{"$set": {"b": "$a"}}])
        return db.pipeline_probe.find_one({}).get("b") == 1
    except Exception:
        return False
    finally:
        db.pipeline_probe.drop()


def test_every_recipe_of_the_issue_is_in_the_cookbook() -> None:
    assert set(recipes()) >= {"backfill", "rename", "split", "index", "idempotent"}


USERS = [{"_id": i, "first": f"Ada{i}", "last": "Lovelace"} for i in range(1, 91)]


@pytest.mark.parametrize("name", ["backfill", "backfill-server"])
def test_backfill_a_computed_field(project: Project, mongo_db: Any, name: str) -> None:
    if name == "backfill-server" and not pipeline_updates(mongo_db):
        pytest.skip("this server takes no pipeline updates (MongoDB 4.2+ does)")
    mongo_db.users.insert_many(USERS)
    install(project, name)
    up_and_down(project)
    assert mongo_db.users.count_documents({}) == len(USERS)
    for user in mongo_db.users.find():
        assert user["full_name"] == f"{user['first']} {user['last']}"
    down(project)
    assert mongo_db.users.count_documents({"full_name": {"$exists": True}}) == 0
    assert mongo_db.users.count_documents({}) == len(USERS)


def test_rename_a_field(project: Project, mongo_db: Any) -> None:
    mongo_db.orders.insert_many([{"_id": i, "qty": i} for i in range(1, 301)])
    install(project, "rename")
    up_and_down(project)
    assert mongo_db.orders.count_documents({"qty": {"$exists": True}}) == 0
    assert sorted(d["quantity"] for d in mongo_db.orders.find()) == list(range(1, 301))
    down(project)
    assert mongo_db.orders.count_documents({"quantity": {"$exists": True}}) == 0
    assert sorted(d["qty"] for d in mongo_db.orders.find()) == list(range(1, 301))


def test_split_a_collection(project: Project, mongo_db: Any) -> None:
    users = [
        {"_id": i, "name": f"u{i}", "address": {"city": f"c{i % 7}", "street": f"s{i}"}}
        for i in range(1, 91)
    ] + [{"_id": 5000, "name": "no address"}]
    mongo_db.users.insert_many(users)
    install(project, "split")
    up_and_down(project)
    assert mongo_db.users.count_documents({"address": {"$exists": True}}) == 0
    assert mongo_db.addresses.count_documents({}) == 90
    assert mongo_db.addresses.find_one({"_id": 7}) == {"_id": 7, "city": "c0", "street": "s7"}
    assert any(ix["key"] == {"city": 1} for ix in mongo_db.addresses.list_indexes())
    down(project)
    assert "addresses" not in mongo_db.list_collection_names()
    assert sorted(mongo_db.users.find(), key=lambda u: u["_id"]) == users


def test_build_a_unique_index(project: Project, mongo_db: Any) -> None:
    mongo_db.users.insert_many(
        [{"_id": i, "email": f"u{i}@example.com"} for i in range(1, 301)]
        + [{"_id": 1000, "email": "u7@example.com"}]
    )
    install(project, "index")
    refused = project.alley("up")
    assert refused.returncode != 0, refused.output
    assert "u7@example.com" in refused.output, refused.output
    assert not any(ix["key"] == {"email": 1} for ix in mongo_db.users.list_indexes())

    mongo_db.users.delete_one({"_id": 1000})  # the fix the error asks for
    up = project.alley("up")
    assert up.returncode == 0, up.output
    index = next(ix for ix in mongo_db.users.list_indexes() if ix["key"] == {"email": 1})
    assert index.get("unique") is True
    again = project.alley("up")
    assert again.returncode == 0, again.output
    down(project)
    assert not any(ix["key"] == {"email": 1} for ix in mongo_db.users.list_indexes())


def test_make_a_migration_idempotent(project: Project, mongo_db: Any) -> None:
    products = [{"_id": i, "price": i + 0.99} for i in range(1, 91)]
    mongo_db.products.insert_many(products)
    # one product already converted by hand: the filter must leave it alone
    mongo_db.products.update_one(
        {"_id": 1}, {"$set": {"price_cents": 199}, "$unset": {"price": ""}}
    )
    install(project, "idempotent")
    up_and_down(project)
    assert mongo_db.products.count_documents({"price": {"$exists": True}}) == 0
    for product in mongo_db.products.find():
        assert product["price_cents"] == round((product["_id"] + 0.99) * 100)
    down(project)
    for product in mongo_db.products.find():
        assert product == {"_id": product["_id"], "price": pytest.approx(product["_id"] + 0.99)}
    # and once more: the same state as after the first up
    up = project.alley("up")
    assert up.returncode == 0, up.output
    assert mongo_db.products.count_documents({"price_cents": {"$exists": False}}) == 0
