"""The commands of alley 0.0.3 through the real ``alley`` process, against the real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Project


def counters(db: Any) -> dict[str, int]:
    return {doc["_id"]: doc["n"] for doc in db.counters.find()}


def records(db: Any) -> list[dict[str, Any]]:
    return sorted(db.db_migrations.find({}, {"_id": 0}), key=lambda r: r["id"])


def test_up_runs_all_pending_in_order_and_records_each(project: Project, mongo_db: Any) -> None:
    for name in ("0002_second.py", "0001_first.py", "0003_third.py"):
        project.counter(name)

    result = project.alley("up")

    assert result.returncode == 0, result.output
    assert counters(mongo_db) == {"0001": 1, "0002": 1, "0003": 1}
    saved = records(mongo_db)
    assert [(r["id"], r["filename"]) for r in saved] == [
        (1, "0001_first.py"),
        (2, "0002_second.py"),
        (3, "0003_third.py"),
    ]
    now = datetime.now(UTC).replace(tzinfo=None)
    for record in saved:
        assert isinstance(record["date"], datetime)
        assert now - record["date"] < timedelta(minutes=5)
        assert record["checksum"].startswith("v1:")
        assert record["fake"] is False
        assert {"duration_s", "alley_version", "host", "user", "pid"} <= record.keys()
    assert result.stdout.index("0001_first.py") < result.stdout.index("0002_second.py")


def test_up_to_target_stops_there_and_second_up_does_nothing(
    project: Project, mongo_db: Any
) -> None:
    for name in ("0001_a.py", "0002_b.py", "0003_c.py"):
        project.counter(name)

    assert project.alley("up", "2").returncode == 0
    assert counters(mongo_db) == {"0001": 1, "0002": 1}

    assert project.alley("up").returncode == 0
    again = project.alley("up")
    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert counters(mongo_db) == {"0001": 1, "0002": 1, "0003": 1}


def test_fake_records_without_executing(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    project.counter("0002_b.py")

    result = project.alley("up", "0001", "--fake")

    assert result.returncode == 0, result.output
    assert counters(mongo_db) == {}
    assert [(r["id"], r["fake"]) for r in records(mongo_db)] == [(1, True)]


def test_down_rolls_back_newest_first_to_target(project: Project, mongo_db: Any) -> None:
    order_log = "db.log.insert_one({'n': db.log.count_documents({}), 'what': %r})"
    for name in ("0001_a.py", "0002_b.py", "0003_c.py"):
        project.write(name, up="pass", down=order_log % name)
    assert project.alley("up").returncode == 0

    result = project.alley("down", "2")

    assert result.returncode == 0, result.output
    rolled = [d["what"] for d in mongo_db.log.find().sort("n", 1)]
    assert rolled == ["0003_c.py", "0002_b.py"]
    assert [r["filename"] for r in records(mongo_db)] == ["0001_a.py"]


def test_status_lists_applied_with_dates_and_pending_one_per_line(
    project: Project, mongo_db: Any
) -> None:
    project.counter("0001_a.py")
    project.counter("0002_b.py")
    project.counter("0003_c.py")
    assert project.alley("up", "1").returncode == 0

    result = project.alley("status")

    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    applied = [line for line in lines if line.startswith("applied")]
    pending = [line for line in lines if line.startswith("pending")]
    assert len(applied) == 1
    assert "0001_a.py" in applied[0]
    assert " UTC" in applied[0]
    assert [line.split()[1] for line in pending] == ["0002_b.py", "0003_c.py"]
    assert lines[-1] == "1 applied, 2 pending"


def test_status_check_exits_7_when_pending_and_0_when_up_to_date(project: Project) -> None:
    project.counter("0001_a.py")

    assert project.alley("status", "--check").returncode == 7
    assert project.alley("up").returncode == 0
    assert project.alley("status", "--check").returncode == 0


def test_status_json(project: Project) -> None:
    import json

    project.counter("0001_a.py")
    project.counter("0002_b.py")
    assert project.alley("up", "1").returncode == 0

    data = json.loads(project.alley("status", "--json").stdout)

    assert [(m["filename"], m["state"]) for m in data["migrations"]] == [
        ("0001_a.py", "applied"),
        ("0002_b.py", "pending"),
    ]
    assert data["applied"] == 1
    assert data["pending"] == 1
    assert data["migrations"][0]["applied_at"]


def test_connection_options_before_path_as_in_0_0_3(
    project: Project, mongo_db: Any, mongodb_server: Any
) -> None:
    from urllib.parse import urlsplit

    location = urlsplit(mongodb_server.uri)
    project.counter("0001_a.py")
    outside = project.root.parent

    result = project.alley(
        "-db",
        mongo_db.name,
        "-h",
        location.hostname or "localhost",
        "-p",
        str(location.port or 27017),
        str(project.root),
        "up",
        url=False,
        cwd=outside,
    )

    assert result.returncode == 0, result.output
    assert counters(mongo_db) == {"0001": 1}


def test_settings_from_environment_and_path_autodetected(project: Project, mongo_db: Any) -> None:
    project.counter("0001_a.py")
    nested = project.folder / "deeper"
    nested.mkdir()

    result = project.alley("up", url=False, env={"ALLEY_URL": project.uri}, cwd=project.root)

    assert result.returncode == 0, result.output
    assert counters(mongo_db) == {"0001": 1}


def test_settings_from_pyproject(project: Project, mongo_db: Any) -> None:
    (project.root / "pyproject.toml").write_text(
        f'[tool.alley]\nurl = "{project.uri}"\npath = "."\n'
    )
    project.counter("0001_a.py")
    sub = project.root / "src"
    sub.mkdir()

    result = project.alley("up", url=False, cwd=sub)

    assert result.returncode == 0, result.output
    assert counters(mongo_db) == {"0001": 1}


def test_create_needs_no_server(project: Project) -> None:
    result = project.alley(
        "--url",
        "mongodb://127.0.0.1:9/nowhere",
        "--timeout",
        "0.2",
        "create",
        "Add Users!",
        url=False,
    )

    assert result.returncode == 0, result.output
    assert (project.folder / "0001_add_users_.py").is_file()
    second = project.alley("create", "second", url=False)
    assert second.returncode == 0
    assert (project.folder / "0002_second.py").is_file()


def test_create_makes_the_migrations_folder(tmp_path: Any, project: Project) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()

    result = project.alley(str(fresh), "create", "init", url=False)

    assert result.returncode == 0, result.output
    written = fresh / "migrations" / "0001_init.py"
    assert written.is_file()
    namespace: dict[str, Any] = {}
    exec(written.read_text(), namespace)
    assert namespace["up"](None) is None
    assert namespace["down"](None) is None


def test_plugins_lists_the_defaults(project: Project) -> None:
    import json

    result = project.alley("plugins", "--json", url=False)

    assert result.returncode == 0, result.output
    names = {p["name"]: p for p in json.loads(result.stdout)}
    assert {"filesystem", "ordering", "python", "mongoengine", "mongo-history"} <= names.keys()
    assert "alley_history_store" in names["mongo-history"]["hooks"]


def test_checksums_are_cached_by_content_and_an_edit_is_checksummed_anew(
    project: Project,
) -> None:
    for number in (1, 2, 3):
        project.counter(f"{number:04}_m.py")
    assert project.alley("up").returncode == 0
    cache = project.root / ".alley-cache"  # ALLEY_CACHE_DIR of Project's commands
    (cached,) = cache.glob("checksums-v1-py*.txt")
    assert len(cached.read_text().splitlines()) == 3
    written = cached.stat().st_mtime_ns

    assert project.alley("status").returncode == 0
    assert cached.stat().st_mtime_ns == written  # every checksum was found: nothing written

    project.write("0002_m.py", up="db.other.insert_one({})")
    status = project.alley("status")

    assert "changed" in status.stdout  # the edit is seen as drift, never hidden by the cache
    assert len(cached.read_text().splitlines()) == 4


def test_history_is_read_from_the_database_even_without_the_files(
    project: Project, tmp_path: Any
) -> None:
    project.counter("0001_m.py")
    assert project.alley("up").returncode == 0
    elsewhere = tmp_path / "no-migrations-here"
    elsewhere.mkdir()

    history = project.alley(str(elsewhere), "history")

    assert history.returncode == 0, history.output
    assert "succeeded" in history.stdout
    assert "0001_m.py" in history.stdout


def test_migrations_import_the_projects_own_code(project: Project, mongo_db: Any) -> None:
    # The alley script's own folder, not the current one, is first on sys.path: the
    # project's root (where pyproject.toml is, else the current folder) is put first.
    package = project.root / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text("DEFAULT_PLAN = 'free'\n")
    project.write(
        "0001_default_plan.py",
        header="from myapp.settings import DEFAULT_PLAN\n",
        up="db.plans.insert_one({'_id': 'default', 'name': DEFAULT_PLAN})",
    )

    project.write("0002_again.py", header="import myapp.settings\n")

    from_root = project.alley("up", "1")  # no pyproject.toml: the current folder
    (project.root / "pyproject.toml").write_text("[project]\nname = 'myapp'\n")
    from_inside = project.alley("up", cwd=project.root / "migrations")

    assert from_root.returncode == 0, from_root.output
    assert mongo_db.plans.find_one({"_id": "default"}) == {"_id": "default", "name": "free"}
    assert from_inside.returncode == 0, from_inside.output
    assert "0002_again.py" in from_inside.stdout


def test_a_src_layout_is_importable_with_sys_path_in_pyproject(
    project: Project, mongo_db: Any
) -> None:
    (project.root / "pyproject.toml").write_text('[tool.alley]\nsys_path = ["src"]\n')
    (project.root / "src" / "shop").mkdir(parents=True)
    (project.root / "src" / "shop" / "__init__.py").write_text("CURRENCY = 'EUR'\n")
    project.write(
        "0001_currency.py",
        up="from shop import CURRENCY\ndb.config.insert_one({'_id': 'currency', 'v': CURRENCY})",
    )

    assert project.alley("up").returncode == 0
    assert mongo_db.config.find_one({"_id": "currency"}) == {"_id": "currency", "v": "EUR"}

    unset = project.alley("down", "1", env={"ALLEY_SYS_PATH": ""})
    assert unset.returncode == 0  # down does not import it

    project.write("0001_currency.py", up="from shop import CURRENCY")
    refused = project.alley("up", "--allow-drift", env={"ALLEY_SYS_PATH": ""})
    assert refused.returncode == 1, refused.output
    assert "ModuleNotFoundError: No module named 'shop'" in refused.stderr
