"""How the ``alley`` command line is read: connection options, optional PATH, command.

    alley [CONNECTION OPTIONS] [PATH] COMMAND [ARGS] [OPTIONS]

The commands that need a server are replaced by recorders of what the API was called
with, so these tests run without one; ``create`` and the error paths run for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

import alley.api
import alley.cli
from alley.cli import AlleyGroup, main
from alley.errors import ConfigError, ExitCode
from alley.model import Direction, RunReport, StatusReport
from alley.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("ALLEY_") or name == "MONGODB_URI":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app").mkdir()
    return tmp_path


class Calls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Settings, tuple[Any, ...], dict[str, Any]]] = []

    @property
    def only(self) -> tuple[str, Settings, tuple[Any, ...], dict[str, Any]]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Replace the API functions that need a server by recorders."""
    recorded = Calls()

    def status(settings: Settings, *args: Any, **kwargs: Any) -> StatusReport:
        recorded.calls.append(("status", settings, args, kwargs))
        return StatusReport(())

    def up(settings: Settings, *args: Any, **kwargs: Any) -> RunReport:
        recorded.calls.append(("up", settings, args, kwargs))
        return RunReport(Direction.UP, ())

    def down(settings: Settings, *args: Any, **kwargs: Any) -> RunReport:
        recorded.calls.append(("down", settings, args, kwargs))
        return RunReport(Direction.DOWN, ())

    monkeypatch.setattr(alley.api, "status", status)
    monkeypatch.setattr(alley.api, "up", up)
    monkeypatch.setattr(alley.api, "down", down)
    return recorded


# args, command, PATH (relative to cwd) or None, settings expected, positional args of the API
MATRIX: list[tuple[list[str], str, str | None, dict[str, Any], tuple[Any, ...]]] = [
    (["status"], "status", None, {}, ()),
    (["./app", "status"], "status", "app", {}, ()),
    (["app", "status"], "status", "app", {}, ()),
    (["--path", "app", "status"], "status", "app", {}, ()),
    (
        ["-db", "x", "-h", "h", "-p", "1", "./app", "up", "3", "--fake"],
        "up",
        "app",
        {"database": "x", "host": "h", "port": 1},
        ("3",),
    ),
    (
        ["--url", "mongodb://u:p@h/db", "status"],
        "status",
        None,
        {"url": "mongodb://u:p@h/db", "database_name": "db", "password": None},
        (),
    ),
    (
        ["--url=mongodb+srv://c.example.net/other", "app", "status"],
        "status",
        "app",
        {"database_name": "other"},
        (),
    ),
    (["-db", "status", "status"], "status", None, {"database": "status"}, ()),
    (["-db", "up", "app", "up"], "up", "app", {"database": "up"}, (None,)),
    (["--database", "down", "down", "2"], "down", None, {"database": "down"}, ("2",)),
    (["-h", "status", "status"], "status", None, {"host": "status"}, ()),
    (
        ["-u", "bob", "-w", "pw", "-a", "admin", "app", "status"],
        "status",
        "app",
        {"username": "bob", "password": "pw", "auth_source": "admin"},
        (),
    ),
    (["--timeout", "2.5", "status"], "status", None, {"timeout": 2.5}, ()),
    (
        ["--disable-plugin", "a", "--disable-plugin", "b", "app", "status"],
        "status",
        "app",
        {"disable_plugins": ("a", "b")},
        (),
    ),
    (["-v", "status"], "status", None, {}, ()),
    (["status", "-v"], "status", None, {}, ()),
    (["app", "status", "--verbose"], "status", "app", {}, ()),
    (["-v", "app", "up"], "up", "app", {}, (None,)),
    (["app", "down", "0002_x.py"], "down", "app", {}, ("0002_x.py",)),
]


