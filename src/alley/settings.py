"""Settings: command line > environment > ``[tool.alley]`` in pyproject.toml > defaults.

Resolved once per command into an immutable :class:`Settings`. Nothing here connects
or reads migrations; it only reads the environment and the project's pyproject.toml.

Every connection property (hosts, port, database, user name, password, authentication
database) is taken from the highest source that sets it, whether as a setting of its
own or as a part of a URL: a URL is a bundle of these properties at its source's
level, and on a tie the setting of its own wins. :meth:`Settings.connection` makes
that combination; its driver options (``replicaSet``, ``tls``, ...) are always kept.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

from alley.errors import ConfigError

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 27017
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_LEASE_S = 30.0
DEFAULT_LOCK_TIMEOUT_S = 60.0
#: How many databases a multi-database command works on at once (``--jobs``).
DEFAULT_JOBS = 4
#: The database used when none is named anywhere: MongoEngine's default, as alley 0.0.3.
DEFAULT_DATABASE = "test"
#: What marks a project's root folder (where searches for files stop climbing).
PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", ".git")

#: Environment variables, by setting. The first one set wins.
ENVIRONMENT: Mapping[str, tuple[str, ...]] = {
    "url": ("ALLEY_URL", "MONGODB_URI"),
    "database": ("ALLEY_DATABASE",),
    "username": ("ALLEY_USERNAME",),
    "password": ("ALLEY_PASSWORD",),
    "auth_source": ("ALLEY_AUTH_SOURCE",),
    "host": ("ALLEY_HOST",),
    "port": ("ALLEY_PORT",),
    "path": ("ALLEY_PATH",),
    "timeout": ("ALLEY_TIMEOUT",),
    "lease": ("ALLEY_LEASE",),
    "lock_timeout": ("ALLEY_LOCK_TIMEOUT",),
    "databases": ("ALLEY_DATABASES",),
    "jobs": ("ALLEY_JOBS",),
    "disable_plugins": ("ALLEY_DISABLE_PLUGINS",),
    "models": ("ALLEY_MODELS",),
}


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, from wherever it was set.

    ``options`` is the whole ``[tool.alley]`` table, with ``-o KEY=VALUE`` from the
    command line over it, so plugins can read their own keys.
    ``origins`` says where each explicitly set value came from (``cli``, ``env:NAME``,
    ``config:<file>``), for error messages and ``--verbose``.
    """

    path: Path | None = None
    url: str | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_source: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    timeout: float = DEFAULT_TIMEOUT_S
    lease: float = DEFAULT_LEASE_S
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
    #: The databases of a multi-database command: names, glob patterns over the
    #: server's databases, and ``@…`` entries a plugin resolves (:mod:`alley.fleet`).
    databases: tuple[str, ...] = ()
    jobs: int = DEFAULT_JOBS
    disable_plugins: tuple[str, ...] = ()
    #: Modules defining the project's MongoEngine models (``create --autogenerate``,
    #: ``check``), imported with :attr:`sys_path` first on ``sys.path``.
    models: tuple[str, ...] = ()
    load_plugins: tuple[str, ...] | None = None  # installed plugins to load; None: all
    # Folders put first on sys.path before migrations load, so they can import the
    # project's code (Alembic's prepend_sys_path).
    sys_path: tuple[Path, ...] = ()
    cwd: Path = field(default_factory=Path.cwd)
    options: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.repr and f.name not in ("options", "origins")
        }
        if shown["url"]:
            shown["url"] = redact_url(shown["url"])
        if self.password:
            shown["password"] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def many_databases(self) -> bool:
        """Whether commands run over :attr:`databases` (one database each, as if run
        once per database) rather than over one database."""
        return bool(self.databases)

    def for_database(self, name: str) -> Settings:
        """These settings for one database of a multi-database command."""
        return replace(
            self,
            database=name,
            databases=(),
            # at the top level, so that it beats a URL's database wherever that is set
            origins={**self.origins, "database": "cli"},
        )

    @property
    def database_name(self) -> str | None:
        """The database after precedence (``database``, or the URL's); ``None`` when no
        source names one (the connection then uses :data:`DEFAULT_DATABASE`)."""
        return self.connection().database

    def redacted_target(self) -> str:
        """Where alley connects, for messages: never contains a password."""
        return self.connection().where

    def connection(self) -> Connection:
        """Every connection property from the highest source that sets it.

        :raises ConfigError: an invalid URL, an invalid database name, or ``-p`` over a
            URL that names several servers (or a ``mongodb+srv://`` name) without ``-h``.
        """
        return _connection(self)


