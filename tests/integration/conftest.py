"""Helpers for integration tests: a project folder and the real ``alley`` command.

The server and the per-test database come from alley.testing's pytest plugin
(``mongo_db``, ``mongo_db_uri``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ALLEY = shutil.which("alley", path=os.path.dirname(sys.executable)) or shutil.which("alley")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Project:
    """A folder with ``migrations/`` in it, and the real ``alley`` command run against it."""

    def __init__(self, root: Path, uri: str) -> None:
        self.root = root
        self.uri = uri
        self.folder = root / "migrations"
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, filename: str, up: str = "pass", down: str = "pass", header: str = "") -> Path:
        """Write a migration whose ``up``/``down`` bodies are the given code."""
        body = (
            f"{textwrap.dedent(header)}\n"
            f"def up(db):\n{textwrap.indent(textwrap.dedent(up).strip(), '    ')}\n\n\n"
            f"def down(db):\n{textwrap.indent(textwrap.dedent(down).strip(), '    ')}\n"
        )
        path = self.folder / filename
        path.write_text(body)
        return path

    def counter(self, filename: str, collection: str = "counters") -> Path:
        """A migration that increments ``counters[<id>]`` up and decrements it down."""
        key = filename.split("_", 1)[0]
        return self.write(
            filename,
            up=f"db[{collection!r}].update_one({{'_id': {key!r}}}, "
            "{'$inc': {'n': 1}}, upsert=True)",
            down=f"db[{collection!r}].update_one({{'_id': {key!r}}}, {{'$inc': {{'n': -1}}}})",
        )

    def command(self, *args: str, url: bool = True) -> list[str]:
        assert ALLEY, "the alley console script is not installed (pip install -e .)"
        return [ALLEY, *(("--url", self.uri) if url else ()), *args]

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
        environment.pop("MONGODB_URI", None)
        environment["ALLEY_CACHE_DIR"] = str(self.root / ".alley-cache")
        environment.update(env or {})
        return environment

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``alley [--url URI] ARGS`` in the background."""
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=self.environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def alley(
        self,
        *args: str,
        url: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> Result:
        """Run ``alley [--url URI] ARGS`` as a separate process."""
        completed = subprocess.run(
            self.command(*args, url=url),
            cwd=cwd or self.root,
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)


def finish(process: subprocess.Popen[str], timeout: float = 120) -> Result:
    """Wait for a spawned ``alley`` and collect what it printed."""
    stdout, stderr = process.communicate(timeout=timeout)
    return Result(process.returncode, stdout, stderr)


def wait_for(condition: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path, mongo_db_uri: str) -> Project:
    return Project(tmp_path / "app", mongo_db_uri)


@pytest.fixture
def write_migrations(project: Project) -> Callable[..., None]:
    def write(*filenames: str) -> None:
        for filename in filenames:
            project.counter(filename)

    return write