@pytest.mark.parametrize(
    ("args", "command", "path", "expected", "positional"),
    MATRIX,
    ids=[" ".join(case[0]) for case in MATRIX],
)
def test_path_and_command_are_recognised(
    api_calls: Calls,
    clean_environment: Path,
    args: list[str],
    command: str,
    path: str | None,
    expected: dict[str, Any],
    positional: tuple[Any, ...],
) -> None:
    assert main(list(args)) == ExitCode.OK
    called, settings, called_args, _ = api_calls.only
    assert called == command
    assert settings.path == (None if path is None else (clean_environment / path).resolve())
    for key, value in expected.items():
        assert getattr(settings, key) == value, key
    assert called_args == positional


def test_up_options_reach_the_api(api_calls: Calls) -> None:
    assert main(["app", "up", "3", "--fake", "--allow-out-of-order"]) == 0
    _, _, args, kwargs = api_calls.only
    assert args == ("3",)
    assert kwargs["fake"] is True
    assert kwargs["allow_out_of_order"] is True


def test_up_without_options(api_calls: Calls) -> None:
    assert main(["up"]) == 0
    _, _, args, kwargs = api_calls.only
    assert args == (None,)
    assert kwargs["fake"] is False
    assert kwargs["allow_out_of_order"] is False


@pytest.mark.parametrize(
    ("args", "params", "rest"),
    [
        (["status"], {"path": None}, ["status"]),
        (["./app", "status"], {"path": "./app"}, ["status"]),
        (
            ["-db", "x", "-h", "h", "-p", "1", "./app", "up", "3", "--fake"],
            {"database": "x", "host": "h", "port": "1", "path": "./app"},  # checked by settings
            ["up", "3", "--fake"],
        ),
        (["-db", "status", "status"], {"database": "status", "path": None}, ["status"]),
        (["app", "create", "name"], {"path": "app"}, ["create", "name"]),
        (["-v", "status"], {"verbose": True, "path": None}, ["status"]),
        (["status", "-v"], {"verbose": True, "path": None}, ["status"]),
        (["status"], {"verbose": False}, ["status"]),
    ],
)
def test_group_parse_args(args: list[str], params: dict[str, Any], rest: list[str]) -> None:
    command = typer.main.get_command(alley.cli.app)
    assert isinstance(command, AlleyGroup)
    ctx = command.make_context("alley", list(args))
    for key, value in params.items():
        assert ctx.params[key] == value, key
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
    assert [*protected, *ctx.args] == rest


# --- create: needs no server --------------------------------------------------------------


def test_create_writes_the_file_in_cwd(clean_environment: Path, capsys) -> None:
    assert main(["create", "Add Users"]) == ExitCode.OK
    written = clean_environment / "migrations" / "0001_add_users.py"
    assert written.is_file()
    source = written.read_text(encoding="utf-8")
    assert "def up(db):" in source
    assert "def down(db):" in source
    assert str(written) in capsys.readouterr().out


def test_create_uses_the_next_id(clean_environment: Path) -> None:
    folder = clean_environment / "migrations"
    folder.mkdir()
    (folder / "0007_existing.py").write_text("def up(db): pass\n", encoding="utf-8")
    assert main(["create", "next"]) == 0
    assert (folder / "0008_next.py").is_file()
    assert main(["create", "next-one"]) == 0
    assert (folder / "0009_next_one.py").is_file()


def test_create_under_path(clean_environment: Path) -> None:
    assert main(["app", "create", "name"]) == 0
    assert (clean_environment / "app" / "migrations" / "0001_name.py").is_file()
    assert not (clean_environment / "migrations").exists()


def test_create_finds_migrations_in_a_parent(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_environment / ".git").mkdir()  # the project's root: the search stops here
    (clean_environment / "migrations").mkdir()
    deep = clean_environment / "app" / "pkg"
    deep.mkdir()
    monkeypatch.chdir(deep)
    assert main(["create", "x"]) == 0
    assert (clean_environment / "migrations" / "0001_x.py").is_file()


