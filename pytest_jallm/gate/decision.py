"""The decision: from what the gate knows about one benchmark (`GateDetails`) to its verdict.

`decide` is a pure function of the details, so the benchmark test and `merge` (which re-applies
the family correction over shards) reach a verdict, and word it, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..baseline import Baseline
from ..display import shorten
from ..stats import min_detectable_drop
from .record import GateDetails, PairedTest
from .verdict import Verdict

MAX_LISTED = 20  # item ids named in a regression's one-line summary

# Provenance that makes a baseline stale when it changed: (produced_by key, what it is). A key
# missing from the run or from an older baseline is not compared, except those in REQUIRED.
STALE_KEYS = (("prompt_hash", "prompt template"), ("data_fingerprint", "data"), ("scoring", "answer scoring"),
              ("judge", "LLM judge"))
REQUIRED = ("prompt_hash", "data_fingerprint")  # a baseline that does not record them cannot be matched


def stale_reasons(baseline: Baseline, produced_by: Mapping[str, Any], metric: str | None = None) -> list[str]:
    """Why a baseline cannot be compared item by item with this run (empty: it can)."""
    reasons = []
    if metric is not None and baseline.metric != metric:
        reasons.append(f"metric changed ({baseline.metric} -> {metric})")
    for key, label in STALE_KEYS:
        old, new = baseline.produced_by.get(key), produced_by.get(key)
        if old is None and new is not None and key in REQUIRED:
            reasons.append(f"the baseline records no {key}, so nothing shows that its {label} matches this run's")
        elif old is not None and new is not None and old != new:
            reasons.append(f"{label} changed ({key} {_changed(old, new)})")
    return reasons


def _changed(old: Any, new: Any) -> str:
    """``old -> new``; for two mappings (the judge's provenance) only the entries that differ."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        return "; ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys)
    return f"{old} -> {new}"


@dataclass
class Decision:
    verdict: Verdict
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # reported, not failing (e.g. min_score on a smoke run)
    baseline_score: float | None = None  # what the run is compared with, 0-100 (over the paired items)
    mdd: float | None = None  # minimum detectable drop at 80% power, points
    underpowered: bool = False  # the corrected test alone cannot see a drop of max_drop 4 times in 5

    @property
    def passed(self) -> bool:
        return not self.failures


def decide(d: GateDetails) -> Decision:
    """The verdict, its failures (the test's failure text), warnings and notes."""
    out = Decision(Verdict.PASS, failures=list(d.carried_failures))
    if d.n == 0:
        errors = f" (all {d.backend_errors} requests failed in the backend)" if d.backend_errors else ""
        out.failures.append(f"no item was scored{errors}: a benchmark with no items proves nothing"
                            + (" — no baseline was written" if d.accepted is not None else ""))
        out.verdict = Verdict.NO_ITEMS
        return out
    lim = d.limits
    if lim.min_score is not None and d.score < lim.min_score:
        msg = f"score {d.score:.2f} is below min_score {lim.min_score:.2f}"
        if d.smoke and not d.enforce_min_score:
            out.notes.append(msg + " (not enforced on a --jallm-limit smoke run; --jallm-enforce-min-score enforces it)")
        else:
            out.failures.append(msg)
    if lim.max_ooc_rate is not None and d.ooc_rate is not None and d.ooc_rate > lim.max_ooc_rate:
        out.failures.append(f"out-of-choice rate {d.ooc_rate:.2f}% exceeds max_ooc_rate {lim.max_ooc_rate:.2f}%")
    if lim.max_oof_rate is not None and d.oof_rate is not None and d.oof_rate > lim.max_oof_rate:
        out.failures.append(f"out-of-format rate {d.oof_rate:.2f}% (no answer could be extracted) exceeds max_oof_rate "
                            f"{lim.max_oof_rate:.2f}%")
    if d.accepted is not None:
        return _accepted(d, out)

    def ungated(verdict: Verdict, why: str) -> Decision:
        out.verdict = Verdict.FAIL if out.failures else verdict
        if d.strict and not out.failures:
            out.failures.append(f"{why} (--jallm-strict fails a benchmark that no baseline gates)")
        else:
            out.warnings.append(why)
        return out

    b = d.baseline
    if b is not None and b.invalid is not None:
        out.failures.append(f"invalid baseline, not compared: {b.invalid} — fix the file or accept a new one with "
                            "--jallm-update-baseline")
        out.verdict = Verdict.INVALID_BASELINE
        return out
    if b is None:
        if lim.absolute:
            out.verdict = Verdict.FAIL if out.failures else Verdict.PASS
            return out
        return ungated(Verdict.NO_BASELINE, "no baseline and no min_score/max_ooc_rate/max_oof_rate: nothing gates this benchmark")
    if b.stale:
        return ungated(Verdict.STALE, "baseline is stale, not compared: " + "; ".join(b.stale)
                       + " — accept a new one with --jallm-update-baseline")
    partial = partial_phrase(b.partial_limit)
    cmp = d.paired
    if cmp is not None:
        if not d.testable:
            share = d.paired_share or 0.0
            return ungated(Verdict.UNPAIRED, f"only {cmp.n_paired} of {d.n} current items ({share:.1f}%) pair with the "
                           f"baseline's {b.items} items{partial} (min_paired {lim.min_paired:g}%): the baseline does not "
                           "describe these items — accept a new one with --jallm-update-baseline")
        if partial:
            out.warnings.append(partial_note(b.partial_limit))  # type: ignore[arg-type]
        out.baseline_score = cmp.baseline_mean * 100  # over the paired items: a smoke run compares like with like
        out.mdd = detectable_drop(d)
        test_alone = detectable_drop(d, with_max_drop=False)
        out.underpowered = test_alone is not None and lim.max_drop < test_alone
        fam = d.family
        p = cmp.p_value if fam.p_adjusted is None else fam.p_adjusted
        if cmp.drop_points > lim.max_drop and p < lim.alpha:
            out.failures.append(regression_text(d, cmp) + partial)
            if d.flips:
                out.failures[-1] += "\n" + render_flips(d)
            out.verdict = Verdict.REGRESSED
            return out
        p_better = cmp.p_better if fam.p_better_adjusted is None else fam.p_better_adjusted
        if -cmp.drop_points > lim.max_drop and p_better < lim.alpha:
            out.verdict = Verdict.FAIL if out.failures else Verdict.IMPROVED
            return out
    else:
        out.baseline_score = b.score
        if b.score is not None and d.score < b.score - lim.max_drop:
            # Corpus-level metric (no per-item scores): a plain tolerance check.
            out.failures.append(f"score {d.score:.2f} dropped more than max_drop {lim.max_drop:.2f} below baseline "
                                f"{b.score:.2f}{partial}")
            out.verdict = Verdict.REGRESSED
            return out
        if partial:
            out.warnings.append(partial_note(b.partial_limit))  # type: ignore[arg-type]
    out.verdict = Verdict.FAIL if out.failures else Verdict.PASS
    return out


def _accepted(d: GateDetails, out: Decision) -> Decision:
    """--jallm-update-baseline: the run is the new baseline; absolute thresholds still apply."""
    assert d.accepted is not None
    if d.accepted.error is not None:
        out.failures.append(f"baseline NOT written to {d.accepted.file} ({d.accepted.error}); the file is unchanged")
        out.verdict = Verdict.NOT_WRITTEN
    else:
        out.verdict = Verdict.FAIL if out.failures else Verdict.ACCEPTED
    return out


def detectable_drop(d: GateDetails, with_max_drop: bool = True) -> float | None:
    """MDD@80% of the gate on a binary paired test at the family-corrected level, from the harmless
    churn; `with_max_drop=False`: what the corrected test alone detects (max_drop 0)."""
    cmp = d.paired
    if cmp is None or cmp.test != "mcnemar-exact" or not cmp.n_paired or d.churn is None:
        return None
    return min_detectable_drop(cmp.n_paired, d.churn.rate, d.limits.alpha / d.family.size,
                               d.limits.max_drop if with_max_drop else 0.0)


def partial_note(limit: int) -> str:
    return f"partial baseline: accepted from a --jallm-limit {limit} run, it holds those {limit} items only"


def partial_phrase(limit: int | None) -> str:
    return "" if limit is None else f" ({partial_note(limit)})"


FAMILY_LABELS = {"holm": "Holm", "bonferroni": "Bonferroni"}


def p_phrase(p: float, d: GateDetails) -> str:
    """The p-value compared with alpha, saying which correction made it (as applied, not as asked)."""
    fam = d.family
    if fam.p_adjusted is None or fam.method == "none":
        return f"p={p:.2g}"
    return f"p={p:.2g} ({FAMILY_LABELS[fam.method]}-adjusted over {fam.size} paired tests: p={fam.p_adjusted:.2g})"


def regression_text(d: GateDetails, cmp: PairedTest) -> str:
    ids = [f.id for f in d.flips[:MAX_LISTED]]
    listed = ", ".join(ids) + (" …" if cmp.losses > len(ids) else "")
    return (f"regression vs baseline: {cmp.baseline_mean * 100:.2f} -> {cmp.current_mean * 100:.2f} "
            f"(-{cmp.drop_points:.2f} points > max_drop {d.limits.max_drop:.2f}, {cmp.test} {p_phrase(cmp.p_value, d)} "
            f"< alpha {d.limits.alpha}) on {cmp.n_paired} paired items; "
            f"{cmp.losses} flipped worse: {listed}; {cmp.gains} flipped better")


def render_flips(d: GateDetails) -> str:
    shown = d.flips[: max(0, d.diff_items)]
    head = f"    first {len(shown)} of {len(d.flips)} flipped items (id | input | gold | baseline answer -> answer now):"
    lines = [head] + [f"    {f.id} | {shorten(f.input, 80)} | gold {f.gold!r} | {f.baseline!r} -> {f.now!r}"
                      + (f" | {f.why}" if f.why else "") for f in shown]
    if len(d.flips) > len(shown):
        lines.append(f"    … {len(d.flips) - len(shown)} more (--jallm-diff-items K shows more; the HTML report lists all)")
    return "\n".join(lines)


def failure_text(header: str, failures: list[str]) -> str:
    """The benchmark test's failure message (and the record's `message`)."""
    return header + "\n  - " + "\n  - ".join(failures)
