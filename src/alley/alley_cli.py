"""``alley.alley_cli:cli``, alley 0.0.3's console-script target, now the ``alley`` command.

0.0.3's ``cli`` was a click group (``alley PATH [options] COMMAND``). Today's command
takes every 0.0.3 command line unchanged, and more, so ``cli`` is a click command that
hands its arguments, untouched, to :func:`alley.cli.main` and exits with its code:
``cli()``, ``cli.main(args)`` (``standalone_mode=False`` returns the exit code) and
``click.testing.CliRunner().invoke(cli, args)`` behave like the ``alley`` command.

click is not a dependency of alley (the command is built with typer): this module needs
it installed, as 0.0.3 did. It is imported by name so that type checking alley does not.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

try:
    click: Any = importlib.import_module("click")
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "alley.alley_cli (alley 0.0.3's click entry point) needs click: pip install click. "
        "The alley command itself does not."
    ) from error


def _run(ctx: Any, args: tuple[str, ...]) -> None:
    from alley.cli import main

    # main() replaces warnings.showwarning for its one-line warnings: put it back after,
    # as a library call should.
    with warnings.catch_warnings():
        code = main(list(args))
    ctx.exit(code)


#: ``alley [CONNECTION OPTIONS] [PATH] COMMAND [ARGS]``, exactly as the ``alley`` command.
cli: Any = click.command(
    name="alley",
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    },
    add_help_option=False,
    help="The alley command (alley 0.0.3's entry point); see 'alley --help'.",
)(click.pass_context(click.argument("args", nargs=-1, type=click.UNPROCESSED)(_run)))

__all__ = ["cli"]
