"""``Migrations(path, db)``: the Python API of alley 0.0.3, kept working.

    from mongoengine.connection import connect, get_db
    connect(**connection_args)
    Migrations(os.path.dirname(__file__), get_db()).up()

Each method is one call of :mod:`alley.api` and returns its report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from alley import api
from alley.model import CreateResult, RunReport, StatusReport
from alley.settings import load_settings


class Migrations:
    """The migrations under ``path`` (the parent of ``migrations/``), run against ``db``.

    :param path: The folder that contains ``migrations/``; ``None`` auto-detects it.
    :param db: A pymongo ``Database`` (MongoEngine's ``get_db()`` or a ``MongoClient``'s);
        ``None`` connects with the settings from the environment and pyproject.toml.
    :param plugins: Extra ``(name, plugin)`` pairs, registered after all others.
    :param settings: Any other setting, as on the command line (``database=``, ``url=``…).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        db: Any = None,
        *,
        plugins: Sequence[tuple[str, object]] = (),
        **settings: Any,
    ) -> None:
        self.settings = load_settings({"path": path, **settings})
        self.project = api.Project(self.settings, db=db, plugins=plugins)

    def up(self, migration_id: int | str | None = None, fake: bool = False) -> RunReport:
        """Apply pending migrations up to and including ``migration_id`` (all if ``None``)."""
        return api.up(self.settings, migration_id, fake=fake, project=self.project)

    def down(self, migration_id: int | str, fake: bool = False) -> RunReport:
        """Roll back applied migrations, newest first, down to and including ``migration_id``."""
        return api.down(self.settings, migration_id, fake=fake, project=self.project)

    def status(self) -> StatusReport:
        """Every migration and its state."""
        return api.status(self.settings, project=self.project)

    def create(self, name: str) -> CreateResult:
        """Write ``migrations/<next id>_<name>.py``."""
        return api.create(self.settings, name, project=self.project)
