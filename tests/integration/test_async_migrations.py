"""``async def up(db)`` / ``down(db)`` migrations on PyMongo's AsyncMongoClient, and
the awaitable API (:mod:`alley.aio`), against the real server.

Most tests run twice, with the same migration written as ``def`` and as ``async def``
(the ``form`` fixture): an async step is run, logged, counted and refused exactly as a
sync one. Waits are on files with deadlines; nothing sleeps for a fixed time outside
the migrations' own bodies.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alley import aio, api, hookcalls
from alley.errors import ConfigError, MigrationFailed
from alley.hookspecs import hookimpl
from alley.settings import Settings, load_settings
from alley_plugins import mongoengine_connection
from conftest import Project, finish, wait_for

FAILED, USAGE_CONFIG, INTEGRITY, PENDING = 1, 3, 6, 7
DOCS = Path(__file__).resolve().parents[2] / "docs" / "async.md"


@dataclass(frozen=True)
class Form:
    """How a migration's functions are written: ``def`` (sync) or ``async def``."""

    name: str

    @property
    def is_async(self) -> bool:
        return self.name == "async"

    def source(self, up: str, down: str = "pass", header: str = "") -> str:
        """A migration file. In the bodies, ``AWAIT `` is ``await `` for the async form
        and nothing for the sync one; ``SLEEP(s)`` waits ``s`` seconds in either."""
        keyword = "async def" if self.is_async else "def"
        sleep = "await asyncio.sleep" if self.is_async else "time.sleep"

        def body(code: str) -> str:
            code = textwrap.dedent(code).strip()
            code = code.replace("AWAIT ", "await " if self.is_async else "")
            return textwrap.indent(code.replace("SLEEP(", f"{sleep}("), "    ")

        return (
            f"import asyncio\nimport os\nimport time\n{textwrap.dedent(header)}\n\n"
            f"{keyword} up(db):\n{body(up)}\n\n\n{keyword} down(db):\n{body(down)}\n"
        )

    def write(self, project: Project, filename: str, up: str, down: str = "pass") -> Path:
        path = project.folder / filename
        path.write_text(self.source(up, down))
        return path


@pytest.fixture(params=["sync", "async"])
def form(request: pytest.FixtureRequest) -> Form:
    return Form(request.param)


def log_events(db: Any, filename: str) -> list[dict[str, Any]]:
    return list(db.db_migrations_log.find({"filename": filename}).sort("seq"))


# -------------------------------------------------------------------------
# up, down, failures
# -------------------------------------------------------------------------


def test_up_then_down_on_the_database_of_its_form(
    project: Project, mongo_db: Any, form: Form
) -> None:
    form.write(
        project,
        "0001_items.py",
        up="AWAIT db.items.insert_one({'_id': 1, 'db': type(db).__name__})",
        down="AWAIT db.items.delete_one({'_id': 1})",
    )

    applied = project.alley("up")

    assert applied.returncode == 0, applied.output
    expected = "AsyncDatabase" if form.is_async else "Database"
    assert mongo_db.items.find_one({"_id": 1}) == {"_id": 1, "db": expected}
    assert mongo_db.db_migrations.count_documents({"filename": "0001_items.py"}) == 1

    rolled_back = project.alley("down")

    assert rolled_back.returncode == 0, rolled_back.output
    assert mongo_db.items.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 0
    events = [(e["direction"], e["event"]) for e in log_events(mongo_db, "0001_items.py")]
    assert events == [("up", "succeeded"), ("down", "succeeded")]


def test_a_failure_that_wrote_nothing_runs_again_on_the_next_up(
    project: Project, mongo_db: Any, form: Form
) -> None:
    armed = project.root / "armed"
    armed.touch()
    form.write(
        project,
        "0001_fails.py",
        up=f"""
        AWAIT db.items.find_one({{}})
        if os.path.exists({str(armed)!r}):
            raise ValueError("not yet")
        AWAIT db.items.insert_one({{'_id': 1}})
        """,
    )

    failed = project.alley("up")

    assert failed.returncode == FAILED, failed.output
    assert "0001_fails.py failed (up): ValueError: not yet" in failed.stderr
    assert "Traceback" not in failed.output
    [entry] = [e for e in log_events(mongo_db, "0001_fails.py") if e["event"] == "failed"]
    assert entry["writes"] == 0
    assert "it wrote nothing" in entry["error"]

    armed.unlink()
    again = project.alley("up")

    assert again.returncode == 0, again.output
    assert mongo_db.items.count_documents({"_id": 1}) == 1


