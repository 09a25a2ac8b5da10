"""alley.testing gives the tests a real server: fixtures, ``python -m alley.testing``, reuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from alley.testing import (
    SERVER_ENV,
    URI_ENV,
    Capabilities,
    Server,
    ServerKind,
    find_ferretdb,
    start_server,
)
from alley.testing.mongo_java_server import (
    MONGO_JAVA_SERVER_VERSION,
    REPORTED_WIRE_VERSION,
    find_mongo_java_server,
)

pytestmark = pytest.mark.server

Db = Database[dict[str, Any]]


def _children(pid: int) -> set[int]:
    """Direct children of ``pid``, read from /proc (Linux)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." where comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_round_trip(mongo_db: Db) -> None:
    things = mongo_db.things
    things.insert_one({"_id": 1, "name": "one", "n": 0})
    assert things.find_one({"_id": 1}) == {"_id": 1, "name": "one", "n": 0}

    result = things.update_one({"_id": 1}, {"$inc": {"n": 2}, "$set": {"name": "uno"}})
    assert result.matched_count == 1
    assert things.find_one({"_id": 1}) == {"_id": 1, "name": "uno", "n": 2}

    before = things.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
    assert before is not None
    assert before["n"] == 2
    created = things.find_one_and_update(
        {"_id": 2},
        {"$setOnInsert": {"name": "two"}, "$inc": {"n": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert created == {"_id": 2, "name": "two", "n": 1}
    assert sorted(d["_id"] for d in things.find()) == [1, 2]


def test_unique_index_and_duplicate_key(mongo_db: Db) -> None:
    users = mongo_db.users
    users.create_index("email", unique=True)
    users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError) as excinfo:
        users.insert_one({"email": "a@example.com"})
    assert excinfo.value.code == 11000
    with pytest.raises(DuplicateKeyError) as excinfo:
        users.insert_one({"_id": users.find_one()["_id"], "email": "b@example.com"})  # type: ignore[index]
    assert excinfo.value.code == 11000


def test_mongo_db_uri_names_the_test_database(mongo_db: Db, mongo_db_uri: str) -> None:
    mongo_db.marker.insert_one({"_id": "here"})
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_db_uri, serverSelectionTimeoutMS=5000)
    try:
        assert client.get_default_database().name == mongo_db.name
        assert client.get_default_database().marker.find_one() == {"_id": "here"}
    finally:
        client.close()


def test_env_uri_is_used_as_is_and_test_databases_are_dropped(
    mongodb_server: Server, mongo_client: MongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    """An inner pytest run, pointed at this server, uses it (kind "uri") and drops its DB.

    It recognises the server from ``buildInfo``: same version, same capabilities.
    """
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import json, pathlib

            def test_inner(mongodb_server, mongo_db):
                mongo_db.c.insert_one({"x": 1})
                pathlib.Path("out.json").write_text(json.dumps(
                    {"kind": mongodb_server.kind, "uri": mongodb_server.uri,
                     "db": mongo_db.name, "version": mongodb_server.version,
                     "description": mongodb_server.description,
                     "capabilities": mongodb_server.capabilities.as_dict()}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != SERVER_ENV}
    env[URI_ENV] = mongodb_server.uri
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["kind"] == "uri"
    assert out["uri"] == mongodb_server.uri
    assert out["db"].startswith("alley_test_")
    assert out["db"] not in mongo_client.list_database_names()
    assert out["version"] == mongodb_server.version
    assert out["capabilities"] == mongodb_server.capabilities.as_dict()
    # The terminal summary says which server the run used.
    assert f"alley.testing: {out['description']}" in done.stdout
    assert f"from {URI_ENV} at" in done.stdout


def test_python_m_alley_testing_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "alley.testing"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        uris = dict(line.strip().split("=", 1) for line in lines if "=" in line)
        assert set(uris) == {"ALLEY_TEST_MONGODB_URI", "ALLEY_URL"}, lines
        uri = uris["ALLEY_URL"]
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            assert client.admin.command("ping")["ok"] == 1
        finally:
            client.close()
        children = _children(proc.pid)
        if URI_ENV not in os.environ:
            assert children, "the server process should be a child of python -m alley.testing"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [pid for pid in children if _alive(pid)]
    assert proc.stderr is not None
    assert "stopped" in proc.stderr.read()


def test_second_ferretdb_starts_from_the_cache_in_seconds(mongodb_server: Server) -> None:
    if find_ferretdb() is None:
        pytest.skip(
            f"no FerretDB 1.24 binary on PATH or in the cache: this run uses {mongodb_server.kind}"
        )
    messages: list[str] = []
    started = time.monotonic()
    only_ferretdb: tuple[ServerKind, ...] = ("ferretdb",)
    server = start_server(kinds=only_ferretdb, build=False, log=messages.append)
    elapsed = time.monotonic() - started
    try:
        assert server.kind == "ferretdb"
        assert server.version.startswith("v1.24.")
        assert not [m for m in messages if "building" in m]
        assert elapsed < 10, f"FerretDB took {elapsed:.1f} s to start"
        client: MongoClient[dict[str, Any]] = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
        try:
            assert client.admin.command("buildInfo")["ferretdbVersion"] == server.version
        finally:
            client.close()
    finally:
        server.stop()
    assert server.pid is not None
    assert server.workdir is not None
    assert not _alive(server.pid)
    assert not server.workdir.exists()


def test_second_mongo_java_server_starts_from_the_cache_in_seconds(
    mongodb_server: Server,
) -> None:
    """mongo-java-server from its cached build: PyMongo 4.20 connects (wire 13), and the
    operations alley relies on work: insert, find, a unique index, an upserting
    find_one_and_update, hello."""
    if find_mongo_java_server() is None:
        pytest.skip(
            "mongo-java-server is not built in the cache (ALLEY_TEST_SERVER=mongo-java-server "
            f"builds it): this run uses {mongodb_server.kind}"
        )
    messages: list[str] = []
    started = time.monotonic()
    only: tuple[ServerKind, ...] = ("mongo-java-server",)
    server = start_server(kinds=only, build=False, log=messages.append)
    elapsed = time.monotonic() - started
    try:
        assert server.kind == "mongo-java-server"
        assert server.version == MONGO_JAVA_SERVER_VERSION
        assert not [m for m in messages if "building" in m]
        assert elapsed < 20, f"mongo-java-server took {elapsed:.1f} s to start"
        client: MongoClient[dict[str, Any]] = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
        try:
            hello = client.admin.command("hello")
            assert hello["maxWireVersion"] == REPORTED_WIRE_VERSION
            assert hello["isWritablePrimary"] is True
            info = client.admin.command("buildInfo")
            assert info["mongoJavaServerVersion"] == MONGO_JAVA_SERVER_VERSION
            db = client.alley_smoke
            db.things.insert_one({"_id": 1, "k": "a"})
            assert db.things.find_one({"_id": 1}) == {"_id": 1, "k": "a"}
            db.things.create_index("k", unique=True)
            with pytest.raises(DuplicateKeyError):
                db.things.insert_one({"_id": 2, "k": "a"})
            upserted = db.lock.find_one_and_update(
                {"_id": "lock", "owner": None},
                {"$set": {"owner": "me"}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            assert upserted == {"_id": "lock", "owner": "me"}
        finally:
            client.close()
    finally:
        server.stop()
    assert server.pid is not None
    assert server.workdir is not None
    assert not _alive(server.pid)
    assert not server.workdir.exists()


def test_requires_marker_skips_naming_the_capability_and_the_server(
    mongodb_server: Server, server_capabilities: Capabilities, tmp_path: Path
) -> None:
    """``@pytest.mark.requires``: runs where the server has it, else a skip saying why."""
    present = [n for n in Capabilities.names() if server_capabilities.has(n)]
    missing = server_capabilities.missing()
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import pytest

            @pytest.mark.requires(*{present!r})
            def test_present(mongo_db):
                pass

            @pytest.mark.requires(*{missing!r})
            def test_missing(mongo_db):
                pass
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != SERVER_ENV}
    env[URI_ENV] = mongodb_server.uri
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if missing:
        assert "1 passed, 1 skipped" in done.stdout, done.stdout
        assert f"needs {', '.join(missing)}, which " in done.stdout
    else:
        assert "2 passed" in done.stdout, done.stdout


@pytest.mark.requires("auth")
def test_server_with_credentials_rejects_a_wrong_password(mongodb_server: Server) -> None:
    from pymongo.errors import OperationFailure

    from alley.testing import Credentials

    credentials = Credentials("alley_user", "s3cret", "alley_auth")
    server = start_server(credentials=credentials, log=lambda _: None)
    try:
        assert server.credentials == credentials
        good: MongoClient[dict[str, Any]] = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
        try:
            assert good.alley_auth.command("ping")["ok"] == 1
        finally:
            good.close()
        bad_uri = server.uri.replace(":s3cret@", ":wrong@")
        bad: MongoClient[dict[str, Any]] = MongoClient(bad_uri, serverSelectionTimeoutMS=5000)
        try:
            with pytest.raises(OperationFailure) as excinfo:
                bad.alley_auth.command("ping")
            assert excinfo.value.code == 18  # AuthenticationFailed
        finally:
            bad.close()
    finally:
        server.stop()


def _alley_testing(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alley.testing", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def test_detach_prints_exports_once_the_server_answers_and_stop_stops_it(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "ALLEY_TESTING_STATE_FILE": str(tmp_path / "state.json")}
    started = _alley_testing("--detach", "--database", "demo", env=env)
    try:
        assert started.returncode == 0, started.stderr
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines()
        )
        assert set(exports) == {"ALLEY_TEST_MONGODB_URI", "ALLEY_URL"}
        uri = exports["ALLEY_URL"]
        assert uri.startswith("mongodb://")
        assert "/demo" in uri
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            # It answered before --detach returned: no waiting here.
            assert client.get_default_database().name == "demo"
            assert client.admin.command("ping")["ok"] == 1
        finally:
            client.close()
        pid = json.loads((tmp_path / "state.json").read_text())["pid"]

        again = _alley_testing("--detach", "--database", "other", env=env)
        assert again.returncode == 0, again.stderr
        assert f"already up (pid {pid})" in again.stderr
        assert uri.replace("/demo", "/other") in again.stdout
    finally:
        stopped = _alley_testing("--stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not _alive(pid)
    assert not (tmp_path / "state.json").exists()
    second_stop = _alley_testing("--stop", env=env)
    assert second_stop.returncode == 1
    assert second_stop.stderr == "alley.testing: no background server is running\n"
