"""The databases of a multi-database command: names and glob patterns."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from alley.hookspecs import hookimpl

if TYPE_CHECKING:
    from pymongo import MongoClient

    from alley.settings import Settings

#: Never targets of a pattern: the server's own databases.
SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
#: The history store's sibling database of ``NAME`` on FerretDB (its lock heartbeat:
#: ``alley_plugins.mongo_history``) is ``NAME`` + this.
HEARTBEAT_SUFFIX = "_alley"
HEARTBEAT_COLLECTION = "_heartbeat"
_PATTERN = re.compile(r"[*?\[]")


@hookimpl(trylast=True)
def alley_databases(
    settings: Settings, client: MongoClient[Any], requested: Sequence[str]
) -> list[str]:
    """Names as given; patterns matched (case-sensitively, in name order) against the
    server's databases other than ``admin``, ``config``, ``local``, alley's own
    heartbeat databases (``NAME_alley``, holding only heartbeats) and ``alley test``'s
    throwaway databases (``NAME_alley_test_<6 hex>``, :mod:`alley.rehearsal`). ``@…``
    entries are other plugins'."""
    patterns = [entry for entry in requested if _PATTERN.search(entry)]
    existing = _databases(client) if patterns else []
    found: list[str] = []
    for entry in requested:
        if entry.startswith("@"):
            continue
        if entry in patterns:
            found.extend(name for name in existing if fnmatch.fnmatchcase(name, entry))
        else:
            found.append(entry)
    return found


def _databases(client: MongoClient[Any]) -> list[str]:
    from alley.rehearsal import is_throwaway

    names = set(client.list_database_names()) - SYSTEM_DATABASES
    return sorted(
        name for name in names if not is_throwaway(name) and not _heartbeats_only(client, name)
    )


def _heartbeats_only(client: MongoClient[Any], name: str) -> bool:
    """Whether ``name`` is a heartbeat database: ``NAME_alley`` holding only
    ``*_heartbeat`` collections (left behind, too, when ``NAME`` was dropped)."""
    if not name.endswith(HEARTBEAT_SUFFIX):
        return False
    collections = client[name].list_collection_names()
    return bool(collections) and all(c.endswith(HEARTBEAT_COLLECTION) for c in collections)