def test_a_failure_after_writing_waits_for_retry(
    project: Project, mongo_db: Any, form: Form
) -> None:
    armed = project.root / "armed"
    armed.touch()
    form.write(
        project,
        "0001_half.py",
        up=f"""
        AWAIT db.items.update_one({{'_id': 1}}, {{'$inc': {{'n': 1}}}}, upsert=True)
        if os.path.exists({str(armed)!r}):
            raise ValueError("half-way")
        """,
    )

    failed = project.alley("up")

    assert failed.returncode == FAILED, failed.output
    [entry] = [e for e in log_events(mongo_db, "0001_half.py") if e["event"] == "failed"]
    assert entry["writes"] == 1
    assert "it wrote update items" in entry["error"]

    armed.unlink()
    refused = project.alley("up")

    assert refused.returncode == INTEGRITY, refused.output
    assert "--retry" in refused.stderr
    assert mongo_db.items.find_one({"_id": 1})["n"] == 1

    retried = project.alley("up", "--retry")

    assert retried.returncode == 0, retried.output
    assert mongo_db.items.find_one({"_id": 1})["n"] == 2


def gated(form: Form, project: Project) -> tuple[Path, Path]:
    """``0001_gated.py``: writes a document, creates *waiting*, then waits while
    *armed* exists (at most 60 s)."""
    armed, waiting = project.root / "armed", project.root / "waiting"
    armed.touch()
    form.write(
        project,
        "0001_gated.py",
        up=f"""
        AWAIT db.items.insert_one({{'_id': 1}})
        open({str(waiting)!r}, "w").close()
        deadline = time.monotonic() + 60
        while os.path.exists({str(armed)!r}) and time.monotonic() < deadline:
            SLEEP(0.02)
        """,
    )
    return armed, waiting


def test_kill_9_half_way_leaves_the_step_for_a_person(
    project: Project, mongo_db: Any, form: Form
) -> None:
    armed, waiting = gated(form, project)
    project.counter("0002_after.py")

    victim = project.spawn("--lease", "2", "up")
    wait_for(waiting.exists, what="the migration to start")
    victim.send_signal(signal.SIGKILL)
    finish(victim)
    armed.unlink()

    next_up = project.alley("--lease", "2", "--lock-timeout", "30", "up")

    assert next_up.returncode == INTEGRITY, next_up.output
    assert "0001_gated.py" in next_up.stderr
    assert "interrupted" in next_up.stderr
    assert mongo_db.items.count_documents({}) == 1
    assert mongo_db.counters.count_documents({}) == 0
    events = [e["event"] for e in log_events(mongo_db, "0001_gated.py")]
    assert events == ["interrupted"]


@pytest.mark.parametrize(
    ("signum", "code", "error"),
    [
        (signal.SIGINT, 130, "interrupted by the user (Ctrl-C)"),
        (signal.SIGTERM, 143, "terminated (SIGTERM)"),
    ],
)
def test_ctrl_c_and_sigterm_log_the_step_interrupted(
    project: Project, mongo_db: Any, form: Form, signum: int, code: int, error: str
) -> None:
    armed, waiting = gated(form, project)

    run = project.spawn("--lease", "30", "up")
    wait_for(waiting.exists, what="the migration to start")
    run.send_signal(signum)
    stopped = finish(run)
    armed.unlink()

    assert stopped.returncode == code, stopped.output
    [entry] = log_events(mongo_db, "0001_gated.py")
    assert (entry["event"], entry["error"]) == ("interrupted", error)
    assert entry["writes"] == 1
    lock = mongo_db.db_migrations_lock.find_one() or {}
    assert lock.get("holder") is None or lock.get("released"), lock


# -------------------------------------------------------------------------
# A mixed folder; refusals
# -------------------------------------------------------------------------


