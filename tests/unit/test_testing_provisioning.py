"""alley.testing's provisioning rules, checked without a server.

No URI, no ``mongod``, no ``go``, no ``ferretdb`` and an empty cache: a clear error that
names the three ways to provide a server, and a test using the fixtures errors (it is
not skipped). The FerretDB build is exercised with a fake ``go`` to check the lock.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from xml.etree import ElementTree

import pytest

from alley.testing import (
    ALL_KINDS,
    DEFAULT_KINDS,
    SERVER_ENV,
    URI_ENV,
    Capabilities,
    ServerUnavailable,
    build_ferretdb,
    ferretdb_cache_path,
    selected_kinds,
    start_server,
    uri_with_database,
)
from alley.testing import mongo_java_server as mjs
from alley.testing.capabilities import (
    FERRETDB_1_SQLITE,
    MONGO_JAVA_SERVER_MEMORY,
    MONGOD_REPLICA_SET,
    MONGOD_STANDALONE,
    UNKNOWN_SERVER,
    capabilities_from_server_info,
)

THREE_WAYS = ("ALLEY_TEST_MONGODB_URI", "mongod", "Go >= 1.24")


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with only the Python interpreter on PATH and an empty cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in {URI_ENV, SERVER_ENV}}
    env["PATH"] = str(bin_dir)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    return env


def test_no_server_anywhere_is_a_clear_error(bare_env: dict[str, str]) -> None:
    code = (
        "from alley.testing import provide_server\n"
        "with provide_server() as server:\n"
        "    print('unexpected', server)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=bare_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "ServerUnavailable" in done.stderr
    for way in THREE_WAYS:
        assert way in done.stderr
    assert str(ferretdb_cache_path(bare_env)) in done.stderr


def test_no_server_in_process_raises_server_unavailable(bare_env: dict[str, str]) -> None:
    with pytest.raises(ServerUnavailable) as excinfo:
        start_server(env=bare_env)
    assert isinstance(excinfo.value, RuntimeError)
    for way in THREE_WAYS:
        assert way in str(excinfo.value)


def test_fixture_without_server_errors_not_skips(bare_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "test_needs_db.py").write_text(
        "def test_a(mongo_db):\n    pass\n\n\ndef test_b(mongo_db_uri):\n    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "test_needs_db.py"],
        cwd=tmp_path,
        env=bare_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # 1: tests failed or errored
    assert "2 errors" in output, output
    assert "skipped" not in output
    assert "ServerUnavailable" in output
    for way in THREE_WAYS:
        assert way in output


def test_a_wrong_ferretdb_on_path_is_ignored(bare_env: dict[str, str]) -> None:
    fake = Path(bare_env["PATH"]) / "ferretdb"
    fake.write_text("#!/bin/sh\necho 'version: v2.0.0'\n")
    fake.chmod(0o755)
    with pytest.raises(ServerUnavailable, match=r"Go >= 1\.24"):
        start_server(env=bare_env)


FAKE_GO = """\
#!/bin/sh
# A stand-in for go: records each call, "downloads" a module, "builds" a ferretdb.
echo "$*" >> "{calls}"
case "$1 $2" in
  "env GOVERSION") echo go1.24.0 ;;
  "mod init") echo "go: creating new go.mod: module $3" ;;
  "mod download") printf '{{\\n\\t"Path": "x",\\n\\t"Dir": "{module}"\\n}}\\n' ;;
  build*)
    test "$(cat build/version/version.txt)" = v1.24.2 || exit 3
    sleep 1
    out="$5"
    printf '#!/bin/sh\\necho "version: v1.24.2"\\n' > "$out"
    chmod +x "$out"
    ;;
