"""The example plugins in examples/plugins/, installed by pip as distributions.

Each example is installed with alley itself into a fresh virtual environment, and the
real ``alley`` command of that environment is run: the plugin is found only through its
``alley`` entry point (nothing is registered in process, and this process cannot even
import it). Then each example's own test suite runs inside its environment, against
this session's server.

The environments see the packages of the environment running the tests (pymongo,
pytest, hatchling…) through a ``.pth`` file, so ``pip install --no-deps
--no-build-isolation --no-index`` works offline and takes a few seconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import site
import sqlite3
import subprocess
import sys
import sysconfig
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alley.testing.s3 import S3Server

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "plugins"
PACKAGE_PLUGIN = EXAMPLES / "alley-package-migrations"
CONTROL_PLUGIN = EXAMPLES / "alley-control-history"
SQLITE_PLUGIN = EXAMPLES / "alley-sqlite-history"
S3_PLUGIN = EXAMPLES / "alley-s3"
SAMPLE_APP = PACKAGE_PLUGIN / "tests" / "sample_app"
SAMPLE_FILES = ["0001_create_users.py", "0002_add_email.py"]


@dataclass
class Venv:
    """A virtual environment with alley and one example plugin installed by pip."""

    root: Path
    own_tests: Suite | None = None

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return Path(
            sysconfig.get_path("purelib", vars={"base": str(self.root), "platbase": str(self.root)})
        )

    def run(
        self, *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
        environment.pop("MONGODB_URI", None)
        environment["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written into examples/
        environment.update(env or {})
        return subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def alley(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The ``alley`` console script that pip installed into this environment."""
        return self.run(self.root / "bin" / "alley", *args, cwd=cwd, env=env)


def make_venv(root: Path, *distributions: Path) -> Venv:
    """``python -m venv`` at ``root``, then ``pip install`` alley and ``distributions``."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    venv = Venv(root)
    # The running environment's packages (pip and hatchling included), after the new
    # environment's own: what pip installs there wins over what is seen through this.
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], *site.getsitepackages()])
    (venv.site_packages / "_outer_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in outer)
    )
    completed = venv.run(
        venv.python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        REPO,
        *distributions,
        cwd=root,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return venv


@dataclass
class Suite:
    """An example's own test suite, running in the background in its environment."""

    process: subprocess.Popen[str]
    report: Path
    output: Path

    def wait(self, timeout: float = 300) -> tuple[int, str]:
        self.process.wait(timeout=timeout)
        return self.process.returncode, self.output.read_text()


def start_own_tests(venv: Venv, example: Path, uri: str) -> Suite:
    """``pytest`` in ``example`` with the environment's Python, against the server at ``uri``.

    Started as soon as the environment exists, so it runs while the other tests do.
    """
    report, output = venv.root / "own-tests.xml", venv.root / "own-tests.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
    environment.pop("MONGODB_URI", None)
    environment.update(PYTHONDONTWRITEBYTECODE="1", ALLEY_TEST_MONGODB_URI=uri)
    with output.open("w") as log:
        process = subprocess.Popen(
            [str(venv.python), "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}"],
            cwd=example,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return Suite(process, report, output)


@pytest.fixture(scope="module")
def package_env(tmp_path_factory: pytest.TempPathFactory, mongodb_uri: str) -> Iterator[Venv]:
    venv = make_venv(tmp_path_factory.mktemp("venv") / "package", PACKAGE_PLUGIN, SAMPLE_APP)
    yield from with_own_tests(venv, PACKAGE_PLUGIN, mongodb_uri)


@pytest.fixture(scope="module")
def control_env(tmp_path_factory: pytest.TempPathFactory, mongodb_uri: str) -> Iterator[Venv]:
    venv = make_venv(tmp_path_factory.mktemp("venv") / "control", CONTROL_PLUGIN)
    yield from with_own_tests(venv, CONTROL_PLUGIN, mongodb_uri)


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory, mongodb_uri: str) -> Iterator[Venv]:
    venv = make_venv(tmp_path_factory.mktemp("venv") / "sqlite", SQLITE_PLUGIN)
    yield from with_own_tests(venv, SQLITE_PLUGIN, mongodb_uri)


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory: pytest.TempPathFactory, mongodb_uri: str) -> Iterator[Venv]:
    venv = make_venv(tmp_path_factory.mktemp("venv") / "s3", S3_PLUGIN)
    yield from with_own_tests(venv, S3_PLUGIN, mongodb_uri)


