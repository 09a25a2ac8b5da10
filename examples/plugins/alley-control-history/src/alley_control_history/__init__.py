"""alley plugin: history kept in a separate control database, one collection per target.

Many databases (tenants) migrated from one code base share one record of what ran::

    alley --url mongodb://app-cluster/tenant_a -o control_url=mongodb://ops-cluster/alley up

records ``tenant_a``'s history in ``alley.db_migrations_tenant_a`` on the control
cluster, with its lock in ``db_migrations_tenant_a_lock`` and its run log in
``db_migrations_tenant_a_log``. Nothing is written to the target database but what
the migrations themselves write.

The store is the default :class:`~alley_plugins.mongo_history.MongoHistoryStore`
given the control database and that collection name, so it keeps the default's
guarantees: records with 0.0.3's fields ``id``/``filename``/``date``, the insert-only
lock and the run log, and ``down`` removing only the records of what it rolls back.

Settings (``[tool.alley]`` or ``-o KEY=VALUE``):

- ``control_url``: the control cluster's ``mongodb://`` URI; its database part names
  the control database (``alley_control`` when absent). ``ALLEY_CONTROL_URL`` is read
  when the option is not set, to keep a password off the command line.
- ``history_collection``: the collection name's prefix (``db_migrations``).

Once installed, the plugin owns history: without a ``control_url`` a command that needs
history fails (exit 3) rather than fall back to the target's ``db_migrations``, which
would show every migration as pending. Disable it to get the default store back:
``--disable-plugin control-history``.
"""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING, Any

from alley.errors import ConfigError, ConnectionFailed
from alley.hookspecs import hookimpl
from alley.settings import redact_url
from alley_plugins.mongo_history import COLLECTION, MongoHistoryStore

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

    from alley.model import HistoryStore
    from alley.settings import Settings

__version__ = "0.1.0"

OPTION = "control_url"
ENVIRONMENT = "ALLEY_CONTROL_URL"
DEFAULT_DATABASE = "alley_control"

# One client per control URL for the whole process: an application that migrates many
# tenants through the API reuses it. Closed at interpreter exit.
_clients: dict[tuple[str, int], MongoClient[dict[str, Any]]] = {}


class ControlHistoryStore(MongoHistoryStore):
    """The default store, over ``<prefix>_<target>`` in the control database.

    :param control_db: The control database.
    :param target: The name of the database the migrations run against.
    :param prefix: The collection name's prefix (``history_collection``).
    """

    def __init__(self, control_db: Database[Any], target: str, prefix: str = COLLECTION) -> None:
        super().__init__(control_db, collection_name(target, prefix))
        self.target = target


def collection_name(target: str, prefix: str = COLLECTION) -> str:
    """The control collection holding ``target``'s history: ``db_migrations_<target>``."""
    return f"{prefix}_{target}"


def control_url(settings: Settings) -> str | None:
    """``control_url`` from the settings, else ``ALLEY_CONTROL_URL``; ``None`` if neither."""
    value = settings.options.get(OPTION) or os.environ.get(ENVIRONMENT)
    return str(value) if value else None


def control_database(url: str, timeout_s: float) -> Database[Any]:
    """The control database named by ``url``, checked to answer.

    :raises ConfigError: ``url`` is not a MongoDB URI.
    :raises ConnectionFailed: the control server does not answer or refuses the login.
    """
    from pymongo import MongoClient
    from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError

    shown = redact_url(url)
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(
            f"invalid {OPTION} {shown!r}", hint="it starts with mongodb:// or mongodb+srv://"
        )
    timeout_ms = int(timeout_s * 1000)
    key = (url, timeout_ms)
    try:
        client = _clients.get(key)
        if client is None:
            client = MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connect=False)
            _clients[key] = client
        db = client.get_default_database(default=DEFAULT_DATABASE)
    except (ConfigurationError, InvalidURI) as error:
        raise ConfigError(f"invalid {OPTION} {shown!r}: {error}") from None
    try:
        db.command("ping")
    except PyMongoError as error:
        first_line = str(error).split(",", 1)[0].splitlines()[0] if str(error) else ""
        raise ConnectionFailed(
            f"the control database at {shown} does not answer: {first_line}",
            hint=f"check {OPTION}",
        ) from None
    return db


@atexit.register
def _close_clients() -> None:
    while _clients:
        _clients.popitem()[1].close()


@hookimpl
def alley_history_store(settings: Settings, db: Database[Any]) -> HistoryStore:
    url = control_url(settings)
    if url is None:
        raise ConfigError(
            f"alley-control-history is installed but {OPTION} is not set",
            hint=f"set {OPTION} in [tool.alley], -o {OPTION}=URL or {ENVIRONMENT}; "
            "or use the default store with --disable-plugin control-history",
        )
    prefix = str(settings.options.get("history_collection", COLLECTION))
    return ControlHistoryStore(control_database(url, settings.timeout), db.name, prefix)