esac
"""


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    module = tmp_path / "module"
    (module / "build" / "version").mkdir(parents=True)
    (module / "cmd" / "ferretdb").mkdir(parents=True)
    (module / "go.mod").write_text("module github.com/FerretDB/FerretDB\n")
    for path in [*module.rglob("*"), module]:
        path.chmod(0o555 if path.is_dir() else 0o444)  # like the Go module cache
    calls = tmp_path / "calls.txt"
    go = tmp_path / "go"
    go.write_text(FAKE_GO.format(calls=calls, module=module))
    go.chmod(0o755)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    results: list[Path | BaseException] = []

    def build() -> None:
        try:
            results.append(build_ferretdb(go=str(go), env=env, log=lambda _: None))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    target = ferretdb_cache_path(env)
    assert results == [target, target, target]
    builds = [line for line in calls.read_text().splitlines() if line.startswith("build")]
    assert len(builds) == 1
    assert "-trimpath" in builds[0]
    assert sorted(p.name for p in target.parent.iterdir()) == [".build.lock", "ferretdb"]
    for path in [*module.rglob("*"), module]:
        path.chmod(0o755)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://127.0.0.1:1/", "mongodb://127.0.0.1:1/db1"),
        ("mongodb://h:1/old?appname=x", "mongodb://h:1/db1?appname=x"),
        ("mongodb://a:1,b:2/?replicaSet=rs", "mongodb://a:1,b:2/db1?replicaSet=rs"),
        ("mongodb://u:p@h:1/", "mongodb://u:p@h:1/db1?authSource=admin"),
        ("mongodb://u:p@h:1/users", "mongodb://u:p@h:1/db1?authSource=users"),
        ("mongodb://u:p@h:1/x?authSource=s", "mongodb://u:p@h:1/db1?authSource=s"),
    ],
)
def test_uri_with_database(uri: str, expected: str) -> None:
    assert uri_with_database(uri, "db1") == expected


def test_importing_the_plugin_does_not_import_pymongo() -> None:
    code = textwrap.dedent(
        """
        import sys
        import alley.testing.pytest_plugin, alley.testing.__main__
        print(sorted(m for m in sys.modules if m.split(".")[0] in {"pymongo", "bson"}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------- server selection by env var


def test_default_order_without_alley_test_server() -> None:
    assert selected_kinds({}) == DEFAULT_KINDS == ("uri", "mongod", "ferretdb")
    assert selected_kinds({SERVER_ENV: " "}) == DEFAULT_KINDS
    assert "mongo-java-server" in ALL_KINDS


@pytest.mark.parametrize("kind", ["ferretdb", "mongo-java-server", "mongod", "uri"])
def test_alley_test_server_chooses_one_kind(kind: str) -> None:
    assert selected_kinds({SERVER_ENV: kind}) == (kind,)
    assert selected_kinds({SERVER_ENV: kind.upper()}) == (kind,)


def test_explicit_kinds_win_over_alley_test_server() -> None:
    env = {SERVER_ENV: "mongo-java-server"}
    assert selected_kinds(env, ("mongod", "ferretdb")) == ("mongod", "ferretdb")
    assert selected_kinds(env, ("ferretdb", "uri")) == ("uri", "ferretdb")  # fixed order


def test_unknown_alley_test_server_is_a_clear_error(bare_env: dict[str, str]) -> None:
    bare_env[SERVER_ENV] = "postgres"
    with pytest.raises(ServerUnavailable, match="ALLEY_TEST_SERVER='postgres'") as excinfo:
        start_server(env=bare_env)
    assert "mongo-java-server" in str(excinfo.value)


def test_alley_test_server_ignores_the_uri_of_the_default_order(bare_env: dict[str, str]) -> None:
    """Choosing mongo-java-server never falls back to ALLEY_TEST_MONGODB_URI (or FerretDB)."""
    bare_env[SERVER_ENV] = "mongo-java-server"
    bare_env[URI_ENV] = "mongodb://127.0.0.1:1/"
    with pytest.raises(ServerUnavailable, match=r"no `java` on PATH") as excinfo:
        start_server(env=bare_env)
    assert str(mjs.mongo_java_server_cache_dir(bare_env)) in str(excinfo.value)
    with pytest.raises(ServerUnavailable, match="mongo-java-server is not built"):
        start_server(env=bare_env, build=False)


def test_alley_test_server_ferretdb_says_what_is_missing(bare_env: dict[str, str]) -> None:
    bare_env[SERVER_ENV] = "ferretdb"
    with pytest.raises(ServerUnavailable, match=r"kinds ferretdb \(ALLEY_TEST_SERVER=ferretdb\)"):
        start_server(env=bare_env)


def test_python_m_alley_testing_honours_alley_test_server(bare_env: dict[str, str]) -> None:
    bare_env[SERVER_ENV] = "mongo-java-server"
    done = subprocess.run(
        [sys.executable, "-m", "alley.testing"],
        env=bare_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "mongo-java-server" in done.stderr
    assert "java" in done.stderr


# ---------------------------------------------------------------- mongo-java-server


def test_pom_names_mongo_java_server_and_copies_its_jars() -> None:
    pom = ElementTree.fromstring(mjs.pom_xml())
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    deps = {
        (d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns)): (
            d.findtext("m:version", namespaces=ns)
        )
        for d in pom.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps[("de.bwaldvogel", "mongo-java-server-memory-backend")] == "1.47.0"
    assert deps[("de.bwaldvogel", "mongo-java-server-core")] == "1.47.0"
    assert deps[("io.netty", "netty-transport")] == mjs.NETTY_VERSION
    assert pom.findtext("m:properties/m:maven.compiler.release", namespaces=ns) == "17"
    goals = [g.text for g in pom.iterfind(".//m:plugin/m:executions//m:goal", ns)]
    assert goals == ["copy-dependencies"]
    assert "${project.build.directory}/lib" in mjs.pom_xml()
    # No repository is named: Maven uses its default settings.
    assert "<repositories>" not in mjs.pom_xml()
    assert "://" not in mjs.pom_xml().replace("http://maven.apache.org/POM/4.0.0", "").replace(
        "http://www.w3.org/2001/XMLSchema-instance", ""
    ).replace("https://maven.apache.org/xsd/maven-4.0.0.xsd", "")


def test_launcher_reports_wire_13_and_answers_hello_as_is_master() -> None:
    source = mjs.launcher_java()
    assert f"public final class {mjs.LAUNCHER_CLASS} {{" in source
    assert "return 13;" in source
    assert "List.of(5, 0, 0)" in source
    assert 'command.equalsIgnoreCase("hello")' in source
    assert 'super.handleCommand(channel, database, "isMaster", query)' in source
    assert 'answer.put("mongoJavaServerVersion", "1.47.0")' in source
    assert source.count("{") == source.count("}")


def test_build_digest_names_the_build_folder(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    digest = mjs.build_digest()
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert mjs.build_digest() == digest
    assert mjs.mongo_java_server_cache_dir(env) == tmp_path / "alley" / "mongo-java-server-1.47.0"
    assert mjs.mongo_java_server_build_dir(env) == mjs.mongo_java_server_cache_dir(env) / digest
    assert ferretdb_cache_path(env).parent.parent == mjs.mongo_java_server_cache_dir(env).parent
    assert mjs.find_mongo_java_server(env) is None


def test_java_command_uses_the_build_folder_as_classpath(tmp_path: Path) -> None:
    assert mjs.java_command("/usr/bin/java", tmp_path, "127.0.0.1", 4242) == [
        "/usr/bin/java",
        "-cp",
        f"{tmp_path}/*",
        "AlleyMongoJavaServer",
        "127.0.0.1",
        "4242",
    ]


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_401"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no java here", None),
    ],
)
def test_parse_java_version(output: str, major: int | None) -> None:
    assert mjs.parse_java_version(output) == major


def test_old_java_is_refused(bare_env: dict[str, str]) -> None:
    java = Path(bare_env["PATH"]) / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    java.chmod(0o755)
    bare_env[SERVER_ENV] = "mongo-java-server"
    with pytest.raises(ServerUnavailable, match=r"is Java 11; mongo-java-server 1\.47\.0 needs"):
        start_server(env=bare_env)


FAKE_MVN = """\
#!/bin/sh
# A stand-in for mvn: records each call and "packages" the launcher with two jars.
echo "$PWD $*" >> "{calls}"
test -f pom.xml && test -f src/main/java/AlleyMongoJavaServer.java || exit 3
sleep 1
mkdir -p target/lib
echo main > target/alley-mongo-java-server.jar
echo core > target/lib/mongo-java-server-core-1.47.0.jar
echo memory > target/lib/mongo-java-server-memory-backend-1.47.0.jar
"""


def test_concurrent_mongo_java_server_builds_build_once(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(calls=calls))
    java = bin_dir / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\"' >&2\n")
    for tool in (mvn, java):
        tool.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": path}

    results: list[Path | BaseException] = []

    def build() -> None:
        try:
            results.append(mjs.build_mongo_java_server(env=env, log=lambda _: None))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    target = mjs.mongo_java_server_build_dir(env)
    assert results == [target, target, target]
    lines = calls.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("-B -q -Dstyle.color=never -Dmaven.test.skip=true package")
    assert sorted(p.name for p in target.iterdir()) == [
        "alley-build.txt",
        "alley-mongo-java-server.jar",
        "mongo-java-server-core-1.47.0.jar",
        "mongo-java-server-memory-backend-1.47.0.jar",
    ]
    assert sorted(p.name for p in target.parent.iterdir()) == [".build.lock", target.name]
    assert mjs.find_mongo_java_server(env) == target


