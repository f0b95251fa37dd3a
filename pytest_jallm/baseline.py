"""Thresholds (written by people) and baselines (written by the plugin), under `thresholds/`.

`thresholds/<name>.yaml` holds only what a person writes; the plugin never rewrites it:

    defaults: {max_drop: 2.0, alpha: 0.05, min_paired: 90}
    benchmarks:
      jcommonsenseqa:
        min_score: 60        # 0-100
        max_ooc_rate: 5      # percent of outputs outside the label set
        max_drop: 2.0        # points a paired-significant drop may not exceed

Accepted baselines are machine files beside it, one per benchmark, written only by
`--jallm-update-baseline`: `thresholds/<name>/<benchmark>.baseline.jsonl`. JSON Lines, so a
review diff of an update shows each flipped item as one changed line:

    {"format": "pytest-jallm/baseline", "version": 1, "benchmark": …, "metric": …, "binary": …, "n": …, "score": …, "ooc_rate": …}
    {"produced_by": {…}}
    {"id": "q1", "score": 1.0, "pred": "3"}
    …

The header may also hold `"partial": {"limit": N}` (accepted from a `--jallm-limit N` run with
`--jallm-accept-partial`: it holds the first N items only) and `"reruns": {"runs": …, "items": …,
"flips": …}` (re-runs of the accepted model, see `with_rerun`: the harmless churn the minimum
detectable drop is computed from). Both are absent from an ordinary full baseline.

A baseline is validated before it is compared (see `validate_baseline`): a hand-edited or
truncated file, a header naming another benchmark or an empty provenance is an error naming the
file and line, never a quiet `pass`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomic import atomic_write_text, remove_stale_temps
from .errors import JallmError
from .strict_yaml import DuplicateKeyError, FileKeyError, error_location, load_strict, validation_problem

DEFAULT_MAX_DROP = 2.0
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_PAIRED = 90.0  # percent of the current items that must pair with the baseline
BASELINE_FORMAT = "pytest-jallm/baseline"
BASELINE_VERSION = 1
BASELINE_SUFFIX = ".baseline.jsonl"
MAX_PREDICTION_CHARS = 200  # of each extracted prediction kept in a baseline


ThresholdError = FileKeyError  # a thresholds file is invalid


class BaselineError(JallmError):
    """A baseline file is unreadable or inconsistent; the message names the file and where."""

    show_type = False

    def __init__(self, path: Path | str, where: str, problem: str):
        self.path, self.where, self.problem = str(path), where, problem
        super().__init__(f"{path}: {where}: {problem}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BenchmarkEntry(_Strict):
    min_score: Optional[float] = Field(None, ge=0, le=100)
    max_ooc_rate: Optional[float] = Field(None, ge=0, le=100)
    max_oof_rate: Optional[float] = Field(None, ge=0, le=100)  # % of outputs no answer could be extracted from
    max_drop: Optional[float] = Field(None, ge=0, le=100)
    alpha: Optional[float] = Field(None, gt=0, lt=1)
    max_spread: Optional[float] = Field(None, ge=0, le=100)  # prompt-format variants: max - min score
    min_variant_score: Optional[float] = Field(None, ge=0, le=100)  # every drawn format must score this
    min_paired: Optional[float] = Field(None, ge=0, le=100)  # % of current items that must pair with the baseline


class Defaults(_Strict):
    max_drop: float = Field(DEFAULT_MAX_DROP, ge=0, le=100)
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=1)
    min_score: Optional[float] = Field(None, ge=0, le=100)
    max_ooc_rate: Optional[float] = Field(None, ge=0, le=100)
    max_oof_rate: Optional[float] = Field(None, ge=0, le=100)  # % of outputs no answer could be extracted from
    max_spread: Optional[float] = Field(None, ge=0, le=100)  # prompt-format variants: max - min score
    min_variant_score: Optional[float] = Field(None, ge=0, le=100)  # every drawn format must score this
    min_paired: float = Field(DEFAULT_MIN_PAIRED, ge=0, le=100)


class ThresholdFileModel(_Strict):
    model: Optional[str] = None
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    benchmarks: dict[str, BenchmarkEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    min_score: float | None
    max_ooc_rate: float | None
    max_drop: float
    alpha: float
    max_spread: float | None = None
    min_variant_score: float | None = None
    min_paired: float = DEFAULT_MIN_PAIRED
    max_oof_rate: float | None = None

    @property
    def absolute(self) -> bool:
        """Whether a threshold gates the benchmark even without a baseline."""
        return self.min_score is not None or self.max_ooc_rate is not None or self.max_oof_rate is not None


def load_threshold_file(path: Path) -> ThresholdFileModel:
    if not path.exists():
        return ThresholdFileModel()
    try:
        data = load_strict(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as e:
        raise ThresholdError(path, str(e.key), f"duplicate key at line {e.line} (only one value may be given)") from None
    except yaml.YAMLError as e:
        raise ThresholdError(path, "<yaml>", f"malformed YAML at {error_location(e)}") from None
    except UnicodeDecodeError as e:
        raise ThresholdError(path, "<file>", f"not UTF-8 text: {e.reason}") from None
    if data is None:
        return ThresholdFileModel()
    if not isinstance(data, dict):
        raise ThresholdError(path, "<top level>", f"expected a mapping, got {type(data).__name__}")
    for name, entry in (data.get("benchmarks") or {}).items() if isinstance(data.get("benchmarks"), dict) else ():
        if isinstance(entry, dict) and "baseline" in entry:
            raise ThresholdError(
                path, f"benchmarks.{name}.baseline",
                "baselines no longer live in the thresholds file: delete the 'baseline' block and accept a new "
                f"baseline with --jallm-update-baseline (it is written to {baseline_path(path, str(name))})",
            )
    try:
        return ThresholdFileModel.model_validate(data)
    except ValidationError as e:
        raise ThresholdError(path, *validation_problem(e)) from None


def limits_for(model: ThresholdFileModel, name: str, spec_thresholds: Any = None) -> Limits:
    entry = model.benchmarks.get(name, BenchmarkEntry())
    d = model.defaults

    def pick(attr: str, default: Any) -> Any:
        for source in (entry, spec_thresholds, d):
            value = getattr(source, attr, None) if source is not None else None
            if value is not None:
                return value
        return default

    return Limits(
        min_score=pick("min_score", None),
        max_ooc_rate=pick("max_ooc_rate", None),
        max_oof_rate=pick("max_oof_rate", None),
        max_drop=pick("max_drop", DEFAULT_MAX_DROP),
        alpha=pick("alpha", DEFAULT_ALPHA),
        max_spread=pick("max_spread", None),
        min_variant_score=pick("min_variant_score", None),
        min_paired=pick("min_paired", DEFAULT_MIN_PAIRED),
    )


def unused_entries(model: ThresholdFileModel, known: Sequence[str]) -> list[str]:
    """Threshold entries that name no collected benchmark (a typo gates nothing)."""
    return sorted(set(model.benchmarks) - set(known))


# --- baseline files ------------------------------------------------------------------


@dataclass(frozen=True)
class Reruns:
    """Re-runs of the accepted model (identical provenance) seen by --jallm-update-baseline."""

    runs: int
    items: int  # items paired over all re-runs
    flips: int  # of those, items whose score changed

    @property
    def churn(self) -> float | None:
        return self.flips / self.items if self.items else None


@dataclass
class Baseline:
    benchmark: str
    metric: str
    score: float  # 0-100
    ooc_rate: float | None
    n: int
    binary: bool
    produced_by: dict[str, Any] = field(default_factory=dict)
    items: dict[str, float] = field(default_factory=dict)  # id -> per-item score, 0..1
    predictions: dict[str, str] = field(default_factory=dict)  # id -> extracted prediction (capped)
    path: str = ""
    partial: int | None = None  # accepted from a --jallm-limit run of this many items (--jallm-accept-partial)
    reruns: Reruns | None = None

    @property
    def partial_limit(self) -> int | None:
        """The --jallm-limit this baseline was accepted from. Files older than the `partial` key: their
        provenance's limit, when the file holds that many items (fewer: the data ran out first)."""
        if self.partial is not None:
            return self.partial
        limit = self.produced_by.get("limit")
        if isinstance(limit, int) and not isinstance(limit, bool) and len(self.items) >= limit:
            return limit
        return None


