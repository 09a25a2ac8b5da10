"""alley: MongoDB migrations as plain Python files.

``from alley import Migrations`` is the Python API (alley 0.0.3's, extended);
``alley.MongoMigrations`` is 0.0.3's deprecated command-line helper. Importing this
package is cheap: the API modules load on first use, so ``alley --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    from alley.migrations import Migrations, MongoMigrations

__all__ = ["Migrations", "MongoMigrations", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Migrations", "MongoMigrations"):
        import importlib

        return getattr(importlib.import_module("alley.migrations"), name)
    raise AttributeError(f"module 'alley' has no attribute {name!r}")