# --------------------------------------------------------------------- capabilities


def test_capability_rows() -> None:
    names = Capabilities.names()
    assert names[:2] == ("atomic_compare_and_swap", "atomic_increments")
    assert "server" not in names
    assert "exact" not in names
    assert FERRETDB_1_SQLITE.missing() == [
        "atomic_compare_and_swap",
        "atomic_increments",
        "unique_index_rejects_missing_field_duplicates",
        "transactions",
        "change_streams",
        "ttl_index",
        "ttl_expiry",
        "json_schema",
    ]
    assert MONGO_JAVA_SERVER_MEMORY.missing() == [
        "sessions",
        "transactions",
        "change_streams",
        "ttl_expiry",
        "json_schema",
        "auth",
    ]
    assert MONGOD_STANDALONE.missing() == ["transactions", "change_streams"]
    assert MONGOD_REPLICA_SET.missing() == []
    assert UNKNOWN_SERVER.missing() == list(names)


def test_skip_reason_names_the_capability_and_the_server() -> None:
    assert MONGO_JAVA_SERVER_MEMORY.skip_reason("atomic_compare_and_swap") is None
    assert FERRETDB_1_SQLITE.skip_reason("atomic_compare_and_swap", "hello") == (
        "needs atomic_compare_and_swap, which FerretDB 1.24 (SQLite) lacks"
    )
    assert UNKNOWN_SERVER.skip_reason("hello") == (
        "needs hello, which an unidentified MongoDB-compatible server lacks "
        "(assumed: alley could not identify this server)"
    )
    with pytest.raises(ValueError, match="unknown server capability 'atomic'"):
        FERRETDB_1_SQLITE.has("atomic")


