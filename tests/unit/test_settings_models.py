"""The ``models`` setting: module paths of the MongoEngine models, from the command
line (the API's ``models=``), the environment (``ALLEY_MODELS``) or ``[tool.alley]``."""

from __future__ import annotations

from pathlib import Path

import pytest

from alley.errors import ConfigError
from alley.settings import load_settings, parse_models


def project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f"[tool.alley]\n{table}\n")
    return tmp_path


def test_unset_is_empty(tmp_path: Path) -> None:
    assert load_settings(environ={}, cwd=project(tmp_path, "")).models == ()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('models = "shop.models"', ("shop.models",)),
        ('models = ["shop.models", "billing.models"]', ("shop.models", "billing.models")),
        ('models = "a.models, b"', ("a.models", "b")),
        ('models = ["a", "a"]', ("a",)),
    ],
)
def test_from_the_project(tmp_path: Path, table: str, expected: tuple[str, ...]) -> None:
    settings = load_settings(environ={}, cwd=project(tmp_path, table))
    assert settings.models == expected
    assert settings.origins["models"].startswith("config:")


def test_environment_over_the_project_and_the_command_line_over_both(tmp_path: Path) -> None:
    cwd = project(tmp_path, 'models = "from_file"')
    environ = {"ALLEY_MODELS": "from_env.models,other"}
    assert load_settings(environ=environ, cwd=cwd).models == ("from_env.models", "other")
    assert load_settings({"models": "from_cli"}, environ=environ, cwd=cwd).models == ("from_cli",)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("models = 3", "invalid models 3 (from [tool.alley] in "),
        ("models = [1]", "invalid models [1] (from [tool.alley] in "),
        ("models = true", "invalid models True (from [tool.alley] in "),
        ('models = "shop-app.models"', "invalid models 'shop-app.models' (from [tool.alley] in "),
        ('models = ["ok", "1bad"]', "invalid models '1bad' (from [tool.alley] in "),
    ],
)
def test_a_wrong_value_in_the_project_is_one_line(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, cwd=project(tmp_path, table))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == 3


def test_a_wrong_value_says_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid models 'a/b' \(from ALLEY_MODELS\)"):
        load_settings(environ={"ALLEY_MODELS": "a/b"}, cwd=project(tmp_path, ""))
    with pytest.raises(ConfigError, match=r"invalid models 'a b' \(from the command line\)"):
        parse_models("a b")
    assert parse_models(None) == ()
    assert parse_models(" x.y , z ") == ("x.y", "z")