def test_sync_and_async_migrations_mix_in_one_folder_and_share_one_async_client(
    project: Project, mongo_db: Any
) -> None:
    for n, form in enumerate([Form("sync"), Form("async"), Form("sync"), Form("async")], 1):
        client = "id(db.client)" if form.is_async else "None"
        form.write(
            project,
            f"000{n}_step{n}.py",
            up=f"AWAIT db.order.insert_one({{'_id': {n}, 'client': {client}}})",
            down=f"AWAIT db.order.delete_one({{'_id': {n}}})",
        )

    planned = project.alley("up", "--plan")
    assert planned.returncode == PENDING, planned.output  # up --plan: work to do
    assert all(f"000{n}_step{n}.py" in planned.stdout for n in (1, 2, 3, 4))
    assert mongo_db.order.count_documents({}) == 0

    applied = project.alley("up")

    assert applied.returncode == 0, applied.output
    assert mongoengine_connection._opened_async == []  # closed as the command ended
    documents = list(mongo_db.order.find().sort("_id"))
    assert [d["_id"] for d in documents] == [1, 2, 3, 4]
    assert documents[0]["client"] is None
    assert documents[1]["client"] == documents[3]["client"] is not None

    rolled_back = project.alley("down", "--steps", "4")

    assert rolled_back.returncode == 0, rolled_back.output
    assert mongo_db.order.count_documents({}) == 0


def test_a_file_with_an_async_up_and_a_sync_down(project: Project, mongo_db: Any) -> None:
    (project.folder / "0001_half.py").write_text(
        "async def up(db):\n    await db.c.insert_one({'_id': 1})\n\n\n"
        "def down(db):\n    db.c.delete_one({'_id': 1})\n"
    )

    assert project.alley("up").returncode == 0
    assert mongo_db.c.count_documents({}) == 1
    assert project.alley("down").returncode == 0
    assert mongo_db.c.count_documents({}) == 0


