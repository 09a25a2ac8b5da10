"""Write docs/hooks.md from the docstrings in src/alley/hookspecs.py.

The hooks are documented once, where they are declared; this page is generated from
them (``nox -s docs``), and a test fails when it is out of date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from alley import hookspecs

HOOKS_PAGE = Path(__file__).with_name("hooks.md")

INTRO = """\
# Hook reference

Generated from `src/alley/hookspecs.py` by `docs/generate_hooks.py` (`nox -s docs`);
do not edit by hand.

A plugin is a module or object with functions named after these hooks, marked with
`alley.hookspecs.hookimpl`. A `firstresult` hook is answered by the first plugin that
returns something other than `None`; plugins registered later are asked first, and the
defaults are registered first and marked `trylast`, so an installed plugin wins over a
default. Collect-all hooks ask every plugin and combine the answers.
"""


def hook_functions() -> list[object]:
    return [
        function
        for name, function in vars(hookspecs).items()
        if name.startswith("alley_") and callable(function)
    ]


def render() -> str:
    parts = [INTRO]
    for function in hook_functions():
        options = getattr(function, "alley_spec", {}) or {}
        signature = _signature(function)
        kind = "firstresult" if options.get("firstresult") else "collect-all"
        doc = inspect.getdoc(function) or ""
        name = function.__name__  # type: ignore[attr-defined]
        parts.append(f"## `{name}{signature}`\n\n*{kind}*\n\n{doc}\n")
    return "\n".join(parts)


def _signature(function: object) -> str:
    """The signature as written in the source (annotations are strings there)."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"({params}) -> {signature.return_annotation}"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if HOOKS_PAGE.read_text() != text:
            print(f"{HOOKS_PAGE} is out of date: run nox -s docs", file=sys.stderr)
            return 1
        return 0
    HOOKS_PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
