"""The real alley 0.0.3, installed once into a cached virtual environment, for tests
that run it and today's alley on one database in turns.

alley 0.0.3 needs what today's alley left behind: the ``imp`` module (gone in Python
3.12), PyMongo 3 (``insert``/``remove``, gone in PyMongo 4) and a MongoEngine that
works with it. So :func:`provide_legacy_alley` finds a Python 3.11 (whatever Python
runs the tests) and builds, once, in ``$XDG_CACHE_HOME/alley/alley-0.0.3/`` (beside
the test servers), a virtual environment with :data:`REQUIREMENTS` installed by pip
from its configured index. Later calls find it there and cost nothing.

:meth:`LegacyAlley.run` runs 0.0.3's own command (``alley.alley_cli:cli``, what its
``alley`` script calls) with ``-db DB -h HOST -p PORT PATH COMMAND...``. One
difference from the script: the ``alley.migrations`` logger is set to INFO, so its
messages (``All migrations registered, nothing to execute``) are printed; the script
leaves logging at WARNING and prints nothing but errors.

Importing this module imports only the standard library.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alley.testing.server import cache_root

LEGACY_VERSION = "0.0.3"
#: What the environment holds: 0.0.3 from the index, PyMongo 3, and the last MongoEngine
#: line that supports PyMongo 3 (0.24; 0.27 needs PyMongo 4).
REQUIREMENTS = (f"alley=={LEGACY_VERSION}", "pymongo>=3.12,<4", "mongoengine>=0.24,<0.25")
#: 0.0.3 imports ``imp``: Python 3.11 is the newest it runs on.
PYTHON_VERSION = (3, 11)

Log = Callable[[str], None]

# 0.0.3's console script, with its module logger at INFO so that it says what it did.
_RUN_003 = (
    "import logging, sys; "
    "logging.getLogger('alley').setLevel(logging.INFO); "
    "from alley.alley_cli import cli; "
    "cli(prog_name='alley')"
)
_COMPLETE = ".complete"


class LegacyUnavailable(RuntimeError):
    """alley 0.0.3 cannot be provided here; the message names what is missing."""


def _default_log(message: str) -> None:
    print(f"alley.testing.legacy: {message}", flush=True)


def legacy_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/alley/alley-0.0.3`` (default ``~/.cache/alley/alley-0.0.3``)."""
    return cache_root(env) / f"alley-{LEGACY_VERSION}"


