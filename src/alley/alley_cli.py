"""``alley.alley_cli:cli``, alley 0.0.3's console-script target, now the ``alley`` command.

0.0.3's ``cli`` was a click group (``alley PATH [options] COMMAND``). Today's command
takes every 0.0.3 command line unchanged, and more, so ``cli`` hands its arguments,
untouched, to :func:`alley.cli.main`. It keeps the calling convention of a click
command without needing click (the command is built with typer): ``cli()`` reads
``sys.argv`` and exits with the command's code; ``cli.main(args)`` does the same for
``args``, and returns the code instead with ``standalone_mode=False``; click's
``CliRunner().invoke(cli, args)``, which calls ``cli.main``, works too.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any


class LegacyCommand:
    """A click-compatible stand-in for 0.0.3's ``cli`` group."""

    name = "alley"

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        """Run ``alley ARGS``; exit with its code, or return it when not standalone."""
        from alley.cli import main

        # main() replaces warnings.showwarning for its one-line warnings: put it back
        # after, as a library call should.
        with warnings.catch_warnings():
            code = main(list(sys.argv[1:] if args is None else args))
        if standalone_mode:
            sys.exit(code)
        return code

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return self.main(*args, **kwargs)


#: ``alley [CONNECTION OPTIONS] [PATH] COMMAND [ARGS]``, exactly as the ``alley`` command.
cli = LegacyCommand()

__all__ = ["cli"]
