"""The gate: what a baseline and the thresholds say about one benchmark's run.

`assess` compares a run with its accepted baseline (stale? paired?); `decide` turns that,
the thresholds and the family-corrected p-value into a verdict with its failures and warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from .baseline import Baseline, BaselineError, Limits
from .reporting.record import BenchmarkRecord
from .stats import PairedComparison, compare_paired

if TYPE_CHECKING:
    from .evaluation import BenchmarkResult

UNGATED_VERDICTS = ("no baseline", "stale", "unpaired")  # listed at the end; --jallm-strict fails them


@dataclass
class Assessment:
    """What a baseline says about this run, before any threshold or family correction."""

    baseline: Baseline | None = None
    invalid: str | None = None  # why the baseline file cannot be used
    stale: list[str] = field(default_factory=list)
    comparison: PairedComparison | None = None
    n_current: int = 0

    @property
    def paired_share(self) -> float | None:
        if self.comparison is None or not self.n_current:
            return None
        return 100 * self.comparison.n_paired / self.n_current

    def testable(self, min_paired: float) -> bool:
        """Whether the paired test's p-value counts (it enters the family correction)."""
        share = self.paired_share
        return self.comparison is not None and share is not None and share >= min_paired and self.comparison.n_paired > 0


@dataclass
class GateOutcome:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # reported, not failing (e.g. min_score on a smoke run)
    verdict: str = "pass"  # pass | FAIL | regressed | stale | unpaired | no baseline | improved | invalid baseline
    comparison: PairedComparison | None = None
    baseline_score: float | None = None
    p_adjusted: float | None = None
    other_failures: int = 0  # failures not from the paired test (they survive a family re-correction)

    @property
    def passed(self) -> bool:
        return not self.failures


def stale_reasons(baseline: Baseline, produced_by: Mapping[str, Any], metric: str | None = None) -> list[str]:
    """Why a baseline cannot be compared item by item with this run."""
    reasons = []
    if metric is not None and baseline.metric != metric:
        reasons.append(f"metric changed ({baseline.metric} -> {metric})")
    for key, label in (("prompt_hash", "prompt template"), ("data_fingerprint", "data"), ("scoring", "answer scoring"),
                       ("judge", "LLM judge")):
        old, new = baseline.produced_by.get(key), produced_by.get(key)
        if old is not None and new is not None and old != new:
            reasons.append(f"{label} changed ({key} {_changed(old, new)})")
    return reasons


