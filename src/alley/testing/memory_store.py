"""The in-memory history store, where tests and plugin suites have always imported it
from: it lives in :mod:`alley.memory_store` (``alley test`` keeps its rehearsal's
history in one, so it is not a testing-only module)."""

from alley.memory_store import ManualClock, MemoryStore

__all__ = ["ManualClock", "MemoryStore"]
