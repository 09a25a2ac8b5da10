"""Bad input through the real ``alley`` process: one clear line, its exit code, nothing lost."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import Project

USAGE, CONFIG, CONNECTION, FAILED, INTEGRITY = 2, 3, 4, 1, 6


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("alley: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_failing_migration_stops_there_unrecorded_with_users_file_and_line(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    failing = project.write("0002_b.py", up="db.x.insert_one({'a': 1})\nraise KeyError('boom')")
    project.counter("0003_c.py")

    result = project.alley("up")

    assert result.returncode == FAILED
    line = error_line(result.stderr)
    assert "0002_b.py" in line
    assert "KeyError" in line
    assert f"{failing}:4" in line  # the raise is on line 4 of the written file
    assert "Traceback" not in result.stderr
    assert [r["id"] for r in mongo_db.db_migrations.find()] == [1]
    assert {d["_id"] for d in mongo_db.counters.find()} == {"0001"}

    # It wrote before it raised: running it again could write twice, so up waits.
    blocked = project.alley("up")
    assert blocked.returncode == INTEGRITY, blocked.output
    assert "0002_b.py failed (up) after it wrote insert x" in error_line(blocked.stderr)
    assert "--retry" in blocked.stderr
    assert project.alley("up", "--plan").returncode == INTEGRITY
    assert project.alley("status", "--check").returncode == INTEGRITY
    assert project.alley("verify").returncode == INTEGRITY

    verbose = project.alley("up", "--retry", "--verbose")
    assert verbose.returncode == FAILED
    assert "Traceback" in verbose.stderr

    project.write("0002_b.py", up="pass")
    fixed = project.alley("up", "--retry")
    assert fixed.returncode == 0, fixed.output
    assert sorted(r["id"] for r in mongo_db.db_migrations.find()) == [1, 2, 3]


def test_file_that_does_not_compile_is_reported_before_anything_runs(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    (project.folder / "0002_broken.py").write_text("def up(db):\n    return (\n")

    result = project.alley("up")

    assert result.returncode == CONFIG
    assert "0002_broken.py" in error_line(result.stderr)
    assert mongo_db.db_migrations.count_documents({}) == 0
    assert mongo_db.counters.count_documents({}) == 0


def test_missing_up_function_is_reported_before_anything_runs(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    (project.folder / "0002_no_up.py").write_text("def down(db):\n    pass\n")

    result = project.alley("up")

    assert result.returncode == CONFIG
    line = error_line(result.stderr)
    assert "0002_no_up.py" in line
    assert "up(db)" in line
    assert mongo_db.counters.count_documents({}) == 0


def test_missing_down_function_fails_up_and_its_gates_before_anything_runs(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    (project.folder / "0002_no_down.py").write_text("def up(db):\n    db.x.insert_one({})\n")

    for command in (("up",), ("up", "--plan"), ("status", "--check"), ("verify",)):
        result = project.alley(*command)
        assert result.returncode == CONFIG, (command, result.output)
        assert "0002_no_down.py has no down(db) function" in error_line(result.stderr)
    assert mongo_db.counters.count_documents({}) == 0
    assert mongo_db.x.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 0


def test_two_files_with_the_same_id(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    project.counter("0001_b.py")

    result = project.alley("up")

    assert result.returncode == CONFIG
    line = error_line(result.stderr)
    assert "0001_a.py" in line
    assert "0001_b.py" in line
    assert mongo_db.counters.count_documents({}) == 0


def test_near_miss_filename_is_warned_about(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    project.counter("0003_AddUsers.py")

    result = project.alley("up")

    assert result.returncode == 0, result.output
    assert "0003_AddUsers.py" in result.stderr
    assert "warning" in result.stderr
    assert mongo_db.counters.count_documents({}) == 1


def test_up_to_an_applied_target_succeeds_saying_so(project: Project, mongo_db: Any) -> None:
    # 0.0.3 said "nothing to execute": a deploy pinned to a target runs it every time.
    project.counter("0001_a.py")
    project.counter("0002_b.py")
    assert project.alley("up", "1").returncode == 0

    again = project.alley("up", "1")
    plan = project.alley("up", "1", "--plan")

    assert again.returncode == 0, again.output
    assert again.stdout == "nothing to do: migration 1 is already applied\n"
    assert again.stderr == ""
    assert plan.returncode == 0, plan.output  # nothing would run
    assert {d["_id"]: d["n"] for d in mongo_db.counters.find()} == {"0001": 1}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["up", "9"], "no migration has id 9"),
        (["up", "abc"], "invalid migration id"),
        (["down", "2"], "not applied"),
        (["down", "9"], "no migration has id 9"),
        (["down", "--steps", "2"], "cannot roll back 2 migrations: only 1 is applied"),
        (["frobnicate"], "No such command"),
        (["up", "--nope"], "No such option"),
    ],
)
def test_bad_targets_and_arguments_are_usage_errors(
    project: Project, mongo_db: Any, args: list[str], expected: str
) -> None:
    project.counter("0001_a.py")
    project.counter("0002_b.py")
    assert project.alley("up", "1").returncode == 0

    result = project.alley(*args)

    assert result.returncode == USAGE, result.output
    assert expected in error_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert mongo_db.db_migrations.count_documents({}) == 1


def test_no_migrations_folder(tmp_path: Any, project: Project) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    result = project.alley(str(empty), "status")

    assert result.returncode == CONFIG
    assert "migrations/" in error_line(result.stderr)


def test_no_migrations_folder_anywhere_without_path(tmp_path: Any, project: Project) -> None:
    empty = tmp_path / "nowhere"
    empty.mkdir()

    result = project.alley("status", cwd=empty)

    assert result.returncode == CONFIG
    assert "no migrations/ folder" in error_line(result.stderr)


def test_path_that_does_not_exist(project: Project) -> None:
    result = project.alley("./no/such/dir", "status")

    assert result.returncode == CONFIG
    assert "does not exist" in error_line(result.stderr)


def test_path_that_is_a_file(project: Project) -> None:
    (project.root / "file.txt").write_text("x")

    result = project.alley("file.txt", "status")

    assert result.returncode == CONFIG
    assert "not a directory" in error_line(result.stderr)


def test_unreachable_server_fails_fast_with_connection_code_and_no_password(
    project: Project,
) -> None:
    project.counter("0001_a.py")
    secret = "s3cr3t-P@ss"
    started = time.monotonic()

    result = project.alley(
        "--url",
        "mongodb://alice:s3cr3t-P%40ss@127.0.0.1:9/appdb",
        "--timeout",
        "1",
        "-w",
        secret,
        "status",
        "--verbose",
        url=False,
    )

    elapsed = time.monotonic() - started
    assert result.returncode == CONNECTION, result.output
    assert "cannot reach the server" in error_line(result.stderr)
    assert elapsed < 15
    assert secret not in result.output
    assert "s3cr3t-P%40ss" not in result.output


def test_bad_credentials_fail_with_connection_code_and_no_password(
    project: Project, mongodb_server: Any, server_capabilities: Any
) -> None:
    from urllib.parse import urlsplit

    location = urlsplit(mongodb_server.uri)
    project.counter("0001_a.py")
    secret = "wrong-Pa55word"

    result = project.alley(
        "-db",
        "appdb",
        "-u",
        "nobody",
        "-w",
        secret,
        "-h",
        location.hostname or "localhost",
        "-p",
        str(location.port),
        "--verbose",
        "status",
        url=False,
    )

    assert result.returncode == CONNECTION, result.output
    line = error_line(result.stderr)
    if server_capabilities.auth:
        assert "authentication failed" in line
    else:  # a server without authentication refuses the login command itself
        assert "saslStart" in line or "auth" in line.lower()
    assert secret not in result.output


def test_down_with_deleted_file_removes_nothing(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    project.counter("0002_b.py")
    assert project.alley("up").returncode == 0
    (project.folder / "0002_b.py").unlink()

    result = project.alley("down", "1")

    assert result.returncode == INTEGRITY
    assert "0002_b.py" in error_line(result.stderr)
    assert mongo_db.db_migrations.count_documents({}) == 2
    assert mongo_db.counters.count_documents({"n": 1}) == 2


def test_out_of_order_pending_is_refused_unless_allowed(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    project.counter("0003_c.py")
    assert project.alley("up").returncode == 0
    project.counter("0002_b.py")

    refused = project.alley("up")
    assert refused.returncode == INTEGRITY
    assert "0002_b.py" in error_line(refused.stderr)
    assert mongo_db.db_migrations.count_documents({}) == 2

    allowed = project.alley("up", "--allow-out-of-order")
    assert allowed.returncode == 0, allowed.output
    assert mongo_db.db_migrations.count_documents({}) == 3


def test_without_discovery_up_and_the_gates_fail_with_exit_8_not_nothing_to_do(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")

    for command in (("up",), ("status", "--check"), ("up", "--plan"), ("verify",)):
        result = project.alley("--disable-plugin", "filesystem", *command)
        assert result.returncode == 8, (command, result.output)
        assert "no plugin provides discovering migrations" in error_line(result.stderr)
    assert mongo_db.counters.count_documents({}) == 0


def test_a_warning_from_a_migration_reaches_the_user_on_one_line(
    project: Project, mongo_db: Any
) -> None:
    path = project.write(
        "0001_a.py", header="import warnings", up="warnings.warn('no index on users.email')"
    )

    result = project.alley("up")

    assert result.returncode == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("alley: warning:")]
    assert warned == [f"alley: warning: UserWarning: no index on users.email (at {path}:3)"], (
        result.stderr
    )


def test_sys_exit_in_a_migration_fails_it_with_exit_1_and_the_lock_released(
    project: Project, mongo_db: Any
) -> None:
    project.write("0001_a.py", header="import sys", up="sys.exit(0)")
    project.counter("0002_b.py")

    result = project.alley("up")

    assert result.returncode == FAILED, result.output
    assert "0001_a.py failed (up): it called sys.exit(0)" in error_line(result.stderr)
    assert mongo_db.db_migrations.count_documents({}) == 0
    assert mongo_db.counters.count_documents({}) == 0
    assert mongo_db.db_migrations_lock.find_one(sort=[("_id", -1)])["released"] is True


# --- configuration and connection errors: one line, the right code, no traceback ---------


def only_line(result: Any) -> str:
    """The one line of stderr (an error or a warning), and no traceback anywhere."""
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def alley_lines(result: Any) -> list[str]:
    """alley's errors and warnings on stderr (progress lines aside), and no traceback."""
    assert "Traceback" not in result.output, result.output
    return [line for line in result.stderr.splitlines() if line.startswith("alley: ")]


