"""The MongoEngine private names the connection plugin relies on still exist: a
MongoEngine release that moves one fails here, not in a user's ``alley test``."""

from __future__ import annotations

import importlib

import pytest

from alley_plugins.mongoengine_connection import MONGOENGINE_PRIVATE_NAMES


@pytest.mark.parametrize(("module", "name"), MONGOENGINE_PRIVATE_NAMES)
def test_the_name_exists(module: str, name: str) -> None:
    found: object = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    assert found is not None


def test_the_cache_of_databases_is_a_dict_by_alias() -> None:
    from mongoengine import connection

    assert isinstance(connection._dbs, dict)