@dataclass(frozen=True)
class Connection:
    """Where and as whom to connect, after precedence (:meth:`Settings.connection`).

    ``url`` is ``None`` (connect to ``host``:``port``) or a ``mongodb://`` /
    ``mongodb+srv://`` URL that carries the servers and the driver options only: its
    credentials, database and ``authSource`` are the fields here, which the driver is
    given separately (``host``/``port`` are then its first server). ``where`` names the
    servers for messages (never a password).
    """

    url: str | None
    host: str
    port: int
    database: str | None
    username: str | None
    password: str | None = field(repr=False)
    auth_source: str | None
    where: str
    #: The URL's ``authMechanism``, if any (some need no password).
    mechanism: str | None = None
    #: Where the user name came from, for messages ("-u/--username", "the URL", ...).
    username_origin: str = ""


def redact_url(url: str) -> str:
    """Replace the password of a ``mongodb://user:password@host`` URL with ``***``.

    Works on malformed URLs too (``mongodb:/u:p@h``, ``u:p@h``, raw ``/`` or ``@`` in
    the password): everything between the user name and the last ``@`` is hidden.
    """
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    match = re.match(r"^([a-z][a-z0-9+.-]*:/+)?(.*)$", head, re.IGNORECASE | re.DOTALL)
    assert match is not None  # the pattern matches every string
    prefix, userinfo = match.group(1) or "", match.group(2)
    user, colon, _password = userinfo.partition(":")
    return f"{prefix}{user}{':***' if colon else ''}@{tail}"


def project_root(start: Path) -> Path | None:
    """The project's root: the first folder from ``start`` up that holds a
    ``pyproject.toml``, a ``setup.cfg`` or a ``.git``; ``None`` when there is none."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return None


def search_folders(start: Path) -> tuple[Path, ...]:
    """Where to look for a project's files: ``start`` and its parents up to the
    project's root (:func:`project_root`), or ``start`` alone outside any project."""
    start = start.resolve()
    root = project_root(start)
    if root is None:
        return (start,)
    return (start, *start.parents[: len(start.parents) - len(root.parents)])


def find_pyproject(start: Path) -> Path | None:
    """The project's pyproject.toml: in the project's root (:func:`project_root`) of
    ``start``; ``None`` when that root has none, or there is no project."""
    root = project_root(start)
    candidate = None if root is None else root / "pyproject.toml"
    return candidate if candidate is not None and candidate.is_file() else None


