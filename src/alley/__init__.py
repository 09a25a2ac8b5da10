"""alley: MongoDB migrations as plain Python files.

``from alley import Migrations`` is the 0.0.3 API. Importing this package is cheap:
the API modules load on first use, so ``alley --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    from alley.migrations import Migrations

__all__ = ["Migrations", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Migrations":
        from alley.migrations import Migrations

        return Migrations
    raise AttributeError(f"module 'alley' has no attribute {name!r}")
