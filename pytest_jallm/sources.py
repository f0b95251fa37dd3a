"""Getting a source's files: a data directory's mirror, the download cache, or the network.

* Downloads use the standard library (urllib), show a progress bar, and land in the data
  cache (``--jallm-data-cache`` / ``JALLM_DATA_CACHE``, default ``~/.cache/pytest-jallm/data``)
  through an unnamed temporary file and a rename (:mod:`pytest_jallm.atomic`), so an
  interrupted download leaves nothing behind. A cached file is used again without any network
  call. Each download has an overall deadline, a stall timeout and a size cap
  (:class:`DataConfig`, :mod:`pytest_jallm.netio`); only http(s) URLs are fetched, ``file://``
  ones with ``--jallm-allow-file-urls``.
* ``--jallm-url-map PREFIX=REPLACEMENT`` (``JALLM_URL_MAP``, several separated by spaces)
  rewrites a URL before it is requested (an internal mirror or proxy). The cache key and the
  pin stay those of the original URL: a mirror must serve the very same bytes. A mirror's
  ``user:password@`` is sent as Basic auth (to that origin only, not on redirects elsewhere);
  its credentials (password, tokens in the path or query) are redacted in every message.
* A spec pins files by sha256 (``source.sha256: {mirror path: hex}``). The hash is checked
  after a download and on every read of a local copy (cache or data directory); a mismatch
  names the file and both hashes.
* A ``mirror`` path is the file's place under ``--jallm-data-dir``; it may not leave that
  directory. A URL a loader reads besides the listed ones (IgakuQA's translation files, the
  documents a corpus' id list names) keeps its place relative to the nearest listed
  url/mirror pair, so one pre-fetched tree serves all of them. No path may lead out of the
  data directory through a symlink either, for reads and for `data fetch`'s writes.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import http.client
import os
import posixpath
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from . import netio
from .atomic import atomic_file
from .cachedir import user_cache_dir
from .errors import DataError
from .filehash import HASHES
from .readlog import note_read
from .redact import redact, url_secrets

URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
DEFAULT_DOWNLOAD_TIMEOUT_S = 600.0  # one file, start to end
DEFAULT_STALL_TIMEOUT_S = 60.0  # the longest wait for the next bytes
DEFAULT_MAX_DOWNLOAD_MB = 1024.0  # the catalog's largest file is a few tens of MB
# (option, `data fetch` option) naming each limit in its error
TIMEOUT_OPTIONS = ("--jallm-download-timeout", "--download-timeout")
STALL_OPTIONS = ("--jallm-download-stall-timeout", "--stall-timeout")
SIZE_OPTIONS = ("--jallm-download-max-mb", "--max-mb")
FILE_URL_OPTIONS = ("--jallm-allow-file-urls", "--allow-file-urls")


class UnpinnedDataWarning(UserWarning):
    """A downloaded or mirrored file has no sha256 pin in its spec: its content is not verified."""


def is_url(location: str) -> bool:
    return bool(URL_RE.match(location))


def default_cache_dir() -> Path:
    return user_cache_dir() / "data"


def parse_url_map(values: Sequence[str] | None, env: str | None = None) -> tuple[tuple[str, str], ...]:
    """``PREFIX=REPLACEMENT`` rules from options, then from ``JALLM_URL_MAP`` (rules separated
    by whitespace, which a URL cannot contain). The first ``=`` splits a rule."""
    raw = list(values or [])
    if env:
        raw += env.split()
    rules = []
    for rule in raw:
        prefix, sep, replacement = rule.partition("=")
        if not sep or not prefix or not replacement:
            raise ValueError(
                f"--jallm-url-map / JALLM_URL_MAP: {redact(repr(rule), url_secrets(rule))} is not PREFIX=REPLACEMENT "
                "(e.g. https://raw.githubusercontent.com/=https://mirror.example/github/)"
            )
        rules.append((prefix, replacement))
    return tuple(rules)


def map_url(url: str, rules: Sequence[tuple[str, str]]) -> str:
    """The URL to request: the longest matching prefix is replaced."""
    best = max((r for r in rules if url.startswith(r[0])), key=lambda r: len(r[0]), default=None)
    return url if best is None else best[1] + url[len(best[0]):]


@dataclass(frozen=True)
class DataConfig:
    """Where data comes from, for one run or one `data fetch`, and the limits of a download."""

    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    url_map: tuple[tuple[str, str], ...] = ()
    # (description, total bytes or None) -> object with update(n) and close()
    progress: Callable[[str, int | None], Any] | None = None
    download_timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    max_download_mb: float = DEFAULT_MAX_DOWNLOAD_MB
    allow_file_urls: bool = False

    @classmethod
    def from_options(
        cls,
        data_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        url_map: Sequence[str] | None = None,
        progress: Callable[[str, int | None], Any] | None = None,
        *,
        download_timeout_s: float | None = None,
        stall_timeout_s: float | None = None,
        max_download_mb: float | None = None,
        allow_file_urls: bool = False,
    ) -> "DataConfig":
        d = data_dir or os.environ.get("JALLM_DATA_DIR")
        c = cache_dir or os.environ.get("JALLM_DATA_CACHE")
        limits = {"download_timeout_s": (download_timeout_s, TIMEOUT_OPTIONS[0]),
                  "stall_timeout_s": (stall_timeout_s, STALL_OPTIONS[0]),
                  "max_download_mb": (max_download_mb, SIZE_OPTIONS[0])}
        for value, option in limits.values():
            if value is not None and not value > 0:  # also NaN
                raise ValueError(f"{option}: expected a number > 0, got {value!r}")
        return cls(
            data_dir=Path(d).expanduser() if d else None,
            cache_dir=Path(c).expanduser() if c else default_cache_dir(),
            url_map=parse_url_map(url_map, os.environ.get("JALLM_URL_MAP")),
            progress=progress,
            allow_file_urls=allow_file_urls,
            **{k: float(v) for k, (v, _) in limits.items() if v is not None},
        )

    @property
    def secrets(self) -> list[str]:
        """The URL map's credentials (redacted wherever a message could show them)."""
        return [s for rule in self.url_map for part in rule for s in url_secrets(part)]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets, "a credential of --jallm-url-map")


