"""alley.testing's provisioning rules, checked without a server.

No URI, no ``mongod``, no ``go``, no ``ferretdb`` and an empty cache: a clear error that
names the three ways to provide a server, and a test using the fixtures errors (it is
not skipped). The FerretDB build is exercised with a fake ``go`` to check the lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from alley.testing import (
    URI_ENV,
    ServerUnavailable,
    build_ferretdb,
    ferretdb_cache_path,
    start_server,
    uri_with_database,
)

THREE_WAYS = ("ALLEY_TEST_MONGODB_URI", "mongod", "Go >= 1.24")


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with only the Python interpreter on PATH and an empty cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != URI_ENV}
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
