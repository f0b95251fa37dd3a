"""Prepared benchmarks cached on disk: a re-run neither parses data files nor renders prompts.

Preparing a benchmark (:mod:`pytest_jallm.preparation`) reads and parses its data files, maps the
rows to examples, draws the few-shots and renders every prompt: seconds for corpora that need a
real parser (the Wikipedia Annotated Corpus' KNP files), and the same work on every run. The result
is kept as JSON (never pickle: an entry is data a hand or another tool may have touched) in the
folder beside the generation cache (``.jallm/prepared/`` by default; none with ``--jallm-no-cache``),
written through :mod:`pytest_jallm.atomic`.

Three kinds of entry, one file each (``<benchmark>.<kind>.<key>.json``):

* ``prepared``: the examples, few-shots, prompts (and chat messages) and input blocks of one
  benchmark under one run's settings, with the full data's fingerprint;
* ``data``: the full data's fingerprint and whether the standard library parsed it, so that a
  ``--jallm-limit`` run whose ``prepared`` entry is missing (another limit, an edited instruction)
  reads only the first rows of a source read in order (JSON Lines, the KNP corpus' id lists);
* ``shots``: the few-shot examples, so that such a run does not read and shuffle the few-shot
  source again.

An entry's **key** is a sha256 of what determines it: the spec as the run sees it (its whole
content for ``prepared``; the source, field mapping, answer map and labels for ``data``; the
few-shot section for ``shots``), the folder its relative paths start from, ``--jallm-data-dir`` and
the download cache, the settings that change preparation (limit, chat, mode, few-shot count through
the spec, ``--jallm-shuffle-choices``, the canonical prompt format), the package version and the
size and modification time of every module of this package. An entry is **valid** while the files
its preparation read still have the sha256 it recorded (remembered by size, modification time and
inode: :mod:`pytest_jallm.filehash`, so unchanged files are not hashed again), each glob still
matches the same files, and the libraries whose parse the rows are (``datasets``, ``rhoknp``,
``pyarrow``) have the same version; a loader or template from another package counts as one of the
files read. A source that cannot be keyed by its files (a Hugging Face dataset, a saved ``datasets``
folder) is prepared on every run, as before.

A corrupt or unreadable entry is prepared again, with a warning, and rewritten; a folder that
cannot be written is warned about once and the run goes on uncached. Warnings raised while
preparing (an unpinned file) are recorded in the entry and raised again when it is used.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import glob
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from . import __version__
from .backends.base import GenerationRequest, ItemRef
from .data import Example
from .filehash import HASHES
from .preparation import PreparedBenchmark, RunSettings, assemble, load_items, load_shots
from .prompt import prompt_hash, template_of
from .prompt_format import CANONICAL
from .readlog import ReadLog, note_code, recording

if TYPE_CHECKING:
    from .spec import BenchmarkSpec

FORMAT = 1  # bump when an entry's layout changes: older entries then simply stop matching
KEEP_PER_KIND = 8  # entries kept per benchmark and kind (other limits, modes, edits), newest first
_PACKAGE_DIR = Path(__file__).resolve().parent


class PreparedCacheWarning(UserWarning):
    """An entry of the prepared-benchmark cache could not be read or written: prepared again."""


@functools.lru_cache(maxsize=1)
def code_stamp() -> str:
    """This package's version and every module's size and modification time: an edited module
    (a checkout, a fix being developed) prepares everything again."""
    h = hashlib.sha256(__version__.encode())
    for folder, subfolders, files in os.walk(_PACKAGE_DIR):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            st = os.stat(path)
            h.update(f"{os.path.relpath(path, _PACKAGE_DIR)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class Deps:
    """What an entry was built from, in the form it is checked against."""

    files: dict[str, str] = field(default_factory=dict)  # absolute path -> sha256
    globs: dict[str, list[str]] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)  # distribution -> version
    uncacheable: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, log: ReadLog) -> Deps:
        deps = cls(globs=dict(log.globs), libraries={d: _version(d) for d in sorted(log.libraries)},
                   uncacheable=list(log.uncacheable))
        for path in log.files:
            try:
                deps.files[path] = HASHES.sha256(path)
            except OSError as e:
                deps.uncacheable.append(f"{path} cannot be hashed ({e.strerror or e})")
        return deps

    def merge(self, other: Deps) -> Deps:
        self.files.update(other.files)
        self.globs.update(other.globs)
        self.libraries.update(other.libraries)
        self.uncacheable += other.uncacheable
        return self

    def as_json(self) -> dict[str, Any]:
        return {"files": sorted(self.files.items()), "globs": sorted(self.globs.items()), "libraries": self.libraries}

    @classmethod
    def from_json(cls, raw: Any) -> Deps:
        files = {str(p): str(h) for p, h in raw["files"]}
        globs = {str(p): [str(h) for h in hits] for p, hits in raw["globs"]}
        libraries = {str(k): str(v) for k, v in dict(raw["libraries"]).items()}
        return cls(files, globs, libraries)

    def unchanged(self) -> bool:
        if any(_version(d) != v for d, v in self.libraries.items()):
            return False
        if any(sorted(glob.glob(pattern)) != hits for pattern, hits in self.globs.items()):
            return False
        for path, digest in self.files.items():
            try:
                if HASHES.sha256(path) != digest:
                    return False
            except OSError:
                return False
        return True


@dataclass
class Entry:
    payload: dict[str, Any]
    deps: Deps
    warnings: list[list[Any]]


# --- warnings raised while preparing, kept with the entry -----------------------------------------


@contextlib.contextmanager
def _watching() -> Iterator[tuple[ReadLog, list[list[Any]]]]:
    """Record what a phase reads and the warnings it raises; the warnings are raised again on leaving
    (also when the phase fails), once each, where they were first raised."""
    seen: list[list[Any]] = []
    with recording() as log:
        try:
            with warnings.catch_warnings(record=True) as caught:  # the run's filters still apply
                yield log, seen
        finally:
            for w in caught:
                record = [f"{w.category.__module__}:{w.category.__qualname__}", str(w.message), w.filename, w.lineno]
                if record not in seen:
                    seen.append(record)
            _raise_again(seen)


def _raise_again(records: Sequence[Sequence[Any]]) -> None:
    for category_name, message, filename, lineno in records:
        module, _, qualname = str(category_name).partition(":")
        category = getattr(sys.modules.get(module), qualname, None)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = UserWarning
        try:
            warnings.warn_explicit(str(message), category, str(filename), int(lineno))
        except TypeError:  # a category whose constructor takes other arguments
            warnings.warn_explicit(str(message), UserWarning, str(filename), int(lineno))


# --- examples as JSON -----------------------------------------------------------------------------


def _encode_examples(examples: Sequence[Example]) -> list[list[Any]]:
    return [[ex.id, dict(ex.fields), list(ex.choices), ex.gold, dict(ex.context)] for ex in examples]


def _decode_examples(rows: Any) -> list[Example]:
    out = []
    for ex_id, fields, choices, gold, context in rows:
        if not (type(ex_id) is str and type(gold) is str and type(fields) is dict and type(choices) is list
                and type(context) is dict and all(type(v) is str for v in fields.values())
                and all(type(c) is str for c in choices)):
            raise ValueError(f"example {str(ex_id)[:40]!r} has fields of the wrong types")
        out.append(Example(ex_id, fields, tuple(choices), gold, context))
    return out


def _same_examples(a: Sequence[Example], b: Sequence[Example]) -> bool:
    """Equal, contexts included (Example's own equality leaves them out)."""
    return list(a) == list(b) and [dict(x.context) for x in a] == [dict(y.context) for y in b]


def _same_prepared(a: PreparedBenchmark, b: PreparedBenchmark | None) -> bool:
    return (b is not None and _same_examples(a.examples, b.examples) and _same_examples(a.shots, b.shots)
            and a.requests == b.requests and a.inputs == b.inputs and a.data_fingerprint == b.data_fingerprint
            and a.prompt_hash == b.prompt_hash)


def _messages(raw: Any) -> tuple[dict[str, str], ...] | None:
    if raw is None:
        return None
    if not all(type(m) is dict and all(type(v) is str for v in m.values()) for m in raw):
        raise ValueError("chat messages of the wrong types")
    return tuple(raw)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading an entry makes some 10^5 objects, none garbage: the cyclic collector's passes over them
    meanwhile are wasted (a third of reading a 10,000-item entry)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- the cache ------------------------------------------------------------------------------------

_warned_roots: set[str] = set()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:80] or "_"  # no dots: they separate the name's parts


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class PreparedCache:
    """One run's view of the cache folder ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # -- the run's entry point ------------------------------------------------------------------

    def prepare(self, spec: BenchmarkSpec, spec_path: Path, settings: RunSettings) -> PreparedBenchmark:
        """``spec`` (as :func:`~pytest_jallm.preparation.effective_spec` made it) prepared for ``settings``."""
        name = spec.name
        keys = self._keys(spec, spec_path, settings)
        with _collector_paused():
            hit = self._load(name, "prepared", keys["prepared"])
            prep = None if hit is None else self._decoded(hit, name, keys["prepared"], spec, spec_path, settings)
        if hit is not None and prep is not None:
            _raise_again(hit.warnings)
            return prep
        deps, seen = Deps(), []
        known = self._load(name, "data", keys["data"]) if settings.limit else None
        head_fp = None
        if known is not None and "datasets" not in known.deps.libraries:
            head_fp = known.payload.get("fingerprint")
            if isinstance(head_fp, str):
                deps.merge(known.deps)
                seen += known.warnings
            else:
                head_fp = None
        with _watching() as (log, caught):
            examples, fingerprint = load_items(spec, spec_path, settings, head_fp)
        read = Deps.of(log)
        if head_fp is None:
            self._store(name, "data", keys["data"], {"fingerprint": fingerprint}, read, caught)
        deps.merge(read)
        seen += caught
        shots = self._shots(spec, spec_path, settings, keys["shots"], deps, seen)
        with _watching() as (log, caught):
            note_code(template_of(spec))
            prep = assemble(spec, spec_path, settings, examples, shots, fingerprint)
        deps.merge(Deps.of(log))
        seen += caught
        self._store(name, "prepared", keys["prepared"], self._encode(prep), deps, seen,
                    check=lambda text: _same_prepared(prep, self._decoded(
                        Entry(json.loads(text)["payload"], deps, []), name, keys["prepared"], spec, spec_path, settings,
                        quiet=True)))
        return prep

    def _shots(self, spec: BenchmarkSpec, spec_path: Path, settings: RunSettings, key: str, deps: Deps,
               seen: list[list[Any]]) -> list[Example]:
        if not spec.fewshot.count or spec.fewshot.source is None:
            return []
        known = self._load(spec.name, "shots", key)
        if known is not None:
            try:
                shots = _decode_examples(known.payload["shots"])
            except (KeyError, TypeError, ValueError) as e:
                self._corrupt(self._path(spec.name, "shots", key), e)
            else:
                deps.merge(known.deps)
                seen += known.warnings
                return shots
        with _watching() as (log, caught):
            shots = load_shots(spec, spec_path, settings)
        read = Deps.of(log)
        self._store(spec.name, "shots", key, {"shots": _encode_examples(shots)}, read, caught,
                    check=lambda text: _same_examples(_decode_examples(json.loads(text)["payload"]["shots"]), shots))
        deps.merge(read)
        seen += caught
        return shots

    # -- keys -----------------------------------------------------------------------------------

    def _keys(self, spec: BenchmarkSpec, spec_path: Path, settings: RunSettings) -> dict[str, str]:
        from .sources import DataConfig

        config = settings.data_config or DataConfig.from_options()
        template = template_of(spec)
        base = {
            "format": FORMAT, "code": code_stamp(), "name": spec.name,
            "spec_dir": os.path.abspath(spec_path.parent),
            "data_dir": None if settings.data_dir is None else os.path.abspath(settings.data_dir),
            "cache_dir": os.path.abspath(config.cache_dir),
        }
        dumped = spec.model_dump(mode="json")
        mapping = {k: dumped[k] for k in ("fields", "answer_map", "labels")}
        payloads = {
            "prepared": {**base, "spec": dumped, "limit": settings.limit, "chat": settings.chat,
                         "mode": settings.mode, "shuffle_choices": settings.shuffle_choices, "fmt": CANONICAL.describe(),
                         "template": [type(template).__module__, type(template).__qualname__, template.hash_payload()]},
            "data": {**base, **mapping, "source": dumped["source"], "shuffle_choices": settings.shuffle_choices},
            "shots": {**base, **mapping, "fewshot": dumped["fewshot"]},
        }
        return {kind: hashlib.sha256(_canonical({"kind": kind, **p}).encode()).hexdigest() for kind, p in payloads.items()}

    # -- prepared entries -----------------------------------------------------------------------

    @staticmethod
    def _encode(prep: PreparedBenchmark) -> dict[str, Any]:
        prompts = [r.prompt for r in prep.requests]
        head = os.path.commonprefix(prompts) if len(prompts) > 1 else ""  # instruction and few-shots: stored once
        messages = None
        if any(r.messages is not None for r in prep.requests):
            messages = [None if r.messages is None else [dict(m) for m in r.messages] for r in prep.requests]
        tails = [p[len(head):] for p in prompts]
        # An input block that opens its prompt's tail (section templates) is stored as its length.
        inputs = None if prep.inputs is None else [len(i) if t.startswith(i) else i for t, i in zip(tails, prep.inputs, strict=True)]
        return {
            "data_fingerprint": prep.data_fingerprint,
            "examples": _encode_examples(prep.examples),
            "shots": _encode_examples(prep.shots),
            "prompt_head": head,
            "prompts": tails,
            "messages": messages,
            "inputs": inputs,
        }

    def _decoded(self, entry: Entry, name: str, key: str, spec: BenchmarkSpec, spec_path: Path,
                 settings: RunSettings, quiet: bool = False) -> PreparedBenchmark | None:
        started = time.perf_counter()
        try:
            p = entry.payload
            examples, shots = _decode_examples(p["examples"]), _decode_examples(p["shots"])
            head, tails, inputs, fingerprint = p["prompt_head"], p["prompts"], p["inputs"], p["data_fingerprint"]
            messages = p["messages"] if p["messages"] is not None else [None] * len(tails)
            if not (type(fingerprint) is str and type(head) is str and all(type(t) is str for t in tails)
                    and all(type(t) is str or (type(t) is int and 0 <= t) for t in inputs)):
                raise ValueError("prompts, inputs or the fingerprint are not text")
            prompts = [head + t for t in tails]
            if any(type(i) is int and i > len(t) for t, i in zip(tails, inputs, strict=True)):
                raise ValueError("an input block longer than its prompt")
            inputs = [t[:i] if type(i) is int else i for t, i in zip(tails, inputs, strict=True)]
            labels = CANONICAL.labels(spec)
            guided, stop, max_new = (tuple(labels) if labels else None), tuple(spec.stop), spec.max_new_tokens
            requests = [GenerationRequest(prompt, max_new, stop, _messages(m), guided, ItemRef(name, ex.id))
                        for ex, prompt, m in zip(examples, prompts, messages, strict=True)]
            prep = PreparedBenchmark(spec=spec, spec_path=spec_path, examples=examples, shots=shots, requests=requests,
                                     prompt_hash=prompt_hash(spec, shots, settings.chat, settings.shuffle_choices),
                                     data_fingerprint=fingerprint, inputs=list(inputs))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            if not quiet:
                self._corrupt(self._path(name, "prepared", key), e)
            return None
        prep.seconds = time.perf_counter() - started
        return prep

    # -- files ----------------------------------------------------------------------------------

    def _path(self, name: str, kind: str, key: str) -> Path:
        # The code stamp in the name: entries of an older checkout of this package go at the next write.
        return self.root / f"{_safe(name)}.{kind}.{code_stamp()[:8]}.{key[:32]}.json"

    def _corrupt(self, path: Path, why: Exception | str) -> None:
        warnings.warn(PreparedCacheWarning(
            f"prepared-benchmark cache: {path} is unreadable ({why}); preparing the benchmark again and "
            "rewriting the entry"), stacklevel=3)

    def _load(self, name: str, kind: str, key: str) -> Entry | None:
        """The entry, when it exists and is still valid; a corrupt one is warned about."""
        path = self._path(name, kind, key)
        try:
            text = path.read_bytes().decode("utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as e:
            self._corrupt(path, e)
            return None
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                return None  # another version's layout: not an error, just not ours
            if raw["key"] != key or raw["kind"] != kind:
                raise ValueError("it holds another entry's key")
            entry = Entry(raw["payload"], Deps.from_json(raw["deps"]), [list(w) for w in raw["warnings"]])
            if not isinstance(entry.payload, dict) or any(len(w) != 4 for w in entry.warnings):
                raise ValueError("unexpected layout")
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            self._corrupt(path, e)
            return None
        if not entry.deps.unchanged():
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept longest
        return entry

    def _store(self, name: str, kind: str, key: str, payload: dict[str, Any], deps: Deps,
               seen: Sequence[Sequence[Any]], check: Any = None) -> None:
        """Write an entry unless its sources cannot be keyed or it does not read back the same
        (a value JSON cannot hold: a tuple in a row, a date, NaN)."""
        if deps.uncacheable or str(self.root) in _warned_roots:
            return
        entry = {"format": FORMAT, "kind": kind, "benchmark": name, "key": key, "pytest_jallm": __version__,
                 "deps": deps.as_json(), "warnings": [list(w) for w in seen], "payload": payload}
        try:
            text = json.dumps(entry, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            if check is not None and not check(text):
                return
        except (TypeError, ValueError):
            return
        from .atomic import atomic_write_text

        path = self._path(name, kind, key)
        try:
            atomic_write_text(path, text)
        except OSError as e:
            _warned_roots.add(str(self.root))
            warnings.warn(PreparedCacheWarning(
                f"prepared-benchmark cache: cannot write {path} ({e.strerror or e}); this run goes on without "
                "caching prepared benchmarks (--jallm-no-cache turns it off)"), stacklevel=3)
            return
        self._prune(f"{_safe(name)}.{kind}.")

    def _prune(self, prefix: str) -> None:
        """Keep the newest entries of one benchmark and kind (other limits, modes, edited specs) written
        by this code; those of other code are never valid again."""
        current = f"{prefix}{code_stamp()[:8]}."
        with contextlib.suppress(OSError):
            mine = [e for e in os.scandir(self.root) if e.name.startswith(prefix) and e.name.endswith(".json")]
            old = [e for e in mine if not e.name.startswith(current)]
            kept = sorted((e for e in mine if e.name.startswith(current)), key=lambda e: e.stat().st_mtime_ns, reverse=True)
            for entry in old + kept[KEEP_PER_KIND:]:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