def with_rerun(old: Baseline | None, new: Baseline) -> Baseline:
    """`new`, carrying the re-run history of `old` when it re-runs the accepted model.

    An accept whose provenance (model revision, backend and its settings, sampling, prompt, data,
    few-shots, plugin version …) equals the old baseline's is a re-run of the same model: the items
    it flips are harmless churn (e.g. batch nondeterminism). Re-runs are counted once one has
    flipped something, so a deterministic model's file is never rewritten for nothing."""
    if old is None or old.produced_by != new.produced_by or old.metric != new.metric:
        return new
    paired = [i for i in new.items if i in old.items]
    flips = sum(1 for i in paired if old.items[i] != new.items[i])
    if not paired or (flips == 0 and old.reruns is None):
        return new
    prev = old.reruns or Reruns(0, 0, 0)
    new.reruns = Reruns(prev.runs + 1, prev.items + len(paired), prev.flips + flips)
    return new


def baseline_path(threshold_path: Path, benchmark: str) -> Path:
    """`thresholds/model.yaml` -> `thresholds/model/<benchmark>.baseline.jsonl`."""
    return threshold_path.with_suffix("") / f"{benchmark}{BASELINE_SUFFIX}"


def cap_prediction(text: str) -> str:
    """Bounded and valid UTF-8 (model output may hold lone surrogates), so a rewrite is byte-stable."""
    text = text if len(text) <= MAX_PREDICTION_CHARS else text[:MAX_PREDICTION_CHARS] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def render_baseline(b: Baseline) -> str:
    """The file text: header, provenance, then one item per line in data order."""
    header = {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "benchmark": b.benchmark, "metric": b.metric,
              "binary": b.binary, "n": b.n, "score": b.score, "ooc_rate": b.ooc_rate}
    if b.partial is not None:
        header["partial"] = {"limit": b.partial}
    if b.reruns is not None:
        header["reruns"] = {"runs": b.reruns.runs, "items": b.reruns.items, "flips": b.reruns.flips}
    lines = [json.dumps(header, ensure_ascii=False), json.dumps({"produced_by": b.produced_by}, ensure_ascii=False, sort_keys=True)]
    dumps = json.dumps
    for item_id, score in b.items.items():
        lines.append(dumps({"id": item_id, "score": score, "pred": cap_prediction(b.predictions.get(item_id, ""))},
                           ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_baseline(path: Path, benchmark: str | None = None) -> Baseline | None:
    """The baseline stored at `path`, validated; None when there is none. BaselineError when it is
    broken, or when its header names another benchmark than `benchmark`. A temp file a killed writer
    left beside it is removed (the folder is committed)."""
    remove_stale_temps(path.parent)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise BaselineError(path, "<file>", f"not a readable baseline: {e}") from None
    try:
        # One json.loads for the whole file is several times faster than one per line.
        records = json.loads("[" + text.strip().replace("\n", ",") + "]")
    except json.JSONDecodeError:
        records = _records_line_by_line(text, path)
    if len(records) < 2:
        raise BaselineError(path, "line 1", "expected a header line and a provenance line (re-accept with --jallm-update-baseline)")
    header, provenance, rows = records[0], records[1], records[2:]
    if not isinstance(header, dict) or header.get("format") != BASELINE_FORMAT:
        raise BaselineError(path, "line 1", f"expected a header with \"format\": \"{BASELINE_FORMAT}\"")
    if header.get("version") != BASELINE_VERSION:
        raise BaselineError(path, "line 1", f"baseline format version {header.get('version')!r}; this pytest-jallm reads {BASELINE_VERSION}")
    if not isinstance(provenance, dict) or not isinstance(provenance.get("produced_by"), dict):
        raise BaselineError(path, "line 2", "expected {\"produced_by\": {...}}")
    for key, kind in (("benchmark", str), ("metric", str), ("binary", bool)):
        if not isinstance(header.get(key), kind):
            raise BaselineError(path, "line 1", f"key '{key}': expected {kind.__name__}, got {header.get(key)!r}")
    if not isinstance(header.get("n"), int) or isinstance(header.get("n"), bool) or header["n"] < 0:
        raise BaselineError(path, "line 1", f"key 'n': expected a count, got {header.get('n')!r}")
    if benchmark is not None and header["benchmark"] != benchmark:
        raise BaselineError(path, "line 1", f"key 'benchmark' is {header['benchmark']!r}, but this is the baseline file of "
                            f"{benchmark!r} (copied from another benchmark?): accept a new one with --jallm-update-baseline")
    if not provenance["produced_by"]:
        raise BaselineError(path, "line 2", "key 'produced_by' is empty: nothing records what produced this baseline, so "
                            "it cannot be matched with this run — accept a new one with --jallm-update-baseline")
    partial, reruns = _partial_of(header.get("partial"), path), _reruns_of(header.get("reruns"), path)
    items, preds = _items_of(rows, path)
    b = Baseline(benchmark=header["benchmark"], metric=header["metric"], score=header.get("score"),  # type: ignore[arg-type]
                 ooc_rate=header.get("ooc_rate"), n=header["n"], binary=header["binary"],
                 produced_by=provenance["produced_by"], items=items, predictions=preds, path=str(path),
                 partial=partial, reruns=reruns)
    problems = validate_baseline(b)
    if problems:
        raise BaselineError(path, problems[0][0], problems[0][1])
    return b


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _partial_of(value: Any, path: Path) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"limit"} or not _count(value["limit"]) or value["limit"] < 1:
        raise BaselineError(path, "line 1", f"key 'partial': expected {{\"limit\": N}} with N >= 1, got {value!r}")
    return value["limit"]


def _reruns_of(value: Any, path: Path) -> Reruns | None:
    if value is None:
        return None
    keys = ("runs", "items", "flips")
    if not isinstance(value, dict) or set(value) != set(keys) or not all(_count(value[k]) for k in keys) \
            or value["flips"] > value["items"]:
        raise BaselineError(path, "line 1", f"key 'reruns': expected {{\"runs\": R, \"items\": N, \"flips\": F}} "
                            f"with counts and F <= N, got {value!r}")
    return Reruns(value["runs"], value["items"], value["flips"])


def _records_line_by_line(text: str, path: Path) -> list[Any]:
    """The slow path: skips blank lines, names the first line that is not JSON."""
    records = []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise BaselineError(path, f"line {number}", f"not valid JSON ({e.msg})") from None
    return records


def _items_of(rows: list[Any], path: Path) -> tuple[dict[str, float], dict[str, str]]:
    """Item lines -> (id -> score, id -> prediction). Checked in bulk (C-level passes over
    the lists: 50,000 items in a few milliseconds); row by row only to name a bad line."""
    try:
        ids = [r["id"] for r in rows]
        scores = [r["score"] for r in rows]
        preds = [r.get("pred", "") for r in rows]
        ok = set(map(type, ids)) <= {str} and set(map(type, scores)) <= {float, int} and set(map(type, preds)) <= {str}
    except (KeyError, TypeError, AttributeError):
        ok = False
    if ok:
        items = dict(zip(ids, map(float, scores), strict=True))
        if len(items) == len(ids):
            return items, dict(zip(ids, preds, strict=True))
    seen: set[str] = set()
    for offset, row in enumerate(rows):
        where = f"line {offset + 3}"
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not _number(row.get("score")):
            raise BaselineError(path, where, "expected {\"id\": \"…\", \"score\": number, \"pred\": \"…\"}")
        if not isinstance(row.get("pred", ""), str):
            raise BaselineError(path, where, "key 'pred': expected the extracted answer as text")
        if row["id"] in seen:
            raise BaselineError(path, where, f"item id {row['id']!r} appears twice")
        seen.add(row["id"])
    raise BaselineError(path, "<file>", "malformed item lines")  # not reached: some row failed above


def validate_baseline(b: Baseline) -> list[tuple[str, str]]:
    """(where, problem) for each way the baseline contradicts itself; empty when it is consistent."""
    problems: list[tuple[str, str]] = []
    if not _number(b.score) or not math.isfinite(b.score) or not 0 <= b.score <= 100:
        problems.append(("line 1", f"key 'score': expected a number from 0 to 100, got {b.score!r}"))
    if b.ooc_rate is not None and (not _number(b.ooc_rate) or not math.isfinite(b.ooc_rate) or not 0 <= b.ooc_rate <= 100):
        problems.append(("line 1", f"key 'ooc_rate': expected a number from 0 to 100, got {b.ooc_rate!r}"))
    values = list(b.items.values())
    total = math.fsum(values)  # nan or inf when any item is
    in_range = not values or (math.isfinite(total) and min(values) >= 0 and max(values) <= 1)
    allowed = {0.0, 1.0} if b.binary else None
    if not in_range or (allowed is not None and not set(values) <= allowed):
        for number, (item_id, value) in enumerate(b.items.items(), 3):
            if not math.isfinite(value) or not 0 <= value <= 1:
                problems.append((f"line {number}", f"item {item_id!r}: score {value!r} is not a number from 0 to 1"))
                break
            if allowed is not None and value not in allowed:
                problems.append((f"line {number}", f"item {item_id!r}: score {value!r} but {b.metric} scores are 0 or 1"))
                break
    if b.items:
        if b.n != len(b.items):
            problems.append(("line 1", f"key 'n' is {b.n} but the file holds {len(b.items)} items"))
        elif not problems:
            mean = 100 * total / len(b.items)
            if abs(mean - b.score) > 0.01:
                problems.append(("line 1", f"key 'score' is {b.score:g} but its items average {mean:.4f}"))
    return problems


def atomic_write_baseline(path: Path, b: Baseline) -> bool:
    """Write one benchmark's baseline atomically; True when the file's content changed."""
    if not b.produced_by:  # reading refuses such a file: never write one
        raise BaselineError(path, "line 2", "key 'produced_by' is empty: a baseline must record what produced it "
                                            "(model revision, prompt template hash, data fingerprint, backend)")
    text = render_baseline(b)
    with _locked(path):
        try:
            if path.read_text(encoding="utf-8") == text:
                return False
        except (OSError, UnicodeDecodeError):
            pass
        atomic_write_text(path, text)
    return True


# --- writing ------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the file's directory (flock on the directory itself: no lock files to commit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


