"""A damaged generation cache: `python -m pytest_jallm cache stats` says what to do in one line,
and a corrupt page that a run would not read is caught when the cache is opened (quick_check)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_jallm.cache import CacheError, GenerationCache


def _cache_with_rows(path: Path, n: int = 60) -> None:
    with GenerationCache(path) as cache:
        for i in range(n):
            cache.put(f"key-{i:03d}", f"generation {i} " + "あ" * 1200, model="m")  # about one row per page
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    conn.close()


def _smash_last_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    data[-page:] = b"\xa5" * page
    path.write_bytes(bytes(data))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_jallm", *args], capture_output=True, text=True, timeout=60)


def test_cache_stats_on_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "gen.sqlite"
    path.write_bytes(b"this is not SQLite\n" * 300)
    done = _cli("cache", "stats", "--path", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] and "delete it" in lines[0] and "--jallm-no-cache" in lines[0]


def test_a_corrupt_page_is_caught_when_the_cache_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "gen.sqlite"
    _cache_with_rows(path)
    _smash_last_page(path)
    # A lookup reads only its own pages: without a check at open this run would not notice.
    with pytest.raises(CacheError, match=r"is not a usable SQLite database \(quick_check: .*delete it"):
        GenerationCache(path)
    done = _cli("cache", "stats", "--path", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "quick_check" in done.stderr, done.stderr


def test_a_sound_cache_opens_and_reads(tmp_path: Path) -> None:
    path = tmp_path / "gen.sqlite"
    _cache_with_rows(path)
    with GenerationCache(path) as cache:
        assert cache.get("key-001").startswith("generation 1 ")
    done = _cli("cache", "stats", "--path", str(path))
    assert done.returncode == 0 and "60" in done.stdout, done.stdout + done.stderr
