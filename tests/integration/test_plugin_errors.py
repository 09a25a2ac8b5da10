"""Broken plugins, installed for real, through the real ``alley`` process.

Each plugin is a module plus a ``*.dist-info`` folder (``METADATA``, ``entry_points.txt``
with an ``[alley]`` section) in a throwaway directory put on ``PYTHONPATH``: exactly what
pip leaves in site-packages, so alley finds it through the entry point and names its
distribution. Every error is one line on stderr naming the plugin and its distribution,
with exit code 8 (docs/exit-codes.md), and the plugin can be switched off.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, Result

PLUGIN = 8


def install(site: Path, name: str, version: str, files: dict[str, str]) -> dict[str, str]:
    """Install distribution ``alley-<name>`` whose ``alley`` entry point ``<name>`` is the
    module ``<name>_plugin``; ``files`` are its source files, by path. Returns the
    environment that puts it on the path."""
    for path, source in files.items():
        target = site / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))
    dist_info = site / f"alley_{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: alley-{name}\nVersion: {version}\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[alley]\n{name} = {name}_plugin\n")
    return {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}


def error_line(result: Result) -> str:
    """The whole of stderr, which must be a single ``alley: error:`` line."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alley: error: "), result.stderr
    return lines[0]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site-packages"


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(
    project: Project, site: Path
) -> None:
    env = install(site, "broken", "2.0", {"broken_plugin.py": "raise RuntimeError('boom')\n"})

    status = project.alley("status", env=env, process=True)
    listing = project.alley("plugins", env=env, process=True)
    verbose = project.alley("--verbose", "status", env=env, process=True)

    for result in (status, listing):
        assert result.returncode == PLUGIN
        assert error_line(result) == (
            "alley: error: plugin 'broken' from alley-broken 2.0 failed to load: "
            "RuntimeError: boom (disable it with ALLEY_DISABLE_PLUGINS=broken)"
        )
    assert verbose.returncode == PLUGIN
    assert "Traceback" in verbose.stderr
    assert "broken_plugin.py" in verbose.stderr


@pytest.mark.parametrize(
    ("args", "env", "config"),
    [
        (("--disable-plugin", "broken"), {}, ""),
        ((), {"ALLEY_DISABLE_PLUGINS": "other,broken"}, ""),
        ((), {"ALLEY_LOAD_PLUGINS": ""}, ""),  # the defaults only
        ((), {}, '[tool.alley]\ndisable_plugins = ["broken"]\n'),
    ],
    ids=["--disable-plugin", "ALLEY_DISABLE_PLUGINS", "ALLEY_LOAD_PLUGINS=", "config"],
)
def test_a_broken_plugin_can_be_switched_off(
    project: Project,
    site: Path,
    mongo_db: Any,
    args: tuple[str, ...],
    env: dict[str, str],
    config: str,
) -> None:
    env = {
        **install(site, "broken", "2.0", {"broken_plugin.py": "raise ImportError('x')\n"}),
        **env,
    }
    (project.root / "pyproject.toml").write_text(config)
    project.counter("0001_a.py")

    listing = project.alley(*args, "plugins", "--json", env=env, process=True)
    up = project.alley(*args, "up", env=env, process=True)

    assert listing.returncode == 0, listing.stderr
    assert '"broken"' not in listing.stdout
    assert '"mongo-history"' in listing.stdout
    assert up.returncode == 0, up.stderr
    assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_a.py"]


def test_a_plugin_that_raises_in_a_hook_is_named_and_nothing_runs(
    project: Project, site: Path, mongo_db: Any
) -> None:
    env = install(
        site,
        "raiser",
        "3.0",
        {
            "raiser_plugin.py": """\
            from alley.hookspecs import hookimpl


            @hookimpl
            def alley_discover_migrations(settings):
                return {}["missing"]
            """
        },
    )
    project.counter("0001_a.py")

    result = project.alley("up", env=env, process=True)

    assert result.returncode == PLUGIN
    assert error_line(result) == (
        "alley: error: plugin 'raiser' (alley-raiser 3.0) failed: KeyError: 'missing' "
        "(run with --verbose for the traceback, or disable it with ALLEY_DISABLE_PLUGINS=raiser)"
    )
    assert "db_migrations" not in mongo_db.list_collection_names()
    assert "counters" not in mongo_db.list_collection_names()


def test_a_history_store_that_raises_is_named(project: Project, site: Path, mongo_db: Any) -> None:
    env = install(
        site,
        "store",
        "1.0",
        {
            "store_plugin.py": """\
            from alley.hookspecs import hookimpl
            from alley_plugins.mongo_history import MongoHistoryStore


            class Store(MongoHistoryStore):
                def read_records(self):
                    raise LookupError("cannot read")


            @hookimpl
            def alley_history_store(settings, db):
                return Store(db, "elsewhere")
            """
        },
    )
    project.counter("0001_a.py")

    result = project.alley("status", env=env, process=True)

    assert result.returncode == PLUGIN
    line = error_line(result)
    assert "plugin 'store' (alley-store 1.0) failed: LookupError: cannot read" in line


def test_a_plugin_with_an_unknown_hook_is_reported_at_load_time(
    project: Project, site: Path
) -> None:
    env = install(
        site,
        "typo",
        "1.0",
        {
            "typo_plugin.py": """\
            from alley.hookspecs import hookimpl


            @hookimpl
            def alley_discover_migration(settings):
                return []
            """
        },
    )

    listing = project.alley("plugins", env=env, process=True)
    create = project.alley("create", "x", url=False, env=env, process=True)  # never connects

    for result in (listing, create):
        assert result.returncode == PLUGIN
        line = error_line(result)
        assert line.startswith("alley: error: plugin 'typo' (alley-typo 1.0) is invalid: ")
        assert "unknown hook 'alley_discover_migration'" in line
        assert line.endswith("(disable it with ALLEY_DISABLE_PLUGINS=typo)")
    assert list(project.folder.iterdir()) == []


def test_a_hook_argument_the_hookspec_lacks_is_one_line(project: Project, site: Path) -> None:
    env = install(
        site,
        "badarg",
        "1.0",
        {
            "badarg_plugin.py": """\
            from alley.hookspecs import hookimpl


            @hookimpl
            def alley_history_store(settings, database):
                return None
            """
        },
    )

    result = project.alley("plugins", env=env, process=True)

    assert result.returncode == PLUGIN
    line = error_line(result)
    assert "plugin 'badarg' from alley-badarg 1.0 is invalid" in line
    assert "'database'" in line


def test_a_hook_raising_in_a_submodule_of_the_plugin_package_is_named(
    project: Project, site: Path
) -> None:
    env = install(
        site,
        "pkg",
        "1.0",
        {
            "pkg_plugin/__init__.py": "from pkg_plugin.hooks import alley_discover_migrations\n",
            "pkg_plugin/hooks.py": """\
            from alley.hookspecs import hookimpl


            @hookimpl
            def alley_discover_migrations(settings):
                raise ValueError("bad")
            """,
        },
    )

    result = project.alley("status", env=env, process=True)

    assert result.returncode == PLUGIN
    assert "plugin 'pkg' (alley-pkg 1.0) failed: ValueError: bad" in error_line(result)