def with_own_tests(venv: Venv, example: Path, uri: str) -> Iterator[Venv]:
    venv.own_tests = start_own_tests(venv, example, uri)
    try:
        yield venv
    finally:
        if venv.own_tests.process.poll() is None:  # not waited for: -k left its test out
            venv.own_tests.process.kill()
            venv.own_tests.process.wait()


@pytest.fixture
def other_db(new_mongo_db: Any) -> Any:
    return new_mongo_db("alley_test")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A project folder with one migration of its own, 0003_local.py."""
    folder = tmp_path / "app" / "migrations"
    folder.mkdir(parents=True)
    (folder / "0003_local.py").write_text(
        "def up(db):\n    db.local.insert_one({'n': 3})\n\n\ndef down(db):\n    pass\n"
    )
    return folder.parent


def applied(db: Any) -> list[str]:
    return sorted(record["filename"] for record in db.db_migrations.find())


def plugin_names(
    venv: Venv, cwd: Path, *options: str, env: dict[str, str] | None = None
) -> list[str]:
    result = venv.alley(*options, "plugins", "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return [plugin["name"] for plugin in json.loads(result.stdout)]


def test_nothing_is_registered_in_this_process() -> None:
    for module in (
        "alley_package_migrations",
        "alley_control_history",
        "alley_sqlite_history",
        "alley_s3",
        "sample_app",
    ):
        assert importlib.util.find_spec(module) is None, module


def test_package_plugin_from_its_distribution_runs_the_wheels_migrations(
    package_env: Venv, app: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    listed = package_env.alley("plugins", cwd=app)
    where = package_env.run(
        package_env.python,
        "-c",
        "import alley, alley_package_migrations, sample_app.migrations as m; "
        "print(alley.__file__, alley_package_migrations.__file__, m.__file__)",
        cwd=app,
    )
    up = package_env.alley(
        "--url", mongo_db_uri, "-o", "package_migrations=sample_app.migrations", "up", cwd=app
    )
    status = package_env.alley(
        "--url",
        mongo_db_uri,
        "-o",
        "package_migrations=sample_app.migrations",
        "status",
        "--json",
        cwd=app,
    )

    assert listed.returncode == 0, listed.stderr
    assert (
        "package-migrations  installed  alley-package-migrations 0.1.0  "
        "alley_package_migrations  [alley_discover_migrations]"
    ) in listed.stdout.splitlines()
    # alley, the plugin and the migrations all come from what pip installed.
    assert all(Path(p).is_relative_to(package_env.site_packages) for p in where.stdout.split())
    assert up.returncode == 0, up.stderr
    assert applied(mongo_db) == [*SAMPLE_FILES, "0003_local.py"]
    assert list(mongo_db.users.find()) == [{"_id": "ada", "name": "Ada", "email": None}]
    assert mongo_db.local.count_documents({}) == 1
    locations = [m["location"] for m in json.loads(status.stdout)["migrations"]]
    assert locations == [
        *(f"package:sample_app.migrations/{name}" for name in SAMPLE_FILES),
        str(app / "migrations" / "0003_local.py"),
    ]


@pytest.mark.parametrize(
    ("disable", "env"),
    [
        (("--disable-plugin", "package-migrations"), {}),
        ((), {"ALLEY_DISABLE_PLUGINS": "package-migrations"}),
        ((), {"ALLEY_LOAD_PLUGINS": ""}),  # installed plugins: none; the defaults only
    ],
    ids=["--disable-plugin", "ALLEY_DISABLE_PLUGINS", "ALLEY_LOAD_PLUGINS="],
)
def test_package_plugin_disabled_gives_the_default_behaviour(
    package_env: Venv,
    app: Path,
    mongo_db: Any,
    mongo_db_uri: str,
    disable: tuple[str, ...],
    env: dict[str, str],
) -> None:
    options = ("--url", mongo_db_uri, "-o", "package_migrations=sample_app.migrations", *disable)

    listed = plugin_names(package_env, app, *disable, env=env)
    up = package_env.alley(*options, "up", cwd=app, env=env)

    assert "package-migrations" not in listed
    assert "filesystem" in listed
    assert up.returncode == 0, up.stderr
    assert applied(mongo_db) == ["0003_local.py"]
    assert "users" not in mongo_db.list_collection_names()


def test_control_plugin_from_its_distribution_records_in_the_control_database(
    control_env: Venv,
    app: Path,
    mongo_db: Any,
    mongo_db_uri: str,
    other_db: Any,
    mongodb_server: Any,
) -> None:
    control_url = mongodb_server.uri_for_database(other_db.name)
    option = f"control_url={control_url}"

    listed = plugin_names(control_env, app)
    up = control_env.alley("--url", mongo_db_uri, "-o", option, "up", cwd=app)

    assert "control-history" in listed
    assert up.returncode == 0, up.stderr
    assert mongo_db.local.count_documents({}) == 1
    assert not [n for n in mongo_db.list_collection_names() if n.startswith("db_migrations")]
    [record] = other_db[f"db_migrations_{mongo_db.name}"].find()
    assert (record["id"], record["filename"]) == (3, "0003_local.py")
    assert record["date"] is not None

    down = control_env.alley("--url", mongo_db_uri, "-o", option, "down", "3", cwd=app)
    assert down.returncode == 0, down.stderr
    assert other_db[f"db_migrations_{mongo_db.name}"].count_documents({}) == 0


def test_control_plugin_disabled_gives_the_default_store(
    control_env: Venv,
    app: Path,
    mongo_db: Any,
    mongo_db_uri: str,
    other_db: Any,
    mongodb_server: Any,
) -> None:
    control_url = mongodb_server.uri_for_database(other_db.name)

    up = control_env.alley(
        "--url",
        mongo_db_uri,
        "-o",
        f"control_url={control_url}",
        "--disable-plugin",
        "control-history",
        "up",
        cwd=app,
    )

    assert up.returncode == 0, up.stderr
    assert applied(mongo_db) == ["0003_local.py"]
    assert other_db.list_collection_names() == []


def test_sqlite_plugin_from_its_distribution_keeps_history_in_the_sqlite_file(
    sqlite_env: Venv, app: Path, mongo_db: Any, mongo_db_uri: str
) -> None:
    history = app / "alley-history.sqlite3"

    listed = plugin_names(sqlite_env, app)
    created = sqlite_env.alley("create", "add_things", cwd=app)
    up = sqlite_env.alley("--url", mongo_db_uri, "up", cwd=app)
    status = sqlite_env.alley("--url", mongo_db_uri, "status", "--json", cwd=app)

    assert "sqlite-history" in listed
    assert created.returncode == 0, created.stderr
    assert (app / "migrations" / "0004_add_things.py").is_file()
    assert up.returncode == 0, up.stderr
    assert mongo_db.local.count_documents({}) == 1
    # History is in the file beside the project; none in the target database.
    assert not [n for n in mongo_db.list_collection_names() if n.startswith("db_migrations")]
    assert sqlite_rows(history, "SELECT id, filename FROM records ORDER BY id") == [
        (3, "0003_local.py"),
        (4, "0004_add_things.py"),
    ]
    assert status.returncode == 0, status.stderr
    assert [(m["filename"], m["state"]) for m in json.loads(status.stdout)["migrations"]] == [
        ("0003_local.py", "applied"),
        ("0004_add_things.py", "applied"),
    ]

    down = sqlite_env.alley("--url", mongo_db_uri, "down", "3", cwd=app)

    assert down.returncode == 0, down.stderr
    assert sqlite_rows(history, "SELECT * FROM records") == []
    assert sqlite_rows(history, "SELECT direction, filename, event FROM run_log") == [
        ("up", "0003_local.py", "succeeded"),
        ("up", "0004_add_things.py", "succeeded"),
        ("down", "0004_add_things.py", "succeeded"),
        ("down", "0003_local.py", "succeeded"),
    ]
    assert sqlite_rows(history, "SELECT * FROM open_attempts") == []
    assert not [n for n in mongo_db.list_collection_names() if n.startswith("db_migrations")]


def test_s3_plugin_from_its_distribution_runs_the_buckets_migrations(
    s3_env: Venv, tmp_path: Path, mongo_db: Any, mongo_db_uri: str, s3_server: S3Server
) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )
    bucket = f"alley-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for i, name in enumerate(("create_users", "add_email", "index"), start=1):
        s3.put_object(
            Bucket=bucket,
            Key=f"m/{i:04}_{name}.py",
            Body=f"def up(db):\n    db.steps.insert_one({{'_id': {i}}})\n\n\n"
            "def down(db):\n    pass\n".encode(),
        )
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    options = ("--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/")
    env = s3_server.env()  # boto3's own variables: endpoint, region, credentials

    listed = s3_env.alley("plugins", cwd=deploy, env=env)
    up = s3_env.alley(*options, "up", cwd=deploy, env=env)
    s3.put_object(Bucket=bucket, Key="m/0002_add_email.py", Body=b"def up(db):\n    pass\n")
    status = s3_env.alley(*options, "status", "--json", cwd=deploy, env=env)
    verify = s3_env.alley(*options, "verify", cwd=deploy, env=env)

    assert listed.returncode == 0, listed.stderr
    assert (
        "s3  installed  alley-s3 0.1.0  alley_s3  "
        "[alley_create_migration, alley_discover_migrations]"
    ) in listed.stdout.splitlines()
    assert up.returncode == 0, up.stderr
    assert applied(mongo_db) == ["0001_create_users.py", "0002_add_email.py", "0003_index.py"]
    assert sorted(doc["_id"] for doc in mongo_db.steps.find()) == [1, 2, 3]
    assert status.returncode == 0, status.stderr
    drift = [m["drift"] for m in json.loads(status.stdout)["migrations"]]
    assert drift == [None, "changed", None]
    assert verify.returncode == 6, verify.stdout + verify.stderr


def sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    """``query`` on a SQLite history file, opened read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(query).fetchall()


