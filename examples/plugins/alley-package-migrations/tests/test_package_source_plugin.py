"""alley-package-migrations, installed, against a real server.

Needs the plugin and ``tests/sample_app`` installed as distributions (``pip install .
./tests/sample_app``): the plugin is found through its entry point, and the sample's
migrations are read from where its wheel was installed. The server and a fresh database
per test come from alley's pytest plugin (``mongo_db``, ``mongo_db_uri``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from alley_package_migrations import configured_packages, package_migrations

from alley.errors import DiscoveryError
from alley.settings import Settings

ALLEY = shutil.which("alley", path=os.path.dirname(sys.executable)) or shutil.which("alley")
SAMPLE = "sample_app.migrations"
SAMPLE_FILES = ["0001_create_users.py", "0002_add_email.py"]


def alley(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``alley`` command in ``cwd``, without the caller's ALLEY_* variables."""
    assert ALLEY, "the alley command is not installed"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
    environment.pop("MONGODB_URI", None)
    environment.update(env or {})
    return subprocess.run(
        [ALLEY, *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )


def applied(db: Any) -> list[str]:
    return sorted(record["filename"] for record in db.db_migrations.find())


def nothing_ran(db: Any) -> bool:
    """No migration ran and none was recorded (the lock may have been taken and released)."""
    names = set(db.list_collection_names())
    return not names & {"users", "local", "db_migrations"}


def local_migration(root: Path, filename: str, collection: str = "local") -> None:
    folder = root / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(
        f"def up(db):\n    db.{collection}.insert_one({{'from': {filename!r}}})\n\n\n"
        f"def down(db):\n    db.{collection}.delete_many({{}})\n"
    )


@pytest.fixture
def deploy_dir(tmp_path: Path) -> Path:
    """An empty directory: no migrations/ folder, no pyproject.toml."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    return folder


def test_the_installed_plugin_is_listed_with_its_distribution(deploy_dir: Path) -> None:
    result = alley(deploy_dir, "plugins", "--json")

    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert plugins["package-migrations"] == {
        "name": "package-migrations",
        "module": "alley_package_migrations",
        "distribution": "alley-package-migrations",
        "version": "0.1.0",
        "hooks": ["alley_discover_migrations"],
        "default": False,
    }


def test_up_runs_the_migrations_of_the_installed_package(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    result = alley(deploy_dir, "--url", mongo_db_uri, "-o", f"package_migrations={SAMPLE}", "up")

    assert result.returncode == 0, result.stderr
    assert list(mongo_db.users.find()) == [{"_id": "ada", "name": "Ada", "email": None}]
    records = sorted(mongo_db.db_migrations.find(), key=lambda record: record["id"])
    assert [(r["id"], r["filename"]) for r in records] == [
        (1, SAMPLE_FILES[0]),
        (2, SAMPLE_FILES[1]),
    ]
    assert all(r["date"] is not None for r in records)

    status = alley(
        deploy_dir, "--url", mongo_db_uri, "-o", f"package_migrations={SAMPLE}", "status", "--json"
    )
    assert status.returncode == 0, status.stderr
    migrations = json.loads(status.stdout)["migrations"]
    assert [(m["state"], m["location"]) for m in migrations] == [
        ("applied", f"package:{SAMPLE}/{SAMPLE_FILES[0]}"),
        ("applied", f"package:{SAMPLE}/{SAMPLE_FILES[1]}"),
    ]


def test_the_package_can_be_named_in_the_config_table(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    (deploy_dir / "pyproject.toml").write_text(f'[tool.alley]\npackage_migrations = ["{SAMPLE}"]\n')

    result = alley(deploy_dir, "--url", mongo_db_uri, "up", "1")

    assert result.returncode == 0, result.stderr
    assert applied(mongo_db) == SAMPLE_FILES[:1]


def test_coexists_with_the_migrations_folder(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    local_migration(deploy_dir, "0003_local.py")

    result = alley(deploy_dir, "--url", mongo_db_uri, "-o", f"package_migrations={SAMPLE}", "up")

    assert result.returncode == 0, result.stderr
    assert applied(mongo_db) == [*SAMPLE_FILES, "0003_local.py"]
    assert mongo_db.local.count_documents({}) == 1
    assert mongo_db.users.count_documents({}) == 1


def test_one_id_in_both_sources_is_an_error_naming_both(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    local_migration(deploy_dir, "0001_clash.py")

    result = alley(deploy_dir, "--url", mongo_db_uri, "-o", f"package_migrations={SAMPLE}", "up")

    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert "two migrations have id 1" in line
    assert str(deploy_dir / "migrations" / "0001_clash.py") in line
    assert f"package:{SAMPLE}/0001_create_users.py" in line
    assert nothing_ran(mongo_db)


def test_disabling_the_filesystem_default_makes_the_package_the_only_source(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    local_migration(deploy_dir, "0003_local.py")

    result = alley(
        deploy_dir,
        "--url",
        mongo_db_uri,
        "-o",
        f"package_migrations={SAMPLE}",
        "--disable-plugin",
        "filesystem",
        "up",
    )

    assert result.returncode == 0, result.stderr
    assert applied(mongo_db) == SAMPLE_FILES
    assert mongo_db.local.count_documents({}) == 0


def test_create_numbers_after_the_package_when_there_is_no_folder_yet(deploy_dir: Path) -> None:
    result = alley(deploy_dir, "-o", f"package_migrations={SAMPLE}", "create", "local fix")

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (deploy_dir / "migrations").iterdir()) == ["0003_local_fix.py"]


def test_down_removes_only_what_it_rolls_back(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    options = ("--url", mongo_db_uri, "-o", f"package_migrations={SAMPLE}")
    assert alley(deploy_dir, *options, "up").returncode == 0

    result = alley(deploy_dir, *options, "down", "2")

    assert result.returncode == 0, result.stderr
    assert applied(mongo_db) == SAMPLE_FILES[:1]
    assert list(mongo_db.users.find()) == [{"_id": "ada", "name": "Ada"}]


def test_disabled_the_default_behaviour_is_back(
    deploy_dir: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    options = ("--url", mongo_db_uri, "-o", f"package_migrations={SAMPLE}")

    result = alley(deploy_dir, *options, "--disable-plugin", "package-migrations", "up")
    from_env = alley(
        deploy_dir, *options, "up", env={"ALLEY_DISABLE_PLUGINS": "package-migrations"}
    )

    for run in (result, from_env):
        assert run.returncode == 3
        assert "no migrations/ folder" in run.stderr
    assert nothing_ran(mongo_db)


def test_a_package_that_cannot_be_imported_is_a_configuration_error(
    deploy_dir: Path, mongo_db_uri: str
) -> None:
    result = alley(
        deploy_dir,
        "--url",
        mongo_db_uri,
        "-o",
        "package_migrations=no_such_app.migrations",
        "status",
    )

    assert result.returncode == 3
    assert result.stderr.startswith(
        "alley: error: package_migrations: cannot import 'no_such_app.migrations'"
    )


# -- in process: the discovery function itself ---------------------------------------------


def test_migrations_are_read_from_a_zipped_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped_app_pm/__init__.py", "")
        zipped.writestr("zipped_app_pm/migrations/__init__.py", "")
        zipped.writestr("zipped_app_pm/migrations/0007_from_zip.py", "def up(db):\n    pass\n")
        zipped.writestr("zipped_app_pm/migrations/7_Not_A_Migration.py", "")
    monkeypatch.syspath_prepend(str(archive))

    [migration] = package_migrations("zipped_app_pm.migrations")

    assert (migration.id, migration.name, migration.filename) == (7, "from_zip", "0007_from_zip.py")
    assert migration.location == "package:zipped_app_pm.migrations/0007_from_zip.py"
    assert migration.source == "def up(db):\n    pass\n"


def test_a_module_is_not_a_package() -> None:
    with pytest.raises(DiscoveryError, match="is a module, not a package"):
        package_migrations("json.decoder")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.migrations", ("a.migrations",)),
        ("a.migrations, b.migrations,", ("a.migrations", "b.migrations")),
        (["a.migrations", " b.migrations "], ("a.migrations", "b.migrations")),
        ("", ()),
    ],
)
def test_configured_packages(value: object, expected: tuple[str, ...]) -> None:
    assert configured_packages(Settings(options={"package_migrations": value})) == expected
    assert configured_packages(Settings()) == ()
