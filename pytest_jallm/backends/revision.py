"""The revision of a model: a hub revision as given, or a content hash of a local directory.

A local directory has no hub revision, so its revision is the sha256 of its weight,
config and tokenizer files. Hashing a 15 GB checkpoint takes seconds on every run,
cached re-runs included, so the result is remembered per directory together with each
file's size and modification time (the trade git's index makes): while none of those
change, the remembered hash is used. The memo lives in
``$JALLM_REVISION_MEMO`` or ``~/.cache/pytest-jallm/local-revisions.json``; losing it
only costs one re-hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from ..cachedir import user_cache_dir

HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt")


def memo_path() -> Path:
    explicit = os.environ.get("JALLM_REVISION_MEMO")
    if explicit:
        return Path(explicit)
    return user_cache_dir() / "local-revisions.json"


def _hashed_files(model_dir: str) -> list[str]:
    return sorted(n for n in os.listdir(model_dir) if n.endswith(HASHED_SUFFIXES))


def _stats(model_dir: str, names: list[str]) -> list[list]:
    out = []
    for name in names:
        st = os.stat(os.path.join(model_dir, name))
        out.append([name, st.st_size, st.st_mtime_ns])
    return out


def content_hash(model_dir: str, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        with open(os.path.join(model_dir, name), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return "local-sha256:" + h.hexdigest()[:16]


def _read_memo(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_memo(path: Path, memo: dict) -> None:
    from ..atomic import atomic_write_text

    with contextlib.suppress(OSError):  # best effort: a read-only home only means hashing again next time
        atomic_write_text(path, json.dumps(memo))


def local_revision(model_dir: str) -> str:
    """`local-sha256:<16 hex>` of the directory's files, from the memo while they are unchanged."""
    names = _hashed_files(model_dir)
    stats = _stats(model_dir, names)
    key = os.path.realpath(model_dir)
    path = memo_path()
    memo = _read_memo(path)
    entry = memo.get(key)
    if isinstance(entry, dict) and entry.get("files") == stats and isinstance(entry.get("revision"), str):
        return entry["revision"]
    revision = content_hash(model_dir, names)
    if _stats(model_dir, names) == stats:  # not written to while we read it
        memo[key] = {"files": stats, "revision": revision}
        _write_memo(path, memo)
    return revision


def resolve_revision(model: str, revision: str | None, default: str) -> str:
    """The revision to record: the one given, a local directory's content hash, or `default`."""
    if revision:
        return revision
    if os.path.isdir(model):
        return local_revision(model)
    return default
