"""`python -m pytest_jallm data fetch|verify`: a pre-fetched data directory for offline runners.

``fetch`` loads every selected source once, the way a run does (so it also gets the files a
loader reads besides the listed ones), and copies each file to its ``mirror`` path under the
target: exactly the layout ``--jallm-data-dir`` reads. A Hugging Face source is saved with
``save_to_disk``. ``MANIFEST.sha256`` (sha256sum format) lists every file written.
``verify`` checks a directory against its manifest and against the specs' pins.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .atomic import atomic_copy, atomic_write_text, is_temp_name
from .errors import DataError
from .sources import DataConfig, check_no_escape, inside, read_pins_file, sha256_of
from .spec import BenchmarkSpec, Source
from .specfile import load_spec

MANIFEST = "MANIFEST.sha256"


def spec_sources(spec: BenchmarkSpec) -> list[tuple[Source, str]]:
    """Every source a spec reads (test data, few-shots, an LLM judge's prompts and references)."""
    out = [(spec.source, f"{spec.name}: source")]
    if spec.fewshot.source is not None:
        out.append((spec.fewshot.source, f"{spec.name}: fewshot.source"))
    if spec.judge is not None:
        out += [(source, f"{spec.name}: {key}") for source, key in spec.judge.sources()]
    return out


def fetch_source(source: Source, spec_dir: Path, to: Path, config: DataConfig, where: str) -> list[Path]:
    """Put one source's files at their mirror paths under ``to``; returns the paths written or kept."""
    from .data import hf_mirror, load_source

    if source.hf:
        return [_save_hf(source, inside(to, hf_mirror(source), where), where)]
    if not source.url:
        return []  # a spec's own local files travel with the spec
    if not source.mirror:
        raise DataError(f"{where}: has no 'mirror' path, so it has no place under a data dir")
    _, _, fetched = load_source(source, spec_dir, None, where, dataclasses.replace(config, data_dir=None))
    written = []
    for url, cached in fetched.touched.items():
        mirror = fetched.mirror_of(url)
        if mirror is None:
            raise DataError(f"{where}: {url} has no mirror path (it is not below any listed url/mirror pair)")
        dest = inside(to, mirror, where)
        if not (dest.is_file() and sha256_of(dest) == sha256_of(cached)):
            atomic_copy(Path(cached), dest)
        written.append(dest)
    return written


def _save_hf(source: Source, dest: Path, where: str) -> Path:
    import datasets

    if (dest / "dataset_dict.json").exists():
        return dest
    try:
        ds = datasets.load_dataset(source.hf, source.hf_config)
    except Exception as e:
        raise DataError(f"{where}: could not load Hugging Face dataset {source.hf!r} (config {source.hf_config!r}): "
                        f"{type(e).__name__}: {e}") from e
    tmp = dest.with_name(f".{dest.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.save_to_disk(str(tmp))
    os.replace(tmp, dest)
    return dest


def _files_under(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(".part") and not is_temp_name(path.name):
            check_no_escape(root, path, f"{root}")
            yield path


def write_manifest(to: Path) -> Path:
    lines = [f"{sha256_of(p)}  {p.relative_to(to).as_posix()}\n" for p in _files_under(to)]
    manifest = to / MANIFEST
    atomic_write_text(manifest, "".join(lines))
    return manifest


def fetch(spec_paths: Sequence[Path], to: Path, config: DataConfig,
          log: Callable[[str], None] = print) -> tuple[int, list[str]]:
    """Fetch every source of the specs into ``to``; (files in the directory, failures)."""
    to.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    done: set[str] = set()
    for path in spec_paths:
        spec = load_spec(path)
        for source, where in spec_sources(spec):
            key = f"hf:{source.hf}:{source.hf_config}" if source.hf else source.model_dump_json()
            if key in done:
                continue
            done.add(key)
            try:
                files = fetch_source(source, path.parent, to, config, where)
            except DataError as e:  # its message starts with `where` already
                failures.append(f"{path}: {e}")
                log(f"FAILED {e}")
                continue
            if files:
                log(f"ok {where}: {len(files)} file(s)" if len(files) > 1 else f"ok {where}: {files[0]}")
    write_manifest(to)
    return sum(1 for _ in _files_under(to)), failures


def verify(root: Path, spec_paths: Sequence[Path] = ()) -> list[str]:
    """Problems with a data directory: files that differ from its manifest or that it does not
    list; with specs, also their mirrors that are missing and files that differ from a spec's pin."""
    problems: list[str] = []
    manifest = root / MANIFEST
    listed: dict[str, str] = read_pins_file(manifest) if manifest.is_file() else {}
    if not manifest.is_file() and not spec_paths:
        return [f"{manifest}: no manifest (write one with `python -m pytest_jallm data fetch --to {root}`)"]
    pinned: dict[str, tuple[str, str]] = {}
    for path in spec_paths:
        spec = load_spec(path)
        for source, where in spec_sources(spec):
            try:
                pins = source.pins(path.parent)
            except DataError as e:
                problems.append(str(e))
                continue
            for name in source.mirrors() if source.url else []:
                if not (root / name).is_file():
                    problems.append(f"{root / name}: missing ({where})")
            for name, digest in pins.items():
                pinned.setdefault(name, (digest, where))
    for name, digest in sorted(listed.items()):
        file = root / name
        if not file.is_file():
            problems.append(f"{file}: missing (listed in {MANIFEST})")
        elif sha256_of(file) != digest:
            problems.append(f"{file}: sha256 mismatch: {MANIFEST} has {digest}, the file has {sha256_of(file)}")
    for name, (digest, where) in sorted(pinned.items()):
        file = root / name
        if file.is_file() and sha256_of(file) != digest:
            problems.append(f"{file}: sha256 mismatch: {where} pins {digest}, the file has {sha256_of(file)}")
    if manifest.is_file():
        try:
            problems += [f"{file}: present but not listed in {MANIFEST}" for file in _files_under(root)
                         if file.relative_to(root).as_posix() not in listed]
        except DataError as e:  # a symlink leading out of the directory
            problems.append(str(e))
    return list(dict.fromkeys(problems))