def server_location(uri: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    location = urlsplit(uri)
    return location.hostname or "localhost", str(location.port or 27017)


@pytest.mark.parametrize("warnings_option", ["default", "error::ResourceWarning"])
def test_no_migrations_folder_with_a_url_is_one_line_without_resource_warnings(
    tmp_path: Any, project: Project, warnings_option: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    result = project.alley(
        "status", cwd=empty, env={"PYTHONWARNINGS": warnings_option}, process=True
    )

    assert result.returncode == CONFIG, result.output
    assert only_line(result).startswith("alley: error: no migrations/ folder in ")


@pytest.mark.parametrize("warnings_option", ["default", "error::ResourceWarning"])
def test_a_successful_history_closes_its_client(
    project: Project, mongo_db: Any, warnings_option: str
) -> None:
    project.counter("0001_a.py")
    assert project.alley("up").returncode == 0

    result = project.alley("history", env={"PYTHONWARNINGS": warnings_option}, process=True)

    assert result.returncode == 0, result.output
    assert "0001_a.py" in result.stdout
    assert result.stderr == ""


def test_port_on_the_command_line_keeps_the_database_of_the_environment_url(
    project: Project, mongo_db: Any, mongodb_server: Any
) -> None:
    project.counter("0001_a.py")
    _host, port = server_location(mongodb_server.uri)
    # The URL names the right database and a wrong port; -p puts the right one.
    url = mongodb_server.uri_for_database(mongo_db.name).replace(f":{port}/", ":9/")

    result = project.alley("-p", port, "up", url=False, env={"ALLEY_URL": url})

    assert result.returncode == 0, result.output
    assert alley_lines(result) == []
    assert mongo_db.counters.find_one({"_id": "0001"})["n"] == 1


def test_config_database_loses_to_the_environment_url(project: Project, mongo_db: Any) -> None:
    (project.root / "pyproject.toml").write_text('[tool.alley]\ndatabase = "not_this_one"\n')
    project.counter("0001_a.py")

    result = project.alley("up", url=False, env={"ALLEY_URL": project.uri})

    assert result.returncode == 0, result.output
    assert mongo_db.counters.count_documents({}) == 1


def test_path_to_another_project_uses_that_projects_settings(
    tmp_path: Any, project: Project, mongo_db: Any
) -> None:
    (project.root / "pyproject.toml").write_text(f'[tool.alley]\nurl = "{project.uri}"\n')
    project.counter("0001_a.py")
    here = tmp_path / "here"
    here.mkdir()
    (here / "pyproject.toml").write_text('[tool.alley]\nurl = "mongodb://127.0.0.1:9/wrong"\n')

    result = project.alley("../app", "up", url=False, cwd=here)

    assert result.returncode == 0, result.output
    assert mongo_db.counters.count_documents({}) == 1


def test_a_stray_migrations_folder_above_the_project_is_not_used(
    tmp_path: Any, project: Project
) -> None:
    (tmp_path / "migrations").mkdir()  # in a shared parent folder
    (tmp_path / "migrations" / "0001_stray.py").write_text("def up(db): pass\n")
    inner = tmp_path / "inner"
    (inner / "src").mkdir(parents=True)
    (inner / "pyproject.toml").write_text('[project]\nname = "inner"\n')

    result = project.alley("status", cwd=inner / "src")

    assert result.returncode == CONFIG, result.output
    assert only_line(result) == (
        f"alley: error: no migrations/ folder in {inner / 'src'} or its parents up to the "
        f"project's root {inner} "
        "(pass PATH (the folder that contains migrations/), or set ALLEY_PATH)"
    )


def test_malformed_url_is_exit_3_without_the_password(project: Project) -> None:
    result = project.alley("--url", "mongodb://bob:s3cr3t@[::1", "status", url=False)

    assert result.returncode == CONFIG, result.output
    line = only_line(result)
    assert line.startswith(
        "alley: error: invalid URL 'mongodb://bob:***@[::1' (from the command line)"
    )
    assert "s3cr3t" not in result.output


@pytest.mark.parametrize(
    ("option", "value", "name"),
    [
        ("-p", "abc", "port"),
        ("--timeout", "soon", "timeout"),
        ("--lease", "0", "lease"),
        ("--lock-timeout", "x", "lock_timeout"),
    ],
)
def test_bad_numbers_on_the_command_line_are_exit_3(
    project: Project, option: str, value: str, name: str
) -> None:
    result = project.alley(option, value, "status")

    assert result.returncode == CONFIG, result.output
    assert only_line(result).startswith(
        f"alley: error: invalid {name} '{value}' (from the command line): "
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("port", "true"), ("port", "27017.5"), ("port", '"27017"'), ("timeout", "false"),
     ("lease", '"30"'), ("lock_timeout", "[60]"), ("host", "1"), ("database", "false")],
)  # fmt: skip
def test_wrong_types_in_tool_alley_are_exit_3_naming_the_file(
    project: Project, key: str, value: str
) -> None:
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(f"[tool.alley]\n{key} = {value}\n")

    result = project.alley("status", url=False)

    assert result.returncode == CONFIG, result.output
    line = only_line(result)
    assert line.startswith(f"alley: error: invalid {key} ")
    assert f"(from [tool.alley] in {pyproject})" in line


@pytest.mark.parametrize("name", ["has space", "a/b", "a.b", "x" * 64])
def test_database_names_mongodb_refuses_are_exit_3_before_connecting(
    project: Project, name: str
) -> None:
    # The server does not exist: exit 3, not 4, says nothing was tried.
    result = project.alley(
        "-db", name, "-h", "127.0.0.1", "-p", "9", "--timeout", "1", "status", url=False
    )

    assert result.returncode == CONFIG, result.output
    assert only_line(result).startswith(
        f"alley: error: invalid database name {name!r} (from the command line): "
    )


def test_no_database_anywhere_uses_test_with_one_warning(
    project: Project, mongodb_server: Any, mongo_client: Any
) -> None:
    project.counter("0001_a.py")
    mongo_client.drop_database("test")
    try:
        result = project.alley("up", url=False, env={"ALLEY_URL": mongodb_server.uri})
        created = project.alley("create", "b", url=False, env={"ALLEY_URL": mongodb_server.uri})

        assert result.returncode == 0, result.output
        assert alley_lines(result) == [
            "alley: warning: no database given: using 'test' as alley 0.0.3 did (name one "
            "with -db, ALLEY_DATABASE, a URL ending in /NAME, or database in [tool.alley])"
        ]
        assert mongo_client["test"].counters.count_documents({}) == 1
        assert created.returncode == 0, created.output
        assert created.stderr == ""  # create does not connect: no warning
        status = project.alley("status", url=False, env={"ALLEY_URL": mongodb_server.uri})
        assert status.stdout.splitlines()[0].endswith(" · database: test")
    finally:
        mongo_client.drop_database("test")
        mongo_client.drop_database("test_alley")


# --- a server that requires authentication ------------------------------------------------

AUTH_USER, AUTH_PASSWORD = "deployer", "pa55-W0rd!"


@pytest.fixture(scope="module")
def auth_server(mongodb_server: Any) -> Any:
    """A second server, with a user: the session's server usually has no authentication."""
    from alley.testing import Credentials, start_server

    kinds = ("uri",) if mongodb_server.kind == "uri" else ("mongod", "ferretdb")
    server = start_server(kinds=kinds, credentials=Credentials(AUTH_USER, AUTH_PASSWORD, "admin"))
    yield server
    server.stop()


def test_no_credentials_against_a_server_that_requires_them_is_exit_4(
    project: Project, auth_server: Any
) -> None:
    project.counter("0001_a.py")
    host, port = server_location(auth_server.uri)

    result = project.alley("-db", "shop", "-h", host, "-p", port, "status", url=False)

    assert result.returncode == CONNECTION, result.output
    assert only_line(result) == (
        f"alley: error: the server at {host}:{port} requires authentication to use database "
        "shop (pass -u USER and set ALLEY_PASSWORD, or pass -w)"
    )


def test_username_without_a_password_is_exit_3(project: Project, auth_server: Any) -> None:
    project.counter("0001_a.py")
    host, port = server_location(auth_server.uri)

    result = project.alley(
        "-db", "shop", "-u", AUTH_USER, "-h", host, "-p", port, "status", url=False
    )

    assert result.returncode == CONFIG, result.output
    assert only_line(result) == (
        "alley: error: -u/--username given without a password (set ALLEY_PASSWORD or pass -w)"
    )


def test_username_with_the_password_from_the_environment_connects(
    project: Project, auth_server: Any
) -> None:
    project.counter("0001_a.py")
    host, port = server_location(auth_server.uri)

    result = project.alley(
        "-db", "shop", "-u", AUTH_USER, "-a", "admin", "-h", host, "-p", port, "status",
        url=False, env={"ALLEY_PASSWORD": AUTH_PASSWORD},
    )  # fmt: skip

    assert result.returncode == 0, result.output
    assert "0001_a.py" in result.stdout
