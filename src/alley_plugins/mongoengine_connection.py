"""Connect through MongoEngine, as alley 0.0.3 did (``connect`` then ``get_db``).

Migrations can therefore use MongoEngine documents on the default alias. mongoengine
and pymongo are imported here, inside the hook, so commands that never connect
(``--help``, ``create``) never import them.

What to connect to is :meth:`alley.settings.Settings.connection`: every property from
the highest source that sets it, a URL's driver options kept. The clients this module
registers with MongoEngine are closed by :func:`close_connections` at the end of a
command (``alley.cli.main`` calls it).
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from alley.errors import AlleyWarning, ConfigError, ConnectionFailed
from alley.hookcalls import refusal
from alley.hookspecs import hookimpl
from alley.settings import DEFAULT_DATABASE, PASSWORDLESS_MECHANISMS

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.database import Database

    from alley.settings import Connection, Settings

# A process that already registered MongoEngine's default alias with other settings
# (an application calling the API) keeps it; alley then uses an alias of its own.
FALLBACK_ALIAS = "alley"

NO_DATABASE_WARNING = (
    f"no database given: using {DEFAULT_DATABASE!r} as alley 0.0.3 did (name one with -db, "
    "ALLEY_DATABASE, a URL ending in /NAME, or database in [tool.alley])"
)

# Aliases this module registered (not an application's), with their client.
_opened: dict[str, Any] = {}

#: MongoEngine private names :func:`alley_redirect_documents` uses (its public API can
#: only point an alias at a database by closing the alias's client, which the command
#: still needs): the cache of databases per alias, and the Document classes of an
#: alias with the method that forgets their cached collection.
#: ``tests/unit/test_mongoengine_private_names.py`` fails when one moves.
MONGOENGINE_PRIVATE_NAMES = (
    ("mongoengine.connection", "_dbs"),
    ("mongoengine.base.common", "_get_documents_by_db"),
    ("mongoengine.document", "Document._disconnect"),
)
# The asynchronous connections this module made (async migrations), open until closed.
_opened_async: list[AsyncConnection] = []


@hookimpl(trylast=True)
def alley_connect(settings: Settings) -> Database[Any]:
    from mongoengine.connection import get_db
    from pymongo import errors

    target = settings.connection()
    passwordless = target.mechanism in PASSWORDLESS_MECHANISMS
    if target.username and not target.password and not passwordless:
        raise ConfigError(
            f"{target.username_origin} given without a password",
            hint="set ALLEY_PASSWORD or pass -w",
        )
    name = target.database
    if name is None:
        name = DEFAULT_DATABASE
        warnings.warn(AlleyWarning(NO_DATABASE_WARNING), stacklevel=1)
    timeout_ms = int(settings.timeout * 1000)
    options: dict[str, Any] = {
        "db": name,
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "appname": "alley",
        # MongoEngine's own default, said explicitly so it does not warn on every run.
        "uuidRepresentation": "pythonLegacy",
    }
    if target.url:
        options["host"] = target.url  # servers and driver options only
    else:
        options["host"], options["port"] = target.host, target.port
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    if target.auth_source:
        options["authentication_source"] = target.auth_source

    try:
        alias = _connect(options, target)
        db: Database[Any] = get_db(alias)
        db.command("ping")
    except errors.OperationFailure as error:
        raise refusal(error, target, name) or ConnectionFailed(_clean(str(error), target)) from None
    except errors.ConnectionFailure:
        raise ConnectionFailed(
            f"cannot reach the server at {target.where} within {settings.timeout:g}s",
            hint="check --host/--port/--url and that the server runs, or raise --timeout",
        ) from None
    except (errors.ConfigurationError, errors.InvalidURI, ValueError) as error:
        raise ConfigError(f"invalid connection settings: {_clean(str(error), target)}") from None
    return db


def _connect(options: dict[str, Any], target: Connection) -> str:
    """Register and connect MongoEngine's default alias (or alley's own); its name."""
    import mongoengine
    from mongoengine.connection import DEFAULT_CONNECTION_NAME

    alias: str = DEFAULT_CONNECTION_NAME
    taken = _registered(alias)
    try:
        client = mongoengine.connect(alias=alias, **options)
    except mongoengine.connection.ConnectionFailure as error:
        if not taken:  # the driver refused the settings themselves
            message = str(error).partition(":")[2].strip() or str(error)
            raise ConfigError(f"invalid connection settings: {_clean(message, target)}") from None
        # The application registered the default alias with other settings: keep it.
        alias = FALLBACK_ALIAS
        _forget(alias)
        mongoengine.disconnect(alias)
        client = mongoengine.connect(alias=alias, **options)
        taken = False
    if not taken:
        _opened[alias] = client
    return alias


@hookimpl(trylast=True)
def alley_redirect_documents(
    settings: Settings, db: Database[Any]
) -> contextlib.AbstractContextManager[None] | None:
    """MongoEngine documents on the aliases this module registered use ``db`` inside
    the block (``alley test``'s throwaway database); ``None`` when it registered none."""
    if not _opened:
        return None
    return _documents_on(list(_opened), db)


@contextlib.contextmanager
def _documents_on(aliases: list[str], db: Database[Any]) -> Iterator[None]:
    from mongoengine import connection

    cached: dict[str, Any] = connection._dbs
    saved = {alias: cached.get(alias) for alias in aliases}
    try:
        for alias in aliases:
            _detach(alias)
            cached[alias] = db
        yield
    finally:
        for alias in aliases:
            _detach(alias)
            if saved[alias] is None:
                cached.pop(alias, None)
            else:
                cached[alias] = saved[alias]


def _detach(alias: str) -> None:
    """Make the Document classes of ``alias`` forget their cached collection, so the
    next use asks for the alias's database again."""
    from mongoengine import Document
    from mongoengine.base.common import _get_documents_by_db
    from mongoengine.connection import DEFAULT_CONNECTION_NAME

    for document in _get_documents_by_db(alias, DEFAULT_CONNECTION_NAME):
        if issubclass(document, Document):
            document._disconnect()


def _registered(alias: str) -> bool:
    from mongoengine.connection import ConnectionFailure, get_connection

    try:
        get_connection(alias)
    except ConnectionFailure:
        return False
    return True


def _forget(alias: str) -> None:
    _opened.pop(alias, None)


def made_here(client: Any) -> bool:
    """Whether ``client`` is one this module connected (not an application's): an
    async client for its databases is then made from alley's settings too."""
    return client is not None and any(c is client for c in _opened.values())


def close_connections() -> None:
    """Close every client this module registered (and unregister it): the end of a
    command. An application's own aliases are left alone."""
    _close_async_connections()
    if not _opened:
        return
    import mongoengine
    from mongoengine.connection import ConnectionFailure, get_connection

    for alias, client in list(_opened.items()):
        del _opened[alias]
        try:
            current = get_connection(alias)
        except ConnectionFailure:
            current = None
        if current is client:
            mongoengine.disconnect(alias)
        else:  # someone registered the alias again since: only our client goes
            client.close()


T = TypeVar("T")


class AsyncConnection:
    """PyMongo's asynchronous client for ``async def`` migrations, and the one event
    loop it runs on.

    An ``AsyncMongoClient`` belongs to the event loop it first ran on, so every async
    step of a command runs on the same loop (an :class:`asyncio.Runner`, in the thread
    that runs the steps) and reuses the same client. :func:`close_connections` closes
    both at the end of the command.

    :ivar client: the ``AsyncMongoClient``. :ivar db: its database of the command.
    :ivar closed: whether :meth:`close` was called.
    """

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Any] = client[name]
        self.closed = False
        self._runner = asyncio.Runner()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` to its end on this connection's loop, in this thread.

        Ctrl-C cancels it and raises ``KeyboardInterrupt`` here, as ``asyncio.run``
        does, so an async step is interrupted as a sync one is.
        """
        return self._runner.run(coroutine)

    def close(self) -> None:
        """Close the client, then the loop (once). Best effort: called as a command or
        an engine ends."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError):
            _opened_async.remove(self)
        try:
            with contextlib.suppress(Exception):
                self._runner.run(self.client.close())
        finally:
            with contextlib.suppress(Exception):
                self._runner.close()


@hookimpl(trylast=True)
def alley_connect_async(settings: Settings, db: Database[Any]) -> AsyncConnection | None:
    """An async connection for a database of a client this module connected (the
    command's own, or a multi-database command's); ``None`` for an application's."""
    if not made_here(getattr(db, "client", None)):
        return None
    return async_connection(settings, db.name)


def async_connection(settings: Settings, name: str) -> AsyncConnection:
    """An ``AsyncMongoClient`` on the database ``name`` (the one :func:`alley_connect`
    connected to), with the same servers, credentials, authentication database,
    timeouts and application name (from :meth:`~alley.settings.Settings.connection`),
    for async migrations.

    Made once per command by the engine, when the first async step runs (the sync
    connection, made before, has checked the settings and the credentials); closed by
    :func:`close_connections`.
    """
    from pymongo import AsyncMongoClient

    target = settings.connection()
    timeout_ms = int(settings.timeout * 1000)
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "appname": "alley",
        # As the sync client (MongoEngine's default), so both read UUIDs alike.
        "uuidRepresentation": "pythonLegacy",
    }
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    if target.auth_source:
        options["authSource"] = target.auth_source
    host: str = target.url or target.host
    try:
        client = AsyncMongoClient(host, None if target.url else target.port, **options)
    except Exception as error:  # the sync client took these settings: unexpected
        raise ConfigError(f"invalid connection settings: {_clean(str(error), target)}") from None
    connection = AsyncConnection(client, name)
    _opened_async.append(connection)
    return connection


def _close_async_connections() -> None:
    while _opened_async:
        _opened_async.pop().close()


def _clean(message: str, target: Connection) -> str:
    """The first line of a driver message, with the password removed if it appears."""
    line = str(message.splitlines()[0] if message else "unknown error")
    if target.password:
        from urllib.parse import quote_plus

        line = line.replace(target.password, "***").replace(quote_plus(target.password), "***")
    return line
