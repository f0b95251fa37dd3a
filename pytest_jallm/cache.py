"""Persistent generation cache: one SQLite file shared by every process.

A completion is stored under a sha256 of everything that determines it (the
backend identity, the sampling settings and the request), so re-running a
suite generates only what changed, and a run killed half-way resumes where it
stopped: :func:`pytest_jallm.generation.cached_generate` writes each result the moment the backend
reports it.

Guarantees
----------
* **Processes.** Any number of processes (pytest-xdist workers, several pytest
  runs) may open the same file. The database runs in WAL mode, so readers never
  block the writer; writers queue on SQLite's lock for up to ``busy_timeout``
  (30 s by default) instead of failing with "database is locked". Every write
  is a single short transaction.
* **Threads.** One connection per process, guarded by a lock; backends may call
  ``on_result`` from worker threads. After ``fork()`` the child opens its own
  connection (an SQLite connection must never cross a fork).
* **Durability.** ``put`` commits before it returns. With
  ``synchronous=NORMAL`` in WAL mode a committed row survives the process
  being killed (``kill -9``, OOM, Ctrl-C); only an OS crash or power loss can
  lose the last few commits, never corrupt the file. That is the right trade
  for a cache: lost rows are just generated again.
* **Write failures** (read-only file or file system, disk full, I/O error,
  lock still held after the timeout). A failed write must never cost the run
  the generations it holds in memory, so the cache warns once (``warnings``
  and ``logging``), records the reason in :attr:`GenerationCache.write_error`,
  and stops writing for the rest of this process; reads keep working and the
  run completes uncached. The failed transaction is rolled back by SQLite, so
  rows written before stay intact. Writes are not retried: on a full disk every
  retry would fail again, slowly, once per generation.
* **Unusable file** (not an SQLite database, corrupt, or written by a newer
  schema): :class:`CacheError` naming the path and how to recover. This is
  raised, not degraded, because silently ignoring a configured cache would make
  every run regenerate everything without saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import warnings
from dataclasses import asdict, is_dataclass
from enum import Enum
from json.encoder import encode_basestring as _json_str  # what json.dumps(ensure_ascii=False) writes for a str
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping, Sequence

from .backends.base import (
    BackendIdentity,
    GenerationRequest,
    SamplingSettings,
)
from .errors import JallmError

__all__ = ["CacheError", "CacheWriteWarning", "GenerationCache"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KEY_VERSION = 1  # bump when the key payload changes: old rows then simply stop matching
BUSY_TIMEOUT_S = 30.0
_IN_CHUNK = 500  # bound parameters per IN (...) query; SQLite's limit is 999 before 3.32

# SQLite primary result codes (the low byte of the extended code).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_READONLY = 8
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_SQLITE_CANTOPEN = 14
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_PERM = 3


class CacheError(JallmError, RuntimeError):
    """The cache file cannot be used (corrupt, not a database, wrong schema)."""


class CacheWriteWarning(RuntimeWarning):
    """Writing to the cache failed; the run continues without caching."""


def _errcode(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF
    msg = str(e).lower()
    for needle, c in (
        ("not a database", _SQLITE_NOTADB),
        ("malformed", _SQLITE_CORRUPT),
        ("readonly", _SQLITE_READONLY),
        ("read-only", _SQLITE_READONLY),
        ("disk is full", _SQLITE_FULL),
        ("disk i/o error", _SQLITE_IOERR),
        ("unable to open", _SQLITE_CANTOPEN),
        ("locked", _SQLITE_BUSY),
    ):
        if needle in msg:
            return c
    return None


def _is_corruption(e: sqlite3.Error) -> bool:
    return _errcode(e) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


# --------------------------------------------------------------------------
# keys


def _canon(obj: Any) -> Any:
    """Normalise to plain JSON types so equal inputs always serialise equally."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj) and obj.is_integer() and abs(obj) < 2**53:
            return int(obj)  # 0 and 0.0 are the same temperature
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, Enum):
        return _canon(obj.value)
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, Mapping):
        return {str(k): _canon(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canon(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_canon(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if is_dataclass(obj) and not isinstance(obj, type):
        return _canon(asdict(obj))
    if isinstance(obj, bytes):
        return obj.hex()
    # repr() of arbitrary objects may hold memory addresses: not stable across
    # processes, so refuse instead of producing keys that never hit.
    raise TypeError(f"cannot build a cache key from a value of type {type(obj).__name__}: {obj!r}")


def _storable(text: str) -> str:
    """SQLite stores UTF-8, so lone surrogates (JSON-decoded server output may hold them) become
    U+FFFD, as answers.normalize makes them anyway: a scored answer is the same from the cache."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _request_dict(r: GenerationRequest, per_item: bool = False) -> dict[str, Any]:
    # `r.item` is left out: the same request for another item is the same generation, except for
    # a backend whose outputs are per item (BackendIdentity.outputs_per_item: recorded outputs).
    out: dict[str, Any] = {
        "prompt": r.prompt,
        "messages": None if r.messages is None else [dict(m) for m in r.messages],
        "max_new_tokens": r.max_new_tokens,
        "stop": list(r.stop),
        "guided_choices": None if r.guided_choices is None else list(r.guided_choices),
    }
    if per_item:
        out["item"] = None if r.item is None else [r.item.benchmark, r.item.item_id, r.item.turn]
    return out


def _dumps(obj: Any) -> str:
    """The canonical JSON every key is made of."""
    return json.dumps(_canon(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _texts(values: Any) -> str | None:
    """A JSON array of strings, or None when ``values`` is not a list or tuple of plain strings."""
    if type(values) not in (list, tuple) or any(type(v) is not str for v in values):
        return None
    return "[" + ",".join(map(_json_str, values)) + "]"


def _request_json(r: GenerationRequest, per_item: bool = False) -> str:
    """``_dumps(_request_dict(r, per_item))``, written directly (keys in sorted order) for the plain
    types a request holds: a third of a fully cached re-run went to canonicalising and dumping it.
    Anything else takes the general path, so the bytes, and the keys, are the same either way."""
    general = lambda: _dumps(_request_dict(r, per_item))  # noqa: E731
    if type(r.prompt) is not str or type(r.max_new_tokens) is not int:
        return general()
    stop = _texts(r.stop)
    guided = "null" if r.guided_choices is None else _texts(r.guided_choices)
    if stop is None or guided is None:
        return general()
    if r.messages is None:
        messages = "null"
    else:
        turns = []
        for m in r.messages:
            if type(m) is not dict or any(type(k) is not str or type(v) is not str for k, v in m.items()):
                return general()
            turns.append("{" + ",".join(f"{_json_str(k)}:{_json_str(v)}" for k, v in sorted(m.items())) + "}")
        messages = "[" + ",".join(turns) + "]"
    item = ""
    if per_item:
        ref = r.item
        if ref is None:
            item = ',"item":null'
        elif type(ref.benchmark) is str and type(ref.item_id) is str and type(ref.turn) is int:
            item = f',"item":[{_json_str(ref.benchmark)},{_json_str(ref.item_id)},{ref.turn}]'
        else:
            return general()
    return (f'{{"guided_choices":{guided}{item},"max_new_tokens":{r.max_new_tokens},"messages":{messages},'
            f'"prompt":{_json_str(r.prompt)},"stop":{stop}}}')


# --------------------------------------------------------------------------
# the cache


class GenerationCache:
    """Completions keyed by :meth:`key`, in one SQLite file.

    ``busy_timeout`` is how long a write waits for another process holding
    the write lock before the write counts as failed.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self.write_error: str | None = None  # set once writing has been given up
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"generation cache {self.path}: cannot create its directory ({e}); "
                "choose another file with --jallm-cache or run with --jallm-no-cache"
            ) from e
        with self._lock:
            self._connection()

    # -- connection ---------------------------------------------------------

    def _unusable(self, e: BaseException | str) -> CacheError:
        return CacheError(
            f"generation cache {self.path} is not a usable SQLite database ({e}). "
            f"It holds only cached generations: delete it (rm '{self.path}'*, or "
            "GenerationCache.delete_file), point --jallm-cache at another file, or run "
            "with --jallm-no-cache. (--jallm-cache-clear empties a readable cache; it "
            "cannot repair a damaged file.)"
        )

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened (and the schema ensured) on first use."""
        if self._closed:
            raise CacheError(f"generation cache {self.path} is closed")
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # First use, or we are a forked child: never use, nor close, the
        # parent's handle (closing it could checkpoint or unlink the parent's
        # WAL); keep it referenced so it is not finalised here.
        if self._conn is not None:
            self._inherited.append(self._conn)
        self._conn = None
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as e:
            raise CacheError(
                f"generation cache {self.path}: cannot open ({e}); "
                "choose another file with --jallm-cache or run with --jallm-no-cache"
            ) from e
        try:
            self._setup(conn)
        except CacheError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            if _is_corruption(e):
                raise self._unusable(e) from e
            raise CacheError(f"generation cache {self.path}: cannot initialise ({e})") from e
        self._conn = conn
        self._pid = os.getpid()
        return conn

    def _retry_busy(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``, retrying SQLITE_BUSY that bypasses the busy handler
        (journal-mode switches, lock upgrades), for up to busy_timeout."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if _errcode(e) not in (_SQLITE_BUSY, _SQLITE_LOCKED) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # Reading the journal mode reads the file header: a non-database fails here.
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            mode = self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                log.warning("generation cache %s: WAL mode unavailable (journal_mode=%s)", self.path, mode)
        conn.execute("PRAGMA synchronous=NORMAL")

        def version() -> int | None:
            has = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
            ).fetchone()
            if not has:
                return None
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            return None if row is None else int(row[0])

        v = version()
        if v is None:
            def create() -> int | None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS generations ("
                        " key TEXT PRIMARY KEY,"
                        " model TEXT NOT NULL DEFAULT '',"
                        " text TEXT NOT NULL,"
                        " meta TEXT,"
                        " created REAL NOT NULL)"
                    )
                    conn.execute("CREATE INDEX IF NOT EXISTS generations_model ON generations(model)")
                    row = conn.execute("SELECT version FROM schema_version").fetchone()
                    if row is None:
                        conn.execute("INSERT INTO schema_version(version) VALUES (?)", (SCHEMA_VERSION,))
                        got = SCHEMA_VERSION
                    else:
                        got = int(row[0])
                    conn.execute("COMMIT")
                    return got
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

            try:
                v = self._retry_busy(create)
            except sqlite3.OperationalError as e:
                if _errcode(e) in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM):
                    raise CacheError(
                        f"generation cache {self.path}: cannot create the cache tables ({e}); "
                        "choose a writable file with --jallm-cache or run with --jallm-no-cache"
                    ) from e
                raise
        if v != SCHEMA_VERSION:
            raise CacheError(
                f"generation cache {self.path} has schema version {v}, this pytest-jallm uses "
                f"{SCHEMA_VERSION}. Delete the file (rm '{self.path}'*) or point --jallm-cache "
                "at another file."
            )
        # A lookup reads only its own pages, so a damaged page elsewhere would go unnoticed until a
        # write lands on it. quick_check reads every page once (about 1 % of a cached re-run of
        # 10,000 items, perf/cache_quick_check.py); integrity_check would also cross-check indexes.
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)").fetchall()]
        except sqlite3.DatabaseError as e:
            if not _is_corruption(e):
                raise
            problems = [str(e)]
        if problems != ["ok"]:
            raise self._unusable("quick_check: " + "; ".join(str(p) for p in problems))

    # -- errors ---------------------------------------------------------------

    def _write_failed(self, e: sqlite3.Error) -> None:
        """Give up writing for this process, loudly but once."""
        if self.write_error is None:
            self.write_error = str(e)
            msg = (
                f"generation cache {self.path}: writing failed ({e}); continuing without caching "
                "(generations of this run are kept in memory, scored and reported as usual, "
                "but will not be reused by the next run)"
            )
            log.warning(msg)
            warnings.warn(msg, CacheWriteWarning, stacklevel=3)

    # -- API ------------------------------------------------------------------

    @staticmethod
    def key(identity: BackendIdentity, sampling: SamplingSettings, request: GenerationRequest) -> str:
        """sha256 of the canonical JSON of everything that affects the output."""
        return GenerationCache.keyer(identity, sampling)(request)

    @staticmethod
    def keyer(identity: BackendIdentity, sampling: SamplingSettings) -> Callable[[GenerationRequest], str]:
        """:meth:`key` for many requests of one run: the identity and sampling part of
        the canonical JSON is serialised and hashed once, not once per request.

        The bytes hashed are exactly those of ``json.dumps(payload, sort_keys=True)``
        for ``{"identity", "request", "sampling", "v"}``, so keys do not change."""

        head = hashlib.sha256(('{"identity":' + _dumps(identity.as_dict()) + ',"request":').encode("utf-8"))
        tail = (',"sampling":' + _dumps(sampling.as_dict()) + f',"v":{KEY_VERSION}}}').encode("utf-8")

        per_item = identity.outputs_per_item

        def key(request: GenerationRequest) -> str:
            h = head.copy()
            h.update(_request_json(request, per_item).encode("utf-8"))
            h.update(tail)
            return h.hexdigest()

        return key

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """The cached texts for those ``keys`` that have one."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, str] = {}
        with self._lock:
            conn = self._connection()
            try:
                for i in range(0, len(wanted), _IN_CHUNK):
                    chunk = wanted[i : i + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for k, text in conn.execute(
                        f"SELECT key, text FROM generations WHERE key IN ({marks})", chunk
                    ):
                        out[k] = text
            except sqlite3.Error as e:
                if _is_corruption(e):
                    raise self._unusable(e) from e
                raise CacheError(f"generation cache {self.path}: read failed ({e})") from e
        return out

    def get(self, key: str) -> str | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, text: str, *, model: str = "", meta: Mapping | None = None) -> None:
        """Store one completion, committed before returning. Never raises for
        write failures (see the module docstring); check :attr:`write_error`."""
        self.put_many([(key, text)], model=model, meta=meta)

    def put_many(
        self,
        items: Sequence[tuple[str, str]] | Mapping[str, str],
        *,
        model: str = "",
        meta: Mapping | None = None,
    ) -> None:
        """Store several completions in one transaction (same failure policy as put)."""
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        if not pairs:
            return
        meta_json = None if meta is None else json.dumps(_canon(meta), sort_keys=True, ensure_ascii=False)
        now = time.time()
        rows = [(k, model, _storable(t), meta_json, now) for k, t in pairs]
        with self._lock:
            if self.write_error is not None:
                return
            conn = self._connection()

            def write() -> None:
                if len(rows) == 1:  # a single statement is its own transaction
                    conn.execute(
                        "INSERT OR REPLACE INTO generations(key, model, text, meta, created) VALUES (?,?,?,?,?)",
                        rows[0],
                    )
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO generations(key, model, text, meta, created) VALUES (?,?,?,?,?)",
                        rows,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

            try:
                self._retry_busy(write)
            except sqlite3.Error as e:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                self._write_failed(e)

    def clear(self, model: str | None = None) -> int:
        """Delete every entry (``model=None``) or one model's; return rows deleted.

        An explicit request, so failures raise :class:`CacheError`."""
        with self._lock:
            conn = self._connection()
            try:
                if model is None:
                    cur = self._retry_busy(lambda: conn.execute("DELETE FROM generations"))
                else:
                    cur = self._retry_busy(lambda: conn.execute("DELETE FROM generations WHERE model = ?", (model,)))
                return cur.rowcount
            except sqlite3.Error as e:
                if _is_corruption(e):
                    raise self._unusable(e) from e
                raise CacheError(f"generation cache {self.path}: clear failed ({e})") from e

    def stats(self) -> dict[str, Any]:
        """``{"path", "entries", "size_bytes", "models": {model: count}, "schema_version", "write_error"}``.

        ``size_bytes`` counts the database file plus its WAL and shared-memory files."""
        with self._lock:
            conn = self._connection()
            try:
                models = {m: n for m, n in conn.execute("SELECT model, COUNT(*) FROM generations GROUP BY model ORDER BY model")}
            except sqlite3.Error as e:
                if _is_corruption(e):
                    raise self._unusable(e) from e
                raise CacheError(f"generation cache {self.path}: read failed ({e})") from e
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return {
            "path": str(self.path),
            "entries": sum(models.values()),
            "size_bytes": size,
            "models": models,
            "schema_version": SCHEMA_VERSION,
            "write_error": self.write_error,
        }

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
            self._conn = None
            self._closed = True

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def delete_file(path: str | os.PathLike) -> bool:
        """Remove a cache file with its ``-wal``/``-shm`` companions, whatever
        state it is in (the recovery for a corrupt file). True if anything was removed."""
        removed = False
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(os.fspath(path) + suffix)
                removed = True
            except FileNotFoundError:
                pass
        return removed