@pytest.mark.parametrize(
    ("venv_fixture", "ran_expected", "skip_reason"),
    [
        ("package_env", {"test_package_source_plugin"}, None),
        (
            "control_env",
            {
                "test_control_history_plugin",
                "test_control_history_store_contract.TestControlHistoryStore",
            },
            None,
        ),
        (
            "sqlite_env",
            {
                "test_sqlite_history_plugin",
                "test_sqlite_store_contract.TestSqliteHistoryStore",
            },
            # 0.0.3 never wrote to SQLite: the contract's tests of its records skip.
            "no seed_003_record fixture",
        ),
        ("s3_env", {"test_s3_plugin", "test_s3_server"}, None),
    ],
    ids=["package", "control", "sqlite", "s3"],
)
def test_the_examples_own_tests_pass_where_the_example_is_installed(
    request: pytest.FixtureRequest,
    venv_fixture: str,
    ran_expected: set[str],
    skip_reason: str | None,
) -> None:
    venv: Venv = request.getfixturevalue(venv_fixture)
    assert venv.own_tests is not None

    returncode, output = venv.own_tests.wait()

    assert returncode == 0, output
    suite = ET.parse(venv.own_tests.report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors")}
    assert counts["tests"] >= 5
    assert counts["failures"] == counts["errors"] == 0, counts
    # Nothing skipped (a missing server errors, it never skips) but the expected: strict
    # xfails (JUnit reports them as skipped) and, where said, skips for that reason.
    cases = list(suite.iter("testcase"))
    for case in cases:
        skipped = case.find("skipped")
        if skipped is not None and skipped.get("type") != "pytest.xfail":
            reason = skipped.get("message", "")
            assert skip_reason is not None, f"{case.get('name')} skipped: {reason}"
            assert skip_reason in reason, f"{case.get('name')} skipped: {reason}"
    ran = {case.get("classname", "").removeprefix("tests.") for case in cases}
    assert ran == ran_expected
    assert "alley.testing: using" in output  # this session's server, given by URI
