"""alley's peers -- the MongoDB migration tools users switch from -- installed once
from the package registries into isolated, cached environments.

The tests of ``alley import-history`` let each tool write its real history before
importing it, and the benchmarks (``bench/peers.py``) time them against alley; both
install them through here, into one cache directory, ``$XDG_CACHE_HOME/alley/peers/``
(default ``~/.cache/alley/peers/``; :func:`peers_cache_dir`), beside the test servers:

- the PyPI tools (:data:`PYPI_PEERS`) each into a virtual environment made with the
  Python that asks first, ``<cache>/<package>/``; the tools run as their own console
  scripts, so one environment serves the tests on every Python;
- the npm tool (:data:`NPM_PEER`) with ``npm install --prefix <cache>/migrate-mongo``.

Versions are pinned (:data:`PYPI_PEERS`, :data:`NPM_VERSION`) so a cached environment
stays what the tests were written against; a marker file written last holds the
requirement, so an interrupted or outdated install is done again. A lock file makes
concurrent callers wait for one install. Later calls cost nothing.

Importing this module imports only the standard library.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from alley.testing.server import cache_root

#: PyPI package -> pinned version.
PYPI_PEERS: Mapping[str, str] = {"pymongo-migrate": "1.0.0", "mongodb-migrations": "1.3.1"}
#: The console script each PyPI package installs.
SCRIPTS: Mapping[str, str] = {
    "pymongo-migrate": "pymongo-migrate",
    "mongodb-migrations": "mongodb-migrate",
}
NPM_PEER = "migrate-mongo"
NPM_VERSION = "14.0.7"
_MARKER = ".alley-peer-installed"


class PeerUnavailable(RuntimeError):
    """A peer cannot be installed here; the message says what is missing or failed."""


def peers_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/alley/peers`` (default ``~/.cache/alley/peers``)."""
    return cache_root(env) / "peers"


def run(argv: Sequence[str], cwd: Path | None = None, timeout: float = 900) -> str:
    """Run a command; its stdout, stripped.

    :raises PeerUnavailable: it exited non-zero (its last line of output is named)."""
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PeerUnavailable(f"{' '.join(argv[:3])}… exited {done.returncode}: {tail[0]}")
    return done.stdout.strip()


def _locked_install(target: Path, requirement: str, install: Callable[[Path], None]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = target / _MARKER
        if marker.is_file() and marker.read_text() == requirement:
            return target
        print(f"alley.testing.peers: installing {requirement} into {target}", file=sys.stderr)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        install(target)
        marker.write_text(requirement)
        return target


def python_peer(package: str, cache: Path | None = None) -> Path:
    """The virtual environment of PyPI ``package`` (a key of :data:`PYPI_PEERS`),
    installed first if needed; its console script is ``bin/<SCRIPTS[package]>``.

    :raises PeerUnavailable: pip failed (no network to PyPI, ...).
    """
    requirement = f"{package}=={PYPI_PEERS[package]}"
    venv = (cache or peers_cache_dir()) / package

    def install(target: Path) -> None:
        env_python = target / "bin" / "python"
        run([sys.executable, "-m", "venv", str(target)])
        run([str(env_python), "-m", "pip", "install", "--quiet", requirement])

    return _locked_install(venv, requirement, install)


def python_peer_script(package: str, cache: Path | None = None) -> Path:
    """The console script of PyPI ``package``, installed first if needed."""
    return python_peer(package, cache) / "bin" / SCRIPTS[package]


def npm_peer(cache: Path | None = None) -> Path:
    """The ``migrate-mongo`` command, installed first if needed.

    :raises PeerUnavailable: no ``node``/``npm`` on PATH, or npm failed.
    """
    requirement = f"{NPM_PEER}@{NPM_VERSION}"
    prefix = (cache or peers_cache_dir()) / NPM_PEER

    def install(target: Path) -> None:
        if not shutil.which("npm") or not shutil.which("node"):
            raise PeerUnavailable(f"{NPM_PEER} needs node and npm, and they are not on PATH")
        (target / "package.json").write_text(json.dumps({"private": True}))
        run(["npm", "install", "--silent", "--prefix", str(target), requirement])

    _locked_install(prefix, requirement, install)
    return prefix / "node_modules" / ".bin" / NPM_PEER


def provide_all(cache: Path | None = None) -> dict[str, Path]:
    """Install every peer (``python -m alley.testing peers``); each one's command."""
    found = {package: python_peer_script(package, cache) for package in PYPI_PEERS}
    found[NPM_PEER] = npm_peer(cache)
    return found


def peer_env() -> dict[str, str]:
    """The environment to run a peer in: this one without the test run's Python
    settings (a peer's venv must not see the alley environment's packages)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


__all__ = [
    "NPM_PEER",
    "NPM_VERSION",
    "PYPI_PEERS",
    "SCRIPTS",
    "PeerUnavailable",
    "npm_peer",
    "peer_env",
    "peers_cache_dir",
    "provide_all",
    "python_peer",
    "python_peer_script",
    "run",
]
