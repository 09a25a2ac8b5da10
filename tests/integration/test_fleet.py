"""Many databases in one command (:mod:`alley.fleet`), against the real server: each
database as if alley had been run once on it (its own history, its own lock), the
others going on when one fails or is locked, and an exit code that is the worst."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alley.testing import Server
from conftest import Project, finish, wait_for

MIGRATION_FAILED, CONFIG, LOCK_BUSY, USAGE, PENDING, INTEGRITY = 1, 3, 5, 2, 7, 6

COUNTER = """import os, time

ARMED = {armed!r}
WAITING = {waiting!r}
BROKEN = {broken!r}


def up(db):
    if db.name.endswith({hold!r}) and os.path.exists(ARMED):
        open(WAITING, "w").close()
        while os.path.exists(ARMED):
            time.sleep(0.02)
    if db.name.endswith({fail!r}) and os.path.exists(BROKEN):
        raise ValueError("this tenant is broken")
    db.counters.update_one({{"_id": {key!r}}}, {{"$inc": {{"n": 1}}}}, upsert=True)


def down(db):
    db.counters.update_one({{"_id": {key!r}}}, {{"$inc": {{"n": -1}}}})
"""


class Tenants:
    """``count`` databases named ``<prefix>_00``, ``<prefix>_01``, ..., each holding a
    document (a database exists on the server once something is written to it)."""

    def __init__(self, client: Any, count: int) -> None:
        self.client = client
        self.prefix = f"alley_fleet_{uuid.uuid4().hex[:8]}"
        self.names = [f"{self.prefix}_{i:02}" for i in range(count)]
        for name in self.names:
            client[name].seed.insert_one({"_id": "seed"})

    @property
    def pattern(self) -> str:
        return f"{self.prefix}_*"

    def counters(self, name: str) -> dict[str, int]:
        return {d["_id"]: d["n"] for d in self.client[name].counters.find()}

    def drop(self) -> None:
        for name in self.client.list_database_names():
            if name.startswith(self.prefix):
                self.client.drop_database(name)


@pytest.fixture
def tenants(mongo_client: Any) -> Iterator[Callable[[int], Tenants]]:
    made: list[Tenants] = []

    def make(count: int) -> Tenants:
        made.append(Tenants(mongo_client, count))
        return made[-1]

    yield make
    for group in made:
        group.drop()


@pytest.fixture
def fleet_project(tmp_path: Path, mongodb_server: Server) -> Project:
    """A project whose URL names no database (the databases are chosen per command)."""
    return Project(tmp_path / "app", mongodb_server.uri)


def write_counters(
    project: Project, *filenames: str, hold: str = "-", fail: str = "-"
) -> tuple[Path, Path, Path]:
    """Counter migrations; each ``up`` waits on a database named ``…hold`` while *armed*
    exists (creating *waiting*), and raises on one named ``…fail`` while *broken* exists."""
    armed, waiting, broken = (project.root / n for n in ("armed", "waiting", "broken"))
    for filename in filenames:
        (project.folder / filename).write_text(
            COUNTER.format(
                armed=str(armed),
                waiting=str(waiting),
                broken=str(broken),
                hold=hold,
                fail=fail,
                key=filename[:4],
            )
        )
    return armed, waiting, broken


def test_thirty_databases_one_failing_one_locked_then_a_second_run_finishes(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    group = tenants(30)
    failing, locked = group.names[7], group.names[13]
    armed, waiting, broken = write_counters(fleet_project, "0001_a.py", hold="_13")
    write_counters(fleet_project, "0002_b.py", fail="_07")
    write_counters(fleet_project, "0003_c.py")
    armed.touch()
    broken.touch()
    # Another process holds tenant 13's lock, inside its first migration.
    holder = fleet_project.spawn("-db", locked, "up")
    wait_for(waiting.exists, what="the other process to hold tenant 13's lock")

    run = fleet_project.alley(
        "--databases", group.pattern, "--jobs", "4", "--lock-timeout", "1", "up", process=True
    )

    assert run.returncode == MIGRATION_FAILED, run.output  # the worst: failed, over locked
    assert f"{failing}: failed (exit 1)" in run.stdout
    assert "this tenant is broken" in run.stdout
    assert f"{locked}: locked (exit 5)" in run.stdout
    assert "30 databases: 28 applied, 1 failed, 1 locked (4 at a time" in run.stdout
    assert run.stdout.rstrip().endswith("exit 1")
    for name in group.names:
        if name not in (failing, locked):
            assert group.counters(name) == {"0001": 1, "0002": 1, "0003": 1}, name
    assert group.counters(failing) == {"0001": 1}  # stopped at its failing step
    assert group.counters(locked) == {}  # the holder is still in its first step

    armed.unlink()
    assert finish(holder).returncode == 0
    broken.unlink()  # the fix
    again = fleet_project.alley("--databases", group.pattern, "up", process=True)

    assert again.returncode == 0, again.output
    assert f"{failing}: applied" in again.stdout
    assert "30 databases: 29 up to date, 1 applied" in again.stdout
    for name in group.names:
        assert group.counters(name) == {"0001": 1, "0002": 1, "0003": 1}, name


def test_two_commands_over_overlapping_databases_run_each_migration_once(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    group = tenants(12)
    for filename in ("0001_a.py", "0002_b.py", "0003_c.py"):
        fleet_project.write(
            filename,
            up=f"""
            import time
            time.sleep(0.05)  # long enough for the two commands to meet
            db.counters.update_one({{"_id": {filename[:4]!r}}}, {{"$inc": {{"n": 1}}}},
                                   upsert=True)
            """,
        )
    first = ",".join(group.names[:8])
    second = ",".join(group.names[4:])
    commands = [
        fleet_project.spawn("--databases", names, "--jobs", "3", "--lock-timeout", "60", "up")
        for names in (first, second)
    ]
    results = [finish(command) for command in commands]

    for result in results:
        assert result.returncode == 0, result.output
    for name in group.names:
        assert group.counters(name) == {"0001": 1, "0002": 1, "0003": 1}, name
    assert "8 databases:" in results[0].stdout
    assert "8 databases:" in results[1].stdout


def test_fail_fast_starts_no_database_after_a_failure(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    group = tenants(3)
    _, _, broken = write_counters(fleet_project, "0001_a.py", fail="_00")
    broken.touch()

    run = fleet_project.alley(
        "--databases", ",".join(group.names), "--jobs", "1", "--fail-fast", "up"
    )

    assert run.returncode == MIGRATION_FAILED, run.output
    assert "3 databases: 2 not run, 1 failed" in run.stdout
    assert [group.counters(name) for name in group.names] == [{}, {}, {}]


def test_status_check_verify_plan_and_down_over_many_databases(
    fleet_project: Project, tenants: Callable[[int], Tenants], mongo_client: Any
) -> None:
    group = tenants(3)
    write_counters(fleet_project, "0001_a.py", "0002_b.py")
    many = ("--databases", group.pattern)
    assert fleet_project.alley("-db", group.names[0], "up").returncode == 0

    check = fleet_project.alley(*many, "status", "--check")
    assert check.returncode == PENDING, check.output
    assert f"{group.names[0]}: up to date in" in check.stdout
    assert f"{group.names[1]}: pending (exit 7)" in check.stdout

    plan = fleet_project.alley(*many, "up", "--plan", "--json")
    assert plan.returncode == PENDING, plan.output
    data = json.loads(plan.stdout)
    assert data["command"] == "up --plan"
    by_name = {d["database"]: d for d in data["databases"]}
    assert by_name[group.names[0]]["result"] == "up to date"
    assert [s["filename"] for s in by_name[group.names[2]]["report"]["steps"]] == [
        "0001_a.py",
        "0002_b.py",
    ]
    assert group.counters(group.names[2]) == {}  # a plan writes nothing

    assert fleet_project.alley(*many, "up").returncode == 0
    verify = fleet_project.alley(*many, "verify")
    assert verify.returncode == 0, verify.output
    assert "3 databases: 3 ok" in verify.stdout

    (fleet_project.folder / "0001_a.py").write_text("def up(db):\n    pass\n")  # drift
    drifted = fleet_project.alley(*many, "verify", "--json")
    assert drifted.returncode == INTEGRITY, drifted.output
    assert json.loads(drifted.stdout)["counts"] == {"problems": 3}

    down = fleet_project.alley(*many, "down", "--steps", "1")
    assert down.returncode == 0, down.output
    assert "3 databases: 3 rolled back" in down.stdout
    for name in group.names:
        assert group.counters(name) == {"0001": 1, "0002": 0}


FLEET_MODELS = """import mongoengine as me


