"""``alley check`` and ``alley create --autogenerate``: the models' indexes against
the database's (:mod:`alley.model_indexes` reads and compares them).

The API functions (:func:`alley.api.check`, :func:`alley.api.autogenerate`) call
these with their engine; the reports are plain data the CLI renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alley.errors import ConfigError, MigrationsFolderMissing, MigrationsPending
from alley.model import CreateResult, State
from alley.settings import parse_models

if TYPE_CHECKING:
    from alley.engine import Engine
    from alley.model_indexes import DeclaredIndex, IndexChange
    from alley.settings import Settings

#: What ``check`` and ``create --autogenerate`` say when there is nothing to do.
AGREE = "the models and the database agree on indexes"


@dataclass(frozen=True)
class CheckReport:
    """How the models' indexes and the database's differ (``alley check``).

    ``changes``: one per index that is missing, extra or different (empty: they
    agree). ``pending``: the filenames of pending migrations, whose ``up`` may change
    the indexes. ``models``: the modules read; ``collections``: those compared.
    """

    changes: tuple[IndexChange, ...]
    models: tuple[str, ...]
    collections: tuple[str, ...]
    pending: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the models and the database agree."""
        return not self.changes

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "ok": self.ok,
            "models": list(self.models),
            "collections": list(self.collections),
            "differences": [c.as_dict() for c in self.changes],
            "pending": list(self.pending),
        }


@dataclass(frozen=True)
class AutogenerateReport:
    """What ``create --autogenerate`` did: ``created`` is the migration written (``None``
    when there was nothing to do), ``source`` its code, ``changes`` what it does, and
    ``kept`` the indexes no model declares that it leaves (without ``drop``, their drops
    are written commented out; with nothing else to do, no file is written)."""

    created: CreateResult | None
    changes: tuple[IndexChange, ...]
    models: tuple[str, ...]
    drop: bool
    source: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def kept(self) -> tuple[IndexChange, ...]:
        """Extra indexes the migration does not drop (``drop`` false)."""
        return () if self.drop else tuple(c for c in self.changes if c.kind == "extra")


def model_modules(settings: Settings, models: Sequence[str] | str | None) -> tuple[str, ...]:
    """The modules to read: ``models`` (the ``--models`` option) over the setting.

    :raises ConfigError: none is named anywhere (exit 3).
    """
    names = parse_models(models, "cli") if models is not None else settings.models
    if not names:
        raise ConfigError(
            "no models to read: the models setting is not set",
            hint='set models = "myapp.models" in [tool.alley], ALLEY_MODELS, or --models',
        )
    return names


def declared(settings: Settings, names: Sequence[str]) -> dict[str, list[DeclaredIndex]]:
    """Import the models (the project's root first on ``sys.path``) and read their
    indexes, by collection. Never connects."""
    from alley import model_indexes

    documents = model_indexes.import_models(names, settings.sys_path)
    return model_indexes.declared_indexes(documents)


def model_fields(settings: Settings) -> dict[str, dict[str, str]]:
    """The fields the ``models`` setting's models declare, by collection (for ``alley
    lint``'s ``destructive`` rule). Imports the models; never connects."""
    from alley import model_indexes

    documents = model_indexes.import_models(model_modules(settings, None), settings.sys_path)
    return model_indexes.declared_fields(documents)


def pending_files(engine: Engine) -> tuple[str, ...]:
    """The pending migrations' filenames (none when there is no migrations folder)."""
    try:
        statuses = engine.snapshot().statuses
    except MigrationsFolderMissing:
        return ()
    return tuple(s.filename for s in statuses if s.state is State.PENDING)


def check(engine: Engine, models: Sequence[str] | str | None = None) -> CheckReport:
    """Compare the models' indexes with the database's (:func:`alley.api.check`)."""
    from alley import model_indexes

    names = model_modules(engine.settings, models)
    indexes = declared(engine.settings, names)
    pending = pending_files(engine)
    changes, collections = model_indexes.compare(engine.db, indexes)
    return CheckReport(tuple(changes), names, tuple(collections), pending, tuple(engine.notes))


def autogenerate(
    engine: Engine,
    name: str,
    *,
    drop: bool = False,
    models: Sequence[str] | str | None = None,
) -> AutogenerateReport:
    """Write the migration that makes the database's indexes the models'
    (:func:`alley.api.autogenerate`).

    :raises MigrationsPending: migrations are pending (exit 7): their ``up`` may build
        what the models declare, and a migration written now would build it again.
    """
    from alley import api, model_indexes, planning

    settings = engine.settings
    names = model_modules(settings, models)
    indexes = declared(settings, names)
    pending = pending_files(engine)
    if pending:
        shown = ", ".join(pending[:3]) + (", ..." if len(pending) > 3 else "")
        raise MigrationsPending(
            f"{len(pending)} migration{'s' * (len(pending) != 1)} pending ({shown}): "
            "the database is not up to date, so the models cannot be compared with it",
            hint="run 'alley up' first, then create --autogenerate again",
        )
    changes, _ = model_indexes.compare(engine.db, indexes)
    work = [c for c in changes if c.kind != "extra" or drop]
    if not work:
        return AutogenerateReport(None, tuple(changes), names, drop, None, tuple(engine.notes))
    normalised = planning.normalise_name(name)
    source = model_indexes.render_migration(changes, name=normalised, models=names, drop=drop)
    created = api.create(settings, name, project=engine)
    path = Path(created.location)
    if not path.is_file():
        raise ConfigError(
            f"the migration was created at {created.location}, which is not a file: "
            "create --autogenerate writes files only",
            hint="the plugin that creates migrations is not the filesystem one",
        )
    path.write_text(source, encoding="utf-8")
    return AutogenerateReport(created, tuple(changes), names, drop, source, tuple(engine.notes))


__all__ = [
    "AGREE",
    "AutogenerateReport",
    "CheckReport",
    "autogenerate",
    "check",
    "model_fields",
    "model_modules",
    "pending_files",
]