def tqdm_progress(desc: str, total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                mininterval=0.5, leave=True)


# hashing ---------------------------------------------------------------------------------------

def sha256_of(path: str | os.PathLike) -> str:
    """The file's sha256, remembered while its size, mtime and inode stay the same
    (:mod:`pytest_jallm.filehash`, across runs)."""
    return HASHES.sha256(path)


def mismatch(what: str, expected: str, actual: str, advice: str) -> DataError:
    return DataError(f"{what}: sha256 mismatch: the spec pins {expected}, the file has {actual}. {advice}")


# mirror paths ----------------------------------------------------------------------------------


def check_mirror_path(value: str) -> str | None:
    """Why a spec's mirror path is unsafe, or None: it must stay inside the data directory."""
    if not value or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or "\\" in value:
        return f"{value!r} must be a relative path with '/' separators inside --jallm-data-dir"
    if ".." in value.split("/"):
        return f"{value!r} may not contain '..': a mirror path must stay inside --jallm-data-dir"
    return None


def inside(base: Path, relative: str, what: str) -> Path:
    """``base / relative``, refused when it would resolve outside ``base``, also through a symlink."""
    problem = check_mirror_path(relative)
    full = Path(os.path.normpath(base / relative))
    if problem is None and os.path.commonpath([os.path.normpath(base), str(full)]) != os.path.normpath(base):
        problem = f"{relative!r} resolves outside {base}"
    if problem is not None:
        raise DataError(f"{what}: refused: {problem}")
    check_no_escape(base, full, what)
    return full


def check_no_escape(base: Path, path: str | os.PathLike, what: str) -> None:
    """Refuse a path under ``base`` that a symlink leads out of it (``base`` itself may be a link)."""
    real_base, real = os.path.realpath(base), os.path.realpath(path)
    if os.path.commonpath([real_base, real]) != real_base:
        raise DataError(f"{what}: refused: {path} leads outside {base} through a symlink (to {real}); "
                        "a data directory's files must stay inside it")


def _url_path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def pair_prefixes(url: str, mirror: str) -> tuple[str, str]:
    """The URL prefix and mirror prefix that the pair shares a tail below (whole path segments)."""
    u_parts = url.split("/")
    m_parts = mirror.split("/")
    k = 0
    while k < min(len(u_parts) - 3, len(m_parts)) and u_parts[-1 - k] == m_parts[-1 - k]:
        k += 1
    if k == 0:
        return url, mirror
    return "/".join(u_parts[:-k]) + "/", "/".join(m_parts[:-k]) + ("/" if len(m_parts) > k else "")


# resolving one source's files ----------------------------------------------------------------


