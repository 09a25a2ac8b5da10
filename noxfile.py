"""Developer tasks. `nox -s tests` is the test command of the README and of CI."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite against a real server (provisioned by alley.testing)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


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
    """Benchmarks against the peers (writes docs/benchmarks.md)."""
    session.install("-e", ".[test]")
    session.run("python", "bench/run.py", *session.posargs)
