"""Family-wise false alarms and power of the regression gate over a whole catalog (issues 13, 23).

    python perf/family_simulation.py [--runs 4000] [--continuous-runs 500] [--seed 0]

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

Continuous metrics (char_f1, issue 23): the same 40 sizes with per-item scores as llm-jp-eval's
char_f1 gives them (45% 1.0, 25% 0.0, the rest whole percent in between). Harmless churn re-draws
a share c of the items from the same distribution (a change as likely either way); the plugin's
own exact sign-flip test (`stats.sign_flip_test`) then gives each p-value. Prints the family-wise
false alarms, the power for a 3-point drop on the 1,000-item benchmark (a random share of the items
that score at least 0.6 lose 0.6, 3 points in expectation), and a 60-point collapse among 200 benchmarks, where the
paired bootstrap's p (never below 1/2001) could not pass Holm.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_jallm.stats import holm_adjust, mcnemar_one_sided, sign_flip_test  # noqa: E402

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


def char_f1(n: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.random(n)
    return np.where(kind < 0.45, 1.0, np.where(kind < 0.70, 0.0, np.round(rng.random(n), 2)))


def gate_continuous(base: list[np.ndarray], cur: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Which benchmarks the gate fails, per benchmark and with Holm (continuous per-item scores)."""
    drop = np.array([100 * (b.mean() - c.mean()) for b, c in zip(base, cur, strict=True)])
    p = np.array([sign_flip_test(c - b)[0] for b, c in zip(base, cur, strict=True)])
    adj = holm_adjust({str(i): float(v) for i, v in enumerate(p)})
    holm = np.array([adj[str(i)] for i in range(len(p))])
    return {"per benchmark": (drop > MAX_DROP) & (p < ALPHA), "holm": (drop > MAX_DROP) & (holm < ALPHA)}


def simulate_continuous(churn: float, runs: int, rng: np.random.Generator, drop_on: int | None = None) -> dict[str, np.ndarray]:
    n = sizes()
    out: dict[str, list[np.ndarray]] = {"per benchmark": [], "holm": []}
    for _ in range(runs):
        base = [char_f1(k, rng) for k in n]
        cur = []
        for b in base:
            c = b.copy()
            churned = rng.random(len(b)) < churn
            c[churned] = char_f1(int(churned.sum()), rng)
            cur.append(c)
        if drop_on is not None:
            c = cur[drop_on]
            high = c >= 0.6
            hit = high & (rng.random(len(c)) < TRUE_DROP / 100 / 0.6 / high.mean())  # expected drop: TRUE_DROP points
            c[hit] -= 0.6
        for method, failed in gate_continuous(base, cur).items():
            out[method].append(failed)
    return {m: np.array(v) for m, v in out.items()}


def continuous(runs: int, rng: np.random.Generator) -> bool:
    n = sizes()
    target = int(np.where(n == TARGET_SIZE)[0][0])
    print(f"continuous per-item scores (char_f1-like), {runs} runs per figure")
    print("family-wise false alarms")
    print(f"{'churn':>6}  {'per benchmark':>14}  {'holm':>6}")
    fwer = {}
    for c in CHURNS:
        fails = simulate_continuous(c, runs, rng)
        fwer[c] = {m: float(f.any(axis=1).mean()) for m, f in fails.items()}
        print(f"{c:>6.0%}  {fwer[c]['per benchmark']:>14.1%}  {fwer[c]['holm']:>6.1%}")
    print(f"power: a true {TRUE_DROP:g}-point drop on the {TARGET_SIZE}-item benchmark is flagged")
    print(f"{'churn':>6}  {'per benchmark':>14}  {'holm':>6}")
    for c in CHURNS:
        fails = simulate_continuous(c, runs, rng, drop_on=target)
        print(f"{c:>6.0%}  {float(fails['per benchmark'][:, target].mean()):>14.1%}  {float(fails['holm'][:, target].mean()):>6.1%}")
    # A 60-point collapse (100 items, 0.8 -> 0.2) among 200 benchmarks, the others unchanged.
    collapse = sign_flip_test([-0.6] * 100)[0]
    adjusted = holm_adjust({"collapsed": collapse, **{f"b{i}": 1.0 for i in range(199)}})["collapsed"]
    floor = holm_adjust({"collapsed": 1 / 2001, **{f"b{i}": 1.0 for i in range(199)}})["collapsed"]
    print(f"a 60-point collapse among 200 benchmarks: sign-flip p {collapse:.2g}, Holm-adjusted {adjusted:.2g} "
          f"({'flagged' if adjusted < ALPHA else 'NOT flagged'}); the bootstrap's best p 1/2001 Holm-adjusts to "
          f"{floor:.3f} ({'flagged' if floor < ALPHA else 'never flagged'})")
    return all(fwer[c]["holm"] <= 0.05 for c in CHURNS) and adjusted < ALPHA


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4000)
    ap.add_argument("--continuous-runs", type=int, default=500)
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
    print()
    ok_continuous = continuous(args.continuous_runs, rng) if args.continuous_runs else True
    print(f"targets (continuous, holm): family-wise false alarms <= 5% at churn <= 10% and the collapse flagged: "
          f"{'met' if ok_continuous else 'NOT met'}")
    return 0 if ok_fwer and ok_power and ok_continuous else 1


if __name__ == "__main__":
    sys.exit(main())