class SourceFiles:
    """Local files for one source's URLs and mirrors, verified against its pins."""

    def __init__(self, config: DataConfig, urls: Sequence[str], mirrors: Sequence[str],
                 pins: Mapping[str, str], where: str):
        self.config = config
        self.where = where
        self.pins = dict(pins)
        self.pairs = list(zip(urls, mirrors, strict=True)) if len(urls) == len(mirrors) else []
        self._prefixes = sorted((pair_prefixes(u, m) for u, m in self.pairs), key=lambda p: -len(p[0]))
        self.touched: dict[str, str] = {}  # original URL (or mirror path) -> local path, for `data fetch`
        self.unpinned: list[str] = []

    # the mirror path of a URL: listed with it, or kept relative to a listed pair
    def mirror_of(self, url: str) -> str | None:
        for u, m in self.pairs:
            if u == url:
                return m
        for u_prefix, m_prefix in self._prefixes:
            if url.startswith(u_prefix) and u_prefix != url:
                rest = url[len(u_prefix):].split("?")[0]
                return posixpath.normpath(m_prefix + rest)
        return None

    def pin_for(self, mirror: str | None) -> str | None:
        return self.pins.get(mirror) if mirror else None

    def local(self, location: str) -> str:
        """A verified local path for a URL or a local path (noted as read: :mod:`pytest_jallm.readlog`)."""
        path = self._local(location)
        note_read(path)
        return path

    def _local(self, location: str) -> str:
        if not is_url(location):
            return self._local_path(location)
        mirror = self.mirror_of(location)
        pin = self.pin_for(mirror)
        if self.config.data_dir is not None and mirror is not None:
            path = inside(self.config.data_dir, mirror, self.where)
            if path.is_dir():  # a `datasets` save_to_disk copy, for loaders that read one (med-mcqa)
                self.unpinned.append(str(path))
                return str(path)
            if not path.is_file():
                raise DataError(
                    f"{self.where}: mirror '{mirror}' not found under data dir {self.config.data_dir} "
                    f"(the local copy of {location}; `python -m pytest_jallm data fetch --to DIR` writes it)"
                )
            self._verify(path, pin, f"{path} (mirror of {location})",
                         "The local copy differs from the pinned upstream file: fetch it again.")
            self.touched[location] = str(path)
            return str(path)
        path = self._cached(location, pin)
        self.touched[location] = str(path)
        return str(path)

    def _local_path(self, path: str) -> str:
        data_dir = self.config.data_dir
        if data_dir is not None:
            try:
                rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(data_dir)).as_posix()
            except ValueError:
                rel = None
            if rel is not None:
                check_no_escape(data_dir, path, self.where)
                self._verify(Path(path), self.pins.get(rel), path,
                             "The local copy differs from the pinned upstream file: fetch it again.")
                self.touched[rel] = path
        return path

    def _verify(self, path: Path, pin: str | None, what: str, advice: str) -> None:
        if pin is None:
            self.unpinned.append(str(path))
            return
        actual = sha256_of(path)
        if actual != pin:
            raise mismatch(what, pin, actual, advice)

    # the download cache
    def cache_path(self, url: str) -> Path:
        name = posixpath.basename(_url_path(url)) or "index"
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return self.config.cache_dir / "url" / key / name

    def _cached(self, url: str, pin: str | None) -> Path:
        path = self.cache_path(url)
        if path.is_file():
            self._verify(path, pin, f"{path} (cached copy of {url})",
                         f"Delete it to download it again (cache dir {self.config.cache_dir}).")
            return path
        download(url, path, pin, self.config, self.where)
        if pin is None:
            self.unpinned.append(str(path))
        return path


