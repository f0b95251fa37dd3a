"""Loading benchmark rows (with `datasets`) and mapping them to examples.

Sources are a Hugging Face dataset id, URLs or local files. URLs are downloaded
into the data cache (see :mod:`pytest_jallm.sources`); with a data directory
(`--jallm-data-dir` / `JALLM_DATA_DIR`) a source's `mirror` path under it is
used instead of the network, for air-gapped clusters. Pinned files are checked
against their sha256 on every read.
Every problem with a row is reported with the file, the row and the field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import DataError
from .loaders import LOADERS
from .loaders.files import json_head_rows, json_lines
from .readlog import note_code, note_glob, note_library, note_uncacheable
from .sources import DataConfig, SourceFiles, activate, check_no_escape, inside, is_url
from .spec import BenchmarkSpec, Source

__all__ = ["DataError", "DataConfig", "Example", "load_rows", "load_examples", "load_fewshots"]


@dataclass(frozen=True)
class Example:
    id: str
    fields: Mapping[str, str]
    choices: tuple[str, ...]
    gold: str
    context: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)



_EXTENSION_FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


def data_dir_from_env(option_value: str | None) -> Path | None:
    value = option_value or os.environ.get("JALLM_DATA_DIR")
    return Path(value).expanduser() if value else None


def resolve_files(source: Source, spec_dir: Path, data_dir: Path | None, where: str) -> list[str] | None:
    """Local files for a source, or None when its URLs must be fetched (cache or network).

    Raises DataError when a local path or a mirror that should exist does not, or when a
    mirror path would leave the data directory.
    """
    if data_dir is not None and source.mirror:
        files: list[str] = []
        for pattern in source.mirrors():
            mirrored = str(inside(data_dir, pattern, where))
            hits = sorted(glob.glob(mirrored))
            note_glob(mirrored, hits)
            for hit in hits:
                check_no_escape(data_dir, hit, where)
            if not hits:
                raise DataError(
                    f"{where}: mirror '{pattern}' not found under data dir {data_dir} "
                    f"(set --jallm-data-dir / JALLM_DATA_DIR to the directory that holds it, or write it with "
                    f"`python -m pytest_jallm data fetch --to DIR`)"
                )
            files += hits
        return files
    if source.path:
        files = []
        for pattern in source.locations():
            full = pattern if os.path.isabs(pattern) else str(spec_dir / pattern)
            hits = sorted(glob.glob(full))
            note_glob(full, hits)
            if not hits:
                raise DataError(f"{where}: file '{pattern}' not found (looked for {full})")
            files += hits
        return files
    return None


def source_files(source: Source, spec_dir: Path, config: DataConfig, where: str) -> SourceFiles:
    """The source's URL/mirror pairs and sha256 pins, for loaders and `data fetch`."""
    urls = source.locations() if source.url else []
    return SourceFiles(config, urls, source.mirrors(), source.pins(spec_dir), where)


def _infer_format(source: Source, files: Sequence[str]) -> str:
    if source.format:
        return source.format
    exts = {Path(f.split("?")[0]).suffix.lower() for f in files}
    formats = {_EXTENSION_FORMATS.get(e) for e in exts}
    if len(formats) != 1 or None in formats:
        raise DataError(
            f"cannot infer the data format from {sorted(exts)}; set 'source.format' to one of "
            f"json, jsonl, csv, tsv, parquet or a named loader ({', '.join(sorted(LOADERS)) or 'none'})"
        )
    return formats.pop()  # type: ignore[return-value]


_INT64 = (-(2**63), 2**63 - 1)
_UNSURE = object()


def _value_kind(value: Any) -> Any:
    """A tag for the Arrow type `datasets` would give this JSON value when it keeps it as
    it is in Python; None for null (fits any column); _UNSURE when Arrow might convert it."""
    t = type(value)
    if value is None:
        return None
    if t is bool:
        return t
    if t is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # an escaped lone surrogate: readers differ on it
            return _UNSURE
        return t
    if t is int:
        return t if _INT64[0] <= value <= _INT64[1] else _UNSURE
    if t is float:
        # datasets falls back from pyarrow to ujson for some files (a JSON array; a list
        # column pyarrow cannot type), and ujson rounds some floats: 1.0000000000000002e16
        # becomes 1e16. Which reader a file gets is not worth predicting: floats go to datasets.
        return _UNSURE
    if t is list:
        inner = {_value_kind(v) for v in value} - {None}
        if len(inner) > 1 or not inner.isdisjoint({_UNSURE, list}) or any(isinstance(k, tuple) for k in inner):
            return _UNSURE
        return ("list", inner.pop() if inner else None)
    return _UNSURE  # objects become Arrow structs with the union of their keys


