"""Family-wise false alarms and power of the regression gate over a whole catalog (issue 13).

    python perf/family_simulation.py [--runs 4000] [--seed 0]

Model: 40 benchmarks, sizes evenly spaced from 100 to 2,500 items, 70% of items right in the
baseline. *Harmless churn* c flips a share c of the items with as many flips each way in
expectation (right->wrong with probability c/2/0.7, wrong->right with c/2/0.3). A *true drop*
of d points adds d*n expected right->wrong flips. Each benchmark is gated as pytest-jallm gates
it: fail when the observed drop exceeds max_drop (2 points) and the one-sided exact McNemar
p-value — raw, or Holm-adjusted over the 40 — is below alpha (0.05).

Prints the family-wise false-alarm rate (share of runs in which at least one harmless
benchmark fails) at churn 2/5/10%, and the power to flag a true 3-point drop on a 1,000-item
benchmark while the other 39 churn harmlessly. Uses the plugin's own Holm procedure; the
McNemar tail is scipy's binomial survival function, checked against the plugin's exact one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_jallm.stats import holm_adjust, mcnemar_one_sided  # noqa: E402

N_BENCHMARKS = 40
ACCURACY = 0.70
MAX_DROP = 2.0
ALPHA = 0.05
TARGET_SIZE = 1000
TRUE_DROP = 3.0
CHURNS = (0.02, 0.05, 0.10)


def sizes() -> np.ndarray:
    s = np.linspace(100, 2500, N_BENCHMARKS).round().astype(int)
    s[np.abs(s - TARGET_SIZE).argmin()] = TARGET_SIZE  # the benchmark the power figure is about
    return s


def mcnemar_p(losses: np.ndarray, gains: np.ndarray) -> np.ndarray:
    from scipy.stats import binom

    return binom.sf(losses - 1, losses + gains, 0.5)  # P(X >= losses), X ~ Bin(flips, 1/2)


def simulate(churn: float, runs: int, rng: np.random.Generator, drop_on: int | None = None) -> dict[str, np.ndarray]:
    """Per method, a (runs, benchmarks) array of gate failures."""
    n = sizes()
    right = rng.binomial(n, ACCURACY, size=(runs, len(n)))
    p_loss = np.full(len(n), churn / 2 / ACCURACY)
    if drop_on is not None:
        p_loss[drop_on] += TRUE_DROP / 100 / ACCURACY
    losses = rng.binomial(right, p_loss)
    gains = rng.binomial(n - right, churn / 2 / (1 - ACCURACY))
    drop = 100 * (losses - gains) / n
    p = mcnemar_p(losses, gains)
    big = drop > MAX_DROP
    out = {"per benchmark": big & (p < ALPHA)}
    holm = np.empty_like(p)
    for r in range(runs):
        adj = holm_adjust({str(i): float(v) for i, v in enumerate(p[r])})
        holm[r] = [adj[str(i)] for i in range(len(n))]
    out["holm"] = big & (holm < ALPHA)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for losses, gains in ((3, 0), (12, 5), (40, 10)):  # scipy's tail is the plugin's exact one
        assert abs(float(mcnemar_p(np.array(losses), np.array(gains))) - mcnemar_one_sided(losses, gains)) < 1e-12
    n = sizes()
    target = int(np.where(n == TARGET_SIZE)[0][0])
    print(f"{N_BENCHMARKS} benchmarks, {n.min()}-{n.max()} items, {ACCURACY:.0%} accuracy, max_drop {MAX_DROP}, "
          f"alpha {ALPHA}, {args.runs} runs per figure, seed {args.seed}")
    print()
    print("family-wise false alarms (share of runs where a harmless change fails at least one benchmark)")
    print(f"{'churn':>6}  {'per benchmark':>14}  {'holm':>6}")
    fwer = {}
    for c in CHURNS:
        fails = simulate(c, args.runs, rng)
        fwer[c] = {m: float(f.any(axis=1).mean()) for m, f in fails.items()}
        print(f"{c:>6.0%}  {fwer[c]['per benchmark']:>14.1%}  {fwer[c]['holm']:>6.1%}")
    print()
    print(f"power: a true {TRUE_DROP:g}-point drop on the {TARGET_SIZE}-item benchmark is flagged")
    print(f"{'churn':>6}  {'per benchmark':>14}  {'holm':>6}")
    power = {}
    for c in CHURNS:
        fails = simulate(c, args.runs, rng, drop_on=target)
        power[c] = {m: float(f[:, target].mean()) for m, f in fails.items()}
        print(f"{c:>6.0%}  {power[c]['per benchmark']:>14.1%}  {power[c]['holm']:>6.1%}")
    print()
    ok_fwer = all(fwer[c]["holm"] <= 0.05 for c in CHURNS)
    ok_power = power[0.02]["holm"] >= 0.80
    print(f"targets (holm, the default): family-wise false alarms <= 5% at churn <= 10%: {'met' if ok_fwer else 'NOT met'}; "
          f"power >= 80% at 2% churn: {'met' if ok_power else 'NOT met'}")
    return 0 if ok_fwer and ok_power else 1


if __name__ == "__main__":
    sys.exit(main())