class OwnConnection:
    """A connection plugin of an application's own: a plain MongoClient."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.clients: list[Any] = []

    @hookimpl
    def alley_connect(self, settings: Settings) -> Any:
        from pymongo import MongoClient

        client: Any = MongoClient(self.uri, serverSelectionTimeoutMS=5000)
        self.clients.append(client)
        return client.get_default_database()


def test_an_async_migration_is_refused_before_anything_runs_when_another_plugin_connects(
    project: Project, mongo_db: Any
) -> None:
    """A connection plugin without ``alley_connect_async``: alley cannot make an async
    client with its settings, so the pre-flight refuses (exit 3), nothing ran."""
    from alley import Migrations

    Form("sync").write(project, "0001_first.py", up="db.items.insert_one({'sync': 1})")
    Form("async").write(project, "0002_items.py", up="AWAIT db.items.insert_one({})")
    plugin = OwnConnection(project.uri)
    try:
        with pytest.raises(ConfigError, match="no plugin could make an async client") as refused:
            Migrations(project.root, plugins=[("own", plugin)], url=project.uri).up()
    finally:
        for client in plugin.clients:
            client.close()

    assert str(refused.value).startswith(str(project.folder / "0002_items.py"))
    assert refused.value.exit_code == 3
    assert mongo_db.items.count_documents({}) == 0
    assert log_events(mongo_db, "0001_first.py") == []


def test_a_multi_database_command_runs_async_migrations_on_each_database(
    tmp_path: Path, mongodb_server: Any, mongo_client: Any
) -> None:
    """Each database's engine gets its database on alley's own client: its async
    steps get an async client of their own (one per database, in its worker thread)."""
    from test_fleet import Tenants

    group = Tenants(mongo_client, 3)
    try:
        fleet = Project(tmp_path / "app", mongodb_server.uri)
        Form("async").write(
            fleet,
            "0001_tag.py",
            up="AWAIT db.tags.insert_one({'_id': db.name})",
            down="AWAIT db.tags.delete_one({'_id': db.name})",
        )
        Form("sync").write(fleet, "0002_sync.py", up="db.tags.insert_one({'_id': 'sync'})")

        run = fleet.alley("--databases", group.pattern, "--jobs", "2", "up")

        assert run.returncode == 0, run.output
        for name in group.names:
            tags = sorted(d["_id"] for d in mongo_client[name].tags.find())
            assert tags == sorted([name, "sync"]), name
        assert mongoengine_connection._opened_async == []
    finally:
        group.drop()


def test_the_async_client_connects_as_the_sync_client_does(project: Project) -> None:
    """Same servers, driver options of the URL, timeouts, application name, codec and
    database; one client for the command; closed with the other connections."""
    from alley.engine import Engine

    uri = f"{project.uri}?w=1&readPreference=primaryPreferred&maxPoolSize=7"
    engine = Engine(load_settings({"url": uri, "path": str(project.root), "timeout": 4.5}))
    try:
        sync = engine.db.client.options
        made = engine.async_connection()
        assert engine.async_connection() is made
        options = made.client.options

        assert made.db.name == engine.db.name
        assert made.run(made.db.command("ping"))["ok"] == 1
        for read in (
            lambda o: o.server_selection_timeout,
            lambda o: o.pool_options.connect_timeout,
            lambda o: o.pool_options.max_pool_size,
            lambda o: o.pool_options.metadata["application"],
            lambda o: o.write_concern,
            lambda o: o.read_preference,
            lambda o: o.codec_options,
            lambda o: o.replica_set_name,
        ):
            assert read(options) == read(sync)
        assert options.server_selection_timeout == 4.5
        assert options.pool_options.max_pool_size == 7
    finally:
        hookcalls.close_connections()
    assert mongoengine_connection._opened_async == []
    assert made.closed


def test_async_up_with_a_step_parameter_is_refused_when_it_loads(
    project: Project, mongo_db: Any
) -> None:
    (project.folder / "0001_batch.py").write_text(
        "async def up(db, step):\n    await db.items.insert_one({})\n\n\ndef down(db):\n    pass\n"
    )

    refused = project.alley("up")

    assert refused.returncode == USAGE_CONFIG, refused.output
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "async def up(db, step) is not supported" in refused.stderr
    assert mongo_db.items.count_documents({}) == 0
    assert mongo_db.db_migrations_log.count_documents({}) == 0


def test_an_async_migration_in_a_transaction_is_refused_when_it_loads(
    project: Project, mongo_db: Any
) -> None:
    path = project.folder / "0001_tx.py"
    path.write_text(
        Form("async").source("AWAIT db.items.insert_one({})", header="transaction = True")
    )

    refused = project.alley("up")

    assert refused.returncode == USAGE_CONFIG, refused.output
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "async def up(db) cannot run in a transaction" in refused.stderr
    assert mongo_db.items.count_documents({}) == 0


def test_the_sync_api_called_inside_a_running_loop_points_to_alley_aio(
    project: Project, mongo_db: Any
) -> None:
    """An async migration cannot run on a thread whose loop is busy: the step fails
    having written nothing (so it runs again), and the error says what to call."""
    Form("async").write(project, "0001_items.py", up="AWAIT db.items.insert_one({'_id': 1})")
    settings = settings_of(project)

    async def main() -> None:
        api.up(settings)

    with pytest.raises(MigrationFailed, match=r"await alley\.aio\.up") as failed:
        asyncio.run(main())

    assert "running event loop" in str(failed.value)
    assert mongo_db.items.count_documents({}) == 0
    [entry] = [e for e in log_events(mongo_db, "0001_items.py") if e["event"] == "failed"]
    assert entry["writes"] == 0
    assert asyncio.run(aio.up(settings)).steps[0].filename == "0001_items.py"
    assert mongo_db.items.count_documents({"_id": 1}) == 1


def test_migrations_with_an_applications_database_refuses_an_async_migration(
    project: Project, mongo_db: Any
) -> None:
    from alley import Migrations

    Form("async").write(project, "0001_items.py", up="AWAIT db.items.insert_one({})")

    with pytest.raises(ConfigError, match="needs alley's own connection") as refused:
        Migrations(project.root, mongo_db).up()

    assert refused.value.hint is not None
    assert "Migrations(path, url=" in refused.value.hint
    assert mongo_db.items.count_documents({}) == 0
    assert mongo_db.db_migrations.count_documents({}) == 0


def test_migrations_that_connect_themselves_run_an_async_migration(
    project: Project, mongo_db: Any
) -> None:
    from alley import Migrations

    Form("async").write(project, "0001_items.py", up="AWAIT db.items.insert_one({'_id': 7})")
    try:
        report = Migrations(project.root, url=project.uri).up()
    finally:
        hookcalls.close_connections()

    assert [s.filename for s in report.steps] == ["0001_items.py"]
    assert mongo_db.items.find_one() == {"_id": 7}


def test_alley_0_0_3_would_record_an_async_migration_without_running_it(
    project: Project, mongo_db: Any, mongodb_server: Any
) -> None:
    """What docs/async.md warns of: 0.0.3 calls ``up(db)``, never awaits the coroutine,
    and records the migration as applied."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    from alley.testing.legacy import LegacyUnavailable, provide_legacy_alley

    try:
        legacy = provide_legacy_alley()
    except LegacyUnavailable as error:  # a machine without Python 3.11: an error, not a skip
        pytest.fail(str(error))
    Form("async").write(project, "0001_items.py", up="AWAIT db.items.insert_one({})")
    address = urlsplit(mongodb_server.uri)
    login: list[str] = []
    if address.username:  # a server with users: 0.0.3's own -u/-w/-a
        source = dict(parse_qsl(address.query)).get("authSource", "admin")
        login = ["-u", unquote(address.username), "-w", unquote(address.password or "")]
        login += ["-a", source]

    old = legacy.run(
        mongo_db.name,
        address.hostname or "127.0.0.1",
        address.port or 27017,
        project.root,
        "up",
        login=login,
    )

    assert old.returncode == 0, old.stdout + old.stderr
    assert mongo_db.db_migrations.count_documents({"filename": "0001_items.py"}) == 1
    assert mongo_db.items.count_documents({}) == 0


