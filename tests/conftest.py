"""Shared by unit and integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _checksum_cache_in_a_temporary_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Keep alley's checksum cache out of the user's ~/.cache while tests run."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ALLEY_CACHE_DIR", str(tmp_path_factory.mktemp("alley-cache")))
    yield
    patch.undo()
