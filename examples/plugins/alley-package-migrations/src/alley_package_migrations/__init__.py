"""alley plugin: migrations shipped inside an installed Python package.

A team ships its migrations in its wheel (``myapp/migrations/0001_x.py`` as part of the
package ``myapp.migrations``) and runs them where the wheel is installed::

    alley -o package_migrations=myapp.migrations up

or with ``package_migrations = "myapp.migrations"`` (a string, comma-separated, or a
list) in ``[tool.alley]``. Files are found with :func:`importlib.resources.files`, so
they are read from wherever the package is installed (a site-packages folder, a zip),
and never imported: the default executor compiles their source as it does for files.

Both sources contribute: the package's migrations and the ``migrations/`` folder of the
filesystem default, and one id in both is an error. While a package is configured, a
missing ``migrations/`` folder is not an error (a deploy directory has none). To use
the package alone, disable the default: ``--disable-plugin filesystem``.
"""

from __future__ import annotations

import importlib
import re
from importlib import resources
from typing import TYPE_CHECKING

from alley.errors import DiscoveryError
from alley.hookspecs import hookimpl
from alley.model import Migration

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from alley.settings import Settings

__version__ = "0.1.0"

#: The ``[tool.alley]`` key (or ``-o KEY=VALUE``) naming the package(s).
OPTION = "package_migrations"
#: The same rule as the filesystem default: ``NNNN_name.py``, name in ``[a-z0-9_]``.
MIGRATION_FILENAME = re.compile(r"^(?P<id>[0-9]+)_(?P<name>[a-z0-9_]+)\.py$")


def configured_packages(settings: Settings) -> tuple[str, ...]:
    """The packages named by ``package_migrations``, in order; empty when not configured."""
    value = settings.options.get(OPTION, ())
    names = value.split(",") if isinstance(value, str) else value
    return tuple(str(name).strip() for name in names if str(name).strip())


def package_migrations(package: str) -> list[Migration]:
    """The migrations found in ``package`` (its top level, ``NNNN_name.py`` files).

    :raises DiscoveryError: the package cannot be imported, is a plain module, or a file
        cannot be read.
    """
    root = _package_root(package)
    migrations = []
    for entry in sorted(root.iterdir(), key=lambda entry: entry.name):
        match = MIGRATION_FILENAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        location = f"package:{package}/{entry.name}"
        try:
            source = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DiscoveryError(f"cannot read {location}: {error}") from error
        migrations.append(
            Migration(
                id=int(match["id"]),
                name=match["name"],
                filename=entry.name,
                source=source,
                location=location,
            )
        )
    return migrations


def _package_root(package: str) -> Traversable:
    hint = f"install the distribution that ships {package}, or fix {OPTION}"
    try:
        module = importlib.import_module(package)
    except Exception as error:  # the package's own __init__ may raise anything
        raise DiscoveryError(
            f"{OPTION}: cannot import {package!r}: {type(error).__name__}: {error}", hint=hint
        ) from error
    if not hasattr(module, "__path__"):
        raise DiscoveryError(
            f"{OPTION}: {package!r} is a module, not a package",
            hint="name the package (folder) that holds the NNNN_name.py files",
        )
    return resources.files(module)


@hookimpl
def alley_discover_migrations(settings: Settings) -> list[Migration]:
    """The configured packages' migrations, beside what the other plugins find.

    Without a ``migrations/`` folder the filesystem default only warns (discovery is
    collect-all), so a deploy directory with just the package works.
    """
    return [
        migration
        for package in configured_packages(settings)
        for migration in package_migrations(package)
    ]