class Account(me.Document):
    email = me.StringField(unique=True)
    meta = {"collection": "accounts"}
"""


def test_check_compares_the_models_with_every_database(
    fleet_project: Project, tenants: Callable[[int], Tenants], mongo_client: Any
) -> None:
    """``check`` over tenants: the one whose index lacks ``unique`` differs (exit 6)
    and names it; a models module that does not import is one error, not one per
    database."""
    group = tenants(3)
    fleet_project.folder.mkdir(parents=True, exist_ok=True)
    (fleet_project.root / "fleet_models.py").write_text(FLEET_MODELS)
    (fleet_project.root / "pyproject.toml").write_text('[tool.alley]\nmodels = "fleet_models"\n')
    for name in group.names[:2]:
        mongo_client[name].accounts.create_index("email", unique=True)
    mongo_client[group.names[2]].accounts.create_index("email")
    many = ("--databases", group.pattern)

    result = fleet_project.alley(*many, "check")
    assert result.returncode == INTEGRITY, result.output
    assert f"{group.names[0]}: ok in" in result.stdout
    assert f"{group.names[2]}: differs (exit 6) in" in result.stdout
    assert "differs: accounts email_1 (unique: model True, database False)" in result.stdout
    data = json.loads(fleet_project.alley(*many, "check", "--json").stdout)
    assert data["counts"] == {"ok": 2, "differs": 1}
    by_name = {d["database"]: d["report"] for d in data["databases"]}
    assert [d["kind"] for d in by_name[group.names[2]]["differences"]] == ["differs"]

    broken = fleet_project.alley(*many, "check", "--models", "no_such_models")
    assert broken.returncode == CONFIG, broken.output
    assert broken.stdout == ""
    assert broken.stderr.count("cannot import models module no_such_models") == 1


def test_databases_in_pyproject_and_one_database_on_the_command_line(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    group = tenants(2)
    write_counters(fleet_project, "0001_a.py")
    (fleet_project.root / "pyproject.toml").write_text(
        f'[tool.alley]\ndatabases = ["{group.pattern}"]\njobs = 2\n'
    )

    one = fleet_project.alley("-db", group.names[1], "up")
    assert one.returncode == 0, one.output
    assert group.counters(group.names[0]) == {}
    assert group.counters(group.names[1]) == {"0001": 1}

    many = fleet_project.alley("up")
    assert many.returncode == 0, many.output
    assert "2 databases: 1 applied, 1 up to date (2 at a time" in many.stdout

    history = fleet_project.alley("history")
    assert history.returncode == USAGE
    assert history.stderr.count("\n") == 1
    assert "'history' works on one database" in history.stderr


def test_no_matching_database_and_both_settings_are_one_line_errors(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    write_counters(fleet_project, "0001_a.py")
    missing = fleet_project.alley("--databases", "no_such_tenant_*", "up")
    assert missing.returncode == CONFIG
    assert missing.stderr.count("\n") == 1
    assert "no database matches databases no_such_tenant_*" in missing.stderr

    both = fleet_project.alley("-db", "a", "--databases", "b,c", "status")
    assert both.returncode == CONFIG
    assert "both database and databases are set" in both.stderr

    events = fleet_project.alley("--databases", "a,b", "up", "--events", "-")
    assert events.returncode == USAGE
    assert "--events works on one database" in events.stderr

    bad = fleet_project.alley("--databases", "a/b", "status")
    assert bad.returncode == CONFIG
    assert "invalid database name 'a/b'" in bad.stderr


def test_a_plugin_provides_the_databases_through_the_api(
    mongodb_server: Server, tenants: Callable[[int], Tenants], tmp_path: Path, mongo_client: Any
) -> None:
    from alley import api
    from alley.engine import Engine
    from alley.hookspecs import hookimpl
    from alley.settings import load_settings

    group = tenants(3)
    registry = f"{group.prefix}_registry"
    mongo_client[registry].tenants.insert_many([{"db": n} for n in group.names[:2]])

    class TenantRegistry:
        @hookimpl
        def alley_databases(self, settings: Any, client: Any, requested: Any) -> Any:
            if "@tenants" not in requested:
                return None
            return [t["db"] for t in client[registry].tenants.find()]

    project = Project(tmp_path / "app", mongodb_server.uri)
    write_counters(project, "0001_a.py")
    settings = load_settings(
        {"url": mongodb_server.uri, "path": str(project.root), "databases": "@tenants"},
        environ={},
    )
    engine = Engine(settings.for_database("admin"), plugins=[("tenants", TenantRegistry())])

    report = api.over_databases(settings, "up", project=engine, jobs=2)

    assert report.exit_code == 0
    assert [(o.database, o.result) for o in report.outcomes] == [
        (group.names[0], "applied"),
        (group.names[1], "applied"),
    ]
    assert group.counters(group.names[2]) == {}
    status = api.over_databases(settings, "status", project=engine)
    assert [o.result for o in status.outcomes] == ["up to date", "up to date"]


@pytest.mark.parametrize(("signal_name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_sigterm_starts_no_more_databases_and_lets_the_running_one_finish(
    fleet_project: Project, tenants: Callable[[int], Tenants], signal_name: str, code: int
) -> None:
    import signal

    group = tenants(3)
    armed, waiting, _ = write_counters(fleet_project, "0001_a.py", hold="_00")
    write_counters(fleet_project, "0002_b.py")
    armed.touch()
    fleet = fleet_project.spawn("--databases", group.pattern, "--jobs", "1", "up")
    wait_for(waiting.exists, what="the first database's first migration to start")

    fleet.send_signal(getattr(signal, signal_name))
    assert fleet.stderr is not None
    said = fleet.stderr.readline()  # once it is said, no database starts
    armed.unlink()
    result = finish(fleet)

    assert said == "alley: stopping: no database starts now; waiting for the 1 running\n"
    assert result.returncode == code, result.output
    assert "3 databases: 2 not run, 1 applied" in result.stdout
    assert "no database started after it" in result.stderr
    assert group.counters(group.names[0]) == {"0001": 1, "0002": 1}  # finished, recorded
    assert [group.counters(n) for n in group.names[1:]] == [{}, {}]
    status = fleet_project.alley("-db", group.names[0], "status", "--check")
    assert status.returncode == 0, status.output


def test_a_pattern_skips_heartbeat_databases_even_when_their_database_is_gone(
    fleet_project: Project, tenants: Callable[[int], Tenants], mongo_client: Any
) -> None:
    """On FerretDB alley renews its lock in ``NAME_alley``; dropping ``NAME`` leaves it.
    A pattern never takes it for a tenant; a real database named ``…_alley`` it does."""
    group = tenants(1)
    mongo_client[f"{group.prefix}_gone_alley"].db_migrations_lock_heartbeat.insert_one({})
    mongo_client[f"{group.prefix}_shop_alley"].orders.insert_one({})
    write_counters(fleet_project, "0001_a.py")

    run = fleet_project.alley("--databases", group.pattern, "status", "--json")

    assert run.returncode == 0, run.output
    listed = [d["database"] for d in json.loads(run.stdout)["databases"]]
    assert listed == [group.names[0], f"{group.prefix}_shop_alley"]


def test_the_json_of_a_failed_database_says_what_ran_before_the_failure(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    group = tenants(2)
    write_counters(fleet_project, "0001_a.py")
    _, _, broken = write_counters(fleet_project, "0002_b.py", fail="_00")
    broken.touch()

    run = fleet_project.alley("--databases", group.pattern, "up", "--json")

    assert run.returncode == MIGRATION_FAILED, run.output
    failed, applied = json.loads(run.stdout)["databases"]
    assert (failed["result"], failed["exit_code"]) == ("failed", MIGRATION_FAILED)
    assert "this tenant is broken" in failed["error"]
    assert [s["filename"] for s in failed["report"]["steps"]] == ["0001_a.py"]
    assert failed["report"]["failed"]["filename"] == "0002_b.py"
    assert applied["result"] == "applied"
    assert [s["filename"] for s in applied["report"]["steps"]] == ["0001_a.py", "0002_b.py"]


def test_a_databases_notes_are_printed_naming_it(
    fleet_project: Project, tenants: Callable[[int], Tenants]
) -> None:
    group = tenants(1)
    (fleet_project.folder / "0001_backfill.py").write_text(
        "def up(db, step):\n"
        '    step.backfill("seed", transform=lambda d: {"$set": {"v": 1}})\n\n\n'
        "def down(db):\n    pass\n"
    )

    run = fleet_project.alley("--databases", group.pattern, "up")

    assert run.returncode == 0, run.output
    assert (
        f"alley: warning: {group.names[0]}: 0001_backfill.py: backfill seed#1 has no where=:"
        in run.stderr
    )


def test_the_python_example_of_the_docs_runs(
    mongodb_server: Server, tenants: Callable[[int], Tenants], tmp_path: Path
) -> None:
    """docs/databases.md "From Python", with this server's URL and these tenants."""
    import re

    group = tenants(2)
    docs = Path(__file__).resolve().parents[2] / "docs" / "databases.md"
    [code] = re.findall(r"## From Python\n\n```python\n(.*?)```", docs.read_text(), re.DOTALL)
    code = code.replace("mongodb://db.internal", mongodb_server.uri)
    code = code.replace('"databases": "tenant_*"', f'"databases": "{group.pattern}"')
    project = Project(tmp_path / "app", mongodb_server.uri)
    write_counters(project, "0001_a.py")
    code = code.replace("load_settings({", f'load_settings({{"path": {str(project.root)!r}, ')

    with pytest.raises(SystemExit) as ended:
        exec(compile(code, str(docs), "exec"), {})

    assert ended.value.code == 0
    assert [group.counters(n) for n in group.names] == [{"0001": 1}, {"0001": 1}]
