"""Files written whole or not at all: a temp file in the target's directory, renamed over it.

The temp file is unnamed while it is written (Linux ``O_TMPFILE``), so a process killed mid-write
leaves nothing in a folder people commit (``thresholds/<model>/``) or in the data cache; it gets
a name (``.<target>.jallm-<random>.tmp`` or ``.part``) only for the instant between ``linkat`` and the
rename. Where ``O_TMPFILE`` is not supported the temp file is named from the start. Either way
the writer holds an ``flock`` on it, so the next write into that directory can tell a killed
writer's leftover (no lock) from a live one's and removes it.

mkstemp creates 0600 files; the result gets the target's mode, or what a plain open() would give,
so results, baselines and fetched data stay as readable as before.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

USE_O_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # mkstemp's alphabet
_OURS = re.compile(r"^\..+\.jallm-[a-z0-9_]{8}\.(?:tmp|part)$")  # .<target>.jallm-<8 of them>.tmp: no other tool's


def file_mode(path: Path) -> int:
    """The target's current mode, else what a plain open() would give (mkstemp makes 0600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:
        with open("/proc/self/status") as fh:  # reads the umask without changing it
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temp files."""
    return _OURS.match(name) is not None


def remove_stale_temps(directory: Path) -> list[str]:
    """Remove the temp files our writers left in ``directory`` when they were killed (no
    writer holds their lock any more); returns their names."""
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(directory) if is_temp_name(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live writer holds it
        try:
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _open_temp(path: Path, suffix: str) -> tuple[int, str | None]:
    """A locked temp file in the target's directory: (fd, None) when unnamed, else (fd, name)."""
    if USE_O_TMPFILE:
        try:
            fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o600)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd, None
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.jallm-", suffix=suffix, dir=path.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, name


def _named(fd: int, path: Path, suffix: str) -> str:
    """Give an unnamed temp file a name beside the target (rename cannot take an fd). A directory
    fd makes os.link call linkat(AT_SYMLINK_FOLLOW); plain link() would link /proc's symlink itself."""
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(100):
            name = f".{path.name}.jallm-{''.join(secrets.choice(_LETTERS) for _ in range(8))}{suffix}"
            try:
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=directory, follow_symlinks=True)
                return str(path.parent / name)
            except FileExistsError:
                continue
    finally:
        os.close(directory)
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path.parent))


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """``with atomic_file(p) as fh: fh.write(...)``: on a normal exit the bytes replace ``p``
    (flushed, fsynced, renamed); on an exception ``p`` is as it was and no temp file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    fd, name = _open_temp(path, suffix)
    try:
        os.fchmod(fd, file_mode(path))
        with os.fdopen(fd, "wb", closefd=False) as fh:
            yield fh
            fh.flush()
            os.fsync(fd)
        if name is None:
            name = _named(fd, path, suffix)
        os.replace(name, path)
    except BaseException:
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name)
        raise
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (:func:`atomic_file`). Text that UTF-8 cannot hold (lone
    surrogates) is written backslash-escaped, not lost."""
    data = text.encode("utf-8", errors="backslashreplace")
    with atomic_file(path) as fh:
        fh.write(data)


def atomic_copy(src: Path, dest: Path) -> None:
    """Copy src to dest; an interrupted copy leaves dest as it was."""
    with atomic_file(dest, ".part") as out, open(src, "rb") as fh:
        shutil.copyfileobj(fh, out, 1 << 20)
