"""Paired regression tests on per-item scores of the same items.

Binary per-item scores (exact match, code pass): exact one-sided McNemar test.
Only the discordant items carry information about a change; under "no change"
a baseline-right/now-wrong flip is as likely as the reverse, so the number of
losses among the flips is Binomial(flips, 1/2). Exact, because flip counts on
small benchmarks are far too small for the chi-square approximation.

Continuous per-item scores (char_f1, BLEU, Gestalt): the exact one-sided sign-flip
test of the summed differences (`sign_flip_test`), the same null as McNemar's (each
item's two scores exchangeable) with no distributional assumption and, unlike a
bootstrap, no floor on the p-value.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence


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


SIGN_FLIP_GRID = 100  # continuous differences are compared in hundredths (char_f1's own resolution)


def sign_flip_test(diffs: Sequence[float], grid: int = SIGN_FLIP_GRID) -> tuple[float, float]:
    """Exact one-sided sign-flip (randomisation) test of paired differences (current - baseline).

    Under "no change" each item's two scores are exchangeable, so every difference is as likely
    to have either sign: the observed sum is one of 2^k equally likely sign patterns of the k
    non-zero differences. The p-value counts the patterns at least as extreme, exactly (not by
    resampling, so no floor: 60 items that all collapse give p = 2^-60). Differences are taken
    in 1/`grid` steps (char_f1 is already whole percent); the test is exact for the rounded
    differences. On 0/1 differences it is the exact McNemar test. Returns (p that the current
    run is worse, p that it is better)."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    weights = np.rint(np.abs(d) * grid).astype(np.int64)
    changed = weights > 0
    weights, better = weights[changed], d[changed] > 0
    if weights.size == 0:
        return 1.0, 1.0
    pmf = _subset_sum_pmf(weights)
    gained = int(weights[better].sum())  # the observed sum is 2 * gained - total
    observed, spread = 2 * gained - int(weights.sum()), float((weights.astype(float) ** 2).sum())
    return _tail(pmf[: gained + 1].sum(), -observed, spread), _tail(pmf[gained:].sum(), observed, spread)


@functools.lru_cache(maxsize=4)
def _cos_tables(n: int):
    """cos(pi m / n) for m in [0, 2n) (its period in m) and the log of its magnitude."""
    import numpy as np

    cos_table = np.cos(np.pi * np.arange(2 * n) / n)
    with np.errstate(divide="ignore"):
        return cos_table, np.log(np.abs(cos_table))


FFT_RESOLUTION = 1e-9  # below this a tail sum is rounding noise


def _tail(summed: float, excess: float, spread: float) -> float:
    """A tail probability from the FFT, or where it is lost in rounding noise, Hoeffding's bound
    exp(-t^2 / (2 * sum w^2)), which never understates it (the reported p stays valid)."""
    if summed >= FFT_RESOLUTION:
        return float(min(1.0, summed))
    return float(min(FFT_RESOLUTION, math.exp(-max(excess, 0.0) ** 2 / (2 * spread))))


def _subset_sum_pmf(weights):
    """Distribution of the total weight of a uniformly random subset of `weights` (positive integers).

    Its generating function is the product of (1 + z^w) / 2; evaluated at N roots of unity
    (N > total, so nothing aliases) one FFT gives every probability. Equal weights are grouped:
    (1 + e^{it})/2 = e^{it/2} cos(t/2), so each distinct weight costs one pass over N."""
    import numpy as np

    total = int(weights.sum())
    n = 1 << total.bit_length()  # > total
    values, counts = np.unique(weights, return_counts=True)
    j = np.arange(n, dtype=np.int64)
    cos_table, log_table = _cos_tables(n)
    log_mag = np.zeros(n)
    negative = np.zeros(n, dtype=bool)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        idx = (value * j) % (2 * n)
        log_mag += count * log_table[idx]
        if count % 2:
            negative ^= cos_table[idx] < 0
    phase = np.pi * ((total * j) % (2 * n)) / n
    g = np.exp(log_mag) * np.where(negative, -1.0, 1.0) * np.exp(1j * phase)
    return np.fft.fft(g).real[: total + 1] / n


