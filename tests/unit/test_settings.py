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
    redact_url,
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
    with pytest.raises(ConfigError, match="config:") as caught:
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
    write_config(tmp_path, 'port = "http"')
    with pytest.raises(ConfigError, match="config:"):
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
    assert settings.url is None
    assert (settings.host, settings.port) == ("db.internal", 27018)


def test_url_from_the_environment_beats_host_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alley]\nhost = "cfg"\ndatabase = "cfgdb"\n')
    settings = load_settings({}, environ={"ALLEY_URL": "mongodb://envhost:1/envdb"}, cwd=tmp_path)
    assert settings.url == "mongodb://envhost:1/envdb"
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
