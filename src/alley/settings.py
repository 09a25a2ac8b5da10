"""Settings: command line > environment > ``[tool.alley]`` in pyproject.toml > defaults.

Resolved once per command into an immutable :class:`Settings`. Nothing here connects
or reads migrations; it only reads the environment and the nearest pyproject.toml.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alley.errors import ConfigError

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 27017
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_LEASE_S = 30.0
DEFAULT_LOCK_TIMEOUT_S = 60.0

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
    "disable_plugins": ("ALLEY_DISABLE_PLUGINS",),
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
    disable_plugins: tuple[str, ...] = ()
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
    def database_name(self) -> str | None:
        """``database``, else the database part of ``url``."""
        if self.database:
            return self.database
        if self.url:
            name = urlsplit(self.url).path.lstrip("/")
            return name or None
        return None

    def redacted_target(self) -> str:
        """Where alley connects, for messages: never contains a password."""
        if self.url:
            return redact_url(self.url)
        return f"{self.host}:{self.port}"


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


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml in ``start`` or its parents."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


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

    :param cli: Values given on the command line or to the API; ``None`` values are unset.
    :param environ: The environment (``os.environ`` by default).
    :param cwd: Where relative paths and the search for pyproject.toml start.
    """
    environ = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).resolve()
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    options: dict[str, Any] = {}

    pyproject = find_pyproject(cwd)
    if pyproject is not None:
        options = read_config(pyproject)
        for key in ENVIRONMENT:
            if key in options:
                value = options[key]
                if key == "path":
                    value = pyproject.parent / str(value)
                values[key] = value
                origins[key] = f"config:{pyproject}"

    for key, names in ENVIRONMENT.items():
        for name in names:
            if environ.get(name):
                values[key] = environ[name]
                origins[key] = f"env:{name}"
                break

    for key, value in (cli or {}).items():
        if key not in ("options", "load_plugins") and value is not None and value != ():
            values[key] = value
            origins[key] = "cli"

    # Disabling is additive: a plugin disabled anywhere stays disabled.
    disabled = [
        *_names(options.get("disable_plugins", ())),
        *_names(environ.get("ALLEY_DISABLE_PLUGINS", "")),
        *_names((cli or {}).get("disable_plugins") or ()),
    ]

    # Which installed plugins load: an empty value means none (only the defaults).
    load_plugins: tuple[str, ...] | None = None
    if "load_plugins" in options:
        load_plugins = _names(options["load_plugins"])
    if "ALLEY_LOAD_PLUGINS" in environ:
        load_plugins = _names(environ["ALLEY_LOAD_PLUGINS"])
    if (cli or {}).get("load_plugins") is not None:
        load_plugins = _names((cli or {})["load_plugins"])

    _drop_outranked_url_parts(values, origins)
    path = _path(values.get("path"), cwd, origins.get("path"))
    return Settings(
        path=path,
        url=_url(values.get("url")),
        database=values.get("database") or None,
        username=values.get("username") or None,
        password=values.get("password") or None,
        auth_source=values.get("auth_source") or None,
        host=str(values.get("host") or DEFAULT_HOST),
        port=_number(values.get("port", DEFAULT_PORT), "port", int, origins),
        timeout=_number(values.get("timeout", DEFAULT_TIMEOUT_S), "timeout", float, origins),
        lease=_number(values.get("lease", DEFAULT_LEASE_S), "lease", float, origins),
        lock_timeout=_number(
            values.get("lock_timeout", DEFAULT_LOCK_TIMEOUT_S), "lock_timeout", float, origins
        ),
        disable_plugins=tuple(dict.fromkeys(disabled)),
        load_plugins=load_plugins,
        sys_path=_sys_path(options, pyproject, environ, cwd, path),
        cwd=cwd,
        options={**options, **_option_pairs((cli or {}).get("options") or ())},
        origins=origins,
    )


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
    return {"config": 1, "env": 2, "cli": 3}[origin.split(":", 1)[0]]


def _drop_outranked_url_parts(values: dict[str, Any], origins: dict[str, str]) -> None:
    """Keep "command line > environment > config" true across URL and separate settings.

    ``-h/-p`` on the command line beat a URL from the environment (the URL is then not
    used); a URL given at a higher level beats a ``database`` from a lower one (its
    database part is used).
    """
    url_rank = _rank(origins.get("url"))
    if "url" in values and max(_rank(origins.get("host")), _rank(origins.get("port"))) > url_rank:
        del values["url"]
        origins.pop("url", None)
    elif (
        "url" in values
        and "database" in values
        and _rank(origins.get("database")) < url_rank
        and urlsplit(str(values["url"])).path.strip("/")
    ):
        del values["database"]
        origins.pop("database", None)


def _path(value: Any, cwd: Path, origin: str | None) -> Path | None:
    if value is None or value == "":
        return None
    path = (cwd / Path(value)).resolve()
    where = f" (from {origin})" if origin and origin != "cli" else ""
    if not path.exists():
        raise ConfigError(f"PATH {value} does not exist{where}")
    if not path.is_dir():
        raise ConfigError(
            f"PATH {value} is not a directory{where}",
            hint="PATH is the folder that contains migrations/",
        )
    return path


def _url(value: Any) -> str | None:
    if not value:
        return None
    url = str(value)
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(
            f"invalid URL {redact_url(url)!r}", hint="it starts with mongodb:// or mongodb+srv://"
        )
    return url


def _number(value: Any, key: str, kind: type[int] | type[float], origins: dict[str, str]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        where = origins.get(key, "default")
        raise ConfigError(f"invalid {key} {value!r} (from {where})") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"invalid {key} {value!r}: must be a positive number")
    if key == "port" and number > 65535:
        raise ConfigError(f"invalid port {value!r}: must be at most 65535")
    return number


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