# -------------------------------------------------------------------------
# alley.aio inside a running loop
# -------------------------------------------------------------------------


def settings_of(project: Project) -> Settings:
    return load_settings({"url": project.uri, "path": str(project.root)})


def test_aio_up_lets_the_callers_loop_run_while_a_migration_runs(
    project: Project, mongo_db: Any, form: Form
) -> None:
    """The migration waits (at most 20 s) for a file that only a coroutine of the
    caller's loop creates, once the migration has started: were the loop blocked by
    ``aio.up``, the file would never come and the migration would fail."""
    started, loop_alive = project.root / "started", project.root / "loop-alive"
    form.write(
        project,
        "0001_waits.py",
        up=f"""
        open({str(started)!r}, "w").close()
        deadline = time.monotonic() + 20
        while not os.path.exists({str(loop_alive)!r}):
            if time.monotonic() > deadline:
                raise TimeoutError("the caller's event loop did not run")
            SLEEP(0.02)
        AWAIT db.items.insert_one({{'_id': 'done'}})
        """,
    )
    settings = settings_of(project)

    async def loop_side() -> None:
        deadline = time.monotonic() + 30
        while not started.exists():  # a condition, polled with a deadline
            assert time.monotonic() < deadline, "the migration never started"
            await asyncio.sleep(0.01)
        loop_alive.touch()

    async def main() -> Any:
        migrating = asyncio.ensure_future(aio.up(settings))
        await asyncio.wait_for(loop_side(), timeout=30)
        return await asyncio.wait_for(migrating, timeout=60)

    report = asyncio.run(main())

    assert [s.filename for s in report.steps] == ["0001_waits.py"]
    assert mongo_db.items.count_documents({"_id": "done"}) == 1


def test_aio_mirrors_the_api(project: Project, mongo_db: Any) -> None:
    Form("async").write(
        project,
        "0001_a.py",
        up="AWAIT db.c.insert_one({'_id': 1})",
        down="AWAIT db.c.delete_one({'_id': 1})",
    )
    Form("sync").write(
        project,
        "0002_b.py",
        up="db.c.insert_one({'_id': 2})",
        down="db.c.delete_one({'_id': 2})",
    )
    settings = settings_of(project)
    seen: list[str] = []

    async def main() -> None:
        plan = await aio.plan_up(settings)
        assert [s.filename for s in plan.plan.steps] == ["0001_a.py", "0002_b.py"]
        report = await aio.up(settings, 1, on_step=lambda r: seen.append(r.filename))
        assert [s.filename for s in report.steps] == ["0001_a.py"]
        assert [s.filename for s in (await aio.status(settings)).pending] == ["0002_b.py"]
        await aio.up(settings)
        redone = await aio.redo(settings)
        assert [(s.filename, str(s.direction)) for s in redone.steps] == [
            ("0002_b.py", "down"),
            ("0002_b.py", "up"),
        ]
        assert (await aio.verify(settings)).problems == ()
        back = await aio.down(settings, steps=2)
        assert [s.filename for s in back.steps] == ["0002_b.py", "0001_a.py"]

    asyncio.run(main())

    assert seen == ["0001_a.py"]
    assert mongo_db.c.count_documents({}) == 0