def _basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """The URL without ``user:password@`` and the Basic auth header carrying them."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user, password = urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


def _limit(options: tuple[str, str], value: float, unit: str) -> str:
    return f"{value:g} {unit} ({options[0]}; `data fetch {options[1]}`)"


def _why_not(e: Exception, deadline: netio.Deadline, config: DataConfig, what: str) -> str | None:
    """What stopped a download, naming the option that bounds it; None for an unexpected error."""
    if isinstance(e, netio.BodyTooLarge):
        size = f"announces {e.announced} bytes" if e.announced is not None else f"sent more than {e.limit} bytes"
        return f"download of {what} stopped: it {size}, more than {_limit(SIZE_OPTIONS, config.max_download_mb, 'MB')}"
    kind: Exception = e
    if not isinstance(e, (netio.DeadlineExceeded, netio.Stalled)):
        try:
            deadline.check(e)
        except (netio.DeadlineExceeded, netio.Stalled) as k:
            kind = k
    if isinstance(kind, netio.DeadlineExceeded):
        return f"download of {what} did not finish within {_limit(TIMEOUT_OPTIONS, config.download_timeout_s, 's')}"
    if isinstance(kind, netio.Stalled):
        return f"download of {what} stalled: no data for {_limit(STALL_OPTIONS, config.stall_timeout_s, 's')}"
    if isinstance(e, (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)):
        detail = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else f"{type(e).__name__}: {e}"
        return (f"could not download {what}: {detail}. Offline? Pre-fetch with `python -m pytest_jallm data fetch "
                "--to DIR` and pass --jallm-data-dir DIR, or point --jallm-url-map at a mirror")
    return None


_OLD_PART = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")  # an earlier pytest-jallm's download temp file


def _remove_old_parts(folder: Path, idle_s: float) -> None:
    """Remove ``.part`` files an earlier pytest-jallm left in this URL's cache folder (ours only: the
    folder is the cache's) when untouched for longer than any live download may stall."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if _OLD_PART.match(entry.name) and now - entry.stat(follow_symlinks=False).st_mtime > idle_s:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def download(url: str, dest: Path, pin: str | None, config: DataConfig, where: str) -> None:
    """Fetch ``url`` (through the URL map) into ``dest``: an unnamed temporary file, checked, then
    renamed; within the deadline, the stall timeout and the size cap of ``config``."""
    actual_url = map_url(url, config.url_map)
    what = f"{url} (via {actual_url})" if actual_url != url else url

    def failed(problem: str) -> DataError:
        return DataError(config.redact(f"{where}: {problem}"))

    scheme = urllib.parse.urlsplit(actual_url).scheme.lower()
    if scheme == "file" and not config.allow_file_urls:
        raise failed(f"refused {what}: file:// URLs are read only with {FILE_URL_OPTIONS[0]} "
                     f"(`data fetch {FILE_URL_OPTIONS[1]}`)")
    if scheme not in ("http", "https", "file"):
        raise failed(f"refused {what}: only http(s) URLs are downloaded (and file:// with {FILE_URL_OPTIONS[0]})")
    _remove_old_parts(dest.parent, 2 * config.stall_timeout_s)
    request_url, headers = _basic_auth(actual_url)
    opener = netio.build_opener(netio.SameOriginCredentials)
    deadline = netio.Deadline(config.download_timeout_s, config.stall_timeout_s)
    max_bytes = int(config.max_download_mb * 2**20)
    bar = None
    try:
        with deadline, atomic_file(dest, ".part") as out:
            request = urllib.request.Request(request_url, headers={"User-Agent": "pytest-jallm", **headers})
            with netio.open_url(opener, request, deadline) as resp:
                length = resp.headers.get("Content-Length") if resp.headers is not None else None
                total = int(length) if length and length.isdigit() else None
                progress = config.progress if config.progress is not None else tqdm_progress
                bar = progress(f"downloading {dest.name}", total)
                h = hashlib.sha256()
                written = 0

                def sink(chunk: bytes) -> None:
                    nonlocal written
                    out.write(chunk)
                    h.update(chunk)
                    written += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))

                netio.read_body(resp, deadline, max_bytes, sink)
            if total is not None and written != total:
                raise failed(f"download of {what} stopped after {written} of {total} bytes")
            actual = h.hexdigest()
            if pin is not None and actual != pin:
                raise DataError(config.redact(str(mismatch(
                    what, pin, actual, "The server sent other bytes than the pinned upstream file "
                    "(a mirror must serve identical files)."))))
    except DataError:
        raise
    except Exception as e:
        why = _why_not(e, deadline, config, what)
        if why is None:
            raise
        raise failed(why) from None
    finally:
        if bar is not None:
            bar.close()


# the active source, for loaders that read further files (translations, id lists) -----------

_ACTIVE: contextvars.ContextVar[SourceFiles | None] = contextvars.ContextVar("jallm_source_files", default=None)


@contextlib.contextmanager
def activate(files: SourceFiles) -> Iterator[SourceFiles]:
    token = _ACTIVE.set(files)
    try:
        yield files
    finally:
        _ACTIVE.reset(token)
        if files.unpinned:
            n = len(set(files.unpinned))
            warnings.warn(UnpinnedDataWarning(
                f"{files.where}: {n} file(s) not pinned by sha256 in the spec (content not verified), "
                f"e.g. {sorted(set(files.unpinned))[0]}"), stacklevel=3)


def local_file(location: str) -> str:
    """A local path for a URL or path, through the active source's mirrors, pins and cache."""
    active = _ACTIVE.get()
    if active is None:
        active = SourceFiles(DataConfig.from_options(), [], [], {}, location)
    return active.local(location)


def read_pins_file(path: Path) -> dict[str, str]:
    """A sha256sum-format file: '<64 hex>  <path>' per line; '#' starts a comment."""
    note_read(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read the sha256 pins file ({e.strerror or e})") from None
    pins: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not SHA256_RE.match(digest) or not name or check_mirror_path(name):
            raise DataError(f"{path}: line {n}: expected '<64 hex digits>  <relative path>', got {line.strip()[:120]!r}")
        pins[name] = digest
    return pins
