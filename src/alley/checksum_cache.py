"""A cache of source checksums on disk, so commands do not re-tokenise every migration.

Tokenising is most of what ``status`` spends on its own with many migrations (0.17 s of
0.8 s for 1000, measured). The cache is keyed by a hash of the source text itself, so
an entry can never be stale: an edited file has another key. That also makes one cache
right for every project on the machine. It lives in ``$ALLEY_CACHE_DIR``, else
``$XDG_CACHE_HOME/alley``, else ``~/.cache/alley``, in a file named after the checksum
algorithm and the Python version (tokenisers differ between versions). A cache that
cannot be read or written is ignored: it only ever saves time.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import sys
from pathlib import Path

from alley.checksum import ALGORITHM, source_checksum

# Entries kept: this process's first, then the most recently saved others.
MAX_ENTRIES = 20_000


def cache_dir() -> Path:
    explicit = os.environ.get("ALLEY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alley"


class ChecksumCache:
    """Checksums by source hash, read once from ``path`` and written back if it grew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: dict[str, str] | None = None
        self._used: dict[str, str] = {}
        self._dirty = False

    def checksum(self, source: str) -> str:
        key = hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        known = self._entries().get(key)
        if known is None:
            known = source_checksum(source)
            self._dirty = True
        self._used[key] = known
        return known

    def _entries(self) -> dict[str, str]:
        if self._loaded is None:
            self._loaded = {}
            try:
                text = self.path.read_text(encoding="ascii")
            except (OSError, ValueError):
                text = ""
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if value.startswith(f"{ALGORITHM}:"):
                    self._loaded[key] = value
        return self._loaded

    def save(self) -> None:
        """Write the cache back if this process computed new checksums."""
        if not self._dirty:
            return
        # Newest first: this process's, then the file's from its end; cut; written
        # oldest first, so the newest survive the cut at the next save.
        newest_first = dict(reversed(self._used.items()))
        for key, value in reversed(self._entries().items()):
            if len(newest_first) >= MAX_ENTRIES:
                break
            newest_first.setdefault(key, value)
        lines = [f"{k} {v}\n" for k, v in reversed(newest_first.items())]
        import tempfile  # only when writing: most commands find every checksum cached

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".checksums-")
        except OSError:
            return
        try:
            with os.fdopen(handle, "w", encoding="ascii") as file:
                file.writelines(lines)
            os.replace(temporary, self.path)  # atomic: concurrent readers see old or new
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            return
        self._dirty = False


@functools.cache
def _process_cache() -> ChecksumCache:
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    cache = ChecksumCache(cache_dir() / f"checksums-{ALGORITHM}-{version}.txt")
    atexit.register(cache.save)
    return cache


def cached_checksum(source: str) -> str:
    """:func:`alley.checksum.source_checksum`, through this process's on-disk cache."""
    return _process_cache().checksum(source)
