"""Paired regression tests on per-item scores of the same items.

Binary per-item scores (exact match, code pass): exact one-sided McNemar test.
Only the discordant items carry information about a change; under "no change"
a baseline-right/now-wrong flip is as likely as the reverse, so the number of
losses among the flips is Binomial(flips, 1/2). Exact, because flip counts on
small benchmarks are far too small for the chi-square approximation.

Continuous per-item scores (char_f1, BLEU, Gestalt): one-sided paired
bootstrap of the mean difference, resampling items with a fixed seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping


def binomial_sf(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    total = sum(math.comb(n, i) for i in range(k, n + 1))
    return total / (2**n)


def mcnemar_one_sided(losses: int, gains: int) -> float:
    """p-value that the current run is worse: losses = base right & now wrong."""
    return binomial_sf(losses, losses + gains)


def paired_bootstrap_one_sided(diffs: list[float], resamples: int = 2000, seed: int = 0) -> float:
    """p-value that mean(current - baseline) < 0: share of resampled means >= 0."""
    import numpy as np

    n = len(diffs)
    if n == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    values = np.asarray(diffs, dtype=float)
    at_least_zero = 0
    chunk = max(1, 2_000_000 // n)  # bound memory for large benchmarks
    done = 0
    while done < resamples:
        k = min(chunk, resamples - done)
        means = values[rng.integers(0, n, size=(k, n))].mean(axis=1)
        at_least_zero += int((means >= 0).sum())
        done += k
    return (at_least_zero + 1) / (resamples + 1)


@dataclass
class PairedComparison:
    n_paired: int
    baseline_mean: float  # 0..1 over paired items
    current_mean: float
    p_value: float
    test: str
    losses: list[str] = field(default_factory=list)  # item ids that got worse
    gains: list[str] = field(default_factory=list)

    @property
    def drop_points(self) -> float:
        return (self.baseline_mean - self.current_mean) * 100


def compare_paired(
    baseline: Mapping[str, float], current: Mapping[str, float], *, binary: bool, seed: int = 0
) -> PairedComparison:
    ids = [i for i in baseline if i in current]
    if not ids:
        return PairedComparison(0, 0.0, 0.0, 1.0, "none")
    base = [float(baseline[i]) for i in ids]
    cur = [float(current[i]) for i in ids]
    losses = [i for i, b, c in zip(ids, base, cur) if c < b]
    gains = [i for i, b, c in zip(ids, base, cur) if c > b]
    if binary:
        p = mcnemar_one_sided(len(losses), len(gains))
        test = "mcnemar-exact"
    else:
        p = paired_bootstrap_one_sided([c - b for b, c in zip(base, cur)], seed=seed)
        test = "paired-bootstrap"
    return PairedComparison(
        n_paired=len(ids),
        baseline_mean=sum(base) / len(ids),
        current_mean=sum(cur) / len(ids),
        p_value=p,
        test=test,
        losses=losses,
        gains=gains,
    )


# --- many benchmarks, one family --------------------------------------------------

FAMILY_METHODS = ("holm", "bonferroni", "none")


def holm_adjust(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values: reject H_i at family-wise level α iff adjusted p_i < α.

    Valid under any dependence between the tests; uniformly more powerful than Bonferroni."""
    ordered = sorted(p_values.items(), key=lambda kv: (kv[1], kv[0]))
    m = len(ordered)
    out: dict[str, float] = {}
    running = 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * p))
        out[name] = running
    return out


def bonferroni_adjust(p_values: Mapping[str, float], family_size: int) -> dict[str, float]:
    """p * m, for a process that sees only part of a family of m tests (an xdist worker)."""
    m = max(family_size, len(p_values), 1)
    return {name: min(1.0, p * m) for name, p in p_values.items()}


def adjust(p_values: Mapping[str, float], method: str, family_size: int | None = None) -> dict[str, float]:
    if method == "none":
        return dict(p_values)
    if method == "bonferroni" or (family_size is not None and family_size > len(p_values)):
        # Holm needs every p-value of the family; with only some of them, Bonferroni is the valid bound.
        return bonferroni_adjust(p_values, family_size or len(p_values))
    if method == "holm":
        return holm_adjust(p_values)
    raise ValueError(f"unknown family correction {method!r}; expected one of {', '.join(FAMILY_METHODS)}")


def _normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def min_detectable_drop(n: int, flip_rate: float, alpha: float, power: float = 0.8) -> float | None:
    """Smallest true drop (points, 0-100) the one-sided McNemar test flags with the given power.

    Normal approximation: harmless churn flips `flip_rate` of the n items (as many each way);
    a true drop d adds d*n losses. Losses - gains then has mean d*n and variance about the
    number of flips F = (flip_rate + d) * n, and the test rejects when it exceeds z_α·√F.
    Solved for d by bisection. None when n is 0."""
    if n <= 0:
        return None
    z_a, z_b = _normal_quantile(1 - alpha), _normal_quantile(power)

    def detects(d: float) -> bool:
        flips = max((flip_rate + d) * n, 1e-9)
        # Exact floor: with no churn at all, k straight losses give p = 2^-k.
        if d * n < math.log2(1 / alpha):
            return False
        return d * n - z_a * math.sqrt(flips) >= z_b * math.sqrt(flips)

    lo, hi = 0.0, 1.0
    if not detects(hi):
        return 100.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if detects(mid):
            hi = mid
        else:
            lo = mid
    return hi * 100