def _merge_kinds(seen: Any, kind: Any) -> Any:
    if seen is None or seen == kind:
        return kind
    if kind is None:
        return seen
    if isinstance(seen, tuple) and isinstance(kind, tuple):  # lists: an empty one fits any element type
        if seen[1] is None or kind[1] is None:
            return seen if kind[1] is None else kind
    return _UNSURE


def plain_json_rows(path: str) -> list[dict[str, Any]] | None:
    """Rows of a local JSON Lines file (or JSON array of objects) read by the standard library,
    when they are certainly what `datasets.load_dataset("json", ...)` returns; else None.

    Arrow unifies each column to one type (ints among floats become floats, a missing key
    becomes None, objects gain the union of their keys), so rows are returned here only
    when no such conversion can happen: every row has the same keys and every column holds
    one type of string, integer or boolean (or lists of one), with nulls; no floats, which
    datasets reads with a rounding parser in some files. Most benchmark files are like
    that (JGLUE's MC, NLI and QA sets), and the run then neither imports `datasets` nor
    writes its Arrow cache (seconds per run).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None  # the datasets path reports it with the file's name
    if not text.strip():
        return []
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError:
            return None
    else:
        try:
            rows = [row for _, row in json_lines(path, text)]
        except DataError as bad_line:
            try:
                json.loads(text)
            except ValueError:
                raise bad_line from None  # names the file and the line (datasets would report a byte position)
            return None  # one JSON document spread over lines, which datasets reads
    if not isinstance(rows, list) or not rows or not all(type(r) is dict for r in rows):
        return None
    keys = set(rows[0])
    kinds: dict[str, Any] = dict.fromkeys(keys)
    for row in rows:
        if row.keys() != keys:
            return None
        for k, v in row.items():
            merged = _merge_kinds(kinds[k], _value_kind(v))
            if merged is _UNSURE:
                return None
            kinds[k] = merged
    return rows


def _tagged(rows: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    stem = Path(path.split("?")[0]).stem
    for i, row in enumerate(rows):
        row["_file"] = stem
        row["_row"] = i
    return rows


def _load_file_format(fmt: str, files: Sequence[str], source: Source) -> list[dict[str, Any]]:
    """Rows of each file in order, tagged with `_file` (its stem) and `_row` (index in it).

    `datasets` reads them, except flat local JSON, which the standard library reads when
    that gives the very same rows (:func:`plain_json_rows`)."""
    if fmt in ("json", "jsonl") and all(os.path.isfile(f) for f in files):
        rows: list[dict[str, Any]] = []
        for path in files:
            plain = plain_json_rows(path)
            if plain is None:
                break  # one file needs datasets: let it read them all, alike
            rows += _tagged(plain, path)
        else:
            return rows
    import datasets

    note_library("datasets")  # its readers (pyarrow, ujson) shape the rows
    datasets.disable_progress_bars()
    # Local files need no network: skip datasets' download-count ping, which
    # waits up to 3 s per call when DNS is black-holed (air-gapped clusters).
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    kwargs: dict[str, Any] = {}
    builder = {"jsonl": "json", "tsv": "csv"}.get(fmt, fmt)
    if fmt == "tsv":
        kwargs["sep"] = "\t"
    if builder == "csv":
        # utf-8-sig: JMMLU's files start with a byte-order mark. No NA guessing:
        # a cell reading "NA" or "None" is text.
        kwargs.update(keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        if source.columns:
            kwargs["column_names"] = list(source.columns)
            kwargs["header"] = None
            # Typed as text so ids like "007" and answers like "0" survive.
            kwargs["features"] = datasets.Features({c: datasets.Value("string") for c in source.columns})
    rows = []
    for path in files:
        if os.path.isfile(path) and os.path.getsize(path) < 4096 and not Path(path).read_bytes().strip():
            continue  # an empty file has no rows (datasets' own error for it names nothing)
        try:
            ds = datasets.load_dataset(builder, data_files=[path], split="train", **kwargs)
        except ValueError as e:
            if "corresponds to no data" in str(e):
                continue  # a CSV with a header only: no rows
            raise
        rows += _tagged(ds.to_list(), path)
    return rows


def hf_mirror(source: Source) -> str:
    """Where `data fetch` saves a Hugging Face dataset (`save_to_disk`) under the data dir."""
    return source.mirrors()[0] if source.mirror else "/".join(p for p in (source.hf, source.hf_config) if p)


def _hub_reachable() -> bool:
    """Whether the hub's host resolves: without DNS, `datasets` spends ~23 s in retries before failing."""
    import socket
    import urllib.parse

    host = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _load_hf(source: Source, data_dir: Path | None, where: str = "hf source") -> list[dict[str, Any]]:
    import datasets

    note_uncacheable(f"{source.hf} is a Hugging Face dataset (datasets keeps its own cache)")

    datasets.disable_progress_bars()
    if data_dir is not None:
        local = inside(data_dir, hf_mirror(source), f"{source.hf}: mirror")
        if local.is_dir() and (local / "dataset_dict.json").exists():
            saved = datasets.load_from_disk(str(local))
            if source.split not in saved:
                raise DataError(f"{local}: saved dataset has no split {source.split!r} (splits: {', '.join(saved)})")
            return saved[source.split].to_list()
        if local.is_dir() and (local / "state.json").exists():
            return datasets.load_from_disk(str(local)).to_list()
    offline_env = bool(datasets.config.HF_HUB_OFFLINE)
    offline = offline_env or not _hub_reachable()
    try:
        with _hub_offline(offline):
            ds = datasets.load_dataset(source.hf, source.hf_config, split=source.split)
    except Exception as e:  # network, auth, missing split: name the source
        why = ""
        if offline:
            why = " (HF_HUB_OFFLINE is set" if offline_env else " (the hub's host does not resolve"
            why += ": only local caches were tried)"
        raise DataError(
            f"{where}: could not load Hugging Face dataset {source.hf!r} (config {source.hf_config!r}, split "
            f"{source.split!r}){why}: {type(e).__name__}: {e}. Offline? Pre-fetch it with "
            f"`python -m pytest_jallm data fetch SPEC --to DIR` (it saves to DIR/{hf_mirror(source)}) "
            f"and pass --jallm-data-dir DIR"
        ) from e
    return ds.to_list()


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """Let `datasets` use only its local cache when the hub cannot be reached."""
    if not offline:
        yield
        return
    import datasets
    import huggingface_hub.constants as hub

    saved = (datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved


def load_rows(
    source: Source, spec_dir: Path, data_dir: Path | None, where: str, config: DataConfig | None = None,
    *, max_rows: int | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Rows of a source, filtered by `where`/`exclude`, and a description of where they came from.

    ``config`` sets the download cache and URL map (default: from the environment); the
    data directory is always ``data_dir``. ``max_rows``: see :func:`load_source`."""
    rows, origin, _ = load_source(source, spec_dir, data_dir, where, config, max_rows=max_rows)
    return rows, origin


def row_filter(source: Source) -> Callable[[Mapping[str, Any]], bool] | None:
    """The source's `where`/`exclude` as one predicate (None: every row is kept)."""
    if not source.where and not source.exclude:
        return None
    wanted = {col: str(value) for col, value in source.where.items()}
    banned = {col: {str(v) for v in values} for col, values in source.exclude.items()}
    return lambda r: (all(str(r.get(c)) == v for c, v in wanted.items())
                      and not any(str(r.get(c)) in b for c, b in banned.items()))


def load_source(
    source: Source, spec_dir: Path, data_dir: Path | None, where: str, config: DataConfig | None = None,
    *, max_rows: int | None = None,
) -> tuple[list[dict[str, Any]], str, SourceFiles]:
    """:func:`load_rows`, also returning the files it read (what `data fetch` copies).

    ``max_rows``: only the first rows (after `where`/`exclude`) are wanted. A JSON Lines file is then
    read no further, and a loader that keeps file order (``stops_at_max_rows``) is told to stop there.
    The caller must know that a full read of this source parses its files with the standard library
    (no `datasets` noted: :mod:`pytest_jallm.readlog`), so the first rows are the same either way."""
    config = dataclasses.replace(config or DataConfig.from_options(), data_dir=data_dir)
    fetched = source_files(source, spec_dir, config, where)
    keep = row_filter(source)
    if source.hf:
        if data_dir is not None and source.mirror and not inside(data_dir, hf_mirror(source), where).is_dir():
            raise DataError(
                f"{where}: mirror '{hf_mirror(source)}' not found under data dir {data_dir} (a `save_to_disk` "
                f"copy of {source.hf}; `python -m pytest_jallm data fetch --to DIR` writes it)"
            )
        rows = _load_hf(source, data_dir, where)
        origin = f"hf:{source.hf}/{source.hf_config or ''}:{source.split}"
    else:
        with activate(fetched):
            rows, origin = _load_files(source, spec_dir, data_dir, where, fetched, max_rows, keep)
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    return (rows if max_rows is None else rows[:max_rows]), origin, fetched


def _load_files(
    source: Source, spec_dir: Path, data_dir: Path | None, where: str, fetched: SourceFiles,
    max_rows: int | None = None, keep: Callable[[Mapping[str, Any]], bool] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    if source.url and data_dir is not None and source.mirror and fetched.pairs:
        files = [fetched.local(u) for u in source.locations()]  # each mirror, checked against its pin
    else:
        resolved = resolve_files(source, spec_dir, data_dir, where)
        if resolved is None:
            files = source.locations()  # URLs: named loaders fetch them (and what they name) themselves
        else:
            files = [fetched.local(f) for f in resolved]
    fmt = _infer_format(source, files)
    if fmt not in LOADERS:
        files = [fetched.local(f) if is_url(f) else f for f in files]  # datasets reads local files only
    origin = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more files)"
    try:
        if fmt in LOADERS:
            note_code(LOADERS[fmt])
            rows = LOADERS[fmt](files, _loader_options(LOADERS[fmt], source, max_rows))
        elif max_rows is not None and fmt in ("json", "jsonl") and all(os.path.isfile(f) for f in files):
            rows = json_head_rows(files, max_rows, keep)
        elif fmt in _EXTENSION_FORMATS.values():
            rows = _load_file_format(fmt, files, source)
        else:
            raise DataError(
                f"{where}: unknown format {fmt!r}; expected json, jsonl, csv, tsv, parquet or one of "
                f"{', '.join(sorted(LOADERS)) or 'no named loaders'}"
            )
    except DataError:
        raise
    except UnicodeDecodeError as e:
        raise DataError(_not_utf8(files, origin, e)) from e
    except Exception as e:
        root = e  # datasets wraps the reader's error (e.g. a pyarrow parse error naming the row)
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        if isinstance(root, UnicodeDecodeError):
            raise DataError(_not_utf8(files, origin, root)) from e
        cause = f" ({type(root).__name__}: {root})" if root is not e else ""
        raise DataError(f"{origin}: could not read as {fmt}: {type(e).__name__}: {e}{cause}") from e
    return rows, origin


# Loader options that reorder or drop rows after reading: a loader with one of them cannot stop early.
_REORDERING_OPTIONS = ("shuffle_seed", "skip", "slice", "max_chars", "file_shuffle_seed", "file_slice")


def _loader_options(loader: Any, source: Source, max_rows: int | None) -> Mapping[str, Any]:
    options = source.loader_options
    if (max_rows is None or not getattr(loader, "stops_at_max_rows", False) or source.where or source.exclude
            or any(k in options for k in _REORDERING_OPTIONS)):
        return options
    return {**options, "max_rows": min(max_rows, int(options.get("max_rows", max_rows)))}


def _not_utf8(files: Sequence[str], origin: str, e: UnicodeDecodeError) -> str:
    """Name the first local file and line that is not UTF-8 (a reader's own offsets are per chunk)."""
    for path in files:
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    return f"{path}: line {n}: not valid UTF-8 ({bad.reason} at byte {bad.start} of the line)"
    return f"{origin}: not valid UTF-8 ({e.reason} at byte {e.start})"


def _cell(row: Mapping[str, Any], column: str, origin: str, index: int, role: str) -> Any:
    if column not in row:
        raise DataError(
            f"{origin}: row {index}: column '{column}' (mapped as '{role}') is missing; "
            f"the row has {', '.join(map(str, row.keys()))}"
        )
    if row[column] is None:  # JSON null, or a key the row lacks (datasets fills those with null)
        raise DataError(f"{origin}: row {index}: column '{column}' (mapped as '{role}') is missing or null")
    return row[column]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rows_to_examples(spec: BenchmarkSpec, rows: Sequence[Mapping[str, Any]], origin: str) -> list[Example]:
    f = spec.fields
    variables = f.variables()
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataError(f"{origin}: row {i}: expected an object with fields, got {type(row).__name__}")
        if f.id and "{" in f.id:
            try:
                ex_id = f.id.format_map({k: _as_text(v) for k, v in row.items()})
            except (KeyError, ValueError, IndexError) as e:
                raise DataError(f"{origin}: row {i}: id template {f.id!r} cannot be filled: {e}") from None
        else:
            ex_id = _as_text(_cell(row, f.id, origin, i, "id")) if f.id else str(i)
        if not ex_id.strip():
            raise DataError(f"{origin}: row {i}: column '{f.id}' (mapped as 'id') is empty")
        if ex_id in seen:
            raise DataError(f"{origin}: row {i}: duplicate id {ex_id!r} (first seen at row {seen[ex_id]})")
        seen[ex_id] = i
        if f.answer is None:  # an LLM-judged benchmark (the spec requires a judge then): no gold answer
            gold = ""
        else:
            raw_answer = _cell(row, f.answer, origin, i, "answer")
            if isinstance(raw_answer, (list, tuple)):
                gold = "\n".join(spec.answer_map.get(_as_text(a), _as_text(a)) for a in raw_answer)
            else:
                gold = spec.answer_map.get(_as_text(raw_answer), _as_text(raw_answer))
            if not gold.strip():  # an empty gold would count an empty output as correct
                raise DataError(f"{origin}: row {i}: column '{f.answer}' (mapped as 'answer') is empty")
        if f.choices is None:
            choices: tuple[str, ...] = ()
        elif isinstance(f.choices, str):
            value = _cell(row, f.choices, origin, i, "choices")
            if not isinstance(value, (list, tuple)):
                raise DataError(f"{origin}: row {i}: column '{f.choices}' should hold a list of choices")
            choices = tuple(_as_text(c) for c in value)
        else:
            choices = tuple(_as_text(_cell(row, c, origin, i, "choices")) for c in f.choices)
        values = {var: _as_text(_cell(row, col, origin, i, var)) for var, col in variables.items()}
        examples.append(Example(id=ex_id, fields=values, choices=choices, gold=gold, context=row))
    return examples


def check_labels(spec: BenchmarkSpec, examples: Iterable[Example], origin: str) -> None:
    """A closed label set must contain every gold answer of the data."""
    if not spec.labels:
        return
    from .answers import normalize

    allowed = {normalize(label) for label in spec.labels}
    for ex in examples:
        golds = ex.gold.split("\n") if "\n" in ex.gold else [ex.gold]
        for g in golds:
            if normalize(g) not in allowed:
                raise DataError(
                    f"{origin}: item {ex.id!r}: gold answer {g!r} is not in the spec's 'labels' "
                    f"({', '.join(spec.labels)}); fix 'labels' or 'answer_map'"
                )


def load_examples(
    spec: BenchmarkSpec, spec_dir: Path, data_dir: Path | None, limit: int | None = None,
    config: DataConfig | None = None, *, read_limit: int | None = None,
) -> list[Example]:
    """The source's examples (the first ``limit``). ``read_limit``: read no further than that many
    rows where the reader can stop (see :func:`load_source` for what the caller must know); only the
    rows read are checked for duplicate ids and labels."""
    rows, origin = load_rows(spec.source, spec_dir, data_dir, f"{spec.name}: source", config, max_rows=read_limit)
    if not rows:
        raise DataError(f"{spec.name}: source {origin} has no rows (after 'where'/'exclude' filters)")
    examples = rows_to_examples(spec, rows, origin)
    check_labels(spec, examples, origin)
    if limit is not None:
        examples = examples[:limit]
    return examples


def load_fewshots(
    spec: BenchmarkSpec, spec_dir: Path, data_dir: Path | None, config: DataConfig | None = None
) -> list[Example]:
    fs = spec.fewshot
    if not fs.count or fs.source is None:
        return []
    try:
        rows, origin = load_rows(fs.source, spec_dir, data_dir, f"{spec.name}: fewshot.source", config)
    except DataError as e:
        raise DataError(
            f"{e}\n{spec.name} needs {fs.count} few-shot examples from this source; to run it without them, "
            "pass --jallm-num-fewshot 0"
        ) from e
    pool = rows_to_examples(spec, rows, origin)
    if fs.shuffle_seed is not None:
        pool = list(pool)
        random.Random(fs.shuffle_seed).shuffle(pool)
    if len(pool) < fs.count:
        raise DataError(f"{spec.name}: fewshot.count is {fs.count} but {origin} has only {len(pool)} rows")
    return pool[: fs.count]


def fingerprint(examples: Sequence[Example]) -> str:
    """Content hash of the evaluated items, independent of where they were loaded from."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(
            json.dumps([ex.id, dict(ex.fields), list(ex.choices), ex.gold], ensure_ascii=False, sort_keys=True).encode(
                "utf-8"
            )
        )
        h.update(b"\n")
    return h.hexdigest()[:16]