@dataclass
class PairedComparison:
    n_paired: int
    baseline_mean: float  # 0..1 over paired items
    current_mean: float
    p_value: float  # one-sided: the current run is worse
    test: str
    p_better: float = 1.0  # one-sided: the current run is better
    losses: list[str] = field(default_factory=list)  # item ids that got worse
    gains: list[str] = field(default_factory=list)

    @property
    def drop_points(self) -> float:
        return (self.baseline_mean - self.current_mean) * 100


def compare_paired(baseline: Mapping[str, float], current: Mapping[str, float], *, binary: bool) -> PairedComparison:
    ids = [i for i in baseline if i in current]
    if not ids:
        return PairedComparison(0, 0.0, 0.0, 1.0, "none")
    base = [float(baseline[i]) for i in ids]
    cur = [float(current[i]) for i in ids]
    losses = [i for i, b, c in zip(ids, base, cur, strict=True) if c < b]
    gains = [i for i, b, c in zip(ids, base, cur, strict=True) if c > b]
    if binary:
        p = mcnemar_one_sided(len(losses), len(gains))
        p_better = mcnemar_one_sided(len(gains), len(losses))
        test = "mcnemar-exact"
    else:
        p, p_better = sign_flip_test([c - b for b, c in zip(base, cur, strict=True)])
        test = "sign-flip-exact"
    return PairedComparison(
        n_paired=len(ids),
        baseline_mean=sum(base) / len(ids),
        current_mean=sum(cur) / len(ids),
        p_value=p,
        p_better=p_better,
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


def min_detectable_drop(n: int, churn: float, alpha: float, max_drop: float, power: float = 0.8) -> float | None:
    """Smallest true drop (points, 0-100) that the gate flags with the given power, binary metrics.

    The gate flags a drop when the observed drop exceeds `max_drop` points AND the one-sided
    McNemar test is significant at `alpha` (already divided by the family size). `churn` is the
    share of items that flip harmlessly (as many each way), so NOT the observed flip rate, which
    contains the drop itself. With d the true drop as a fraction, each item's difference has
    mean -d and variance c + d - d^2; the smallest d must satisfy all three (normal approximation,
    each solved for its smallest d, the largest taken):
      (i)   d*sqrt(n) >= z(1-alpha)*sqrt(c+d) + z(power)*sqrt(c+d-d^2)   the test is significant
      (ii)  d >= max_drop/100 + z(power)*sqrt((c+d-d^2)/n)                the drop exceeds max_drop
      (iii) d*n >= log2(1/alpha)                                          k straight losses give p = 2^-k
    Checked against exact summation by perf/mdd_check.py (README). None when n is 0."""
    if n <= 0:
        return None
    c = max(0.0, churn)
    z_a, z_b = _normal_quantile(1 - alpha), _normal_quantile(power)

    def significant(d: float) -> bool:
        return d * math.sqrt(n) >= z_a * math.sqrt(c + d) + z_b * math.sqrt(max(c + d - d * d, 0.0))

    def beyond_max_drop(d: float) -> bool:
        return d >= max_drop / 100 + z_b * math.sqrt(max(c + d - d * d, 0.0) / n)

    needed = [math.log2(1 / alpha) / n]
    for holds in (significant, beyond_max_drop):
        found = _smallest(holds)
        if found is None:
            return 100.0  # not even a 100-point drop is flagged 4 times in 5
        needed.append(found)
    return min(100.0, 100 * max(needed))


def _smallest(holds, steps: int = 400) -> float | None:
    """Smallest d in (0, 1] where `holds` turns true (scanned, then bisected); None if never."""
    prev = 0.0
    for i in range(1, steps + 1):
        d = i / steps
        if holds(d):
            lo, hi = prev, d
            for _ in range(50):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if holds(mid) else (mid, hi)
            return hi
        prev = d
    return None
