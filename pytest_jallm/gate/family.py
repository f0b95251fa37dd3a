"""Many benchmarks, one family: the family-wise correction of the paired tests, in one place.

One process sees every p-value of the run and applies the method asked for (Holm by default).
An xdist worker sees only its own benchmarks: it applies Bonferroni over every selected benchmark
(a valid, slightly stricter bound) and says so. `merge` applies the method asked for again over
every shard's testable benchmarks, then decides each again with `decide`, as one unsharded run
would have.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..stats import FAMILY_METHODS, adjust
from .build import apply_decision
from .record import BenchmarkRecord, FamilyCorrection, FamilyMethod

__all__ = ["FAMILY_METHODS", "correct", "refamily"]


def correct(worse: Mapping[str, float], better: Mapping[str, float], requested: FamilyMethod,
            partial_view: int | None = None) -> dict[str, FamilyCorrection]:
    """Each test's correction. `worse`/`better`: the one-sided p-values (of the same tests).
    `partial_view`: the size of the whole family when only some of its p-values are seen here."""
    if requested == "none":
        return {name: FamilyCorrection(requested="none", method="none", size=1) for name in worse}
    size = max(partial_view or 0, len(worse), 1)
    method: FamilyMethod = "bonferroni" if partial_view is not None and size > len(worse) else requested
    if size == 1:
        method = requested  # a family of one: every method gives the raw p
    adj_worse = adjust(worse, method, size)
    adj_better = adjust(better, method, size)
    return {name: FamilyCorrection(requested=requested, method=method, size=size, p_adjusted=adj_worse[name],
                                   p_better_adjusted=adj_better[name]) for name in worse}


def refamily(rows: Sequence[BenchmarkRecord]) -> list[BenchmarkRecord]:
    """Re-apply the correction over all merged rows and decide each testable row again."""
    testable = {r.name: r.gate for r in rows if r.gate is not None and r.gate.testable and r.gate.paired is not None}
    requested = {g.family.requested for g in testable.values()}
    if not testable or len(requested) != 1:
        return list(rows)
    method = requested.pop()
    corrections = correct({n: g.paired.p_value for n, g in testable.items()},  # type: ignore[union-attr]
                          {n: g.paired.p_better for n, g in testable.items()}, method)  # type: ignore[union-attr]
    out = []
    for r in rows:
        if r.name not in corrections:
            out.append(r)
            continue
        details = testable[r.name].model_copy(update={"family": corrections[r.name]})  # type: ignore[union-attr]
        out.append(apply_decision(r, details))
    return out