def read_config(pyproject: Path) -> dict[str, Any]:
    """The ``[tool.alley]`` table of a pyproject.toml (empty when absent)."""
    try:
        with pyproject.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {pyproject}: {error}") from error
    table = document.get("tool", {}).get("alley", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.alley] in {pyproject} must be a table")
    return table


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings from the command line, the environment and pyproject.toml.

    ``[tool.alley]`` is read from the project's pyproject.toml: the project of PATH when
    PATH is given on the command line or in the environment, else the project of the
    current directory (:func:`find_pyproject`). Only one file is ever read.

    :param cli: Values given on the command line or to the API; ``None`` values are unset.
    :param environ: The environment (``os.environ`` by default).
    :param cwd: Where relative paths and the search for pyproject.toml start.
    """
    environ = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).resolve()
    cli = cli or {}
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    options: dict[str, Any] = {}

    # PATH given on the command line or in the environment: its project's settings.
    given_path: Path | None = None
    if _is_set(cli.get("path")):
        given_path = _path(cli["path"], cwd, "cli")
    elif environ.get("ALLEY_PATH"):
        given_path = _path(environ["ALLEY_PATH"], cwd, "env:ALLEY_PATH")

    pyproject = find_pyproject(given_path or cwd)
    if pyproject is not None:
        options = read_config(pyproject)
        for key in ENVIRONMENT:
            if key in options:
                origin = f"config:{pyproject}"
                value = _config_value(key, options[key], origin)
                if key == "path":
                    value = pyproject.parent / str(value)
                values[key] = value
                origins[key] = origin

    for key, names in ENVIRONMENT.items():
        for name in names:
            if environ.get(name):
                values[key] = environ[name]
                origins[key] = f"env:{name}"
                break

    for key, value in cli.items():
        if key not in ("options", "load_plugins") and _is_set(value):
            values[key] = value
            origins[key] = "cli"

    # Disabling is additive: a plugin disabled anywhere stays disabled.
    disabled = [
        *_names(options.get("disable_plugins", ())),
        *_names(environ.get("ALLEY_DISABLE_PLUGINS", "")),
        *_names(cli.get("disable_plugins") or ()),
    ]

    # Which installed plugins load: an empty value means none (only the defaults).
    load_plugins: tuple[str, ...] | None = None
    if "load_plugins" in options:
        load_plugins = _names(_config_names("load_plugins", options["load_plugins"], pyproject))
    if "ALLEY_LOAD_PLUGINS" in environ:
        load_plugins = _names(environ["ALLEY_LOAD_PLUGINS"])
    if cli.get("load_plugins") is not None:
        load_plugins = _names(cli["load_plugins"])

    if values.get("database") == "" and _rank(origins.get("database")) in (1, 3):
        check_database_name("", describe_origin(origins.get("database")))  # set, and empty
    if origins.get("path") in ("cli", "env:ALLEY_PATH"):
        path = given_path
    else:
        path = _path(values.get("path"), cwd, origins.get("path"))
    settings = Settings(
        path=path,
        url=_url(values.get("url"), origins.get("url")),
        database=_text(values, "database", origins),
        username=_text(values, "username", origins),
        password=_text(values, "password", origins),
        auth_source=_text(values, "auth_source", origins),
        host=_text(values, "host", origins) or DEFAULT_HOST,
        port=_number(values.get("port", DEFAULT_PORT), "port", int, origins),
        timeout=_number(values.get("timeout", DEFAULT_TIMEOUT_S), "timeout", float, origins),
        lease=_number(values.get("lease", DEFAULT_LEASE_S), "lease", float, origins),
        lock_timeout=_number(
            values.get("lock_timeout", DEFAULT_LOCK_TIMEOUT_S), "lock_timeout", float, origins
        ),
        databases=_databases(values, origins),
        models=_models(values, origins),
        jobs=_number(values.get("jobs", DEFAULT_JOBS), "jobs", int, origins),
        disable_plugins=tuple(dict.fromkeys(disabled)),
        load_plugins=load_plugins,
        sys_path=_sys_path(options, pyproject, environ, cwd, path),
        cwd=cwd,
        options={**options, **_option_pairs(cli.get("options") or ())},
        origins=origins,
    )
    settings.connection()  # an invalid URL or database name fails here, before anything
    if settings.databases:
        settings = _one_or_many(settings, values)
    return settings


def _is_set(value: Any) -> bool:
    return value is not None and value != ()


def describe_origin(origin: str | None) -> str:
    """``cli``, ``env:NAME``, ``config:FILE`` in words, for messages."""
    if origin is None:
        return "the defaults"
    kind, _, name = origin.partition(":")
    if kind == "cli":
        return "the command line"
    if kind == "env":
        return name
    if kind == "config":
        return f"[tool.alley] in {name}"
    return origin


#: Settings whose value in ``[tool.alley]`` is a string.
_STRINGS = ("url", "database", "username", "password", "auth_source", "host", "path")


#: Settings that take a string or a list of strings: what to say when neither, and an
#: example.
_STRING_LISTS = {
    "databases": ("a list of names", 'databases = ["tenant_*"]'),
    "models": ("a module path or a list of them", 'models = "myapp.models"'),
}


def _config_value(key: str, value: Any, origin: str) -> Any:
    """A ``[tool.alley]`` value of the TOML type its setting needs, else exit 3."""
    where = describe_origin(origin)
    if key in _STRINGS and not isinstance(value, str):
        raise ConfigError(f"invalid {key} {value!r} (from {where}): it must be a string")
    if key == "port" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"invalid port {value!r} (from {where}): it must be an integer")
    if key in _STRING_LISTS and not (
        isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    ):
        what, example = _STRING_LISTS[key]
        raise ConfigError(
            f"invalid {key} {value!r} (from {where}): it must be {what}", hint=f"e.g. {example}"
        )
    if key == "jobs" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"invalid jobs {value!r} (from {where}): it must be an integer")
    if key in ("timeout", "lease", "lock_timeout") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise ConfigError(f"invalid {key} {value!r} (from {where}): it must be a number")
    if key == "disable_plugins":
        _config_names(key, value, Path(origin.partition(":")[2]))
    return value


def _config_names(key: str, value: Any, pyproject: Path | None) -> Any:
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return value
    raise ConfigError(
        f"invalid {key} {value!r} (from [tool.alley] in {pyproject}): "
        "it must be a list of plugin names",
        hint=f'e.g. {key} = ["some-plugin"]',
    )


_PATTERN_CHARACTERS = re.compile(r"[*?\[\]]")


_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _models(values: Mapping[str, Any], origins: Mapping[str, str]) -> tuple[str, ...]:
    return parse_models(values.get("models"), origins.get("models"))


def parse_models(value: Any, origin: str | None = "cli") -> tuple[str, ...]:
    """``models``: a list, or one string of comma-separated module paths (command line,
    environment); each must look like ``package.module``.

    :raises ConfigError: one entry is not a module path (exit 3).
    """
    if value is None:
        return ()
    entries = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(str(e).strip() for e in entries if str(e).strip()))
    where = describe_origin(origin)
    for name in names:
        if not _MODULE_PATH.match(name):
            raise ConfigError(
                f"invalid models {name!r} (from {where}): not a module path",
                hint='e.g. models = "myapp.models"',
            )
    return names


def _databases(values: Mapping[str, Any], origins: Mapping[str, str]) -> tuple[str, ...]:
    """``databases``: a list, or one string of comma-separated entries (command line,
    environment). Names are checked as ``-db`` is; patterns and ``@…`` entries (a
    plugin's) are kept as they are."""
    value = values.get("databases")
    if value is None:
        return ()
    entries = value.split(",") if isinstance(value, str) else list(value)
    where = describe_origin(origins.get("databases"))
    names = tuple(dict.fromkeys(e.strip() for e in entries if e.strip()))
    if not names:
        raise ConfigError(f"databases (from {where}) names no database")
    for name in names:
        if not name.startswith("@") and not _PATTERN_CHARACTERS.search(name):
            check_database_name(name, where)
    return names


def _one_or_many(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """``databases`` and a database setting (``-db``, ``ALLEY_DATABASE``, ``database``)
    at the same level: which one is meant is unclear (exit 3). The database at a higher
    level wins: ``-db NAME`` runs one database of a project that lists many. A URL's
    database never does (a URL often names one for its credentials' sake)."""
    if not values.get("database"):
        return settings
    one = _rank(settings.origins.get("database"))
    many = _rank(settings.origins.get("databases"))
    if one > many:
        return replace(settings, databases=())
    if one == many:
        where = describe_origin(settings.origins.get("databases"))
        raise ConfigError(
            f"both database and databases are set (in {where})",
            hint="give one: -db NAME for one database, --databases for several",
        )
    return settings


def _text(values: Mapping[str, Any], key: str, origins: Mapping[str, str]) -> str | None:
    """A string setting; empty is unset (an empty environment variable never gets here)."""
    value = values.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        where = describe_origin(origins.get(key))
        raise ConfigError(f"invalid {key} {value!r} (from {where}): it must be a string")
    return value


def _sys_path(
    options: Mapping[str, Any],
    pyproject: Path | None,
    environ: Mapping[str, str],
    cwd: Path,
    path: Path | None,
) -> tuple[Path, ...]:
    """``ALLEY_SYS_PATH`` (``os.pathsep``-separated, relative to the current directory),
    else ``sys_path`` in ``[tool.alley]`` (relative to that file), else the project's
    root: the folder of the nearest pyproject.toml, else PATH, else the current
    directory."""
    if "ALLEY_SYS_PATH" in environ:
        folders = [f for f in environ["ALLEY_SYS_PATH"].split(os.pathsep) if f.strip()]
        return tuple((cwd / folder).resolve() for folder in folders)
    if pyproject is not None and "sys_path" in options:
        value = options["sys_path"]
        folders = [value] if isinstance(value, str) else value
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise ConfigError(
                f"sys_path in {pyproject} must be a list of folders",
                hint='e.g. sys_path = ["src"]',
            )
        return tuple((pyproject.parent / folder).resolve() for folder in folders)
    if pyproject is not None:
        return (pyproject.parent,)
    return (path or cwd,)


def _rank(origin: str | None) -> int:
    if origin is None:
        return 0
    return {"config": 1, "env": 2, "cli": 3}.get(origin.split(":", 1)[0], 0)


def _path(value: Any, cwd: Path, origin: str | None) -> Path | None:
    if value is None or value == "":
        return None
    path = (cwd / Path(value)).resolve()
    where = f" (from {describe_origin(origin)})" if origin and origin != "cli" else ""
    if not path.exists():
        raise ConfigError(f"PATH {value} does not exist{where}")
    if not path.is_dir():
        raise ConfigError(
            f"PATH {value} is not a directory{where}",
            hint="PATH is the folder that contains migrations/",
        )
    return path


def _url(value: Any, origin: str | None = None) -> str | None:
    if not value:
        return None
    url = str(value)
    _parse_url(url, origin)
    return url


def _number(value: Any, key: str, kind: type[int] | type[float], origins: dict[str, str]) -> Any:
    """A positive number from a string (command line, environment) or a number."""
    where = f"(from {describe_origin(origins.get(key))})"
    number: int | float
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if kind is int:
            if isinstance(value, float) or (isinstance(value, str) and "." in value):
                raise ValueError(value)
            number = int(value)
        else:
            number = float(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"invalid {key} {value!r} {where}: it must be {what}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"invalid {key} {value!r} {where}: it must be a positive number")
    if key == "port" and number > 65535:
        raise ConfigError(f"invalid port {value!r} {where}: it must be at most 65535")
    return number


# --- the connection: URL parts and the settings of their own, combined --------------


#: Options of a ``mongodb+srv://`` URL that a ``mongodb://`` URL refuses.
_SRV_ONLY_OPTIONS = ("srvservicename", "srvmaxhosts", "srvallowedhostssuffix")
#: Authentication mechanisms that take a user name and no password.
PASSWORDLESS_MECHANISMS = ("MONGODB-X509", "GSSAPI", "MONGODB-AWS", "MONGODB-OIDC")
#: What MongoDB refuses in a database name (on every platform), and its length limit.
_BAD_DATABASE_CHARACTERS = re.compile(r'[/\\. "$\x00]')
_DATABASE_MAX_BYTES = 63


@dataclass(frozen=True)
class _UrlParts:
    scheme: str  # "mongodb" or "mongodb+srv"
    hosts: str  # as written, without the user information
    nodes: tuple[tuple[str, int | None], ...]
    username: str | None
    password: str | None
    database: str | None
    query: str  # as written
    options: Mapping[str, Any]  # lower-case names


def _parse_url(url: str, origin: str | None) -> _UrlParts:
    """Split and validate a URL with pymongo's public parser, without DNS lookups.

    :raises ConfigError: it is not a valid ``mongodb://`` / ``mongodb+srv://`` URL (the
        message never shows its password).
    """
    from pymongo import uri_parser
    from pymongo.errors import ConfigurationError, InvalidURI

    where = f" (from {describe_origin(origin)})" if origin else ""
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(
            f"invalid URL {redact_url(url)!r}{where}",
            hint="it starts with mongodb:// or mongodb+srv://",
        )
    scheme, _, rest = url.partition("://")
    authority_and_path, _, query = rest.partition("?")
    authority, _, path = authority_and_path.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    try:
        with warnings.catch_warnings():  # unknown options: the driver warns when connecting
            warnings.simplefilter("ignore")
            if scheme == "mongodb":
                uri_parser.parse_uri(url, warn=True)  # everything, without DNS
            options = uri_parser.split_options(query, True, True, False) if query else {}
            username, password = uri_parser.parse_userinfo(userinfo) if at else (None, None)
            nodes = uri_parser.split_hosts(hosts, default_port=None)
            if scheme != "mongodb" and (len(nodes) != 1 or nodes[0][1] is not None):
                raise InvalidURI("a mongodb+srv:// URL names one host, without a port")
    except (InvalidURI, ConfigurationError, ValueError) as error:
        reason = _without_secret(str(error).splitlines()[0] if str(error) else "", url)
        raise ConfigError(f"invalid URL {redact_url(url)!r}{where}: {reason}") from None
    database = unquote_plus(path).split(".", 1)[0] if path else None
    return _UrlParts(
        scheme=scheme,
        hosts=hosts,
        nodes=tuple((host, None if port is None else int(port)) for host, port in nodes),
        username=username or None,
        password=password or None,
        database=database or None,
        query=query,
        options={str(k).lower(): v for k, v in options.items()},
    )


def _without_secret(text: str, url: str) -> str:
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for secret in (password, unquote_plus(password)):
        if secret:
            text = text.replace(secret, "***")
    return text


def check_database_name(name: str, origin: str) -> None:
    """Refuse a name MongoDB refuses, before connecting (exit 3)."""
    reason = None
    if not name:
        reason = "it is empty"
    elif _BAD_DATABASE_CHARACTERS.search(name):
        reason = 'it may not contain / \\ . space " $ or a NUL'
    elif len(name.encode("utf-8")) > _DATABASE_MAX_BYTES:
        reason = f"it is longer than {_DATABASE_MAX_BYTES} bytes"
    if reason is not None:
        raise ConfigError(f"invalid database name {name!r} (from {origin}): {reason}")


def _connection(settings: Settings) -> Connection:
    origins = settings.origins
    url_origin = origins.get("url")
    url_rank = _rank(url_origin)

    def own(key: str) -> bool:
        """Whether the setting of its own ``key`` beats the URL's part (same level or higher)."""
        value = getattr(settings, key)
        if key in ("host", "port"):
            given = key in origins or value != {"host": DEFAULT_HOST, "port": DEFAULT_PORT}[key]
        else:
            given = value is not None
        return given and _rank(origins.get(key)) >= url_rank

    def origin_of(key: str) -> str:
        return describe_origin(origins.get(key)) if key in origins else "the settings"

    if not settings.url:
        connection = Connection(
            url=None,
            host=settings.host,
            port=settings.port,
            database=settings.database,
            username=settings.username,
            password=settings.password,
            auth_source=settings.auth_source,
            where=f"{settings.host}:{settings.port}",
            username_origin=_username_origin(origins.get("username")),
        )
        _check(connection, origin_of("database"))
        return connection

    parts = _parse_url(settings.url, url_origin)
    in_url = f"the URL from {describe_origin(url_origin)}" if url_origin else "the URL"
    scheme, hosts, options = parts.scheme, parts.hosts, dict(parts.options)
    host, port = parts.nodes[0][0], parts.nodes[0][1] or DEFAULT_PORT  # the first server
    if own("host") or own("port"):
        single = parts.nodes[0] if scheme == "mongodb" and len(parts.nodes) == 1 else None
        if own("host"):
            host = settings.host
        else:
            if single is None:
                names = "several servers" if len(parts.nodes) > 1 else "a mongodb+srv:// name"
                raise ConfigError(
                    f"port {settings.port} (from {origin_of('port')}) replaces the servers "
                    f"of {in_url}, which names {names}",
                    hint="give the host too: -h/--host, ALLEY_HOST or host in [tool.alley]",
                )
            host = single[0]
        if own("port") or single is None or single[1] is None:
            port = settings.port  # its own setting, from any level, or the default

        if scheme == "mongodb+srv":
            for key in _SRV_ONLY_OPTIONS:
                options.pop(key, None)
            if "tls" not in options and "ssl" not in options:
                options["tls"] = True  # what mongodb+srv:// implies
        scheme = "mongodb"
        hosts = f"{_host_in_url(host)}:{port}"
    options.pop("authsource", None)  # given to the driver separately

    def pick(key: str, from_url: Any) -> Any:
        if own(key):
            return getattr(settings, key)
        return from_url if from_url is not None else getattr(settings, key)

    username = pick("username", parts.username)
    connection = Connection(
        url=f"{scheme}://{hosts}/" + (f"?{_query(parts.query, options)}" if options else ""),
        host=host,
        port=port,
        database=pick("database", parts.database),
        username=username,
        password=pick("password", parts.password),
        auth_source=pick("auth_source", parts.options.get("authsource")),
        where=hosts if scheme == "mongodb" else f"{scheme}://{hosts}",
        mechanism=str(options["authmechanism"]) if options.get("authmechanism") else None,
        username_origin=(
            _username_origin(origins.get("username"))
            if own("username") or parts.username is None
            else f"the user name in {in_url}"
        ),
    )
    database_origin = origin_of("database") if own("database") or parts.database is None else in_url
    _check(connection, database_origin)
    return connection


def _check(connection: Connection, origin: str) -> None:
    if connection.database is not None:
        check_database_name(connection.database, origin)


def _username_origin(origin: str | None) -> str:
    kind, _, name = (origin or "").partition(":")
    if kind == "env":
        return name
    if kind == "config":
        return f"username in [tool.alley] of {name}"
    return "-u/--username"


def _host_in_url(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"  # an IPv6 address
    return quote(host, safe="[]:") if "/" in host else host


def _query(query: str, kept: Mapping[str, Any]) -> str:
    """The URL's options as written, less those not ``kept``, plus those added
    (``tls=true`` for a former ``mongodb+srv://`` URL)."""
    pairs = [p for p in re.split("[&;]", query) if p]
    written = [p for p in pairs if p.partition("=")[0].lower() in kept]
    names = {p.partition("=")[0].lower() for p in written}
    added = [f"{k}={'true' if v is True else v}" for k, v in kept.items() if k not in names]
    return "&".join([*written, *added])


def _option_pairs(pairs: Any) -> dict[str, str]:
    """``("key=value", ...)`` from ``-o`` into a dict."""
    options = {}
    for pair in pairs:
        key, equals, value = str(pair).partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"invalid option {pair!r}", hint="use -o KEY=VALUE")
        options[key.strip()] = value
    return options


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(name.strip() for name in value if str(name).strip())
