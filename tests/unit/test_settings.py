"""Unit tests of alley.settings: cli > env > [tool.alley] > defaults, and no password leaks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alley.errors import ConfigError
from alley.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    Settings,
    find_pyproject,
    load_settings,
    project_root,
    redact_url,
    search_folders,
)

SECRET = "s3cr3t-Pa55"


def write_config(folder: Path, body: str) -> Path:
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(f'[project]\nname = "demo"\n\n[tool.alley]\n{body}\n', encoding="utf-8")
    return pyproject


# --- defaults and precedence --------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.host == DEFAULT_HOST == "localhost"
    assert settings.port == DEFAULT_PORT == 27017
    assert settings.timeout == DEFAULT_TIMEOUT_S == 5
    assert settings.url is None
    assert settings.database is None
    assert settings.database_name is None
    assert settings.path is None
    assert settings.password is None
    assert settings.disable_plugins == ()
    assert settings.cwd == tmp_path.resolve()
    assert settings.redacted_target() == "localhost:27017"


def test_cli_beats_env_beats_config(tmp_path: Path) -> None:
    write_config(tmp_path, 'host = "config-host"\ndatabase = "config_db"\nport = 1001')
    environ = {"ALLEY_HOST": "env-host", "ALLEY_DATABASE": "env_db"}
    settings = load_settings({"host": "cli-host"}, environ=environ, cwd=tmp_path)
    assert settings.host == "cli-host"
    assert settings.database == "env_db"
    assert settings.port == 1001
    assert settings.origins["host"] == "cli"
    assert settings.origins["database"] == "env:ALLEY_DATABASE"
    assert settings.origins["port"].startswith("config:")


def test_config_is_found_in_a_parent_folder(tmp_path: Path) -> None:
    write_config(tmp_path, 'database = "from_parent"')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert load_settings(environ={}, cwd=deep).database == "from_parent"
    assert find_pyproject(deep) == tmp_path / "pyproject.toml"


def test_the_nearest_config_wins(tmp_path: Path) -> None:
    write_config(tmp_path, 'database = "outer"')
    inner = tmp_path / "inner"
    inner.mkdir()
    write_config(inner, 'database = "inner"')
    assert load_settings(environ={}, cwd=inner).database == "inner"
    assert load_settings(environ={}, cwd=tmp_path).database == "outer"


def test_pyproject_without_tool_alley_gives_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.host == "localhost"
    assert dict(settings.options) == {}


def test_config_options_are_kept_for_plugins(tmp_path: Path) -> None:
    write_config(tmp_path, 'database = "d"\ns3_bucket = "b"')
    assert load_settings(environ={}, cwd=tmp_path).options["s3_bucket"] == "b"


def test_broken_pyproject_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.alley\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        load_settings(environ={}, cwd=tmp_path)


def test_tool_alley_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool]\nalley = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a table"):
        load_settings(environ={}, cwd=tmp_path)


def test_none_and_empty_cli_values_are_unset(tmp_path: Path) -> None:
    settings = load_settings(
        {"host": None, "disable_plugins": ()}, environ={"ALLEY_HOST": "env-host"}, cwd=tmp_path
    )
    assert settings.host == "env-host"


def test_empty_environment_variables_are_unset(tmp_path: Path) -> None:
    write_config(tmp_path, 'host = "config-host"')
    assert load_settings(environ={"ALLEY_HOST": ""}, cwd=tmp_path).host == "config-host"


LAYER_VALUES = {"cli": "cli-host", "env": "env-host", "config": "config-host"}


@given(st.booleans(), st.booleans(), st.booleans())
def test_precedence_over_every_combination_of_layers(cli: bool, env: bool, config: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        if config:
            write_config(cwd, 'host = "config-host"\nport = 3003\ntimeout = 3.0')
        environ = (
            {"ALLEY_HOST": "env-host", "ALLEY_PORT": "2002", "ALLEY_TIMEOUT": "2"} if env else {}
        )
        given_cli = {"host": "cli-host", "port": 1001, "timeout": 1.0} if cli else {}
        settings = load_settings(given_cli, environ=environ, cwd=cwd)
    if cli:
        expected = ("cli-host", 1001, 1.0)
    elif env:
        expected = ("env-host", 2002, 2.0)
    elif config:
        expected = ("config-host", 3003, 3.0)
    else:
        expected = ("localhost", 27017, 5.0)
    assert (settings.host, settings.port, settings.timeout) == expected


# --- URL, database -----------------------------------------------------------------------


def test_alley_url_comes_before_mongodb_uri(tmp_path: Path) -> None:
    environ = {"ALLEY_URL": "mongodb://alley-host/a", "MONGODB_URI": "mongodb://other/b"}
    settings = load_settings(environ=environ, cwd=tmp_path)
    assert settings.url == "mongodb://alley-host/a"
    assert settings.origins["url"] == "env:ALLEY_URL"


def test_mongodb_uri_is_used_without_alley_url(tmp_path: Path) -> None:
    settings = load_settings(environ={"MONGODB_URI": "mongodb://other/b"}, cwd=tmp_path)
    assert settings.url == "mongodb://other/b"
    assert settings.database_name == "b"


@pytest.mark.parametrize(
    ("database", "url", "expected"),
    [
        ("explicit", "mongodb://h/from_url", "explicit"),
        (None, "mongodb://h/from_url", "from_url"),
        (None, "mongodb://u:p@h1:1,h2:2/from_url?authSource=admin", "from_url"),
        (None, "mongodb+srv://cluster.example.net/app?retryWrites=true", "app"),
        (None, "mongodb://h/", None),
        (None, "mongodb://h", None),
        (None, None, None),
        ("only_db", None, "only_db"),
    ],
)
def test_database_name(tmp_path: Path, database, url, expected) -> None:
    settings = load_settings({"database": database, "url": url}, environ={}, cwd=tmp_path)
    assert settings.database_name == expected


@pytest.mark.parametrize(
    "url",
    [
        f"http://u:{SECRET}@h/db",
        f"mongo://u:{SECRET}@h/db",
        f"postgres://u:{SECRET}@h:5432/db",
        f"mongodb:/u:{SECRET}@h/db",
        f"u:{SECRET}@h/db",
        f"user:{SECRET}@h:27017",
    ],
)
def test_invalid_url_is_a_config_error_without_the_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="invalid URL") as caught:
        load_settings({"url": url}, environ={}, cwd=tmp_path)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


@pytest.mark.parametrize("url", ["mongodb://h", "mongodb+srv://cluster.example.net/db"])
def test_valid_url_schemes(tmp_path: Path, url: str) -> None:
    assert load_settings({"url": url}, environ={}, cwd=tmp_path).url == url


# --- redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mongodb://user:{SECRET}@host/db", "mongodb://user:***@host/db"),
        (f"mongodb://user:{SECRET}@host:27017/db", "mongodb://user:***@host:27017/db"),
        (
            f"mongodb+srv://user:{SECRET}@cluster.example.net/db?retryWrites=true",
            "mongodb+srv://user:***@cluster.example.net/db?retryWrites=true",
        ),
        (f"mongodb://user:{SECRET}@h1:1,h2:2/db", "mongodb://user:***@h1:1,h2:2/db"),
        ("mongodb://user:p%40ss%3Aw%2Fd@host/db", "mongodb://user:***@host/db"),
        ("mongodb://user:p@ss:w@host/db", "mongodb://user:***@host/db"),
        ("mongodb://user:@host/db", "mongodb://user:***@host/db"),
        ("mongodb://user@host/db", "mongodb://user@host/db"),
        ("mongodb://host/db", "mongodb://host/db"),
        ("mongodb+srv://cluster.example.net", "mongodb+srv://cluster.example.net"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("password", [SECRET, "p@ss", "p:ss", "pa%2Fss", "ünï", "a b"])
def test_redact_url_never_shows_the_password(password: str) -> None:
    redacted = redact_url(f"mongodb://admin:{password}@db.example.com:27017/app")
    assert password not in redacted
    assert redacted.startswith("mongodb://admin:***@")
    assert redacted.endswith("db.example.com:27017/app")


# --- repr never shows a password ----------------------------------------------------------


def test_repr_hides_the_password_given_with_w(tmp_path: Path) -> None:
    settings = load_settings({"password": SECRET, "username": "u"}, environ={}, cwd=tmp_path)
    assert settings.password == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "password='***'" in repr(settings)


def test_repr_hides_the_password_in_the_url(tmp_path: Path) -> None:
    settings = load_settings(
        {"url": f"mongodb://u:{SECRET}@h/db"}, environ={"ALLEY_PASSWORD": SECRET}, cwd=tmp_path
    )
    assert SECRET not in repr(settings)
    assert SECRET not in settings.redacted_target()
    assert "mongodb://u:***@h/db" in repr(settings)


def test_repr_hides_a_password_from_the_config_file(tmp_path: Path) -> None:
    write_config(tmp_path, f'password = "{SECRET}"\nurl = "mongodb://u:{SECRET}@h/db"')
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.password == SECRET
    assert SECRET not in repr(settings)


def test_repr_of_a_settings_built_directly_hides_the_password() -> None:
    settings = Settings(password=SECRET, url=f"mongodb+srv://u:{SECRET}@c.example.net/")
    assert SECRET not in repr(settings)


# --- PATH ---------------------------------------------------------------------------------


def test_config_path_is_relative_to_the_pyproject_folder(tmp_path: Path) -> None:
    write_config(tmp_path, 'path = "app"')
    (tmp_path / "app").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    assert load_settings(environ={}, cwd=sub).path == (tmp_path / "app").resolve()


def test_cli_and_env_paths_are_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "other").mkdir()
    cli = load_settings({"path": "app"}, environ={}, cwd=tmp_path)
    env = load_settings(environ={"ALLEY_PATH": "other"}, cwd=tmp_path)
    assert cli.path == (tmp_path / "app").resolve()
    assert env.path == (tmp_path / "other").resolve()


@pytest.mark.parametrize("layer", ["cli", "env", "config"])
def test_path_that_does_not_exist_is_a_config_error(tmp_path: Path, layer: str) -> None:
    cli = {"path": "missing"} if layer == "cli" else None
    environ = {"ALLEY_PATH": "missing"} if layer == "env" else {}
    if layer == "config":
        write_config(tmp_path, 'path = "missing"')
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(cli, environ=environ, cwd=tmp_path)


@pytest.mark.parametrize("layer", ["cli", "env", "config"])
def test_path_that_is_a_file_is_a_config_error(tmp_path: Path, layer: str) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    cli = {"path": "afile"} if layer == "cli" else None
    environ = {"ALLEY_PATH": "afile"} if layer == "env" else {}
    if layer == "config":
        write_config(tmp_path, 'path = "afile"')
    with pytest.raises(ConfigError, match="not a directory"):
        load_settings(cli, environ=environ, cwd=tmp_path)


def test_config_path_error_says_where_it_came_from(tmp_path: Path) -> None:
    pyproject = write_config(tmp_path, 'path = "missing"')
    with pytest.raises(ConfigError, match=r"from \[tool\.alley\] in ") as caught:
        load_settings(environ={}, cwd=tmp_path)
    assert str(pyproject) in str(caught.value)


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["abc", "0", "-1", "1.5", "65536", "99999"])
def test_bad_port_is_a_config_error(tmp_path: Path, port: str) -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings({"port": port}, environ={}, cwd=tmp_path)


def test_bad_port_from_env_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ALLEY_PORT"):
        load_settings(environ={"ALLEY_PORT": "http"}, cwd=tmp_path)


def test_bad_port_from_config_is_a_config_error(tmp_path: Path) -> None:
    pyproject = write_config(tmp_path, 'port = "http"')
    with pytest.raises(ConfigError, match=f"from \\[tool.alley\\] in {pyproject}"):
        load_settings(environ={}, cwd=tmp_path)


@pytest.mark.parametrize("port", ["1", "27018", "65535", 27019])
def test_good_ports(tmp_path: Path, port) -> None:
    assert load_settings({"port": port}, environ={}, cwd=tmp_path).port == int(port)


@pytest.mark.parametrize("timeout", ["abc", "0", "-2", "nan"])
def test_bad_timeout_is_a_config_error(tmp_path: Path, timeout: str) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        load_settings(environ={"ALLEY_TIMEOUT": timeout}, cwd=tmp_path)


@pytest.mark.parametrize(("timeout", "expected"), [("0.5", 0.5), ("30", 30.0), (2, 2.0)])
def test_good_timeouts(tmp_path: Path, timeout, expected: float) -> None:
    assert load_settings({"timeout": timeout}, environ={}, cwd=tmp_path).timeout == expected


# --- disable_plugins ----------------------------------------------------------------------


def test_disable_plugins_is_additive_across_layers(tmp_path: Path) -> None:
    write_config(tmp_path, 'disable_plugins = ["from-config", "shared"]')
    settings = load_settings(
        {"disable_plugins": ("from-cli", "shared")},
        environ={"ALLEY_DISABLE_PLUGINS": "from-env, shared,,"},
        cwd=tmp_path,
    )
    assert settings.disable_plugins == ("from-config", "shared", "from-env", "from-cli")


def test_disable_plugins_accepts_a_comma_separated_string_in_config(tmp_path: Path) -> None:
    write_config(tmp_path, 'disable_plugins = "a, b"')
    assert load_settings(environ={}, cwd=tmp_path).disable_plugins == ("a", "b")


@given(
    st.lists(st.sampled_from("abcde"), max_size=4),
    st.lists(st.sampled_from("cdefg"), max_size=4),
    st.lists(st.sampled_from("efghi"), max_size=4),
)
def test_disable_plugins_is_the_union_of_every_layer(config, env, cli) -> None:
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        write_config(cwd, f"disable_plugins = {list(config)!r}".replace("'", '"'))
        settings = load_settings(
            {"disable_plugins": tuple(cli)},
            environ={"ALLEY_DISABLE_PLUGINS": ",".join(env)},
            cwd=cwd,
        )
    assert set(settings.disable_plugins) == {*config, *env, *cli}
    assert len(settings.disable_plugins) == len(set(settings.disable_plugins))


def test_host_on_the_command_line_beats_a_url_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        {"host": "db.internal", "port": 27018},
        environ={"ALLEY_URL": "mongodb://elsewhere:1/appdb"},
        cwd=tmp_path,
    )
    connection = settings.connection()
    assert (connection.host, connection.port) == ("db.internal", 27018)
    assert connection.url == "mongodb://db.internal:27018/"
    assert connection.database == "appdb"  # the rest of the URL is kept


def test_url_from_the_environment_beats_host_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alley]\nhost = "cfg"\ndatabase = "cfgdb"\n')
    settings = load_settings({}, environ={"ALLEY_URL": "mongodb://envhost:1/envdb"}, cwd=tmp_path)
    assert settings.url == "mongodb://envhost:1/envdb"
    assert settings.connection().where == "envhost:1"
    assert settings.database_name == "envdb"


def test_database_on_the_command_line_beats_the_url_database(tmp_path: Path) -> None:
    settings = load_settings(
        {"database": "clidb"}, environ={"ALLEY_URL": "mongodb://h:1/envdb"}, cwd=tmp_path
    )
    assert settings.database_name == "clidb"


def test_command_line_options_for_plugins_override_the_config_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alley]\nsource = "a"\nkeep = 1\n')
    settings = load_settings({"options": ("source=b", "extra=x=y")}, environ={}, cwd=tmp_path)
    assert settings.options == {"source": "b", "keep": 1, "extra": "x=y"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_settings({"options": ("novalue",)}, environ={}, cwd=tmp_path)


def test_which_installed_plugins_load(tmp_path: Path) -> None:
    assert load_settings({}, environ={}, cwd=tmp_path).load_plugins is None  # all of them
    assert load_settings({}, environ={"ALLEY_LOAD_PLUGINS": ""}, cwd=tmp_path).load_plugins == ()
    (tmp_path / "pyproject.toml").write_text('[tool.alley]\nload_plugins = ["a", "b"]\n')
    assert load_settings({}, environ={}, cwd=tmp_path).load_plugins == ("a", "b")
    from_env = load_settings({}, environ={"ALLEY_LOAD_PLUGINS": "c"}, cwd=tmp_path)
    assert from_env.load_plugins == ("c",)
    from_cli = load_settings(
        {"load_plugins": ()}, environ={"ALLEY_LOAD_PLUGINS": "c"}, cwd=tmp_path
    )
    assert from_cli.load_plugins == ()


# --- sys_path: what migrations can import ---------------------------------------------


def test_sys_path_defaults_to_the_project_root(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert load_settings(environ={}, cwd=deep).sys_path == (deep.resolve(),)  # no pyproject
    with_path = load_settings({"path": str(tmp_path)}, environ={}, cwd=deep)
    assert with_path.sys_path == (tmp_path.resolve(),)  # PATH
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    assert load_settings(environ={}, cwd=deep).sys_path == (tmp_path.resolve(),)


def test_sys_path_from_config_is_relative_to_its_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alley]\nsys_path = ["src", "."]\n')
    inner = tmp_path / "src"
    inner.mkdir()
    settings = load_settings(environ={}, cwd=inner)
    assert settings.sys_path == (inner.resolve(), tmp_path.resolve())


def test_sys_path_from_the_environment_wins_and_empty_means_none(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alley]\nsys_path = ["src"]\n')
    environ = {"ALLEY_SYS_PATH": f"lib{os.pathsep}/opt/app"}
    assert load_settings(environ=environ, cwd=tmp_path).sys_path == (
        (tmp_path / "lib").resolve(),
        Path("/opt/app"),
    )
    assert load_settings(environ={"ALLEY_SYS_PATH": ""}, cwd=tmp_path).sys_path == ()


def test_sys_path_that_is_not_a_list_of_folders_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.alley]\nsys_path = [1]\n")
    with pytest.raises(ConfigError, match=r"sys_path .* must be a list of folders"):
        load_settings(environ={}, cwd=tmp_path)


# --- precedence, property by property: cli > env > [tool.alley] > defaults ---------------
#
# A source is a level (cli, env, config) and a form: the setting of its own ("own") or a
# part of a URL given at that level ("url"). Each property is taken from the highest
# level that sets it; on a tie the setting of its own beats the URL's part.

LEVELS = ("cli", "env", "config")
SOURCES = [(level, form) for level in LEVELS for form in ("own", "url")]
PAIRS = [
    (a, b)
    for a in SOURCES
    for b in SOURCES
    if a < b and not (a[1] == b[1] == "url" and a[0] == b[0])  # one URL per level
]
ENV_NAMES = {
    "host": "ALLEY_HOST",
    "port": "ALLEY_PORT",
    "database": "ALLEY_DATABASE",
    "username": "ALLEY_USERNAME",
    "password": "ALLEY_PASSWORD",
    "auth_source": "ALLEY_AUTH_SOURCE",
}
PORTS = {"cli": 1001, "env": 2002, "config": 3003}
URL_PORTS = {"cli": 4001, "env": 4002, "config": 4003}


def own_value(prop: str, level: str) -> str | int:
    return PORTS[level] if prop == "port" else f"{level}-{prop.replace('_', '-')}"


def url_of(prop: str, level: str) -> str:
    """A URL whose ``prop`` part says which level it comes from."""
    return {
        "host": f"mongodb://{level}-urlhost/",
        "port": f"mongodb://urlhost:{URL_PORTS[level]}/",
        "database": f"mongodb://h/{level}_urldb",
        "username": f"mongodb://{level}-urluser:pw@h/",
        "password": f"mongodb://u:{level}-urlpw@h/",
        "auth_source": f"mongodb://h/?authSource={level}-urlauth",
    }[prop]


def url_value(prop: str, level: str) -> str | int:
    return {
        "host": f"{level}-urlhost",
        "port": URL_PORTS[level],
        "database": f"{level}_urldb",
        "username": f"{level}-urluser",
        "password": f"{level}-urlpw",
        "auth_source": f"{level}-urlauth",
    }[prop]


def settings_from(prop: str, sources: list[tuple[str, str]], cwd: Path) -> Settings:
    cli: dict[str, object] = {}
    environ: dict[str, str] = {}
    config: list[str] = []
    for level, form in sources:
        key, value = (
            ("url", url_of(prop, level)) if form == "url" else (prop, own_value(prop, level))
        )
        if level == "cli":
            cli[key] = str(value)
        elif level == "env":
            environ["ALLEY_URL" if key == "url" else ENV_NAMES[prop]] = str(value)
        else:
            config.append(f"{key} = {value!r}".replace("'", '"'))
    if config:
        write_config(cwd, "\n".join(config))
    return load_settings(cli, environ=environ, cwd=cwd)


def expected(prop: str, sources: list[tuple[str, str]]) -> object:
    level, form = max(sources, key=lambda s: (-LEVELS.index(s[0]), s[1] == "own"))
    return own_value(prop, level) if form == "own" else url_value(prop, level)


def check_precedence(prop: str, sources: list[tuple[str, str]], cwd: Path) -> None:
    connection = settings_from(prop, sources, cwd).connection()
    assert getattr(connection, prop) == expected(prop, sources), sources


@pytest.mark.parametrize("sources", [[s] for s in SOURCES] + [list(p) for p in PAIRS], ids=str)
def test_precedence_of_host(tmp_path: Path, sources: list[tuple[str, str]]) -> None:
    check_precedence("host", sources, tmp_path)


@pytest.mark.parametrize("sources", [[s] for s in SOURCES] + [list(p) for p in PAIRS], ids=str)
def test_precedence_of_port(tmp_path: Path, sources: list[tuple[str, str]]) -> None:
    check_precedence("port", sources, tmp_path)


@pytest.mark.parametrize("sources", [[s] for s in SOURCES] + [list(p) for p in PAIRS], ids=str)
def test_precedence_of_database(tmp_path: Path, sources: list[tuple[str, str]]) -> None:
    check_precedence("database", sources, tmp_path)


@pytest.mark.parametrize("sources", [[s] for s in SOURCES] + [list(p) for p in PAIRS], ids=str)
def test_precedence_of_username(tmp_path: Path, sources: list[tuple[str, str]]) -> None:
    check_precedence("username", sources, tmp_path)


@pytest.mark.parametrize("sources", [[s] for s in SOURCES] + [list(p) for p in PAIRS], ids=str)
def test_precedence_of_password(tmp_path: Path, sources: list[tuple[str, str]]) -> None:
    check_precedence("password", sources, tmp_path)


@pytest.mark.parametrize("sources", [[s] for s in SOURCES] + [list(p) for p in PAIRS], ids=str)
def test_precedence_of_auth_source(tmp_path: Path, sources: list[tuple[str, str]]) -> None:
    check_precedence("auth_source", sources, tmp_path)


# The settings that are never part of a URL: each level over the ones below it.
LEVEL_SETS = [
    ("cli",), ("env",), ("config",), ("cli", "env"), ("cli", "config"), ("env", "config"),
    ("cli", "env", "config"),
]  # fmt: skip
NUMBERS = {"cli": "1.5", "env": "2.5", "config": 3.5}
NUMBER_ENV = {
    "timeout": "ALLEY_TIMEOUT",
    "lease": "ALLEY_LEASE",
    "lock_timeout": "ALLEY_LOCK_TIMEOUT",
}


@pytest.mark.parametrize("prop", ["timeout", "lease", "lock_timeout"])
@pytest.mark.parametrize("levels", [*LEVEL_SETS, ()], ids=str)
def test_precedence_of_numbers(tmp_path: Path, prop: str, levels: tuple[str, ...]) -> None:
    cli = {prop: NUMBERS["cli"]} if "cli" in levels else {}
    environ = {NUMBER_ENV[prop]: NUMBERS["env"]} if "env" in levels else {}
    if "config" in levels:
        write_config(tmp_path, f"{prop} = {NUMBERS['config']}")
    settings = load_settings(cli, environ=environ, cwd=tmp_path)
    default = {"timeout": 5.0, "lease": 30.0, "lock_timeout": 60.0}[prop]
    assert getattr(settings, prop) == (float(NUMBERS[levels[0]]) if levels else default)


@pytest.mark.parametrize("levels", LEVEL_SETS, ids=str)
def test_precedence_of_the_url_itself(tmp_path: Path, levels: tuple[str, ...]) -> None:
    urls = {level: f"mongodb://{level}-host:1/{level}_db?replicaSet={level}" for level in LEVELS}
    cli = {"url": urls["cli"]} if "cli" in levels else {}
    environ = {"MONGODB_URI": urls["env"]} if "env" in levels else {}
    if "config" in levels:
        write_config(tmp_path, f'url = "{urls["config"]}"')
    connection = load_settings(cli, environ=environ, cwd=tmp_path).connection()
    top = levels[0]
    assert (connection.where, connection.database) == (f"{top}-host:1", f"{top}_db")
    assert connection.url == f"mongodb://{top}-host:1/?replicaSet={top}"


@pytest.mark.parametrize("levels", LEVEL_SETS, ids=str)
def test_precedence_of_path(tmp_path: Path, levels: tuple[str, ...]) -> None:
    for level in LEVELS:
        (tmp_path / level).mkdir()
    cli = {"path": "cli"} if "cli" in levels else {}
    environ = {"ALLEY_PATH": "env"} if "env" in levels else {}
    if "config" in levels:
        write_config(tmp_path, 'path = "config"')
    settings = load_settings(cli, environ=environ, cwd=tmp_path)
    assert settings.path == (tmp_path / levels[0]).resolve()


def test_nothing_set_gives_the_defaults_and_no_database(tmp_path: Path) -> None:
    connection = load_settings(environ={}, cwd=tmp_path).connection()
    assert (connection.host, connection.port, connection.url) == ("localhost", 27017, None)
    assert connection.database is None  # the connection plugin then uses "test", warning
    assert (connection.username, connection.password, connection.auth_source) == (None,) * 3


# --- a URL is a bundle: what a higher -h/-p keeps, and what it cannot replace ------------


def test_port_on_the_command_line_keeps_the_rest_of_an_environment_url(tmp_path: Path) -> None:
    url = f"mongodb://alice:{SECRET}@db.example:27017/shop?replicaSet=rs0&tls=true&authSource=admin"
    connection = load_settings(
        {"port": "27018"}, environ={"ALLEY_URL": url}, cwd=tmp_path
    ).connection()
    assert connection.where == "db.example:27018"
    assert connection.database == "shop"
    assert (connection.username, connection.password, connection.auth_source) == (
        "alice",
        SECRET,
        "admin",
    )
    assert connection.url == "mongodb://db.example:27018/?replicaSet=rs0&tls=true"
    assert SECRET not in connection.url


def test_host_over_a_replica_set_url_keeps_its_options(tmp_path: Path) -> None:
    url = "mongodb://h1:1,h2:2/app?replicaSet=rs0"
    settings = load_settings({"host": "h9"}, environ={"ALLEY_URL": url}, cwd=tmp_path)
    connection = settings.connection()
    assert (connection.url, connection.database) == ("mongodb://h9:27017/?replicaSet=rs0", "app")


@pytest.mark.parametrize(
    "url", ["mongodb://h1:1,h2:2/app", "mongodb+srv://cluster.example.net/app"], ids=str
)
def test_port_alone_over_several_servers_is_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"port 27018 \(from the command line\) replaces"):
        load_settings({"port": "27018"}, environ={"ALLEY_URL": url}, cwd=tmp_path)


def test_host_over_an_srv_url_connects_with_tls_as_the_srv_url_implied(tmp_path: Path) -> None:
    url = "mongodb+srv://cluster.example.net/app?srvMaxHosts=2&retryWrites=true"
    connection = load_settings({"host": "h"}, environ={"ALLEY_URL": url}, cwd=tmp_path).connection()
    assert connection.url == "mongodb://h:27017/?retryWrites=true&tls=true"


def test_a_url_from_a_lower_level_fills_what_the_higher_levels_leave(tmp_path: Path) -> None:
    write_config(tmp_path, 'url = "mongodb://cfg-user:cfg-pw@cfg-host:7/cfg_db?authSource=cfg"')
    settings = load_settings(
        {"database": "cli_db"}, environ={"ALLEY_PASSWORD": "env-pw"}, cwd=tmp_path
    )
    connection = settings.connection()
    assert (connection.where, connection.database) == ("cfg-host:7", "cli_db")
    assert (connection.username, connection.password, connection.auth_source) == (
        "cfg-user",
        "env-pw",
        "cfg",
    )


def test_config_database_loses_to_an_environment_url_database(tmp_path: Path) -> None:
    write_config(tmp_path, 'database = "cfg_db"')
    settings = load_settings(environ={"ALLEY_URL": "mongodb://h/env_db"}, cwd=tmp_path)
    assert settings.database_name == "env_db"
    assert settings.database == "cfg_db"  # the setting of its own, before precedence


# --- [tool.alley] of PATH's project; the project's root ----------------------------------


def test_config_is_read_from_paths_project_not_the_current_folders(tmp_path: Path) -> None:
    here, other = tmp_path / "here", tmp_path / "other"
    (other / "app").mkdir(parents=True)
    here.mkdir()
    write_config(here, 'database = "here_db"')
    write_config(other, 'database = "other_db"\nsys_path = ["app"]')
    from_cli = load_settings({"path": "../other/app"}, environ={}, cwd=here)
    from_env = load_settings(environ={"ALLEY_PATH": "../other"}, cwd=here)
    assert from_cli.database == from_env.database == "other_db"
    assert from_cli.sys_path == ((other / "app").resolve(),)
    assert load_settings(environ={}, cwd=here).database == "here_db"


def test_path_in_the_config_is_not_a_given_path(tmp_path: Path) -> None:
    write_config(tmp_path, 'path = "app"\ndatabase = "d"')
    (tmp_path / "app").mkdir()
    write_config(tmp_path / "app", 'database = "inner"')  # not read: PATH came from the file
    settings = load_settings(environ={}, cwd=tmp_path)
    assert (settings.path, settings.database) == ((tmp_path / "app").resolve(), "d")


@pytest.mark.parametrize("marker", ["setup.cfg", ".git"])
def test_the_search_for_pyproject_stops_at_the_projects_root(tmp_path: Path, marker: str) -> None:
    write_config(tmp_path, 'database = "shared_parent"')
    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    (project / marker).mkdir() if marker == ".git" else (project / marker).write_text("")
    assert find_pyproject(deep) is None
    assert load_settings(environ={}, cwd=deep).database is None
    assert project_root(deep) == project.resolve()
    assert search_folders(deep) == (deep.resolve(), (project / "src").resolve(), project.resolve())


def test_outside_any_project_only_the_current_folder_is_searched(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert project_root(deep) is None, "the temporary folder must lie outside any project"
    assert search_folders(deep) == (deep.resolve(),)


# --- errors: one message, exit 3, never a password ---------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mongodb://[::1", "IPv6"),
        (f"mongodb://u:{SECRET}@h:99999/db", "Port"),
        (f"mongodb://u:{SECRET}@h/a b", "Bad database name"),
        (
            f"mongodb://u:{SECRET}@h/db?tlsInsecure=true&tlsAllowInvalidCertificates=true",
            "tlsInsecure",
        ),
        ("mongodb+srv://c.example.net:27017/db", "mongodb+srv"),
        ("mongodb+srv://a.example.net,b.example.net/db", "mongodb+srv"),
    ],
)
def test_malformed_url_is_a_config_error(tmp_path: Path, url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid URL ") as caught:
        load_settings({"url": url}, environ={}, cwd=tmp_path)
    assert reason in str(caught.value)
    assert "(from the command line)" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("port", "true", "an integer"),
        ("port", "27017.5", "an integer"),
        ("port", '"27017"', "an integer"),
        ("port", "[1]", "an integer"),
        ("timeout", "true", "a number"),
        ("timeout", '"5"', "a number"),
        ("lease", "false", "a number"),
        ("lock_timeout", '"60"', "a number"),
        ("host", "1", "a string"),
        ("database", "true", "a string"),
        ("url", "1", "a string"),
        ("username", "[]", "a string"),
        ("auth_source", "1.5", "a string"),
        ("path", "1", "a string"),
        ("disable_plugins", "1", "a list of plugin names"),
        ("load_plugins", "[1]", "a list of plugin names"),
    ],
)
def test_config_value_of_the_wrong_type_names_the_file(
    tmp_path: Path, key: str, value: str, what: str
) -> None:
    pyproject = write_config(tmp_path, f"{key} = {value}")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"invalid {key} ")
    assert f"[tool.alley] in {pyproject}" in message
    assert what in message


@pytest.mark.parametrize(("key", "value"), [("port", "27018"), ("timeout", "2"), ("lease", "2.5")])
def test_config_numbers_of_the_right_type(tmp_path: Path, key: str, value: str) -> None:
    write_config(tmp_path, f"{key} = {value}")
    assert getattr(load_settings(environ={}, cwd=tmp_path), key) == float(value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("port", "abc"), ("port", "1.5"), ("timeout", "x"), ("lease", "0"), ("lock_timeout", "-1")],
)
def test_bad_numbers_on_the_command_line_say_so(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^invalid {key} '{value}' \(from the command line\)"):
        load_settings({key: value}, environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("cli", "has space"),
        ("cli", "a/b"),
        ("cli", "a.b"),
        ("cli", 'a"b'),
        ("cli", "a$b"),
        ("cli", "a\\b"),
        ("cli", ""),
        ("cli", "x" * 64),
        ("env", "a.b"),
        ("config", "a b"),
        ("config", ""),
        ("url", "x" * 64),
    ],
)
def test_database_names_mongodb_refuses_are_config_errors(
    tmp_path: Path, source: str, name: str
) -> None:
    cli = {"database": name} if source == "cli" else {}
    environ = {"ALLEY_DATABASE": name} if source == "env" else {}
    if source == "url":
        environ = {"ALLEY_URL": f"mongodb://h/{name}"}
    if source == "config":
        write_config(tmp_path, f'database = "{name}"')
    with pytest.raises(ConfigError, match=r"^invalid database name "):
        load_settings(cli, environ=environ, cwd=tmp_path)


@pytest.mark.parametrize("name", ["shop", "my-app_2", "x" * 63, "ünïcode"])
def test_database_names_mongodb_accepts(tmp_path: Path, name: str) -> None:
    assert load_settings({"database": name}, environ={}, cwd=tmp_path).database_name == name


def test_an_empty_database_in_the_environment_is_unset(tmp_path: Path) -> None:
    assert load_settings(environ={"ALLEY_DATABASE": ""}, cwd=tmp_path).database_name is None


# --- many databases ----------------------------------------------------------------------


def test_databases_from_each_source(tmp_path: Path) -> None:
    write_config(tmp_path, 'databases = ["tenant_*", "shop"]\njobs = 2')
    from_config = load_settings(environ={}, cwd=tmp_path)
    assert from_config.databases == ("tenant_*", "shop")
    assert from_config.jobs == 2
    assert from_config.many_databases
    from_env = load_settings(
        environ={"ALLEY_DATABASES": " a, b ,,a", "ALLEY_JOBS": "8"}, cwd=tmp_path
    )
    assert (from_env.databases, from_env.jobs) == (("a", "b"), 8)
    from_cli = load_settings({"databases": "@tenants", "jobs": "3"}, environ={}, cwd=tmp_path)
    assert (from_cli.databases, from_cli.jobs) == (("@tenants",), 3)


def test_one_database_named_higher_wins_and_at_the_same_level_is_an_error(tmp_path: Path) -> None:
    write_config(tmp_path, 'databases = ["tenant_*"]')
    one = load_settings({"database": "tenant_03"}, environ={}, cwd=tmp_path)
    assert not one.many_databases
    assert one.database_name == "tenant_03"
    with pytest.raises(ConfigError, match="both database and databases are set"):
        load_settings({"database": "a", "databases": "b,c"}, environ={}, cwd=tmp_path)
    # A URL's database does not compete: it is often there for the credentials.
    url = load_settings(
        {"databases": "a,b"}, environ={"ALLEY_URL": "mongodb://h/creds"}, cwd=tmp_path
    )
    assert url.databases == ("a", "b")
    assert url.for_database("b").database_name == "b"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a/b", "invalid database name 'a/b'"),
        (",", "names no database"),
    ],
)
def test_bad_databases_are_config_errors(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"databases": value}, environ={}, cwd=tmp_path)


def test_databases_and_jobs_of_the_wrong_toml_type(tmp_path: Path) -> None:
    write_config(tmp_path, "databases = 3")
    with pytest.raises(ConfigError, match="it must be a list of names"):
        load_settings(environ={}, cwd=tmp_path)
    write_config(tmp_path, 'jobs = "many"')
    with pytest.raises(ConfigError, match="jobs"):
        load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="invalid jobs"):
        load_settings({"jobs": "0"}, environ={}, cwd=tmp_path)
