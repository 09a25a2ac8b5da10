"""Migrations as files: ``<PATH>/migrations/NNNN_name.py`` (alley 0.0.3's layout).

PATH comes from the settings; without one, the nearest ``migrations/`` folder in the
current directory or its parents, up to the project's root, is used. The folder's name is the
``migrations_directory`` option (``[tool.alley]``, ``-o``, or 0.0.3's
``Migrations.MIGRATIONS_DIRECTORY``); empty, PATH itself holds the migrations.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alley.errors import AlleyWarning, ConfigError, DiscoveryError, SourceMissing
from alley.hookspecs import hookimpl
from alley.model import Migration

if TYPE_CHECKING:
    from alley.settings import Settings

FOLDER_NAME = "migrations"
MIGRATION_FILENAME = re.compile(r"^(?P<id>[0-9]+)_(?P<name>[a-z0-9_]+)\.py$")
# Files a person meant as migrations but that the pattern would skip, e.g.
# ``0003_AddUsers.py`` or ``0003-add-users.py``: 0.0.3 ignored them silently.
NEAR_MISS = re.compile(r"^[0-9]+[^.]*\.py$", re.IGNORECASE)
# Any file named like a migration, matched or ignored: its id is taken.
NUMBERED = re.compile(r"^(?P<id>[0-9]+)[^.]*\.py$", re.IGNORECASE)
# Ids are stored as 64-bit signed integers (BSON int64).
MAX_ID = 2**63 - 1

TEMPLATE = '''"""{name}"""


def up(db):
    pass


def down(db):
    pass
'''


def folder_name(settings: Settings) -> str:
    """The migrations folder's name under PATH (``migrations``); ``""``: PATH itself."""
    return str(settings.options.get("migrations_directory", FOLDER_NAME)).strip()


def migrations_folder(settings: Settings) -> Path | None:
    """``PATH/migrations``, else the nearest ``migrations/`` from the current directory up."""
    name = folder_name(settings)
    if settings.path is not None:
        return settings.path / name if name else settings.path
    from alley.settings import search_folders  # up to the project's root only

    for folder in search_folders(settings.cwd):
        candidate = folder / name if name else folder
        if candidate.is_dir():
            return candidate
    return None


def numbered_ids(settings: Settings) -> list[int]:
    """The ids of every ``NNNN*.py`` file in the migrations folder, those discovery
    ignores (``0003_AddUsers.py``) included: ``create`` numbers a new file above them."""
    folder = migrations_folder(settings)
    if folder is None or not folder.is_dir():
        return []
    found = (NUMBERED.match(entry.name) for entry in folder.iterdir())
    return [int(match["id"]) for match in found if match]


def _misplaced_path_hint(folder: Path, name: str) -> str | None:
    """When PATH is itself the migrations folder (``alley migrations create x``): it is
    named like the folder it should contain and holds numbered files, but not that
    folder. The hint that says so, else ``None``."""
    parent = folder.parent
    if not name or folder.exists() or parent.name != name or not parent.is_dir():
        return None
    if not any(NEAR_MISS.match(entry.name) for entry in parent.iterdir()):
        return None
    return f"PATH is the folder that contains {name}/; run it from the parent"


@hookimpl(trylast=True)
def alley_discover_migrations(settings: Settings) -> Sequence[Migration]:
    name = folder_name(settings)
    folder = migrations_folder(settings)
    if folder is None or not folder.is_dir():
        if folder is not None:
            where = f"in {folder.parent}"
        else:
            from alley.settings import project_root

            root = project_root(settings.cwd)
            where = (
                f"in {settings.cwd}"
                if root is None or root == settings.cwd.resolve()
                else f"in {settings.cwd} or its parents up to the project's root {root}"
            )
        hint = (
            f"pass PATH (the folder that contains {name}/), or set ALLEY_PATH"
            if folder is None
            else _misplaced_path_hint(folder, name)
            or "create one with 'alley create NAME', or pass the right PATH"
        )
        warnings.warn(SourceMissing(f"no {name}/ folder {where}", hint=hint), stacklevel=1)
        return []
    migrations = []
    for entry in sorted(folder.iterdir()):
        match = MIGRATION_FILENAME.match(entry.name)
        if match and entry.is_file():
            migration_id = int(match["id"])
            if migration_id > MAX_ID:
                raise DiscoveryError(
                    f"{entry}: id {match['id']} is too large (at most {MAX_ID})",
                    hint="renumber it with a smaller id",
                )
            migrations.append(_read(entry, migration_id, match["name"]))
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
    folder_label = folder_name(settings)
    folder = migrations_folder(settings) or settings.cwd / (folder_label or FOLDER_NAME)
    hint = _misplaced_path_hint(folder, folder_label)
    if hint is not None:
        raise ConfigError(
            f"{folder.parent} holds migrations but has no {folder_label}/ folder", hint=hint
        )
    if migration_id > MAX_ID:
        raise DiscoveryError(
            f"cannot create migration {migration_id}: ids are at most {MAX_ID}",
            hint="renumber the migrations with smaller ids",
        )
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
