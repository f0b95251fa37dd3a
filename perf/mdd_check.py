"""The minimum detectable drop (MDD@80%) the gate prints, checked against exact summation (issue 23).

    python perf/mdd_check.py [--alpha 0.05] [--family 40] [--max-drop 2]

For each benchmark size n and harmless churn c, the *true* MDD is the smallest true drop d that
the gate as configured flags with probability >= 0.8, computed exactly: each item independently
loses (right -> wrong) with probability c/2 + d and gains with probability c/2, so the losses L are
Binomial(n, c/2 + d) and the gains given L are Binomial(n - L, (c/2) / (1 - c/2 - d)); the gate
flags when 100 (L - G) / n > max_drop and the exact one-sided McNemar p (Binomial(L + G, 1/2)
tail) is below alpha / family. The power is summed over every (L, G) with probability above
1e-13, and d found by bisection. The printed MDD is `stats.min_detectable_drop`, given the churn
as the gate estimates it (2 x gains / n in expectation, c).

Also prints the issue's case: the MDD from the *observed* flip rate (the old formula, which
contains the drop) against the churn-based one, at 1,000 items and 2% churn.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_jallm.stats import _normal_quantile, min_detectable_drop  # noqa: E402

SIZES = (300, 1000, 2500)
CHURNS = (0.02, 0.05, 0.10)
TOLERANCE = 0.3  # points


def power(n: int, churn: float, drop: float, alpha: float, max_drop: float) -> float:
    """P(the gate flags) for a true drop `drop` (fraction), exactly (up to 1e-13 of mass)."""
    p_loss, p_gain = churn / 2 + drop, churn / 2
    losses = np.arange(n + 1)
    pl = binom.pmf(losses, n, p_loss)
    total = 0.0
    for lost in losses[pl > 1e-13]:
        gains = np.arange(n - lost + 1)
        pg = binom.pmf(gains, n - lost, p_gain / (1 - p_loss))
        keep = pg > 1e-13
        g = gains[keep]
        flagged = (100 * (lost - g) / n > max_drop) & (binom.sf(lost - 1, lost + g, 0.5) < alpha)
        total += pl[lost] * float(pg[keep][flagged].sum())
    return total


def exact_mdd(n: int, churn: float, alpha: float, max_drop: float, target: float = 0.8) -> float:
    lo, hi = 0.0, 0.5
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power(n, churn, mid, alpha, max_drop) >= target else (mid, hi)
    return 100 * hi


def old_mdd(n: int, flip_rate: float, alpha: float) -> float:
    """The formula before issue 23: the observed flip rate (which holds the drop), no max_drop."""
    z_a, z_b = _normal_quantile(1 - alpha), _normal_quantile(0.8)

    def detects(d: float) -> bool:
        flips = max((flip_rate + d) * n, 1e-9)
        return d * n >= math.log2(1 / alpha) and d * n - z_a * math.sqrt(flips) >= z_b * math.sqrt(flips)

    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if detects(mid) else (mid, hi)
    return 100 * hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--family", type=int, default=40, help="paired tests in the family (alpha / family)")
    ap.add_argument("--max-drop", type=float, default=2.0)
    args = ap.parse_args(argv)
    level = args.alpha / args.family
    print(f"MDD@80%, points: alpha {args.alpha} / {args.family} tests = {level:.2g}, max_drop {args.max_drop:g}")
    print()
    print(f"{'n':>6}  {'churn':>5}  {'printed':>7}  {'exact':>6}  {'diff':>5}")
    worst = 0.0
    for n in SIZES:
        for c in CHURNS:
            printed = min_detectable_drop(n, c, level, args.max_drop)
            exact = exact_mdd(n, c, level, args.max_drop)
            assert printed is not None
            worst = max(worst, abs(printed - exact))
            print(f"{n:>6}  {c:>5.0%}  {printed:>7.2f}  {exact:>6.2f}  {printed - exact:>+5.2f}")
    print()
    n, c = 1000, 0.02
    print(f"the issue's case, {n} items, {c:.0%} churn: what the old formula printed (observed flip rate, which holds "
          "the drop) and what the gate prints now (churn from 2 x gains / n)")
    print(f"{'true drop':>9}  {'old':>5}  {'now':>5}")
    now = min_detectable_drop(n, c, level, args.max_drop)
    for drop in (0, 3, 10, 50):
        print(f"{drop:>9}  {old_mdd(n, c + drop / 100, level):>5.2f}  {now:>5.2f}")
    print(f"exact: {exact_mdd(n, c, level, args.max_drop):.2f} whatever the drop")
    print()
    ok = worst <= TOLERANCE
    print(f"largest |printed - exact|: {worst:.2f} points (target <= {TOLERANCE}): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
