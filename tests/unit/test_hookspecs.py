"""Every hook is documented where it is declared, and docs/hooks.md is generated from it."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from alley import hookspecs

DOCS = Path(__file__).parents[2] / "docs"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_hooks", DOCS / "generate_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = [f for name, f in vars(hookspecs).items() if name.startswith("alley_")]


def test_there_are_hooks_for_the_four_verbs_and_connecting() -> None:
    names = {f.__name__ for f in HOOKS}
    assert {
        "alley_connect",
        "alley_discover_migrations",
        "alley_order_migrations",
        "alley_load_migration",
        "alley_execute_migration",
        "alley_history_store",
    } <= names


@pytest.mark.parametrize("hook", HOOKS, ids=lambda f: f.__name__)
def test_each_hook_documents_every_argument_its_result_and_its_calling_convention(
    hook: object,
) -> None:
    doc = inspect.getdoc(hook) or ""
    params = list(inspect.signature(hook).parameters)  # type: ignore[arg-type]
    documented = re.findall(r":param (\w+):", doc)
    assert documented == params
    assert ":returns:" in doc
    assert "Default:" in doc
    firstresult = bool(getattr(hook, "alley_spec", {}).get("firstresult"))
    assert ("Stops at first non-None result" in doc) is firstresult


def test_hooks_page_is_generated_from_the_docstrings() -> None:
    generator = load_generator()
    assert (DOCS / "hooks.md").read_text() == generator.render(), (
        "docs/hooks.md is out of date: run `nox -s docs` (python docs/generate_hooks.py)"
    )
