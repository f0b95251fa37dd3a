"""What a benchmark's preparation read: the files, the globs that chose them, the parsing libraries.

The data layer notes each read here (:func:`note_read` from :class:`pytest_jallm.sources.SourceFiles`,
:func:`note_glob` from path resolution, :func:`note_library` from readers whose output depends on a
library's version); :mod:`pytest_jallm.prepcache` records them while it prepares a benchmark and
keys its entry by their content. Outside a recording every note is a no-op.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class ReadLog:
    files: dict[str, None] = field(default_factory=dict)  # absolute local paths, in the order first read
    globs: dict[str, list[str]] = field(default_factory=dict)  # pattern -> the sorted hits it gave
    libraries: set[str] = field(default_factory=set)  # distributions whose version shapes the rows
    uncacheable: list[str] = field(default_factory=list)  # why the result cannot be keyed by its files


_ACTIVE: contextvars.ContextVar[ReadLog | None] = contextvars.ContextVar("jallm_read_log", default=None)


@contextlib.contextmanager
def recording() -> Iterator[ReadLog]:
    log = ReadLog()
    token = _ACTIVE.set(log)
    try:
        yield log
    finally:
        _ACTIVE.reset(token)


def note_read(path: str | os.PathLike) -> None:
    log = _ACTIVE.get()
    if log is None:
        return
    full = os.path.abspath(path)
    if os.path.isdir(full):  # a saved dataset folder: its files are read by a library, unseen here
        log.uncacheable.append(f"{full} is a folder")
    else:
        log.files.setdefault(full, None)


def note_glob(pattern: str, hits: list[str]) -> None:
    log = _ACTIVE.get()
    if log is not None:
        log.globs[pattern] = list(hits)


def note_library(distribution: str) -> None:
    log = _ACTIVE.get()
    if log is not None:
        log.libraries.add(distribution)


def note_uncacheable(why: str) -> None:
    log = _ACTIVE.get()
    if log is not None:
        log.uncacheable.append(why)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def note_code(obj: Any) -> None:
    """A loader or template from outside this package: its module's file is read like a data file,
    so editing it prepares again (this package's own code is part of the cache key)."""
    log = _ACTIVE.get()
    if log is None:
        return
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if not path:
        log.uncacheable.append(f"{obj!r} has no source file")
        return
    if os.path.commonpath([_PACKAGE_DIR, os.path.abspath(path)]) != _PACKAGE_DIR:
        log.files.setdefault(os.path.abspath(path), None)
