"""Migrations as files: ``<PATH>/migrations/NNNN_name.py`` (alley 0.0.3's layout).

PATH comes from the settings; without one, the nearest ``migrations/`` folder in the
current directory or its parents is used.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alley.errors import AlleyWarning, DiscoveryError, SourceMissing
from alley.hookspecs import hookimpl
from alley.model import Migration

if TYPE_CHECKING:
    from alley.settings import Settings

FOLDER_NAME = "migrations"
MIGRATION_FILENAME = re.compile(r"^(?P<id>[0-9]+)_(?P<name>[a-z0-9_]+)\.py$")
# Files a person meant as migrations but that the pattern would skip, e.g.
# ``0003_AddUsers.py`` or ``0003-add-users.py``: 0.0.3 ignored them silently.
NEAR_MISS = re.compile(r"^[0-9]+[^.]*\.py$", re.IGNORECASE)

TEMPLATE = '''"""{name}"""


def up(db):
    pass


def down(db):
    pass
'''


def migrations_folder(settings: Settings) -> Path | None:
    """``PATH/migrations``, else the nearest ``migrations/`` from the current directory up."""
    if settings.path is not None:
        return settings.path / FOLDER_NAME
    for folder in (settings.cwd, *settings.cwd.parents):
        candidate = folder / FOLDER_NAME
        if candidate.is_dir():
            return candidate
    return None


@hookimpl(trylast=True)
def alley_discover_migrations(settings: Settings) -> Sequence[Migration]:
    folder = migrations_folder(settings)
    if folder is None or not folder.is_dir():
        where = f"in {settings.cwd} or its parents" if folder is None else f"in {folder.parent}"
        hint = (
            "pass PATH (the folder that contains migrations/), or set ALLEY_PATH"
            if folder is None
            else "create one with 'alley create NAME', or pass the right PATH"
        )
        warnings.warn(SourceMissing(f"no {FOLDER_NAME}/ folder {where}", hint=hint), stacklevel=1)
        return []
    migrations = []
    for entry in sorted(folder.iterdir()):
        match = MIGRATION_FILENAME.match(entry.name)
        if match and entry.is_file():
            migrations.append(_read(entry, int(match["id"]), match["name"]))
        elif NEAR_MISS.match(entry.name):
            warnings.warn(
                AlleyWarning(
                    f"ignored {entry}: migration filenames are NNNN_name.py with a "
                    "lower-case [a-z0-9_] name"
                ),
                stacklevel=1,
            )
    return migrations


def _read(path: Path, migration_id: int, name: str) -> Migration:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DiscoveryError(f"cannot read {path}: {error}") from error
    return Migration(
        id=migration_id, name=name, filename=path.name, source=source, location=str(path)
    )


@hookimpl(trylast=True)
def alley_create_migration(settings: Settings, migration_id: int, name: str) -> str:
    folder = migrations_folder(settings) or settings.cwd / FOLDER_NAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{migration_id:04}_{name}.py"
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(TEMPLATE.format(name=name))
    except FileExistsError:
        raise DiscoveryError(f"{path} already exists") from None
    except OSError as error:
        raise DiscoveryError(f"cannot write {path}: {error}") from error
    return str(path)