def _is_python_311(python: str | Path) -> bool:
    try:
        result = subprocess.run(
            [str(python), "-c", "import imp, sys, venv; print(sys.version_info[:2])"],
            capture_output=True,
            check=False,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.strip() == str(PYTHON_VERSION)


def find_python311(env: Mapping[str, str] | None = None) -> Path | None:
    """A Python 3.11 with ``imp`` and ``venv``: ``python3.11`` on ``PATH``, pyenv's
    (``pyenv which``, then ``$PYENV_ROOT/versions/3.11*``), or the system's."""
    env = os.environ if env is None else env
    candidates: list[str] = []
    on_path = shutil.which("python3.11", path=env.get("PATH"))
    if on_path:
        candidates.append(on_path)
    pyenv = shutil.which("pyenv", path=env.get("PATH"))
    if pyenv:
        try:
            which = subprocess.run(
                [pyenv, "which", "python3.11"],
                capture_output=True,
                check=False,
                text=True,
                timeout=30,
                env=dict(env),
            )
        except (OSError, subprocess.SubprocessError):
            which = None
        if which is not None and which.returncode == 0 and which.stdout.strip():
            candidates.append(which.stdout.strip())
    root = env.get("PYENV_ROOT") or str(Path(env.get("HOME", str(Path.home()))) / ".pyenv")
    candidates += sorted(glob.glob(f"{root}/versions/3.11*/bin/python3.11"), reverse=True)
    candidates += ["/usr/local/bin/python3.11", "/usr/bin/python3.11"]
    for candidate in dict.fromkeys(candidates):
        if Path(candidate).is_file() and _is_python_311(candidate):
            return Path(candidate)
    return None


@dataclass(frozen=True)
class LegacyAlley:
    """alley 0.0.3 in its own environment."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def command(
        self,
        database: str,
        host: str,
        port: int,
        path: str | Path,
        *args: str,
        login: Sequence[str] = (),
    ) -> list[str]:
        """0.0.3's command line: connection options (``login``: ``-u``/``-w``/``-a``),
        then PATH, then the command."""
        return [
            str(self.python),
            "-c",
            _RUN_003,
            "-db",
            database,
            "-h",
            host,
            "-p",
            str(port),
            *login,
            str(path),
            *args,
        ]

    def run(
        self,
        database: str,
        host: str,
        port: int,
        path: str | Path,
        *args: str,
        login: Sequence[str] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``alley -db DATABASE -h HOST -p PORT PATH ARGS...`` of 0.0.3; its output
        (the log lines go to stderr) and exit code."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return subprocess.run(
            self.command(database, host, port, path, *args, login=login),
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            cwd=str(path),
            env=environment,
            stdin=subprocess.DEVNULL,
        )


def _complete(venv: Path) -> bool:
    marker = venv / _COMPLETE
    return marker.is_file() and marker.read_text() == "\n".join(REQUIREMENTS)


def find_legacy_alley(env: Mapping[str, str] | None = None) -> LegacyAlley | None:
    """The cached environment, if it was built completely."""
    venv = legacy_cache_dir(env)
    return LegacyAlley(venv) if _complete(venv) else None


def _run(argv: Sequence[str], log: Log, env: Mapping[str, str]) -> None:
    log("$ " + " ".join(argv))
    result = subprocess.run(
        list(argv),
        capture_output=True,
        check=False,
        text=True,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise LegacyUnavailable(
            f"building alley {LEGACY_VERSION}'s environment failed: `{' '.join(argv)}` "
            f"exited with status {result.returncode}; last output:\n" + "\n".join(output)
        )


def build_legacy_alley(
    target: Path | None = None,
    *,
    python: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = _default_log,
) -> LegacyAlley:
    """Build the environment into ``target`` (default :func:`legacy_cache_dir`) once.

    A lock file beside it makes concurrent callers wait for one build; a marker file
    written last says the build completed (an interrupted one is started again).

    :raises LegacyUnavailable: no Python 3.11, or pip failed (naming what).
    """
    env = dict(os.environ if env is None else env)
    target = target or legacy_cache_dir(env)
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".alley-{LEGACY_VERSION}.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process building {target}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(target):
            return LegacyAlley(target)
        python = python or find_python311(env)
        if python is None:
            raise LegacyUnavailable(
                f"alley {LEGACY_VERSION} needs Python 3.11 (it imports 'imp', gone in 3.12) "
                "and none was found: no python3.11 on PATH, from 'pyenv which python3.11', "
                "in $PYENV_ROOT/versions/3.11*, or in /usr/bin (install one, e.g. "
                "'pyenv install 3.11')"
            )
        started = time.monotonic()
        log(f"building alley {LEGACY_VERSION} with {python} into {target}; this happens once")
        shutil.rmtree(target, ignore_errors=True)
        pip_env = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
        pip_env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        _run([str(python), "-m", "venv", str(target)], log, pip_env)
        _run(
            [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            log,
            pip_env,
        )
        (target / _COMPLETE).write_text("\n".join(REQUIREMENTS))
        log(f"built alley {LEGACY_VERSION} in {time.monotonic() - started:.1f}s")
        return LegacyAlley(target)


def provide_legacy_alley(
    env: Mapping[str, str] | None = None, log: Log = _default_log
) -> LegacyAlley:
    """The cached alley 0.0.3, built first if needed.

    :raises LegacyUnavailable: it cannot be built here (the message says why).
    """
    return find_legacy_alley(env) or build_legacy_alley(env=env, log=log)


__all__ = [
    "LEGACY_VERSION",
    "REQUIREMENTS",
    "LegacyAlley",
    "LegacyUnavailable",
    "build_legacy_alley",
    "find_legacy_alley",
    "find_python311",
    "legacy_cache_dir",
    "provide_legacy_alley",
]
