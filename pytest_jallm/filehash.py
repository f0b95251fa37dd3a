"""The sha256 of a data file, remembered across runs while the file is unchanged.

Pins are checked on every read and the prepared-benchmark cache (:mod:`pytest_jallm.prepcache`)
checks the files an entry was built from, so the same unchanged files would be hashed again by
every run (tens of MB for a catalog). The hash is remembered with the file's size, modification
time and inode, the trade git's index and :mod:`pytest_jallm.backends.revision` make: while none
of those change, the remembered hash is used. Someone who rewrites a file keeping all three
(``touch -d`` after an edit of the same length) defeats it; anyone able to do that can also edit
the memo. The memo lives in ``$JALLM_HASH_MEMO`` or ``~/.cache/pytest-jallm/file-hashes.json``;
losing it only costs hashing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

from .cachedir import user_cache_dir

CHUNK = 1 << 20
MAX_ENTRIES = 50_000  # the oldest are dropped beyond this (a catalog reads a few thousand files)


def memo_path() -> Path:
    explicit = os.environ.get("JALLM_HASH_MEMO")
    if explicit:
        return Path(explicit)
    return user_cache_dir() / "file-hashes.json"


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def hash_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class FileHashes:
    """Hashes by absolute path, loaded from the memo file at the first lookup, written by :meth:`flush`."""

    def __init__(self, path: Path | None = None):
        self._path = path
        self._memo: dict[str, list] | None = None
        self._new: dict[str, list] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else memo_path()

    def _loaded(self) -> dict[str, list]:
        if self._memo is None:
            self._memo = _read(self.path)
        return self._memo

    def sha256(self, path: str | os.PathLike) -> str:
        """The file's sha256 (OSError when it cannot be read)."""
        key = os.path.abspath(path)
        st = os.stat(key)
        stamp = _stamp(st)
        with self._lock:
            known = self._loaded().get(key)
        if known is not None and known[:3] == stamp:
            return known[3]
        digest = hash_file(key)
        if _stamp(os.stat(key)) == stamp:  # not written to while we read it
            with self._lock:
                self._loaded()[key] = self._new[key] = [*stamp, digest]
        return digest

    def flush(self) -> None:
        """Write what this process hashed, merged with what others wrote meanwhile (best effort:
        a read-only home only means hashing again next time)."""
        with self._lock:
            if not self._new:
                return
            new, self._new = self._new, {}
        merged = _read(self.path)
        for key, entry in new.items():
            merged.pop(key, None)
            merged[key] = entry  # the most recent last, so the oldest are dropped first
        if len(merged) > MAX_ENTRIES:
            merged = dict(list(merged.items())[-MAX_ENTRIES:])
        from .atomic import atomic_write_text

        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(merged, ensure_ascii=False, separators=(",", ":")))
        with self._lock:
            self._memo = merged


def _valid(entry: object) -> bool:
    return (isinstance(entry, list) and len(entry) == 4 and all(type(v) is int for v in entry[:3])
            and isinstance(entry[3], str) and len(entry[3]) == 64)


def _read(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and _valid(v)}


HASHES = FileHashes()  # the process's memo (its file from the environment at first use)


def sha256_of(path: str | os.PathLike) -> str:
    return HASHES.sha256(path)
