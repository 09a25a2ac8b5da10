"""Developer tasks. `nox -s tests` is the test command of the README and of CI."""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"  # lint, type checks, docs, benchmarks
SUPPORTED_PYTHONS = ["3.11", "3.12", "3.13"]  # the tests run on each


def _enable_pyenv_versions() -> None:
    """Let pyenv's ``python3.12``/``python3.13`` shims answer, so nox finds them.

    A pyenv shim only runs the versions named in ``PYENV_VERSION`` (which a shim that
    started nox sets to the one selected) or ``pyenv global``; a machine with several
    installed but one selected would otherwise make nox report the others missing.
    """
    if shutil.which("pyenv") is None:
        return
    installed = subprocess.run(
        ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False
    ).stdout.split()
    selected = [v for v in os.environ.get("PYENV_VERSION", "").split(":") if v]
    wanted = [v for v in installed if any(v.startswith(p + ".") for p in SUPPORTED_PYTHONS)]
    if wanted:
        os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*selected, *wanted]))


_enable_pyenv_versions()


@nox.session(python=SUPPORTED_PYTHONS)
def tests(session: nox.Session) -> None:
    """Every test on FerretDB, then the integration tests on mongo-java-server.

    On each supported Python. Both servers are provisioned by alley.testing (built
    once into the cache). With arguments, only ``pytest ARGS`` runs, on the server
    ALLEY_TEST_SERVER chooses.
    """
    session.install("-e", ".[test]")
    if session.posargs:
        session.run("pytest", *session.posargs)
        return
    session.run("pytest", env={"ALLEY_TEST_SERVER": "ferretdb"})
    # The example distributions are pip-installed and run once, on FerretDB, above.
    session.run(
        "pytest",
        "tests/integration",
        "--ignore=tests/integration/test_plugin_distributions.py",
        env={"ALLEY_TEST_SERVER": "mongo-java-server"},
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    paths = ["src", "tests", "docs/generate_hooks.py", "examples", "bench", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Regenerate docs/hooks.md (from the hookspecs) and alley/help.txt (from the CLI)."""
    session.install("-e", ".")
    session.run("python", "docs/generate_hooks.py")
    session.run(
        "python",
        "-c",
        "import alley.cli, alley.entry; alley.entry.HELP_FILE.write_text(alley.cli.render_help())",
    )


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers, then the backfill and fleet benchmarks
    (docs/benchmarks.md).

    ``--quick`` goes to all three; ``nox -s bench -- --backfill-only ARGS`` runs only
    ``bench/data_backfill.py ARGS``, ``--fleet-only ARGS`` only ``bench/fleet.py ARGS``.
    """
    session.install("-e", ".[test]")
    args = list(session.posargs)
    if args[:1] == ["--backfill-only"]:
        session.run("python", "bench/data_backfill.py", *args[1:])
        return
    if args[:1] == ["--fleet-only"]:
        session.run("python", "bench/fleet.py", *args[1:])
        return
    quick = ["--quick"] if "--quick" in args else []
    session.run("python", "bench/run.py", *args)
    session.run("python", "bench/data_backfill.py", *quick)
    session.run("python", "bench/fleet.py", *quick)