@pytest.mark.parametrize(
    ("build_info", "hello", "row", "server"),
    [
        ({"version": "7.0.0", "ferretdbVersion": "v1.24.2"}, {}, FERRETDB_1_SQLITE, "FerretDB"),
        (
            {"version": "5.0.0", "mongoJavaServerVersion": "1.47.0"},
            {},
            MONGO_JAVA_SERVER_MEMORY,
            "mongo-java-server 1.47.0",
        ),
        (
            {"version": "7.0.5", "gitVersion": "abc"},
            {"logicalSessionTimeoutMinutes": 30},
            MONGOD_STANDALONE,
            "MongoDB 7.0.5 (standalone)",
        ),
        (
            {"version": "7.0.5", "gitVersion": "abc"},
            {"logicalSessionTimeoutMinutes": 30, "setName": "rs0"},
            MONGOD_REPLICA_SET,
            "MongoDB 7.0.5 (replica set or sharded)",
        ),
    ],
)
def test_capabilities_of_a_server_given_by_uri(
    build_info: dict[str, object], hello: dict[str, object], row: Capabilities, server: str
) -> None:
    found = capabilities_from_server_info(build_info, hello)
    assert found.as_dict() == row.as_dict()
    assert found.server.startswith(server)
    assert found.exact


def test_capabilities_of_an_unidentified_server_are_conservative() -> None:
    ferret2 = capabilities_from_server_info(
        {"version": "7.0.77", "gitVersion": "x", "ferretdb": {"version": "v2.5.0"}}, {}
    )
    assert not ferret2.exact
    assert ferret2.missing() == [n for n in Capabilities.names() if n != "hello"]
    no_hello = capabilities_from_server_info({"version": "4.0.0", "gitVersion": "x"}, None)
    assert no_hello.missing() == list(Capabilities.names())
    assert not no_hello.exact


def test_requires_marker_skips_with_a_reason(tmp_path: Path) -> None:
    """The plugin's marker, with the capabilities fixture overridden (no server)."""
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from alley.testing.capabilities import FERRETDB_1_SQLITE

            @pytest.fixture(scope="session")
            def server_capabilities():
                return FERRETDB_1_SQLITE
            """
        )
    )
    (tmp_path / "test_marked.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.requires("hello", "sessions")
            def test_has():
                pass

            @pytest.mark.requires("hello", "atomic_compare_and_swap")
            def test_lacks():
                raise AssertionError("must not run")

            def test_function(server_capabilities):
                server_capabilities.require("json_schema")
                raise AssertionError("must not run")

            def test_unmarked():
                pass
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--strict-markers", "-rs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "2 passed, 2 skipped" in output
    assert "needs atomic_compare_and_swap, which FerretDB 1.24 (SQLite) lacks" in output
    assert "needs json_schema, which FerretDB 1.24 (SQLite) lacks" in output
