"""The on-disk checksum cache: keyed by content, so never stale; ignored when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from alley import checksum_cache
from alley.checksum import source_checksum
from alley.checksum_cache import ChecksumCache, cache_dir

SOURCE = "def up(db):\n    db.users.update_many({}, {'$set': {'a': 1}})\n"


def no_tokenising(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: str) -> str:
        raise AssertionError("tokenised although cached")

    monkeypatch.setattr(checksum_cache, "source_checksum", refuse)


def test_a_saved_checksum_is_read_back_without_tokenising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.txt"
    first = ChecksumCache(path)
    assert first.checksum(SOURCE) == source_checksum(SOURCE)
    first.save()

    expected = source_checksum(SOURCE)
    no_tokenising(monkeypatch)
    assert ChecksumCache(path).checksum(SOURCE) == expected


def test_an_edited_source_is_checksummed_again(tmp_path: Path) -> None:
    path = tmp_path / "cache.txt"
    cache = ChecksumCache(path)
    cache.checksum(SOURCE)
    cache.save()
    edited = SOURCE.replace("'a'", "'b'")

    assert ChecksumCache(path).checksum(edited) == source_checksum(edited)
    assert source_checksum(edited) != source_checksum(SOURCE)


def test_nothing_is_written_when_every_checksum_was_cached(tmp_path: Path) -> None:
    path = tmp_path / "cache.txt"
    cache = ChecksumCache(path)
    cache.checksum(SOURCE)
    cache.save()
    written = path.stat().st_mtime_ns
    path.chmod(0o444)

    again = ChecksumCache(path)
    again.checksum(SOURCE)
    again.save()

    assert path.stat().st_mtime_ns == written


def test_garbage_lines_and_other_algorithms_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "cache.txt"
    cache = ChecksumCache(path)
    cache.checksum(SOURCE)
    cache.save()
    key = path.read_text().split()[0]
    path.write_text(f"garbage\n\n{key} v0:wrong\nx y z\n")

    assert ChecksumCache(path).checksum(SOURCE) == source_checksum(SOURCE)


def test_an_unreadable_or_unwritable_cache_only_costs_time(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    cache = ChecksumCache(blocked / "cache.txt")

    assert cache.checksum(SOURCE) == source_checksum(SOURCE)
    cache.save()  # no error
    assert list(tmp_path.iterdir()) == [blocked]


def test_the_cache_keeps_this_processes_entries_when_it_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checksum_cache, "MAX_ENTRIES", 3)
    path = tmp_path / "cache.txt"
    old = ChecksumCache(path)
    for number in range(5):
        old.checksum(f"x = {number}\n")
    old.save()
    assert len(path.read_text().splitlines()) == 5  # this process's are all kept

    new = ChecksumCache(path)
    new.checksum("y = 1\n")
    new.save()

    kept = ChecksumCache(path)
    no_tokenising(monkeypatch)
    assert len(path.read_text().splitlines()) == 3
    kept.checksum("y = 1\n")  # this process's entry
    kept.checksum("x = 4\n")  # and the newest of the others
    kept.checksum("x = 3\n")


def test_the_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLEY_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "alley"
    monkeypatch.setenv("ALLEY_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
