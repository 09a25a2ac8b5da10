"""The tools under benchmark: alley and its peers, each in its own isolated environment.

Every tool knows how to install itself (once, under the cache directory), how to write
N no-op migrations in its own format, the command line of each measured operation,
and how many migrations its history says are applied (to check each run did the work).
An operation a tool does not have is a string: the reason, shown as "n/a (reason)".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alley.testing import peers
from alley.testing.peers import NPM_PEER, PYPI_PEERS
from alley.testing.peers import run as _run

CACHE_DIR = Path(os.environ.get("ALLEY_BENCH_CACHE", Path.home() / ".cache" / "alley" / "bench"))
# The peers are installed where the tests install them (alley.testing.peers), once for
# both; ALLEY_BENCH_CACHE moves them under it.
PEERS_DIR = (
    Path(os.environ["ALLEY_BENCH_CACHE"]) / "peers"
    if os.environ.get("ALLEY_BENCH_CACHE")
    else peers.peers_cache_dir()
)

__all__ = ["NPM_PEER", "PYPI_PEERS"]

# The operations measured on a workspace, in the order of the report.
OPERATIONS = ("status", "up", "down", "noop_up")

Command = tuple[list[str], Path]  # argv, cwd


@dataclass
class Tool:
    """One tool. ``unavailable`` is set when it cannot be installed or run at all."""

    name: str
    version: str = "?"
    unavailable: str | None = None
    language: str = "Python"
    env_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- to override -------------------------------------------------------------
    def help_command(self) -> list[str]:
        raise NotImplementedError

    def write_migrations(self, root: Path, n: int) -> None:
        raise NotImplementedError

    def command(self, op: str, root: Path, uri: str, db: str) -> Command | str:
        raise NotImplementedError

    def history_collection(self) -> str:
        raise NotImplementedError

    def applied_filter(self) -> dict[str, Any]:
        return {}


# --------------------------------------------------------------------------- alley


class Alley(Tool):
    """alley itself, from the environment running the benchmark (``pip install -e .``)."""

    def __init__(self) -> None:
        super().__init__(name="alley")
        from importlib.metadata import version

        exe = Path(sys.executable).parent / "alley"
        self.exe = str(exe) if exe.exists() else shutil.which("alley") or "alley"
        try:
            self.version = version("alley")
        except Exception as error:  # pragma: no cover - alley is installed in the bench env
            self.unavailable = f"not installed: {error}"
        source = os.environ.get("BENCH_ALLEY_SOURCE", "")
        self.env_note = f"bench env ({sys.prefix})" + (f", {source}" if source else "")

    def help_command(self) -> list[str]:
        return [self.exe, "--help"]

    def write_migrations(self, root: Path, n: int) -> None:
        folder = root / "migrations"
        folder.mkdir(parents=True, exist_ok=True)
        body = "def up(db):\n    pass\n\n\ndef down(db):\n    pass\n"
        for i in range(1, n + 1):
            (folder / f"{i:04d}_noop.py").write_text(body)

    def command(self, op: str, root: Path, uri: str, db: str) -> Command | str:
        base = [self.exe, "--url", uri, str(root)]
        argv = {
            "status": [*base, "status"],
            "up": [*base, "up"],
            "noop_up": [*base, "up"],
            "down": [*base, "down", "1"],
        }[op]
        return argv, root

    def history_collection(self) -> str:
        return "db_migrations"


# --------------------------------------------------------------------------- PyPI peers


class PythonPeer(Tool):
    """A peer installed from PyPI into its own venv under the cache directory."""

    package = ""
    script = ""

    def __init__(self, cache: Path) -> None:
        super().__init__(name=self.package)
        self.venv = cache / self.package
        try:
            self._install()
            self.version, pymongo = _run(
                [
                    str(self.python),
                    "-c",
                    "from importlib.metadata import version as v;"
                    f"print(v({self.package!r}), v('pymongo'))",
                ]
            ).split()
            self.env_note = f"venv, PyMongo {pymongo}"
        except Exception as error:
            self.unavailable = f"install failed: {error}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def exe(self) -> str:
        return str(self.venv / "bin" / self.script)

    def _install(self) -> None:
        self.venv = peers.python_peer(self.package, self.venv.parent)

    def help_command(self) -> list[str]:
        return [self.exe, "--help"]


class PymongoMigrate(PythonPeer):
    """pymongo-migrate: modules with ``name``, ``dependencies``, ``upgrade``/``downgrade``."""

    package = "pymongo-migrate"
    script = "pymongo-migrate"

    def write_migrations(self, root: Path, n: int) -> None:
        folder = root / "pymongo_migrations"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            deps = [f"m{i - 1:04d}"] if i > 1 else []
            (folder / f"m{i:04d}.py").write_text(
                f'"""no-op {i}"""\n\nname = "m{i:04d}"\ndependencies = {deps!r}\n\n\n'
                "def upgrade(db):\n    pass\n\n\ndef downgrade(db):\n    pass\n"
            )

    def command(self, op: str, root: Path, uri: str, db: str) -> Command | str:
        base = ["-u", uri, "-d", db, "-m", str(root / "pymongo_migrations")]
        sub = {"status": "show", "up": "upgrade", "noop_up": "upgrade", "down": "downgrade"}[op]
        return [self.exe, sub, *base], root

    def history_collection(self) -> str:
        return "pymongo_migrate"

    def applied_filter(self) -> dict[str, Any]:
        # downgrade keeps the document and sets ``applied`` to None
        return {"applied": {"$ne": None}}


class MongodbMigrations(PythonPeer):
    """mongodb-migrations: ``<digits>_name.py`` holding ``class Migration(BaseMigration)``."""

    package = "mongodb-migrations"
    script = "mongodb-migrate"

    def write_migrations(self, root: Path, n: int) -> None:
        folder = root / "migrations"
        folder.mkdir(parents=True, exist_ok=True)
        body = (
            "from mongodb_migrations.base import BaseMigration\n\n\n"
            "class Migration(BaseMigration):\n"
            "    def upgrade(self):\n        pass\n\n"
            "    def downgrade(self):\n        pass\n"
        )
        for i in range(1, n + 1):
            (folder / f"{i:04d}_noop.py").write_text(body)

    def command(self, op: str, root: Path, uri: str, db: str) -> Command | str:
        if op == "status":
            return "no status command"
        argv = [self.exe, "--url", uri, "--migrations", str(root / "migrations")]
        if op == "down":
            argv.append("--downgrade")
        return argv, root

    def history_collection(self) -> str:
        return "database_migrations"


# --------------------------------------------------------------------------- npm peer


class MigrateMongo(Tool):
    """migrate-mongo from npm, installed with ``npm install --prefix`` under the cache."""

    def __init__(self, cache: Path) -> None:
        super().__init__(name=NPM_PEER, language="Node.js")
        self.prefix = cache / NPM_PEER
        try:
            self._install()
            self.version = _run([self.exe, "--version"])
            self.env_note = f"npm prefix, Node {_run(['node', '--version'])}"
        except Exception as error:
            self.unavailable = f"install failed: {error}"

    @property
    def exe(self) -> str:
        return str(self.prefix / "node_modules" / ".bin" / NPM_PEER)

    def _install(self) -> None:
        peers.npm_peer(self.prefix.parent)

    def help_command(self) -> list[str]:
        return [self.exe, "--help"]

    def write_migrations(self, root: Path, n: int) -> None:
        folder = root / "migrations"
        folder.mkdir(parents=True, exist_ok=True)
        body = "module.exports = {\n  async up(db, client) {},\n  async down(db, client) {},\n};\n"
        for i in range(1, n + 1):
            (folder / f"{i:04d}-noop.js").write_text(body)

    def command(self, op: str, root: Path, uri: str, db: str) -> Command | str:
        # The URL and database are rewritten per workspace; lockTtl 0 = the default (no lock).
        config = {
            "mongodb": {"url": uri, "databaseName": db, "options": {}},
            "migrationsDir": "migrations",
            "changelogCollectionName": "changelog",
            "lockCollectionName": "changelog_lock",
            "lockTtl": 0,
            "migrationFileExtension": ".js",
            "useFileHash": False,
            "moduleSystem": "commonjs",
        }
        (root / "migrate-mongo-config.js").write_text(f"module.exports = {json.dumps(config)};\n")
        sub = {"status": ["status"], "up": ["up"], "noop_up": ["up"], "down": ["down", "--block"]}
        return [self.exe, *sub[op]], root

    def history_collection(self) -> str:
        return "changelog"


def all_tools(cache: Path = PEERS_DIR) -> list[Tool]:
    """alley first, then the peers; installs what is missing (in parallel would race pip)."""
    return [Alley(), PymongoMigrate(cache), MongodbMigrations(cache), MigrateMongo(cache)]
