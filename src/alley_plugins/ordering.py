"""Migrations apply in the order of their ids (alley 0.0.3's rule)."""

from __future__ import annotations

from collections.abc import Sequence

from alley.hookspecs import hookimpl
from alley.model import Migration


@hookimpl(trylast=True)
def alley_order_migrations(migrations: Sequence[Migration]) -> Sequence[Migration]:
    return sorted(migrations, key=lambda migration: migration.id)