def _changed(old: Any, new: Any) -> str:
    """``old -> new``; for two mappings (the judge's provenance) only the entries that differ."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        return "; ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys)
    return f"{old} -> {new}"


def assess(
    baseline: Baseline | BaselineError | None,
    *,
    metric: str | None,
    item_scores: Mapping[str, float] | None,
    binary: bool,
    produced_by: Mapping[str, Any],
) -> Assessment:
    if isinstance(baseline, BaselineError):
        return Assessment(invalid=str(baseline))
    out = Assessment(baseline=baseline, n_current=len(item_scores or {}))
    if baseline is None:
        return out
    out.stale = stale_reasons(baseline, produced_by, metric)
    if not out.stale and item_scores is not None:
        out.comparison = compare_paired(baseline.items, item_scores, binary=binary and baseline.binary)
    return out


def decide(
    a: Assessment,
    *,
    score: float,
    ooc_rate: float | None,
    limits: Limits,
    p_adjusted: float | None = None,
    family: str = "none",
    smoke: bool = False,
    enforce_min_score: bool = False,
    strict: bool = False,
    max_listed: int = 20,
) -> GateOutcome:
    """The verdict. `p_adjusted` is the family-corrected p-value (None: the raw one is used)."""
    out = GateOutcome(comparison=a.comparison)
    if limits.min_score is not None and score < limits.min_score:
        msg = f"score {score:.2f} is below min_score {limits.min_score:.2f}"
        if smoke and not enforce_min_score:
            out.notes.append(msg + " (not enforced on a --jallm-limit smoke run; --jallm-enforce-min-score enforces it)")
        else:
            out.failures.append(msg)
    if limits.max_ooc_rate is not None and ooc_rate is not None and ooc_rate > limits.max_ooc_rate:
        out.failures.append(f"out-of-choice rate {ooc_rate:.2f}% exceeds max_ooc_rate {limits.max_ooc_rate:.2f}%")
    out.other_failures = len(out.failures)

    def ungated(verdict: str, why: str) -> GateOutcome:
        out.verdict = "FAIL" if out.failures else verdict
        if strict and not out.failures:
            out.failures.append(f"{why} (--jallm-strict fails a benchmark that no baseline gates)")
            out.other_failures += 1
        else:
            out.warnings.append(why)
        return out

    if a.invalid is not None:
        out.failures.append(f"invalid baseline, not compared: {a.invalid} — fix the file or accept a new one with --jallm-update-baseline")
        out.other_failures += 1
        out.verdict = "invalid baseline"
        return out
    b = a.baseline
    if b is None:
        if limits.absolute:
            out.verdict = "FAIL" if out.failures else "pass"
            return out
        return ungated("no baseline", "no baseline and no min_score/max_ooc_rate: nothing gates this benchmark")
    if a.stale:
        return ungated("stale", "baseline is stale, not compared: " + "; ".join(a.stale)
                       + " — accept a new one with --jallm-update-baseline")
    cmp = a.comparison
    if cmp is not None:
        share = a.paired_share or 0.0
        if not a.testable(limits.min_paired):
            out.comparison = None  # too few pairs: its p-value and flips describe a different item set
            return ungated("unpaired", f"only {cmp.n_paired} of {a.n_current} current items ({share:.1f}%) pair with the "
                           f"baseline's {len(b.items)} items (min_paired {limits.min_paired:g}%): the baseline does not "
                           "describe these items — accept a new one with --jallm-update-baseline")
        out.baseline_score = cmp.baseline_mean * 100  # over the paired items: a smoke run compares like with like
        p = cmp.p_value if p_adjusted is None else p_adjusted
        out.p_adjusted = p_adjusted
        if cmp.drop_points > limits.max_drop and p < limits.alpha:
            listed = ", ".join(cmp.losses[:max_listed]) + (" …" if len(cmp.losses) > max_listed else "")
            p_text = f"{cmp.test} {p_phrase(cmp.p_value, p_adjusted, family)}"
            out.failures.append(
                f"regression vs baseline: {cmp.baseline_mean * 100:.2f} -> {cmp.current_mean * 100:.2f} "
                f"(-{cmp.drop_points:.2f} points > max_drop {limits.max_drop:.2f}, {p_text} "
                f"< alpha {limits.alpha}) on {cmp.n_paired} paired items; "
                f"{len(cmp.losses)} flipped worse: {listed}; {len(cmp.gains)} flipped better"
            )
            out.verdict = "regressed"
            return out
        if cmp.n_paired and -cmp.drop_points > limits.max_drop and _improved_p(cmp) < limits.alpha:
            out.verdict = "FAIL" if out.failures else "improved"
            return out
    else:
        out.baseline_score = b.score
        if score < b.score - limits.max_drop:
            # Corpus-level metric (no per-item scores): a plain tolerance check.
            out.failures.append(
                f"score {score:.2f} dropped more than max_drop {limits.max_drop:.2f} below baseline {b.score:.2f}"
            )
            out.verdict = "regressed"
            return out
    out.verdict = "FAIL" if out.failures else "pass"
    return out


def p_phrase(p: float, p_adjusted: float | None, family: str) -> str:
    """How a failure states the p-value it compared with alpha (merge rewrites it after re-correcting)."""
    return f"p={p:.2g}" + (f" ({family}-adjusted p={p_adjusted:.2g})" if p_adjusted is not None else "")


def evaluate_gate(
    *,
    score: float,
    ooc_rate: float | None,
    item_scores: Mapping[str, float] | None,
    binary: bool,
    produced_by: Mapping[str, Any],
    limits: Limits,
    baseline: Baseline | BaselineError | None,
    metric: str | None = None,
    **options: Any,
) -> GateOutcome:
    """assess + decide for one benchmark on its own (a family of one)."""
    a = assess(baseline, metric=metric, item_scores=item_scores, binary=binary, produced_by=produced_by)
    return decide(a, score=score, ooc_rate=ooc_rate, limits=limits, **options)


def _improved_p(cmp: PairedComparison) -> float:
    from .stats import mcnemar_one_sided

    if cmp.test == "mcnemar-exact":
        return mcnemar_one_sided(len(cmp.gains), len(cmp.losses))
    return 1.0  # improvements on continuous metrics are reported as plain deltas


def gate_record(result: BenchmarkResult, gate: GateOutcome, *, verdict: str, limits: Limits, family: str, testable: bool,
                mdd: float | None, flips: list[dict[str, Any]], written: str | None) -> BenchmarkRecord:
    """The record of one benchmark's run and the gate's verdict on it (what every report renders)."""
    cmp = gate.comparison
    return BenchmarkRecord(
        name=result.name, category=result.category, metric=result.metric, n=result.n, score=round(result.score, 4),
        ooc_rate=None if result.ooc_rate is None else round(result.ooc_rate, 4), in_average=result.in_average,
        baseline=gate.baseline_score, verdict=verdict, p_value=cmp.p_value if cmp else None, p_adjusted=gate.p_adjusted,
        flipped_worse=len(cmp.losses) if cmp else None, flipped_better=len(cmp.gains) if cmp else None,
        mdd=None if mdd is None else round(mdd, 2), underpowered=mdd is not None and limits.max_drop < mdd,
        extra={
            "scores": result.scores, "produced_by": result.produced_by,
            "gate": {"family": family, "testable": testable,
                     "drop_points": cmp.drop_points if cmp else None, "max_drop": limits.max_drop,
                     "alpha": limits.alpha, "other_failures": gate.other_failures,
                     "paired": cmp.n_paired if cmp else None, "notes": gate.notes + gate.warnings},
            **({"flips": flips} if flips else {}),
            **({"judged": result.judged} if result.judged else {}),
            **({"baseline_written": written} if written else {}),
        },
        run=result.run or None,
    )
