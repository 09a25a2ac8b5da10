"""Helpers for integration tests: a project folder and the ``alley`` command.

The server and the per-test database come from alley.testing's pytest plugin
(``mongo_db``, ``mongo_db_uri``).

``Project.alley(...)`` runs the command in this process (``alley.cli.main``, what the
console script calls, with the environment, working directory and output streams the
process would have): starting an interpreter and importing pymongo, mongoengine and
typer for each of a few hundred commands was most of the suite's time. Where the
process boundary is the point (signals, races, exit codes of a dying process, plugins
put on ``PYTHONPATH``, interpreter start-up, the fast ``--help`` of the entry point),
tests ask for the real process: ``Project.alley(..., process=True)`` or
``Project.spawn(...)``. ``ALLEY_TESTS_PROCESS=1`` runs every command as a process
(to compare the two).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import linecache
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ALLEY = shutil.which("alley", path=os.path.dirname(sys.executable)) or shutil.which("alley")

# ALLEY_TESTS_PROCESS=1: every Project.alley(...) is a real process, as before.
ALWAYS_PROCESS = os.environ.get("ALLEY_TESTS_PROCESS", "") not in ("", "0")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Project:
    """A folder with ``migrations/`` in it, and the ``alley`` command run against it."""

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

    def arguments(self, *args: str, url: bool = True) -> list[str]:
        """``[--url URI] ARGS``: the command line after ``alley``."""
        return [*(("--url", self.uri) if url else ()), *args]

    def command(self, *args: str, url: bool = True) -> list[str]:
        assert ALLEY, "the alley console script is not installed (pip install -e .)"
        return [ALLEY, *self.arguments(*args, url=url)]

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLEY_")}
        environment.pop("MONGODB_URI", None)
        environment["ALLEY_CACHE_DIR"] = str(self.root / ".alley-cache")
        environment.update(env or {})
        return environment

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``alley [--url URI] ARGS`` in the background, as a process."""
        # A suite run as a background job starts with SIGINT ignored, which a child
        # inherits; a handled signal is reset to its default on exec instead, so the
        # Ctrl-C tests' SIGINT reaches alley.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return subprocess.Popen(
                self.command(*args),
                cwd=self.root,
                env=self.environment(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)

    def alley(
        self,
        *args: str,
        url: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
        process: bool = False,
    ) -> Result:
        """Run ``alley [--url URI] ARGS`` and wait for it.

        In this process unless ``process`` (or ``ALLEY_TESTS_PROCESS=1``); ``timeout``
        only bounds a process (a command run in this process cannot be stopped).
        """
        if process or ALWAYS_PROCESS:
            return self.alley_process(*args, url=url, env=env, cwd=cwd, timeout=timeout)
        return run_in_process(
            self.arguments(*args, url=url), cwd=cwd or self.root, environ=self.environment(env)
        )

    def alley_process(
        self,
        *args: str,
        url: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> Result:
        """Run ``alley [--url URI] ARGS`` as a separate process (the console script)."""
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


# -------------------------------------------------------------------------
# The command in this process
# -------------------------------------------------------------------------


def run_in_process(argv: Sequence[str], *, cwd: Path, environ: Mapping[str, str]) -> Result:
    """``alley.cli.main(argv)`` as the console script would run it, then undo its traces.

    For the call: ``os.environ`` is ``environ``, the working directory is ``cwd``,
    ``sys.stdout``/``sys.stderr`` are captured, warnings start from a fresh
    interpreter's filters, and the checksum cache is a new one (a process reads it
    from disk). After it, as at the process's exit: the checksum cache is saved (its
    ``atexit`` hook, unregistered), and the MongoEngine connections it made are closed.
    Then this process is put back: environment, working directory, ``sys.path`` (the
    engine prepends the project's folders), import machinery, the modules imported
    from the project (a later test's ``myapp`` or a removed ``sys_path`` must not find
    them cached), ``warnings.showwarning`` (``main`` replaces it).

    ``alley.cli.run`` is not called: it calls ``sys.exit`` and unregisters pymongo's
    exit hook, which is this process's business.
    """
    import alley.cli
    from alley import checksum_cache

    stdout, stderr = io.StringIO(), io.StringIO()
    saved_environ = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_meta_path = list(sys.meta_path)
    saved_path_hooks = list(sys.path_hooks)
    saved_importer_cache = set(sys.path_importer_cache)
    saved_modules = set(sys.modules)
    saved_aliases = _mongoengine_aliases()
    saved_dont_write_bytecode = sys.dont_write_bytecode
    checksum_cache._process_cache.cache_clear()
    importlib.invalidate_caches()  # files written since the last command are found
    linecache.checkcache()  # tracebacks show the migration's current lines
    try:
        with warnings.catch_warnings():  # restores showwarning and the filters after
            _fresh_interpreter_warning_filters(environ.get("PYTHONWARNINGS", ""))
            _replace_environ(environ)
            sys.dont_write_bytecode = bool(environ.get("PYTHONDONTWRITEBYTECODE"))
            os.chdir(cwd)
            # As in the console script, the current folder is not importable by itself.
            sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = alley.cli.main(list(argv))
                except SystemExit as exit_:  # as the interpreter would end
                    code = _exit_status(exit_, stderr)
                except KeyboardInterrupt:
                    stderr.write("alley: error: interrupted\n")
                    code = 130
                finally:
                    _save_checksum_cache(checksum_cache)
    finally:
        _disconnect_mongoengine(saved_aliases)
        os.chdir(saved_cwd)
        _replace_environ(saved_environ)
        sys.dont_write_bytecode = saved_dont_write_bytecode
        sys.path[:] = saved_path
        sys.meta_path[:] = saved_meta_path
        sys.path_hooks[:] = saved_path_hooks
        for key in set(sys.path_importer_cache) - saved_importer_cache:
            sys.path_importer_cache.pop(key, None)
        _forget_project_modules(set(sys.modules) - saved_modules)
        checksum_cache._process_cache.cache_clear()
    return Result(code, stdout.getvalue(), stderr.getvalue())


def _replace_environ(environ: Mapping[str, str]) -> None:
    for key in [key for key in os.environ if key not in environ]:
        del os.environ[key]
    for key, value in environ.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _fresh_interpreter_warning_filters(options: str) -> None:
    """The filters of a fresh ``python`` (release build), with ``PYTHONWARNINGS`` options.

    Also makes every warning show again: a process shows a warning once per place, and
    so must each command here, however many ran before.
    """
    warnings.resetwarnings()
    for category in (ImportWarning, PendingDeprecationWarning, DeprecationWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    warnings.simplefilter("ignore", ResourceWarning)
    for option in options.split(","):  # each in turn, so the last one wins
        if option.strip():
            with contextlib.suppress(Exception):
                warnings._setoption(option.strip())  # type: ignore[attr-defined]
    # alley.cli.main replaces showwarning; a fresh interpreter has the original one.
    warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]


def _exit_status(exit_: SystemExit, stderr: io.StringIO) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code & 0xFF
    stderr.write(f"{exit_.code}\n")
    return 1


def _save_checksum_cache(checksum_cache: ModuleType) -> None:
    """What the process's ``atexit`` does with the checksum cache, and only that."""
    import atexit

    process_cache = checksum_cache._process_cache
    if process_cache.cache_info().currsize:
        cache = process_cache()
        atexit.unregister(cache.save)
        cache.save()


def _mongoengine_aliases() -> set[str]:
    connection = sys.modules.get("mongoengine.connection")
    return set(getattr(connection, "_connection_settings", ())) if connection else set()


def _disconnect_mongoengine(before: set[str]) -> None:
    """Close the connections the command registered (alley's own, or a migration's)."""
    connection = sys.modules.get("mongoengine.connection")
    if connection is None:
        return
    for alias in _mongoengine_aliases() - before:
        with contextlib.suppress(Exception):
            connection.disconnect(alias)


def _installed_roots() -> tuple[str, ...]:
    """Where this process's own modules come from: the interpreter, the venv, alley."""
    import alley

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(alley.__file__).resolve().parents[1]))  # src/ (alley, alley_plugins)
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots)


def _forget_project_modules(names: set[str]) -> None:
    """Drop the modules the command imported from elsewhere than this environment.

    A process starts with none of them; kept, a later command would import a stale
    ``myapp`` (or one that is no longer on its path). Modules newly imported from the
    environment itself (pymongo's, say) stay: objects elsewhere refer to them.
    """
    roots = _installed_roots()
    for name in names:
        module = sys.modules.get(name)
        if module is None:
            continue
        locations = _module_locations(module)
        if locations and not any(
            os.path.realpath(location).startswith(roots) for location in locations
        ):
            del sys.modules[name]


def _module_locations(module: ModuleType) -> list[str]:
    locations = []
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        locations.append(file)
    with contextlib.suppress(Exception):
        locations.extend(p for p in getattr(module, "__path__", None) or () if isinstance(p, str))
    return locations


# -------------------------------------------------------------------------
# Processes
# -------------------------------------------------------------------------


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
