"""Connect through MongoEngine, as alley 0.0.3 did (``connect`` then ``get_db``).

Migrations can therefore use MongoEngine documents on the default alias. mongoengine
and pymongo are imported here, inside the hook, so commands that never connect
(``--help``, ``create``) never import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alley.errors import ConfigError, ConnectionFailed
from alley.hookspecs import hookimpl

if TYPE_CHECKING:
    from pymongo.database import Database

    from alley.settings import Settings

# A process that already registered MongoEngine's default alias with other settings
# (an application calling the API) keeps it; alley then uses an alias of its own.
FALLBACK_ALIAS = "alley"


@hookimpl(trylast=True)
def alley_connect(settings: Settings) -> Database[Any]:
    import mongoengine
    from mongoengine.connection import DEFAULT_CONNECTION_NAME, get_db
    from pymongo import errors

    name = settings.database_name
    if not name:
        raise ConfigError(
            "no database name given", hint="pass -db NAME, or a --url that ends in /NAME"
        )
    timeout_ms = int(settings.timeout * 1000)
    options: dict[str, Any] = {
        "db": name,
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "appname": "alley",
        # MongoEngine's own default, said explicitly so it does not warn on every run.
        "uuidRepresentation": "pythonLegacy",
    }
    if settings.url:
        options["host"] = settings.url
    else:
        options["host"], options["port"] = settings.host, settings.port
    if settings.username:
        options["username"] = settings.username
    if settings.password:
        options["password"] = settings.password
    if settings.auth_source:
        options["authentication_source"] = settings.auth_source

    try:
        try:
            mongoengine.connect(alias=DEFAULT_CONNECTION_NAME, **options)
            alias = DEFAULT_CONNECTION_NAME
        except mongoengine.connection.ConnectionFailure:
            mongoengine.disconnect(FALLBACK_ALIAS)
            mongoengine.connect(alias=FALLBACK_ALIAS, **options)
            alias = FALLBACK_ALIAS
        db: Database[Any] = get_db(alias)
        db.command("ping")
    except errors.OperationFailure as error:
        if error.code in (18, 13):
            user = settings.username or "(from the URL)"
            raise ConnectionFailed(
                f"authentication failed for user {user} at {settings.redacted_target()}",
                hint="check the username, password and -a/--auth database",
            ) from None
        raise ConnectionFailed(_clean(str(error), settings)) from None
    except errors.ConnectionFailure:
        raise ConnectionFailed(
            f"cannot reach the server at {settings.redacted_target()} within {settings.timeout:g}s",
            hint="check --host/--port/--url and that the server runs, or raise --timeout",
        ) from None
    except (errors.ConfigurationError, errors.InvalidURI, ValueError) as error:
        raise ConfigError(f"invalid connection settings: {_clean(str(error), settings)}") from None
    return db


def _clean(message: str, settings: Settings) -> str:
    """The first line of a driver message, with the password removed if it appears."""
    line = message.splitlines()[0] if message else "unknown error"
    if settings.password:
        line = line.replace(settings.password, "***")
    if settings.url:
        from urllib.parse import unquote, urlsplit

        password = urlsplit(settings.url).password
        if password:
            line = line.replace(password, "***").replace(unquote(password), "***")
    return line
