"""Thresholds and baselines under `thresholds/`: one YAML file per model (or family).

    defaults: {max_drop: 2.0, alpha: 0.05}
    benchmarks:
      jcommonsenseqa:
        min_score: 60        # 0-100
        max_ooc_rate: 5      # percent of outputs outside the label set
        max_drop: 2.0        # points a paired-significant drop may not exceed
        baseline: {score, ooc_rate, n, metric, binary, produced_by: {...}, items: {id: score}}

Only `--jallm-update-baseline` writes the `baseline` blocks, atomically and
under a lock; the thresholds a person wrote are kept as they are.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .stats import PairedComparison, compare_paired

DEFAULT_MAX_DROP = 2.0
DEFAULT_ALPHA = 0.05


class ThresholdError(Exception):
    def __init__(self, path: Path | str, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: key '{key}': {problem}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaselineRecord(_Strict):
    score: float = Field(..., ge=0, le=100)
    ooc_rate: float = Field(..., ge=0, le=100)
    n: int = Field(..., ge=0)
    metric: str
    binary: bool = True
    produced_by: dict[str, Any] = Field(default_factory=dict)
    items: dict[str, float] = Field(default_factory=dict)


class BenchmarkEntry(_Strict):
    min_score: Optional[float] = Field(None, ge=0, le=100)
    max_ooc_rate: Optional[float] = Field(None, ge=0, le=100)
    max_drop: Optional[float] = Field(None, ge=0, le=100)
    alpha: Optional[float] = Field(None, gt=0, lt=1)
    max_spread: Optional[float] = Field(None, ge=0, le=100)  # prompt-format variants: max - min score
    min_variant_score: Optional[float] = Field(None, ge=0, le=100)  # every drawn format must score this
    baseline: Optional[BaselineRecord] = None


class Defaults(_Strict):
    max_drop: float = Field(DEFAULT_MAX_DROP, ge=0, le=100)
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=1)
    min_score: Optional[float] = Field(None, ge=0, le=100)
    max_ooc_rate: Optional[float] = Field(None, ge=0, le=100)
    max_spread: Optional[float] = Field(None, ge=0, le=100)  # prompt-format variants: max - min score
    min_variant_score: Optional[float] = Field(None, ge=0, le=100)  # every drawn format must score this


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


def load_threshold_file(path: Path) -> ThresholdFileModel:
    if not path.exists():
        return ThresholdFileModel()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ThresholdError(path, "<yaml>", f"malformed YAML at {where}") from None
    except UnicodeDecodeError as e:
        raise ThresholdError(path, "<file>", f"not UTF-8 text: {e.reason}") from None
    if data is None:
        return ThresholdFileModel()
    if not isinstance(data, dict):
        raise ThresholdError(path, "<top level>", f"expected a mapping, got {type(data).__name__}")
    try:
        return ThresholdFileModel.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
        raise ThresholdError(path, key, msg) from None


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
        max_drop=pick("max_drop", DEFAULT_MAX_DROP),
        alpha=pick("alpha", DEFAULT_ALPHA),
        max_spread=pick("max_spread", None),
        min_variant_score=pick("min_variant_score", None),
    )


# --- the gate ---------------------------------------------------------------


@dataclass
class GateOutcome:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verdict: str = "pass"  # pass | FAIL | regressed | stale | no baseline | improved
    comparison: PairedComparison | None = None
    baseline_score: float | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def stale_reasons(baseline: BaselineRecord, produced_by: Mapping[str, Any]) -> list[str]:
    """Why a baseline cannot be compared item by item with this run."""
    reasons = []
    for key, label in (("prompt_hash", "prompt template"), ("data_fingerprint", "data"), ("scoring", "answer scoring")):
        old, new = baseline.produced_by.get(key), produced_by.get(key)
        if old is not None and new is not None and old != new:
            reasons.append(f"{label} changed ({key} {old} -> {new})")
    return reasons


def evaluate_gate(
    *,
    score: float,
    ooc_rate: float | None,
    item_scores: Mapping[str, float] | None,
    binary: bool,
    produced_by: Mapping[str, Any],
    limits: Limits,
    baseline: BaselineRecord | None,
    max_listed: int = 20,
) -> GateOutcome:
    """Scores are 0-100. Fails on min_score, max_ooc_rate, or a significant paired drop."""
    out = GateOutcome()
    if limits.min_score is not None and score < limits.min_score:
        out.failures.append(f"score {score:.2f} is below min_score {limits.min_score:.2f}")
    if limits.max_ooc_rate is not None and ooc_rate is not None and ooc_rate > limits.max_ooc_rate:
        out.failures.append(f"out-of-choice rate {ooc_rate:.2f}% exceeds max_ooc_rate {limits.max_ooc_rate:.2f}%")
    if baseline is None:
        out.verdict = "FAIL" if out.failures else "no baseline"
        return out
    out.baseline_score = baseline.score
    stale = stale_reasons(baseline, produced_by)
    if stale:
        out.verdict = "FAIL" if out.failures else "stale"
        out.warnings.append(
            "baseline is stale, not compared: " + "; ".join(stale) + " — accept a new one with --jallm-update-baseline"
        )
        return out
    if item_scores is not None and baseline.items:
        cmp = compare_paired(baseline.items, item_scores, binary=binary and baseline.binary)
        out.comparison = cmp
        if cmp.n_paired and cmp.drop_points > limits.max_drop and cmp.p_value < limits.alpha:
            listed = ", ".join(cmp.losses[:max_listed]) + (" …" if len(cmp.losses) > max_listed else "")
            out.failures.append(
                f"regression vs baseline: {cmp.baseline_mean * 100:.2f} -> {cmp.current_mean * 100:.2f} "
                f"(-{cmp.drop_points:.2f} points > max_drop {limits.max_drop:.2f}, {cmp.test} p={cmp.p_value:.2g} "
                f"< alpha {limits.alpha}) on {cmp.n_paired} paired items; "
                f"{len(cmp.losses)} flipped worse: {listed}; {len(cmp.gains)} flipped better"
            )
            out.verdict = "regressed"
            return out
        if cmp.n_paired and -cmp.drop_points > limits.max_drop and _improved_p(cmp) < limits.alpha:
            out.verdict = "FAIL" if out.failures else "improved"
            return out
    elif score < baseline.score - limits.max_drop:
        # Corpus-level metric (no per-item scores): a plain tolerance check.
        out.failures.append(
            f"score {score:.2f} dropped more than max_drop {limits.max_drop:.2f} below baseline {baseline.score:.2f}"
        )
        out.verdict = "regressed"
        return out
    out.verdict = "FAIL" if out.failures else "pass"
    return out


def _improved_p(cmp: PairedComparison) -> float:
    from .stats import mcnemar_one_sided

    if cmp.test == "mcnemar-exact":
        return mcnemar_one_sided(len(cmp.gains), len(cmp.losses))
    return 1.0  # improvements on continuous metrics are reported as plain deltas


# --- writing ------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _file_mode(path: Path) -> int:
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


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target.

    Text that UTF-8 cannot hold (lone surrogates) is written backslash-escaped, not lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_baselines(path: Path, records: Mapping[str, BaselineRecord], model: str | None = None) -> None:
    """Replace the baseline of each named benchmark; keep everything else in the file."""
    with _locked(path):
        current = load_threshold_file(path)
        if model and not current.model:
            current.model = model
        for name, record in records.items():
            entry = current.benchmarks.get(name) or BenchmarkEntry()
            entry.baseline = record
            current.benchmarks[name] = entry
        data = current.model_dump(exclude_none=True)
        header = (
            "# pytest-jallm thresholds and baselines.\n"
            "# Edit min_score / max_ooc_rate / max_drop by hand; `baseline` blocks are written only by\n"
            f"# `pytest --jallm-update-baseline` (last: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}).\n"
        )
        body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120)
        atomic_write_text(path, header + body)