def test_create_does_not_use_a_migrations_folder_above_the_project_root(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_environment / "migrations").mkdir()  # a stray one, in a shared parent folder
    project = clean_environment / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "pkg")
    assert main(["create", "x"]) == 0
    assert not list((clean_environment / "migrations").iterdir())
    assert (project / "pkg" / "migrations" / "0001_x.py").is_file()


def test_create_with_an_unusable_name_is_a_usage_error(clean_environment: Path, capsys) -> None:
    assert main(["create", "!!!"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("alley: error: invalid migration name")
    assert not (clean_environment / "migrations").exists()


def test_create_does_not_overwrite(clean_environment: Path, monkeypatch, capsys) -> None:
    assert main(["create", "x"]) == 0
    monkeypatch.setattr("alley.planning.next_id", lambda ids: 1)
    assert main(["create", "x"]) == ExitCode.CONFIG
    assert "already exists" in capsys.readouterr().err


# --- help and errors ----------------------------------------------------------------------


def test_help_exits_0_and_mentions_exit_codes(capsys) -> None:
    assert main(["--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "Exit codes" in out
    assert "--host" in out
    assert "-db" in out


def test_command_help(capsys) -> None:
    assert main(["up", "--help"]) == 0
    assert "--fake" in capsys.readouterr().out


def test_no_arguments_shows_help_and_is_a_usage_error(capsys) -> None:
    assert main([]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert "Usage" in captured.out + captured.err


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("alley: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "args", [["statsu"], ["app", "frobnicate"], ["-db", "x", "frobnicate", "now"]]
)
def test_unknown_command_is_a_one_line_usage_error(args: list[str], capsys) -> None:
    assert main(args) == ExitCode.USAGE
    captured = capsys.readouterr()
    one_line_error(captured.err)
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "word"), [(["statsu"], "statsu"), (["app", "frobnicate"], "frobnicate")]
)
def test_unknown_command_is_named_in_the_error(args: list[str], word: str, capsys) -> None:
    main(args)
    assert word in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--bogus"],
        ["down", "--steps", "0"],
        ["down", "--steps", "-2"],
        ["down", "--steps", "x"],
        ["down", "2", "--steps", "1"],
        ["down", "2", "--to", "2"],
        ["down", "--to", "1", "--steps", "1"],
        ["completion", "tcsh"],
        ["completion"],
    ],
)
def test_bad_arguments_are_a_one_line_usage_error(args: list[str], capsys) -> None:
    assert main(args) == ExitCode.USAGE
    one_line_error(capsys.readouterr().err)


def test_a_port_that_is_not_a_number_is_exit_3(capsys) -> None:
    assert main(["-p", "port", "status"]) == ExitCode.CONFIG  # settings check numbers
    one_line_error(capsys.readouterr().err)


def test_path_that_does_not_exist_is_exit_3(capsys) -> None:
    assert main(["./missing", "status"]) == ExitCode.CONFIG == 3
    line = one_line_error(capsys.readouterr().err)
    assert "missing" in line
    assert "does not exist" in line


def test_path_that_is_a_file_is_exit_3(clean_environment: Path, capsys) -> None:
    (clean_environment / "afile").write_text("x", encoding="utf-8")
    assert main(["afile", "create", "x"]) == ExitCode.CONFIG
    assert "not a directory" in one_line_error(capsys.readouterr().err)
    assert not (clean_environment / "afile" / "migrations").exists()


def test_bad_url_is_exit_3_without_the_password(capsys) -> None:
    assert main(["--url", "http://u:hunter2@h/db", "status"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    one_line_error(err)
    assert "hunter2" not in err


@pytest.mark.parametrize("args", [["app", "status", "-v"], ["-v", "app", "status"]])
def test_verbose_anywhere_shows_the_traceback(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def broken(settings: Settings, **kwargs: Any) -> None:
        raise ConfigError("broken on purpose")

    monkeypatch.setattr(alley.api, "status", broken)
    assert main(args) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.rstrip().endswith("alley: error: broken on purpose")


def test_without_verbose_there_is_no_traceback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(settings: Settings, **kwargs: Any) -> None:
        raise ConfigError("broken on purpose")

    monkeypatch.setattr(alley.api, "status", broken)
    assert main(["app", "status"]) == ExitCode.CONFIG
    assert one_line_error(capsys.readouterr().err) == "alley: error: broken on purpose"


def test_password_from_w_is_not_in_error_output(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(settings: Settings, **kwargs: Any) -> None:
        raise ConfigError(f"cannot use {settings!r}")

    monkeypatch.setattr(alley.api, "status", broken)
    assert main(["-w", "hunter2", "--url", "mongodb://u:hunter3@h/d", "status"]) == 3
    captured = capsys.readouterr()
    assert "hunter2" not in captured.err + captured.out
    assert "hunter3" not in captured.err + captured.out


# --- startup does not import the driver ---------------------------------------------------

DRIVER_IMPORT = re.compile(r"\|\s+(pymongo|mongoengine)(\.|\s*$)", re.MULTILINE)


def run_importtime(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("ALLEY_") and k != "MONGODB_URI"
    }
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alley", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_imports_neither_typer_nor_the_driver(clean_environment: Path) -> None:
    result = run_importtime(["--help"], clean_environment)
    assert result.returncode == 0, result.stderr
    assert "Exit codes" in result.stdout
    assert re.search(r"\|\s+alley\.entry$", result.stderr, re.MULTILINE)  # the grep can see
    assert not re.search(r"\|\s+typer$", result.stderr, re.MULTILINE)
    assert not DRIVER_IMPORT.findall(result.stderr)


def test_command_help_does_not_import_pymongo_or_mongoengine(clean_environment: Path) -> None:
    result = run_importtime(["status", "--help"], clean_environment)
    assert result.returncode == 0, result.stderr
    assert "--check" in result.stdout
    assert re.search(r"\|\s+alley\.cli$", result.stderr, re.MULTILINE)
    assert not DRIVER_IMPORT.findall(result.stderr)


def test_create_does_not_import_pymongo_or_mongoengine(clean_environment: Path) -> None:
    result = run_importtime(["create", "x"], clean_environment)
    assert result.returncode == 0, result.stderr
    assert (clean_environment / "migrations" / "0001_x.py").is_file()
    assert re.search(r"\|\s+alley\.api$", result.stderr, re.MULTILINE)
    assert not DRIVER_IMPORT.findall(result.stderr)


def test_the_import_grep_would_see_pymongo(clean_environment: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pymongo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert DRIVER_IMPORT.findall(result.stderr)


def test_driver_messages_lose_pymongo_topology_and_timeout_details() -> None:
    from pymongo.errors import AutoReconnect

    from alley.hookcalls import driver_message

    error = AutoReconnect(
        "127.0.0.1:58911: [Errno 111] Connection refused (configured timeouts: "
        "socketTimeoutMS: 2000.0ms, connectTimeoutMS: 2000.0ms)"
    )
    assert driver_message(error) == "127.0.0.1:58911: [Errno 111] Connection refused"


def test_cached_top_level_help_is_what_typer_renders() -> None:
    from alley.cli import render_help
    from alley.entry import HELP_FILE

    assert HELP_FILE.read_text(encoding="utf-8") == render_help(), (
        "src/alley/help.txt is out of date: run `nox -s docs`"
    )


def test_help_imports_no_typer_and_prints_the_cached_text() -> None:
    import subprocess
    import sys

    from alley.entry import HELP_FILE

    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import sys; sys.argv = ['alley', '--help']; from alley.entry import run; run()",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == HELP_FILE.read_text(encoding="utf-8")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert not {"typer", "click", "pymongo", "mongoengine"} & imported


# --- down's forms, --version, completion, where status looks ------------------------------


@pytest.mark.parametrize(
    ("args", "positional", "steps"),
    [
        (["down"], (None,), None),
        (["down", "3"], ("3",), None),
        (["down", "--to", "3"], ("3",), None),
        (["down", "--steps", "2"], (None,), 2),
        (["app", "down", "--steps", "1", "--fake"], (None,), 1),
    ],
)
def test_down_forms_reach_the_api(
    api_calls: Calls, args: list[str], positional: tuple[Any, ...], steps: int | None
) -> None:
    assert main(args) == ExitCode.OK
    called, _, called_args, kwargs = api_calls.only
    assert called == "down"
    assert called_args == positional
    assert kwargs["steps"] == steps


def test_down_conflicting_options_never_reach_the_api(api_calls: Calls, capsys) -> None:
    assert main(["down", "2", "--steps", "1"]) == ExitCode.USAGE
    assert "give one of MIGRATION_ID, --to ID or --steps N" in one_line_error(
        capsys.readouterr().err
    )
    assert api_calls.calls == []


def test_down_help_says_it_rolls_back_the_last_one_only(capsys) -> None:
    assert main(["down", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "only the last applied migration is rolled back" in out
    assert "--steps N" in out
    assert "--to ID" in out


def test_version(capsys) -> None:
    from alley import __version__

    assert main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out == f"alley {__version__}\n"


def test_version_imports_no_typer() -> None:
    from alley import __version__

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alley", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"alley {__version__}\n")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert not {"typer", "click", "pymongo", "mongoengine"} & imported


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "complete -o default -F _alley_completion alley"),
        ("zsh", "#compdef alley"),
        ("fish", "complete --command alley"),
        ("powershell", "Register-ArgumentCompleter -Native -CommandName alley"),
    ],
)
def test_completion_prints_the_script_of_that_shell(shell: str, expected: str, capsys) -> None:
    assert main(["completion", shell]) == ExitCode.OK
    script = capsys.readouterr().out
    assert expected in script
    assert "_ALLEY_COMPLETE" in script
    assert f"complete_{shell}" in script
    others = {"bash": "COMPREPLY", "zsh": "compdef", "fish": "--command alley"}
    assert all(marker not in script for name, marker in others.items() if name != shell)


URL_WITH_PASSWORD = "mongodb://bob:hunter2@db.example:27018/shop?authSource=admin"


def test_status_header_names_folder_server_and_database(
    api_calls: Calls, clean_environment: Path, capsys
) -> None:
    assert main(["--url", URL_WITH_PASSWORD, "app", "status"]) == ExitCode.OK
    captured = capsys.readouterr()
    folder = (clean_environment / "app" / "migrations").resolve()
    server = api_calls.only[1].redacted_target()
    assert "db.example:27018" in server
    assert captured.out.splitlines()[0] == (
        f"migrations: {folder} · server: {server} · database: shop"
    )
    assert "hunter2" not in captured.out + captured.err
    assert captured.err == ""  # only with --verbose


def test_status_json_says_where_it_looked(
    api_calls: Calls, clean_environment: Path, capsys
) -> None:
    import json

    assert main(["-h", "h", "-p", "1", "-db", "shop", "app", "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["folder"] == str((clean_environment / "app" / "migrations").resolve())
    assert (data["server"], data["database"]) == ("h:1", "shop")


@pytest.mark.parametrize("command", [["status"], ["up"], ["down", "1"], ["status", "--json"]])
def test_verbose_prints_where_on_stderr(api_calls: Calls, command: list[str], capsys) -> None:
    assert main(["-v", "--url", URL_WITH_PASSWORD, "app", *command]) == ExitCode.OK
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    server = api_calls.only[1].redacted_target()
    assert line.startswith("migrations: ")
    assert line.endswith(f" · server: {server} · database: shop")
    assert "db.example:27018" in line
    assert "hunter2" not in captured.out + captured.err