def test_aio_calls_reusing_one_project_reuse_its_async_client(
    project: Project, mongo_db: Any
) -> None:
    """Each call runs in a worker thread, maybe another one each time: the project's
    one async client and loop serve them all, until the connections are closed."""
    from alley.engine import Engine

    for n in (1, 2):
        Form("async").write(
            project,
            f"000{n}_m{n}.py",
            up=f"AWAIT db.c.insert_one({{'_id': {n}, 'client': id(db.client)}})",
            down=f"AWAIT db.c.delete_one({{'_id': {n}}})",
        )
    settings = settings_of(project)
    engine = Engine(settings)

    async def main() -> None:
        await aio.up(settings, 1, project=engine)
        await aio.up(settings, project=engine)
        assert len({d["client"] for d in mongo_db.c.find()}) == 1  # both calls: one client
        await aio.down(settings, steps=2, project=engine)

    try:
        asyncio.run(main())
    finally:
        hookcalls.close_connections()

    assert mongo_db.c.count_documents({}) == 0
    events = [(e["filename"], e["event"]) for e in mongo_db.db_migrations_log.find()]
    assert events.count(("0001_m1.py", "succeeded")) == 2


# -------------------------------------------------------------------------
# docs/async.md
# -------------------------------------------------------------------------


def doc_block(marker: str) -> str:
    """The ```python block of docs/async.md right after ``<!-- marker -->``."""
    text = DOCS.read_text()
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"docs/async.md has no python block after <!-- {marker} -->"
    return match.group(1)


def test_the_docs_example_migration_runs_up_and_down(project: Project, mongo_db: Any) -> None:
    (project.folder / "0001_active.py").write_text(doc_block("migration"))
    mongo_db.users.insert_many([{"_id": 1}, {"_id": 2, "active": False}])

    applied = project.alley("up")

    assert applied.returncode == 0, applied.output
    assert [u["active"] for u in mongo_db.users.find().sort("_id")] == [True, False]
    assert "active_1" in mongo_db.users.index_information()

    rolled_back = project.alley("down")

    assert rolled_back.returncode == 0, rolled_back.output
    assert list(mongo_db.users.find().sort("_id")) == [{"_id": 1}, {"_id": 2}]
    assert "active_1" not in mongo_db.users.index_information()


@dataclass
class FastAPIStub:
    """The part of FastAPI the lifespan example uses (FastAPI is not a dependency):
    the app keeps its ``lifespan``, which the test enters and leaves as a server does."""

    lifespan: Callable[[Any], Any]


@pytest.fixture
def fastapi_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fastapi")
    module.FastAPI = FastAPIStub  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fastapi", module)


@pytest.mark.usefixtures("fastapi_stub")
def test_the_docs_lifespan_example_migrates_as_the_app_starts(
    project: Project, mongo_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    Form("async").write(
        project, "0001_users.py", up="AWAIT db.users.create_index('email', unique=True)"
    )
    monkeypatch.setenv("ALLEY_URL", project.uri)
    monkeypatch.setenv("ALLEY_PATH", str(project.root))
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(doc_block("lifespan"), str(DOCS), "exec"), namespace)
    app = namespace["app"]

    async def serve() -> None:
        async with app.lifespan(app):
            assert mongo_db.db_migrations.count_documents({"filename": "0001_users.py"}) == 1

    asyncio.run(serve())

    assert "email_1" in mongo_db.users.index_information()


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    """What the CLI does as a command ends, after the API calls of a test."""
    yield
    hookcalls.close_connections()
